//! Data on stdout: tables sized to the terminal, or JSON, YAML or CSV for pipes. Times shown
//! the way people read them; machines get RFC 3339.

use std::io::IsTerminal;

use serde_json::Value as J;
use tabled::builder::Builder;
use tabled::settings::object::Columns;
use tabled::settings::{Modify, Padding, Style, Width};

use polyaxon_server::api::RunStatus;

use crate::env;
use crate::printer::{Format, Printer};

/// The width tables must fit: `COLUMNS`, else the terminal's, else none (a pipe gets it all).
pub fn term_width() -> Option<usize> {
    if let Some(c) = env::get(env::COLUMNS)
        .and_then(|c| c.trim().parse::<usize>().ok())
        .filter(|c| *c > 0)
    {
        return Some(c);
    }
    if std::io::stdout().is_terminal() {
        return console::Term::stdout()
            .size_checked()
            .map(|(_, w)| w as usize);
    }
    None
}

/// A column of a table.
#[derive(Clone, Debug)]
pub struct Col {
    pub header: String,
    /// Never shortened (ids people copy).
    pub fixed: bool,
}

impl Col {
    pub fn new(h: &str) -> Col {
        Col {
            header: h.to_uppercase(),
            fixed: false,
        }
    }
    pub fn fixed(h: &str) -> Col {
        Col {
            header: h.to_uppercase(),
            fixed: true,
        }
    }
}

/// Rows of text under columns; cells may carry color (measured without it).
#[derive(Clone, Debug, Default)]
pub struct Table {
    pub cols: Vec<Col>,
    pub rows: Vec<Vec<Cell>>,
}

/// A cell: the text, and how to paint it on a terminal.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    pub text: String,
    pub color: Option<&'static str>,
}

impl From<String> for Cell {
    fn from(text: String) -> Self {
        Cell { text, color: None }
    }
}
impl From<&str> for Cell {
    fn from(text: &str) -> Self {
        Cell {
            text: text.to_string(),
            color: None,
        }
    }
}

impl Cell {
    pub fn painted(text: impl Into<String>, color: Option<&'static str>) -> Cell {
        Cell {
            text: text.into(),
            color,
        }
    }
}

fn text_width(s: &str) -> usize {
    console::measure_text_width(s)
}

