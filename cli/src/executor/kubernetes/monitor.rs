//! Following a submitted run: two watches (its pods by label, its main object by name) turned
//! into run statuses and log followers, reconnecting with backoff.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1 as core;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use tokio::sync::{mpsc, watch};

use super::{ObjRef, follow_logs, status};
use crate::executor::{Exit, Line};

pub(super) struct Monitor {
    pub(super) client: kube::Client,
    pub(super) namespace: String,
    pub(super) selector: String,
    pub(super) main: ObjRef,
    pub(super) main_container: String,
    pub(super) lines: mpsc::Sender<Line>,
    pub(super) events: mpsc::Sender<crate::executor::StatusEvent>,
    pub(super) end: watch::Sender<Option<Exit>>,
    pub(super) failure: Arc<Mutex<Option<(String, String)>>>,
    pub(super) prefix: bool,
    /// Log lines up to this time are stored already (an adopted run).
    pub(super) since: Option<jiff::Timestamp>,
}

/// What the watchers have seen of the run: its pods by name and its main object.
#[derive(Default)]
pub(super) struct Seen {
    pods: BTreeMap<String, core::Pod>,
    /// Pods of a relist in progress (between `Init` and `InitDone`).
    pods_relist: Option<BTreeMap<String, core::Pod>>,
    pods_listed: bool,
    main: Option<DynamicObject>,
    main_relist: Option<Option<DynamicObject>>,
    main_listed: bool,
}

impl Seen {
    fn pod_event(&mut self, e: watcher::Event<core::Pod>) {
        let key = |p: &core::Pod| p.metadata.name.clone().unwrap_or_default();
        match e {
            watcher::Event::Apply(p) => {
                self.pods.insert(key(&p), p);
            }
            watcher::Event::Delete(p) => {
                self.pods.remove(&key(&p));
            }
            watcher::Event::Init => self.pods_relist = Some(BTreeMap::new()),
            watcher::Event::InitApply(p) => {
                self.pods_relist
                    .get_or_insert_with(BTreeMap::new)
                    .insert(key(&p), p);
            }
            watcher::Event::InitDone => {
                self.pods = self.pods_relist.take().unwrap_or_default();
                self.pods_listed = true;
            }
        }
    }

    fn main_event(&mut self, e: watcher::Event<DynamicObject>) {
        match e {
            watcher::Event::Apply(o) => self.main = Some(o),
            watcher::Event::Delete(_) => self.main = None,
            watcher::Event::Init => self.main_relist = Some(None),
            watcher::Event::InitApply(o) => self.main_relist = Some(Some(o)),
            watcher::Event::InitDone => {
                self.main = self.main_relist.take().flatten();
                self.main_listed = true;
            }
        }
    }
}

/// The HTTP status an API error of a watch carries.
pub(super) fn watch_status(e: &watcher::Error) -> Option<u16> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => Some(s.code),
        watcher::Error::WatchError(s) => Some(s.code),
        _ => None,
    }
}

