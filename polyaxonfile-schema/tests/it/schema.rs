//! The committed JSON Schema matches the types, and accepts the files we accept.

use std::path::{Path, PathBuf};

fn committed() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/polyaxonfile.schema.json")
}

#[test]
fn committed_schema_is_fresh() {
    let generated = polyaxonfile::schema::json_schema_text();
    let path = committed();
    if std::env::var_os("UPDATE_GENERATED").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        on_disk == generated,
        "{} is stale: run `UPDATE_GENERATED=1 cargo test -p polyaxonfile --test it schema` and commit it",
        path.display()
    );
}

/// Every valid fixture, read to JSON, validates against the schema (with Python's
/// `jsonschema`, which `scripts/test` installs; `POLYAXON_TEST_PYTHON` points at it).
#[test]
fn schema_accepts_valid_fixtures() {
    let Some(python) = std::env::var_os("POLYAXON_TEST_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "POLYAXON_TEST_PYTHON must be set in CI (scripts/test sets it)"
        );
        eprintln!("skipped: POLYAXON_TEST_PYTHON is not set (scripts/test sets it)");
        return;
    };
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/valid");
    let tmp = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let text = std::fs::read_to_string(&p).unwrap();
        if text.contains("# schema: skip") || text.contains("version: 1\n") {
            continue;
        }
        let node = polyaxonfile::yaml::parse(&text, 0).unwrap();
        let out = tmp
            .path()
            .join(format!("{}.json", p.file_stem().unwrap().to_string_lossy()));
        std::fs::write(&out, node.to_json().to_string()).unwrap();
        docs.push(out);
    }
    assert!(docs.len() >= 10, "only {} fixtures", docs.len());
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft7Validator(schema)
bad = 0
for path in sys.argv[2:]:
    errors = sorted(validator.iter_errors(json.load(open(path))), key=lambda e: list(e.path))
    for e in errors[:3]:
        print(f"{path}: {'/'.join(map(str, e.path))}: {e.message[:300]}")
    bad += bool(errors)
sys.exit(1 if bad else 0)
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(committed())
        .args(&docs)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
