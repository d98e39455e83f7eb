//! Connections as a user configures them: the embedded config's `connections.yaml`, created
//! and deleted from the CLI, read by templates (`{{ connections['name'] }}`, the non-secret
//! part only), refused with clear errors; and the README's verification snippet checking a
//! real signature.

use crate::common::{stderr, stdout};
use crate::work::Work;

const FILE: &str = r##"
connections:
  - name: data
    kind: s3
    description: the team's datasets
    schema: {bucket: "s3://ml-data"}
    secret: env:AWS_SECRET_NOT_SHOWN
  - name: alerts
    kind: slack
    schema: {channel: "#ml"}
    secret: {file: /run/secrets/slack-url}
"##;

fn job(command: &str) -> String {
    format!(
        "version: 1.1\nkind: component\nname: uses-data\nrun:\n  kind: job\n  connections: [data]\n  container:\n    command: [sh, -c, {}]\n",
        serde_json::to_string(command).unwrap()
    )
}

#[test]
fn the_embedded_config_file_and_templates() {
    let w = Work::new(&job(
        "echo bucket={{ connections['data'].bucket }} kind={{ connections['data'].kind }}",
    ));
    let home = w.env.home.path().join(".polyaxon");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("connections.yaml"), FILE).unwrap();
    let list = w.json(&["connections", "ls", "-o", "json"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alerts", "data"]);
    let data = w.json(&["connections", "get", "data", "-o", "json"]);
    assert_eq!(data["schema"]["bucket"], "s3://ml-data");
    assert_eq!(
        data["secret"], "env:AWS_SECRET_NOT_SHOWN",
        "where, never a value"
    );
    let table = w.ok(&["connections", "ls"]);
    assert!(
        table.contains("s3://ml-data") && table.contains("yes"),
        "{table}"
    );

    // Templates see the non-secret part.
    let out = w.out(&["run", "-l"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("bucket=s3://ml-data kind=s3"),
        "{}",
        stdout(&out)
    );
    // A run's connection the catalogue does not have: check warns, listing the known ones (a
    // notifier's is an error: see the e2e tests).
    std::fs::write(
        w.dir.join("typo.yml"),
        job("echo {{ connections['data'].bucket }}").replace("[data]", "[dta]"),
    )
    .unwrap();
    let out = w.out(&["check", "-f", "typo.yml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("warning"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no connection is named `dta` (known: alerts, data)"),
        "{}",
        stderr(&out)
    );
    std::fs::write(
        w.dir.join("undefined.yml"),
        job("echo {{ connections['nope'].bucket }}"),
    )
    .unwrap();
    let out = w.out(&["check", "-f", "undefined.yml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // Edited: the next command sees the change; one created by the CLI is kept.
    std::fs::write(
        home.join("connections.yaml"),
        FILE.replace("s3://ml-data", "s3://ml-data-v2"),
    )
    .unwrap();
    w.ok(&[
        "connections",
        "create",
        "--name",
        "ci",
        "--kind",
        "webhook",
        "--url",
        "http://127.0.0.1:9/hook",
    ]);
    let data = w.json(&["connections", "get", "data", "-o", "json"]);
    assert_eq!(data["schema"]["bucket"], "s3://ml-data-v2");
    assert_eq!(
        w.json(&["connections", "ls", "-o", "json"])
            .as_array()
            .unwrap()
            .len(),
        3
    );
    w.ok(&["connections", "delete", "ci"]);
    let out = w.out(&["connections", "get", "ci"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no connection is named `ci`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn bad_connections_are_refused_with_what_to_fix() {
    let w = Work::new(&job("true"));
    for (args, want) in [
        (
            vec![
                "--name",
                "x",
                "--kind",
                "webhook",
                "--url",
                "http://169.254.169.254/latest",
            ],
            "link-local",
        ),
        (
            vec![
                "--name",
                "x",
                "--kind",
                "webhook",
                "--url",
                "gopher://example.com/",
            ],
            "only http and https",
        ),
        (
            vec!["--name", "x", "--kind", "slack", "--secret", "xoxb-123"],
            "env:NAME",
        ),
        (
            vec!["--name", "x", "--kind", "sms"],
            "not a kind of connection",
        ),
        (
            vec![
                "--name",
                "x",
                "--kind",
                "webhook",
                "--url",
                "http://127.0.0.1:9/",
                "-s",
                "password=hunter2",
            ],
            "through `secret`",
        ),
    ] {
        let mut a = vec!["connections", "create"];
        a.extend(args);
        let out = w.out(&a);
        assert_eq!(out.status.code(), Some(1), "{a:?}");
        assert!(stderr(&out).contains(want), "{a:?}: {}", stderr(&out));
        assert!(
            !stderr(&out).contains("hunter2"),
            "a secret echoed: {}",
            stderr(&out)
        );
    }
    // A broken config file names itself.
    let home = w.env.home.path().join(".polyaxon");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("connections.yaml"),
        "- name: y\n  kind: webhook\n  schema: {url: \"ftp://x/\"}\n",
    )
    .unwrap();
    let out = w.out(&["connections", "ls"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("connections.yaml"),
        "{}",
        stderr(&out)
    );
}

/// The README's snippet, run by Python, accepts the signature the server sends and refuses a
/// tampered body and an old signature.
#[test]
fn the_readme_verification_snippet_verifies_signatures() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme
        .find("def verify(")
        .expect("the snippet in the README");
    let snippet_start = readme[..start].rfind("```python\n").unwrap() + "```python\n".len();
    let end = snippet_start + readme[snippet_start..].find("```").unwrap();
    let snippet = &readme[snippet_start..end];
    let body = r#"{"uuid":"abc","status":"succeeded"}"#;
    let now = jiff::Timestamp::now().as_second();
    let fresh = polyaxon_server::notify::signature("k3y", now, body);
    let old = polyaxon_server::notify::signature("k3y", now - 3600, body);
    let script = format!(
        "{snippet}\nimport sys\nb = {body:?}.encode()\nprint(verify(b'k3y', {fresh:?}, b), verify(b'k3y', {fresh:?}, b + b' '), verify(b'other', {fresh:?}, b), verify(b'k3y', {old:?}, b))\n"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "True False False False"
    );
}
