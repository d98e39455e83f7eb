//! Jobs as processes on this machine. Each job leads a process group of its own, so stopping
//! it reaches every process it started (a shell's children, a data loader's workers).

use std::time::Duration;

use anyhow::Context;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::mpsc;

use super::{BoxFuture, Executor, Exit, Handle, Job, Line, Stream, pump_lines};
use crate::error::UserError;

pub struct Process;

pub struct ProcessHandle {
    child: tokio::process::Child,
    pid: u32,
    lines: Option<mpsc::Receiver<Line>>,
    exit: Option<Exit>,
}

impl Executor for Process {
    fn kind(&self) -> super::ExecutorKind {
        super::ExecutorKind::Process
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            place: super::Place::Host,
            retries_itself: false,
            images: super::Images::Unused,
            event_files: super::EventFiles::Local,
            distributed: false,
        }
    }

    fn start<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, anyhow::Result<Box<dyn Handle>>> {
        Box::pin(async move {
            let Some((program, args)) = job.argv.split_first() else {
                return Err(UserError::new("the job has no command to run")
                    .hint("give `run.container.command` (and `args`) in the polyaxonfile")
                    .into());
            };
            let mut cmd = tokio::process::Command::new(program);
            cmd.args(args)
                .current_dir(&job.workdir)
                .envs(job.env.iter().map(|(k, v)| (k, v)))
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .process_group(0)
                .kill_on_drop(false);
            let mut child = cmd.spawn().map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::NotFound {
                    format!("`{program}` is not installed here or not on PATH (the process executor runs commands on this machine; `--executor docker` runs them in the image)")
                } else {
                    "check the command in the polyaxonfile".to_string()
                };
                UserError::new(format!("cannot start `{program}`: {e}")).hint(hint)
            })?;
            let pid = child.id().context("the job's process id")?;
            let (tx, rx) = mpsc::channel(4096);
            if let Some(out) = child.stdout.take() {
                tokio::spawn(pump_lines(out, Stream::Stdout, tx.clone()));
            }
            if let Some(err) = child.stderr.take() {
                tokio::spawn(pump_lines(err, Stream::Stderr, tx));
            }
            Ok(Box::new(ProcessHandle {
                child,
                pid,
                lines: Some(rx),
                exit: None,
            }) as Box<dyn Handle>)
        })
    }
}

fn exit_of(st: std::process::ExitStatus) -> Exit {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => Exit::Code(c),
        (None, Some(s)) => Exit::Signal(s),
        _ => Exit::Code(-1),
    }
}

/// Signals the job's whole process group; a group already gone is fine.
fn signal_group(pid: u32, sig: Signal) {
    let _ = killpg(Pid::from_raw(pid as i32), sig);
}

/// Whether any live process of the group is left (zombies, dead but not yet reaped by
/// whoever inherited them, do not count).
pub fn group_alive(pid: u32) -> bool {
    if killpg(Pid::from_raw(pid as i32), None).is_err() {
        return false;
    }
    match group_members(pid) {
        Some(members) => members.iter().any(|m| m.state != 'Z'),
        None => true,
    }
}

/// A process of a job's group, from `/proc/<pid>/stat`.
#[derive(Clone, Debug)]
pub struct Member {
    pub pid: u32,
    pub state: char,
    /// User and system CPU time, in clock ticks.
    pub cpu_ticks: u64,
    /// Resident memory, in pages.
    pub rss_pages: u64,
}

