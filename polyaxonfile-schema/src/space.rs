//! Search spaces: the values of discrete params, grid sizes, trial counts per matrix kind and
//! hyperband's brackets. Samplers for the optimizers live with the scheduler; this module only
//! answers what the spec alone determines.

use serde_json::Value as J;

use crate::spec::{DateRange, HpParam, Matrix, NumForm};

/// Most values a discrete param may expand to.
pub const MAX_VALUES: usize = 1_000_000;

fn num(x: f64, integral: bool) -> J {
    if integral && x.fract() == 0.0 && x.abs() < 9.0e15 {
        J::from(x as i64)
    } else {
        serde_json::Number::from_f64(x)
            .map(J::Number)
            .unwrap_or(J::Null)
    }
}

/// `numpy.arange`: from `start` towards `stop` (excluded) by `step`.
pub fn arange(start: f64, stop: f64, step: f64) -> Result<Vec<f64>, String> {
    if step == 0.0 || !step.is_finite() {
        return Err("the step of a range cannot be 0".into());
    }
    let n = ((stop - start) / step).ceil();
    if n <= 0.0 {
        return Err(format!(
            "the range {start}:{stop}:{step} is empty (the step goes the wrong way?)"
        ));
    }
    if n > MAX_VALUES as f64 {
        return Err(format!(
            "the range {start}:{stop}:{step} has {n} values, more than {MAX_VALUES}"
        ));
    }
    Ok((0..n as usize).map(|i| start + step * i as f64).collect())
}

/// `numpy.linspace`: `num` evenly spaced points, both ends included.
pub fn linspace(start: f64, stop: f64, num: f64) -> Result<Vec<f64>, String> {
    if num < 1.0 || num.fract() != 0.0 {
        return Err(format!(
            "the number of points must be a positive integer, found {num}"
        ));
    }
    if num > MAX_VALUES as f64 {
        return Err(format!("{num} points is more than {MAX_VALUES}"));
    }
    let n = num as usize;
    if n == 1 {
        return Ok(vec![start]);
    }
    Ok((0..n)
        .map(|i| start + (stop - start) * i as f64 / (n - 1) as f64)
        .collect())
}

/// The values of a discrete param, in order; `None` for continuous distributions.
pub fn values(p: &HpParam) -> Option<Result<Vec<J>, String>> {
    Some(match p {
        HpParam::Choice(c) => Ok(c.value.clone()),
        HpParam::PChoice(c) => Ok(c.value.iter().map(|(v, _)| v.clone()).collect()),
        HpParam::Range(r) => {
            let v = &r.value;
            arange(v.start, v.stop, v.step)
                .map(|xs| xs.into_iter().map(|x| num(x, v.integral())).collect())
        }
        HpParam::LinSpace(s) => linspace(s.value.start, s.value.stop, s.value.num)
            .map(|xs| xs.into_iter().map(|x| num(x, false)).collect()),
        HpParam::LogSpace(s) => {
            let base = s.value.base.unwrap_or(10.0);
            linspace(s.value.start, s.value.stop, s.value.num)
                .map(|xs| xs.into_iter().map(|x| num(base.powf(x), false)).collect())
        }
        HpParam::GeomSpace(s) => {
            let v = &s.value;
            if v.start <= 0.0 || v.stop <= 0.0 {
                Err("geomspace needs positive start and stop".to_string())
            } else {
                linspace(v.start.ln(), v.stop.ln(), v.num)
                    .map(|xs| xs.into_iter().map(|x| num(x.exp(), false)).collect())
            }
        }
        HpParam::DateRange(r) => date_values(&r.value, 86400.0, true),
        HpParam::DateTimeRange(r) => date_values(&r.value, 1.0, false),
        _ => return None,
    })
}

/// Dates from `start` to `stop` (both included) every `step` days (or seconds).
fn date_values(r: &DateRange, unit: f64, dates_only: bool) -> Result<Vec<J>, String> {
    let start = crate::spec::misc::parse_datetime(&r.start)
        .ok_or_else(|| format!("`{}` is not a date", r.start))?;
    let stop = crate::spec::misc::parse_datetime(&r.stop)
        .ok_or_else(|| format!("`{}` is not a date", r.stop))?;
    let step = (r.step * unit) as i64;
    if step <= 0 {
        return Err("the step of a date range must be positive".into());
    }
    let (a, b) = (start.as_second(), stop.as_second());
    if b < a {
        return Err(format!(
            "the date range ends ({}) before it starts ({})",
            r.stop, r.start
        ));
    }
    let n = (b - a) / step + 1;
    if n as usize > MAX_VALUES {
        return Err(format!(
            "the date range has {n} values, more than {MAX_VALUES}"
        ));
    }
    Ok((0..n)
        .filter_map(|i| jiff::Timestamp::from_second(a + i * step).ok())
        .map(|ts| {
            let dt = ts.to_zoned(jiff::tz::TimeZone::UTC);
            J::String(if dates_only {
                dt.date().to_string()
            } else {
                dt.datetime().strftime("%Y-%m-%d %H:%M:%S").to_string()
            })
        })
        .collect())
}

