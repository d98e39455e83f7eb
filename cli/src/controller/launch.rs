//! Launching a run's supervisor: `polyaxon ops execute` in the background, detached from this
//! terminal (its own process group: Ctrl-C here does not reach it), its output in
//! `$POLYAXON_HOME/executors/<uuid>.log`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polyaxon_server::api::ExecutorKind;

use crate::client::RunRef;
use crate::settings::Settings;

/// Starts the supervisor of a created run.
pub fn spawn(settings: &Settings, r: &RunRef, executor: ExecutorKind) -> Result<()> {
    Standby::spawn(settings, executor)?.hand(r)
}

/// A supervisor started before its run exists (`ops execute --run-from-stdin`): it opens the
/// store while `polyaxon run` snapshots the code and creates the run, then gets the run on
/// its stdin ([`Standby::hand`]). Dropped unhanded, it reads end-of-file and exits, and its
/// log is removed.
pub struct Standby {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    log: PathBuf,
}

impl Standby {
    pub fn spawn(settings: &Settings, executor: ExecutorKind) -> Result<Standby> {
        let exe = std::env::current_exe().context("finding the polyaxon binary")?;
        let logs = settings.home.join("executors");
        std::fs::create_dir_all(&logs).with_context(|| format!("creating `{}`", logs.display()))?;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        // Kept apart until named: a small directory to look through for leftovers.
        let pending = logs.join("pending");
        std::fs::create_dir_all(&pending)
            .with_context(|| format!("creating `{}`", pending.display()))?;
        remove_stale_pending(&pending);
        let log_path = pending.join(format!("{}-{nanos}.log", std::process::id()));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating `{}`", log_path.display()))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.args([
            "ops",
            "execute",
            "--run-from-stdin",
            "--executor",
            executor.as_str(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(log.try_clone()?)
        .stderr(log);
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let mut child = cmd.spawn().context("starting the executor")?;
        let stdin = child.stdin.take();
        Ok(Standby {
            child,
            stdin,
            log: log_path,
        })
    }

    /// Gives the supervisor its run: it starts it at once.
    pub fn hand(mut self, r: &RunRef) -> Result<()> {
        use std::io::Write;
        let logs = self
            .log
            .parent()
            .and_then(|p| p.parent())
            .context("the executors' directory")?;
        let named = logs.join(format!("{}.log", r.uuid));
        std::fs::rename(&self.log, &named)
            .with_context(|| format!("naming the executor's log `{}`", named.display()))?;
        self.log = named;
        let mut stdin = self.stdin.take().context("the executor's input")?;
        writeln!(stdin, "{}/{} {}", r.owner, r.project, r.uuid)
            .and_then(|_| stdin.flush())
            .context("handing the run to its executor")?;
        self.log = PathBuf::new();
        Ok(())
    }
}

/// What a standby supervisor reads on stdin: `OWNER/PROJECT UUID`; `None` at end-of-file
/// (`polyaxon run` did not get as far as creating a run).
pub fn read_handed(line: &str) -> Result<Option<RunRef>> {
    let Some((project, uuid)) = line.trim().split_once(' ') else {
        return Ok(None);
    };
    let Some((owner, project)) = project.split_once('/') else {
        anyhow::bail!(
            "expected `OWNER/PROJECT UUID` on standard input, got `{}`",
            line.trim()
        );
    };
    Ok(Some(RunRef {
        owner: owner.to_string(),
        project: project.to_string(),
        uuid: uuid.replace('-', ""),
    }))
}

/// Logs of standby supervisors whose `polyaxon run` died before handing them a run.
fn remove_stale_pending(logs: &Path) {
    let Ok(entries) = std::fs::read_dir(logs) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = std::fs::remove_file(e.path());
        }
    }
}

impl Drop for Standby {
    fn drop(&mut self) {
        if self.stdin.take().is_some() {
            // Not handed a run: it exits on end-of-file; its log says nothing worth keeping.
            let _ = self.child.wait();
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_standby_logs_of_dead_runs_are_removed() {
        let d = tempfile::tempdir().unwrap();
        let dead = d.path().join("4194303999-1.log");
        let alive = d.path().join(format!("{}-2.log", std::process::id()));
        let other = d.path().join("notes.txt");
        for f in [&dead, &alive, &other] {
            std::fs::write(f, "x").unwrap();
        }
        remove_stale_pending(d.path());
        assert!(!dead.exists());
        assert!(alive.exists() && other.exists());
    }
}
