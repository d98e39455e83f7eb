//! A search's page: its trials best first, a parallel-coordinates chart of params → metric
//! (its axes brushable by `search.js`), each param against the metric, and the best value so
//! far by trial. Everything is drawn by the server as SVG (read without JavaScript); the script
//! only brushes and highlights.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Deserialize;
use serde_json::{Value as J, json};

use super::{asset_url, duration, enc, esc, status_span, value_text};
use crate::store::RunRow;

/// `?metric=NAME&order=max|min` on a search's page: the metric to rank trials by, when not
/// the search's own (or it has none: grid and random searches).
#[derive(Deserialize, Default)]
pub struct SearchQuery {
    pub metric: Option<String>,
    pub order: Option<String>,
    /// `pipeline`: only the DAG's or search's section (what a live page swaps in).
    pub fragment: Option<String>,
}

/// The operation a run holds: stored as JSON by the CLI, as YAML (as given) by some clients.
pub fn content_json(content: Option<&str>) -> Option<J> {
    let c = content?;
    serde_json::from_str::<J>(c)
        .ok()
        .or_else(|| polyaxonfile::yaml::parse(c, 0).ok().map(|n| n.to_json()))
}

/// The search's matrix, when the run is one.
pub fn matrix_of(r: &RunRow) -> Option<J> {
    content_json(r.content.as_deref())?
        .get("matrix")
        .filter(|m| m.is_object())
        .cloned()
}

/// The metric the matrix optimizes (or its early stopping watches), and whether it is
/// maximized.
fn matrix_objective(m: &J) -> Option<(String, Option<bool>)> {
    let maximize = |o: &J| {
        o.get("optimization")
            .and_then(J::as_str)
            .map(|s| s == "maximize")
    };
    if let Some(metric) = m.get("metric")
        && let Some(name) = metric.get("name").and_then(J::as_str)
    {
        return Some((name.to_string(), maximize(metric)));
    }
    m.get("earlyStopping")
        .and_then(J::as_array)
        .into_iter()
        .flatten()
        .find_map(|e| {
            let name = e.get("metric").and_then(J::as_str)?;
            Some((name.to_string(), maximize(e)))
        })
}

/// Minimized unless its name says it is a score: losses and errors go down.
fn guess_maximize(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ![
        "loss",
        "err",
        "mse",
        "mae",
        "rmse",
        "perplexity",
        "cost",
        "regret",
    ]
    .iter()
    .any(|w| n.contains(w))
}

fn number(v: Option<&J>) -> Option<f64> {
    v.and_then(J::as_f64).filter(|f| f.is_finite())
}

/// How an axis places values: linearly, by their logarithm, or as categories evenly spread.
#[derive(Clone, Debug, PartialEq)]
enum Scale {
    Lin(f64, f64),
    Log(f64, f64),
    Cat(Vec<String>),
}

#[derive(Clone, Debug)]
struct Axis {
    name: String,
    scale: Scale,
    /// The values to mark: a few integers (a choice of layers) are marked each.
    marks: Option<Vec<f64>>,
}

