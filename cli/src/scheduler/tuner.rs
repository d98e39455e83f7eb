//! Tuners: which trials a search runs next. Grid, random and mapping know every trial up
//! front; hyperband runs successive halving in brackets (Li et al. 2018), promoting the best
//! trials of each rung to the next with more of the resource.

use polyaxonfile::space;
use polyaxonfile::spec::{
    AcquisitionFunction, GaussianProcessKernel, HpParam, HyperoptAlgorithm, Matrix, Optimization,
    OptimizationMetric, ResourceType,
};
use serde_json::Value as J;

use super::gp::{Acquisition, BayesOpt, Kernel};
use super::rng::Rng;
use super::sample::sample_all;
use super::space::Space;
use super::tpe::Tpe;

/// A trial's params, in order.
pub type Params = Vec<(String, J)>;

/// A trial to start.
#[derive(Clone, Debug, PartialEq)]
pub struct Ask {
    /// The trial's number in the search (0-based).
    pub id: usize,
    pub params: Vec<(String, J)>,
    /// Hyperband with `resume`: the trial of the previous rung this one continues.
    pub resume_of: Option<usize>,
    /// Where the trial sits (`bracket 2, rung 1`), for people.
    pub note: String,
}

pub trait Tuner: Send {
    /// Up to `n` new trials (fewer, or none, while it waits for results).
    fn ask(&mut self, n: usize) -> Vec<Ask>;
    /// A trial's result: its objective, `None` when it failed or reported no metric.
    fn tell(&mut self, id: usize, value: Option<f64>);
    /// Every trial was asked for (results may still be coming).
    fn exhausted(&self) -> bool;
}

/// Whether a matrix can run: its tuner can be made (for `iterative`, it names its tuner).
pub fn check(m: &Matrix) -> Result<(), String> {
    match m {
        Matrix::Iterative(i) if i.tuner.is_none() => Err(
            "an `iterative` matrix needs `tuner: {hubRef: …}`, the component proposing each batch"
                .into(),
        ),
        Matrix::Iterative(_) => Ok(()),
        other => for_matrix(other, Some(0)).map(|_| ()),
    }
}

/// The tuner for a matrix; `seed` when the spec gives none is drawn from the clock.
pub fn for_matrix(m: &Matrix, limit: Option<usize>) -> Result<Box<dyn Tuner>, String> {
    let params = |p: Option<&polyaxonfile::spec::OrderedMap<HpParam>>| -> Vec<(String, HpParam)> {
        p.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default()
    };
    let rng = |seed: Option<i64>| match seed {
        Some(s) => Rng::seeded(s as u64),
        None => Rng::unseeded(),
    };
    let cap = |n: usize| limit.map_or(n, |l| l.min(n));
    match m {
        Matrix::Grid(g) => {
            let max = g
                .num_runs
                .filter(|n| *n > 0)
                .map_or(usize::MAX, |n| n as usize);
            let all = space::grid(&params(Some(&g.params)), cap(max).min(space::MAX_VALUES))?;
            Ok(Box::new(Fixed::new(all)))
        }
        Matrix::Mapping(m) => Ok(Box::new(Fixed::new(
            m.values
                .iter()
                .take(cap(m.values.len()))
                .map(|v| v.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
                .collect(),
        ))),
        Matrix::Random(r) => {
            let mut rng = rng(r.seed);
            let ps = params(Some(&r.params));
            let n = cap(r.num_runs.max(0) as usize);
            let all = (0..n)
                .map(|_| sample_all(&ps, &mut rng))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Box::new(Fixed::new(all)))
        }
        Matrix::Hyperband(h) => {
            let max_iter = h.max_iterations.ok_or("hyperband needs `maxIterations`")?;
            let resource = h
                .resource
                .as_ref()
                .ok_or("hyperband needs `resource` (the param its trials get more of)")?;
            let metric = h
                .metric
                .clone()
                .ok_or("hyperband needs `metric` (what ranks the trials of a rung)")?;
            Ok(Box::new(Hyperband::new(
                params(h.params.as_ref()),
                max_iter as f64,
                h.eta.unwrap_or(3.0),
                resource.name.clone(),
                resource.kind != Some(ResourceType::Float),
                metric,
                h.resume.unwrap_or(false),
                rng(h.seed),
            )?))
        }
        Matrix::Bayes(b) => {
            let space = Space::new(&params(Some(&b.params)))?;
            let mut opt = BayesOpt::new(space.clone(), rng(b.seed));
            opt.startup = b.num_initial_runs.max(1) as usize;
            if let Some(u) = &b.utility_function {
                let xi = u.eps.unwrap_or(0.0);
                opt.acquisition = match u.acquisition_function {
                    Some(AcquisitionFunction::Ucb) => Acquisition::Ucb {
                        kappa: u.kappa.unwrap_or(2.576),
                    },
                    Some(AcquisitionFunction::Poi) => Acquisition::Poi { xi },
                    _ => Acquisition::Ei { xi },
                };
                if let Some(g) = &u.gaussian_process
                    && g.kernel == Some(GaussianProcessKernel::Rbf)
                {
                    opt.kernel = Kernel::Rbf;
                }
            }
            let total = (b.num_initial_runs + b.max_iterations).max(0) as usize;
            Ok(Box::new(Model::new(
                space,
                Algo::Bayes(Box::new(opt)),
                b.metric.clone(),
                cap(total),
            )))
        }
        Matrix::Tpe(t) => {
            let space = Space::new(&params(Some(&t.params)))?;
            let total = t
                .num_runs
                .or(t.max_iterations)
                .ok_or("tpe needs `numRuns` (or `maxIterations`)")?
                .max(0) as usize;
            let algo = Algo::Tpe(Box::new(Tpe::new(space.clone(), rng(t.seed))));
            Ok(Box::new(Model::new(
                space,
                algo,
                t.metric.clone(),
                cap(total),
            )))
        }
        Matrix::Hyperopt(h) => {
            let space = Space::new(&params(Some(&h.params)))?;
            let total = h
                .num_runs
                .or(h.max_iterations)
                .ok_or("hyperopt needs `numRuns` (or `maxIterations`)")?
                .max(0) as usize;
            let metric = h
                .metric
                .clone()
                .ok_or("hyperopt needs `metric` (what it optimizes)")?;
            let algo = match h.algorithm {
                Some(HyperoptAlgorithm::Rand) => Algo::Random(rng(h.seed)),
                Some(HyperoptAlgorithm::Anneal) => Algo::Anneal(rng(h.seed)),
                _ => Algo::Tpe(Box::new(Tpe::new(space.clone(), rng(h.seed)))),
            };
            Ok(Box::new(Model::new(space, algo, metric, cap(total))))
        }
        // Driven apart: a tuner run proposes each batch (see drive.rs).
        Matrix::Iterative(_) => Err("an `iterative` search is driven by its tuner runs".into()),
    }
}

