//! Stopping policies of a search's `earlyStopping` (`median`, `truncation`, `diff`): a
//! running trial doing worse than the others at the same step is stopped.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use polyaxonfile::spec::{EarlyStopping, MetricEarlyStopping, Optimization, StoppingPolicy};

use super::Trial;
use crate::controller::RunApi;

/// What the policies remember between looks: each trial's series and the step it was last
/// judged at.
pub(super) struct Policies {
    series: BTreeMap<String, Vec<(i64, f64)>>,
    evaluated: BTreeMap<String, i64>,
    last: Instant,
}

impl Default for Policies {
    fn default() -> Self {
        Policies {
            series: BTreeMap::new(),
            evaluated: BTreeMap::new(),
            last: Instant::now(),
        }
    }
}

impl Policies {
    /// Applies every policy of `early`, at most once a second.
    pub(super) async fn apply(
        &mut self,
        api: &RunApi,
        trials: &BTreeMap<usize, Trial>,
        early: &[EarlyStopping],
    ) {
        if self.last.elapsed() < Duration::from_secs(1) {
            return;
        }
        self.last = Instant::now();
        for e in early {
            if let EarlyStopping::Metric(me) = e
                && let Some(policy) = &me.policy
            {
                self.apply_one(api, trials, me, policy).await;
            }
        }
    }

    async fn apply_one(
        &mut self,
        api: &RunApi,
        trials: &BTreeMap<usize, Trial>,
        me: &MetricEarlyStopping,
        policy: &StoppingPolicy,
    ) {
        let interval = match policy {
            StoppingPolicy::Median(p) => p.evaluation_interval,
            StoppingPolicy::Truncation(p) => p.evaluation_interval,
            StoppingPolicy::Diff(p) => p.evaluation_interval,
        }
        .max(1);
        let include_ended = match policy {
            StoppingPolicy::Truncation(p) => p.include_succeeded.unwrap_or(true),
            _ => true,
        };
        // Fresh series for running trials; ended ones are read once.
        for t in trials.values() {
            if t.ended.is_none() || !self.series.contains_key(&t.uuid) {
                let s = metric_series(api, &t.uuid, &me.metric).await;
                self.series.insert(t.uuid.clone(), s);
            }
        }
        for (id, t) in trials.iter().filter(|(_, t)| t.ended.is_none()) {
            let Some(mine) = self.series.get(&t.uuid) else {
                continue;
            };
            let Some(&(my_last, _)) = mine.last() else {
                continue;
            };
            let others: Vec<&[(i64, f64)]> = trials
                .values()
                .filter(|o| o.uuid != t.uuid && (include_ended || o.ended.is_none()))
                .filter_map(|o| self.series.get(&o.uuid).map(Vec::as_slice))
                .collect();
            // Compared at a step enough others have reached: a trial ahead of the rest (it
            // started first, they report later) is judged where they can be compared.
            let mut reached: Vec<i64> = others
                .iter()
                .filter_map(|o| o.last().map(|p| p.0))
                .collect();
            reached.sort_unstable_by(|a, b| b.cmp(a));
            let Some(&kth) = reached.get(min_samples(policy) - 1) else {
                continue;
            };
            let step = my_last.min(kth);
            let last = self.evaluated.get(&t.uuid).copied().unwrap_or(i64::MIN);
            if last != i64::MIN && step - last < interval {
                continue;
            }
            self.evaluated.insert(t.uuid.clone(), step);
            if let Some(why) = verdict(policy, me.optimization, mine, &others, step) {
                let _ = api.client.stop_run(&api.r.sibling(&t.uuid)).await;
                api.log(format!(
                    "trial {id} stopped early ({} policy): {why}",
                    policy.kind()
                ))
                .await;
            }
        }
    }
}

/// How many other trials a policy compares with (at least one).
fn min_samples(policy: &StoppingPolicy) -> usize {
    match policy {
        StoppingPolicy::Median(p) => p.min_samples,
        StoppingPolicy::Truncation(p) => p.min_samples,
        StoppingPolicy::Diff(p) => p.min_samples,
    }
    .unwrap_or(1)
    .max(1) as usize
}

/// A trial's series of `metric`: (step, value), steps increasing.
async fn metric_series(api: &RunApi, uuid: &str, metric: &str) -> Vec<(i64, f64)> {
    let Ok(ev) = api
        .client
        .metrics(&api.r.sibling(uuid), &[metric.to_string()], None)
        .await
    else {
        return Vec::new();
    };
    let Some(s) = ev.data.into_iter().find(|s| s.name == metric) else {
        return Vec::new();
    };
    let mut out: Vec<(i64, f64)> = s
        .xy()
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(x, v)| (x as i64, v))
        .collect();
    out.sort_by_key(|p| p.0);
    out
}

/// The best value of `s` up to `step`, and the running average up to it.
fn up_to(s: &[(i64, f64)], step: i64, opt: Optimization) -> Option<(f64, f64)> {
    let pts: Vec<f64> = s.iter().take_while(|p| p.0 <= step).map(|p| p.1).collect();
    if pts.is_empty() {
        return None;
    }
    let best = match opt {
        Optimization::Maximize => pts.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        Optimization::Minimize => pts.iter().cloned().fold(f64::INFINITY, f64::min),
    };
    Some((best, pts.iter().sum::<f64>() / pts.len() as f64))
}