fn cat_key(v: &J) -> String {
    match v {
        J::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Axis {
    /// An axis for `values` (a param's, or the metric's); log when the matrix samples it so or
    /// its positive values span three decades.
    fn of(name: &str, values: &[&J], log_hint: bool) -> Option<Axis> {
        let nums: Vec<f64> = values.iter().filter_map(|v| number(Some(v))).collect();
        let scale = if !nums.is_empty() && nums.len() == values.len() {
            let lo = nums.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = nums.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if lo > 0.0 && (log_hint || hi / lo >= 1000.0) {
                Scale::Log(lo, hi)
            } else {
                Scale::Lin(lo, hi)
            }
        } else if values.is_empty() {
            return None;
        } else {
            let cats: BTreeSet<String> = values.iter().map(|v| cat_key(v)).collect();
            Scale::Cat(cats.into_iter().collect())
        };
        let mut distinct: Vec<f64> = nums.clone();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let marks = (!distinct.is_empty()
            && distinct.len() <= 10
            && distinct.iter().all(|x| x.fract() == 0.0))
        .then_some(distinct);
        Some(Axis {
            name: name.to_string(),
            scale,
            marks,
        })
    }

    /// Where `v` is on the axis, from 0 (bottom) to 1 (top).
    fn pos(&self, v: Option<&J>) -> Option<f64> {
        let v = v?;
        match &self.scale {
            Scale::Lin(lo, hi) => {
                let x = number(Some(v))?;
                Some(if hi > lo { (x - lo) / (hi - lo) } else { 0.5 })
            }
            Scale::Log(lo, hi) => {
                let x = number(Some(v)).filter(|x| *x > 0.0)?;
                Some(if hi > lo {
                    (x.ln() - lo.ln()) / (hi.ln() - lo.ln())
                } else {
                    0.5
                })
            }
            Scale::Cat(cats) => {
                let i = cats.iter().position(|c| *c == cat_key(v))?;
                Some(if cats.len() > 1 {
                    i as f64 / (cats.len() - 1) as f64
                } else {
                    0.5
                })
            }
        }
    }

    /// Tick labels: (position, text).
    fn ticks(&self) -> Vec<(f64, String)> {
        if let Some(marks) = &self.marks {
            return marks
                .iter()
                .filter_map(|m| Some((self.pos(Some(&J::from(*m)))?, short(*m))))
                .collect();
        }
        if let Scale::Log(lo, hi) = self.scale {
            // Decades, when there are at least two.
            let decades: Vec<f64> = (lo.log10().ceil() as i32..=hi.log10().floor() as i32)
                .map(|e| 10f64.powi(e))
                .collect();
            if decades.len() >= 2 {
                return decades
                    .into_iter()
                    .filter_map(|d| Some((self.pos(Some(&J::from(d)))?, short(d))))
                    .collect();
            }
        }
        match &self.scale {
            Scale::Lin(lo, hi) if hi > lo => (0..=4)
                .map(|i| {
                    let t = i as f64 / 4.0;
                    (t, short(lo + t * (hi - lo)))
                })
                .collect(),
            Scale::Log(lo, hi) if hi > lo => (0..=4)
                .map(|i| {
                    let t = i as f64 / 4.0;
                    (t, short((lo.ln() + t * (hi.ln() - lo.ln())).exp()))
                })
                .collect(),
            Scale::Lin(lo, _) | Scale::Log(lo, _) => vec![(0.5, short(*lo))],
            Scale::Cat(cats) => cats
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let t = if cats.len() > 1 {
                        i as f64 / (cats.len() - 1) as f64
                    } else {
                        0.5
                    };
                    (t, c.clone())
                })
                .collect(),
        }
    }

    /// The axis for the page's script: how to turn a brushed range back into values.
    fn json(&self, x: f64) -> J {
        match &self.scale {
            Scale::Lin(lo, hi) => {
                json!({"name": self.name, "x": x, "scale": "linear", "lo": lo, "hi": hi})
            }
            Scale::Log(lo, hi) => {
                json!({"name": self.name, "x": x, "scale": "log", "lo": lo, "hi": hi})
            }
            Scale::Cat(c) => {
                json!({"name": self.name, "x": x, "scale": "category", "categories": c})
            }
        }
    }
}

/// A number short enough for an axis label.
fn short(x: f64) -> String {
    if x == 0.0 {
        return "0".into();
    }
    let a = x.abs();
    if !(1e-3..1e5).contains(&a) {
        let e = format!("{x:.2e}");
        match e.split_once('e') {
            Some((m, exp)) => {
                let m = m.trim_end_matches('0').trim_end_matches('.');
                format!("{m}e{exp}")
            }
            None => e,
        }
    } else if a >= 100.0 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.4}");
        let s = s.trim_end_matches('0').trim_end_matches('.');
        s.to_string()
    }
}

