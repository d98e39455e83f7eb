//! Orphans: runs whose supervising process died (a killed terminal, a reboot) are marked
//! `failed` (or `stopped`, when a stop was asked for), and what their jobs left running on
//! this machine is ended. A supervisor is known by its pid, the boot and its start time (a pid
//! alone is reused), as its claim recorded them in `meta_info.executor`.

use polyaxon_server::api::{ExecutorMeta, RunStatus};

use crate::client::{Client, ListQuery, RunRef};

/// Identifies this process beyond its pid (which the system reuses): the boot and the
/// process's start time.
pub fn process_identity(pid: u32) -> Option<(String, u64)> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .ok()?
        .trim()
        .to_string();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    // A zombie (dead, not yet reaped by whoever inherited it) is gone for our purposes.
    if rest.starts_with('Z') || rest.starts_with('X') {
        return None;
    }
    let start: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    Some((boot, start))
}

/// Whether the process recorded as (`pid`, `boot`, `start`) is still running.
pub fn is_alive(pid: u32, boot: &str, start: u64) -> bool {
    process_identity(pid).is_some_and(|(b, s)| b == boot && s == start)
}

/// This machine's name, as claims record it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// Marks failed the runs of the embedded store whose supervisor died, and ends what their
/// jobs left running. Called when the embedded store is opened.
pub async fn reap(app: &polyaxon_server::App) {
    let Ok(active) = app.store.claimed_runs(Some(&hostname())).await else {
        return;
    };
    for c in active {
        if let Some((to, reason, msg)) = orphan(&c.uuid, c.status, &c.executor).await {
            let _ = app
                .store
                .add_status(&c.uuid, to, Some(reason), Some(&msg), None, true)
                .await;
            // What the dead controller had not started yet never will.
            for child in app
                .store
                .unstarted_children(&c.uuid)
                .await
                .unwrap_or_default()
            {
                let _ = app
                    .store
                    .add_status(
                        &child,
                        RunStatus::Stopped,
                        Some(PARENT_LOST),
                        Some(&parent_lost(&c.uuid)),
                        None,
                        false,
                    )
                    .await;
            }
        }
    }
}

/// The same for an agent against a server: the runs claimed on this machine, across
/// projects, whose supervising process (another agent, a `polyaxon run`) died.
pub async fn reap_host(client: &Client) {
    if let Some(app) = client.embedded_app() {
        return reap(app).await;
    }
    let Ok(list) = client.claimed_on_host(&hostname()).await else {
        return;
    };
    for c in list.results {
        let Some((to, reason, msg)) = orphan(&c.uuid, c.status, &c.executor).await else {
            continue;
        };
        let r = RunRef {
            owner: c.owner,
            project: c.project,
            uuid: c.uuid,
        };
        let _ = client.add_status(&r, to, reason, &msg, None).await;
        stop_unstarted_children(client, &r).await;
    }
}

/// Why the children of an orphan that had not started are stopped.
const PARENT_LOST: &str = "PipelineLost";

fn parent_lost(parent: &str) -> String {
    format!("the run controlling it ({parent}) ended without starting it")
}

/// The same against a server: this machine's runs in `project` whose supervisor died.
pub async fn reap_remote(client: &Client, owner: &str, project: &str) {
    let active: Vec<&str> = RunStatus::ALL
        .iter()
        .filter(|s| s.is_claimed())
        .map(|s| s.as_str())
        .collect();
    let q = ListQuery {
        query: Some(format!("status:{}", active.join("|"))),
        limit: Some(200),
        ..Default::default()
    };
    let Ok(list) = client.list_runs(owner, project, &q).await else {
        return;
    };
    for run in list.results {
        let meta = run.meta();
        let (Some(uuid), Some(status), Some(executor)) = (run.uuid, run.status, meta.executor)
        else {
            continue;
        };
        let Some((to, reason, msg)) = orphan(&uuid, status, &executor).await else {
            continue;
        };
        let r = RunRef {
            owner: owner.to_string(),
            project: project.to_string(),
            uuid,
        };
        let _ = client.add_status(&r, to, reason, &msg, None).await;
        stop_unstarted_children(client, &r).await;
    }
}

