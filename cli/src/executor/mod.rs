//! Where jobs run: one trait, an implementation per place (this machine's processes, Docker,
//! Kubernetes). An executor says what it can do ([`Capabilities`]: where the job sees its
//! files, who retries, what an image needs, how event files reach the store) and starts a job,
//! handing back a [`Handle`]: its output lines, its end, a way to stop it, and a cleanup that
//! leaves nothing behind. Controllers decide by capabilities, never by an executor's name.

pub mod docker;
pub mod kubernetes;
pub mod process;

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::mpsc;

pub use crate::client::transport::BoxFuture;
pub use polyaxon_server::api::ExecutorKind;

use crate::settings::Settings;

/// Where a job runs, which decides how it sees its code, its run directory and the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Place {
    /// This machine's processes: host paths, the API on a local port, no image.
    Host,
    /// A container on this machine: an image; the run directory and code mounted at
    /// upstream's paths; the API on this machine's network.
    Container,
    /// Pods of a cluster: an image; the code uploaded and fetched by an init step; the API
    /// must be a server the pods reach.
    Cluster,
}

/// What an image the spec describes (`init.dockerfile`, `build`) needs before the job starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Images {
    /// Nothing: the job does not run in an image (noted, not built).
    Unused,
    /// Built by the local Docker Engine.
    Built,
    /// Built, then pushed to the registry the cluster pulls from.
    Pushed,
}

/// How the job's metric event files (`events/metric/*.plx`) reach the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventFiles {
    /// They are on this machine: tailed here.
    Local,
    /// In the artifacts store the server shares with the job: the server ingests them.
    Server,
    /// Nowhere this process or the server can read them (stdout metrics and the client's API
    /// calls still arrive).
    Unreachable,
}

/// What an executor does, for the controllers to decide by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    pub place: Place,
    /// Failed attempts are retried (`termination.maxRetries`) and the deadline enforced
    /// (`termination.timeout`) where the job runs, not by the controller.
    pub retries_itself: bool,
    pub images: Images,
    pub event_files: EventFiles,
    /// Distributed kinds (`tfjob`, `pytorchjob`, `mpijob`) run here.
    pub distributed: bool,
}

impl Capabilities {
    /// The job runs in an image, with its paths under upstream's context root.
    pub fn in_image(&self) -> bool {
        self.place != Place::Host
    }
}

/// Connects to the executor of `kind` as the settings describe it.
pub async fn connect(kind: ExecutorKind, settings: &Settings) -> anyhow::Result<Box<dyn Executor>> {
    Ok(match kind {
        ExecutorKind::Process => Box::new(process::Process),
        ExecutorKind::Docker => Box::new(docker::DockerExecutor {
            docker: docker::Docker::connect().await?,
        }),
        ExecutorKind::Kubernetes => {
            Box::new(kubernetes::Kubernetes::connect(&settings.kube).await?)
        }
    })
}

/// Ends what a run's job left where it ran, when its supervisor died (a container on this
/// machine; a process is ended by its pid, a cluster's job by the cluster).
pub async fn remove_leftovers(kind: ExecutorKind, uuid: &str) {
    if kind == ExecutorKind::Docker
        && let Ok(d) = docker::Docker::connect().await
    {
        d.remove(uuid).await;
    }
}

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
    pub status: polyaxon_server::api::RunStatus,
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
    fn kind(&self) -> ExecutorKind;
    fn capabilities(&self) -> Capabilities;
    /// The context root (`/plx-context` upstream) as the job sees it, given this machine's.
    fn job_root(&self, host_root: &std::path::Path) -> PathBuf {
        host_root.to_path_buf()
    }
    fn start<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, anyhow::Result<Box<dyn Handle>>>;
    /// Follows a job another process started (an agent lost with its run still running),
    /// its log from after `since` (microseconds); `None` when this executor cannot find a job
    /// it did not start.
    fn attach<'a>(
        &'a self,
        _job: &'a Job,
        _since: Option<i64>,
    ) -> Option<BoxFuture<'a, anyhow::Result<Box<dyn Handle>>>> {
        None
    }
    /// Where runs go beyond this machine (`namespace`, `context`), kept in the run's
    /// `meta_info.executor`.
    fn placement(&self) -> polyaxon_server::api::ExecutorMeta {
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
