//! What `polyaxon check` reports about a valid file.

use serde::Serialize;
use serde_json::Value as J;

use crate::compile::{Compiled, Prepared, ResolvedIo, ValueSource};
use crate::spec::{Container, Matrix, Run, Schedule};

#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// `component` or `operation`, as the (first) file declares it.
    pub kind: String,
    pub version: String,
    pub name: Option<String>,
    pub run_kind: Option<String>,
    pub inputs: Vec<ResolvedIo>,
    pub outputs: Vec<ResolvedIo>,
    /// The main container's image and command line, after templating.
    pub image: Option<String>,
    pub command: Option<Vec<String>>,
    /// Roles of a distributed run and their replica counts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<(String, Option<i32>)>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matrix: Option<MatrixSummary>,
    /// DAG operations by stage (each stage only depends on earlier ones).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dag: Option<Vec<Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// `conditions` rendered false.
    pub skipped: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct MatrixSummary {
    pub kind: String,
    pub params: Vec<String>,
    /// How many trials, when the spec fixes it.
    pub trials: Option<u64>,
    pub concurrency: Option<i64>,
    /// The trial compiled for the check.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checked_trial: Option<serde_json::Map<String, J>>,
}

fn command_line(c: &Container) -> Option<Vec<String>> {
    let mut out: Vec<String> = c.command.clone().unwrap_or_default();
    out.extend(c.args.clone().unwrap_or_default());
    (!out.is_empty()).then_some(out)
}

impl Summary {
    pub fn new(prep: &Prepared, compiled: Option<&Compiled>) -> Summary {
        let comp = &prep.component;
        let op = &prep.operation;
        let run = compiled
            .and_then(|c| c.operation.run.as_ref())
            .or(comp.run.as_ref());
        let main: Option<&Container> = run.and_then(|r| {
            r.container()
                .or_else(|| r.replicas().into_iter().find_map(|(_, rep)| rep.container))
        });
        let replicas = run
            .map(|r| {
                r.replicas()
                    .into_iter()
                    .map(|(n, rep)| (n, rep.replicas))
                    .collect()
            })
            .unwrap_or_default();
        let (inputs, outputs): (Vec<ResolvedIo>, Vec<ResolvedIo>) = match compiled {
            Some(c) => c.values.iter().cloned().partition(|v| !v.is_output),
            None => {
                let lint = |io: &crate::spec::Io, is_output: bool| ResolvedIo {
                    name: io.name.clone(),
                    iotype: io.iotype.clone(),
                    value: io.value.clone().unwrap_or(J::Null),
                    source: if io.value.is_some() {
                        ValueSource::Default
                    } else {
                        ValueSource::Missing
                    },
                    is_output,
                };
                (
                    comp.inputs
                        .iter()
                        .flatten()
                        .map(|io| lint(io, false))
                        .collect(),
                    comp.outputs
                        .iter()
                        .flatten()
                        .map(|io| lint(io, true))
                        .collect(),
                )
            }
        };
        let matrix = op.matrix.as_ref().map(|m: &Matrix| MatrixSummary {
            kind: m.kind().to_string(),
            params: m.param_names(),
            trials: crate::space::trial_count(m),
            concurrency: m.concurrency(),
            checked_trial: compiled
                .and_then(|c| c.trial.as_ref())
                .map(|t| t.iter().cloned().collect()),
        });
        let schedule = op.schedule.as_ref().map(|s| match s {
            Schedule::Cron(c) => format!("cron `{}`", c.cron.0),
            Schedule::Interval(i) => format!("every {}s", i.frequency.0),
            Schedule::DateTime(d) => format!("at {}", d.start_at.0),
        });
        let kind = if prep.hidden == 1 {
            "component"
        } else {
            "operation"
        };
        Summary {
            kind: kind.to_string(),
            version: if prep.legacy {
                "0.6, upgraded to 1.1".into()
            } else {
                "1.1".into()
            },
            name: op.name.clone().or_else(|| comp.name.clone()),
            run_kind: run.map(|r: &Run| r.kind().to_string()),
            inputs,
            outputs,
            image: main.and_then(|c| c.image.clone()),
            command: main.and_then(command_line),
            replicas,
            matrix,
            dag: prep.dag.as_ref().map(|d| d.stages.clone()),
            schedule,
            skipped: compiled.is_some_and(|c| c.skipped),
        }
    }
}
