//! `matrix`: hyperparameter search spaces and strategies, and early stopping.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ops::{OrderedMap, Param};
use crate::yaml::resolve_plain;

tagged! {
    /// A search over params, selected by `kind`.
    pub enum Matrix {
        "grid" => Grid(GridSearch),
        "random" => Random(RandomSearch),
        "hyperband" => Hyperband(Hyperband),
        "bayes" => Bayes(Bayes),
        "hyperopt" => Hyperopt(Hyperopt),
        "tpe" => Tpe(Tpe),
        "iterative" => Iterative(Iterative),
        "mapping" => Mapping(Mapping),
    }
}

impl Matrix {
    /// The search space, for kinds that have one.
    pub fn params(&self) -> Option<&OrderedMap<HpParam>> {
        match self {
            Matrix::Grid(m) => Some(&m.params),
            Matrix::Random(m) => Some(&m.params),
            Matrix::Hyperband(m) => m.params.as_ref(),
            Matrix::Bayes(m) => Some(&m.params),
            Matrix::Hyperopt(m) => Some(&m.params),
            Matrix::Tpe(m) => Some(&m.params),
            Matrix::Iterative(m) => m.params.as_ref(),
            Matrix::Mapping(_) => None,
        }
    }

    pub fn concurrency(&self) -> Option<i64> {
        match self {
            Matrix::Grid(m) => m.concurrency,
            Matrix::Random(m) => m.concurrency,
            Matrix::Hyperband(m) => m.concurrency,
            Matrix::Bayes(m) => m.concurrency,
            Matrix::Hyperopt(m) => m.concurrency,
            Matrix::Tpe(m) => m.concurrency,
            Matrix::Iterative(m) => m.concurrency,
            Matrix::Mapping(m) => m.concurrency,
        }
    }

    pub fn early_stopping(&self) -> &[EarlyStopping] {
        let es = match self {
            Matrix::Grid(m) => &m.early_stopping,
            Matrix::Random(m) => &m.early_stopping,
            Matrix::Hyperband(m) => &m.early_stopping,
            Matrix::Bayes(m) => &m.early_stopping,
            Matrix::Hyperopt(m) => &m.early_stopping,
            Matrix::Tpe(m) => &m.early_stopping,
            Matrix::Iterative(m) => &m.early_stopping,
            Matrix::Mapping(m) => &m.early_stopping,
        };
        es.as_deref().unwrap_or_default()
    }

    /// The names of the params the search sets on each trial.
    pub fn param_names(&self) -> Vec<String> {
        match self {
            Matrix::Mapping(m) => {
                let mut names: Vec<String> = Vec::new();
                for row in &m.values {
                    for k in row.keys() {
                        if !names.contains(k) {
                            names.push(k.clone());
                        }
                    }
                }
                names
            }
            Matrix::Hyperband(h) => {
                let mut names: Vec<String> = self
                    .params()
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                if let Some(r) = &h.resource
                    && !names.contains(&r.name)
                {
                    names.push(r.name.clone());
                }
                names
            }
            _ => self
                .params()
                .map(|p| p.keys().cloned().collect())
                .unwrap_or_default(),
        }
    }
}

