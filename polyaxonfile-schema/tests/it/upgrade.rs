//! `--upgrade` output is itself a valid v1.1 polyaxonfile that compiles to the same operation.

use std::path::{Path, PathBuf};

use polyaxonfile::{Options, Session, check};

fn v06_files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<PathBuf> = std::fs::read_dir(root.join("tests/fixtures/valid"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| std::fs::read_to_string(p).is_ok_and(|t| t.contains("\nversion: 1\n")))
        .collect();
    let compat = root.join("../../shared/compat/polyaxonfiles");
    if let Ok(table) = std::fs::read_to_string(compat.join("expected.tsv")) {
        for line in table.lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            if cols.len() > 1 && cols[0].starts_with("v06/") && cols[1] == "valid" {
                files.push(compat.join(cols[0]));
            }
        }
    }
    files
}

#[test]
fn upgraded_files_check_and_compile_the_same() {
    let files = v06_files();
    assert!(files.len() >= 2);
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for f in files {
        let mut session = Session::new();
        let report = match check(&mut session, std::slice::from_ref(&f), &Options::default()) {
            Ok(r) => r,
            Err(d) => {
                failures.push(format!(
                    "{}: {}",
                    f.display(),
                    d.render(&session.sources, false)
                ));
                continue;
            }
        };
        let text = polyaxonfile::emit::to_yaml(
            &polyaxonfile::v06::for_output(&report.prepared.node).to_json(),
        );
        let out = dir.path().join(f.file_name().unwrap());
        std::fs::write(&out, &text).unwrap();
        // Values the upgrade leaves to the user (v0.6 refs to other runs) make the upgraded file
        // need params: it must still pass `--lint`, and otherwise compile to the same operation.
        let left_open = session
            .warnings
            .iter()
            .any(|w| w.message.contains("leaves it to be given"));
        let mut again = Session::new();
        if left_open {
            if let Err(d) = check(
                &mut again,
                &[out],
                &Options {
                    lint: true,
                    ..Options::default()
                },
            ) {
                failures.push(format!(
                    "{}: the upgraded file fails --lint:\n{}",
                    f.display(),
                    d.render(&again.sources, false)
                ));
            }
            continue;
        }
        match check(&mut again, &[out], &Options::default()) {
            Err(d) => failures.push(format!(
                "{}: the upgraded file is invalid:\n{}\n{text}",
                f.display(),
                d.render(&again.sources, false)
            )),
            Ok(r2) => {
                let a = polyaxonfile::to_clean_json(&report.compiled.unwrap().operation);
                let b = polyaxonfile::to_clean_json(&r2.compiled.unwrap().operation);
                if a != b {
                    failures.push(format!(
                        "{}: compiles differently after the upgrade",
                        f.display()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
