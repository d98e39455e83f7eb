//! Output: data on stdout, talk (progress, hints, warnings, errors) on stderr, colors only on
//! a terminal and never with `NO_COLOR`.

use std::io::{IsTerminal, Write};

use crate::env;

/// Output formats of listings and gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    #[default]
    Table,
    Json,
    Yaml,
    Csv,
}

/// Where the CLI writes.
#[derive(Clone, Copy, Debug)]
pub struct Printer {
    /// Colors on stderr.
    pub color: bool,
    /// Colors on stdout (tables).
    pub color_stdout: bool,
    /// Stdin is a terminal (prompts allowed).
    pub interactive: bool,
}

impl Printer {
    pub fn from_env() -> Self {
        let no_color = std::env::var_os(env::NO_COLOR).is_some_and(|v| !v.is_empty());
        let force =
            std::env::var_os(env::CLICOLOR_FORCE).is_some_and(|v| !v.is_empty() && v != "0");
        Printer {
            color: !no_color && (force || std::io::stderr().is_terminal()),
            color_stdout: !no_color && (force || std::io::stdout().is_terminal()),
            interactive: std::io::stdin().is_terminal() && std::io::stderr().is_terminal(),
        }
    }

    pub fn color_out(&self) -> bool {
        self.color_stdout
    }

    /// `warning: message`.
    pub fn warn(&self, message: &str) {
        self.err(&format!("{}: {message}", self.paint("1;33", "warning")));
    }

    /// A dimmed note on stderr.
    pub fn note(&self, message: &str) {
        self.err(&self.paint("2", message));
    }

    /// Writes data to stdout.
    pub fn out(&self, text: &str) -> std::io::Result<()> {
        let mut o = std::io::stdout().lock();
        o.write_all(text.as_bytes())?;
        if !text.ends_with('\n') {
            o.write_all(b"\n")?;
        }
        o.flush()
    }

    /// Writes a message to stderr.
    pub fn err(&self, text: &str) {
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(text.as_bytes());
        if !text.ends_with('\n') {
            let _ = e.write_all(b"\n");
        }
    }

    pub fn paint(&self, code: &str, s: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{s}\x1b[0m")
        } else {
            s.to_string()
        }
    }

    /// `error: message` and an optional `hint:` line.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        let mut s = format!("{}: {message}", self.paint("1;31", "error"));
        if let Some(h) = hint {
            s.push_str(&format!("\n  {} {h}", self.paint("1;36", "hint:")));
        }
        self.err(&s);
    }

    pub fn success(&self, message: &str) {
        self.err(&format!("{} {message}", self.paint("1;32", "✓")));
    }
}
