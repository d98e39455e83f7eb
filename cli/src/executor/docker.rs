//! Jobs in Docker containers (through the Engine's API, bollard). A run's directory is mounted
//! at upstream's path (`/plx-context/artifacts/<uuid>`), the container shares this machine's
//! network (so the job reaches the API on `127.0.0.1` and a service's ports are this
//! machine's), runs as the calling user (files it writes stay yours), and is removed when the
//! job ends: no container is left behind.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, Result};
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig};
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateContainerOptionsBuilder, LogsOptionsBuilder,
    RemoveContainerOptionsBuilder, StopContainerOptionsBuilder, WaitContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tokio::sync::mpsc;

use super::{BoxFuture, Executor, Exit, Handle, Job, Line, Stream, now_micros};
use crate::build::BuildSpec;
use crate::error::UserError;

/// Where the job sees its context inside the container.
pub const CONTEXT_ROOT: &str = "/plx-context";

/// A connection to the Docker Engine.
#[derive(Clone)]
pub struct Docker {
    pub api: bollard::Docker,
}

/// The container of a run.
pub fn container_name(uuid: &str) -> String {
    format!("plx-operation-{uuid}")
}

impl Docker {
    /// Connects (`DOCKER_HOST`, else the local socket) and checks that the Engine answers.
    pub async fn connect() -> Result<Docker> {
        let fail = |e: String| {
            UserError::new(format!("cannot reach the Docker Engine: {e}"))
                .hint("start it (e.g. `sudo systemctl start docker`, or `dockerd &`), or use `--executor process`")
        };
        let api =
            bollard::Docker::connect_with_local_defaults().map_err(|e| fail(e.to_string()))?;
        let api = api
            .negotiate_version()
            .await
            .map_err(|e| fail(e.to_string()))?;
        api.ping().await.map_err(|e| fail(e.to_string()))?;
        Ok(Docker { api })
    }

    pub async fn image_exists(&self, image: &str) -> bool {
        self.api.inspect_image(image).await.is_ok()
    }

    /// Builds `spec` unless an image with its tag exists; every line of the build's output
    /// goes to `out`. Returns the tag and whether it was built now.
    pub async fn build(
        &self,
        spec: &BuildSpec,
        out: &mpsc::Sender<Line>,
    ) -> Result<(String, bool)> {
        let tag =
            tokio::task::block_in_place(|| spec.tag()).context("hashing the build's inputs")?;
        if !spec.no_cache && self.image_exists(&tag).await {
            return Ok((tag, false));
        }
        let body = tokio::task::block_in_place(|| spec.context_tar())
            .context("packing the build context")?;
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile(crate::build::DOCKERFILE_NAME)
            .t(&tag)
            .rm(true)
            .forcerm(true)
            .nocache(spec.no_cache)
            .build();
        let mut stream = self
            .api
            .build_image(opts, None, Some(bollard::body_full(body.into())));
        let mut last_step = String::new();
        let mut pending = String::new();
        let send = |text: String| {
            let tx = out.clone();
            async move {
                let _ = tx
                    .send(Line {
                        stream: Stream::Stdout,
                        text,
                        at: now_micros(),
                    })
                    .await;
            }
        };
        while let Some(item) = stream.next().await {
            let info = match item {
                Ok(i) => i,
                Err(e) => {
                    return Err(UserError::new(format!(
                        "the image build failed{}: {e}",
                        at_step(&last_step)
                    ))
                    .hint("fix the step in `init.dockerfile` (or the Dockerfile) and run again")
                    .into());
                }
            };
            if let Some(s) = info.stream {
                pending.push_str(&s);
                while let Some(i) = pending.find('\n') {
                    let line: String = pending.drain(..=i).collect();
                    let line = line.trim_end().to_string();
                    if line.starts_with("Step ") {
                        last_step = line.clone();
                    }
                    if !line.is_empty() {
                        send(line).await;
                    }
                }
            }
            if let Some(d) = info.error_detail {
                let msg = d.message.unwrap_or_else(|| "unknown error".into());
                send(format!("error: {msg}")).await;
                return Err(UserError::new(format!(
                    "the image build failed{}: {msg}",
                    at_step(&last_step)
                ))
                .hint("fix the step in `init.dockerfile` (or the Dockerfile) and run again")
                .into());
            }
        }
        if !pending.trim().is_empty() {
            send(pending.trim_end().to_string()).await;
        }
        Ok((tag, true))
    }