/// How a model-based tuner proposes.
pub enum Algo {
    Tpe(Box<Tpe>),
    Bayes(Box<BayesOpt>),
    Random(Rng),
    /// Hyperopt's annealing: around the best point so far, ever closer.
    Anneal(Rng),
}

/// Bayes, TPE and hyperopt: proposals from the results so far, up to a budget.
pub struct Model {
    space: Space,
    algo: Algo,
    metric: OptimizationMetric,
    total: usize,
    next: usize,
    pending: std::collections::BTreeMap<usize, Vec<f64>>,
    /// Results (to minimize), for annealing.
    seen: Vec<(Vec<f64>, f64)>,
}

impl Model {
    pub fn new(space: Space, algo: Algo, metric: OptimizationMetric, total: usize) -> Model {
        Model {
            space,
            algo,
            metric,
            total,
            next: 0,
            pending: Default::default(),
            seen: Vec::new(),
        }
    }

    fn propose(&mut self) -> Vec<f64> {
        let pending: Vec<Vec<f64>> = self.pending.values().cloned().collect();
        match &mut self.algo {
            Algo::Tpe(t) => t.suggest(&pending),
            Algo::Bayes(b) => b.suggest(&pending),
            Algo::Random(r) => self.space.random(r),
            Algo::Anneal(r) => {
                let best = self
                    .seen
                    .iter()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .map(|b| b.0.clone());
                let Some(best) = best.filter(|_| self.seen.len() >= 5) else {
                    return self.space.random(r);
                };
                let width = (0.5 * 0.9f64.powf(self.seen.len() as f64 / 5.0)).max(0.01);
                best.iter()
                    .zip(&self.space.dims)
                    .map(|(v, d)| match d.categories() {
                        Some(k) if r.f64() < 0.2 => r.below(k) as f64,
                        Some(_) => *v,
                        None => (v + width * r.normal()).clamp(0.0, 1.0),
                    })
                    .collect()
            }
        }
    }
}

impl Tuner for Model {
    fn ask(&mut self, n: usize) -> Vec<Ask> {
        let mut out = Vec::new();
        while out.len() < n && self.next < self.total {
            let x = self.propose();
            let id = self.next;
            self.next += 1;
            out.push(Ask {
                id,
                params: self.space.decode(&x),
                resume_of: None,
                note: String::new(),
            });
            self.pending.insert(id, x);
        }
        out
    }

