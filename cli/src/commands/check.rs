//! `polyaxon check`: validate polyaxonfiles and show what they compile to.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use polyaxonfile::compile::ValueSource;
use polyaxonfile::{Diagnostics, Options, Session, Severity, Summary};
use serde_json::json;

use crate::error::{Reported, UserError};
use crate::printer::{Format, Printer};
use crate::settings;

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The polyaxonfile(s); later files patch earlier ones (presets, overrides).
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// A value for an input: `-P lr=0.01` (repeatable).
    #[arg(short = 'P', long = "param", value_name = "NAME=VALUE", value_parser = parse_param)]
    pub params: Vec<(String, String)>,

    /// Check the specification only: no values needed, templates not rendered.
    #[arg(short = 'l', long)]
    pub lint: bool,

    /// Named presets to apply, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    pub presets: Vec<String>,

    /// Print the file as a version 1.1 polyaxonfile (upgrading v0.6 files).
    #[arg(long)]
    pub upgrade: bool,

    /// Print the JSON Schema of polyaxonfiles (for editors) and exit.
    #[arg(long, conflicts_with_all = ["files", "upgrade"])]
    pub schema: bool,

    /// Output format.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// Parses `name=value`.
pub fn parse_param(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("`{s}` is not `name=value`")),
    }
}

pub fn run(args: CheckArgs, printer: &Printer) -> Result<()> {
    if args.schema {
        printer.out(&polyaxonfile::schema::json_schema_text())?;
        return Ok(());
    }
    if args.output == Format::Csv {
        return Err(UserError::new("`-o csv` is for listings")
            .hint("use `-o table`, `-o json` or `-o yaml`")
            .into());
    }
    let mut seen = std::collections::BTreeSet::new();
    for (name, _) in &args.params {
        if !seen.insert(name) {
            return Err(UserError::new(format!("`-P {name}` is given more than once")).into());
        }
    }
    let files = if args.files.is_empty() {
        match settings::default_file() {
            Some(f) => vec![f],
            None => {
                return Err(UserError::new("no polyaxonfile given and none found here")
                    .hint(format!(
                        "pass one with `-f FILE`, or name it {}",
                        settings::DEFAULT_FILES[..3].join(", ")
                    ))
                    .into());
            }
        }
    } else {
        args.files.clone()
    };
    // The home is the only setting a check needs (where presets and hub components are).
    let home = settings::home_dir();
    // The connections' catalogue, when a file names connections: templates see it, and the
    // names the spec gives are checked against it (the catalogue is not read otherwise).
    let names_connections = files
        .iter()
        .any(|f| std::fs::read_to_string(f).is_ok_and(|t| t.contains("connection")));
    let catalogue = if names_connections {
        match catalogue() {
            Ok(c) => c,
            Err(e) => {
                printer.warn(&format!("the connections it names are not checked: {e:#}"));
                None
            }
        }
    } else {
        None
    };
    let opts = Options {
        connections: catalogue
            .as_deref()
            .map(crate::connections::template_context)
            .unwrap_or_default(),
        params: args.params.clone(),
        lint: args.lint,
        presets: args.presets.clone(),
        preset_dirs: settings::preset_dirs(&home),
        hub_dirs: settings::hub_dirs(&home),
        url_fetcher: Some(crate::urlref::fetcher(&home)),
        ..Options::default()
    };
    let mut session = Session::new();
    let result = polyaxonfile::check(&mut session, &files, &opts).and_then(|report| {
        // The connections it names, against the catalogue (read only when it names some).
        crate::connections::check_report(report, catalogue.as_deref(), &mut session)
    });
    let shown: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    let warnings = Diagnostics(session.warnings.clone());
    match result {
        Err(diags) => {
            match args.output {
                Format::Table => {
                    if !warnings.is_empty() {
                        printer.err(&warnings.render(&session.sources, printer.color));
                    }
                    printer.err(&diags.render(&session.sources, printer.color));
                    let n = diags
                        .0
                        .iter()
                        .filter(|d| d.severity == Severity::Error)
                        .count();
                    printer.err(&format!(
                        "{} {} is not valid ({n} error{})",
                        printer.paint("1;31", "✗"),
                        shown.join(" + "),
                        if n == 1 { "" } else { "s" }
                    ));
                }
                fmt => {
                    let doc = json!({
                        "valid": false,
                        "files": shown,
                        "errors": diags.0.iter().map(|d| d.to_report(&session.sources)).collect::<Vec<_>>(),
                        "warnings": warnings.0.iter().map(|d| d.to_report(&session.sources)).collect::<Vec<_>>(),
                    });
                    printer.out(&render(&doc, fmt))?;
                }
            }
            Err(Reported(1).into())
        }
        Ok(report) => {
            if args.upgrade {
                let node = &report.prepared.node;
                let doc = if report.prepared.hidden == 1 {
                    let mut comp = node
                        .get("component")
                        .cloned()
                        .unwrap_or_else(|| node.clone());
                    let mut map = vec![("version".to_string(), json!(1.1))];
                    if let serde_json::Value::Object(m) = comp.to_json() {
                        map.extend(m.into_iter().filter(|(k, _)| k != "version"));
                    }
                    comp = polyaxonfile::Node::from_json(
                        &serde_json::Value::Object(map.into_iter().collect()),
                        comp.span,
                    );
                    comp.to_json()
                } else if report.prepared.legacy {
                    polyaxonfile::v06::for_output(node).to_json()
                } else {
                    node.to_json()
                };
                if !warnings.is_empty() {
                    printer.err(&warnings.render(&session.sources, printer.color));
                }
                let text = match args.output {
                    Format::Json => format!("{}\n", serde_json::to_string_pretty(&doc)?),
                    _ => {
                        let note = if report.prepared.legacy {
                            "# upgraded from a v0.6 polyaxonfile by `polyaxon check --upgrade`\n"
                        } else {
                            ""
                        };
                        format!("{note}{}", polyaxonfile::emit::to_yaml(&doc))
                    }
                };
                printer.out(&text)?;
                return Ok(());
            }
            match args.output {
                Format::Table => {
                    if !warnings.is_empty() {
                        printer.err(&warnings.render(&session.sources, printer.color));
                    }
                    printer.success(&format!("{} is valid", shown.join(" + ")));
                    printer.out(&summary_text(&report.summary, printer))?;
                }
                fmt => {
                    let doc = json!({
                        "valid": true,
                        "files": shown,
                        "summary": report.summary,
                        "compiled": report.compiled.as_ref().map(|c| polyaxonfile::to_clean_json(&c.operation)),
                        "warnings": warnings.0.iter().map(|d| d.to_report(&session.sources)).collect::<Vec<_>>(),
                    });
                    printer.out(&render(&doc, fmt))?;
                }
            }
            Ok(())
        }
    }
}