/// A typical value of any param: its first value, or the low end / centre of a distribution.
/// Used to compile one representative trial when checking a search.
pub fn representative(p: &HpParam) -> J {
    if let Some(Ok(vs)) = values(p)
        && let Some(v) = vs.into_iter().next()
    {
        return v;
    }
    let f = |x: f64| num(x, false);
    match p {
        HpParam::Uniform(b) => f(b.value.low),
        HpParam::QUniform(b) => f((b.value.low / b.value.q).round() * b.value.q),
        HpParam::LogUniform(b) => f(b.value.low.exp()),
        HpParam::QLogUniform(b) => f((b.value.low.exp() / b.value.q).round() * b.value.q),
        HpParam::Normal(g) => f(g.value.loc),
        HpParam::QNormal(g) => f((g.value.loc / g.value.q).round() * g.value.q),
        HpParam::LogNormal(g) => f(g.value.loc.exp()),
        HpParam::QLogNormal(g) => f((g.value.loc.exp() / g.value.q).round() * g.value.q),
        _ => J::Null,
    }
}

/// Checks a param's own consistency (bounds in order, positive scales, probabilities).
/// Returns an error, or warnings that do not stop the search.
pub fn check_param(p: &HpParam) -> Result<Vec<String>, String> {
    let mut warnings = Vec::new();
    if let Some(r) = values(p) {
        let vs = r?;
        if vs.is_empty() {
            return Err("it has no values".into());
        }
    }
    match p {
        HpParam::PChoice(c) => {
            let mut total = 0.0;
            for (v, prob) in &c.value {
                if !(0.0..=1.0).contains(prob) {
                    return Err(format!("the probability of {v} is {prob}, outside [0, 1]"));
                }
                total += prob;
            }
            if (total - 1.0).abs() > 1e-6 {
                warnings.push(format!(
                    "its probabilities sum to {total}, not 1; they are scaled to sum to 1"
                ));
            }
        }
        HpParam::Uniform(b) | HpParam::LogUniform(b) if b.value.low >= b.value.high => {
            return Err(format!(
                "low ({}) must be below high ({})",
                b.value.low, b.value.high
            ));
        }
        HpParam::QUniform(b) | HpParam::QLogUniform(b) => {
            if b.value.low >= b.value.high {
                return Err(format!(
                    "low ({}) must be below high ({})",
                    b.value.low, b.value.high
                ));
            }
            if b.value.q <= 0.0 {
                return Err(format!("q must be positive, found {}", b.value.q));
            }
        }
        HpParam::Normal(g) | HpParam::LogNormal(g) if g.value.scale <= 0.0 => {
            return Err(format!("scale must be positive, found {}", g.value.scale));
        }
        HpParam::QNormal(g) | HpParam::QLogNormal(g) => {
            if g.value.scale <= 0.0 {
                return Err(format!("scale must be positive, found {}", g.value.scale));
            }
            if g.value.q <= 0.0 {
                return Err(format!("q must be positive, found {}", g.value.q));
            }
        }
        _ => {}
    }
    Ok(warnings)
}

/// One bracket of hyperband: `(s, rungs)` where each rung is `(trials, resource)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Bracket {
    pub s: u32,
    pub rungs: Vec<(u64, f64)>,
}