async fn stop_unstarted_children(client: &Client, r: &RunRef) {
    let q = ListQuery {
        query: Some(format!("pipeline: {}, status: created", r.uuid)),
        limit: Some(1000),
        ..Default::default()
    };
    if let Ok(children) = client.list_runs(&r.owner, &r.project, &q).await {
        for c in children.results.into_iter().filter_map(|c| c.uuid) {
            let _ = client
                .add_status(
                    &r.sibling(&c),
                    RunStatus::Stopped,
                    PARENT_LOST,
                    &parent_lost(&r.uuid),
                    None,
                )
                .await;
        }
    }
}

/// Reaps now and then while a command follows a run (its supervisor may die meanwhile: a
/// follower would otherwise wait for an end that never comes).
pub struct Watchdog {
    last: std::time::Instant,
}

impl Default for Watchdog {
    fn default() -> Self {
        Watchdog {
            last: std::time::Instant::now(),
        }
    }
}

impl Watchdog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(2);

    /// Looks for orphans of `r`'s project if it is time to.
    pub async fn tick(&mut self, client: &Client, r: &RunRef) {
        if self.last.elapsed() < Self::EVERY {
            return;
        }
        self.last = std::time::Instant::now();
        match client.embedded_app() {
            Some(app) => reap(app).await,
            None => reap_remote(client, &r.owner, &r.project).await,
        }
    }
}

/// A started run of this agent whose controller here ended before the run did (it could not
/// record the failure that ended it): its job is ended if it outlived the controller, and the
/// run failed with the reason. Cluster jobs are not for this: they are followed again.
pub async fn end_abandoned(client: &Client, r: &RunRef, run: &polyaxon_server::api::V1Run) {
    let ex: ExecutorMeta = run
        .meta_info
        .as_ref()
        .and_then(|m| m.get("executor"))
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    end_job(&r.uuid, &ex).await;
    let (to, reason) = if run.status == Some(RunStatus::Stopping) {
        (RunStatus::Stopped, "ControllerLostWhileStopping")
    } else {
        (RunStatus::Failed, "ControllerLost")
    };
    let _ = client
        .add_status(
            r,
            to,
            reason,
            "the agent's controller of this run ended before the run did and could not record why (see the agent's log): its job was ended",
            None,
        )
        .await;
    stop_unstarted_children(client, r).await;
}

/// Ends what a run's job left behind (its container), and its process group when the
/// recorded job process is still the same one.
async fn end_job(uuid: &str, ex: &ExecutorMeta) {
    if let Some(kind) = ex.kind {
        crate::executor::remove_leftovers(kind, uuid).await;
    }
    if let Some(job) = ex.job_pid
        && is_alive(
            job,
            ex.job_boot_id.as_deref().unwrap_or(""),
            ex.job_start.unwrap_or(0),
        )
    {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(job as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}

/// For an active run supervised on this machine by a process that is gone: its job ended
/// (if it outlived the supervisor) and the status to record.
async fn orphan(
    uuid: &str,
    status: RunStatus,
    ex: &ExecutorMeta,
) -> Option<(RunStatus, &'static str, String)> {
    // A cluster job of an agent lost: its lease hands it to the next agent, which follows
    // the job (ending it here would lose a run that is still going).
    if ex.agent.is_some() && ex.kind == Some(polyaxon_server::api::ExecutorKind::Kubernetes) {
        return None;
    }
    let pid = ex.pid.unwrap_or(0);
    if pid == 0
        || ex.host.as_deref() != Some(hostname().as_str())
        || is_alive(
            pid,
            ex.boot_id.as_deref().unwrap_or(""),
            ex.start.unwrap_or(0),
        )
    {
        return None;
    }
    // The job may outlive its supervisor: end it too.
    end_job(uuid, ex).await;
    // A stop was asked for and the job is gone: that is what was asked.
    let (to, reason) = if status == RunStatus::Stopping {
        (RunStatus::Stopped, "ExecutorLostWhileStopping")
    } else {
        (RunStatus::Failed, "ExecutorLost")
    };
    Some((
        to,
        reason,
        format!("the process supervising the run (pid {pid}) ended without finishing it"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_made_up_one_is_not() {
        let me = std::process::id();
        let (boot, start) = process_identity(me).unwrap();
        assert!(is_alive(me, &boot, start));
        assert!(
            !is_alive(me, &boot, start + 1),
            "a reused pid is not the same process"
        );
        assert!(!is_alive(me, "another-boot", start));
    }
}
