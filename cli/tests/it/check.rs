//! `polyaxon check`.

use std::io::Read;
use std::process::Stdio;

use crate::common::{Env, compat_dir, fixtures, stderr, stdout};

const HELD_VALID: &[&str] = &[
    "typing/required_outputs.yml",
    "pipelines/build_run_pipeline.yml",
    "pipelines/simple_cron_pipeline.yml",
    "pipelines/simple_dag_pipeline.yml",
    "pipelines/simple_dag_pipeline_with_builds.yml",
    "pipelines/simple_joins_pipeline.yml",
    "pipelines/simple_parallel_pipeline.yml",
    "pipelines/simple_recurrent_pipeline.yml",
    "pipelines/simple_sequential_pipeline.yml",
    "plain/distributed_mpi_file.yml",
];

fn code_of(env: &Env, dir: &std::path::Path, file: &str) -> Option<i32> {
    env.cmd()
        .current_dir(dir)
        .args(["check", "-f", file])
        .output()
        .unwrap()
        .status
        .code()
}

#[test]
fn compat_table_exit_codes() {
    let Some(dir) = compat_dir() else {
        eprintln!("skipped: ../shared/compat is not beside the checkout");
        return;
    };
    let env = Env::new();
    let table = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let mut failures = Vec::new();
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let (file, expect) = (cols[0], cols[1]);
        // See DISAGREE in polyaxonfile-schema/tests/it/compat.rs: files the table holds invalid
        // and we (and upstream 2.18's `check`) hold valid.
        if HELD_VALID.contains(&file) {
            if code_of(&env, &dir, file) != Some(0) {
                failures.push(format!("{file}: expected valid (see DISAGREE)"));
            }
            continue;
        }
        let out = env
            .cmd()
            .current_dir(&dir)
            .args(["check", "-f", file])
            .output()
            .unwrap();
        let code = out.status.code();
        let err = stderr(&out);
        match expect {
            "valid" if code != Some(0) => failures.push(format!("{file}: exit {code:?}\n{err}")),
            "invalid" | "needs-params" if code != Some(1) => {
                failures.push(format!("{file}: exit {code:?}, expected 1\n{err}"))
            }
            "invalid" if !err.contains(&format!("--> {file}:")) => {
                failures.push(format!("{file}: no file:line in\n{err}"))
            }
            _ => {}
        }
        if expect == "needs-params" {
            let mut cmd = env.cmd();
            cmd.current_dir(&dir).args(["check", "-f", file]);
            for p in cols[2].split_whitespace() {
                cmd.args(["-P", p]);
            }
            let out = cmd.output().unwrap();
            if !out.status.success() {
                failures.push(format!("{file} with params: {}", stderr(&out)));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn summary_of_a_valid_file() {
    let env = Env::new();
    let out = env
        .cmd()
        .current_dir(fixtures().join("valid"))
        .args(["check", "-f", "matrix_grid.yml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("matrix_grid.yml is valid"));
    insta::assert_snapshot!(stdout(&out));
}

#[test]
fn errors_show_file_line_and_snippet() {
    let env = Env::new();
    let out = env
        .cmd()
        .current_dir(fixtures().join("invalid"))
        .args(["check", "-f", "snake_case_key.yml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    insta::assert_snapshot!(stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn json_output_on_success_and_failure() {
    let env = Env::new();
    let ok = env
        .cmd()
        .current_dir(fixtures().join("valid"))
        .args(["check", "-f", "job_full.yml", "-o", "json"])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let v: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["summary"]["run_kind"], "job");
    assert_eq!(v["compiled"]["kind"], "compiled_operation");
    let bad = env
        .cmd()
        .current_dir(fixtures().join("invalid"))
        .args(["check", "-f", "unknown_key.yml", "-o", "json"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    assert_eq!(v["valid"], false);
    assert_eq!(v["errors"][0]["line"], 8);
    assert_eq!(v["errors"][0]["path"], "run.container.imagePulPolicy");
    let yaml = env
        .cmd()
        .current_dir(fixtures().join("valid"))
        .args(["check", "-f", "service.yml", "-o", "yaml"])
        .output()
        .unwrap();
    assert!(
        stdout(&yaml).starts_with("valid: true\n"),
        "{}",
        stdout(&yaml)
    );
}

#[test]
fn params_from_the_command_line() {
    let env = Env::new();
    let dir = fixtures().join("invalid");
    let out = env
        .cmd()
        .current_dir(&dir)
        .args([
            "check",
            "-f",
            "required_input.yml",
            "-P",
            "loss=mse",
            "-P",
            "steps=3",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("echo mse"));
    // Malformed -P is a usage error (2); a repeated name is a user error (1).
    let out = env
        .cmd()
        .current_dir(&dir)
        .args(["check", "-f", "required_input.yml", "-P", "loss"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = env
        .cmd()
        .current_dir(&dir)
        .args([
            "check",
            "-f",
            "required_input.yml",
            "-P",
            "loss=a",
            "-P",
            "loss=b",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("more than once"));
}

#[test]
fn default_file_lookup() {
    let env = Env::new();
    let out = env.cmd().arg("check").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no polyaxonfile given"),
        "{}",
        stderr(&out)
    );
    std::fs::copy(
        fixtures().join("valid/service.yml"),
        env.home.path().join("polyaxonfile.yml"),
    )
    .unwrap();
    let out = env.cmd().arg("check").output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("polyaxonfile.yml is valid"));
}

#[test]
fn upgrade_prints_a_valid_v11_file() {
    let env = Env::new();
    let out = env
        .cmd()
        .current_dir(fixtures().join("valid"))
        .args(["check", "-f", "v06_group.yml", "--upgrade"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("version: 1.1") && text.contains("kind: tfjob"),
        "{text}"
    );
    std::fs::write(env.home.path().join("upgraded.yml"), &text).unwrap();
    let again = env
        .cmd()
        .args(["check", "-f", "upgraded.yml"])
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr(&again));
}

#[test]
fn schema_is_the_committed_one() {
    let env = Env::new();
    let out = env.cmd().args(["check", "--schema"]).output().unwrap();
    assert!(out.status.success());
    let committed =
        std::fs::read_to_string(fixtures().join("../../schema/polyaxonfile.schema.json")).unwrap();
    assert_eq!(stdout(&out), committed);
}

#[test]
fn colors_follow_no_color_and_force() {
    let env = Env::new();
    let dir = fixtures().join("invalid");
    let plain = env
        .cmd()
        .current_dir(&dir)
        .args(["check", "-f", "unknown_key.yml"])
        .env("CLICOLOR_FORCE", "1")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!stderr(&plain).contains('\x1b'));
    let colored = env
        .cmd()
        .current_dir(&dir)
        .args(["check", "-f", "unknown_key.yml"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(stderr(&colored).contains("\x1b[1;31merror"));
}

#[test]
fn broken_pipe_exits_zero() {
    let env = Env::new();
    let mut child = env
        .cmd_std()
        .args(["check", "--schema"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The reading end is dropped here: the rest of the output hits a closed pipe.
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0));
}

#[test]
fn help_is_stable() {
    let env = Env::new();
    let out = env.cmd().args(["check", "--help"]).output().unwrap();
    insta::assert_snapshot!(stdout(&out));
}

/// A little HTTP server for `urlRef`: `/comp.yml` with an ETag (304 when it matches), 404 for
/// anything else; it records each request's `If-None-Match`.
struct Served {
    addr: String,
    seen: std::sync::Arc<std::sync::Mutex<Vec<Option<String>>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Served {
    fn start() -> Served {
        use std::io::Write;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (seen2, stop2) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let body = "version: 1.1\nkind: component\nname: from-the-web\nrun:\n  kind: job\n  container: {image: busybox, command: [echo, fetched]}\n";
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let Ok((mut s, _)) = listener.accept() else {
                    std::thread::sleep(std::time::Duration::from_millis(10));
                    continue;
                };
                s.set_nonblocking(false).unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req).to_string();
                let inm = text.lines().find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("if-none-match: ")
                        .map(|_| l[15..].trim().to_string())
                });
                seen2.lock().unwrap().push(inm.clone());
                let resp = if text.starts_with("GET /bad.yml ") {
                    let bad = "version: 1.1\nkind: component\nrun:\n  kind: jobb\n";
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{bad}",
                        bad.len()
                    )
                } else if !text.starts_with("GET /comp.yml ") {
                    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                        .to_string()
                } else if inm.as_deref() == Some("\"v1\"") {
                    "HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n"
                        .to_string()
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nETag: \"v1\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    )
                };
                let _ = s.write_all(resp.as_bytes());
            }
        });
        Served {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
    }
}

/// `urlRef` is fetched, cached, revalidated by ETag, used from the cache offline (saying so),
/// and refused with a clear error when the server says no or nothing is cached.
#[test]
fn url_refs_are_fetched_cached_and_revalidated() {
    let mut served = Served::start();
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    let op = |path: &str| {
        let f = dir
            .path()
            .join(format!("op-{}.yml", path.replace(['/', '.'], "-")));
        std::fs::write(
            &f,
            format!(
                "version: 1.1\nkind: operation\nurlRef: http://{}/{path}\n",
                served.addr
            ),
        )
        .unwrap();
        f
    };
    let good = op("comp.yml");
    let check =
        |env: &Env, f: &std::path::Path| env.cmd().args(["check", "-f"]).arg(f).output().unwrap();
    let out = check(&env, &good);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("from-the-web"), "{}", stdout(&out));
    let out = check(&env, &good);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        *served.seen.lock().unwrap(),
        [None, Some("\"v1\"".to_string())],
        "the second use revalidates with the ETag"
    );
    // An error inside a fetched component is shown at its URL, not at the cached copy.
    let bad = op("bad.yml");
    let out = check(&env, &bad);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("--> http://{}/bad.yml:4:", served.addr)),
        "{err}"
    );
    served.seen.lock().unwrap().pop();
    // The server says no: refused, the cached copy of another URL not used for it.
    let missing = op("missing.yml");
    let out = check(&env, &missing);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("answered 404"), "{}", stderr(&out));
    // Offline: the cached copy, with its age.
    served.stop();
    let out = check(&env, &good);
    assert!(out.status.success(), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("using the copy cached"), "{err}");
    // Offline with nothing cached: an error that says so.
    let fresh = Env::new();
    let out = check(&fresh, &good);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("could not be fetched") && err.contains("no copy is cached"),
        "{err}"
    );
}