    /// Removes a run's container if there is one (whatever state it is in).
    pub async fn remove(&self, uuid: &str) {
        let _ = self
            .api
            .remove_container(
                &container_name(uuid),
                Some(
                    RemoveContainerOptionsBuilder::default()
                        .force(true)
                        .v(true)
                        .build(),
                ),
            )
            .await;
    }
}

fn at_step(step: &str) -> String {
    if step.is_empty() {
        String::new()
    } else {
        format!(" at `{step}`")
    }
}

/// The docker executor.
pub struct DockerExecutor {
    pub docker: Docker,
}

pub struct DockerHandle {
    docker: Docker,
    name: String,
    pid: Option<u32>,
    lines: Option<mpsc::Receiver<Line>>,
    exit: Option<Exit>,
    /// Why it ended, when the engine says more than the exit code (reason, message).
    failure: Option<(String, String)>,
}

/// What a container's end says beyond its exit code: the kernel's OOM killer, or a signal
/// (the engine reports 128 + the signal: 137 for a `kill -9` or `docker kill`).
fn container_failure(code: i64, oom_killed: bool) -> Option<(String, String)> {
    if oom_killed {
        return Some((
            "OOMKilled".into(),
            format!(
                "the container ran out of memory and the kernel ended it (exit code {code}): raise its memory limit (`resources.limits.memory`) or use less"
            ),
        ));
    }
    let signal = i32::try_from(code - 128)
        .ok()
        .filter(|s| (1..=64).contains(s))?;
    let name = nix::sys::signal::Signal::try_from(signal)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {signal}"));
    Some((
        "Killed".into(),
        format!(
            "the container was killed by {name} (exit code {code}){}",
            if signal == 9 {
                ", from outside the run (`docker kill`, `kill -9`, or the engine)"
            } else {
                ""
            }
        ),
    ))
}

/// Parses a CPU quantity (`2`, `500m`, `1.5`) into nano-CPUs.
fn nano_cpus(q: &str) -> Option<i64> {
    let q = q.trim();
    let cores = match q.strip_suffix('m') {
        Some(m) => m.parse::<f64>().ok()? / 1000.0,
        None => q.parse::<f64>().ok()?,
    };
    Some((cores * 1e9) as i64)
}

/// Parses a memory quantity (`512Mi`, `2G`, `1e9`) into bytes.
fn bytes(q: &str) -> Option<i64> {
    let q = q.trim();
    let units: &[(&str, f64)] = &[
        ("Ki", 1024.0),
        ("Mi", 1024f64.powi(2)),
        ("Gi", 1024f64.powi(3)),
        ("Ti", 1024f64.powi(4)),
        ("k", 1e3),
        ("K", 1e3),
        ("M", 1e6),
        ("G", 1e9),
        ("T", 1e12),
    ];
    for (u, f) in units {
        if let Some(n) = q.strip_suffix(u) {
            return Some((n.parse::<f64>().ok()? * f) as i64);
        }
    }
    q.parse::<f64>().ok().map(|n| n as i64)
}

impl Executor for DockerExecutor {
    fn kind(&self) -> super::ExecutorKind {
        super::ExecutorKind::Docker
    }

    fn capabilities(&self) -> super::Capabilities {
        super::Capabilities {
            place: super::Place::Container,
            retries_itself: false,
            images: super::Images::Built,
            event_files: super::EventFiles::Local,
            distributed: false,
        }
    }

    fn job_root(&self, _host_root: &std::path::Path) -> std::path::PathBuf {
        std::path::PathBuf::from(CONTEXT_ROOT)
    }

