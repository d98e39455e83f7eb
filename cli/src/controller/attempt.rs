//! Attempts: one start of the job to its end — its statuses as they come, stop requests from
//! anywhere, the deadline (`termination.timeout`), SIGTERM and Ctrl-C — and the retries
//! (`termination.maxRetries`) after a failure.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use polyaxon_server::api::RunStatus;

use super::plan::Plan;
use super::run_api::attempt_meta;
use super::track::{Track, Tracking};
use super::{Ctl, Outcome, finish, orphans};
use crate::error::said;
use crate::executor::{self, Handle};

/// Runs the job until an attempt ends it, retrying failures as the plan allows.
pub async fn run(ctl: &Ctl<'_>, plan: &Plan, dir: &Path) -> Result<Outcome> {
    let mut attempt = 0u32;
    loop {
        let outcome = once(ctl, plan, dir, attempt).await?;
        match &outcome {
            Outcome::Failed(why) if attempt < plan.max_retries => {
                attempt += 1;
                let msg = format!("{why}; retry {attempt} of {}", plan.max_retries);
                if !ctl
                    .api
                    .status(
                        RunStatus::Retrying,
                        "ExecutorRetrying",
                        &msg,
                        attempt_meta(attempt),
                    )
                    .await?
                {
                    return Ok(Outcome::Stopped("stopped".into()));
                }
                continue;
            }
            _ => return Ok(outcome),
        }
    }
}

/// One start of the job, to its end.
async fn once(ctl: &Ctl<'_>, plan: &Plan, dir: &Path, attempt: u32) -> Result<Outcome> {
    let api = &ctl.api;
    let kind = ctl.executor.kind();
    crate::timing::mark("execute: starting the job");
    let adopting = ctl.adopt.as_ref().filter(|_| attempt == 0);
    let started_job = match adopting {
        Some(a) => match ctl.executor.attach(&plan.job, a.logs_since) {
            Some(f) => f.await,
            None => Err(crate::error::UserError::new(format!(
                "the agent driving the run was lost, and the {kind} executor cannot follow a job another agent started"
            ))
            .into()),
        },
        None => ctl.executor.start(&plan.job).await,
    };
    let (fail_reason, job_kind) = if adopting.is_some() {
        ("AgentLost", "adopted")
    } else {
        ("ExecutorStartFailed", "started")
    };
    let mut handle: Box<dyn Handle> = match started_job {
        Ok(h) => h,
        Err(e) => {
            let msg = said(&e);
            api.status(RunStatus::Failed, fail_reason, &msg, None)
                .await?;
            return Ok(Outcome::Failed(msg));
        }
    };
    crate::timing::mark("execute: job started");
    let started = Instant::now();
    // The job is started before its statuses are written: they are records, and the job's
    // start should not wait for them.
    if !api
        .status(
            RunStatus::Starting,
            if adopting.is_some() {
                "AgentAdopted"
            } else {
                "ExecutorStarting"
            },
            &format!("{job_kind} on the {kind} executor"),
            None,
        )
        .await?
    {
        handle.stop(Duration::from_secs(10)).await?;
        handle.cleanup().await?;
        return Ok(Outcome::Stopped("stopped before it started".into()));
    }
    let job_pid = handle.pid();
    if let Some(pid) = job_pid {
        let (boot, start) = orphans::process_identity(pid).unwrap_or_default();
        let job = handle.describe();
        api.record_executor(|e| {
            e.job = Some(job);
            e.job_pid = Some(pid);
            e.job_start = Some(start);
            e.job_boot_id = Some(boot);
        })
        .await?;
    }
    // Executors that see where the job runs report its statuses themselves.
    let mut events = handle.events();
    let mut running_msg = format!("running ({})", handle.describe());
    if plan.is_service && !plan.job.ports.is_empty() {
        let urls: Vec<String> = plan
            .job
            .ports
            .iter()
            .map(|p| format!("http://127.0.0.1:{p}"))
            .collect();
        running_msg = format!("serving at {}", urls.join(", "));
        if events.is_none() {
            // Where `polyaxon ops service` finds it (on a cluster: through its Service).
            api.record_executor(|e| e.urls = Some(urls)).await?;
        }
    }
    let (first, first_reason) = if events.is_some() {
        running_msg = format!("submitted: {}", handle.describe());
        (RunStatus::Scheduled, "ExecutorSubmitted")
    } else {
        (RunStatus::Running, "ExecutorRunning")
    };
    if !api
        .status(first, first_reason, &running_msg, attempt_meta(attempt))
        .await?
    {
        handle.stop(Duration::from_secs(10)).await?;
        handle.cleanup().await?;
        return Ok(Outcome::Stopped("stopped".into()));
    }

    let tracking = Tracking::start(Track {
        api,
        printer: ctl.printer,
        lines: handle.lines(),
        stdout_metrics: plan.stdout_metrics,
        attempt,
        event_files: ctl.executor.capabilities().event_files,
        dir,
        pid: job_pid,
    });

    let grace = Duration::from_secs(10);
    let mut stop_check = tokio::time::interval(Duration::from_millis(200));
    stop_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let deadline = plan.timeout.map(|t| tokio::time::Instant::now() + t);
    // A supervisor's signals stop its job; an agent's are the agent's (it drains).
    let own_signals = ctl.settings.agent.is_none();
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut exit_code: Option<i32> = None;
    let mut failure_reason: Option<String> = None;
    let outcome = loop {
        tokio::select! {
            exit = handle.wait() => {
                let exit = exit?;
                exit_code = match exit {
                    executor::Exit::Code(c) => Some(c),
                    executor::Exit::Signal(s) => Some(128 + s),
                };
                break if exit.success() {
                    Outcome::Succeeded
                } else {
                    match handle.failure() {
                        Some((reason, message)) => {
                            failure_reason = Some(reason);
                            Outcome::Failed(message)
                        }
                        None => Outcome::Failed(exit.describe()),
                    }
                };
            }
            Some(ev) = async { match events.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                if !api.status(ev.status, &ev.reason, &ev.message, attempt_meta(attempt)).await? {
                    handle.stop(grace).await?;
                    break Outcome::Stopped("stopped on request".into());
                }
            }
            _ = async { match deadline { Some(d) => tokio::time::sleep_until(d).await, None => std::future::pending().await } } => {
                handle.stop(grace).await?;
                break Outcome::Failed(format!("timed out after {} s (termination.timeout)", plan.timeout.unwrap_or_default().as_secs()));
            }
            _ = stop_check.tick() => {
                if api.stop_requested().await.unwrap_or(false) {
                    handle.stop(grace).await?;
                    break Outcome::Stopped("stopped on request".into());
                }
            }
            _ = sigterm.recv(), if own_signals => {
                handle.stop(grace).await?;
                break Outcome::Stopped("the executor was terminated".into());
            }
            _ = sigint.recv(), if own_signals => {
                handle.stop(grace).await?;
                break Outcome::Stopped("interrupted".into());
            }
        }
    };
    handle.cleanup().await?;
    // Every line and every point is stored before the final status.
    tracking.finish().await;
    if matches!(outcome, Outcome::Failed(_)) && attempt < plan.max_retries {
        // A retry records its own status; the failure is recorded either way.
        return Ok(outcome);
    }
    finish::record(
        ctl,
        dir,
        &outcome,
        finish::End {
            failure_reason: failure_reason.as_deref(),
            exit_code,
            attempt,
            took: started.elapsed(),
            cache_key: plan.cache_key.as_deref(),
        },
    )
    .await?;
    Ok(outcome)
}
