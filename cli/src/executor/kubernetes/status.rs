//! What the cluster says about a run, as a run status: pure functions over the run's main
//! object (Job, Deployment, Kubeflow job) and its pods.

use k8s_openapi::api::core::v1 as core;
use polyaxon_server::api::RunStatus;
use serde_json::Value as J;

/// Waiting reasons that do not go away by waiting.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// Where a run stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum State {
    /// Submitted; no pod scheduled yet.
    Pending,
    /// The scheduler cannot place a pod (not enough resources, no matching node…).
    Unschedulable {
        message: String,
    },
    /// Pods scheduled; containers starting (pulling images, init steps).
    Starting,
    Running,
    /// A pod failed and the cluster starts another (backoffLimit, restartPolicy).
    Retrying {
        message: String,
    },
    Succeeded,
    Failed {
        reason: String,
        message: String,
        exit_code: Option<i32>,
    },
}

impl State {
    pub fn is_done(&self) -> bool {
        matches!(self, State::Succeeded | State::Failed { .. })
    }

    /// The run status, reason and message this state is recorded as.
    pub fn status(&self) -> (RunStatus, String, String) {
        match self {
            State::Pending => (
                RunStatus::Scheduled,
                "PodPending".into(),
                "waiting for a node".into(),
            ),
            State::Unschedulable { message } => (
                RunStatus::Unschedulable,
                "Unschedulable".into(),
                message.clone(),
            ),
            State::Starting => (
                RunStatus::Starting,
                "PodStarting".into(),
                "pulling images and running init steps".into(),
            ),
            State::Running => (RunStatus::Running, "PodRunning".into(), "running".into()),
            State::Retrying { message } => {
                (RunStatus::Retrying, "PodFailed".into(), message.clone())
            }
            State::Succeeded => (RunStatus::Succeeded, "Completed".into(), "completed".into()),
            State::Failed {
                reason, message, ..
            } => (RunStatus::Failed, reason.clone(), message.clone()),
        }
    }
}

/// A pod's problem that fails the run, if any: an image that cannot be pulled, a container
/// that cannot be created, an OOM kill.
pub fn pod_failure(pod: &core::Pod) -> Option<State> {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let st = pod.status.as_ref()?;
    let all = st
        .init_container_statuses
        .iter()
        .flatten()
        .chain(st.container_statuses.iter().flatten());
    for cs in all {
        let state = cs.state.as_ref();
        if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
            let reason = w.reason.clone().unwrap_or_default();
            if FATAL_WAITING.contains(&reason.as_str()) {
                let detail = w.message.clone().unwrap_or_default();
                let image = if reason.contains("Image") {
                    format!(" `{}`", cs.image)
                } else {
                    String::new()
                };
                return Some(State::Failed {
                    message: format!(
                        "container `{}` of pod `{name}`{image}: {reason}{}",
                        cs.name,
                        if detail.is_empty() {
                            String::new()
                        } else {
                            format!(": {detail}")
                        }
                    ),
                    reason,
                    exit_code: None,
                });
            }
        }
        let term = state
            .and_then(|s| s.terminated.as_ref())
            .or_else(|| cs.last_state.as_ref().and_then(|s| s.terminated.as_ref()));
        if let Some(t) = term
            && t.reason.as_deref() == Some("OOMKilled")
        {
            return Some(State::Failed {
                reason: "OOMKilled".into(),
                message: format!(
                    "container `{}` of pod `{name}` ran out of memory (OOMKilled, exit code {}): raise its memory limit",
                    cs.name, t.exit_code
                ),
                exit_code: Some(t.exit_code),
            });
        }
    }
    None
}

/// Why a pod is not scheduled, if it is not.
pub fn unschedulable(pod: &core::Pod) -> Option<String> {
    let conds = pod.status.as_ref()?.conditions.as_ref()?;
    conds
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        })
        .map(|c| {
            c.message
                .clone()
                .unwrap_or_else(|| "no node fits the pod".into())
        })
}