/// The processes whose process group is `pgid` (Linux; `None` elsewhere).
pub fn group_members(pgid: u32) -> Option<Vec<Member>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    let mut out = Vec::new();
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`: comm may hold spaces and parentheses.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() < 22 || f[2].parse::<u32>().ok() != Some(pgid) {
            continue;
        }
        let num = |i: usize| f[i].parse::<u64>().unwrap_or(0);
        out.push(Member {
            pid,
            state: f[0].chars().next().unwrap_or('?'),
            cpu_ticks: num(11) + num(12),
            rss_pages: num(21),
        });
    }
    Some(out)
}

impl Handle for ProcessHandle {
    fn lines(&mut self) -> Option<mpsc::Receiver<Line>> {
        self.lines.take()
    }

    fn wait(&mut self) -> BoxFuture<'_, anyhow::Result<Exit>> {
        Box::pin(async move {
            if let Some(e) = self.exit {
                return Ok(e);
            }
            let st = self.child.wait().await.context("waiting for the job")?;
            let e = exit_of(st);
            self.exit = Some(e);
            Ok(e)
        })
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            signal_group(self.pid, Signal::SIGTERM);
            let deadline = tokio::time::Instant::now() + grace;
            loop {
                if let Ok(Some(st)) = self.child.try_wait() {
                    self.exit.get_or_insert(exit_of(st));
                }
                if self.exit.is_some() && !group_alive(self.pid) {
                    return Ok(());
                }
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            signal_group(self.pid, Signal::SIGKILL);
            let st = self.child.wait().await.context("waiting for the job")?;
            self.exit.get_or_insert(exit_of(st));
            // The rest of the group dies with SIGKILL; give the kernel a moment.
            for _ in 0..50 {
                if !group_alive(self.pid) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(())
        })
    }

    fn cleanup(&mut self) -> BoxFuture<'_, anyhow::Result<()>> {
        Box::pin(async move {
            // Processes the job left behind (daemons, orphaned workers) go with it.
            if group_alive(self.pid) {
                signal_group(self.pid, Signal::SIGKILL);
            }
            if self.exit.is_none()
                && let Ok(st) = self.child.wait().await
            {
                self.exit = Some(exit_of(st));
            }
            Ok(())
        })
    }

    fn pid(&self) -> Option<u32> {
        Some(self.pid)
    }

    fn describe(&self) -> String {
        format!("pid {}", self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(argv: &[&str]) -> Job {
        Job {
            argv: argv.iter().map(|s| s.to_string()).collect(),
            workdir: std::env::temp_dir(),
            env: vec![("GREETING".into(), "hi".into())],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn runs_with_env_and_reports_output_and_exit() {
        let mut h = Process
            .start(&job(&["sh", "-c", "echo $GREETING; echo oops >&2; exit 3"]))
            .await
            .unwrap();
        let mut rx = h.lines().unwrap();
        assert_eq!(h.wait().await.unwrap(), Exit::Code(3));
        let mut got = Vec::new();
        while let Some(l) = rx.recv().await {
            got.push((l.stream, l.text));
        }
        got.sort_by_key(|(s, _)| *s == Stream::Stderr);
        assert_eq!(
            got,
            [
                (Stream::Stdout, "hi".to_string()),
                (Stream::Stderr, "oops".to_string())
            ]
        );
        h.cleanup().await.unwrap();
    }

    #[tokio::test]
    async fn stop_reaches_the_whole_group() {
        // A shell whose child ignores SIGTERM: the grace period ends with SIGKILL for both.
        let mut h = Process
            .start(&job(&["sh", "-c", "trap '' TERM; sleep 30 & wait"]))
            .await
            .unwrap();
        let pid = h.pid().unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        // How long a stop takes is measured by `bench/run_bench.py`.
        h.stop(Duration::from_millis(300)).await.unwrap();
        assert!(!group_alive(pid), "no process of the job is left");
        assert!(matches!(h.wait().await.unwrap(), Exit::Signal(_)));
    }

    #[tokio::test]
    async fn a_missing_program_says_so() {
        let err = Process
            .start(&job(&["definitely-not-a-program-here"]))
            .await
            .err()
            .unwrap();
        let u = err.downcast_ref::<UserError>().unwrap();
        assert!(u.message.contains("cannot start"), "{}", u.message);
        assert!(u.hint.as_deref().unwrap().contains("not installed"));
    }
}
