//! A sealed environment with a git repository to run polyaxonfiles from, and what the tests
//! of runs ask of it.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value as J;

use crate::common::{Env, stderr, stdout};

/// A sealed environment with a git repository to run from.
pub struct Work {
    pub env: Env,
    pub dir: PathBuf,
}

pub const PATH: &str = "/usr/local/bin:/usr/bin:/bin";

impl Work {
    pub fn new(polyaxonfile: &str) -> Work {
        let env = Env::new();
        let dir = env.home.path().join("work");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("polyaxonfile.yml"), polyaxonfile).unwrap();
        let repo = git2::Repository::init(&dir).unwrap();
        polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
        Work { env, dir }
    }

    pub fn cmd(&self) -> Command {
        let mut c = self.env.cmd_std();
        c.current_dir(&self.dir).env("PATH", PATH);
        c
    }

    pub fn out(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.out(args);
        assert!(
            o.status.success(),
            "`polyaxon {}`: {}{}",
            args.join(" "),
            stdout(&o),
            stderr(&o)
        );
        stdout(&o)
    }

    pub fn json(&self, args: &[&str]) -> J {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    pub fn run_json(&self, uuid: &str) -> J {
        self.json(&["ops", "get", "--uid", uuid, "-o", "json"])
    }

    /// Waits until the run's status is one of `want`; returns the run.
    pub fn wait_status(&self, uuid: &str, want: &[&str], secs: u64) -> J {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let r = self.run_json(uuid);
            if want.contains(&r["status"].as_str().unwrap_or("")) {
                return r;
            }
            assert!(
                Instant::now() < end,
                "run still {} after {secs} s: {r}",
                r["status"]
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `polyaxon run` (in the background); returns the new run's uuid.
    pub fn start(&self, extra: &[&str]) -> String {
        let mut args = vec!["run", "-o", "json"];
        args.extend(extra);
        let r = self.json(&args);
        r["uuid"].as_str().unwrap().to_string()
    }

    pub fn statuses(&self, uuid: &str) -> Vec<(String, String)> {
        let s = self.json(&["ops", "statuses", "--uid", uuid, "-o", "json"]);
        s.as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["type"].as_str().unwrap().to_string(),
                    c["message"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

/// A run's time field in seconds since the epoch.
pub fn secs(t: &J) -> f64 {
    let s = t.as_str().unwrap();
    let t: jiff::Timestamp = s.parse().unwrap();
    t.as_millisecond() as f64 / 1000.0
}
