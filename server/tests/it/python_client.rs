//! The official Python client (`polyaxon` 2.18 from PyPI, installed by `scripts/test`) drives
//! the server unchanged: projects, runs, inputs, outputs, statuses, queries.

use std::path::Path;

use crate::both;
use crate::common::TestServer;

fn python() -> Option<String> {
    let Some(py) = std::env::var_os("POLYAXON_TEST_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "POLYAXON_TEST_PYTHON must be set in CI (scripts/test sets it)"
        );
        eprintln!("skipped: POLYAXON_TEST_PYTHON is not set (scripts/test sets it)");
        return None;
    };
    Some(py.to_string_lossy().into_owned())
}

async fn drive(s: &TestServer) {
    let Some(py) = python() else { return };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/client_compat.py");
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(py)
        .arg(&script)
        .arg(&s.base)
        .arg(&s.root_token)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("POLYAXON_NO_OP", "false")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok:"));
}

both!(official_client_works_unchanged, |s| {
    drive(&s).await;
});
