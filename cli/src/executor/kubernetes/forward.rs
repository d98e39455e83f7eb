//! Port forwarding to a Service through the API server, as `kubectl port-forward svc/…` does:
//! a local listener, and for each connection a ready pod behind the Service, reached over the
//! API's port-forward stream. Each connection looks the pod up again, so a restarted pod (a
//! new name) does not end the forward.

use std::future::Future;
use std::pin::Pin;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, ListParams};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

use super::explain;
use crate::error::UserError;

/// A Service's port and where its pods listen for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    pub name: Option<String>,
    pub port: u16,
    pub target: IntOrString,
}

/// What is behind a Service: the pods' selector and its ports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    pub service: String,
    pub namespace: String,
    pub selector: String,
    pub ports: Vec<ServicePort>,
}

/// Reads `service` in `namespace`.
pub async fn backend(client: &kube::Client, namespace: &str, service: &str) -> Result<Backend> {
    let api: Api<core::Service> = Api::namespaced(client.clone(), namespace);
    let svc = match api.get_opt(service).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            return Err(UserError::new(format!(
                "there is no service `{service}` in namespace `{namespace}`"
            ))
            .hint(format!(
                "`kubectl -n {namespace} get services` lists them (another release name: `-r`; another namespace: `-n`)"
            ))
            .into());
        }
        Err(e) => return Err(explain(e, &format!("reading service `{service}`"))),
    };
    let spec = svc.spec.unwrap_or_default();
    let selector = spec
        .selector
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            UserError::new(format!(
                "service `{service}` selects no pods (it has no selector), so there is nothing to forward to"
            ))
        })?
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let ports = spec
        .ports
        .unwrap_or_default()
        .into_iter()
        .map(|p| ServicePort {
            name: p.name,
            port: p.port as u16,
            target: p.target_port.unwrap_or(IntOrString::Int(p.port)),
        })
        .collect::<Vec<_>>();
    if ports.is_empty() {
        return Err(UserError::new(format!("service `{service}` has no ports")).into());
    }
    Ok(Backend {
        service: service.to_string(),
        namespace: namespace.to_string(),
        selector,
        ports,
    })
}

fn ready(p: &core::Pod) -> bool {
    let st = p.status.as_ref();
    p.metadata.deletion_timestamp.is_none()
        && st.and_then(|s| s.phase.as_deref()) == Some("Running")
        && st
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The newest ready pod matching `selector`, or an error that says what the pods are doing.
pub async fn ready_pod(pods: &Api<core::Pod>, selector: &str, service: &str) -> Result<core::Pod> {
    let list = pods
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| explain(e, &format!("listing the pods of service `{service}`")))?;
    pick(list.items, service)
}

/// The newest ready pod among `pods`.
pub fn pick(pods: Vec<core::Pod>, service: &str) -> Result<core::Pod> {
    let states: Vec<String> = pods
        .iter()
        .map(|p| {
            format!(
                "{} {}",
                p.metadata.name.as_deref().unwrap_or("?"),
                p.status
                    .as_ref()
                    .and_then(|s| s.phase.as_deref())
                    .unwrap_or("Unknown")
            )
        })
        .collect();
    pods.into_iter()
        .filter(ready)
        .max_by(|a, b| {
            a.metadata
                .creation_timestamp
                .cmp(&b.metadata.creation_timestamp)
        })
        .ok_or_else(|| {
            let what = if states.is_empty() {
                "it has no pods".to_string()
            } else {
                format!("none of its pods is ready ({})", states.join(", "))
            };
            UserError::new(format!("service `{service}` cannot be reached: {what}"))
                .hint("wait until it is running (`polyaxon ops statuses -w`, or `kubectl get pods`), then try again")
                .into()
        })
}

/// The port a pod listens on for `target` (a number, or a container port's name).
pub fn pod_port(pod: &core::Pod, target: &IntOrString) -> Result<u16> {
    match target {
        IntOrString::Int(n) => u16::try_from(*n).context("a port out of range"),
        IntOrString::String(name) => pod
            .spec
            .iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port as u16)
            .ok_or_else(|| {
                UserError::new(format!(
                    "pod `{}` has no container port named `{name}`",
                    pod.metadata.name.as_deref().unwrap_or("?")
                ))
                .into()
            }),
    }
}