    fn start<'a>(&'a self, job: &'a Job) -> BoxFuture<'a, Result<Box<dyn Handle>>> {
        Box::pin(async move {
            let Some(image) = job.image.clone().filter(|i| !i.is_empty()) else {
                return Err(UserError::new("the container has no `image`")
                    .hint("give `run.container.image` (or an `init.dockerfile` to build one)")
                    .into());
            };
            let d = &self.docker;
            if !d.image_exists(&image).await {
                return Err(UserError::new(format!("the image `{image}` is not on this machine"))
                    .hint("build it (`docker build -t …`), or describe it with `init: [{dockerfile: …}]` so the run builds it")
                    .into());
            }
            let name = container_name(&job.uuid);
            d.remove(&job.uuid).await;
            let (command, args) = job.argv.split_at(job.command_len.min(job.argv.len()));
            let mut gpu = 0i64;
            let mut host = HostConfig {
                network_mode: Some("host".into()),
                binds: Some(
                    job.mounts
                        .iter()
                        .map(|(h, c)| format!("{}:{}", h.display(), c.display()))
                        .collect(),
                ),
                init: Some(true),
                ..Default::default()
            };
            for (k, v) in &job.limits {
                match k.as_str() {
                    "cpu" => host.nano_cpus = nano_cpus(v),
                    "memory" => host.memory = bytes(v),
                    "nvidia.com/gpu" | "amd.com/gpu" => gpu = v.trim().parse().unwrap_or(0),
                    _ => {}
                }
            }
            let mut env: Vec<String> = job.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
            if gpu > 0 {
                host.device_requests = Some(vec![DeviceRequest {
                    driver: Some("nvidia".into()),
                    count: Some(gpu),
                    capabilities: Some(vec![vec!["gpu".into()]]),
                    ..Default::default()
                }]);
            } else {
                env.push("NVIDIA_VISIBLE_DEVICES=none".into());
            }
            let labels: HashMap<String, String> = job.labels.iter().cloned().collect();
            let body = ContainerCreateBody {
                image: Some(image.clone()),
                entrypoint: (!command.is_empty()).then(|| command.to_vec()),
                cmd: (!args.is_empty()).then(|| args.to_vec()),
                env: Some(env),
                working_dir: Some(job.workdir.display().to_string()),
                labels: Some(labels),
                user: job.user.clone(),
                host_config: Some(host),
                ..Default::default()
            };
            d.api
                .create_container(
                    Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                    body,
                )
                .await
                .map_err(|e| UserError::new(format!("cannot create the container: {e}")))?;
            if let Err(e) = d.api.start_container(&name, None).await {
                d.remove(&job.uuid).await;
                return Err(UserError::new(format!("cannot start the container: {e}"))
                    .hint("check the command and the image (`docker run` it by hand to see)")
                    .into());
            }
            let pid = d
                .api
                .inspect_container(&name, None)
                .await
                .ok()
                .and_then(|i| i.state)
                .and_then(|s| s.pid)
                .and_then(|p| u32::try_from(p).ok())
                .filter(|p| *p > 0);
            let (tx, rx) = mpsc::channel(4096);
            let logs = d.api.logs(
                &name,
                Some(
                    LogsOptionsBuilder::default()
                        .follow(true)
                        .stdout(true)
                        .stderr(true)
                        .build(),
                ),
            );
            tokio::spawn(pump_docker_logs(Box::pin(logs), tx));
            Ok(Box::new(DockerHandle {
                docker: d.clone(),
                name,
                pid,
                lines: Some(rx),
                exit: None,
                failure: None,
            }) as Box<dyn Handle>)
        })
    }
}

type LogStream = std::pin::Pin<
    Box<
        dyn futures_util::Stream<
                Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
            > + Send,
    >,
>;

