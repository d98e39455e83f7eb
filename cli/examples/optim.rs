//! For `bench/optim_bench.py`: our searches on Branin and Hartmann6 as `polyaxon run` drives
//! them — a `matrix` read from the same spec fields (`numInitialRuns`, `maxIterations`,
//! `concurrency`, `utilityFunction.*`, `gaussianProcess.*`, the params' distributions, `seed`),
//! its tuner built by `scheduler::tuner::for_matrix`, asked for up to `concurrency` trials at
//! a time and told each result when the trial ends, as the search controller does. Trial
//! durations are simulated (a function of the seed and the trial's index, the same as the
//! Python side's), so trials end out of order. Prints one JSON object per (algorithm,
//! function, seed): the best value among the first k trials for every k, the time each
//! proposal took, and the trials' params.
//!
//! ```text
//! optim ALGO FUNC SEEDS TRIALS [CONCURRENCY]   ALGO: random|tpe|bayes|hyperopt
//!                                              FUNC: branin|hartmann6
//! ```
//! `OPTIM_SPEC` (a JSON mapping) is merged into the matrix, for exploring the settings.

use std::time::Instant;

use polyaxon_cli::scheduler::tuner::{self, Tuner};
use polyaxonfile::spec::Matrix;
use serde_json::{Map, Value as J, json};

fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let pi = std::f64::consts::PI;
    let (a, b, c, r, s, t) = (
        1.0,
        5.1 / (4.0 * pi * pi),
        5.0 / pi,
        6.0,
        10.0,
        1.0 / (8.0 * pi),
    );
    a * (x2 - b * x1 * x1 + c * x1 - r).powi(2) + s * (1.0 - t) * x1.cos() + s
}

fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    -(0..4)
        .map(|i| {
            let s: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-s).exp()
        })
        .sum::<f64>()
}

/// A trial's simulated duration: between 1 and 2, a function of the seed and the trial.
/// `bench/optim_bench.py` computes the same.
pub fn duration(seed: u64, trial: usize) -> f64 {
    let v = ((trial as f64 + 1.0) * 12.9898 + (seed as f64 + 1.0) * 78.233).sin() * 43758.5453;
    1.0 + (v - v.floor())
}

/// The matrix a user would write for this benchmark.
fn matrix(algo: &str, func: &str, seed: u64, trials: usize, concurrency: usize) -> Matrix {
    let params: Map<String, J> = match func {
        "branin" => [
            (
                "x1".to_string(),
                json!({"kind": "uniform", "value": [-5, 10]}),
            ),
            (
                "x2".to_string(),
                json!({"kind": "uniform", "value": [0, 15]}),
            ),
        ]
        .into_iter()
        .collect(),
        _ => (0..6)
            .map(|i| (format!("x{i}"), json!({"kind": "uniform", "value": [0, 1]})))
            .collect(),
    };
    let metric = json!({"name": "loss", "optimization": "minimize"});
    let mut m = match algo {
        "bayes" => json!({
            "kind": "bayes",
            "numInitialRuns": 10,
            "maxIterations": trials.saturating_sub(10),
            "utilityFunction": {
                "acquisitionFunction": "ei",
                "gaussianProcess": {"kernel": "matern", "nu": 2.5},
            },
        }),
        "tpe" => json!({"kind": "tpe", "numRuns": trials}),
        "hyperopt" => json!({"kind": "hyperopt", "algorithm": "tpe", "numRuns": trials}),
        "random" => json!({"kind": "random", "numRuns": trials}),
        other => panic!("unknown algorithm {other}"),
    };
    let o = m.as_object_mut().unwrap();
    o.insert("params".into(), J::Object(params));
    o.insert("seed".into(), json!(seed));
    o.insert("concurrency".into(), json!(concurrency));
    if algo != "random" {
        o.insert("metric".into(), metric);
    }
    if let Ok(extra) = std::env::var("OPTIM_SPEC") {
        let extra: Map<String, J> = serde_json::from_str(&extra).expect("OPTIM_SPEC: a mapping");
        o.extend(extra);
    }
    let text = serde_json::to_string(&m).unwrap();
    let node = polyaxonfile::yaml::parse(&text, 0).expect("the matrix parses");
    polyaxonfile::de::from_node(&node, &polyaxonfile::de::Ctx::strict(), &[])
        .unwrap_or_else(|e| panic!("the matrix {text}: {e:?}"))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(4..=5).contains(&args.len()) {
        eprintln!(
            "usage: optim random|tpe|bayes|hyperopt branin|hartmann6 SEEDS TRIALS [CONCURRENCY]"
        );
        std::process::exit(2);
    }
    let (algo, func) = (args[0].as_str(), args[1].as_str());
    let seeds: u64 = args[2].parse().expect("SEEDS");
    let trials: usize = args[3].parse().expect("TRIALS");
    let concurrency: usize = args.get(4).map_or(1, |c| c.parse().expect("CONCURRENCY"));
    let f: fn(&[f64]) -> f64 = match func {
        "branin" => branin,
        "hartmann6" => hartmann6,
        other => panic!("unknown function {other}"),
    };
    for seed in 0..seeds {
        let m = matrix(algo, func, seed, trials, concurrency);
        let mut tuner: Box<dyn Tuner> = tuner::for_matrix(&m, None).expect("a tuner");
        let mut values: Vec<Option<f64>> = vec![None; trials];
        let mut params: Vec<Vec<f64>> = vec![Vec::new(); trials];
        let mut ms = Vec::new();
        // (ends at, trial, value)
        let mut running: Vec<(f64, usize, f64)> = Vec::new();
        let mut now = 0.0;
        loop {
            if running.len() < concurrency && !tuner.exhausted() {
                let t = Instant::now();
                let asks = tuner.ask(concurrency - running.len());
                let took = t.elapsed().as_secs_f64() * 1e3;
                for a in &asks {
                    ms.push(took / asks.len() as f64);
                    let x: Vec<f64> = a.params.iter().map(|(_, v)| v.as_f64().unwrap()).collect();
                    let y = f(&x);
                    params[a.id] = x;
                    running.push((now + duration(seed, a.id), a.id, y));
                }
            }
            let Some(i) = (0..running.len()).min_by(|a, b| running[*a].0.total_cmp(&running[*b].0))
            else {
                break;
            };
            let (end, id, y) = running.swap_remove(i);
            now = end;
            values[id] = Some(y);
            tuner.tell(id, Some(y));
        }
        let mut best = Vec::with_capacity(trials);
        let mut b = f64::INFINITY;
        for v in &values {
            b = b.min(v.unwrap_or(f64::INFINITY));
            best.push(b);
        }
        println!(
            "{}",
            json!({"algo": algo, "func": func, "seed": seed, "concurrency": concurrency, "best": best, "ms": ms, "params": params})
        );
    }
}