/// The exit code of a pod's main container (or its first terminated one).
pub fn exit_code(pod: &core::Pod, main: &str) -> Option<i32> {
    let cs = pod.status.as_ref()?.container_statuses.as_ref()?;
    let term = |c: &core::ContainerStatus| {
        c.state
            .as_ref()
            .and_then(|s| s.terminated.as_ref())
            .map(|t| t.exit_code)
    };
    cs.iter()
        .find(|c| c.name == main)
        .and_then(term)
        .or_else(|| cs.iter().find_map(term))
}

fn pods_state(pods: &[core::Pod]) -> State {
    if let Some(f) = pods.iter().find_map(pod_failure) {
        return f;
    }
    if pods.is_empty() {
        return State::Pending;
    }
    if let Some(m) = pods.iter().find_map(unschedulable) {
        return State::Unschedulable { message: m };
    }
    let phase = |p: &core::Pod| {
        p.status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default()
    };
    if pods.iter().any(|p| phase(p) == "Running") {
        State::Running
    } else if pods.iter().all(|p| phase(p) == "Pending") {
        let scheduled = pods
            .iter()
            .any(|p| p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some());
        if scheduled {
            State::Starting
        } else {
            State::Pending
        }
    } else {
        State::Running
    }
}

fn condition<'a>(status: &'a J, kind: &str) -> Option<&'a J> {
    status.get("conditions")?.as_array()?.iter().find(|c| {
        c.get("type").and_then(J::as_str) == Some(kind)
            && c.get("status").and_then(J::as_str) == Some("True")
    })
}

fn text(c: &J, key: &str) -> String {
    c.get(key)
        .and_then(J::as_str)
        .unwrap_or_default()
        .to_string()
}

/// The state of a run from its main object's `status` (as JSON, any kind) and its pods.
/// `main` is the main container's name, for exit codes.
pub fn assess(kind: &str, status: Option<&J>, pods: &[core::Pod], main: &str) -> State {
    let empty = J::Null;
    let status = status.unwrap_or(&empty);
    let exit = || pods.iter().find_map(|p| exit_code(p, main));
    match kind {
        "Job" => {
            if condition(status, "Complete").is_some()
                || condition(status, "SuccessCriteriaMet").is_some()
            {
                return State::Succeeded;
            }
            if let Some(c) =
                condition(status, "Failed").or_else(|| condition(status, "FailureTarget"))
            {
                // A pod's own reason (OOM) says more than the Job's (BackoffLimitExceeded).
                if let Some(State::Failed {
                    reason,
                    message,
                    exit_code,
                }) = pods.iter().find_map(pod_failure)
                {
                    return State::Failed {
                        reason,
                        message,
                        exit_code,
                    };
                }
                let reason = text(c, "reason");
                let mut message = text(c, "message");
                let code = exit();
                if let Some(code) = code {
                    message = format!("{message} (exit code {code})");
                }
                return State::Failed {
                    reason: if reason.is_empty() {
                        "JobFailed".into()
                    } else {
                        reason
                    },
                    message,
                    exit_code: code,
                };
            }
            let failed = status.get("failed").and_then(J::as_i64).unwrap_or(0);
            let active = status.get("active").and_then(J::as_i64).unwrap_or(0);
            let st = pods_state(&live(pods));
            if failed > 0
                && !st.is_done()
                && matches!(st, State::Pending | State::Starting)
                && active > 0
            {
                return State::Retrying {
                    message: format!(
                        "{failed} pod(s) failed; the Job starts another (backoffLimit)"
                    ),
                };
            }
            st
        }
        "Deployment" => match pods_state(&live(pods)) {
            State::Running => {
                let ready = status.get("readyReplicas").and_then(J::as_i64).unwrap_or(0);
                if ready > 0 {
                    State::Running
                } else {
                    State::Starting
                }
            }
            other => other,
        },
        // Kubeflow jobs: conditions Created, Running, Restarting, Succeeded, Failed.
        _ => {
            if condition(status, "Succeeded").is_some() {
                return State::Succeeded;
            }
            if let Some(c) = condition(status, "Failed") {
                if let Some(f @ State::Failed { .. }) = pods.iter().find_map(pod_failure) {
                    return f;
                }
                return State::Failed {
                    reason: text(c, "reason"),
                    message: text(c, "message"),
                    exit_code: exit(),
                };
            }
            if let Some(c) = condition(status, "Restarting") {
                return State::Retrying {
                    message: text(c, "message"),
                };
            }
            pods_state(&live(pods))
        }
    }
}