/// Follows a run through two watches (its pods by label, its main object by name) and turns
/// each change into statuses and log followers. The watches reconnect with backoff, relisting
/// when the API server says their position is gone.
pub(super) async fn monitor(m: Monitor) {
    use kube::runtime::WatchStreamExt;
    let pods: Api<core::Pod> = Api::namespaced(m.client.clone(), &m.namespace);
    let main_api = match m.main.api(&m.client) {
        Ok(a) => a,
        Err(_) => return,
    };
    let mut pod_events =
        watcher::watcher(pods.clone(), watcher::Config::default().labels(&m.selector))
            .default_backoff()
            .boxed();
    let mut main_events = watcher::watcher(
        main_api,
        watcher::Config::default().fields(&format!("metadata.name={}", m.main.name)),
    )
    .default_backoff()
    .boxed();
    let mut seen = Seen::default();
    let mut last: Option<status::State> = None;
    let mut followed: HashMap<(String, String), tokio::task::JoinHandle<()>> = HashMap::new();
    // Errors in a row, per watch (pods, main object).
    let mut errors = [0u32; 2];
    let fail = |reason: &str, message: String| {
        *m.failure.lock().expect("not poisoned") = Some((reason.to_string(), message));
        let _ = m.end.send(Some(Exit::Code(1)));
    };
    loop {
        let failed = tokio::select! {
            e = pod_events.next() => match e {
                Some(Ok(e)) => { seen.pod_event(e); errors[0] = 0; None }
                Some(Err(e)) => Some((0, "pods", e)),
                None => {
                    fail("WatchEnded", "the watch of the run's pods ended".into());
                    return;
                }
            },
            e = main_events.next() => match e {
                Some(Ok(e)) => { seen.main_event(e); errors[1] = 0; None }
                Some(Err(e)) => Some((1, m.main.kind.as_str(), e)),
                None => {
                    fail("WatchEnded", format!("the watch of {} ended", m.main.describe()));
                    return;
                }
            },
        };
        if let Some((which, what, e)) = failed {
            if watch_status(&e) == Some(403) {
                // No retry fixes permissions: say what is missing.
                drain(followed).await;
                fail(
                    "Forbidden",
                    format!(
                        "this identity may not watch the run's {what} in namespace {}: {e}; the executor needs get, list and watch on pods and its workloads (the Role `polyaxon admin deploy` creates has them)",
                        m.namespace
                    ),
                );
                return;
            }
            errors[which] += 1;
            // The API being away for a while is not the run failing.
            if errors[which] == 1 || errors[which].is_multiple_of(30) {
                let _ = m
                    .events
                    .send(crate::executor::StatusEvent {
                        status: polyaxon_server::api::RunStatus::Warning,
                        reason: "ClusterUnreachable".into(),
                        message: format!("watching the run's {what}: {e}"),
                    })
                    .await;
            }
            continue;
        }
        if !(seen.pods_listed && seen.main_listed) {
            continue;
        }
        // Logs of every container that has started (init ones included), followed once.
        for (name, pod) in &seen.pods {
            for c in started_containers(pod) {
                let key = (name.clone(), c.clone());
                if followed.contains_key(&key) {
                    continue;
                }
                let prefix = m.prefix.then(|| {
                    let short = pod_short(name, &m.main.name);
                    format!("[{short}/{c}] ")
                });
                followed.insert(
                    key,
                    tokio::spawn(follow_logs(
                        pods.clone(),
                        name.clone(),
                        c,
                        prefix,
                        m.lines.clone(),
                        m.since,
                    )),
                );
            }
        }
        let Some(main) = &seen.main else {
            // Deleted under us (someone else's `kubectl delete`).
            let f = (
                "Deleted".to_string(),
                format!("{} was deleted from the cluster", m.main.describe()),
            );
            *m.failure.lock().expect("not poisoned") = Some(f);
            drain(followed).await;
            let _ = m.end.send(Some(Exit::Signal(9)));
            return;
        };
        let pod_list: Vec<core::Pod> = seen.pods.values().cloned().collect();
        let state = status::assess(
            &m.main.kind,
            main.data.get("status"),
            &pod_list,
            &m.main_container,
        );
        if last.as_ref() != Some(&state) {
            if !state.is_done() {
                let (st, reason, message) = state.status();
                let _ = m
                    .events
                    .send(crate::executor::StatusEvent {
                        status: st,
                        reason,
                        message,
                    })
                    .await;
            }
            last = Some(state.clone());
        }
        match state {
            status::State::Succeeded => {
                drain(followed).await;
                let _ = m.end.send(Some(Exit::Code(0)));
                return;
            }
            status::State::Failed {
                reason,
                message,
                exit_code,
            } => {
                *m.failure.lock().expect("not poisoned") = Some((reason, message));
                // Log streams of failed pods end on their own; do not wait for pods that
                // will never start (image pull errors).
                let _ = tokio::time::timeout(Duration::from_secs(5), drain(followed)).await;
                let _ = m
                    .end
                    .send(Some(Exit::Code(exit_code.filter(|c| *c != 0).unwrap_or(1))));
                return;
            }
            _ => {}
        }
    }
}

pub(super) async fn drain(followed: HashMap<(String, String), tokio::task::JoinHandle<()>>) {
    for (_, t) in followed {
        let _ = t.await;
    }
}

/// `worker-0` of `plx-operation-…-worker-0`, `x7k2p` of a Job's `plx-operation-…-x7k2p`.
pub(super) fn pod_short(pod: &str, owner: &str) -> String {
    pod.strip_prefix(owner)
        .map(|s| s.trim_start_matches('-'))
        .filter(|s| !s.is_empty())
        .unwrap_or(pod)
        .to_string()
}

/// Containers of a pod that have left `waiting` (so their logs can be read); not the files'
/// sidecar, whose lines are not the run's.
pub(super) fn started_containers(pod: &core::Pod) -> Vec<String> {
    let Some(st) = &pod.status else {
        return Vec::new();
    };
    st.init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten())
        .filter(|c| c.name != super::manifests::SIDECAR_CONTAINER)
        .filter(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
        })
        .map(|c| c.name.clone())
        .collect()
}