/// A connection to what is forwarded to.
pub trait Duplex: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Duplex for T {}

pub type Dialed = Pin<Box<dyn Future<Output = Result<Box<dyn Duplex>>> + Send>>;

/// Opens a stream to the ready pod behind `backend`'s `port`, through the API server.
pub fn dialer(
    client: kube::Client,
    backend: Backend,
    port: ServicePort,
) -> impl Fn() -> Dialed + Send + Sync + 'static {
    move || {
        let pods: Api<core::Pod> = Api::namespaced(client.clone(), &backend.namespace);
        let (selector, service, target) = (
            backend.selector.clone(),
            backend.service.clone(),
            port.target.clone(),
        );
        Box::pin(async move {
            let pod = ready_pod(&pods, &selector, &service).await?;
            let name = pod.metadata.name.clone().unwrap_or_default();
            let p = pod_port(&pod, &target)?;
            let mut pf = pods
                .portforward(&name, &[p])
                .await
                .map_err(|e| explain(e, &format!("forwarding to pod `{name}` port {p}")))?;
            let stream = pf
                .take_stream(p)
                .context("the port-forward stream of the pod")?;
            tokio::spawn(async move {
                let _ = pf.join().await;
            });
            Ok(Box::new(stream) as Box<dyn Duplex>)
        })
    }
}

/// Serves `listener`: each connection is joined to a freshly dialed stream until either side
/// closes. Problems of one connection go to `warn` and do not end the forward.
pub async fn serve(
    listener: TcpListener,
    dial: impl Fn() -> Dialed + Send + Sync + 'static,
    warn: impl Fn(String) + Send + Sync + Clone + 'static,
) -> Result<()> {
    let dial = std::sync::Arc::new(dial);
    loop {
        let (mut local, peer) = listener.accept().await.context("accepting a connection")?;
        let dial = dial.clone();
        let warn = warn.clone();
        tokio::spawn(async move {
            match dial().await {
                Ok(remote) => {
                    if let Err(e) = join(&mut local, remote).await
                        && e.kind() != std::io::ErrorKind::ConnectionReset
                        && e.kind() != std::io::ErrorKind::BrokenPipe
                    {
                        warn(format!("connection from {peer}: {e}"));
                    }
                }
                Err(e) => warn(format!(
                    "connection from {peer} not forwarded: {}",
                    crate::error::said(&e)
                )),
            }
        });
    }
}

/// How long the pod's side stays open after the local side stops sending.
const HALF_CLOSE_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Copies both ways until the pod's side ends. The local side closing its writing half is not
/// passed on at once: through the API server that would close the whole stream (the
/// port-forward protocol has no half-close), and a client that sends its request, shuts down
/// writing, then reads the answer (`nc -N`, HTTP/1.0 tools) would lose the answer. The pod's
/// side gets `HALF_CLOSE_GRACE` to answer, so a client that went away for good does not keep
/// a stream to a keep-alive server open.
async fn join(local: &mut tokio::net::TcpStream, remote: Box<dyn Duplex>) -> std::io::Result<()> {
    let (mut lr, mut lw) = local.split();
    let (mut rr, mut rw) = tokio::io::split(remote);
    let up = async {
        tokio::io::copy(&mut lr, &mut rw).await?;
        rw.flush().await?;
        tokio::time::sleep(HALF_CLOSE_GRACE).await;
        Ok(())
    };
    let down = async {
        tokio::io::copy(&mut rr, &mut lw).await?;
        lw.shutdown().await
    };
    tokio::select! {
        r = up => r,
        r = down => r,
    }
}

