//! Secrets never in logs or at rest in plain text: a server at debug level, a client at
//! verbose, a login by password, a personal token, a run whose job uses its run token — then
//! the server's log, every command's output and every file of both homes (the store
//! included) are searched for the password, the tokens and the database's password. Only
//! the client's credentials file, where `login` keeps its token by design, may hold one.

use std::path::Path;
use std::time::Duration;

use polyaxon_tests::sealed::{Env, stderr, stdout};
use polyaxon_tests::server::{start_with, terminate};

use super::remote::with_database;

const PASSWORD: &str = "an-admin-pass-0451";

/// Every file under `dir` holding one of `secrets`: (file, secret's label).
fn files_holding(dir: &Path, secrets: &[(&str, String)], skip: &[&Path]) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && !skip.iter().any(|s| *s == p) {
                let bytes = std::fs::read(&p).unwrap_or_default();
                for (label, s) in secrets {
                    if bytes.windows(s.len()).any(|w| w == s.as_bytes()) {
                        found.push(format!("{} holds the {label}", p.display()));
                    }
                }
            }
        }
    }
    found
}

fn secrets_stay_out_of_logs(database_url: Option<&str>) {
    let server_env = Env::new();
    let mut extra = vec![];
    if let Some(u) = database_url {
        extra = vec!["--database-url", u];
    }
    let (mut server, addr, mut server_log, rx) = start_with(
        &server_env,
        &extra,
        &[("POLYAXON_ADMIN_PASSWORD", PASSWORD), ("RUST_LOG", "debug")],
    );
    let env = Env::new();
    let mut outputs = String::new();
    let mut cmd = |args: &[&str], stdin: Option<&str>| {
        let mut c = env.cmd();
        c.current_dir(env.home.path())
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .args(args);
        if let Some(s) = stdin {
            c.write_stdin(s.to_string());
        }
        let out = c.output().unwrap();
        outputs.push_str(&format!(
            "$ polyaxon {}\n{}{}\n",
            args.join(" "),
            stdout(&out),
            stderr(&out)
        ));
        assert!(
            out.status.success(),
            "`polyaxon {}`: {}{}",
            args.join(" "),
            stdout(&out),
            stderr(&out)
        );
        stdout(&out)
    };
    cmd(
        &["config", "set", "--host", &format!("http://{addr}")],
        None,
    );
    cmd(
        &["-v", "login", "-u", "root", "--password-stdin"],
        Some(&format!("{PASSWORD}\n")),
    );
    cmd(&["-v", "whoami"], None);
    cmd(&["-v", "project", "create", "-n", "demo"], None);
    // The one output that shows a secret, by design: not searched.
    let made = env
        .cmd()
        .args(["-v", "token", "create", "--name", "ci", "-o", "json"])
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let made: serde_json::Value = serde_json::from_str(&stdout(&made)).unwrap();
    let personal = made["key"].as_str().unwrap().to_string();
    cmd(&["-v", "token", "ls"], None);
    // The job keeps its run token where only this test reads it, and uses it.
    let kept = env.home.path().join("job-token");
    std::fs::write(
        env.home.path().join("polyaxonfile.yml"),
        format!(
            "version: 1.1\nkind: component\nname: secretive\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, {}]\n",
            serde_json::to_string(&format!(
                "printf %s \"$POLYAXON_AUTH_TOKEN\" > {}; echo the job ran; echo loss=0.5",
                kept.display()
            ))
            .unwrap()
        ),
    )
    .unwrap();
    cmd(
        &[
            "-v",
            "run",
            "-f",
            "polyaxonfile.yml",
            "-p",
            "root/demo",
            "--stdout-metrics",
            "-w",
        ],
        None,
    );
    let run_token = std::fs::read_to_string(&kept).unwrap();
    assert!(
        run_token.len() >= 20,
        "the job had a run token: `{run_token}`"
    );
    for args in [
        &["-v", "ops", "get", "-p", "root/demo", "-o", "yaml"][..],
        &["-v", "ops", "statuses", "-p", "root/demo"],
        &["-v", "ops", "logs", "-p", "root/demo"],
        &["-v", "ops", "ls", "-p", "root/demo", "-o", "json"],
        &["-v", "config", "show"],
    ] {
        cmd(args, None);
    }
    let login_token = {
        let auth: serde_json::Value = serde_json::from_slice(
            &std::fs::read(env.home.path().join(".polyaxon/.auth")).unwrap(),
        )
        .unwrap();
        auth["tokens"][format!("http://{addr}")]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(terminate(&mut server).success());
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(2)) {
        server_log.push(line);
    }
    let server_log = server_log.join("\n");
    // The server logged at debug level: requests were there to leak from.
    assert!(
        server_log.contains("/api/v1/"),
        "the server logged no request: {server_log}"
    );
    let mut secrets = vec![
        ("admin password", PASSWORD.to_string()),
        ("login token", login_token.clone()),
        ("personal token", personal),
        ("run token", run_token),
    ];
    if let Some(u) = database_url {
        let password = u
            .split_once("://")
            .and_then(|(_, rest)| rest.split_once('@'))
            .and_then(|(creds, _)| creds.split_once(':'))
            .map(|(_, p)| p.to_string())
            .expect("a password in the test database's URL");
        secrets.push(("database password", password));
    }
    for (label, s) in &secrets {
        assert!(
            !server_log.contains(s.as_str()),
            "the server's log holds the {label}:\n{server_log}"
        );
        assert!(
            !outputs.contains(s.as_str()),
            "the CLI's output holds the {label}:\n{outputs}"
        );
    }
    let auth_file = env.home.path().join(".polyaxon/.auth");
    let mut found = files_holding(env.home.path(), &secrets, &[&auth_file, &kept]);
    found.extend(files_holding(server_env.home.path(), &secrets, &[]));
    assert!(
        found.is_empty(),
        "secrets at rest in plain text: {found:#?}"
    );
    // And the credentials file holds only the login token.
    let auth = std::fs::read_to_string(&auth_file).unwrap();
    for (label, s) in &secrets {
        assert_eq!(
            auth.contains(s.as_str()),
            s == &login_token,
            "{label} in {}",
            auth_file.display()
        );
    }
}

#[test]
fn secrets_stay_out_of_logs_on_sqlite() {
    secrets_stay_out_of_logs(None);
}

#[test]
fn secrets_stay_out_of_logs_on_postgres() {
    with_database("secrets", secrets_stay_out_of_logs);
}