/// From worst (amber) to best (blue), `t` in 0..=1.
fn shade(t: f64) -> String {
    let (a, b) = ([0xe8, 0xa3, 0x3d], [0x24, 0x57, 0xc5]);
    let t = t.clamp(0.0, 1.0);
    let c: Vec<String> = (0..3)
        .map(|i| {
            format!(
                "{:02x}",
                (a[i] as f64 + (b[i] as f64 - a[i] as f64) * t) as u8
            )
        })
        .collect();
    format!("#{}", c.concat())
}

/// One trial as the page ranks it.
struct Trial<'a> {
    run: &'a RunRow,
    value: Option<f64>,
    /// Its number in the search (the order trials were made).
    index: usize,
}

/// The search's section of its page.
pub fn section(base: &str, parent: &RunRow, trials: &[RunRow], q: &SearchQuery) -> String {
    let matrix = matrix_of(parent).unwrap_or(J::Null);
    let own = matrix_objective(&matrix);
    // Every numeric output the trials have may rank them.
    let mut outputs = BTreeMap::<String, usize>::new();
    for t in trials {
        for (k, v) in t.outputs() {
            if number(Some(&v)).is_some() {
                *outputs.entry(k).or_default() += 1;
            }
        }
    }
    let chosen = q.metric.clone().filter(|m| !m.trim().is_empty());
    let metric = chosen
        .clone()
        .or_else(|| own.as_ref().map(|o| o.0.clone()))
        .or_else(|| {
            // The output most trials have (ties: by name).
            outputs
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(k, _)| k.clone())
        });
    let mut b = String::from("<section class=plx-search><h3>Trials</h3>");
    let Some(metric) = metric else {
        let _ = write!(
            b,
            "<p class=muted>{} trials; none has a metric yet.</p></section>",
            trials.len()
        );
        return b;
    };
    let maximize = match q.order.as_deref() {
        Some("max") | Some("maximize") => true,
        Some("min") | Some("minimize") => false,
        _ => own
            .as_ref()
            .filter(|o| o.0 == metric)
            .and_then(|o| o.1)
            .unwrap_or_else(|| guess_maximize(&metric)),
    };
    let better = |a: f64, b: f64| if maximize { a > b } else { a < b };

    // Trials in the order they were made, then ranked best first (those without a value
    // last, by number).
    let mut made: Vec<&RunRow> = trials.iter().collect();
    made.sort_by_key(|r| (r.meta().trial.unwrap_or(u64::MAX), r.created_at, r.id));
    let all: Vec<Trial<'_>> = made
        .iter()
        .enumerate()
        .map(|(i, r)| Trial {
            run: r,
            value: number(r.outputs().get(&metric)),
            index: i + 1,
        })
        .collect();
    let mut ranked: Vec<&Trial<'_>> = all.iter().collect();
    ranked.sort_by(|a, b| match (a.value, b.value) {
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
            if maximize { o.reverse() } else { o }.then(a.index.cmp(&b.index))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.index.cmp(&b.index),
    });

    // The params: the matrix's, else every input that differs between trials.
    let mut names: Vec<String> = matrix
        .get("params")
        .and_then(J::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    if names.is_empty() {
        let mut seen = BTreeMap::<String, BTreeSet<String>>::new();
        for t in trials {
            for (k, v) in t.inputs() {
                seen.entry(k).or_default().insert(v.to_string());
            }
        }
        names = seen
            .into_iter()
            .filter(|(_, vs)| vs.len() > 1)
            .map(|(k, _)| k)
            .collect();
    }
    let log_hint = |name: &str| {
        matrix
            .get("params")
            .and_then(|p| p.get(name))
            .and_then(|p| p.get("kind"))
            .and_then(J::as_str)
            .is_some_and(|k| k.contains("log") || k.contains("geom"))
    };
    let inputs: Vec<_> = all.iter().map(|t| t.run.inputs()).collect();
    let mut axes: Vec<Axis> = names
        .iter()
        .filter_map(|n| {
            let vs: Vec<&J> = inputs.iter().filter_map(|i| i.get(n)).collect();
            Axis::of(n, &vs, log_hint(n))
        })
        .collect();
    let values: Vec<J> = all.iter().filter_map(|t| t.value.map(J::from)).collect();
    let metric_axis = Axis::of(&metric, &values.iter().collect::<Vec<_>>(), false);

    // What ranks them, and another metric to choose.
    let _ = write!(
        b,
        "<form method=get class=q><label>rank by <select name=metric aria-label='metric to rank by'>"
    );
    let mut options: BTreeSet<String> = outputs.keys().cloned().collect();
    options.insert(metric.clone());
    for o in &options {
        let _ = write!(
            b,
            "<option{}>{}</option>",
            if *o == metric { " selected" } else { "" },
            esc(o)
        );
    }
    let _ = write!(
        b,
        "</select></label> <select name=order aria-label=order><option value=max{}>highest first<option value=min{}>lowest first</select> <button>rank</button> \
         <span class=muted>{}</span></form>",
        if maximize { " selected" } else { "" },
        if maximize { "" } else { " selected" },
        esc(&match (&own, &chosen) {
            (Some(o), None) if o.0 == metric => "the search's metric".to_string(),
            (_, Some(_)) => "chosen".to_string(),
            _ => "the search has no metric: the one most trials report".to_string(),
        })
    );
    let finished = all.iter().filter(|t| t.value.is_some()).count();
    let best = ranked.first().filter(|t| t.value.is_some());
    let _ = write!(
        b,
        "<p>{} trials, {finished} with <b>{}</b>{}",
        all.len(),
        esc(&metric),
        match best {
            Some(t) => format!(
                "; the best: <a href='{base}/runs/{}'>{}</a> at <b>{}</b>",
                enc(&t.run.uuid),
                esc(t.run.name.as_deref().unwrap_or(&t.run.uuid)),
                esc(&short(t.value.unwrap_or_default()))
            ),
            None => String::new(),
        }
    );
    let top: Vec<&str> = ranked
        .iter()
        .filter(|t| t.value.is_some())
        .take(5)
        .map(|t| t.run.uuid.as_str())
        .collect();
    if top.len() > 1 {
        let _ = write!(
            b,
            " · <a href='{base}/compare?runs={}&baseline={}'>compare the best {}</a>",
            enc(&top.join(",")),
            enc(top[0]),
            top.len()
        );
    }
    b.push_str("</p>");

    if let Some(ma) = &metric_axis {
        axes.push(ma.clone());
        b.push_str(&parallel(base, &axes, &all, &inputs, &metric, maximize));
        axes.pop();
        b.push_str("<div class=charts>");
        for a in &axes {
            b.push_str(&scatter(base, a, ma, &all, &inputs, maximize));
        }
        b.push_str(&best_so_far(&metric, &all, better));
        b.push_str("</div>");
    }

    // The table, best first.
    let _ = write!(
        b,
        "<table class=plx-trials><tr><th>rank<th>trial<th>status<th>{} {}",
        esc(&metric),
        if maximize { "▼" } else { "▲" }
    );
    for n in &names {
        let _ = write!(b, "<th>{}", esc(n));
    }
    b.push_str("<th>duration</tr>");
    for (rank, t) in ranked.iter().enumerate() {
        let i = t.index - 1;
        let _ = write!(
            b,
            "<tr data-uuid='{}'><td class=num>{}<td><a href='{base}/runs/{}'>{}</a> <span class='muted mono'>#{}</span><td>{}<td class=num><b>{}</b>",
            esc(&t.run.uuid),
            if t.value.is_some() {
                (rank + 1).to_string()
            } else {
                String::new()
            },
            enc(&t.run.uuid),
            esc(t.run.name.as_deref().unwrap_or("(unnamed)")),
            t.index,
            status_span(&t.run.status),
            t.value.map(|v| v.to_string()).unwrap_or_default()
        );
        for n in &names {
            let _ = write!(
                b,
                "<td class=num>{}",
                esc(&inputs[i].get(n).map(value_text).unwrap_or_default())
            );
        }
        let _ = write!(b, "<td class=num>{}</tr>", duration(t.run.duration));
    }
    let _ = write!(
        b,
        "</table></section><script src='{}' defer></script>",
        asset_url("search", "js")
    );
    b
}