/// Hyperband's brackets for a maximum resource `r_max` and halving rate `eta` (Li et al. 2018):
/// `s_max = floor(log_eta(R))`, and for each `s` from `s_max` down to 0,
/// `n = ceil((s_max + 1) / (s + 1) * eta^s)` trials at `r = R * eta^-s`, then successive halving.
pub fn hyperband_brackets(r_max: f64, eta: f64) -> Result<Vec<Bracket>, String> {
    if eta <= 1.0 {
        return Err(format!("eta must be greater than 1, found {eta}"));
    }
    if r_max < 1.0 {
        return Err(format!("maxIterations must be at least 1, found {r_max}"));
    }
    // Guard float error in log: log_3(81) must be exactly 4.
    let s_max = ((r_max.ln() / eta.ln()) + 1e-9).floor() as u32;
    let b = (s_max + 1) as f64 * r_max;
    let mut out = Vec::new();
    for s in (0..=s_max).rev() {
        let n = ((b / r_max) * eta.powi(s as i32) / (s + 1) as f64 - 1e-9).ceil();
        let r = r_max * eta.powi(-(s as i32));
        let rungs = (0..=s)
            .map(|i| {
                (
                    (n * eta.powi(-(i as i32)) + 1e-9).floor() as u64,
                    r * eta.powi(i as i32),
                )
            })
            .collect();
        out.push(Bracket { s, rungs });
    }
    Ok(out)
}

/// How many trials a search runs, when the spec alone fixes it.
pub fn trial_count(m: &Matrix) -> Option<u64> {
    match m {
        Matrix::Grid(g) => {
            let mut total: u64 = 1;
            for (_, p) in g.params.iter() {
                let n = values(p)?.ok()?.len() as u64;
                total = total.saturating_mul(n);
            }
            Some(match g.num_runs {
                Some(n) if n > 0 => total.min(n as u64),
                _ => total,
            })
        }
        Matrix::Random(r) => u64::try_from(r.num_runs).ok(),
        Matrix::Mapping(m) => Some(m.values.len() as u64),
        Matrix::Hyperband(h) => {
            let brackets =
                hyperband_brackets(h.max_iterations? as f64, h.eta.unwrap_or(3.0)).ok()?;
            Some(
                brackets
                    .iter()
                    .flat_map(|b| b.rungs.iter().map(|(n, _)| *n))
                    .sum(),
            )
        }
        Matrix::Bayes(b) => u64::try_from(b.num_initial_runs + b.max_iterations).ok(),
        Matrix::Hyperopt(h) => h
            .num_runs
            .or(h.max_iterations)
            .and_then(|n| u64::try_from(n).ok()),
        Matrix::Tpe(t) => t
            .num_runs
            .or(t.max_iterations)
            .and_then(|n| u64::try_from(n).ok()),
        Matrix::Iterative(_) => None,
    }
}

/// The grid's combinations in enumeration order (last param varies fastest), up to `limit`.
pub fn grid(params: &[(String, HpParam)], limit: usize) -> Result<Vec<Vec<(String, J)>>, String> {
    let mut axes = Vec::new();
    for (name, p) in params {
        match values(p) {
            Some(r) => axes.push((name.clone(), r.map_err(|e| format!("`{name}`: {e}"))?)),
            None => {
                return Err(format!(
                    "`{name}` is a {} distribution; a grid takes only discrete params",
                    p.kind()
                ));
            }
        }
    }
    let mut out = Vec::new();
    let total: usize = axes.iter().map(|(_, v)| v.len()).product();
    for mut idx in 0..total.min(limit) {
        let mut row = vec![(String::new(), J::Null); axes.len()];
        for (i, (name, vals)) in axes.iter().enumerate().rev() {
            row[i] = (name.clone(), vals[idx % vals.len()].clone());
            idx /= vals.len();
        }
        out.push(row);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperband_81_3_matches_li_et_al() {
        let b = hyperband_brackets(81.0, 3.0).unwrap();
        let table: Vec<Vec<(u64, f64)>> = b.iter().map(|x| x.rungs.clone()).collect();
        assert_eq!(
            table[0],
            vec![(81, 1.0), (27, 3.0), (9, 9.0), (3, 27.0), (1, 81.0)]
        );
        assert_eq!(table[1], vec![(34, 3.0), (11, 9.0), (3, 27.0), (1, 81.0)]);
        assert_eq!(table[2], vec![(15, 9.0), (5, 27.0), (1, 81.0)]);
        assert_eq!(table[3], vec![(8, 27.0), (2, 81.0)]);
        assert_eq!(table[4], vec![(5, 81.0)]);
    }

    #[test]
    fn ranges_follow_numpy() {
        assert_eq!(
            arange(1.0, 10.0, 2.0).unwrap(),
            vec![1.0, 3.0, 5.0, 7.0, 9.0]
        );
        assert_eq!(
            linspace(0.0, 1.0, 5.0).unwrap(),
            vec![0.0, 0.25, 0.5, 0.75, 1.0]
        );
        assert!(arange(10.0, 1.0, 1.0).is_err());
        assert!(arange(0.0, 1.0, 0.0).is_err());
    }
}