    fn tell(&mut self, id: usize, value: Option<f64>) {
        let Some(x) = self.pending.remove(&id) else {
            return;
        };
        // Failed trials teach nothing about the objective: they are left out.
        let Some(v) = value else { return };
        let y = match self.metric.optimization {
            Some(Optimization::Minimize) => v,
            _ => -v,
        };
        match &mut self.algo {
            Algo::Tpe(t) => t.observe(x.clone(), y),
            Algo::Bayes(b) => b.observe(&x, y),
            _ => {}
        }
        self.seen.push((x, y));
    }

    fn exhausted(&self) -> bool {
        self.next >= self.total
    }
}

/// Trials known up front, in order.
pub struct Fixed {
    trials: Vec<Vec<(String, J)>>,
    next: usize,
}

impl Fixed {
    pub fn new(trials: Vec<Vec<(String, J)>>) -> Fixed {
        Fixed { trials, next: 0 }
    }
}

impl Tuner for Fixed {
    fn ask(&mut self, n: usize) -> Vec<Ask> {
        let end = (self.next + n).min(self.trials.len());
        let out = (self.next..end)
            .map(|id| Ask {
                id,
                params: self.trials[id].clone(),
                resume_of: None,
                note: String::new(),
            })
            .collect();
        self.next = end;
        out
    }

    fn tell(&mut self, _: usize, _: Option<f64>) {}

    fn exhausted(&self) -> bool {
        self.next >= self.trials.len()
    }
}

/// Whether `a` is better than `b` for `metric` (a missing value is worst).
pub fn better(metric: &OptimizationMetric, a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => match metric.optimization {
            Some(Optimization::Minimize) => a < b,
            _ => a > b,
        },
        (Some(_), None) => true,
        _ => false,
    }
}