/// Splits the container's output into lines, per stream.
async fn pump_docker_logs(mut logs: LogStream, tx: mpsc::Sender<Line>) {
    let mut bufs: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    while let Some(item) = logs.next().await {
        let Ok(out) = item else { break };
        let (idx, stream, bytes) = match out {
            bollard::container::LogOutput::StdOut { message } => (0, Stream::Stdout, message),
            bollard::container::LogOutput::StdErr { message } => (1, Stream::Stderr, message),
            bollard::container::LogOutput::Console { message } => (0, Stream::Stdout, message),
            bollard::container::LogOutput::StdIn { .. } => continue,
        };
        bufs[idx].extend_from_slice(&bytes);
        while let Some(i) = bufs[idx].iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = bufs[idx].drain(..=i).collect();
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            if tx
                .send(Line {
                    stream,
                    text,
                    at: now_micros(),
                })
                .await
                .is_err()
            {
                return;
            }
        }
    }
    for (idx, stream) in [(0, Stream::Stdout), (1, Stream::Stderr)] {
        if !bufs[idx].is_empty() {
            let text = String::from_utf8_lossy(&bufs[idx]).to_string();
            let _ = tx
                .send(Line {
                    stream,
                    text,
                    at: now_micros(),
                })
                .await;
        }
    }
}

impl Handle for DockerHandle {
    fn lines(&mut self) -> Option<mpsc::Receiver<Line>> {
        self.lines.take()
    }

    fn wait(&mut self) -> BoxFuture<'_, Result<Exit>> {
        Box::pin(async move {
            if let Some(e) = self.exit {
                return Ok(e);
            }
            let mut s = self.docker.api.wait_container(
                &self.name,
                Some(
                    WaitContainerOptionsBuilder::default()
                        .condition("not-running")
                        .build(),
                ),
            );
            let code = match s.next().await {
                Some(Ok(r)) => r.status_code,
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
                Some(Err(e)) => {
                    return Err(anyhow::Error::new(e).context("waiting for the container"));
                }
                None => {
                    return Err(UserError::new(
                        "the Docker Engine ended the container's wait without a status",
                    )
                    .into());
                }
            };
            if code != 0 {
                let oom = self
                    .docker
                    .api
                    .inspect_container(&self.name, None)
                    .await
                    .ok()
                    .and_then(|i| i.state)
                    .and_then(|s| s.oom_killed)
                    .unwrap_or(false);
                self.failure = container_failure(code, oom);
            }
            let e = Exit::Code(code as i32);
            self.exit = Some(e);
            Ok(e)
        })
    }

    fn stop(&mut self, grace: Duration) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            let _ = self
                .docker
                .api
                .stop_container(
                    &self.name,
                    Some(
                        StopContainerOptionsBuilder::default()
                            .t(grace.as_secs().max(1) as i32)
                            .build(),
                    ),
                )
                .await;
            let _ = self.wait().await;
            Ok(())
        })
    }

    fn cleanup(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.docker
                .api
                .remove_container(
                    &self.name,
                    Some(
                        RemoveContainerOptionsBuilder::default()
                            .force(true)
                            .v(true)
                            .build(),
                    ),
                )
                .await
                .ok();
            Ok(())
        })
    }

    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn failure(&self) -> Option<(String, String)> {
        self.failure.clone()
    }

    fn describe(&self) -> String {
        format!("container {}", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_s_end_is_explained() {
        let (reason, msg) = container_failure(137, true).unwrap();
        assert_eq!(reason, "OOMKilled");
        assert!(msg.contains("memory limit"), "{msg}");
        let (reason, msg) = container_failure(137, false).unwrap();
        assert_eq!(reason, "Killed");
        assert!(
            msg.contains("SIGKILL") && msg.contains("exit code 137"),
            "{msg}"
        );
        assert!(container_failure(143, false).unwrap().1.contains("SIGTERM"));
        // A job's own exit code says it all.
        assert_eq!(container_failure(1, false), None);
        assert_eq!(container_failure(255, false), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(nano_cpus("500m"), Some(500_000_000));
        assert_eq!(nano_cpus("2"), Some(2_000_000_000));
        assert_eq!(bytes("512Mi"), Some(512 * 1024 * 1024));
        assert_eq!(bytes("1G"), Some(1_000_000_000));
        assert_eq!(bytes("100"), Some(100));
        assert_eq!(bytes("lots"), None);
    }
}
