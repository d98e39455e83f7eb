//! Drawing a param's value: the discrete params (choice, pchoice with its weights, range,
//! linspace, logspace, geomspace, dates) uniformly among their values or by weight; the
//! distributions as hyperopt (and so upstream) defines them: `uniform(low, high)`,
//! `quniform = round(uniform / q) * q`, `loguniform = exp(uniform(low, high))` (the bounds are
//! logs), `qloguniform = round(loguniform / q) * q`, `normal(loc, scale)`, `qnormal`,
//! `lognormal = exp(normal)`, `qlognormal`.

use polyaxonfile::space;
use polyaxonfile::spec::HpParam;
use serde_json::Value as J;

use super::rng::Rng;

fn num(x: f64) -> J {
    serde_json::Number::from_f64(x)
        .map(J::Number)
        .unwrap_or(J::Null)
}

/// `round(x / q) * q`, as an integer when q and the result are whole.
fn quantize(x: f64, q: f64) -> J {
    let v = (x / q).round() * q;
    if q.fract() == 0.0 && v.fract() == 0.0 && v.abs() < 9.0e15 {
        J::from(v as i64)
    } else {
        num(v)
    }
}

/// One value of `p`. Errors name what is wrong with the param (checked specs do not fail).
pub fn sample(p: &HpParam, rng: &mut Rng) -> Result<J, String> {
    match p {
        HpParam::PChoice(c) => {
            if c.value.is_empty() {
                return Err("it has no values".into());
            }
            let weights: Vec<f64> = c.value.iter().map(|(_, w)| w.max(0.0)).collect();
            if weights.iter().sum::<f64>() <= 0.0 {
                return Err("its probabilities are all 0".into());
            }
            Ok(c.value[rng.weighted(&weights)].0.clone())
        }
        HpParam::Uniform(b) => Ok(num(rng.uniform(b.value.low, b.value.high))),
        HpParam::QUniform(b) => Ok(quantize(rng.uniform(b.value.low, b.value.high), b.value.q)),
        HpParam::LogUniform(b) => Ok(num(rng.uniform(b.value.low, b.value.high).exp())),
        HpParam::QLogUniform(b) => Ok(quantize(
            rng.uniform(b.value.low, b.value.high).exp(),
            b.value.q,
        )),
        HpParam::Normal(g) => Ok(num(g.value.loc + g.value.scale * rng.normal())),
        HpParam::QNormal(g) => Ok(quantize(
            g.value.loc + g.value.scale * rng.normal(),
            g.value.q,
        )),
        HpParam::LogNormal(g) => Ok(num((g.value.loc + g.value.scale * rng.normal()).exp())),
        HpParam::QLogNormal(g) => Ok(quantize(
            (g.value.loc + g.value.scale * rng.normal()).exp(),
            g.value.q,
        )),
        discrete => {
            let values = space::values(discrete)
                .ok_or_else(|| format!("a {} param cannot be sampled", discrete.kind()))??;
            if values.is_empty() {
                return Err("it has no values".into());
            }
            Ok(values[rng.below(values.len())].clone())
        }
    }
}

