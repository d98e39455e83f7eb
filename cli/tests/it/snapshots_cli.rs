//! Snapshots of help texts and of table output, times and ids filtered.

use serde_json::json;

use crate::common::{Env, Seed, stdout};

fn out(env: &Env, args: &[&str]) -> String {
    let o = env.cmd().args(args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    stdout(&o)
}

#[test]
fn help_texts() {
    let env = Env::new();
    insta::assert_snapshot!("help_top", out(&env, &["--help"]));
    insta::assert_snapshot!("help_ops", out(&env, &["ops", "--help"]));
    insta::assert_snapshot!("help_ops_ls", out(&env, &["ops", "ls", "--help"]));
    insta::assert_snapshot!("help_project", out(&env, &["project", "--help"]));
    insta::assert_snapshot!("help_config_set", out(&env, &["config", "set", "--help"]));
}

#[test]
fn tables() {
    let env = Env::new();
    let seed = Seed::new(&env);
    seed.project("vision");
    let mut uuids = Vec::new();
    for (name, status, loss) in [
        ("baseline", "succeeded", 0.31),
        ("wider", "failed", 0.52),
        ("deeper", "running", 0.27),
    ] {
        let u = seed.run(
            "vision",
            json!({"name": name, "tags": ["resnet"], "description": format!("{name} model")}),
        );
        seed.call(
            "PATCH",
            &format!("/api/v1/default/vision/runs/{u}"),
            json!({"inputs": {"lr": 0.01, "depth": 18}}),
        );
        seed.status("vision", &u, "running");
        seed.metrics("vision", &u, "loss", &[0.9, 0.6, loss]);
        if status != "running" {
            seed.status("vision", &u, status);
        }
        uuids.push(u);
    }
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r"[0-9a-f]{32}", "[UUID]");
    settings.add_filter(r"\b\d+s ago", "[AGO]  ");
    settings.add_filter(
        r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC \([^)]*\)",
        "[TIME]",
    );
    settings.add_filter(r"\b\d+s\b", "[SECS]");
    settings.bind(|| {
        insta::assert_snapshot!("project_ls", out(&env, &["project", "ls"]));
        insta::assert_snapshot!(
            "ops_ls",
            out(&env, &["ops", "ls", "-p", "vision", "-s", "name"])
        );
        insta::assert_snapshot!(
            "ops_ls_io",
            out(
                &env,
                &["ops", "ls", "-p", "vision", "-s", "metrics.loss", "--io"]
            )
        );
        insta::assert_snapshot!(
            "ops_get",
            out(&env, &["ops", "get", "-p", "vision", "--uid", &uuids[0]])
        );
        insta::assert_snapshot!("ops_statuses", out(&env, &["ops", "statuses"]));
        insta::assert_snapshot!("ops_metrics", out(&env, &["ops", "metrics"]));
    });
}
