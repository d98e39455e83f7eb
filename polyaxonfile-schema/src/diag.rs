//! Diagnostics: what went wrong, where (file, line, column), the offending line, and what to do.
//!
//! Every error the crate reports is a [`Diagnostic`] tied to a [`Span`] in a [`SourceMap`];
//! rendering shows the source line with a caret underline, like a compiler does.

use std::fmt::{self, Write as _};

use serde::Serialize;

use crate::node::Span;

/// The files a check has read, so diagnostics can show their lines.
#[derive(Clone, Debug, Default)]
pub struct SourceMap {
    files: Vec<SourceFile>,
}

#[derive(Clone, Debug)]
struct SourceFile {
    name: String,
    text: String,
    line_starts: Vec<usize>,
}

impl SourceMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a file's text and returns its id for spans.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> u32 {
        let text = text.into();
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        self.files.push(SourceFile {
            name: name.into(),
            text,
            line_starts,
        });
        (self.files.len() - 1) as u32
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    pub fn name(&self, file: u32) -> Option<&str> {
        self.files.get(file as usize).map(|f| f.name.as_str())
    }

    pub fn text(&self, file: u32) -> Option<&str> {
        self.files.get(file as usize).map(|f| f.text.as_str())
    }

    /// The text of a 1-based line, without its line break.
    pub fn line(&self, file: u32, line: u32) -> Option<&str> {
        let f = self.files.get(file as usize)?;
        let idx = (line as usize).checked_sub(1)?;
        let start = *f.line_starts.get(idx)?;
        let end = f.line_starts.get(idx + 1).copied().unwrap_or(f.text.len());
        Some(f.text[start..end].trim_end_matches(['\n', '\r']))
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a polyaxonfile.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub span: Span,
    /// Short text shown under the caret.
    pub label: Option<String>,
    /// What to do about it.
    pub hint: Option<String>,
    /// The dotted path of the offending value (`run.container.command`).
    pub path: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            label: None,
            hint: None,
            path: None,
        }
    }

    pub fn warning(message: impl Into<String>, span: Span) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = Some(label.into());
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        let p = path.into();
        self.path = (!p.is_empty()).then_some(p);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// Renders the diagnostic with its source line, as shown on a terminal.
    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        let paint = Paint { on: color };
        let mut out = String::new();
        let (word, code) = match self.severity {
            Severity::Error => ("error", "1;31"),
            Severity::Warning => ("warning", "1;33"),
        };
        let _ = writeln!(
            out,
            "{}: {}",
            paint.wrap(code, word),
            paint.wrap("1", &self.message)
        );
        let file = sources.name(self.span.file);
        match file {
            Some(name) if self.span.start.line > 0 => {
                let line_no = self.span.start.line;
                let gutter = line_no.to_string().len();
                let pad = " ".repeat(gutter);
                let _ = writeln!(
                    out,
                    "{pad}{} {name}:{}:{}",
                    paint.wrap("1;34", "-->"),
                    line_no,
                    self.span.start.col
                );
                if let Some(text) = sources.line(self.span.file, line_no) {
                    let bar = paint.wrap("1;34", "|");
                    let _ = writeln!(out, "{pad} {bar}");
                    let shown = text.replace('\t', " ");
                    let _ = writeln!(
                        out,
                        "{} {bar} {shown}",
                        paint.wrap("1;34", &line_no.to_string())
                    );
                    let start = self.span.start.col.saturating_sub(1) as usize;
                    let line_len = shown.chars().count();
                    let end = if self.span.end.line == line_no
                        && self.span.end.col > self.span.start.col
                    {
                        (self.span.end.col - 1) as usize
                    } else {
                        line_len.max(start + 1)
                    };
                    let width = end.saturating_sub(start).max(1);
                    let carets = "^".repeat(width);
                    let label = self
                        .label
                        .as_deref()
                        .map(|l| format!(" {l}"))
                        .unwrap_or_default();
                    let _ = writeln!(
                        out,
                        "{pad} {bar} {}{}",
                        " ".repeat(start),
                        paint.wrap(code, &format!("{carets}{label}"))
                    );
                }
            }
            Some(name) => {
                let _ = writeln!(out, "  {} {name}", paint.wrap("1;34", "-->"));
            }
            None => {
                if let Some(label) = &self.label {
                    let _ = writeln!(out, "  = {label}");
                }
            }
        }
        if let Some(hint) = &self.hint {
            let _ = writeln!(out, "  {} {hint}", paint.wrap("1;36", "hint:"));
        }
        out
    }

    /// A flat, serializable form for `-o json`.
    pub fn to_report(&self, sources: &SourceMap) -> DiagnosticReport {
        let located = !self.span.is_none() && self.span.start.line > 0;
        DiagnosticReport {
            severity: self.severity,
            message: self.message.clone(),
            file: sources.name(self.span.file).map(str::to_string),
            line: located.then_some(self.span.start.line),
            column: located.then_some(self.span.start.col),
            path: self.path.clone(),
            label: self.label.clone(),
            hint: self.hint.clone(),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.span.is_none() && self.span.start.line > 0 {
            write!(
                f,
                " (line {}, column {})",
                self.span.start.line, self.span.start.col
            )?;
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct DiagnosticReport {
    pub severity: Severity,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// A failed check: one or more diagnostics, errors first, in file order.
#[derive(Clone, Debug, Default)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    pub fn one(d: Diagnostic) -> Self {
        Diagnostics(vec![d])
    }

    pub fn has_errors(&self) -> bool {
        self.0.iter().any(Diagnostic::is_error)
    }

    pub fn push(&mut self, d: Diagnostic) {
        self.0.push(d);
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sorts by severity then position and drops exact duplicates.
    pub fn normalize(&mut self) {
        self.0.sort_by(|a, b| {
            (a.severity, a.span.file, a.span.start).cmp(&(b.severity, b.span.file, b.span.start))
        });
        self.0.dedup();
    }

    pub fn render(&self, sources: &SourceMap, color: bool) -> String {
        self.0
            .iter()
            .map(|d| d.render(sources, color))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

impl From<Diagnostic> for Diagnostics {
    fn from(d: Diagnostic) -> Self {
        Diagnostics::one(d)
    }
}

struct Paint {
    on: bool,
}

impl Paint {
    fn wrap(&self, code: &str, s: &str) -> String {
        if self.on {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }
}

/// The candidate closest to `word`, if close enough to be what the user meant.
/// Spelling variants (`volume_mounts` for `volumeMounts`, wrong case) always match.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect::<String>()
    };
    let w = norm(word);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        if c == word {
            continue;
        }
        let n = norm(c);
        if n == w {
            return Some(c);
        }
        let d = levenshtein(&w, &n);
        let limit = (w.chars().count().max(n.chars().count()) / 3).max(1);
        if d <= limit && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit (optimal string alignment).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

/// Joins names as "`a`, `b` or `c`".
pub fn one_of(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.len() {
        0 => String::new(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::Pos;

    #[test]
    fn suggests_spelling_variants_and_typos() {
        let fields = ["volumeMounts", "image", "imagePullPolicy", "command"];
        assert_eq!(did_you_mean("volume_mounts", fields), Some("volumeMounts"));
        assert_eq!(did_you_mean("imgae", fields), Some("image"));
        assert_eq!(did_you_mean("comand", fields), Some("command"));
        assert_eq!(did_you_mean("zzz", fields), None);
    }

    #[test]
    fn renders_line_and_caret() {
        let mut sm = SourceMap::new();
        let f = sm.add("a.yml", "version: 1.1\nkind: compnent\n");
        let d = Diagnostic::error(
            "unknown kind `compnent`",
            Span {
                file: f,
                start: Pos { line: 2, col: 7 },
                end: Pos { line: 2, col: 15 },
            },
        )
        .with_label("did you mean `component`?");
        let out = d.render(&sm, false);
        assert!(out.contains("--> a.yml:2:7"), "{out}");
        assert!(out.contains("2 | kind: compnent"), "{out}");
        assert!(
            out.contains("  |       ^^^^^^^^ did you mean `component`?"),
            "{out}"
        );
    }
}