const PC_H: f64 = 300.0;
const PC_TOP: f64 = 34.0;
const PC_BOTTOM: f64 = 26.0;

/// The parallel-coordinates chart: an axis per param and the metric last, a line per trial
/// coloured from worst to best. Each line carries its positions (`data-v`) for the script.
fn parallel(
    base: &str,
    axes: &[Axis],
    trials: &[Trial<'_>],
    inputs: &[serde_json::Map<String, J>],
    metric: &str,
    maximize: bool,
) -> String {
    let (left, right) = (70.0, 70.0);
    let w = (left + right + 170.0 * (axes.len().max(2) - 1) as f64).max(900.0);
    let step = (w - left - right) / (axes.len().max(2) - 1) as f64;
    let x_of = |i: usize| left + i as f64 * step;
    let y_of = |t: f64| PC_H - PC_BOTTOM - t * (PC_H - PC_TOP - PC_BOTTOM);
    let cfg: Vec<J> = axes
        .iter()
        .enumerate()
        .map(|(i, a)| a.json(x_of(i)))
        .collect();
    let metric_axis = axes.last().expect("the metric's axis");
    let mut svg = format!(
        "<div class='chart plx-pc-wrap'><svg class=plx-pc width={w} height={PC_H} viewBox='0 0 {w} {PC_H}' role=img \
         aria-label='parallel coordinates of {} trials: params to {}' data-axes='{}' data-top={PC_TOP} data-bottom={}>",
        trials.len(),
        esc(metric),
        esc(&J::from(cfg).to_string()),
        PC_H - PC_BOTTOM
    );
    // Lines first (worst first, so that the best are drawn on top).
    let mut order: Vec<&Trial<'_>> = trials.iter().collect();
    order.sort_by(|a, b| {
        let (x, y) = (a.value, b.value);
        match (x, y) {
            (Some(x), Some(y)) => {
                let o = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
                if maximize { o } else { o.reverse() }
            }
            (None, Some(_)) => std::cmp::Ordering::Less,
            (Some(_), None) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        }
    });
    svg.push_str("<g class=lines>");
    for t in order {
        let i = t.index - 1;
        let vs: Vec<Option<f64>> = axes
            .iter()
            .enumerate()
            .map(|(k, a)| {
                if k + 1 == axes.len() {
                    a.pos(t.value.map(J::from).as_ref())
                } else {
                    a.pos(inputs[i].get(&a.name))
                }
            })
            .collect();
        let points: Vec<String> = vs
            .iter()
            .enumerate()
            .filter_map(|(k, v)| v.map(|v| format!("{:.1},{:.1}", x_of(k), y_of(v))))
            .collect();
        let colour = match metric_axis.pos(t.value.map(J::from).as_ref()) {
            Some(p) => shade(if maximize { p } else { 1.0 - p }),
            None => "#b8bdc7".into(),
        };
        let title = axes
            .iter()
            .enumerate()
            .map(|(k, a)| {
                let v = if k + 1 == axes.len() {
                    t.value.map(short).unwrap_or_else(|| "—".into())
                } else {
                    inputs[i]
                        .get(&a.name)
                        .map(value_text)
                        .unwrap_or_else(|| "—".into())
                };
                format!("{}={v}", a.name)
            })
            .collect::<Vec<_>>()
            .join(" · ");
        let _ = write!(
            svg,
            "<a href='{base}/runs/{}'><polyline class=trial data-uuid='{}' data-v='{}' points='{}' fill=none stroke='{colour}' stroke-width=1.6{}>\
             <title>{} (#{}): {}</title></polyline></a>",
            enc(&t.run.uuid),
            esc(&t.run.uuid),
            esc(&J::from(
                vs.iter()
                    .map(|v| v.map(J::from).unwrap_or(J::Null))
                    .collect::<Vec<_>>()
            )
            .to_string()),
            points.join(" "),
            if t.value.is_none() {
                " stroke-dasharray='4 3'"
            } else {
                ""
            },
            esc(t.run.name.as_deref().unwrap_or(&t.run.uuid)),
            t.index,
            esc(&title)
        );
    }
    svg.push_str("</g>");
    for (k, a) in axes.iter().enumerate() {
        let x = x_of(k);
        let _ = write!(
            svg,
            "<g class=axis data-axis={k}><line x1={x:.1} x2={x:.1} y1={PC_TOP} y2={:.1} stroke=#1d2330 stroke-width=1 />\
             <text x={x:.1} y={:.1} text-anchor=middle font-size=12 font-weight=600 fill=#1d2330>{}</text>",
            PC_H - PC_BOTTOM,
            PC_TOP - 14.0,
            esc(&a.name)
        );
        for (t, label) in a.ticks() {
            let y = y_of(t);
            let _ = write!(
                svg,
                "<line x1={:.1} x2={x:.1} y1={y:.1} y2={y:.1} stroke=#1d2330 /><text x={:.1} y={:.1} text-anchor=end font-size=10 fill=#6b7280>{}</text>",
                x - 4.0,
                x - 6.0,
                y + 3.5,
                esc(&label)
            );
        }
        let _ = write!(
            svg,
            "<rect class=plx-hit data-axis={k} tabindex=0 aria-label='the range of {}: arrow keys move it, + and - narrow and widen it, Delete clears it' x={:.1} y={PC_TOP} width=24 height={:.1} fill=transparent style='cursor:ns-resize' />\
             <rect class=plx-brush data-axis={k} x={:.1} width=14 y=0 height=0 fill='#2457c5' fill-opacity=0.18 stroke='#2457c5' pointer-events=none visibility=hidden /></g>",
            esc(&a.name),
            x - 12.0,
            PC_H - PC_TOP - PC_BOTTOM,
            x - 7.0
        );
    }
    svg.push_str("</svg>");
    let _ = write!(
        svg,
        "<p class='muted plx-brush-status' role=status>Drag along an axis to keep the trials within a range; click an axis to clear it.</p></div>"
    );
    svg
}

const SC_W: f64 = 300.0;
const SC_H: f64 = 200.0;

fn frame(title: &str) -> String {
    format!(
        "<svg width={SC_W} height={SC_H} viewBox='0 0 {SC_W} {SC_H}' role=img aria-label='{}'>\
         <rect x=44 y=14 width={} height={} fill=#fbfcfd stroke=#e3e6eb />",
        esc(title),
        SC_W - 54.0,
        SC_H - 46.0
    )
}

/// A param (x) against the metric (y): a point per trial with a value, the best ringed.
fn scatter(
    base: &str,
    a: &Axis,
    metric: &Axis,
    trials: &[Trial<'_>],
    inputs: &[serde_json::Map<String, J>],
    maximize: bool,
) -> String {
    let (x0, x1, y0, y1) = (52.0, SC_W - 18.0, SC_H - 38.0, 22.0);
    let best = trials
        .iter()
        .filter_map(|t| t.value.map(|v| (t, v)))
        .fold(None::<(&Trial<'_>, f64)>, |acc, (t, v)| match acc {
            Some((_, bv)) if (maximize && v <= bv) || (!maximize && v >= bv) => acc,
            _ => Some((t, v)),
        })
        .map(|(t, _)| t.index);
    let title = format!("{} against {}", a.name, metric.name);
    let mut s = format!(
        "<div class='chart plx-scatter' data-param='{}'>{}",
        esc(&a.name),
        frame(&title)
    );
    for t in trials {
        let (Some(px), Some(py)) = (
            a.pos(inputs[t.index - 1].get(&a.name)),
            metric.pos(t.value.map(J::from).as_ref()),
        ) else {
            continue;
        };
        let (cx, cy) = (x0 + px * (x1 - x0), y0 + py * (y1 - y0));
        let ring = best == Some(t.index);
        let _ = write!(
            s,
            "<a href='{base}/runs/{}'><circle data-uuid='{}' cx={cx:.1} cy={cy:.1} r={} fill='{}' fill-opacity=0.75 stroke='{}' stroke-width={}><title>{}: {}={}, {}={}</title></circle></a>",
            enc(&t.run.uuid),
            esc(&t.run.uuid),
            if ring { 5.5 } else { 3.8 },
            shade(if maximize { py } else { 1.0 - py }),
            if ring { "#1d2330" } else { "none" },
            if ring { 1.6 } else { 0.0 },
            esc(t.run.name.as_deref().unwrap_or(&t.run.uuid)),
            esc(&a.name),
            esc(&inputs[t.index - 1]
                .get(&a.name)
                .map(value_text)
                .unwrap_or_default()),
            esc(&metric.name),
            esc(&t.value.map(short).unwrap_or_default())
        );
    }
    let ticks = a.ticks();
    let every = ticks.len().div_ceil(5).max(1);
    for (t, label) in ticks.iter().step_by(every) {
        let _ = write!(
            s,
            "<text x={:.1} y={:.1} text-anchor=middle font-size=10 fill=#6b7280>{}</text>",
            x0 + t * (x1 - x0),
            SC_H - 22.0,
            esc(label)
        );
    }
    for (t, label) in metric.ticks().iter().step_by(2) {
        let _ = write!(
            s,
            "<text x=40 y={:.1} text-anchor=end font-size=10 fill=#6b7280>{}</text>",
            y0 + t * (y1 - y0) + 3.5,
            esc(label)
        );
    }
    let _ = write!(
        s,
        "<text x={:.1} y={:.1} text-anchor=middle font-size=11 fill=#1d2330>{}{}</text></svg></div>",
        (x0 + x1) / 2.0,
        SC_H - 6.0,
        esc(&a.name),
        if matches!(a.scale, Scale::Log(..)) {
            " (log)"
        } else {
            ""
        }
    );
    s
}

/// The best value so far by trial number (a step line), each trial's value a point.
fn best_so_far(metric: &str, trials: &[Trial<'_>], better: impl Fn(f64, f64) -> bool) -> String {
    let vals: Vec<(usize, f64)> = trials
        .iter()
        .filter_map(|t| t.value.map(|v| (t.index, v)))
        .collect();
    let mut s = format!(
        "<div class='chart plx-best' data-metric='{}'>{}",
        esc(metric),
        frame(&format!("the best {metric} so far, by trial"))
    );
    if vals.is_empty() {
        s.push_str("</svg></div>");
        return s;
    }
    let n = trials.len().max(2);
    let lo = vals.iter().map(|v| v.1).fold(f64::INFINITY, f64::min);
    let hi = vals.iter().map(|v| v.1).fold(f64::NEG_INFINITY, f64::max);
    let (x0, x1, y0, y1) = (52.0, SC_W - 18.0, SC_H - 38.0, 22.0);
    let x = |i: usize| x0 + (i - 1) as f64 / (n - 1) as f64 * (x1 - x0);
    let y = |v: f64| {
        if hi > lo {
            y0 + (v - lo) / (hi - lo) * (y1 - y0)
        } else {
            (y0 + y1) / 2.0
        }
    };
    let mut best: Option<f64> = None;
    let mut line = Vec::new();
    let mut so_far = Vec::new();
    for (i, v) in &vals {
        let b = match best {
            Some(b) if !better(*v, b) => b,
            _ => *v,
        };
        if let Some(prev) = best {
            line.push(format!("{:.1},{:.1}", x(*i), y(prev)));
        }
        line.push(format!("{:.1},{:.1}", x(*i), y(b)));
        best = Some(b);
        so_far.push(b);
        let _ = write!(
            s,
            "<circle cx={:.1} cy={:.1} r=3 fill=#b8bdc7><title>#{i}: {}</title></circle>",
            x(*i),
            y(*v),
            esc(&short(*v))
        );
    }
    let _ = write!(
        s,
        "<polyline class=plx-best-line data-best='{}' points='{}' fill=none stroke=#2457c5 stroke-width=2 />",
        esc(&J::from(so_far).to_string()),
        line.join(" ")
    );
    for (t, label) in [(0.0, short(lo)), (1.0, short(hi))] {
        let _ = write!(
            s,
            "<text x=40 y={:.1} text-anchor=end font-size=10 fill=#6b7280>{}</text>",
            y0 + t * (y1 - y0) + 3.5,
            esc(&label)
        );
    }
    let _ = write!(
        s,
        "<text x={x0} y={:.1} font-size=10 fill=#6b7280>1</text><text x={x1} y={:.1} text-anchor=end font-size=10 fill=#6b7280>{n}</text>\
         <text x={:.1} y={:.1} text-anchor=middle font-size=11 fill=#1d2330>trial (best {} so far)</text></svg></div>",
        SC_H - 22.0,
        SC_H - 22.0,
        (x0 + x1) / 2.0,
        SC_H - 6.0,
        esc(metric)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_place_values_linearly_by_log_and_by_category() {
        let (a, b, c) = (json!(0.001), json!(0.01), json!(0.1));
        let log = Axis::of("lr", &[&a, &b, &c], true).unwrap();
        assert_eq!(log.scale, Scale::Log(0.001, 0.1));
        assert!((log.pos(Some(&b)).unwrap() - 0.5).abs() < 1e-9);
        let lin = Axis::of("lr", &[&a, &b, &c], false).unwrap();
        assert!((lin.pos(Some(&c)).unwrap() - 1.0).abs() < 1e-9);
        let (r, t) = (json!("relu"), json!("tanh"));
        let cat = Axis::of("act", &[&t, &r, &t], false).unwrap();
        assert_eq!(cat.scale, Scale::Cat(vec!["relu".into(), "tanh".into()]));
        assert_eq!(cat.pos(Some(&t)), Some(1.0));
        assert_eq!(cat.pos(Some(&json!("gelu"))), None);
        // Three decades of positive values are read by their logarithm without a hint.
        let (x, y) = (json!(1), json!(5000));
        assert!(matches!(
            Axis::of("n", &[&x, &y], false).unwrap().scale,
            Scale::Log(..)
        ));
    }

    #[test]
    fn the_objective_is_the_matrixs_else_its_early_stopping() {
        let m = json!({"kind": "bayes", "metric": {"name": "acc", "optimization": "maximize"}});
        assert_eq!(matrix_objective(&m), Some(("acc".into(), Some(true))));
        let m = json!({"kind": "random", "earlyStopping": [{"kind": "metric_early_stopping", "metric": "loss", "value": 0.1, "optimization": "minimize"}]});
        assert_eq!(matrix_objective(&m), Some(("loss".into(), Some(false))));
        assert_eq!(matrix_objective(&json!({"kind": "grid"})), None);
        assert!(!guess_maximize("val_loss") && guess_maximize("accuracy"));
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(short(0.5), "0.5");
        assert_eq!(short(0.12345678), "0.1235");
        assert_eq!(short(1234.5), "1234");
        assert_eq!(short(0.00001), "1e-5");
        assert_eq!(short(0.000_123_4), "1.23e-4");
    }
}
