//! Tuners: which trials a search runs next. Grid, random and mapping know every trial up
//! front; hyperband runs successive halving in brackets (Li et al. 2018), promoting the best
//! trials of each rung to the next with more of the resource.

use polyaxonfile::space;
use polyaxonfile::spec::{
    AcquisitionFunction, GaussianProcessKernel, HpParam, HyperoptAlgorithm, Matrix, Optimization,
    OptimizationMetric, ResourceType,
};
use serde_json::Value as J;

use super::gp::{self, Acquisition, BayesOpt, Kernel};
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
    // With a seed, a model's proposals repeat whatever the order trials end in.
    let concurrency = m.concurrency().filter(|c| *c > 0).unwrap_or(1) as usize;
    let model = |t: Model, seed: Option<i64>| -> Box<dyn Tuner> {
        match seed {
            Some(_) => Box::new(t.repeatable(concurrency)),
            None => Box::new(t),
        }
    };
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
                if let Some(g) = &u.gaussian_process {
                    opt.kernel = match (g.kernel, g.nu) {
                        (Some(GaussianProcessKernel::Rbf), _) => Kernel::Rbf,
                        (_, Some(nu)) => Kernel::matern(nu)?,
                        _ => Kernel::Matern52,
                    };
                    if let Some(l) = g.length_scale {
                        if !(l > 0.0 && l.is_finite()) {
                            return Err(format!(
                                "gaussianProcess.lengthScale is {l}: give a positive number (on the unit interval each param is mapped to; 0.2 when unset)"
                            ));
                        }
                        opt.length_scale = l.clamp(0.005, 20.0);
                    }
                    if let Some(r) = g.num_restarts_optimizer {
                        opt.restarts = r.clamp(0, 100) as usize;
                    }
                }
                if let Some(w) = u.num_warmup {
                    opt.search.random = w.clamp(1, 1_000_000) as usize;
                }
                if let Some(i) = u.num_iterations {
                    opt.search.starts = i.clamp(1, 1_000) as usize;
                }
            }
            let total = (b.num_initial_runs + b.max_iterations).max(0) as usize;
            Ok(model(
                Model::new(
                    space,
                    Algo::Bayes(Box::new(opt)),
                    b.metric.clone(),
                    cap(total),
                ),
                b.seed,
            ))
        }
        Matrix::Tpe(t) => {
            let space = Space::new(&params(Some(&t.params)))?;
            let total = t
                .num_runs
                .or(t.max_iterations)
                .ok_or("tpe needs `numRuns` (or `maxIterations`)")?
                .max(0) as usize;
            let algo = Algo::Tpe(Box::new(Tpe::new(space.clone(), rng(t.seed))));
            Ok(model(
                Model::new(space, algo, t.metric.clone(), cap(total)),
                t.seed,
            ))
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
            Ok(model(Model::new(space, algo, metric, cap(total)), h.seed))
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
///
/// With a `seed`, a search repeats: trial `i` is proposed from exactly the results of trials
/// `0 ..= i - concurrency` (in trial order) with trials `i - concurrency + 1 .. i` pending, so
/// the proposals are a function of the seed and of the results by trial index, not of the order
/// in which trials end. The price: a slot waits for the oldest trial of the window to end
/// (a slow trial holds one back). Without a seed, every result is used as soon as it arrives.
pub struct Model {
    space: Space,
    algo: Algo,
    metric: OptimizationMetric,
    total: usize,
    next: usize,
    /// Trials asked and not yet given to the algorithm: their points.
    pending: std::collections::BTreeMap<usize, Vec<f64>>,
    /// Results told and not yet given to the algorithm (repeatable searches).
    told: std::collections::BTreeMap<usize, Option<f64>>,
    /// Repeatable searches: the concurrency (trial `i` waits for trials up to `i - window`).
    window: Option<usize>,
    /// Trials `0 .. applied` were given to the algorithm (repeatable searches).
    applied: usize,
    /// Points given to the algorithm (failed ones too): not proposed again.
    evaluated: Vec<Vec<f64>>,
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
            told: Default::default(),
            window: None,
            applied: 0,
            evaluated: Vec::new(),
            seen: Vec::new(),
        }
    }

    /// Proposals as a function of the results by trial index, `concurrency` trials at once.
    pub fn repeatable(mut self, concurrency: usize) -> Model {
        self.window = Some(concurrency.max(1));
        self
    }

    fn propose(&mut self) -> Vec<f64> {
        let pending: Vec<Vec<f64>> = self.pending.values().cloned().collect();
        // A proposal on a point evaluated or pending is drawn again (a few times: a space of
        // few categories may have no other point left).
        let mut x = self.propose_once(&pending);
        for _ in 0..3 {
            if !(gp::too_close(&x, &self.evaluated) || gp::too_close(&x, &pending)) {
                break;
            }
            x = self.propose_once(&pending);
        }
        x
    }

    /// A proposal for trial `next`.
    fn propose_once(&mut self, pending: &[Vec<f64>]) -> Vec<f64> {
        let index = self.next;
        match &mut self.algo {
            Algo::Tpe(t) => t.suggest(index, pending),
            Algo::Bayes(b) => b.suggest(index, pending),
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

    /// Gives trial `id`'s result to the algorithm.
    fn apply(&mut self, id: usize, value: Option<f64>) {
        let Some(x) = self.pending.remove(&id) else {
            return;
        };
        self.evaluated.push(x.clone());
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
}

impl Tuner for Model {
    fn ask(&mut self, n: usize) -> Vec<Ask> {
        let mut out = Vec::new();
        while out.len() < n && self.next < self.total {
            if let Some(window) = self.window {
                // Trial `next` sees exactly the results of the trials before `next + 1 - window`.
                let need = (self.next + 1).saturating_sub(window);
                while self.applied < need {
                    let Some(v) = self.told.remove(&self.applied) else {
                        return out; // waiting for the oldest trial of the window
                    };
                    self.apply(self.applied, v);
                    self.applied += 1;
                }
            }
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
        if !self.pending.contains_key(&id) {
            return;
        }
        match self.window {
            Some(_) => {
                self.told.insert(id, value);
            }
            None => self.apply(id, value),
        }
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

/// Hyperband: brackets from the most exploratory (many trials, little resource) to the least;
/// in each, successive halving over its rungs. Brackets are independent, so under concurrency
/// the next bracket starts while the open ones wait for the last results of a rung: no slot
/// idles while there is a trial to run. Every bracket's first rung is drawn up front, in
/// bracket order, so with a seed the trials (params and resource) repeat whatever the order
/// results arrive in; only their numbering follows the order they were asked for.
pub struct Hyperband {
    brackets: Vec<space::Bracket>,
    state: Vec<BracketState>,
    /// Brackets `0 .. opened` are under way.
    opened: usize,
    resource: String,
    integral: bool,
    metric: OptimizationMetric,
    resume: bool,
    next_id: usize,
}

#[derive(Default)]
struct BracketState {
    rung: usize,
    /// This rung's configurations still to ask for (params, the trial continued).
    queue: Vec<(Params, Option<usize>)>,
    /// This rung's trials: (id, params without the resource, result once told).
    current: Vec<(usize, Params, Option<Option<f64>>)>,
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
        mut rng: Rng,
    ) -> Result<Hyperband, String> {
        let brackets = space::hyperband_brackets(max_iterations, eta)?;
        let params: Vec<(String, HpParam)> =
            params.into_iter().filter(|(n, _)| *n != resource).collect();
        let mut state = Vec::new();
        for b in &brackets {
            let n = b.rungs[0].0 as usize;
            let mut queue = Vec::with_capacity(n);
            for _ in 0..n {
                queue.push((sample_all(&params, &mut rng)?, None));
            }
            queue.reverse(); // asked in order
            state.push(BracketState {
                queue,
                ..Default::default()
            });
        }
        Ok(Hyperband {
            brackets,
            state,
            opened: 1,
            resource,
            integral,
            metric,
            resume,
            next_id: 0,
        })
    }

    /// The brackets (for people: `ops get` and the search view).
    pub fn brackets(&self) -> &[space::Bracket] {
        &self.brackets
    }

    fn resource_value(&self, bracket: usize) -> J {
        let r = self.brackets[bracket].rungs[self.state[bracket].rung].1;
        if self.integral {
            J::from(r.round() as i64)
        } else {
            serde_json::Number::from_f64(r)
                .map(J::Number)
                .unwrap_or(J::Null)
        }
    }

    /// A bracket's rung is complete: its best go on to the next rung, or the bracket ends.
    fn advance(&mut self, bracket: usize) {
        let b = &self.brackets[bracket];
        let st = &mut self.state[bracket];
        if st.rung + 1 < b.rungs.len() {
            let keep = b.rungs[st.rung + 1].0 as usize;
            let mut ranked: Vec<_> = st.current.drain(..).collect();
            let metric = self.metric.clone();
            ranked.sort_by(|a, b| {
                best_first(&metric, a.2.flatten(), b.2.flatten()).then(a.0.cmp(&b.0))
            });
            st.rung += 1;
            let resume = self.resume;
            st.queue = ranked
                .into_iter()
                .take(keep)
                .map(|(id, p, _)| (p, resume.then_some(id)))
                .collect();
            st.queue.reverse();
        } else {
            st.current.clear();
            st.done = true;
        }
    }
}

impl Tuner for Hyperband {
    fn ask(&mut self, n: usize) -> Vec<Ask> {
        let mut out = Vec::new();
        while out.len() < n {
            // The first open bracket with a trial to run; else the next bracket opens.
            let Some(b) = (0..self.opened).find(|b| !self.state[*b].queue.is_empty()) else {
                if self.opened < self.brackets.len() {
                    self.opened += 1;
                    continue;
                }
                break; // waiting for results
            };
            let Some((params, resume_of)) = self.state[b].queue.pop() else {
                break;
            };
            let id = self.next_id;
            self.next_id += 1;
            let mut with_resource = params.clone();
            with_resource.push((self.resource.clone(), self.resource_value(b)));
            out.push(Ask {
                id,
                params: with_resource,
                resume_of,
                note: format!(
                    "bracket {}, rung {}",
                    self.brackets[b].s, self.state[b].rung
                ),
            });
            self.state[b].current.push((id, params, None));
        }
        out
    }

    fn tell(&mut self, id: usize, value: Option<f64>) {
        let Some(b) = (0..self.opened).find(|b| self.state[*b].current.iter().any(|t| t.0 == id))
        else {
            return;
        };
        if let Some(t) = self.state[b].current.iter_mut().find(|t| t.0 == id) {
            t.2 = Some(value);
        }
        loop {
            let st = &self.state[b];
            if st.done
                || !st.queue.is_empty()
                || st.current.is_empty()
                || !st.current.iter().all(|t| t.2.is_some())
            {
                break;
            }
            self.advance(b);
        }
    }

    fn exhausted(&self) -> bool {
        self.opened == self.brackets.len()
            && self
                .state
                .iter()
                .all(|s| s.done || (s.queue.is_empty() && s.current.is_empty()))
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
        let first = h.ask(9);
        assert_eq!(first.len(), 9);
        assert!(
            first
                .iter()
                .all(|a| a.params[1] == ("epochs".into(), J::from(1)))
        );
        // While that rung waits, the other brackets start: s=1 (5 at 3 epochs, as
        // ceil(3/2 * 3) = 5) and s=0 (3 at 9).
        let others = h.ask(100);
        assert_eq!(others.len(), 8);
        assert!(others[..5].iter().all(|a| a.params[1].1 == 3));
        assert!(others[5..].iter().all(|a| a.params[1].1 == 9));
        assert!(h.ask(1).is_empty(), "every rung waits for its results");
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
        // Bracket s=1's first rung ends: its best goes on to 9 epochs.
        for a in &others[..5] {
            h.tell(a.id, Some(lr_of(a)));
        }
        let r = h.ask(100);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].params[1].1, J::from(9));
        assert!(!h.exhausted());
        h.tell(r[0].id, Some(0.0));
        for a in &others[5..] {
            assert!(a.resume_of.is_none());
            h.tell(a.id, Some(1.0));
        }
        assert!(h.exhausted());
        assert!(h.ask(10).is_empty());
    }

    #[test]
    fn hyperband_trials_repeat_whatever_order_results_arrive_in() {
        let spec = r#"{"kind": "hyperband", "maxIterations": 27, "eta": 3, "seed": 5, "concurrency": 6,
            "resource": {"name": "epochs", "type": "int"}, "metric": {"name": "loss", "optimization": "minimize"},
            "params": {"x": {"kind": "uniform", "value": [-5, 10]}, "y": {"kind": "uniform", "value": [0, 15]}}}"#;
        let set = |order: fn(usize) -> u64| {
            let mut trials: Vec<String> = drive(spec, 6, branin, order)
                .iter()
                .map(|a| format!("{:?}", a.params))
                .collect();
            trials.sort();
            trials
        };
        let a = set(|id| id as u64);
        let b = set(|id| ((id * 7919) % 17) as u64 * 1000 + id as u64);
        let total: u64 = space::hyperband_brackets(27.0, 3.0)
            .unwrap()
            .iter()
            .flat_map(|b| b.rungs.iter().map(|r| r.0))
            .sum();
        assert_eq!(a.len() as u64, total);
        assert_eq!(a, b);
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

    /// Drives a search as the controller does, `concurrency` trials at once, ending them in the
    /// order `order` gives (a permutation key per trial): the trials asked, in order.
    fn drive(
        spec: &str,
        concurrency: usize,
        f: impl Fn(&[f64]) -> f64,
        order: impl Fn(usize) -> u64,
    ) -> Vec<Ask> {
        let m: Matrix = crate::scheduler::spec_of(spec);
        let mut t = for_matrix(&m, None).unwrap();
        let mut asked: Vec<Ask> = Vec::new();
        let mut running: Vec<Ask> = Vec::new();
        loop {
            if running.len() < concurrency {
                let new = t.ask(concurrency - running.len());
                running.extend(new.iter().cloned());
                asked.extend(new);
            }
            // The running trial that ends first.
            let Some(i) = (0..running.len()).min_by_key(|i| order(running[*i].id)) else {
                break;
            };
            let a = running.swap_remove(i);
            let x: Vec<f64> = a.params.iter().map(|p| p.1.as_f64().unwrap()).collect();
            t.tell(a.id, Some(f(&x)));
        }
        asked
    }

    fn branin(x: &[f64]) -> f64 {
        let pi = std::f64::consts::PI;
        let (b, c, t) = (5.1 / (4.0 * pi * pi), 5.0 / pi, 1.0 / (8.0 * pi));
        (x[1] - b * x[0] * x[0] + c * x[0] - 6.0).powi(2) + 10.0 * (1.0 - t) * x[0].cos() + 10.0
    }

    const BAYES: &str = r#"{"kind": "bayes", "numInitialRuns": 10, "maxIterations": 30, "seed": SEED,
        "concurrency": C, "metric": {"name": "loss", "optimization": "minimize"},
        "utilityFunction": {"acquisitionFunction": "ei", "eps": 0.01, "gaussianProcess": {"kernel": "matern", "nu": 2.5}},
        "params": {"x": {"kind": "uniform", "value": [-5, 10]}, "y": {"kind": "uniform", "value": [0, 15]}}}"#;

    #[test]
    fn a_seeded_search_repeats_whatever_order_its_trials_end_in() {
        for (kind, spec) in [
            ("bayes", BAYES.to_string()),
            (
                "tpe",
                r#"{"kind": "tpe", "numRuns": 40, "seed": SEED, "concurrency": C, "metric": {"name": "loss", "optimization": "minimize"},
                "params": {"x": {"kind": "uniform", "value": [-5, 10]}, "y": {"kind": "uniform", "value": [0, 15]}}}"#.to_string(),
            ),
            (
                "hyperopt",
                r#"{"kind": "hyperopt", "numRuns": 40, "seed": SEED, "concurrency": C, "metric": {"name": "loss", "optimization": "minimize"},
                "params": {"x": {"kind": "uniform", "value": [-5, 10]}, "y": {"kind": "uniform", "value": [0, 15]}}}"#.to_string(),
            ),
        ] {
            let spec = spec.replace("SEED", "3").replace("C", "4");
            // In the order asked, and in an order where later trials often end first.
            let a = drive(&spec, 4, branin, |id| id as u64);
            let b = drive(&spec, 4, branin, |id| ((id * 7919) % 13) as u64 * 1000 + id as u64);
            assert_eq!(a.len(), 40, "{kind}");
            assert_eq!(a, b, "{kind}: the same trials whatever the order of results");
        }
    }

    #[test]
    fn bayes_under_concurrency_spreads_its_batch_and_keeps_exploring() {
        for c in [2usize, 4] {
            for seed in 0..3 {
                let spec = BAYES
                    .replace("SEED", &seed.to_string())
                    .replace("C", &c.to_string());
                let asked = drive(&spec, c, branin, |id| {
                    ((id * 31) % 7) as u64 * 100 + id as u64
                });
                let pts: Vec<(f64, f64)> = asked
                    .iter()
                    .map(|a| {
                        (
                            a.params[0].1.as_f64().unwrap(),
                            a.params[1].1.as_f64().unwrap(),
                        )
                    })
                    .collect();
                // No point proposed twice (within the guard's distance; refinements near the
                // optimum come closer than 1e-4 of the range, and should).
                for i in 0..pts.len() {
                    for j in 0..i {
                        let d = ((pts[i].0 - pts[j].0) / 15.0)
                            .abs()
                            .max(((pts[i].1 - pts[j].1) / 15.0).abs());
                        assert!(
                            d >= gp::TOO_CLOSE,
                            "c={c} seed={seed}: trials {j} and {i} at {:?}",
                            pts[i]
                        );
                    }
                }
                // The model's trials do not collapse onto one point: they span some of the
                // space.
                let model = &pts[10..];
                let spread = |k: fn(&(f64, f64)) -> f64| {
                    let v: Vec<f64> = model.iter().map(k).collect();
                    v.iter().cloned().fold(f64::MIN, f64::max)
                        - v.iter().cloned().fold(f64::MAX, f64::min)
                };
                assert!(
                    spread(|p| p.0) > 1.5 || spread(|p| p.1) > 1.5,
                    "c={c} seed={seed}: the model's trials crowd one point: {model:?}"
                );
                let best = pts
                    .iter()
                    .map(|p| branin(&[p.0, p.1]))
                    .fold(f64::MAX, f64::min);
                assert!(best < 1.0, "c={c} seed={seed}: best {best}");
            }
        }
    }

    #[test]
    fn gaussian_process_settings_are_read_or_refused() {
        let spec = |gp: &str| {
            format!(
                r#"{{"kind": "bayes", "numInitialRuns": 2, "maxIterations": 4, "metric": {{"name": "loss", "optimization": "minimize"}},
                "utilityFunction": {{"acquisitionFunction": "ucb", "kappa": 1.0, "numWarmup": 500, "numIterations": 3, "gaussianProcess": {gp}}},
                "params": {{"x": {{"kind": "uniform", "value": [0, 1]}}}}}}"#
            )
        };
        for ok in [
            r#"{"kernel": "matern", "nu": 0.5, "lengthScale": 1.0, "numRestartsOptimizer": 2}"#,
            r#"{"kernel": "matern", "nu": 1.5}"#,
            r#"{"kernel": "matern", "nu": 1.9}"#,
            r#"{"kernel": "rbf"}"#,
        ] {
            let m: Matrix = crate::scheduler::spec_of(&spec(ok));
            let mut t = for_matrix(&m, None).unwrap();
            // Runs its budget on a smooth function with those settings.
            let mut n = 0;
            while !t.exhausted() {
                for a in t.ask(1) {
                    let x = a.params[0].1.as_f64().unwrap();
                    t.tell(a.id, Some((x - 0.3).powi(2)));
                    n += 1;
                }
            }
            assert_eq!(n, 6, "{ok}");
        }
        for (bad, says) in [
            (r#"{"kernel": "matern", "nu": 0}"#, "at least 0.05"),
            (r#"{"kernel": "matern", "nu": -1.5}"#, "at least 0.05"),
            (r#"{"lengthScale": -1}"#, "positive number"),
        ] {
            let m: Matrix = crate::scheduler::spec_of(&spec(bad));
            let err = check(&m).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
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
