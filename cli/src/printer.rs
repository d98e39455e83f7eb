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

/// What a progress bar counts.
#[derive(Clone, Copy, Debug)]
pub enum Progress {
    /// Bytes, of a known total or not.
    Bytes(Option<u64>),
    /// Steps of a known total, after a fixed label (`building the image`).
    Steps(u64, &'static str),
    /// Nothing: a spinner beside the message.
    Spinner,
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
    /// No colors, no prompts: for talk that comes before the settings (start-up timings).
    pub const PLAIN: Printer = Printer {
        color: false,
        color_stdout: false,
        interactive: false,
    };

    pub fn from_env() -> Self {
        let no_color = env::get_os(env::NO_COLOR).is_some();
        let force = env::get_os(env::CLICOLOR_FORCE).is_some_and(|v| v != "0");
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

    /// A progress bar on stderr — the only kind there is — drawn at a terminal only (hidden
    /// otherwise, so pipes and logs get no control characters).
    pub fn progress(&self, kind: Progress, message: impl Into<String>) -> indicatif::ProgressBar {
        use indicatif::{ProgressBar, ProgressStyle};
        if !self.interactive {
            return ProgressBar::hidden();
        }
        let style = |t: &str| ProgressStyle::with_template(t).expect("a valid template");
        let pb = match kind {
            Progress::Bytes(Some(n)) => ProgressBar::new(n).with_style(style(
                "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
            )),
            Progress::Bytes(None) => ProgressBar::new_spinner()
                .with_style(style("{spinner} {msg} {bytes} {bytes_per_sec}")),
            Progress::Steps(n, label) => {
                let pb = ProgressBar::new(n)
                    .with_style(style("{prefix} {bar:24} step {pos}/{len} {wide_msg}"))
                    .with_prefix(label);
                pb.enable_steady_tick(std::time::Duration::from_millis(200));
                pb
            }
            Progress::Spinner => {
                let pb = ProgressBar::new_spinner();
                pb.enable_steady_tick(std::time::Duration::from_millis(100));
                pb
            }
        };
        pb.set_message(message.into());
        pb
    }

    /// A spinner beside `message`, at a terminal.
    pub fn spinner(&self, message: impl Into<String>) -> indicatif::ProgressBar {
        self.progress(Progress::Spinner, message)
    }
}