/// An order putting the better of two results first (missing ones last).
pub fn best_first(
    metric: &OptimizationMetric,
    a: Option<f64>,
    b: Option<f64>,
) -> std::cmp::Ordering {
    if better(metric, a, b) {
        std::cmp::Ordering::Less
    } else if better(metric, b, a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

/// Hyperband: brackets from the most exploratory (many trials, little resource) to the least,
/// one after the other; in each, successive halving over its rungs.
pub struct Hyperband {
    params: Vec<(String, HpParam)>,
    brackets: Vec<space::Bracket>,
    resource: String,
    integral: bool,
    metric: OptimizationMetric,
    resume: bool,
    rng: Rng,
    bracket: usize,
    rung: usize,
    /// This rung's configurations still to ask for (params, the trial continued).
    queue: Vec<(Params, Option<usize>)>,
    /// This rung's trials: (id, params without the resource, result once told).
    current: Vec<(usize, Params, Option<Option<f64>>)>,
    next_id: usize,
    done: bool,
}

impl Hyperband {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        params: Vec<(String, HpParam)>,
        max_iterations: f64,
        eta: f64,
        resource: String,
        integral: bool,
        metric: OptimizationMetric,
        resume: bool,
        rng: Rng,
    ) -> Result<Hyperband, String> {
        let brackets = space::hyperband_brackets(max_iterations, eta)?;
        let mut h = Hyperband {
            params: params.into_iter().filter(|(n, _)| *n != resource).collect(),
            brackets,
            resource,
            integral,
            metric,
            resume,
            rng,
            bracket: 0,
            rung: 0,
            queue: Vec::new(),
            current: Vec::new(),
            next_id: 0,
            done: false,
        };
        h.fill_first_rung()?;
        Ok(h)
    }

    /// The brackets (for people: `ops get` and the search view).
    pub fn brackets(&self) -> &[space::Bracket] {
        &self.brackets
    }

    fn fill_first_rung(&mut self) -> Result<(), String> {
        let n = self.brackets[self.bracket].rungs[0].0 as usize;
        for _ in 0..n {
            let p = sample_all(&self.params, &mut self.rng)?;
            self.queue.push((p, None));
        }
        self.queue.reverse(); // asked in order
        Ok(())
    }

    fn resource_value(&self) -> J {
        let r = self.brackets[self.bracket].rungs[self.rung].1;
        if self.integral {
            J::from(r.round() as i64)
        } else {
            serde_json::Number::from_f64(r)
                .map(J::Number)
                .unwrap_or(J::Null)
        }
    }

    /// The rung is complete: promote its best to the next rung, or open the next bracket.
    fn advance(&mut self) {
        let b = &self.brackets[self.bracket];
        if self.rung + 1 < b.rungs.len() {
            let keep = b.rungs[self.rung + 1].0 as usize;
            let mut ranked: Vec<_> = self.current.drain(..).collect();
            let metric = self.metric.clone();
            ranked.sort_by(|a, b| {
                best_first(&metric, a.2.flatten(), b.2.flatten()).then(a.0.cmp(&b.0))
            });
            self.rung += 1;
            self.queue = ranked
                .into_iter()
                .take(keep)
                .map(|(id, p, _)| (p, self.resume.then_some(id)))
                .collect();
            self.queue.reverse();
        } else {
            self.current.clear();
            self.bracket += 1;
            self.rung = 0;
            if self.bracket >= self.brackets.len() || self.fill_first_rung().is_err() {
                self.done = true;
            }
        }
    }
}

impl Tuner for Hyperband {
    fn ask(&mut self, n: usize) -> Vec<Ask> {
        let mut out = Vec::new();
        while out.len() < n && !self.done {
            let Some((params, resume_of)) = self.queue.pop() else {
                break; // waiting for this rung's results
            };
            let id = self.next_id;
            self.next_id += 1;
            let mut with_resource = params.clone();
            with_resource.push((self.resource.clone(), self.resource_value()));
            out.push(Ask {
                id,
                params: with_resource,
                resume_of,
                note: format!(
                    "bracket {}, rung {}",
                    self.brackets[self.bracket].s, self.rung
                ),
            });
            self.current.push((id, params, None));
        }
        out
    }

    fn tell(&mut self, id: usize, value: Option<f64>) {
        if let Some(t) = self.current.iter_mut().find(|t| t.0 == id) {
            t.2 = Some(value);
        }
        while !self.done
            && self.queue.is_empty()
            && !self.current.is_empty()
            && self.current.iter().all(|t| t.2.is_some())
        {
            self.advance();
        }
    }

    fn exhausted(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(opt: &str) -> OptimizationMetric {
        crate::scheduler::spec_of(&format!(r#"{{"name": "acc", "optimization": "{opt}"}}"#))
    }

    #[test]
    fn hyperband_brackets_for_81_and_3() {
        // Li et al., table 1 (R = 81, eta = 3): (n_i, r_i) per rung of each bracket.
        let b = space::hyperband_brackets(81.0, 3.0).unwrap();
        let table: Vec<Vec<(u64, f64)>> = b.iter().map(|b| b.rungs.clone()).collect();
        assert_eq!(
            table,
            vec![
                vec![(81, 1.0), (27, 3.0), (9, 9.0), (3, 27.0), (1, 81.0)],
                vec![(34, 3.0), (11, 9.0), (3, 27.0), (1, 81.0)],
                vec![(15, 9.0), (5, 27.0), (1, 81.0)],
                vec![(8, 27.0), (2, 81.0)],
                vec![(5, 81.0)],
            ]
        );
    }

    #[test]
    fn hyperband_promotes_the_best_of_each_rung() {
        let lr: HpParam = crate::scheduler::spec_of(r#"{"kind": "uniform", "value": [0, 1]}"#);
        let mut h = Hyperband::new(
            vec![("lr".into(), lr)],
            9.0,
            3.0,
            "epochs".into(),
            true,
            metric("maximize"),
            true,
            Rng::seeded(1),
        )
        .unwrap();
        // Bracket s=2: 9 trials at 1 epoch, then 3 at 3, then 1 at 9.
        let first = h.ask(100);
        assert_eq!(first.len(), 9);
        assert!(
            first
                .iter()
                .all(|a| a.params[1] == ("epochs".into(), J::from(1)))
        );
        assert!(h.ask(1).is_empty(), "waits for the rung's results");
        // The objective: lr itself; the best three go on.
        let lr_of = |a: &Ask| a.params[0].1.as_f64().unwrap();
        let mut by_lr: Vec<&Ask> = first.iter().collect();
        by_lr.sort_by(|a, b| lr_of(b).total_cmp(&lr_of(a)));
        for a in &first {
            // One failure among the worst: it is simply not promoted.
            let v = if a.id == by_lr[8].id {
                None
            } else {
                Some(lr_of(a))
            };
            h.tell(a.id, v);
        }
        let second = h.ask(100);
        assert_eq!(second.len(), 3);
        let promoted: Vec<usize> = second.iter().map(|a| a.resume_of.unwrap()).collect();
        assert_eq!(
            promoted,
            by_lr[..3].iter().map(|a| a.id).collect::<Vec<_>>()
        );
        assert!(second.iter().all(|a| a.params[1].1 == 3));
        for a in &second {
            h.tell(a.id, Some(lr_of(a)));
        }
        let third = h.ask(100);
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].params[1].1, J::from(9));
        assert_eq!(third[0].resume_of, Some(second[0].id));
        h.tell(third[0].id, Some(0.5));
        // Next bracket (s=1): 5 trials at 3 epochs (ceil(3/2 * 3) = 5).
        let next = h.ask(100);
        assert_eq!(next.len(), 5);
        assert!(next.iter().all(|a| a.params[1].1 == 3));
        for a in &next {
            h.tell(a.id, Some(0.1));
        }
        // Last rung (1 at 9), then the last bracket (3 at 9), then done.
        let r = h.ask(100);
        assert_eq!(r.len(), 1);
        h.tell(r[0].id, Some(0.0));
        let last = h.ask(100);
        assert_eq!(last.len(), 3);
        assert!(last.iter().all(|a| a.resume_of.is_none()));
        for a in &last {
            h.tell(a.id, Some(1.0));
        }
        assert!(h.exhausted());
        assert!(h.ask(10).is_empty());
    }

    #[test]
    fn grid_order_counts_and_caps() {
        let m: Matrix = crate::scheduler::spec_of(
            r#"{"kind": "grid", "params": {"lr": {"kind": "choice", "value": [0.1, 0.01]}, "bs": {"kind": "range", "value": [16, 64, 16]}}}"#,
        );
        let mut t = for_matrix(&m, None).unwrap();
        let all = t.ask(100);
        assert_eq!(all.len(), 6);
        let pairs: Vec<(f64, i64)> = all
            .iter()
            .map(|a| {
                (
                    a.params[0].1.as_f64().unwrap(),
                    a.params[1].1.as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            pairs,
            [
                (0.1, 16),
                (0.1, 32),
                (0.1, 48),
                (0.01, 16),
                (0.01, 32),
                (0.01, 48)
            ]
        );
        assert!(t.exhausted());
        let mut capped = for_matrix(&m, Some(4)).unwrap();
        assert_eq!(capped.ask(100).len(), 4);
    }

    #[test]
    fn model_tuners_optimize_their_metric_in_its_direction() {
        for kind in ["bayes", "tpe", "hyperopt"] {
            let budget = match kind {
                "bayes" => r#""numInitialRuns": 5, "maxIterations": 20"#,
                _ => r#""numRuns": 25"#,
            };
            let m: Matrix = crate::scheduler::spec_of(&format!(
                r#"{{"kind": "{kind}", {budget}, "seed": 1, "metric": {{"name": "acc", "optimization": "maximize"}}, "params": {{"x": {{"kind": "uniform", "value": [0, 10]}}, "act": {{"kind": "choice", "value": ["relu", "tanh"]}}}}}}"#
            ));
            let mut t = for_matrix(&m, None).unwrap();
            let mut best = f64::NEG_INFINITY;
            let mut asked = 0;
            while !t.exhausted() {
                // Two at a time, as with concurrency 2.
                let batch = t.ask(2);
                for a in &batch {
                    let x = a
                        .params
                        .iter()
                        .find(|p| p.0 == "x")
                        .unwrap()
                        .1
                        .as_f64()
                        .unwrap();
                    let act = a.params.iter().find(|p| p.0 == "act").unwrap().1.clone();
                    assert!(act == "relu" || act == "tanh");
                    let acc = -(x - 7.0).powi(2) + if act == "tanh" { 1.0 } else { 0.0 };
                    best = best.max(acc);
                    t.tell(a.id, Some(acc));
                }
                asked += batch.len();
            }
            assert_eq!(asked, 25, "{kind}");
            assert!(best > 0.5, "{kind}: {best}");
        }
        let m: Matrix = crate::scheduler::spec_of(r#"{"kind": "iterative", "maxIterations": 3}"#);
        assert!(
            for_matrix(&m, None)
                .err()
                .is_some_and(|e| e.contains("tuner"))
        );
    }

    #[test]
    fn random_is_reproducible_with_a_seed() {
        let m: Matrix = crate::scheduler::spec_of(
            r#"{"kind": "random", "numRuns": 5, "seed": 9, "params": {"lr": {"kind": "loguniform", "value": [-9, -2]}}}"#,
        );
        let a = for_matrix(&m, None).unwrap().ask(10);
        let b = for_matrix(&m, None).unwrap().ask(10);
        assert_eq!(a.len(), 5);
        assert_eq!(a, b);
    }
}