/// Binds `address:port`, saying what to do when the port is taken.
pub async fn bind(address: &str, port: u16) -> Result<TcpListener> {
    TcpListener::bind((address, port)).await.map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::AddrInUse {
            format!("something else listens on {address}:{port}: choose another port with `--port`")
        } else {
            "check `--address`".to_string()
        };
        UserError::new(format!("cannot listen on {address}:{port}: {e}"))
            .hint(hint)
            .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::AsyncReadExt;

    fn pod(name: &str, phase: &str, ready: bool, created: &str) -> core::Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "creationTimestamp": created},
            "spec": {"containers": [{"name": "main", "image": "i", "ports": [{"name": "http", "containerPort": 8888}]}]},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]}
        }))
        .unwrap()
    }

    #[test]
    fn the_newest_ready_pod_is_picked_and_ports_resolved() {
        let pods = vec![
            pod("a", "Running", true, "2026-11-24T09:00:00Z"),
            pod("b", "Running", true, "2026-11-24T10:00:00Z"),
            pod("c", "Running", false, "2026-11-24T11:00:00Z"),
            pod("d", "Pending", false, "2026-11-24T12:00:00Z"),
        ];
        let p = pick(pods, "svc").unwrap();
        assert_eq!(p.metadata.name.as_deref(), Some("b"));
        assert_eq!(pod_port(&p, &IntOrString::Int(80)).unwrap(), 80);
        assert_eq!(
            pod_port(&p, &IntOrString::String("http".into())).unwrap(),
            8888
        );
        let e = pod_port(&p, &IntOrString::String("grpc".into())).unwrap_err();
        assert!(e.to_string().contains("no container port named `grpc`"));
        let e = pick(
            vec![pod("d", "Pending", false, "2026-11-24T12:00:00Z")],
            "svc",
        )
        .unwrap_err()
        .downcast::<UserError>()
        .unwrap();
        assert!(
            e.message.contains("none of its pods is ready (d Pending)"),
            "{}",
            e.message
        );
        let e = pick(vec![], "svc").unwrap_err().to_string();
        assert!(e.contains("it has no pods"), "{e}");
    }

    /// The API's port-forward stream: closing its writing half closes all of it.
    struct WholeClose {
        inner: tokio::io::DuplexStream,
        closed: bool,
    }

    impl AsyncRead for WholeClose {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if self.closed {
                return std::task::Poll::Ready(Ok(()));
            }
            Pin::new(&mut self.inner).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for WholeClose {
        fn poll_write(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        }
        fn poll_flush(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            Pin::new(&mut self.inner).poll_flush(cx)
        }
        fn poll_shutdown(
            mut self: Pin<&mut Self>,
            cx: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            self.closed = true;
            Pin::new(&mut self.inner).poll_shutdown(cx)
        }
    }

    /// A pod that answers a request line a little later stands behind a stream that closes
    /// whole; the forward joins local connections to it (the answer arrives even when the
    /// client shuts down writing first), and a connection that cannot be dialed is refused
    /// without ending the forward.
    #[tokio::test]
    async fn connections_are_joined_to_dialed_streams() {
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let c = calls.clone();
        let dial = move || -> Dialed {
            let n = c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Box::pin(async move {
                if n == 1 {
                    return Err(
                        UserError::new("service `s` cannot be reached: it has no pods").into(),
                    );
                }
                let (ours, pod) = tokio::io::duplex(4096);
                tokio::spawn(async move {
                    use tokio::io::AsyncBufReadExt;
                    let mut pod = tokio::io::BufReader::new(pod);
                    let mut line = String::new();
                    if pod.read_line(&mut line).await.is_ok() {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        let _ = pod.get_mut().write_all(line.as_bytes()).await;
                    }
                });
                Ok(Box::new(WholeClose {
                    inner: ours,
                    closed: false,
                }) as Box<dyn Duplex>)
            })
        };
        let warnings = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
        let w = warnings.clone();
        let listener = bind("127.0.0.1", 0).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, dial, move |m| w.lock().unwrap().push(m)));
        let talk = |msg: &'static [u8]| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(msg).await.unwrap();
            s.shutdown().await.unwrap();
            let mut got = vec![];
            let _ = s.read_to_end(&mut got).await;
            got
        };
        // Sent, writing shut down, then the answer read: it arrives.
        assert_eq!(talk(b"first\n").await, b"first\n");
        assert_eq!(talk(b"refused\n").await, b"", "the failed dial closes it");
        assert_eq!(talk(b"third\n").await, b"third\n", "the forward goes on");
        let w = warnings.lock().unwrap().clone();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(
            w[0].contains("not forwarded") && w[0].contains("no pods"),
            "{w:?}"
        );
        // A taken port says what to do.
        let e = bind("127.0.0.1", addr.port()).await.unwrap_err();
        let u = e.downcast_ref::<UserError>().unwrap();
        assert!(u.hint.as_deref().unwrap().contains("--port"), "{u:?}");
    }
}
