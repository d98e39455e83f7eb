//! Walks upstream's fixtures (`../shared/compat/polyaxonfiles/expected.tsv`) when they are
//! beside the checkout; says so and skips when they are not.

use std::path::{Path, PathBuf};

use polyaxonfile::{Options, Session, check};

fn compat_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/compat/polyaxonfiles");
    dir.join("expected.tsv").is_file().then_some(dir)
}

fn run(dir: &Path, file: &str, params: &[(&str, &str)]) -> (bool, String) {
    let mut session = Session::new();
    let opts = Options {
        params: params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Options::default()
    };
    match check(&mut session, &[dir.join(file)], &opts) {
        Ok(_) => (true, String::new()),
        Err(d) => (false, d.render(&session.sources, false)),
    }
}

/// Rows where the table contradicts upstream's own tests, with the reason. The test asserts
/// our behaviour on them (so a change is noticed) instead of the table's.
const DISAGREE: &[(&str, &str)] = &[
    (
        "typing/required_outputs.yml",
        "outputs are validated once the run produced them (upstream: \"Outputs have delayed validation by default\", \
         test_no_params_for_required_inputs_outputs_raises); the file has no other defect, so it is valid",
    ),
    ("pipelines/build_run_pipeline.yml", NUMERIC_QUANTITY),
    ("pipelines/simple_cron_pipeline.yml", NUMERIC_QUANTITY),
    ("pipelines/simple_dag_pipeline.yml", NUMERIC_QUANTITY),
    (
        "pipelines/simple_dag_pipeline_with_builds.yml",
        NUMERIC_QUANTITY,
    ),
    ("pipelines/simple_joins_pipeline.yml", NUMERIC_QUANTITY),
    ("pipelines/simple_parallel_pipeline.yml", NUMERIC_QUANTITY),
    ("pipelines/simple_recurrent_pipeline.yml", NUMERIC_QUANTITY),
    ("pipelines/simple_sequential_pipeline.yml", NUMERIC_QUANTITY),
    ("plain/distributed_mpi_file.yml", NUMERIC_QUANTITY),
];

/// These files' only defect, for the table, is a resource written as a number.
const NUMERIC_QUANTITY: &str = "their only defect for the table is a resource written as a number (`cpu: 1`, \
     `nvidia.com/gpu: 1`): Kubernetes reads numbers as quantities, upstream's own tests pass these files, and \
     upstream 2.18's `polyaxon check` (the test virtualenv's) says each is valid";

#[test]
fn expected_table_holds() {
    let Some(dir) = compat_dir() else {
        eprintln!("skipped: ../shared/compat/polyaxonfiles is not beside the checkout");
        return;
    };
    let table = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut failures = Vec::new();
    let mut rows = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        rows += 1;
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, expect) = (cols[0], cols[1]);
        let params: Vec<(&str, &str)> = cols
            .get(2)
            .map(|p| {
                p.split_whitespace()
                    .filter_map(|kv| kv.split_once('='))
                    .collect()
            })
            .unwrap_or_default();
        let (ok, msg) = run(&dir, file, &[]);
        if let Some((_, why)) = DISAGREE.iter().find(|(f, _)| *f == file) {
            eprintln!("{file}: table says {expect}; we hold it valid because {why}");
            if !ok {
                failures.push(format!(
                    "{file}: expected valid (see DISAGREE), got:\n{msg}"
                ));
            }
            continue;
        }
        match expect {
            "valid" if !ok => failures.push(format!("{file}: expected valid, got:\n{msg}")),
            "invalid" if ok => failures.push(format!("{file}: expected invalid, but it passed")),
            "invalid" if !msg.contains("-->") => {
                failures.push(format!("{file}: the error does not name a line:\n{msg}"))
            }
            "needs-params" => {
                if ok {
                    failures.push(format!(
                        "{file}: expected to need params, but it passed without them"
                    ));
                }
                let (ok2, msg2) = run(&dir, file, &params);
                if !ok2 {
                    failures.push(format!(
                        "{file}: expected valid with {params:?}, got:\n{msg2}"
                    ));
                }
            }
            _ => {}
        }
    }
    assert!(rows > 100, "the table has {rows} rows");
    assert!(
        failures.is_empty(),
        "{} of {rows} rows failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
