//! `polyaxon ops metrics`: last values and extremes, the series, or charts of them.

use anyhow::Result;
use clap::Args;
use serde_json::Value as J;

use super::Target;
use crate::commands::OutputArgs;
use crate::context::{Ctx, run_not_found};
use crate::output::{self, Col, Table, short_float};
use crate::plot;
use crate::printer::Format;

#[derive(Debug, Args)]
pub struct MetricsArgs {
    /// Only these metrics, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub names: Vec<String>,

    /// Draw the series as charts in the terminal.
    #[arg(long)]
    pub plot: bool,

    /// At most this many points per series (keeping its shape); default: 1,000, or the
    /// chart's resolution with `--plot`.
    #[arg(long, value_name = "N")]
    pub sample: Option<usize>,

    /// Chart height in lines (with `--plot`).
    #[arg(long, default_value_t = 12, value_name = "LINES")]
    pub height: usize,

    #[command(flatten)]
    pub output: OutputArgs,
}

fn at(p: &polyaxon_server::api::V1SeriesPoint) -> String {
    match p.step {
        Some(s) => format!("{} (step {s})", short_float(p.value)),
        None => short_float(p.value),
    }
}

pub fn run(ctx: &Ctx, target: &Target, args: MetricsArgs) -> Result<()> {
    let width = output::term_width().unwrap_or(100);
    let sample = args.sample.unwrap_or(if args.plot {
        (width.saturating_sub(12)) * 2
    } else {
        1000
    });
    ctx.block_on(async {
        let client = ctx.client().await?;
        let (r, _) = target.resolve(ctx, &client).await?;
        let ev = client
            .metrics(&r, &args.names, Some(sample.max(1)))
            .await
            .map_err(|e| run_not_found(e, &r))?;
        let missing: Vec<&String> = args
            .names
            .iter()
            .filter(|n| !ev.data.iter().any(|s| &s.name == *n))
            .collect();
        if !missing.is_empty() {
            ctx.printer.warn(&format!(
                "run `{}` has no metric {}",
                r.uuid,
                missing
                    .iter()
                    .map(|m| format!("`{m}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if ev.data.is_empty() && args.output.format() == Format::Table {
            ctx.printer
                .note(&format!("run `{}` has no metrics", r.uuid));
            return Ok(());
        }
        let json = serde_json::to_value(&ev.data)?;
        if args.output.write_file(&ctx.printer, &json)? {
            return Ok(());
        }
        match args.output.format() {
            Format::Json | Format::Yaml => {
                let items: Vec<J> = json.as_array().cloned().unwrap_or_default();
                output::listing(
                    &ctx.printer,
                    args.output.format(),
                    &items,
                    &Table::default(),
                )?;
            }
            Format::Csv => {
                // Long form: one row per point.
                let mut t = Table::new(vec![
                    Col::new("name"),
                    Col::new("step"),
                    Col::new("timestamp"),
                    Col::new("value"),
                ]);
                for s in &ev.data {
                    let get = |k: &str| {
                        s.data
                            .get(k)
                            .and_then(J::as_array)
                            .cloned()
                            .unwrap_or_default()
                    };
                    let (steps, ts, vals) = (get("step"), get("timestamp"), get("metric"));
                    for (i, v) in vals.iter().enumerate() {
                        t.push(vec![
                            s.name.as_str().into(),
                            steps
                                .get(i)
                                .map(output::value_text)
                                .unwrap_or_default()
                                .into(),
                            ts.get(i).map(output::value_text).unwrap_or_default().into(),
                            v.to_string().into(),
                        ]);
                    }
                }
                ctx.printer.out(&t.csv())?;
            }
            Format::Table if args.plot => {
                let mut out = String::new();
                for s in &ev.data {
                    let title = match (&s.stats, s.total) {
                        (Some(st), Some(n)) => format!(
                            "{}  last {}  min {}  max {}  ({n} points)",
                            s.name,
                            at(&st.last),
                            at(&st.min),
                            at(&st.max)
                        ),
                        _ => s.name.clone(),
                    };
                    out.push_str(&if ctx.printer.color_out() {
                        format!("\x1b[1m{title}\x1b[0m\n")
                    } else {
                        format!("{title}\n")
                    });
                    let line = plot::Line {
                        name: "",
                        points: s.xy(),
                    };
                    let label_w = 10;
                    out.push_str(&plot::chart(
                        &[line],
                        width.saturating_sub(label_w + 2).max(20),
                        args.height,
                        ctx.printer.color_out(),
                    ));
                    out.push('\n');
                }
                ctx.printer.out(out.trim_end())?;
            }
            Format::Table => {
                let mut t = Table::new(vec![
                    Col::new("name"),
                    Col::new("last"),
                    Col::new("min"),
                    Col::new("max"),
                    Col::new("points"),
                ]);
                for s in &ev.data {
                    let (last, min, max) = match &s.stats {
                        Some(st) => (at(&st.last), at(&st.min), at(&st.max)),
                        None => Default::default(),
                    };
                    t.push(vec![
                        s.name.as_str().into(),
                        last.into(),
                        min.into(),
                        max.into(),
                        s.total.map(|n| n.to_string()).unwrap_or_default().into(),
                    ]);
                }
                output::listing(&ctx.printer, Format::Table, &[], &t)?;
            }
        }
        Ok(())
    })
}