/// Values for every param, in order.
pub fn sample_all(params: &[(String, HpParam)], rng: &mut Rng) -> Result<Vec<(String, J)>, String> {
    params
        .iter()
        .map(|(n, p)| {
            sample(p, rng)
                .map(|v| (n.clone(), v))
                .map_err(|e| format!("`{n}`: {e}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn param(text: &str) -> HpParam {
        crate::scheduler::spec_of(text)
    }

    fn draws(p: &HpParam, n: usize, seed: u64) -> Vec<f64> {
        let mut r = Rng::seeded(seed);
        (0..n)
            .map(|_| sample(p, &mut r).unwrap().as_f64().unwrap())
            .collect()
    }

    fn mean_var(xs: &[f64]) -> (f64, f64) {
        let m = xs.iter().sum::<f64>() / xs.len() as f64;
        (
            m,
            xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / xs.len() as f64,
        )
    }

    #[test]
    fn uniform_bounds_and_moments() {
        let xs = draws(
            &param(r#"{"kind": "uniform", "value": [2, 6]}"#),
            100_000,
            1,
        );
        assert!(xs.iter().all(|x| (2.0..6.0).contains(x)));
        let (m, v) = mean_var(&xs);
        assert!((m - 4.0).abs() < 0.02, "{m}");
        assert!((v - 16.0 / 12.0).abs() < 0.02, "{v}");
    }

    #[test]
    fn quantized_values_are_multiples_of_q() {
        let xs = draws(
            &param(r#"{"kind": "quniform", "value": [0, 10, 2]}"#),
            10_000,
            2,
        );
        assert!(
            xs.iter()
                .all(|x| (x / 2.0).fract() == 0.0 && (0.0..=10.0).contains(x))
        );
        // Rounding makes the ends half as likely as the inner values.
        let ends = xs.iter().filter(|x| **x == 0.0 || **x == 10.0).count() as f64 / 1e4;
        assert!((ends - 0.2).abs() < 0.02, "{ends}");
        let xs = draws(
            &param(r#"{"kind": "qloguniform", "value": [0, 4.6, 5]}"#),
            5_000,
            3,
        );
        assert!(xs.iter().all(|x| (x / 5.0).fract() == 0.0 && *x <= 100.0));
        let xs = draws(
            &param(r#"{"kind": "qnormal", "value": [10, 3, 0.5]}"#),
            5_000,
            4,
        );
        assert!(xs.iter().all(|x| (x / 0.5).fract() == 0.0));
    }

    #[test]
    fn log_distributions_are_uniform_or_normal_in_log_space() {
        let xs = draws(
            &param(r#"{"kind": "loguniform", "value": [-6.9, -2.3]}"#),
            50_000,
            5,
        );
        assert!(
            xs.iter()
                .all(|x| ((-6.9f64).exp()..(-2.3f64).exp()).contains(x))
        );
        let logs: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
        let (m, _) = mean_var(&logs);
        assert!((m + 4.6).abs() < 0.02, "{m}");
        let xs = draws(
            &param(r#"{"kind": "lognormal", "value": [0, 0.5]}"#),
            50_000,
            6,
        );
        let logs: Vec<f64> = xs.iter().map(|x| x.ln()).collect();
        let (m, v) = mean_var(&logs);
        assert!(m.abs() < 0.01 && (v - 0.25).abs() < 0.01, "{m} {v}");
        let xs = draws(&param(r#"{"kind": "normal", "value": [3, 2]}"#), 50_000, 7);
        let (m, v) = mean_var(&xs);
        assert!((m - 3.0).abs() < 0.03 && (v - 4.0).abs() < 0.08, "{m} {v}");
    }

    #[test]
    fn discrete_params_and_weights() {
        let mut r = Rng::seeded(8);
        let p = param(r#"{"kind": "pchoice", "value": [["a", 0.1], ["b", 0.6], ["c", 0.3]]}"#);
        let mut counts = std::collections::BTreeMap::new();
        for _ in 0..20_000 {
            *counts
                .entry(sample(&p, &mut r).unwrap().as_str().unwrap().to_string())
                .or_insert(0usize) += 1;
        }
        let f = |k: &str| counts[k] as f64 / 20_000.0;
        assert!((f("a") - 0.1).abs() < 0.01 && (f("b") - 0.6).abs() < 0.015);
        let p = param(r#"{"kind": "range", "value": [1, 10, 3]}"#);
        for _ in 0..200 {
            let v = sample(&p, &mut r).unwrap().as_i64().unwrap();
            assert!([1, 4, 7].contains(&v), "{v}");
        }
        let p = param(r#"{"kind": "choice", "value": ["relu", "tanh"]}"#);
        let v = sample(&p, &mut r).unwrap();
        assert!(v == "relu" || v == "tanh");
        let p = param(r#"{"kind": "logspace", "value": "0:2:3"}"#);
        let v = sample(&p, &mut r).unwrap().as_f64().unwrap();
        assert!([1.0, 10.0, 100.0].contains(&v), "{v}");
    }

    #[test]
    fn a_seed_gives_the_same_values() {
        let p = param(r#"{"kind": "uniform", "value": [0, 1]}"#);
        assert_eq!(draws(&p, 10, 42), draws(&p, 10, 42));
        assert_ne!(draws(&p, 10, 42), draws(&p, 10, 43));
    }
}