/// The verdict of a stopping policy on a trial at `step`: why to stop it, if it should be.
pub fn verdict(
    policy: &StoppingPolicy,
    opt: Optimization,
    mine: &[(i64, f64)],
    others: &[&[(i64, f64)]],
    step: i64,
) -> Option<String> {
    let (min_interval, min_samples) = match policy {
        StoppingPolicy::Median(p) => (p.min_interval, p.min_samples),
        StoppingPolicy::Truncation(p) => (p.min_interval, p.min_samples),
        StoppingPolicy::Diff(p) => (p.min_interval, p.min_samples),
    };
    if step < min_interval.unwrap_or(0) {
        return None;
    }
    let (my_best, _) = up_to(mine, step, opt)?;
    // Others that got as far.
    let peers: Vec<(f64, f64)> = others
        .iter()
        .filter(|o| o.last().is_some_and(|p| p.0 >= step))
        .filter_map(|o| up_to(o, step, opt))
        .collect();
    if peers.is_empty() || peers.len() < min_samples.unwrap_or(1).max(1) as usize {
        return None;
    }
    let worse = |a: f64, b: f64| match opt {
        Optimization::Maximize => a < b,
        Optimization::Minimize => a > b,
    };
    match policy {
        StoppingPolicy::Median(_) => {
            let mut avgs: Vec<f64> = peers.iter().map(|p| p.1).collect();
            avgs.sort_by(f64::total_cmp);
            let m = avgs.len();
            let median = if m % 2 == 1 {
                avgs[m / 2]
            } else {
                (avgs[m / 2 - 1] + avgs[m / 2]) / 2.0
            };
            worse(my_best, median).then(|| {
                format!("its best {my_best} is worse than the median {median} of the others' running averages at step {step}")
            })
        }
        StoppingPolicy::Truncation(p) => {
            let mut all: Vec<f64> = peers.iter().map(|p| p.0).collect();
            all.push(my_best);
            // Rank from the worst: the trial goes when it is within the worst `percent`.
            all.sort_by(|a, b| {
                if worse(*a, *b) {
                    std::cmp::Ordering::Less
                } else if worse(*b, *a) {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            });
            let cut = ((all.len() as f64) * p.percent / 100.0).floor() as usize;
            let rank = all.iter().position(|v| *v == my_best).unwrap_or(all.len());
            (rank < cut).then(|| {
                format!(
                    "it is in the worst {}% of the trials at step {step} ({my_best})",
                    p.percent
                )
            })
        }
        StoppingPolicy::Diff(p) => {
            let best = peers
                .iter()
                .map(|p| p.0)
                .fold(None::<f64>, |acc, v| match acc {
                    Some(a) if !worse(a, v) => Some(a),
                    _ => Some(v),
                })?;
            let gap = (best - my_best).abs() / best.abs().max(1e-12) * 100.0;
            (worse(my_best, best) && gap > p.percent).then(|| {
                format!("its best {my_best} is {gap:.1}% off the best {best} at step {step}")
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stopping_policies() {
        let median: StoppingPolicy = crate::scheduler::spec_of(
            r#"{"kind": "median", "evaluationInterval": 1, "minSamples": 2}"#,
        );
        let good: Vec<(i64, f64)> = (0..10).map(|s| (s, 0.5 + s as f64 * 0.05)).collect();
        let ok: Vec<(i64, f64)> = (0..10).map(|s| (s, 0.4 + s as f64 * 0.05)).collect();
        let bad: Vec<(i64, f64)> = (0..5).map(|s| (s, 0.1)).collect();
        let max = Optimization::Maximize;
        assert!(verdict(&median, max, &bad, &[&good, &ok], 4).is_some());
        assert!(verdict(&median, max, &good, &[&bad, &ok], 4).is_none());
        // Too few peers: no verdict.
        assert!(verdict(&median, max, &bad, &[&good], 4).is_none());
        // Minimizing, the same series is the best.
        assert!(verdict(&median, Optimization::Minimize, &bad, &[&good, &ok], 4).is_none());
        let trunc: StoppingPolicy = crate::scheduler::spec_of(
            r#"{"kind": "truncation", "percent": 50, "evaluationInterval": 1}"#,
        );
        assert!(verdict(&trunc, max, &bad, &[&good, &ok, &good], 4).is_some());
        assert!(verdict(&trunc, max, &good, &[&bad, &ok], 4).is_none());
        let diff: StoppingPolicy = crate::scheduler::spec_of(
            r#"{"kind": "diff", "percent": 30, "evaluationInterval": 1, "minInterval": 3}"#,
        );
        assert!(verdict(&diff, max, &bad, &[&good], 4).is_some());
        assert!(
            verdict(&diff, max, &ok, &[&good], 4).is_none(),
            "within 30%"
        );
        assert!(
            verdict(&diff, max, &bad, &[&good], 2).is_none(),
            "before minInterval"
        );
    }
}
