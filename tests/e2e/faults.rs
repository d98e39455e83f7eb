//! Faults: the server killed outright (SIGKILL), again and again, while writers stream metric
//! batches and log lines with retries; every point and line sent is stored exactly once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as J, json};

use polyaxon_tests::sealed::Env;
use polyaxon_tests::server::{http, start};

use super::remote::with_database;

/// One request that may fail (the server is being killed): the status and body, or why not.
fn try_http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {out:?}")))?;
    Ok((
        status,
        out.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    ))
}

const WRITERS: usize = 4;
const BATCHES: usize = 60;
const POINTS: usize = 20;
const KILLS: usize = 5;
/// Log lines per batch.
const LINES: usize = 5;

fn killed_while_writing(database_url: Option<&str>) {
    let env = Env::new();
    let mut args = vec!["--open"];
    if let Some(u) = database_url {
        args.extend(["--database-url", u]);
    }
    let (server, addr, _, _rx) = start(&env, &args);
    let mut server = Some(server);
    let (st, body) = http(
        &addr,
        "POST",
        "/api/v1/default/projects/create",
        Some(r#"{"name": "faults"}"#),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = http(
        &addr,
        "POST",
        "/api/v1/default/faults/runs",
        Some(r#"{"name": "killed"}"#),
    );
    assert_eq!(st, 200, "{body}");
    let uuid = serde_json::from_str::<J>(&body).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let metrics = format!("/streams/v1/polyaxon/default/faults/runs/{uuid}/metrics");
    let logs = format!("/streams/v1/polyaxon/default/faults/runs/{uuid}/logs");
    let current = Arc::new(Mutex::new(addr));
    let done = Arc::new(Mutex::new(0usize));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (current, metrics, logs, done) =
                (current.clone(), metrics.clone(), logs.clone(), done.clone());
            std::thread::spawn(move || {
                let mut retries = 0;
                for b in 0..BATCHES {
                    let first = (w * BATCHES + b) * POINTS;
                    let steps: Vec<usize> = (first..first + POINTS).collect();
                    let values: Vec<f64> = steps.iter().map(|s| *s as f64).collect();
                    let points = json!({"id": format!("w{w}-b{b}"), "metrics": [{"name": "loss", "step": steps, "value": values}]}).to_string();
                    let lines: Vec<J> = (0..LINES).map(|i| json!({"value": format!("w{w} b{b} l{i}")})).collect();
                    let lines = json!({"id": format!("w{w}-b{b}"), "logs": lines}).to_string();
                    for (path, body) in [(&metrics, &points), (&logs, &lines)] {
                        let started = Instant::now();
                        loop {
                            let addr = current.lock().unwrap().clone();
                            match try_http(&addr, "POST", path, body) {
                                Ok((s, _)) if (200..300).contains(&s) => break,
                                Ok((s, b)) if s < 500 => panic!("batch {w}/{b}: {s} {b}"),
                                _ => {
                                    retries += 1;
                                    assert!(started.elapsed() < Duration::from_secs(60), "batch {w}/{b} never landed");
                                    std::thread::sleep(Duration::from_millis(50));
                                }
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                *done.lock().unwrap() += 1;
                retries
            })
        })
        .collect();
    // Killed outright while they write, and started again on the same store.
    let mut kills = 0;
    while kills < KILLS && *done.lock().unwrap() < WRITERS {
        std::thread::sleep(Duration::from_millis(400));
        let mut s = server.take().unwrap();
        s.0.kill().unwrap();
        s.0.wait().unwrap();
        kills += 1;
        let (next, addr, _, _) = start(&env, &args);
        *current.lock().unwrap() = addr;
        server = Some(next);
    }
    let retries: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let addr = current.lock().unwrap().clone();
    let (st, body) = http(
        &addr,
        "GET",
        &format!("/streams/v1/polyaxon/default/faults/runs/{uuid}/events/metric?names=loss"),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let r: J = serde_json::from_str(&body).unwrap();
    let mut steps: Vec<i64> = r["data"][0]["data"]["step"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {r}"))
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    steps.sort();
    let sent = WRITERS * BATCHES * POINTS;
    let before = steps.len();
    steps.dedup();
    assert_eq!(before, steps.len(), "points stored twice");
    assert_eq!(steps.len(), sent, "points lost");
    assert_eq!(steps, (0..sent as i64).collect::<Vec<_>>());
    let (st, body) = http(&addr, "GET", &logs, None);
    assert_eq!(st, 200, "{body}");
    let mut got: Vec<String> = serde_json::from_str::<J>(&body).unwrap()["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["value"].as_str().unwrap().to_string())
        .collect();
    got.sort();
    let mut want: Vec<String> = (0..WRITERS)
        .flat_map(|w| {
            (0..BATCHES).flat_map(move |b| (0..LINES).map(move |i| format!("w{w} b{b} l{i}")))
        })
        .collect();
    want.sort();
    let lines = got.len();
    got.dedup();
    assert_eq!(lines, got.len(), "log lines stored twice");
    assert_eq!(got, want, "log lines lost");
    eprintln!(
        "faults: {kills} kills of the server, {sent} points and {lines} log lines sent by {WRITERS} writers with {retries} retries, {} points and {lines} lines stored",
        steps.len()
    );
    assert!(
        kills >= 2,
        "the writers finished before the server was killed twice"
    );
}

#[test]
fn a_killed_server_loses_and_doubles_no_point_on_sqlite() {
    killed_while_writing(None);
}

#[test]
fn a_killed_server_loses_and_doubles_no_point_on_postgres() {
    with_database("faults", killed_while_writing);
}

/// A PostgreSQL of the test's own (initdb in a temporary directory, its own port), so that it
/// can be restarted without disturbing the other tests' database. Stopped when dropped.
struct PrivatePostgres {
    bin: std::path::PathBuf,
    dir: tempfile::TempDir,
    port: u16,
}

impl PrivatePostgres {
    /// None, said why, where PostgreSQL's server programs are not installed here.
    fn start() -> Option<PrivatePostgres> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .flatten()
            .map(|e| e.path().join("bin"))
            .filter(|b| b.join("initdb").is_file())
            .max()?;
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres { bin, dir, port };
        // PostgreSQL refuses to run as root: as `postgres` then.
        std::process::Command::new("chown")
            .args(["-R", "postgres", pg.dir.path().to_str().unwrap()])
            .status()
            .unwrap();
        let init = pg.as_postgres(
            "initdb",
            &["-A", "trust", "-U", "polyaxon", "-D", &pg.data()],
        );
        assert!(
            init.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&init.stderr)
        );
        pg.ctl("start");
        Some(pg)
    }

    fn data(&self) -> String {
        self.dir.path().join("data").display().to_string()
    }

    fn as_postgres(&self, prog: &str, args: &[&str]) -> std::process::Output {
        let prog = self.bin.join(prog);
        let mut cmd = if nix_is_root() {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&prog);
            c
        } else {
            std::process::Command::new(&prog)
        };
        cmd.args(args).output().unwrap()
    }

    fn ctl(&self, what: &str) {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("log").display().to_string();
        let data = self.data();
        let mut args = vec![what, "-D", &data, "-o", &opts, "-l", &log, "-w"];
        if what != "start" {
            args.extend(["-m", "fast"]);
        }
        let out = self.as_postgres("pg_ctl", &args);
        assert!(
            out.status.success(),
            "pg_ctl {what}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
        );
    }

    fn url(&self) -> String {
        format!("postgres://polyaxon@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self.as_postgres("pg_ctl", &["stop", "-D", &self.data(), "-m", "immediate"]);
    }
}

fn nix_is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// PostgreSQL restarted while `polyaxon run` streams a job's metrics and logs to the server:
/// the server reconnects, the client retries, and the run ends succeeded with every point and
/// every line.
#[test]
fn postgres_restarted_mid_run_loses_nothing() {
    let Some(pg) = PrivatePostgres::start() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "PostgreSQL's server programs must be installed in CI (scripts/test installs them)"
        );
        eprintln!("skipped: no PostgreSQL server programs in /usr/lib/postgresql");
        return;
    };
    let (_server, env, _server_home) = super::remote::logged_in_with_project(Some(&pg.url()));
    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    const STEPS: usize = 150;
    let progress = env.home.path().join("progress");
    let script = format!(
        "i=0; while [ $i -lt {STEPS} ]; do echo \"line $i\"; echo \"loss=$i\"; echo $i > {}; i=$((i+1)); sleep 0.04; done",
        progress.display()
    );
    std::fs::write(
        work.join("polyaxonfile.yml"),
        format!(
            "version: 1.1\nkind: component\nname: steady\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, {}]\n",
            serde_json::to_string(&script).unwrap()
        ),
    )
    .unwrap();
    let child = env
        .cmd_std()
        .current_dir(&work)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["run", "-p", "root/demo", "--stdout-metrics", "--watch"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A third of the way in: restarted (a fast shutdown ends every connection).
    let t = Instant::now();
    loop {
        let at: usize = std::fs::read_to_string(&progress)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if at >= STEPS / 3 {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the job did not get going"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    pg.ctl("restart");
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "`polyaxon run`: {said}");
    let get = |args: &[&str]| {
        let out = env.cmd().args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let run: J =
        serde_json::from_str(&get(&["ops", "get", "-p", "root/demo", "-o", "json"])).unwrap();
    assert_eq!(run["status"], "succeeded", "{run}\n{said}");
    let uuid = run["uuid"].as_str().unwrap();
    let m: J = serde_json::from_str(&get(&[
        "ops",
        "metrics",
        "-p",
        "root/demo",
        "--uid",
        uuid,
        "-o",
        "json",
    ]))
    .unwrap();
    let mut values: Vec<i64> = m[0]["data"]["metric"]
        .as_array()
        .unwrap_or_else(|| panic!("no loss in {m}"))
        .iter()
        .map(|v| v.as_f64().unwrap() as i64)
        .collect();
    values.sort();
    assert_eq!(
        values,
        (0..STEPS as i64).collect::<Vec<_>>(),
        "every point once"
    );
    let logs = get(&["ops", "logs", "-p", "root/demo", "--uid", uuid]);
    for i in 0..STEPS {
        assert_eq!(
            logs.matches(&format!("line {i}\n")).count(),
            1,
            "line {i} once in the logs:\n{logs}"
        );
    }
}
