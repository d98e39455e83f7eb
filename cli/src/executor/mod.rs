//! Where jobs run: one trait, an implementation per place (this machine's processes, Docker).
//! An executor starts a job and hands back a [`Handle`]: its output lines, its end, a way to
//! stop it, and a cleanup that leaves nothing behind.

pub mod docker;
pub mod kubernetes;
pub mod process;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use crate::client::transport::BoxFuture;

/// A job, ready to run.
#[derive(Clone, Debug, Default)]
pub struct Job {
    pub uuid: String,
    /// The program and its arguments (no shell in between).
    pub argv: Vec<String>,
    /// How many of `argv` are the container's `command` (the rest are its `args`): images
    /// take the first as their entrypoint.
    pub command_len: usize,
    pub env: Vec<(String, String)>,
    /// The working directory, on the host.
    pub workdir: PathBuf,
    /// The image, for executors that use one.
    pub image: Option<String>,
    /// The run's directory on the host (outputs, events, logs).
    pub run_dir: PathBuf,
    /// Ports a service listens on.
    pub ports: Vec<u16>,
    /// Resource limits as the polyaxonfile gave them (`cpu`, `memory`, `nvidia.com/gpu`…).
    pub limits: Vec<(String, String)>,
    /// Labels for what the executor creates.
    pub labels: Vec<(String, String)>,
    /// Directories of this machine to mount (host, inside), for executors that isolate.
    pub mounts: Vec<(PathBuf, PathBuf)>,
    /// The user to run as (`uid:gid`), for executors that can choose.
    pub user: Option<String>,
    /// The compiled spec, for executors that describe the whole run (Kubernetes).
    pub spec: Option<std::sync::Arc<polyaxonfile::CompiledOperation>>,
    pub name: Option<String>,
    pub owner: String,
    pub project: String,
    /// `image` was built for this run (it replaces the spec's).
    pub image_built: bool,
    /// The code was uploaded to the run's artifacts (`code/`), for executors without this
    /// machine's files.
    pub uploaded_code: bool,
}

/// A status the executor learnt from where the job runs (Kubernetes: unschedulable, pulling…).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusEvent {
    pub status: String,
    pub reason: String,
    pub message: String,
}

/// Which stream a line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// A line of a job's output, with the time it was read.
#[derive(Clone, Debug)]
pub struct Line {
    pub stream: Stream,
    pub text: String,
    /// Microseconds since the epoch.
    pub at: i64,
}

/// How a job ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    pub fn success(&self) -> bool {
        *self == Exit::Code(0)
    }

    /// For status messages: "exit code 3", "killed by signal 9 (SIGKILL)".
    pub fn describe(&self) -> String {
        match self {
            Exit::Code(c) => format!("exit code {c}"),
            Exit::Signal(s) => {
                let name = nix::sys::signal::Signal::try_from(*s)
                    .map(|sig| format!(" ({})", sig.as_str()))
                    .unwrap_or_default();
                format!("killed by signal {s}{name}")
            }
        }
    }
}

/// A started job.
pub trait Handle: Send {
    /// The job's output lines, until both streams end (taken once).
    fn lines(&mut self) -> Option<mpsc::Receiver<Line>>;
    /// Waits for the end.
    fn wait(&mut self) -> BoxFuture<'_, anyhow::Result<Exit>>;
    /// Asks the job to stop, then forces it after `grace`.
    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, anyhow::Result<()>>;
    /// Removes whatever is left (processes, containers).
    fn cleanup(&mut self) -> BoxFuture<'_, anyhow::Result<()>>;
    /// The job's process on this machine, when it has one (for resource sampling).
    fn pid(&self) -> Option<u32>;
    /// What to show as where it runs (`pid 1234`, `container 3f2a…`).
    fn describe(&self) -> String;
    /// Statuses seen where the job runs, before its end (taken once; none for local jobs).
    fn events(&mut self) -> Option<mpsc::Receiver<StatusEvent>> {
        None
    }
    /// Why the job failed, when the place it ran says more than an exit code (reason, message).
    fn failure(&self) -> Option<(String, String)> {
        None
    }
}

/// Starts jobs somewhere.
pub trait Executor: Send + Sync {
    fn name(&self) -> &'static str;
    /// The context root (`/plx-context` upstream) as the job sees it, given this machine's.
    fn job_root(&self, host_root: &std::path::Path) -> PathBuf {
        host_root.to_path_buf()
    }
    fn start<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, anyhow::Result<Box<dyn Handle>>>;
    /// Where runs go beyond this machine (kept in the run's `meta_info.executor`).
    fn placement(&self) -> serde_json::Map<String, serde_json::Value> {
        Default::default()
    }
}

/// The longest line kept whole; longer ones are cut into pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// Reads `r` line by line into `tx` (lossy UTF-8, long lines cut, `\r` progress bars split).
pub async fn pump_lines<R>(r: R, stream: Stream, tx: mpsc::Sender<Line>)
where
    R: tokio::io::AsyncRead + Unpin,
{
    use tokio::io::AsyncBufReadExt;
    let mut reader = tokio::io::BufReader::with_capacity(64 * 1024, r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut buf)
            .await
        {
            Ok(n) => n,
            Err(_) => break,
        };
        if n == 0 {
            break;
        }
        while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            buf.pop();
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        let at = crate::executor::now_micros();
        if tx.send(Line { stream, text, at }).await.is_err() {
            break;
        }
    }
}

use tokio::io::AsyncReadExt as _;

pub fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}
