//! A sealed environment for running the real binary.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

pub struct Env {
    pub home: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        Env {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// `polyaxon` with nothing inherited but what tests choose.
    pub fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("polyaxon").unwrap();
        c.env_clear()
            .env("HOME", self.home.path())
            .env("POLYAXON_HOME", self.home.path().join(".polyaxon"))
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("COLUMNS", "100")
            .env("LANG", "C.UTF-8")
            .current_dir(self.home.path());
        c
    }
}

impl Env {
    /// The same sealed command as a `std::process::Command`, for streaming.
    pub fn cmd_std(&self) -> std::process::Command {
        let mut c = std::process::Command::new(assert_cmd::cargo::cargo_bin("polyaxon"));
        c.env_clear()
            .env("HOME", self.home.path())
            .env("POLYAXON_HOME", self.home.path().join(".polyaxon"))
            .env("COLUMNS", "100")
            .current_dir(self.home.path());
        c
    }
}

pub fn compat_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/compat/polyaxonfiles");
    dir.join("expected.tsv").is_file().then_some(dir)
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../polyaxonfile-schema/tests/fixtures")
}

pub fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