/// Pods not being deleted.
fn live(pods: &[core::Pod]) -> Vec<core::Pod> {
    pods.iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: J) -> core::Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn unschedulable_pods_say_why() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Pending", "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."}]}
        }));
        assert_eq!(
            assess("Job", Some(&json!({"active": 1})), &[p], "polyaxon-main"),
            State::Unschedulable {
                message: "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.".into()
            }
        );
    }

    #[test]
    fn image_pull_errors_fail_with_the_image() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "spec": {"nodeName": "n1", "containers": [{"name": "polyaxon-main"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "polyaxon-main", "image": "nope:1", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"nope:1\""}}}]}
        }));
        let State::Failed {
            reason, message, ..
        } = assess("Job", None, &[p], "polyaxon-main")
        else {
            panic!()
        };
        assert_eq!(reason, "ImagePullBackOff");
        assert!(
            message.contains("`nope:1`") && message.contains("Back-off"),
            "{message}"
        );
    }

    #[test]
    fn oom_kills_win_over_the_jobs_reason() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "polyaxon-main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"reason": "OOMKilled", "exitCode": 137}}}]}
        }));
        let job = json!({"failed": 1, "conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
        assert_eq!(
            assess("Job", Some(&job), &[p], "polyaxon-main"),
            State::Failed {
                reason: "OOMKilled".into(),
                message: "container `polyaxon-main` of pod `p` ran out of memory (OOMKilled, exit code 137): raise its memory limit".into(),
                exit_code: Some(137)
            }
        );
    }

    #[test]
    fn job_conditions_end_the_run() {
        let p = pod(json!({
            "metadata": {"name": "p"},
            "status": {"phase": "Failed", "containerStatuses": [{"name": "polyaxon-main", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"reason": "Error", "exitCode": 3}}}]}
        }));
        let failed = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]});
        assert_eq!(
            assess(
                "Job",
                Some(&failed),
                std::slice::from_ref(&p),
                "polyaxon-main"
            ),
            State::Failed {
                reason: "BackoffLimitExceeded".into(),
                message: "Job has reached the specified backoff limit (exit code 3)".into(),
                exit_code: Some(3)
            }
        );
        let deadline = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "Job was active longer than specified deadline"}]});
        assert!(
            matches!(assess("Job", Some(&deadline), &[], "m"), State::Failed { reason, .. } if reason == "DeadlineExceeded")
        );
        let done = json!({"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]});
        assert_eq!(assess("Job", Some(&done), &[], "m"), State::Succeeded);
        assert_eq!(assess("Job", Some(&json!({})), &[], "m"), State::Pending);
    }

    #[test]
    fn kubeflow_conditions() {
        let s = json!({"conditions": [{"type": "Created", "status": "True"}, {"type": "Running", "status": "False"}, {"type": "Succeeded", "status": "True", "reason": "TFJobSucceeded"}]});
        assert_eq!(
            assess("TFJob", Some(&s), &[], "tensorflow"),
            State::Succeeded
        );
        let f = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed", "message": "master failed"}]});
        assert!(
            matches!(assess("PyTorchJob", Some(&f), &[], "pytorch"), State::Failed { reason, .. } if reason == "PyTorchJobFailed")
        );
    }
}