/// The configured connections: the server's, or the embedded store's; `None` where there is
/// no catalogue to check against (an embedded store never used is not created for a check).
fn catalogue() -> Result<Option<Vec<polyaxon_server::api::V1Connection>>> {
    let settings = settings::Settings::resolve()?;
    if settings.host.is_none()
        && !settings.home.join("polyaxon.db").exists()
        && crate::env::get_os(crate::env::POLYAXON_CONNECTIONS_FILE).is_none()
        && !settings.home.join("connections.yaml").exists()
    {
        return Ok(None);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = crate::client::Client::connect(&settings).await?;
        Ok(Some(client.list_connections().await?.results))
    })
}

fn render(doc: &serde_json::Value, fmt: Format) -> String {
    match fmt {
        Format::Yaml => polyaxonfile::emit::to_yaml(doc),
        _ => serde_json::to_string_pretty(doc).unwrap_or_default(),
    }
}

/// A word as a shell would need it written.
fn shell_word(w: &str) -> String {
    if !w.is_empty()
        && w.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        w.to_string()
    } else {
        format!("'{}'", w.replace('\'', "'\\''"))
    }
}

fn value_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "—".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn summary_text(s: &Summary, printer: &Printer) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    rows.push(("kind".into(), format!("{} (version {})", s.kind, s.version)));
    if let Some(n) = &s.name {
        rows.push(("name".into(), n.clone()));
    }
    if let Some(k) = &s.run_kind {
        rows.push(("run".into(), k.clone()));
    }
    if !s.replicas.is_empty() {
        let roles: Vec<String> = s
            .replicas
            .iter()
            .map(|(role, n)| format!("{role} × {}", n.map_or("1".to_string(), |n| n.to_string())))
            .collect();
        rows.push(("replicas".into(), roles.join(", ")));
    }
    if let Some(i) = &s.image {
        rows.push(("image".into(), i.clone()));
    }
    if let Some(c) = &s.command {
        rows.push((
            "command".into(),
            c.iter()
                .map(|w| shell_word(w))
                .collect::<Vec<_>>()
                .join(" "),
        ));
    }
    for (label, list) in [("inputs", &s.inputs), ("outputs", &s.outputs)] {
        if list.is_empty() {
            continue;
        }
        let name_w = list
            .iter()
            .map(|io| io.name.chars().count())
            .max()
            .unwrap_or(0);
        let type_w = list
            .iter()
            .map(|io| io.iotype.as_deref().unwrap_or("any").len())
            .max()
            .unwrap_or(0);
        for (i, io) in list.iter().enumerate() {
            let source = match io.source {
                ValueSource::Default => "default",
                ValueSource::Param => "params",
                ValueSource::Cli => "-P",
                ValueSource::Matrix => "matrix",
                ValueSource::Ref => "at run time",
                ValueSource::Missing => "",
            };
            let value = if io.source == ValueSource::Ref {
                "…".to_string()
            } else {
                value_text(&io.value)
            };
            let line = format!(
                "{:name_w$}  {:type_w$}  {value}{}",
                io.name,
                io.iotype.as_deref().unwrap_or("any"),
                if source.is_empty() {
                    String::new()
                } else {
                    format!("  ({source})")
                },
            );
            rows.push((
                if i == 0 {
                    label.to_string()
                } else {
                    String::new()
                },
                line.trim_end().to_string(),
            ));
        }
    }
    if let Some(m) = &s.matrix {
        let trials = m
            .trials
            .map_or("an open number of trials".to_string(), |n| {
                format!("{n} trial{}", if n == 1 { "" } else { "s" })
            });
        let conc = m
            .concurrency
            .map_or(String::new(), |c| format!(", {c} at a time"));
        rows.push((
            "matrix".into(),
            format!("{} over {}: {trials}{conc}", m.kind, m.params.join(", ")),
        ));
    }
    if let Some(stages) = &s.dag {
        for (i, st) in stages.iter().enumerate() {
            rows.push((
                if i == 0 { "dag".into() } else { String::new() },
                format!("{}. {}", i + 1, st.join(", ")),
            ));
        }
    }
    if let Some(sc) = &s.schedule {
        rows.push(("schedule".into(), sc.clone()));
    }
    if s.skipped {
        rows.push((
            "conditions".into(),
            "false: the operation would be skipped".into(),
        ));
    }
    let w = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("  {}  {v}\n", printer.paint("1", &format!("{k:w$}"))))
        .collect()
}
