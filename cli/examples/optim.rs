//! For `bench/optim_bench.py`: our optimizers on Branin and Hartmann6, as `polyaxon run`'s
//! searches use them. Prints one JSON object per (algorithm, function, seed): the best value
//! after every trial and the time each proposal took.
//!
//! ```text
//! optim ALGO FUNC SEEDS TRIALS      ALGO: random|tpe|bayes  FUNC: branin|hartmann6
//! ```

use std::time::Instant;

use polyaxon_cli::scheduler::gp::BayesOpt;
use polyaxon_cli::scheduler::rng::Rng;
use polyaxon_cli::scheduler::space::{Dim, Space};
use polyaxon_cli::scheduler::tpe::Tpe;

fn branin(u: &[f64]) -> f64 {
    let x1 = -5.0 + 15.0 * u[0];
    let x2 = 15.0 * u[1];
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

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 4 {
        eprintln!("usage: optim random|tpe|bayes branin|hartmann6 SEEDS TRIALS");
        std::process::exit(2);
    }
    let (algo, func) = (args[0].as_str(), args[1].as_str());
    let seeds: u64 = args[2].parse().expect("SEEDS");
    let trials: usize = args[3].parse().expect("TRIALS");
    let (f, d): (fn(&[f64]) -> f64, usize) = match func {
        "branin" => (branin, 2),
        "hartmann6" => (hartmann6, 6),
        other => panic!("unknown function {other}"),
    };
    let space = Space {
        names: (0..d).map(|i| format!("x{i}")).collect(),
        dims: (0..d)
            .map(|_| Dim::Num {
                low: 0.0,
                high: 1.0,
                log: false,
                q: None,
            })
            .collect(),
    };
    for seed in 0..seeds {
        let mut rng = Rng::seeded(seed);
        let mut best = Vec::with_capacity(trials);
        let mut times = Vec::with_capacity(trials);
        let mut b = f64::INFINITY;
        let mut tpe = Tpe::new(space.clone(), Rng::seeded(seed));
        let mut bayes = BayesOpt::new(space.clone(), Rng::seeded(seed));
        // Tuning knobs (GP_* variables), for exploring the settings.
        let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<usize>().ok());
        if let Some(v) = env("GP_EXPLOIT") {
            bayes.exploit_every = v;
        }
        if let Some(v) = env("GP_FIT") {
            bayes.fit_iterations = v;
        }
        if let Some(v) = env("GP_REFIT") {
            bayes.refit_every = v;
        }
        if let Some(v) = env("GP_RANDOM") {
            bayes.search.random = v;
        }
        if let Some(v) = env("GP_NEAR") {
            bayes.search.near = v;
        }
        if let Some(v) = env("GP_STARTS") {
            bayes.search.starts = v;
        }
        if let Some(v) = env("GP_ITERS") {
            bayes.search.iters = v;
        }
        for _ in 0..trials {
            let t = Instant::now();
            let x = match algo {
                "random" => space.random(&mut rng),
                "tpe" => tpe.suggest(&[]),
                "bayes" => bayes.suggest(&[]),
                other => panic!("unknown algorithm {other}"),
            };
            times.push(t.elapsed().as_secs_f64() * 1e3);
            let y = f(&x);
            b = b.min(y);
            best.push(b);
            match algo {
                "tpe" => tpe.observe(x, y),
                "bayes" => bayes.observe(&x, y),
                _ => {}
            }
        }
        println!(
            "{}",
            serde_json::json!({"algo": algo, "func": func, "seed": seed, "best": best, "ms": times})
        );
    }
}
