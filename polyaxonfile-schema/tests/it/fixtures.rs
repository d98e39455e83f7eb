//! Our own fixtures (`tests/fixtures/{valid,invalid}`): each file says in its leading comments
//! what checking it must give.
//!
//! ```text
//! # error: <text an error must contain>     (invalid files)
//! # at: <line>:<column>                     (where that error points)
//! # hint: <text its hint must contain>
//! # params: name=value ...                  (-P values)
//! # also: other.yml ...                     (more -f files, from tests/fixtures/parts)
//! # lint: true                              (check with --lint)
//! # expect: <path>=<value> ...              (valid files: fields of the JSON report)
//! ```

use std::path::{Path, PathBuf};

use polyaxonfile::{Options, Session, check};

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(kind)
}

struct Header {
    directives: Vec<(String, String)>,
}

impl Header {
    fn read(text: &str) -> Header {
        let directives = text
            .lines()
            .take_while(|l| l.starts_with('#'))
            .filter_map(|l| l.trim_start_matches('#').trim().split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        Header { directives }
    }

    fn all(&self, key: &str) -> Vec<&str> {
        self.directives
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    fn get(&self, key: &str) -> Option<&str> {
        self.all(key).into_iter().next()
    }
}

fn options(h: &Header) -> Options {
    let params = h
        .get("params")
        .map(|p| {
            p.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .unwrap_or_default();
    Options {
        params,
        lint: h.get("lint") == Some("true"),
        preset_dirs: vec![dir("parts")],
        hub_dirs: vec![dir("parts").join("hub")],
        presets: h
            .get("presets")
            .map(|p| p.split(',').map(str::to_string).collect())
            .unwrap_or_default(),
        ..Options::default()
    }
}

fn files(path: &Path, h: &Header) -> Vec<PathBuf> {
    let mut files = vec![path.to_path_buf()];
    if let Some(also) = h.get("also") {
        files.extend(also.split_whitespace().map(|f| dir("parts").join(f)));
    }
    files
}

/// Looks up `a.b.0.c` in JSON.
fn lookup<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .try_fold(v, |cur, seg| match seg.parse::<usize>() {
            Ok(i) if cur.is_array() => cur.get(i),
            _ => cur.get(seg),
        })
}

fn text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn fixture_paths(kind: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir(kind))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

#[test]
fn valid_fixtures_check_and_compile() {
    let mut failures = Vec::new();
    let paths = fixture_paths("valid");
    assert!(paths.len() >= 20, "{} valid fixtures", paths.len());
    for path in paths {
        let src = std::fs::read_to_string(&path).unwrap();
        let h = Header::read(&src);
        let mut session = Session::new();
        match check(&mut session, &files(&path, &h), &options(&h)) {
            Err(d) => failures.push(format!(
                "{}: expected valid, got:\n{}",
                path.display(),
                d.render(&session.sources, false)
            )),
            Ok(report) => {
                let doc = serde_json::json!({
                    "summary": report.summary,
                    "compiled": report.compiled.as_ref().map(|c| polyaxonfile::to_clean_json(&c.operation)),
                    "dag_ops": report.compiled.as_ref().map(|c| c.dag_ops.iter().map(|(n, op)| (n.clone(), polyaxonfile::to_clean_json(op))).collect::<serde_json::Map<_, _>>()),
                    "warnings": session.warnings.iter().map(|w| w.message.clone()).collect::<Vec<_>>(),
                });
                for exp in h.all("expect") {
                    for pair in exp.split(" && ") {
                        let (k, want) = pair.split_once('=').expect("expect: path=value");
                        match lookup(&doc, k.trim()) {
                            Some(got) if text(got) == want.trim() => {}
                            got => failures.push(format!(
                                "{}: `{k}` is {:?}, expected {want:?}",
                                path.display(),
                                got.map(text)
                            )),
                        }
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn invalid_fixtures_fail_where_they_should() {
    let mut failures = Vec::new();
    let paths = fixture_paths("invalid");
    assert!(paths.len() >= 30, "{} invalid fixtures", paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        let src = String::from_utf8_lossy(&bytes);
        let h = Header::read(&src);
        let want = h
            .get("error")
            .unwrap_or_else(|| panic!("{}: no `# error:` line", path.display()));
        let mut session = Session::new();
        match check(&mut session, &files(&path, &h), &options(&h)) {
            Ok(_) => failures.push(format!(
                "{}: expected an error containing {want:?}, but it is valid",
                path.display()
            )),
            Err(d) => {
                let rendered = d.render(&session.sources, false);
                let Some(hit) = d.0.iter().find(|x| x.message.contains(want)) else {
                    failures.push(format!(
                        "{}: no error contains {want:?}:\n{rendered}",
                        path.display()
                    ));
                    continue;
                };
                if let Some(at) = h.get("at") {
                    let got = format!("{}:{}", hit.span.start.line, hit.span.start.col);
                    if got != at {
                        failures.push(format!(
                            "{}: error at {got}, expected {at}:\n{rendered}",
                            path.display()
                        ));
                    }
                }
                if let Some(hint) = h.get("hint") {
                    let got = format!(
                        "{} {}",
                        hit.hint.as_deref().unwrap_or(""),
                        hit.label.as_deref().unwrap_or("")
                    );
                    if !got.contains(hint) {
                        failures.push(format!(
                            "{}: hint/label {got:?} lacks {hint:?}",
                            path.display()
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Memory as a bare number is bytes: under a mebibyte, a warning saying what to write.
#[test]
fn bare_memory_under_a_mebibyte_warns() {
    let doc = |memory: &str| {
        format!(
            "version: 1.1\nkind: component\nrun:\n  kind: job\n  container:\n    image: x\n    resources: {{limits: {{memory: {memory}}}}}\n"
        )
    };
    let warnings = |memory: &str| {
        let mut session = Session::new();
        polyaxonfile::check_text(&mut session, "f.yml", &doc(memory), &Options::default())
            .unwrap_or_else(|_| panic!("`memory: {memory}` should be valid"));
        session
            .warnings
            .iter()
            .map(|w| format!("{} {}", w.message, w.hint.clone().unwrap_or_default()))
            .collect::<Vec<_>>()
    };
    let w = warnings("512");
    assert!(
        w.iter()
            .any(|w| w.contains("512 bytes") && w.contains("\"512Mi\"")),
        "{w:?}"
    );
    // Said in bytes on purpose, large enough, or with a suffix: no warning.
    for quiet in ["\"512\"", "2147483648", "512Mi"] {
        let w = warnings(quiet);
        assert!(!w.iter().any(|w| w.contains("bytes")), "{quiet}: {w:?}");
    }
}