spec! {
    /// Every combination of discrete params.
    pub struct GridSearch {
        pub params: OrderedMap<HpParam>,
        pub num_runs: Option<i64>,
        pub concurrency: Option<i64>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

spec! {
    /// `numRuns` samples drawn from the params' distributions.
    pub struct RandomSearch {
        pub params: OrderedMap<HpParam>,
        pub num_runs: i64,
        pub seed: Option<i64>,
        pub concurrency: Option<i64>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

spec! {
    /// Hyperband (Li et al.): successive halving over brackets of a resource.
    pub struct Hyperband {
        pub params: Option<OrderedMap<HpParam>>,
        pub max_iterations: Option<i64>,
        pub eta: Option<f64>,
        pub resource: Option<OptimizationResource>,
        pub metric: Option<OptimizationMetric>,
        pub resume: Option<bool>,
        pub seed: Option<i64>,
        pub concurrency: Option<i64>,
        pub tuner: Option<Tuner>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

spec! {
    /// Bayesian optimization with a Gaussian process.
    pub struct Bayes {
        pub utility_function: Option<UtilityFunction>,
        pub num_initial_runs: i64,
        pub max_iterations: i64,
        pub metric: OptimizationMetric,
        pub params: OrderedMap<HpParam>,
        pub seed: Option<i64>,
        pub concurrency: Option<i64>,
        pub tuner: Option<Tuner>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

str_enum! {
    pub enum HyperoptAlgorithm { Tpe, Rand, Anneal }
}

spec! {
    /// Hyperopt-style search (tpe, rand or anneal).
    pub struct Hyperopt {
        pub params: OrderedMap<HpParam>,
        pub metric: Option<OptimizationMetric>,
        pub max_iterations: Option<i64>,
        pub algorithm: Option<HyperoptAlgorithm>,
        pub num_runs: Option<i64>,
        pub seed: Option<i64>,
        pub concurrency: Option<i64>,
        pub tuner: Option<Tuner>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

spec! {
    /// Tree-structured Parzen estimator.
    pub struct Tpe {
        pub max_iterations: Option<i64>,
        pub metric: OptimizationMetric,
        pub params: OrderedMap<HpParam>,
        pub num_runs: Option<i64>,
        pub seed: Option<i64>,
        pub concurrency: Option<i64>,
        pub tuner: Option<Tuner>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

spec! {
    /// A user tuner proposes each next batch from the results so far.
    pub struct Iterative {
        pub params: Option<OrderedMap<HpParam>>,
        pub max_iterations: i64,
        pub seed: Option<i64>,
        pub concurrency: Option<i64>,
        pub tuner: Option<Tuner>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

spec! {
    /// An explicit list of param sets, one trial each.
    pub struct Mapping {
        pub values: Vec<serde_json::Map<String, serde_json::Value>>,
        pub concurrency: Option<i64>,
        pub early_stopping: Option<Vec<EarlyStopping>>,
    }
}

str_enum! {
    pub enum Optimization { Maximize, Minimize }
}

#[allow(clippy::derivable_impls)]
impl Default for Optimization {
    fn default() -> Self {
        Optimization::Maximize
    }
}

spec! {
    /// The metric a search optimizes.
    pub struct OptimizationMetric {
        pub name: String,
        pub optimization: Option<Optimization>,
    }
}

str_enum! {
    pub enum ResourceType { Int, Float }
}

spec! {
    /// The budget param hyperband hands to each trial (epochs, steps…).
    pub struct OptimizationResource {
        pub name: String,
        #[serde(rename = "type")]
        pub kind: Option<ResourceType>,
    }
}

spec! {
    /// A custom tuner component.
    pub struct Tuner {
        pub hub_ref: String,
        pub presets: Option<Vec<String>>,
        pub queue: Option<String>,
        pub namespace: Option<String>,
        pub params: Option<OrderedMap<Param>>,
    }
}

str_enum! {
    pub enum AcquisitionFunction { Ucb, Ei, Poi }
}

str_enum! {
    pub enum GaussianProcessKernel { Rbf, Matern }
}

spec! {
    pub struct UtilityFunction {
        pub acquisition_function: Option<AcquisitionFunction>,
        pub gaussian_process: Option<GaussianProcess>,
        pub kappa: Option<f64>,
        pub eps: Option<f64>,
        pub num_warmup: Option<i64>,
        pub num_iterations: Option<i64>,
    }
}

spec! {
    pub struct GaussianProcess {
        pub kernel: Option<GaussianProcessKernel>,
        pub length_scale: Option<f64>,
        pub nu: Option<f64>,
        pub num_restarts_optimizer: Option<i64>,
    }
}

tagged! {
    /// Stop a search early.
    pub enum EarlyStopping {
        "metric_early_stopping" => Metric(MetricEarlyStopping),
        "failure_early_stopping" => Failure(FailureEarlyStopping),
    }
}

spec! {
    /// Stop when a trial's metric reaches `value`, or by a policy comparing trials.
    pub struct MetricEarlyStopping {
        pub metric: String,
        pub value: f64,
        pub optimization: Optimization,
        pub policy: Option<StoppingPolicy>,
    }
}

spec! {
    /// Stop when more than `percent` of the trials failed.
    pub struct FailureEarlyStopping {
        pub percent: f64,
    }
}

tagged! {
    pub enum StoppingPolicy {
        "median" => Median(MedianStoppingPolicy),
        "truncation" => Truncation(TruncationStoppingPolicy),
        "diff" => Diff(DiffStoppingPolicy),
    }
}

spec! {
    pub struct MedianStoppingPolicy {
        pub evaluation_interval: i64,
        pub min_interval: Option<i64>,
        pub min_samples: Option<i64>,
    }
}

spec! {
    pub struct TruncationStoppingPolicy {
        pub percent: f64,
        pub evaluation_interval: i64,
        pub min_interval: Option<i64>,
        pub min_samples: Option<i64>,
        pub include_succeeded: Option<bool>,
    }
}

spec! {
    pub struct DiffStoppingPolicy {
        pub percent: f64,
        pub evaluation_interval: i64,
        pub min_interval: Option<i64>,
        pub min_samples: Option<i64>,
    }
}

tagged! {
    /// One searched param: a discrete set or a distribution.
    pub enum HpParam {
        "choice" => Choice(HpChoice),
        "pchoice" => PChoice(HpPChoice),
        "range" => Range(HpValue<Range>),
        "linspace" => LinSpace(HpValue<Space>),
        "logspace" => LogSpace(HpValue<LogSpace>),
        "geomspace" => GeomSpace(HpValue<Space>),
        "uniform" => Uniform(HpValue<Bounds>),
        "quniform" => QUniform(HpValue<QBounds>),
        "loguniform" => LogUniform(HpValue<Bounds>),
        "qloguniform" => QLogUniform(HpValue<QBounds>),
        "normal" => Normal(HpValue<Gauss>),
        "qnormal" => QNormal(HpValue<QGauss>),
        "lognormal" => LogNormal(HpValue<Gauss>),
        "qlognormal" => QLogNormal(HpValue<QGauss>),
        "daterange" => DateRange(HpValue<DateRange>),
        "datetimerange" => DateTimeRange(HpValue<DateRange>),
    }
}

impl HpParam {
    /// Whether the param has finitely many values (and so fits a grid).
    pub fn is_discrete(&self) -> bool {
        matches!(
            self,
            HpParam::Choice(_)
                | HpParam::PChoice(_)
                | HpParam::Range(_)
                | HpParam::LinSpace(_)
                | HpParam::LogSpace(_)
                | HpParam::GeomSpace(_)
                | HpParam::DateRange(_)
                | HpParam::DateTimeRange(_)
        )
    }
}

spec! {
    pub struct HpChoice {
        pub value: Vec<serde_json::Value>,
    }
}

spec! {
    /// Values with their probabilities: `[[a, 0.3], [b, 0.7]]`.
    pub struct HpPChoice {
        pub value: Vec<(serde_json::Value, f64)>,
    }
}

/// `{kind: X, value: ...}` for distributions whose value has several written forms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HpValue<T> {
    pub value: T,
}

/// A numeric tuple written as `"a:b:c"`, `[a, b, c]` or `{name: a, ...}`.
pub trait NumForm: Sized {
    const NAMES: &'static [&'static str];
    /// How many of the trailing names may be left out.
    const OPTIONAL: usize = 0;
    const WHAT: &'static str;
    fn build(values: Vec<Option<f64>>, integral: bool) -> Result<Self, String>;
    fn values(&self) -> Vec<Option<f64>>;
    fn integral(&self) -> bool {
        false
    }
}

macro_rules! num_form {
    ($(#[$m:meta])* $name:ident { $($field:ident),* $(; $ofield:ident)? } what $what:literal $(, integral $int:ident)?) => {
        $(#[$m])*
        #[derive(Clone, Debug, PartialEq)]
        pub struct $name {
            $(pub $field: f64,)*
            $(pub $ofield: Option<f64>,)?
            $(pub $int: bool,)?
        }

        impl NumForm for $name {
            const NAMES: &'static [&'static str] = &[$(stringify!($field),)* $(stringify!($ofield))?];
            const OPTIONAL: usize = 0 $(+ { let _ = stringify!($ofield); 1 })?;
            const WHAT: &'static str = $what;
            #[allow(unused_variables)]
            fn build(values: Vec<Option<f64>>, integral: bool) -> Result<Self, String> {
                let mut it = values.into_iter();
                Ok($name {
                    $($field: it.next().flatten().ok_or_else(|| format!("missing `{}`", stringify!($field)))?,)*
                    $($ofield: it.next().flatten(),)?
                    $($int: integral,)?
                })
            }
            fn values(&self) -> Vec<Option<f64>> {
                vec![$(Some(self.$field),)* $(self.$ofield)?]
            }
            $(fn integral(&self) -> bool { self.$int })?
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(NumFormVisitor::<$name>(std::marker::PhantomData))
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serialize_num_form(self, s)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                num_form_schema(<$name as NumForm>::NAMES, <$name as NumForm>::OPTIONAL, $what)
            }
        }
    };
}

num_form!(
    /// `start:stop:step` (stop excluded).
    Range { start, stop, step } what "a range start:stop:step", integral integral
);
num_form!(
    /// `start:stop:num` (num points, stop included).
    Space { start, stop, num } what "start:stop:num"
);
num_form!(
    /// `start:stop:num[:base]`: num points between base**start and base**stop.
    LogSpace { start, stop, num; base } what "start:stop:num[:base]"
);
num_form!(
    /// `low:high`.
    Bounds { low, high } what "low:high"
);
num_form!(
    /// `low:high:q` (values rounded to multiples of q).
    QBounds { low, high, q } what "low:high:q"
);
num_form!(
    /// `loc:scale` of a normal distribution.
    Gauss { loc, scale } what "loc:scale"
);
num_form!(
    /// `loc:scale:q`.
    QGauss { loc, scale, q } what "loc:scale:q"
);

struct NumFormVisitor<T>(std::marker::PhantomData<T>);

fn num_of(v: &serde_json::Value) -> Option<(f64, bool)> {
    match v {
        serde_json::Value::Number(n) => Some((n.as_f64()?, n.is_i64() || n.is_u64())),
        serde_json::Value::String(s) => match resolve_plain(s.trim()) {
            crate::node::Value::Int(i) => Some((i as f64, true)),
            crate::node::Value::Float(f) => Some((f, false)),
            _ => None,
        },
        _ => None,
    }
}

impl<T: NumForm> NumFormVisitor<T> {
    fn finish<E: serde::de::Error>(parts: Vec<Option<(f64, bool)>>) -> Result<T, E> {
        let need = T::NAMES.len() - T::OPTIONAL;
        let given = parts.iter().filter(|p| p.is_some()).count();
        if parts.len() > T::NAMES.len() || given < need {
            return Err(E::custom(format!(
                "expected {} ({} numbers), found {given}",
                T::WHAT,
                if T::OPTIONAL > 0 {
                    format!("{need} or {}", T::NAMES.len())
                } else {
                    need.to_string()
                }
            )));
        }
        let integral = parts.iter().flatten().all(|(_, i)| *i);
        let mut values: Vec<Option<f64>> = parts.into_iter().map(|p| p.map(|(f, _)| f)).collect();
        values.resize(T::NAMES.len(), None);
        T::build(values, integral).map_err(E::custom)
    }
}

impl<'de, T: NumForm> serde::de::Visitor<'de> for NumFormVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} as a string, a list or a mapping of {}",
            T::WHAT,
            crate::diag::one_of(T::NAMES)
        )
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        let parts: Result<Vec<_>, E> = v
            .split(':')
            .map(|p| {
                num_of(&serde_json::Value::String(p.to_string()))
                    .map(Some)
                    .ok_or_else(|| E::custom(format!("`{p}` in \"{v}\" is not a number")))
            })
            .collect();
        Self::finish(parts?)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<T, A::Error> {
        let mut parts = Vec::new();
        while let Some(v) = seq.next_element::<serde_json::Value>()? {
            parts.push(Some(num_of(&v).ok_or_else(|| {
                serde::de::Error::custom(format!("`{v}` is not a number"))
            })?));
        }
        Self::finish(parts)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let mut parts: Vec<Option<(f64, bool)>> = vec![None; T::NAMES.len()];
        while let Some(k) = map.next_key::<String>()? {
            let Some(idx) = T::NAMES.iter().position(|n| *n == k) else {
                let hint = crate::diag::did_you_mean(&k, T::NAMES.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                return Err(serde::de::Error::custom(format!(
                    "unknown key `{k}`{hint}; expected {}",
                    crate::diag::one_of(T::NAMES)
                )));
            };
            let v: serde_json::Value = map.next_value()?;
            parts[idx] = Some(num_of(&v).ok_or_else(|| {
                serde::de::Error::custom(format!("`{k}` must be a number, found {v}"))
            })?);
        }
        Self::finish(parts)
    }
}

fn serialize_num_form<T: NumForm, S: serde::Serializer>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let values = v.values();
    let mut m = s.serialize_map(None)?;
    for (name, val) in T::NAMES.iter().zip(values) {
        if let Some(x) = val {
            if v.integral() && x.fract() == 0.0 {
                m.serialize_entry(name, &(x as i64))?;
            } else {
                m.serialize_entry(name, &x)?;
            }
        }
    }
    m.end()
}

fn num_form_schema(names: &[&str], optional: usize, what: &str) -> schemars::Schema {
    let required: Vec<&str> = names[..names.len() - optional].to_vec();
    let props: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                serde_json::json!({"type": ["number", "string"]}),
            )
        })
        .collect();
    schemars::json_schema!({
        "description": format!("{what}: a string \"a:b:c\", a list [a, b, c] or a mapping"),
        "oneOf": [
            {"type": "string", "pattern": "^[^:]+(:[^:]+)+$"},
            {"type": "array", "items": {"type": ["number", "string"]}, "minItems": required.len(), "maxItems": names.len()},
            {"type": "object", "properties": props, "required": required, "additionalProperties": false}
        ]
    })
}

/// Dates (`daterange`, step in days) or datetimes (`datetimerange`, step in seconds):
/// `{start, stop, step}` or `[start, stop, step]`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DateRange {
    pub start: String,
    pub stop: String,
    pub step: f64,
}

impl<'de> Deserialize<'de> for DateRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = DateRange;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a date range [start, stop, step] or {start, stop, step}")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<DateRange, A::Error> {
                let err =
                    || serde::de::Error::custom("a date range has 3 items: [start, stop, step]");
                let start: String = seq.next_element()?.ok_or_else(err)?;
                let stop: String = seq.next_element()?.ok_or_else(err)?;
                let step: f64 = seq.next_element()?.ok_or_else(err)?;
                if seq.next_element::<serde::de::IgnoredAny>()?.is_some() {
                    return Err(err());
                }
                check_dates(DateRange { start, stop, step })
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<DateRange, A::Error> {
                let (mut start, mut stop, mut step) = (None, None, None);
                while let Some(k) = map.next_key::<String>()? {
                    match k.as_str() {
                        "start" => start = Some(map.next_value()?),
                        "stop" => stop = Some(map.next_value()?),
                        "step" => step = Some(map.next_value()?),
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "unknown key `{other}`; expected `start`, `stop` or `step`"
                            )));
                        }
                    }
                }
                let missing =
                    |n| serde::de::Error::custom(format!("missing `{n}` in the date range"));
                check_dates(DateRange {
                    start: start.ok_or_else(|| missing("start"))?,
                    stop: stop.ok_or_else(|| missing("stop"))?,
                    step: step.ok_or_else(|| missing("step"))?,
                })
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for DateRange {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "DateRange".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "[start, stop, step] or {start, stop, step}: dates or datetimes, step in days (daterange) or seconds (datetimerange)",
            "oneOf": [
                {"type": "array", "minItems": 3, "maxItems": 3, "items": [{"type": "string"}, {"type": "string"}, {"type": "number"}]},
                {"type": "object", "additionalProperties": false, "required": ["start", "stop", "step"],
                 "properties": {"start": {"type": "string"}, "stop": {"type": "string"}, "step": {"type": "number"}}}
            ]
        })
    }
}

fn check_dates<E: serde::de::Error>(r: DateRange) -> Result<DateRange, E> {
    for s in [&r.start, &r.stop] {
        if crate::spec::misc::parse_datetime(s).is_none() {
            return Err(E::custom(format!(
                "`{s}` is not a date (YYYY-MM-DD) or datetime (YYYY-MM-DD HH:MM[:SS])"
            )));
        }
    }
    if r.step <= 0.0 {
        return Err(E::custom("the step of a date range must be positive"));
    }
    Ok(r)
}
