//! The Docker Engine the tests need: whether one answers (in CI it must), and the static
//! busybox test images are built from.

use std::process::Command;

/// Whether a Docker Engine answers; in CI it must (scripts/test starts one).
pub fn docker_available() -> bool {
    let ok = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "a Docker Engine must run in CI (scripts/test starts one)"
        );
        eprintln!("skipped: no Docker Engine (scripts/test installs and starts one)");
    }
    ok
}

pub fn busybox() -> Option<std::path::PathBuf> {
    ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
}
