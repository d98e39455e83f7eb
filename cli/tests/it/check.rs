//! `polyaxon check`.

use std::io::Read;
use std::process::Stdio;

use crate::common::{Env, compat_dir, fixtures, stderr, stdout};

#[test]
fn compat_table_exit_codes() {
    let Some(dir) = compat_dir() else {
        eprintln!("skipped: ../shared/compat is not beside the checkout");
        return;
    };
    let env = Env::new();
    let table = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut failures = Vec::new();
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, expect) = (cols[0], cols[1]);
        if file == "typing/required_outputs.yml" {
            // See DISAGREE in polyaxonfile-schema/tests/it/compat.rs.
            continue;
        }
        let out = env
            .cmd()
            .current_dir(&dir)
            .args(["check", "-f", file])
            .output()
            .unwrap();
        let code = out.status.code();
        let err = stderr(&out);
        match expect {
            "valid" if code != Some(0) => failures.push(format!("{file}: exit {code:?}\n{err}")),
            "invalid" | "needs-params" if code != Some(1) => {
                failures.push(format!("{file}: exit {code:?}, expected 1\n{err}"))
            }
            "invalid" if !err.contains(&format!("--> {file}:")) => {
                failures.push(format!("{file}: no file:line in\n{err}"))
            }
            _ => {}
        }
        if expect == "needs-params" {
            let mut cmd = env.cmd();
            cmd.current_dir(&dir).args(["check", "-f", file]);
            for p in cols[2].split_whitespace() {
                cmd.args(["-P", p]);
            }
            let out = cmd.output().unwrap();
            if !out.status.success() {
                failures.push(format!("{file} with params: {}", stderr(&out)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn summary_of_a_valid_file() {
    let env = Env::new();
    let out = env
        .cmd()
        .current_dir(fixtures().join("valid"))
        .args(["check", "-f", "matrix_grid.yml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("matrix_grid.yml is valid"));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn errors_show_file_line_and_snippet() {
    let env = Env::new();
    let out = env
        .cmd()
        .current_dir(fixtures().join("invalid"))
        .args(["check", "-f", "snake_case_key.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn json_output_on_success_and_failure() {
    let env = Env::new();
    let ok = env
        .cmd()
        .current_dir(fixtures().join("valid"))
        .args(["check", "-f", "job_full.yml", "-o", "json"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["summary"]["run_kind"], "job");
    assert_eq!(v["compiled"]["kind"], "compiled_operation");
    let bad = env
        .cmd()
        .current_dir(fixtures().join("invalid"))
        .args(["check", "-f", "unknown_key.yml", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 8);
    assert_eq!(v["errors"][0]["path"], "run.container.imagePulPolicy");
    let yaml = env
        .cmd()
        .current_dir(fixtures().join("valid"))
        .args(["check", "-f", "service.yml", "-o", "yaml"])
        .output()
        .unwrap();
    assert!(
        stdout(&yaml).starts_with("valid: true\n"),
        "{}",
        stdout(&yaml)
    );
}

#[test]
fn params_from_the_command_line() {
    let env = Env::new();
    let dir = fixtures().join("invalid");
    let out = env
        .cmd()
        .current_dir(&dir)
        .args([
            "check",
            "-f",
            "required_input.yml",
            "-P",
            "loss=mse",
            "-P",
            "steps=3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("echo mse"));
    // Malformed -P is a usage error (2); a repeated name is a user error (1).
    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["check", "-f", "required_input.yml", "-P", "loss"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = env
        .cmd()
        .current_dir(&dir)
        .args([
            "check",
            "-f",
            "required_input.yml",
            "-P",
            "loss=a",
            "-P",
            "loss=b",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("more than once"));
}

#[test]
fn default_file_lookup() {
    let env = Env::new();
    let out = env.cmd().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no polyaxonfile given"),
        "{}",
        stderr(&out)
    );
    std::fs::copy(
        fixtures().join("valid/service.yml"),
        env.home.path().join("polyaxonfile.yml"),
    )
    .unwrap();
    let out = env.cmd().arg("check").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("polyaxonfile.yml is valid"));
}

#[test]
fn upgrade_prints_a_valid_v11_file() {
    let env = Env::new();
    let out = env
        .cmd()
        .current_dir(fixtures().join("valid"))
        .args(["check", "-f", "v06_group.yml", "--upgrade"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("version: 1.1") && text.contains("kind: tfjob"),
        "{text}"
    );
    std::fs::write(env.home.path().join("upgraded.yml"), &text).unwrap();
    let again = env
        .cmd()
        .args(["check", "-f", "upgraded.yml"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn schema_is_the_committed_one() {
    let env = Env::new();
    let out = env.cmd().args(["check", "--schema"]).output().unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(fixtures().join("../../schema/polyaxonfile.schema.json")).unwrap();
    assert_eq!(stdout(&out), committed);
}

#[test]
fn colors_follow_no_color_and_force() {
    let env = Env::new();
    let dir = fixtures().join("invalid");
    let plain = env
        .cmd()
        .current_dir(&dir)
        .args(["check", "-f", "unknown_key.yml"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!stderr(&plain).contains('\x1b'));
    let colored = env
        .cmd()
        .current_dir(&dir)
        .args(["check", "-f", "unknown_key.yml"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(stderr(&colored).contains("\x1b[1;31merror"));
}

#[test]
fn broken_pipe_exits_zero() {
    let env = Env::new();
    let mut child = env
        .cmd_std()
        .args(["check", "--schema"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reading end is dropped here: the rest of the output hits a closed pipe.
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn help_is_stable() {
    let env = Env::new();
    let out = env.cmd().args(["check", "--help"]).output().unwrap();
    insta::assert_snapshot!(stdout(&out));
}
