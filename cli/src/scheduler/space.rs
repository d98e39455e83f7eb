//! A search space for model-based tuners: each param a dimension of the unit cube (or a
//! category), with the mapping back to the param's values.

use polyaxonfile::space;
use polyaxonfile::spec::HpParam;
use serde_json::Value as J;

use super::tuner::Params;

#[derive(Clone, Debug)]
pub enum Dim {
    /// `value = low + u (high - low)`, through `exp` when `log`, rounded to `q` when given.
    Num {
        low: f64,
        high: f64,
        log: bool,
        q: Option<f64>,
    },
    /// Ordered values (numbers sorted, or dates): `u` picks one by position.
    Ordinal(Vec<J>),
    /// Unordered values, with prior weights (`pchoice`).
    Cat { values: Vec<J>, weights: Vec<f64> },
}

impl Dim {
    pub fn of(p: &HpParam) -> Result<Dim, String> {
        Ok(match p {
            HpParam::Uniform(b) => Dim::Num {
                low: b.value.low,
                high: b.value.high,
                log: false,
                q: None,
            },
            HpParam::QUniform(b) => Dim::Num {
                low: b.value.low,
                high: b.value.high,
                log: false,
                q: Some(b.value.q),
            },
            HpParam::LogUniform(b) => Dim::Num {
                low: b.value.low,
                high: b.value.high,
                log: true,
                q: None,
            },
            HpParam::QLogUniform(b) => Dim::Num {
                low: b.value.low,
                high: b.value.high,
                log: true,
                q: Some(b.value.q),
            },
            // Unbounded: searched within three standard deviations.
            HpParam::Normal(g) | HpParam::LogNormal(g) => Dim::Num {
                low: g.value.loc - 3.0 * g.value.scale,
                high: g.value.loc + 3.0 * g.value.scale,
                log: matches!(p, HpParam::LogNormal(_)),
                q: None,
            },
            HpParam::QNormal(g) | HpParam::QLogNormal(g) => Dim::Num {
                low: g.value.loc - 3.0 * g.value.scale,
                high: g.value.loc + 3.0 * g.value.scale,
                log: matches!(p, HpParam::QLogNormal(_)),
                q: Some(g.value.q),
            },
            HpParam::PChoice(c) => Dim::Cat {
                values: c.value.iter().map(|(v, _)| v.clone()).collect(),
                weights: c.value.iter().map(|(_, w)| w.max(0.0)).collect(),
            },
            HpParam::Choice(c) if !c.value.iter().all(J::is_number) => Dim::Cat {
                weights: vec![1.0; c.value.len()],
                values: c.value.clone(),
            },
            other => {
                let mut values = space::values(other)
                    .ok_or_else(|| format!("a {} param has no values", other.kind()))??;
                if values.is_empty() {
                    return Err("it has no values".into());
                }
                if values.iter().all(J::is_number) {
                    values.sort_by(|a, b| {
                        a.as_f64()
                            .unwrap_or(0.0)
                            .total_cmp(&b.as_f64().unwrap_or(0.0))
                    });
                }
                Dim::Ordinal(values)
            }
        })
    }

    /// Categories, for tuners that treat them apart.
    pub fn categories(&self) -> Option<usize> {
        match self {
            Dim::Cat { values, .. } => Some(values.len()),
            _ => None,
        }
    }

    /// The value at `u` in [0, 1] (a category's index, as a float, for `Cat`).
    pub fn decode(&self, u: f64) -> J {
        let u = u.clamp(0.0, 1.0);
        match self {
            Dim::Num { low, high, log, q } => {
                let x = low + u * (high - low);
                let x = if *log { x.exp() } else { x };
                match q {
                    Some(q) if *q > 0.0 => {
                        let v = (x / q).round() * q;
                        if q.fract() == 0.0 && v.fract() == 0.0 && v.abs() < 9.0e15 {
                            J::from(v as i64)
                        } else {
                            num(v)
                        }
                    }
                    _ => num(x),
                }
            }
            Dim::Ordinal(values) => {
                let i = ((u * values.len() as f64).floor() as usize).min(values.len() - 1);
                values[i].clone()
            }
            Dim::Cat { values, .. } => {
                let i = (u.round() as usize).min(values.len() - 1);
                values[i].clone()
            }
        }
    }
}

fn num(x: f64) -> J {
    serde_json::Number::from_f64(x)
        .map(J::Number)
        .unwrap_or(J::Null)
}

/// Named dimensions.
#[derive(Clone, Debug)]
pub struct Space {
    pub names: Vec<String>,
    pub dims: Vec<Dim>,
}

impl Space {
    pub fn new(params: &[(String, HpParam)]) -> Result<Space, String> {
        let mut names = Vec::new();
        let mut dims = Vec::new();
        for (n, p) in params {
            names.push(n.clone());
            dims.push(Dim::of(p).map_err(|e| format!("`{n}`: {e}"))?);
        }
        Ok(Space { names, dims })
    }

    /// Params for a point (unit coordinates; category indexes for `Cat`).
    pub fn decode(&self, x: &[f64]) -> Params {
        self.names
            .iter()
            .zip(&self.dims)
            .zip(x)
            .map(|((n, d), u)| (n.clone(), d.decode(*u)))
            .collect()
    }

    /// A point drawn from the params' own distributions' ranges: uniform in the cube,
    /// categories by their weights.
    pub fn random(&self, rng: &mut super::rng::Rng) -> Vec<f64> {
        self.dims
            .iter()
            .map(|d| match d {
                Dim::Cat { weights, .. } => rng.weighted(weights) as f64,
                _ => rng.f64(),
            })
            .collect()
    }
}