/// Cuts `s` to `w` columns, ending with `…` when cut.
pub fn truncate(s: &str, w: usize) -> String {
    if text_width(s) <= w {
        return s.to_string();
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for ch in s.chars() {
        let cw = console::measure_text_width(ch.encode_utf8(&mut [0; 4]));
        if used + cw > w - 1 {
            break;
        }
        out.push(ch);
        used += cw;
    }
    out.push('…');
    out
}

impl Table {
    pub fn new(cols: Vec<Col>) -> Table {
        Table {
            cols,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, row: Vec<Cell>) {
        self.rows.push(row);
    }

    /// The table as text no wider than `width`: the widest shortenable columns give way
    /// first, down to a few characters each.
    pub fn render(&self, width: Option<usize>, color: bool) -> String {
        let n = self.cols.len();
        let clean = |s: &str| s.replace(['\n', '\r', '\t'], " ");
        let mut widths: Vec<usize> = self.cols.iter().map(|c| text_width(&c.header)).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate().take(n) {
                widths[i] = widths[i].max(text_width(&clean(&c.text)));
            }
        }
        if let Some(limit) = width {
            // Two spaces between columns.
            let total = |w: &[usize]| w.iter().sum::<usize>() + 2 * n.saturating_sub(1);
            while total(&widths) > limit {
                let mins: Vec<usize> = self
                    .cols
                    .iter()
                    .map(|c| {
                        if c.fixed {
                            usize::MAX
                        } else {
                            text_width(&c.header).clamp(4, 8)
                        }
                    })
                    .collect();
                let Some(i) = (0..n)
                    .filter(|&i| widths[i] > mins[i])
                    .max_by_key(|&i| widths[i])
                else {
                    break;
                };
                widths[i] -= 1;
            }
        }
        let mut b = Builder::default();
        b.push_record(self.cols.iter().map(|c| {
            let h = truncate(&c.header, usize::MAX);
            if color {
                format!("\x1b[1m{h}\x1b[0m")
            } else {
                h
            }
        }));
        for r in &self.rows {
            b.push_record((0..n).map(|i| {
                let cell = r.get(i).cloned().unwrap_or_default();
                let t = truncate(&clean(&cell.text), widths[i]);
                match (color, cell.color) {
                    (true, Some(code)) => format!("\x1b[{code}m{t}\x1b[0m"),
                    _ => t,
                }
            }));
        }
        let mut t = b.build();
        // Blank style separates columns with one space; one of padding makes two.
        t.with(Style::blank())
            .with(Padding::new(0, 1, 0, 0))
            .with(Modify::new(Columns::last()).with(Padding::zero()));
        for (i, w) in widths.iter().enumerate() {
            t.with(Modify::new(Columns::one(i)).with(Width::truncate(*w)));
        }
        let text = t.to_string();
        // Blank style pads every line to the widest: trim the tails.
        text.lines()
            .map(str::trim_end)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// CSV (RFC 4180): the whole values, no color.
    pub fn csv(&self) -> String {
        let mut out = String::new();
        let line = |cells: Vec<&str>| {
            cells
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(",")
        };
        let headers: Vec<String> = self.cols.iter().map(|c| c.header.to_lowercase()).collect();
        out.push_str(&line(headers.iter().map(String::as_str).collect()));
        out.push('\n');
        for r in &self.rows {
            out.push_str(&line(r.iter().map(|c| c.text.as_str()).collect()));
            out.push('\n');
        }
        out
    }
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// Prints a listing: the table for people, the API's objects for programs.
pub fn listing(
    printer: &Printer,
    format: Format,
    items: &[J],
    table: &Table,
) -> std::io::Result<()> {
    match format {
        Format::Table => {
            if table.rows.is_empty() {
                return Ok(());
            }
            printer.out(&table.render(term_width(), printer.color_out()))
        }
        Format::Json => printer.out(&serde_json::to_string_pretty(items).unwrap_or_default()),
        Format::Yaml => printer.out(&polyaxonfile::emit::to_yaml(&J::Array(items.to_vec()))),
        Format::Csv => printer.out(&table.csv()),
    }
}

/// Prints one object: `key  value` lines for people, the object for programs.
pub fn detail(
    printer: &Printer,
    format: Format,
    item: &J,
    pairs: &[(String, Cell)],
) -> anyhow::Result<()> {
    match format {
        Format::Table => {
            let width = pairs.iter().map(|(k, _)| text_width(k)).max().unwrap_or(0);
            let mut out = String::new();
            for (k, v) in pairs {
                let value = match (printer.color_out(), v.color) {
                    (true, Some(code)) => format!("\x1b[{code}m{}\x1b[0m", v.text),
                    _ => v.text.clone(),
                };
                let key = format!("{k:width$}");
                let key = if printer.color_out() {
                    format!("\x1b[1m{key}\x1b[0m")
                } else {
                    key
                };
                // Continuation lines line up under the value.
                let value = value.replace('\n', &format!("\n{:width$}  ", ""));
                out.push_str(&format!("{key}  {value}\n"));
            }
            printer.out(&out)?;
        }
        Format::Json => printer.out(&serde_json::to_string_pretty(item)?)?,
        Format::Yaml => printer.out(&polyaxonfile::emit::to_yaml(item))?,
        Format::Csv => {
            let mut t = Table::new(pairs.iter().map(|(k, _)| Col::new(k)).collect());
            t.push(pairs.iter().map(|(_, v)| v.clone()).collect());
            printer.out(&t.csv())?;
        }
    }
    Ok(())
}

/// Parses an RFC 3339 time from the API.
pub fn parse_time(s: &str) -> Option<jiff::Timestamp> {
    s.parse::<jiff::Timestamp>().ok()
}

/// "12s ago", "5m ago", "3h ago", "2d ago", else the date.
pub fn ago(s: Option<&str>) -> String {
    let Some(t) = s.and_then(parse_time) else {
        return String::new();
    };
    let secs = (jiff::Timestamp::now().as_second() - t.as_second()).max(0);
    match secs {
        0..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        86_400..=2_591_999 => format!("{}d ago", secs / 86_400),
        _ => t.strftime("%Y-%m-%d").to_string(),
    }
}

/// A time for detail views: `2026-11-24 05:12:03 UTC (5m ago)`.
pub fn when(s: Option<&str>) -> String {
    match s.and_then(parse_time) {
        Some(t) => format!("{} UTC ({})", t.strftime("%Y-%m-%d %H:%M:%S"), ago(s)),
        None => String::new(),
    }
}

/// "45s", "1m 23s", "2h 05m", "3d 04h".
pub fn duration(secs: Option<f64>) -> String {
    let Some(s) = secs.filter(|s| s.is_finite() && *s >= 0.0) else {
        return String::new();
    };
    let s = s.round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// The terminal color of a run status.
pub fn status_color(status: RunStatus) -> Option<&'static str> {
    use RunStatus as S;
    match status {
        S::Succeeded | S::Done => Some("32"),
        S::Failed | S::UpstreamFailed | S::Unschedulable => Some("31"),
        S::Stopped | S::Stopping | S::Skipped | S::Warning => Some("33"),
        S::Running | S::Starting | S::Processing | S::Resuming => Some("34"),
        _ => None,
    }
}

/// A status padded to `width`, painted when `color`.
pub fn status_text(status: RunStatus, width: usize, color: bool) -> String {
    let text = format!("{status:<width$}");
    match (color, status_color(status)) {
        (true, Some(code)) => format!("\x1b[{code}m{text}\x1b[0m"),
        _ => text,
    }
}

/// A JSON value as a cell: strings bare, numbers short, structures as compact JSON.
pub fn value_text(v: &J) -> String {
    match v {
        J::Null => String::new(),
        J::String(s) => s.clone(),
        J::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => short_float(f),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// A float in at most 6 significant digits, without trailing zeros.
pub fn short_float(f: f64) -> String {
    if f == 0.0 || !f.is_finite() {
        return f.to_string();
    }
    let mag = f.abs().log10().floor() as i32;
    if !(-4..=9).contains(&mag) {
        let s = format!("{f:.5e}");
        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
        let m = if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.')
        } else {
            m
        };
        return format!("{m}e{e}");
    }
    let decimals = (5 - mag).clamp(0, 12) as usize;
    let s = format!("{f:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// A size as people read it: `512 B`, `1.5 KiB`, `3.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: &[&str] = &["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_fit_the_width_and_keep_fixed_columns() {
        let mut t = Table::new(vec![
            Col::fixed("uuid"),
            Col::new("name"),
            Col::new("description"),
        ]);
        t.push(vec![
            "0123456789abcdef".into(),
            "a-rather-long-run-name".into(),
            "a description that goes on and on and on".into(),
        ]);
        let out = t.render(Some(50), false);
        for line in out.lines() {
            assert!(text_width(line) <= 50, "{line:?} is wider than 50");
        }
        assert!(out.contains("0123456789abcdef"), "{out}");
        assert!(out.contains('…'), "{out}");
        // No limit: everything.
        let out = t.render(None, false);
        assert!(out.contains("a description that goes on and on and on"));
        assert!(out.starts_with("UUID"));
    }

    #[test]
    fn csv_quotes_what_it_must() {
        let mut t = Table::new(vec![Col::new("a"), Col::new("b")]);
        t.push(vec!["x,y".into(), "say \"hi\"".into()]);
        assert_eq!(t.csv(), "a,b\n\"x,y\",\"say \"\"hi\"\"\"\n");
    }

    #[test]
    fn numbers_and_times_read_well() {
        assert_eq!(short_float(0.123456789), "0.123457");
        assert_eq!(short_float(1234.5), "1234.5");
        assert_eq!(short_float(2.0), "2");
        assert_eq!(short_float(0.00001234), "1.234e-5");
        assert_eq!(short_float(3e12), "3e12");
        assert_eq!(duration(Some(83.0)), "1m 23s");
        assert_eq!(duration(Some(7500.0)), "2h 05m");
        assert_eq!(duration(None), "");
        assert_eq!(truncate("abcdef", 4), "abc…");
        assert_eq!(ago(Some("2001-02-03T04:05:06Z")), "2001-02-03");
    }
}
