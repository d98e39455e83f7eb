//! A sealed environment for running the real binary: an empty environment, a temporary
//! home, a fixed terminal width.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// The `polyaxon` binary of this build: the one cargo names for the CLI's own tests, else the
/// one beside the test executable (`target/<profile>/`), which a workspace build makes.
pub fn polyaxon_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("CARGO_BIN_EXE_polyaxon") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("the test executable");
    let dir = exe
        .parent()
        .map(|d| {
            if d.ends_with("deps") {
                d.parent().unwrap_or(d)
            } else {
                d
            }
        })
        .expect("the test executable's directory");
    let bin = dir.join("polyaxon");
    assert!(
        bin.is_file(),
        "`{}` is not built: run the tests of the whole workspace (`cargo nextest run --workspace`), or `cargo build -p polyaxon-cli` first",
        bin.display()
    );
    bin
}

pub struct Env {
    pub home: tempfile::TempDir,
}

impl Default for Env {
    fn default() -> Self {
        Env::new()
    }
}

impl Env {
    pub fn new() -> Env {
        Env {
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// `polyaxon` with nothing inherited but what tests choose.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(polyaxon_bin());
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
        let mut c = std::process::Command::new(polyaxon_bin());
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

/// The test virtualenv's Python, with the official `polyaxon` package (`scripts/test` makes it
/// and sets `POLYAXON_TEST_PYTHON`); `None`, with a note, where it is not set up, which CI does
/// not allow.
pub fn test_python() -> Option<PathBuf> {
    let Some(python) = std::env::var_os("POLYAXON_TEST_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "POLYAXON_TEST_PYTHON must be set in CI"
        );
        eprintln!("skipped: POLYAXON_TEST_PYTHON is not set (scripts/test sets it)");
        return None;
    };
    Some(PathBuf::from(python))
}
