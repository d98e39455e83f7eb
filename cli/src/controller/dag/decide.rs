//! When a DAG's operation starts: its `trigger` over its upstreams' ends, `skipOnUpstreamSkip`,
//! and `events`. Pure: the controller gives what it saw, this says what to do.
//!
//! Upstream's table, with one defect mended (README): a `one_*` trigger waits for an upstream
//! that fits rather than deciding at the first upstream's end — `one_succeeded` starts when any
//! upstream succeeds, and only fails once every upstream ended without one succeeding.

use polyaxon_server::api::RunStatus;
use polyaxonfile::spec::TriggerPolicy;

/// What to do with an operation that has not started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Not yet: an upstream it waits for has not ended.
    Wait,
    Start,
    /// Never: it ends with this status and reason.
    End(RunStatus, &'static str, String),
}

/// The trigger's decision, given the statuses of the operation's upstreams (`None`: not
/// ended). `skip_on_upstream_skip`: a skipped upstream skips this one.
pub fn by_trigger(
    trigger: TriggerPolicy,
    skip_on_upstream_skip: bool,
    upstream: &[(&str, Option<RunStatus>)],
) -> Decision {
    if upstream.is_empty() {
        return Decision::Start;
    }
    if skip_on_upstream_skip
        && let Some((name, _)) = upstream
            .iter()
            .find(|(_, s)| *s == Some(RunStatus::Skipped))
    {
        return Decision::End(
            RunStatus::Skipped,
            "UpstreamSkipped",
            format!("its upstream `{name}` was skipped (skipOnUpstreamSkip)"),
        );
    }
    let ended: Vec<RunStatus> = upstream.iter().filter_map(|(_, s)| *s).collect();
    let all_ended = ended.len() == upstream.len();
    let count = |f: &dyn Fn(RunStatus) -> bool| ended.iter().filter(|s| f(**s)).count();
    let succeeded = count(&|s| s == RunStatus::Succeeded);
    let failed = count(&|s| s == RunStatus::Failed);
    let upstream_error = || {
        Decision::End(
            RunStatus::UpstreamFailed,
            "UpstreamFailed",
            format!(
                "its trigger `{}` was not met: {}",
                trigger_name(trigger),
                upstream
                    .iter()
                    .map(|(n, s)| format!(
                        "`{n}` {}",
                        s.map(|s| s.as_str()).unwrap_or("did not end")
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    match trigger {
        TriggerPolicy::AllSucceeded | TriggerPolicy::AllFailed | TriggerPolicy::AllDone
            if !all_ended =>
        {
            Decision::Wait
        }
        TriggerPolicy::AllDone => Decision::Start,
        TriggerPolicy::AllSucceeded if succeeded == upstream.len() => Decision::Start,
        TriggerPolicy::AllFailed if failed == upstream.len() => Decision::Start,
        TriggerPolicy::AllSucceeded | TriggerPolicy::AllFailed => upstream_error(),
        TriggerPolicy::OneDone if !ended.is_empty() => Decision::Start,
        TriggerPolicy::OneSucceeded if succeeded > 0 => Decision::Start,
        TriggerPolicy::OneFailed if failed > 0 => Decision::Start,
        _ if all_ended => upstream_error(),
        _ => Decision::Wait,
    }
}

fn trigger_name(t: TriggerPolicy) -> &'static str {
    match t {
        TriggerPolicy::AllSucceeded => "all_succeeded",
        TriggerPolicy::AllFailed => "all_failed",
        TriggerPolicy::AllDone => "all_done",
        TriggerPolicy::OneSucceeded => "one_succeeded",
        TriggerPolicy::OneFailed => "one_failed",
        TriggerPolicy::OneDone => "one_done",
    }
}

/// The status an event kind names: `run_status_running` → `running`.
pub fn event_status(kind: &str) -> Option<RunStatus> {
    RunStatus::parse(kind.strip_prefix("run_status_").unwrap_or(kind))
}

/// A DAG's final status once every operation ended (upstream's rule): `failed` if one failed
/// (`upstream_failed` and `skipped` do not count), else `stopped` if every one was stopped,
/// else `succeeded`.
pub fn dag_end(ops: &[RunStatus]) -> RunStatus {
    if ops.contains(&RunStatus::Failed) {
        RunStatus::Failed
    } else if !ops.is_empty() && ops.iter().all(|s| *s == RunStatus::Stopped) {
        RunStatus::Stopped
    } else {
        RunStatus::Succeeded
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RunStatus as S;

    fn d(t: TriggerPolicy, skip: bool, up: &[Option<S>]) -> Decision {
        let named: Vec<(&str, Option<S>)> = up.iter().map(|s| ("up", *s)).collect();
        by_trigger(t, skip, &named)
    }

    fn ends(x: &Decision) -> Option<S> {
        match x {
            Decision::End(s, _, _) => Some(*s),
            _ => None,
        }
    }

    #[test]
    fn triggers_follow_upstreams_table() {
        use TriggerPolicy as T;
        assert_eq!(d(T::AllSucceeded, false, &[]), Decision::Start);
        assert_eq!(
            d(T::AllSucceeded, false, &[Some(S::Succeeded), None]),
            Decision::Wait
        );
        assert_eq!(
            d(
                T::AllSucceeded,
                false,
                &[Some(S::Succeeded), Some(S::Succeeded)]
            ),
            Decision::Start
        );
        assert_eq!(
            ends(&d(
                T::AllSucceeded,
                false,
                &[Some(S::Succeeded), Some(S::Failed)]
            )),
            Some(S::UpstreamFailed)
        );
        // A skipped upstream is no success unless skipOnUpstreamSkip says to skip too.
        assert_eq!(
            ends(&d(T::AllSucceeded, false, &[Some(S::Skipped)])),
            Some(S::UpstreamFailed)
        );
        assert_eq!(
            ends(&d(T::AllSucceeded, true, &[Some(S::Skipped)])),
            Some(S::Skipped)
        );
        assert_eq!(
            d(T::AllDone, false, &[Some(S::Failed), Some(S::Stopped)]),
            Decision::Start
        );
        assert_eq!(d(T::AllFailed, false, &[Some(S::Failed)]), Decision::Start);
        // `*_failed` count `failed` only.
        assert_eq!(
            ends(&d(T::AllFailed, false, &[Some(S::UpstreamFailed)])),
            Some(S::UpstreamFailed)
        );
        assert_eq!(
            d(T::OneDone, false, &[Some(S::Failed), None]),
            Decision::Start
        );
        assert_eq!(d(T::OneDone, false, &[None, None]), Decision::Wait);
    }

    #[test]
    fn one_of_waits_for_an_upstream_that_fits() {
        use TriggerPolicy as T;
        // Upstream decides at the first end (a failed first upstream fails the op); we wait.
        assert_eq!(
            d(T::OneSucceeded, false, &[Some(S::Failed), None]),
            Decision::Wait
        );
        assert_eq!(
            d(
                T::OneSucceeded,
                false,
                &[Some(S::Failed), Some(S::Succeeded)]
            ),
            Decision::Start
        );
        assert_eq!(
            ends(&d(
                T::OneSucceeded,
                false,
                &[Some(S::Failed), Some(S::Stopped)]
            )),
            Some(S::UpstreamFailed)
        );
        assert_eq!(
            d(T::OneFailed, false, &[Some(S::Succeeded), Some(S::Failed)]),
            Decision::Start
        );
    }

    #[test]
    fn events_and_the_dags_end() {
        assert_eq!(event_status("run_status_running"), Some(S::Running));
        assert_eq!(event_status("succeeded"), Some(S::Succeeded));
        assert_eq!(event_status("run_status_nope"), None);
        assert_eq!(dag_end(&[S::Succeeded, S::UpstreamFailed]), S::Succeeded);
        assert_eq!(dag_end(&[S::Succeeded, S::Failed]), S::Failed);
        assert_eq!(dag_end(&[S::Stopped, S::Stopped]), S::Stopped);
        assert_eq!(dag_end(&[S::Skipped, S::Skipped]), S::Succeeded);
    }
}
