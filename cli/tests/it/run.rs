//! `polyaxon run` end to end on the process executor, on a clean `POLYAXON_HOME`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value as J;

use crate::common::{Env, stderr, stdout, test_python};
use crate::work::{PATH, Work, secs};

fn job(command: &str, extra: &str) -> String {
    format!(
        "version: 1.1\nkind: component\nname: job\n{extra}\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, {}]\n",
        serde_json::to_string(command).unwrap()
    )
}

fn alive(pid: u64) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s[s.rfind(')').unwrap() + 2..].chars().next().unwrap();
            state != 'Z'
        })
        .unwrap_or(false)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn the_quickstart_runs_on_a_clean_home() {
    let env = Env::new();
    let qs = repo_root().join("examples/quickstart/polyaxonfile.yml");
    let out = env
        .cmd_std()
        .env("PATH", PATH)
        .args(["run", "-f", qs.to_str().unwrap(), "-l", "-P", "epochs=4"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("step=")).collect();
    assert_eq!(lines.len(), 4, "{}", stdout(&out));
    assert!(stderr(&out).contains("succeeded"), "{}", stderr(&out));
    let run: J = serde_json::from_str(&stdout(
        &env.cmd()
            .args(["ops", "get", "-o", "json"])
            .output()
            .unwrap(),
    ))
    .unwrap();
    assert_eq!(run["status"], "succeeded");
    assert_eq!(run["project"], "default");
    assert_eq!(run["inputs"]["lr"], 0.1);
    assert_eq!(run["inputs"]["epochs"], 4);
    assert!(run["outputs"]["loss"].as_f64().unwrap() > 0.0);
    // The code: a snapshot of this repository, taken where the polyaxonfile is.
    let code = &run["meta_info"]["code_ref"];
    assert_eq!(code["path"], "examples/quickstart");
    assert_eq!(code["snapshot"].as_str().unwrap().len(), 40);
    let m: J = serde_json::from_str(&stdout(
        &env.cmd()
            .args(["ops", "metrics", "-o", "json"])
            .output()
            .unwrap(),
    ))
    .unwrap();
    let names: Vec<&str> = m
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["accuracy", "loss"]);
    assert_eq!(m[1]["data"]["step"], serde_json::json!([0, 1, 2, 3]));
}

#[test]
fn a_failing_job_says_why() {
    let w = Work::new(&job("echo about to fail; echo oops >&2; exit 3", ""));
    let out = w.out(&["run", "-l"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stdout(&out).contains("about to fail") && stdout(&out).contains("oops"));
    assert!(
        stderr(&out).contains("failed (exit code 3)"),
        "{}",
        stderr(&out)
    );
    let uuid = w.json(&["ops", "get", "-o", "json"])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let st = w.statuses(&uuid);
    let kinds: Vec<&str> = st.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        ["created", "queued", "starting", "running", "failed"]
    );
    assert_eq!(st[4].1, "exit code 3");
    let full = w.json(&["ops", "statuses", "--uid", &uuid, "-o", "json"]);
    assert_eq!(full[4]["meta_info"]["exit_code"], 3, "{full}");
    // Both streams are kept, stderr marked.
    let logs = w.ok(&["ops", "logs", "-a", "--hide-time"]);
    assert!(
        logs.contains("about to fail\n") && logs.contains("[stderr] oops"),
        "{logs}"
    );
    // A bad polyaxonfile runs nothing.
    std::fs::write(w.dir.join("bad.yml"), "version: 1.1\nkind: component\nrun: {kind: job, container: {image: x, command: [a], workdir: y}}\n").unwrap();
    let out = w.out(&["run", "-f", "bad.yml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("did you mean `workingDir`"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("nothing was run"));
    // A command that does not exist here.
    std::fs::write(
        w.dir.join("missing.yml"),
        job("x", "").replace("[sh, -c, \"x\"]", "[no-such-program-here]"),
    )
    .unwrap();
    let out = w.out(&["run", "-f", "missing.yml", "-l"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot start `no-such-program-here`"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn timeouts_and_retries() {
    let w = Work::new(&job("sleep 30", "termination: {timeout: 1}"));
    // How soon after the deadline the run ends is measured by `bench/run_bench.py`.
    let out = w.out(&["run", "-l"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("timed out after 1 s"),
        "{}",
        stderr(&out)
    );

    // Fails twice, then succeeds: two retries, in the same run and directory.
    let flaky = "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; echo attempt $n; [ $n -ge 3 ]";
    std::fs::write(
        w.dir.join("flaky.yml"),
        job(flaky, "termination: {maxRetries: 2}"),
    )
    .unwrap();
    let out = w.out(&["run", "-f", "flaky.yml", "-l"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("attempt 3"));
    let uuid = w.json(&["ops", "get", "-o", "json"])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let kinds: Vec<String> = w.statuses(&uuid).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "retrying").count(),
        2,
        "{kinds:?}"
    );
    assert_eq!(kinds.last().unwrap(), "succeeded");
    // Not enough retries: failed in the end.
    std::fs::write(
        w.dir.join("flaky1.yml"),
        job(
            &flaky.replace("count", "count1"),
            "termination: {maxRetries: 1}",
        ),
    )
    .unwrap();
    let out = w.out(&["run", "-f", "flaky1.yml", "-l"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn ctrl_c_stops_the_run() {
    let w = Work::new(&job("echo started; sleep 60", ""));
    let mut child = w
        .cmd()
        .args(["run", "-l"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let uuid = {
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            let o = w.out(&["ops", "get", "-o", "json"]);
            if o.status.success() {
                let r: J = serde_json::from_slice(&o.stdout).unwrap();
                if r["status"] == "running" {
                    break r["uuid"].as_str().unwrap().to_string();
                }
            }
            assert!(
                Instant::now() < end,
                "the run did not start: {}{}",
                stdout(&o),
                stderr(&o)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let run = w.run_json(&uuid);
    let job_pid = run["meta_info"]["executor"]["job_pid"].as_u64().unwrap();
    assert!(alive(job_pid));
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(err.contains("stopping run"), "{err}");
    let r = w.wait_status(&uuid, &["stopped"], 20);
    assert_eq!(r["status"], "stopped");
    assert!(!alive(job_pid), "the job is gone");
}

#[test]
fn stop_from_another_terminal_and_a_dead_supervisor() {
    let w = Work::new(&job("sleep 60", ""));
    let uuid = w.start(&[]);
    let r = w.wait_status(&uuid, &["running"], 20);
    let job_pid = r["meta_info"]["executor"]["job_pid"].as_u64().unwrap();
    w.ok(&["ops", "stop", "-y", "--uid", &uuid]);
    w.wait_status(&uuid, &["stopped"], 20);
    assert!(!alive(job_pid));

    // The supervisor killed: the next command notices, ends the job, fails the run.
    let uuid = w.start(&[]);
    let r = w.wait_status(&uuid, &["running"], 20);
    let sup = r["meta_info"]["executor"]["pid"].as_u64().unwrap();
    let job_pid = r["meta_info"]["executor"]["job_pid"].as_u64().unwrap();
    Command::new("kill")
        .args(["-KILL", &sup.to_string()])
        .status()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while alive(sup) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    let r = w.run_json(&uuid);
    assert_eq!(r["status"], "failed", "{r}");
    let last = &r["status_conditions"].as_array().unwrap().last().unwrap()["reason"];
    assert_eq!(last, "ExecutorLost");
    let end = Instant::now() + Duration::from_secs(5);
    while alive(job_pid) && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!alive(job_pid), "the orphaned job was ended");
}

#[test]
fn restart_copy_and_resume() {
    let w = Work::new(&job(
        "echo line >> \"$POLYAXON_RUN_OUTPUTS_PATH/log.txt\"; wc -l < \"$POLYAXON_RUN_OUTPUTS_PATH/log.txt\"",
        "",
    ));
    let out = w.out(&["run", "-l"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let first = w.json(&["ops", "get", "-o", "json"])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let home = w.env.home.path().join(".polyaxon/artifacts");
    let lines = |u: &str| {
        std::fs::read_to_string(home.join(u).join("outputs/log.txt"))
            .unwrap()
            .lines()
            .count()
    };
    assert_eq!(lines(&first), 1);
    // Restart: a new run, from nothing.
    let again = w.json(&["ops", "restart", "--uid", &first, "-o", "json"]);
    let again = again["uuid"].as_str().unwrap().to_string();
    w.wait_status(&again, &["succeeded"], 20);
    assert_eq!(lines(&again), 1);
    // Copy: a new run from the original's files.
    let copy = w.json(&["ops", "restart", "--copy", "--uid", &first, "-o", "json"]);
    let copy = copy["uuid"].as_str().unwrap().to_string();
    w.wait_status(&copy, &["succeeded"], 20);
    assert_eq!(lines(&copy), 2);
    // Resume: the same run continues with its files.
    let resumed = w.json(&["ops", "resume", "--uid", &first, "-o", "json"]);
    assert_eq!(resumed["uuid"], first.as_str());
    let r = w.wait_status(&first, &["succeeded"], 20);
    assert_eq!(lines(&first), 2);
    let kinds: Vec<&str> = r["status_conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"resuming"), "{kinds:?}");
}

#[test]
fn the_official_python_tracking_client_is_heard() {
    let Some(python) = test_python() else {
        return;
    };
    let w = Work::new(&format!(
        "version: 1.1\nkind: component\nname: tracked\ninputs:\n  - {{name: lr, type: float, value: 0.01, isOptional: true}}\nrun:\n  kind: job\n  container:\n    image: python\n    command: [{}, -u, track.py]\n",
        python.display()
    ));
    std::fs::write(
        w.dir.join("track.py"),
        r#"
from polyaxon import tracking

tracking.init()
tracking.log_inputs(batch_size=32, optimizer="adam")
for step in range(50):
    tracking.log_metrics(step=step, loss=1.0 / (step + 1), accuracy=step / 50)
tracking.log_outputs(final_accuracy=0.98)
print("done", flush=True)
tracking.end()
"#,
    )
    .unwrap();
    let out = w.out(&["run", "-l"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let r = w.json(&["ops", "get", "-o", "json"]);
    assert_eq!(r["inputs"]["lr"], 0.01);
    assert_eq!(r["inputs"]["batch_size"], 32);
    assert_eq!(r["inputs"]["optimizer"], "adam");
    assert_eq!(r["outputs"]["final_accuracy"], 0.98);
    let m = w.json(&["ops", "metrics", "-o", "json"]);
    let loss = m
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "loss")
        .expect("loss");
    assert_eq!(loss["total"], 50, "every point, once: {loss}");
    assert_eq!(loss["data"]["step"][49], 49);
    assert_eq!(loss["stats"]["min"]["value"], 0.02);
    // The event files are where upstream puts them.
    let uuid = r["uuid"].as_str().unwrap();
    assert!(
        w.env
            .home
            .path()
            .join(".polyaxon/artifacts")
            .join(uuid)
            .join("events/metric/loss.plx")
            .is_file()
    );
}

/// The lineage `polyaxon.tracking` records (a model saved as a folder, a file, a dataset in a
/// bucket), downloaded by name and by kind with `ops artifacts --lineage-name/--lineage-kind`.
#[test]
fn the_tracking_clients_lineage_is_kept_and_followed() {
    let Some(python) = test_python() else {
        return;
    };
    let w = Work::new(&format!(
        "version: 1.1\nkind: component\nname: lineage\nrun:\n  kind: job\n  container:\n    image: python\n    command: [{}, -u, track.py]\n",
        python.display()
    ));
    std::fs::write(
        w.dir.join("track.py"),
        r#"
import os
from polyaxon import tracking

tracking.init()
model = tracking.get_outputs_path("model")
os.makedirs(model, exist_ok=True)
with open(os.path.join(model, "weights.bin"), "w") as f:
    f.write("w-1")
report = tracking.get_outputs_path("report.txt")
with open(report, "w") as f:
    f.write("accuracy 0.9")
tracking.log_model_ref(path=model, name="best-model", framework="torch")
tracking.log_artifact_ref(path=report, kind="file", name="report")
tracking.log_data_ref(name="train-data", path="s3://datasets/train.csv", hash="abc123")
tracking.end()
"#,
    )
    .unwrap();
    let out = w.out(&["run", "-l"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let got = w.env.home.path().join("got");
    let out = w.out(&[
        "ops",
        "artifacts",
        "--lineage-name",
        "best-model",
        "--path",
        got.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read_to_string(got.join("outputs/model/weights.bin")).unwrap(),
        "w-1"
    );
    assert!(
        !got.join("outputs/report.txt").exists(),
        "only what was asked"
    );
    let by_kind = w.env.home.path().join("by-kind");
    let out = w.out(&[
        "ops",
        "artifacts",
        "--lineage-kind",
        "file",
        "--lineage-kind",
        "data",
        "--path",
        by_kind.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(
        std::fs::read_to_string(by_kind.join("outputs/report.txt")).unwrap(),
        "accuracy 0.9"
    );
    assert!(
        stderr(&out).contains("`train-data` is at `s3://datasets/train.csv`"),
        "{}",
        stderr(&out)
    );
    // A name it does not have: refused, with the names it has.
    let out = w.out(&["ops", "artifacts", "--lineage-name", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("best-model, env, report, train-data"),
        "{}",
        stderr(&out)
    );

    // Another run follows it: a join's `artifacts.best-model` is the path the lineage
    // recorded (as this job sees it), and an `init.artifacts` step fetches its report
    // through the API before the job starts.
    let first: serde_json::Value =
        serde_json::from_str(&w.ok(&["ops", "get", "-o", "json"])).unwrap();
    let uuid = first["uuid"].as_str().unwrap();
    std::fs::write(
        w.dir.join("consumer.yml"),
        format!(
            "version: 1.1\nkind: operation\njoins:\n  - query: \"name: lineage\"\n    params:\n      models: {{value: artifacts.best-model}}\n      outs: {{value: artifacts.outputs}}\ncomponent:\n  name: consumer\n  inputs:\n    - {{name: models, type: str, isList: true}}\n    - {{name: outs, type: str, isList: true}}\n  run:\n    kind: job\n    init:\n      - artifacts: {{files: [[{uuid}/outputs/report.txt, got/report.txt]], dirs: [{uuid}/outputs/model]}}\n      - file: {{filename: note.txt, content: from the spec}}\n        path: notes\n    container:\n      image: busybox\n      command: [sh, -c, '{{% for m in models %}}cat {{{{ m }}}}/weights.bin; echo; {{% endfor %}}{{% for o in outs %}}ls {{{{ o }}}}; {{% endfor %}}cat $POLYAXON_RUN_ARTIFACTS_PATH/got/report.txt; echo; cat $POLYAXON_RUN_ARTIFACTS_PATH/{uuid}/outputs/model/weights.bin; echo; cat $POLYAXON_RUN_ARTIFACTS_PATH/notes/note.txt']\n"
        ),
    )
    .unwrap();
    let out = w.out(&["run", "-f", "consumer.yml", "-l"]);
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    for want in [
        "2 files fetched",
        "w-1\n",
        "model\nreport.txt\naccuracy 0.9\nw-1\nfrom the spec",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    // A file that is not there fails the run before its job starts, naming it.
    std::fs::write(
        w.dir.join("missing.yml"),
        format!("version: 1.1\nkind: component\nrun:\n  kind: job\n  init: [{{artifacts: {{files: [{uuid}/outputs/nope.bin]}}}}]\n  container: {{image: busybox, command: [echo, job-ran]}}\n"),
    )
    .unwrap();
    let out = w.out(&["run", "-f", "missing.yml", "-l"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!all.contains("job-ran"), "{all}");
    let r: serde_json::Value = serde_json::from_str(&w.ok(&["ops", "get", "-o", "json"])).unwrap();
    assert_eq!(r["status"], "failed", "{r}");
    let said = r.to_string();
    assert!(said.contains("outputs/nope.bin"), "{said}");
}

#[test]
fn a_million_log_lines_are_stored_whole() {
    let w = Work::new(&job("seq 1 1000000", ""));
    let uuid = w.start(&[]);
    w.wait_status(&uuid, &["succeeded"], 120);
    let logs = w.ok(&["ops", "logs", "--no-follow", "--hide-time", "--uid", &uuid]);
    let lines: Vec<&str> = logs.lines().collect();
    assert_eq!(lines.len(), 1_000_000);
    assert_eq!(lines[0], "1");
    assert_eq!(lines[999_999], "1000000");
    assert!(
        lines
            .iter()
            .enumerate()
            .all(|(i, l)| l.parse::<usize>() == Ok(i + 1)),
        "in order, none lost or doubled"
    );
}

#[test]
fn services_serve_until_stopped() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = Work::new(&format!(
        "version: 1.1\nkind: component\nname: web\nrun:\n  kind: service\n  ports: [{port}]\n  container:\n    image: python\n    command: [python3, -m, http.server, \"{port}\", --bind, 127.0.0.1]\n"
    ));
    std::fs::write(w.dir.join("index.html"), "hello from a service").unwrap();
    let uuid = w.start(&[]);
    let r = w.wait_status(&uuid, &["running"], 20);
    let msg = r["status_conditions"].as_array().unwrap().last().unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(msg, format!("serving at http://127.0.0.1:{port}"));
    let end = Instant::now() + Duration::from_secs(20);
    let body = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            write!(s, "GET /index.html HTTP/1.0\r\n\r\n").unwrap();
            let mut b = String::new();
            let _ = s.read_to_string(&mut b);
            if !b.is_empty() {
                break b;
            }
        }
        assert!(Instant::now() < end, "the service never answered");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(body.contains("hello from a service"), "{body}");
    // `ops service` knows where it is.
    let out = w.out(&["ops", "service", "--url", "--uid", &uuid]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), format!("http://127.0.0.1:{port}"));
    // Still up a while later: services do not end by themselves.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(w.run_json(&uuid)["status"], "running");
    w.ok(&["ops", "stop", "-y", "--uid", &uuid]);
    w.wait_status(&uuid, &["stopped"], 20);
    // Not running any more: said so.
    let out = w.out(&["ops", "service", "--url", "--uid", &uuid]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is stopped: a service is reached while it runs"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn code_snapshots_and_runs_outside_git() {
    let w = Work::new(&job("cat data.txt", ""));
    // Uncommitted and untracked changes are in the run's code; ignored files are not.
    std::fs::write(w.dir.join("data.txt"), "from the working tree").unwrap();
    std::fs::write(w.dir.join(".polyaxonignore"), "secret.key\n").unwrap();
    std::fs::write(w.dir.join("secret.key"), "x").unwrap();
    let out = w.out(&["run", "-l"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("from the working tree"));
    let code = w.json(&["ops", "code", "-o", "json"]);
    assert_eq!(code["is_dirty"], true);
    let dest = w.env.home.path().join("restored");
    w.ok(&["ops", "code", "--checkout", dest.to_str().unwrap()]);
    assert_eq!(
        std::fs::read_to_string(dest.join("data.txt")).unwrap(),
        "from the working tree"
    );
    assert!(!dest.join("secret.key").exists());
    assert!(dest.join("polyaxonfile.yml").is_file());
    // The user's repository is as it was: nothing staged, HEAD where it was.
    let repo = git2::Repository::open(&w.dir).unwrap();
    assert!(
        repo.index()
            .unwrap()
            .get_path(Path::new("data.txt"), 0)
            .is_none()
    );
    assert_eq!(
        repo.head()
            .unwrap()
            .peel_to_commit()
            .unwrap()
            .message()
            .ok(),
        Some("initial")
    );

    // Outside a repository: it runs in the directory, and says so.
    let plain = w.env.home.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("polyaxonfile.yml"), job("pwd; cat note.txt", "")).unwrap();
    std::fs::write(plain.join("note.txt"), "no git here").unwrap();
    let out = w
        .env
        .cmd_std()
        .current_dir(&plain)
        .env("PATH", PATH)
        .args(["run", "-l"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("not in a git repository"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("no git here"));
    let out = w
        .env
        .cmd_std()
        .current_dir(&plain)
        .args(["ops", "code"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("has no code snapshot"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn upload_puts_the_code_in_the_runs_artifacts() {
    let w = Work::new(&job(
        "cat $POLYAXON_RUN_ARTIFACTS_PATH/uploads/data.txt; ls $POLYAXON_RUN_ARTIFACTS_PATH/uploads",
        "",
    ));
    std::fs::write(w.dir.join("data.txt"), "uploaded with the run").unwrap();
    std::fs::write(w.dir.join(".gitignore"), "*.ckpt\n").unwrap();
    std::fs::write(w.dir.join("model.ckpt"), "big").unwrap();
    let out = w.out(&["run", "-u", "-l"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("uploaded with the run"), "{text}");
    assert!(
        !text.contains("model.ckpt"),
        "ignored files stay home: {text}"
    );
    assert!(
        stderr(&out).contains("uploaded 3 files"),
        "{}",
        stderr(&out)
    );
    let got = w.env.home.path().join("got");
    w.ok(&[
        "ops",
        "artifacts",
        "-d",
        "uploads",
        "--path",
        got.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(got.join("uploads/data.txt")).unwrap(),
        "uploaded with the run"
    );
    assert!(got.join("uploads/polyaxonfile.yml").is_file());
    assert!(!got.join("uploads/model.ckpt").exists());

    // Elsewhere, from another directory; a directory that does not exist fails the run.
    let other = w.env.home.path().join("assets");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("vocab.txt"), "a b c").unwrap();
    let uuid = w.start(&[
        "--upload-from",
        other.to_str().unwrap(),
        "--upload-to",
        "inputs/vocab",
    ]);
    // (The job looks in `uploads/`, which this run does not have.)
    w.wait_status(&uuid, &["failed"], 30);
    let got = w.env.home.path().join("got2");
    w.ok(&[
        "ops",
        "artifacts",
        "--uid",
        &uuid,
        "-f",
        "inputs/vocab/vocab.txt",
        "--path",
        got.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(got.join("inputs/vocab/vocab.txt")).unwrap(),
        "a b c"
    );
    let out = w.out(&["run", "--upload-from", "/nonexistent/dir"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let last = w.json(&["ops", "ls", "-o", "json"]);
    let failed = &last.as_array().unwrap()[0];
    assert_eq!(failed["status"], "failed", "{failed}");
}

fn search(matrix: &str, command: &str) -> String {
    format!(
        "version: 1.1\nkind: operation\nname: search\nmatrix:\n{matrix}\ncomponent:\n  inputs:\n    - {{name: x, type: int}}\n  run:\n    kind: job\n    container:\n      image: busybox\n      env: [{{name: POLYAXON_STDOUT_METRICS, value: \"true\"}}]\n      command: [sh, -c, {}]\n",
        serde_json::to_string(command).unwrap()
    )
}

/// `polyaxon run -w` of the work's polyaxonfile, which must succeed: the run's uuid.
fn run_waited(w: &Work) -> String {
    let out = w.out(&["run", "-w"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    w.json(&["ops", "get", "-o", "json"])["uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

fn trials_of(w: &Work, parent: &str) -> Vec<J> {
    let q = format!("pipeline: {parent}");
    let list = w.json(&["ops", "ls", "-q", &q, "-l", "100", "-o", "json"]);
    list.as_array().unwrap().clone()
}

#[test]
fn a_grid_search_respects_its_concurrency_and_finds_the_best() {
    let w = Work::new(&search(
        "  kind: grid\n  concurrency: 2\n  params:\n    x: {kind: choice, value: [1, 2, 3, 4, 5]}\n  earlyStopping:\n    - {kind: failure_early_stopping, percent: 90}",
        // Trial 3 fails; the rest report acc=x after a moment.
        "sleep 0.6; if [ {{ x }} = 3 ]; then exit 1; fi; echo acc={{ x }}",
    ));
    let out = w.out(&["run", "-w"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // The search view: trials as they end, then a table of them all.
    let view = stdout(&out);
    assert!(view.contains("TRIAL") && view.contains("PARAMS"), "{view}");
    assert!(
        view.contains("search-2") && view.contains("failed"),
        "{view}"
    );
    let parent = w.json(&["ops", "get", "-o", "json"]);
    let uuid = parent["uuid"].as_str().unwrap().to_string();
    let parent = w.run_json(&uuid);
    assert_eq!(parent["status"], "succeeded", "{parent}");
    assert_eq!(parent["outputs"]["trials"], 5);
    assert_eq!(parent["outputs"]["trials_failed"], 1);
    let trials = trials_of(&w, &uuid);
    assert_eq!(trials.len(), 5);
    let mut xs: Vec<i64> = trials
        .iter()
        .map(|t| t["inputs"]["x"].as_i64().unwrap())
        .collect();
    xs.sort();
    assert_eq!(xs, [1, 2, 3, 4, 5]);
    // Never more than 2 at once: at any trial's start, at most one other is running.
    let spans: Vec<(f64, f64)> = trials
        .iter()
        .filter(|t| t["started_at"].is_string() && t["finished_at"].is_string())
        .map(|t| (secs(&t["started_at"]), secs(&t["finished_at"])))
        .collect();
    assert_eq!(spans.len(), 5, "{trials:?}");
    for (s, _) in &spans {
        let at_once = spans.iter().filter(|(a, b)| a <= s && s < b).count();
        assert!(at_once <= 2, "{at_once} trials at once: {spans:?}");
    }
    let max_parallel = spans
        .iter()
        .map(|(s, _)| spans.iter().filter(|(a, b)| a <= s && s < b).count())
        .max()
        .unwrap();
    assert_eq!(max_parallel, 2, "the concurrency is used: {spans:?}");
    let failed = trials.iter().find(|t| t["inputs"]["x"] == 3).unwrap();
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["pipeline"]["uuid"].as_str(), Some(uuid.as_str()));
    // The parent's logs tell the story.
    let logs = w.ok(&["ops", "logs", "--uid", &uuid, "--hide-time"]);
    assert!(logs.contains("trial 2 failed"), "{logs}");
    assert!(logs.contains("trial 4 succeeded"), "{logs}");
}

#[test]
fn early_stopping_fires_and_stopping_the_parent_stops_every_trial() {
    // A threshold: the first trial to reach acc >= 3 ends the search.
    let w = Work::new(&search(
        "  kind: grid\n  concurrency: 1\n  params:\n    x: {kind: range, value: [1, 10, 1]}\n  earlyStopping:\n    - {kind: metric_early_stopping, metric: acc, value: 3, optimization: maximize}",
        "echo acc={{ x }}",
    ));
    let out = w.out(&["run", "-w"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    // Best first.
    let view = stdout(&out);
    let table: Vec<&str> = view
        .lines()
        .skip_while(|l| !l.starts_with("TRIAL"))
        .collect();
    assert!(table.len() >= 4 && table[1].contains("x=3"), "{view}");
    let uuid = w.json(&["ops", "get", "-o", "json"])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    // The trials, sorted by their metric through the query language.
    let q = format!("pipeline: {uuid}");
    let sorted = w.json(&["ops", "ls", "-q", &q, "-s", "-metrics.acc", "-o", "json"]);
    assert_eq!(sorted[0]["outputs"]["acc"], 3.0, "{sorted}");
    // -HP makes a search of a component, as upstream's CLI does.
    std::fs::write(w.dir.join("comp.yml"), "version: 1.1\nkind: component\nname: comp\ninputs:\n  - {name: x, type: int}\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, 'echo acc={{ x }}']\n    env: [{name: POLYAXON_STDOUT_METRICS, value: 'true'}]\n").unwrap();
    let out = w.out(&[
        "run",
        "-f",
        "comp.yml",
        "-HP",
        "x=range:1:4:1",
        "--matrix-concurrency",
        "2",
        "-w",
    ]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let hp = w.json(&["ops", "get", "-o", "json"]);
    assert_eq!(hp["outputs"]["trials"], 3, "{hp}");
    let out = w.out(&["run", "-f", "comp.yml", "-HP", "x=1:4"]);
    assert!(
        stderr(&out).contains("has no kind") || !out.status.success(),
        "{}",
        stderr(&out)
    );
    let parent = w.run_json(&uuid);
    let last = parent["status_conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "EarlyStopping", "{parent}");
    assert!(
        last["message"].as_str().unwrap().contains("acc=3"),
        "{last}"
    );
    assert_eq!(parent["outputs"]["trials"], 3, "{parent}");
    assert_eq!(parent["outputs"]["best_acc"], 3.0);
    assert_eq!(parent["outputs"]["best_params"]["x"], 3);

    // A slow random search, stopped from another terminal: the trials stop too.
    std::fs::write(
        w.dir.join("slow.yml"),
        search(
            "  kind: random\n  numRuns: 6\n  seed: 1\n  concurrency: 2\n  params:\n    x: {kind: choice, value: [1, 2]}",
            "sleep 30",
        ),
    )
    .unwrap();
    let uuid = w.start(&["-f", "slow.yml"]);
    let end = Instant::now() + Duration::from_secs(20);
    while trials_of(&w, &uuid)
        .iter()
        .filter(|t| t["status"] == "running")
        .count()
        < 2
    {
        assert!(Instant::now() < end, "the trials never ran");
        std::thread::sleep(Duration::from_millis(100));
    }
    w.ok(&["ops", "stop", "-y", "--uid", &uuid]);
    w.wait_status(&uuid, &["stopped"], 30);
    let trials = trials_of(&w, &uuid);
    assert_eq!(trials.len(), 2, "no new trial after the stop");
    assert!(
        trials.iter().all(|t| t["status"] == "stopped"),
        "{trials:?}"
    );
}

#[test]
fn model_based_searches_run_their_budget() {
    let w = Work::new(&search(
        "  kind: bayes\n  numInitialRuns: 3\n  maxIterations: 3\n  concurrency: 2\n  seed: 4\n  metric: {name: acc, optimization: maximize}\n  params:\n    x: {kind: range, value: [1, 20, 1]}",
        "echo acc=$(( 100 - ({{ x }} - 12) * ({{ x }} - 12) ))",
    ));
    let uuid = run_waited(&w);
    let parent = w.run_json(&uuid);
    assert_eq!(parent["outputs"]["trials"], 6, "{parent}");
    assert_eq!(parent["outputs"]["trials_succeeded"], 6);
    let best = parent["outputs"]["best_acc"].as_f64().unwrap();
    let trials = trials_of(&w, &uuid);
    let max = trials
        .iter()
        .filter_map(|t| t["outputs"]["acc"].as_f64())
        .fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(best, max, "the best trial is the one with the highest acc");
    // An unsupported kind is refused before anything runs.
    std::fs::write(
        w.dir.join("iter.yml"),
        search(
            "  kind: iterative\n  maxIterations: 2\n  params:\n    x: {kind: choice, value: [1]}",
            "true",
        ),
    )
    .unwrap();
    let out = w.out(&["run", "-f", "iter.yml"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("iterative"), "{}", stderr(&out));
}

#[test]
fn a_seeded_bayes_search_under_concurrency_spreads_and_repeats() {
    // Branin, as a user runs it: x in [-5, 10], y in [0, 15], two trials at a time; each trial
    // sleeps a random moment, so they end in a different order every time.
    let branin = "sleep $(awk 'BEGIN { srand(); print rand() * 0.4 }'); \
        awk -v x={{ x }} -v y={{ y }} 'BEGIN { pi = atan2(0, -1); b = 5.1 / (4 * pi * pi); c = 5 / pi; t = 1 / (8 * pi); \
        printf \"loss=%.9f\\n\", (y - b * x * x + c * x - 6) ^ 2 + 10 * (1 - t) * cos(x) + 10 }'";
    let file = format!(
        "version: 1.1\nkind: operation\nname: search\nmatrix:\n  kind: bayes\n  numInitialRuns: 5\n  maxIterations: 9\n  concurrency: 2\n  seed: 11\n  metric: {{name: loss, optimization: minimize}}\n  utilityFunction: {{acquisitionFunction: ei, eps: 0.01, gaussianProcess: {{kernel: matern, nu: 2.5}}}}\n  params:\n    x: {{kind: uniform, value: [-5, 10]}}\n    y: {{kind: uniform, value: [0, 15]}}\ncomponent:\n  inputs:\n    - {{name: x, type: float}}\n    - {{name: y, type: float}}\n  run:\n    kind: job\n    container:\n      image: busybox\n      env: [{{name: POLYAXON_STDOUT_METRICS, value: \"true\"}}]\n      command: [sh, -c, {}]\n",
        serde_json::to_string(branin).unwrap()
    );
    let w = Work::new(&file);
    let mut searches = Vec::new();
    for _ in 0..2 {
        let uuid = run_waited(&w);
        let mut trials: Vec<(u64, f64, f64, f64)> = trials_of(&w, &uuid)
            .iter()
            .map(|t| {
                let n = t["name"].as_str().unwrap();
                let id: u64 = n.rsplit('-').next().unwrap().parse().unwrap();
                let x = t["inputs"]["x"].as_f64().unwrap();
                let y = t["inputs"]["y"].as_f64().unwrap();
                let loss = t["outputs"]["loss"].as_f64().unwrap_or(f64::NAN);
                (id, x, y, loss)
            })
            .collect();
        trials.sort_by_key(|t| t.0);
        assert_eq!(trials.len(), 14, "{trials:?}");
        assert!(trials.iter().all(|t| t.3.is_finite()), "{trials:?}");
        // No point tried twice.
        for (i, a) in trials.iter().enumerate() {
            for b in &trials[..i] {
                let d = ((a.1 - b.1) / 15.0).abs().max(((a.2 - b.2) / 15.0).abs());
                assert!(
                    d > 1e-5,
                    "trials {} and {} at the same point: {trials:?}",
                    b.0,
                    a.0
                );
            }
        }
        searches.push(trials);
    }
    // The same seed proposes the same trials, whichever ended first.
    let params = |s: &[(u64, f64, f64, f64)]| -> Vec<(u64, f64, f64)> {
        s.iter().map(|t| (t.0, t.1, t.2)).collect()
    };
    assert_eq!(params(&searches[0]), params(&searches[1]));
}

#[test]
fn a_median_stopping_policy_stops_the_laggard() {
    let w = Work::new(&search(
        "  kind: grid\n  concurrency: 3\n  params:\n    x: {kind: choice, value: [1, 2, 3]}\n  earlyStopping:\n    - kind: metric_early_stopping\n      metric: acc\n      value: 100\n      optimization: maximize\n      policy: {kind: median, evaluationInterval: 2, minSamples: 2}",
        "i=0; while [ $i -lt 60 ]; do echo step=$i acc={{ x }}; i=$((i+1)); sleep 0.1; done",
    ));
    let uuid = run_waited(&w);
    let trials = trials_of(&w, &uuid);
    let status_of = |x: i64| {
        trials
            .iter()
            .find(|t| t["inputs"]["x"] == x)
            .map(|t| t["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(status_of(1), "stopped", "{trials:?}");
    assert_eq!(status_of(3), "succeeded", "{trials:?}");
    let logs = w.ok(&["ops", "logs", "--uid", &uuid, "--hide-time"]);
    assert!(logs.contains("stopped early (median policy)"), "{logs}");
}

#[test]
fn hyperband_promotes_and_resumes_its_best_trials() {
    let w = Work::new(&format!(
        "version: 1.1\nkind: operation\nname: hb\nmatrix:\n  kind: hyperband\n  maxIterations: 3\n  eta: 3\n  resume: true\n  seed: 2\n  concurrency: 3\n  resource: {{name: epochs, type: int}}\n  metric: {{name: acc, optimization: maximize}}\n  params:\n    x: {{kind: choice, value: [1, 2, 3, 4, 5, 6]}}\ncomponent:\n  inputs:\n    - {{name: x, type: int}}\n    - {{name: epochs, type: int}}\n  run:\n    kind: job\n    container:\n      image: busybox\n      env: [{{name: POLYAXON_STDOUT_METRICS, value: \"true\"}}]\n      command: [sh, -c, {}]\n",
        serde_json::to_string("echo epochs={{ epochs }} >> $POLYAXON_RUN_OUTPUTS_PATH/history; echo acc=$(( {{ x }} * {{ epochs }} ))").unwrap()
    ));
    let uuid = run_waited(&w);
    let parent = w.run_json(&uuid);
    assert_eq!(parent["status"], "succeeded", "{parent}");
    // Brackets for R=3, eta=3: s=1 (3 trials at 1 epoch, the best resumed at 3), s=0 (2 at 3).
    assert_eq!(parent["outputs"]["trials"], 6, "{parent}");
    let trials = trials_of(&w, &uuid);
    assert_eq!(
        trials.len(),
        5,
        "the promoted trial continues in its own run: {trials:?}"
    );
    let resumed: Vec<J> = trials
        .iter()
        .map(|t| w.run_json(t["uuid"].as_str().unwrap()))
        .filter(|t| {
            t["status_conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|s| s["type"] == "resuming"))
        })
        .collect();
    assert_eq!(resumed.len(), 1, "{trials:?}");
    // The best of the first rung (x=6), continued with 3 epochs.
    assert_eq!(resumed[0]["inputs"]["x"], 6);
    assert_eq!(resumed[0]["inputs"]["epochs"], 3);
    assert_eq!(resumed[0]["outputs"]["acc"], 18.0);
    // Its outputs path kept both rungs' work.
    let got = w.env.home.path().join("hb");
    let id = resumed[0]["uuid"].as_str().unwrap();
    w.ok(&[
        "ops",
        "artifacts",
        "--uid",
        id,
        "-f",
        "outputs/history",
        "--path",
        got.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read_to_string(got.join("outputs/history")).unwrap(),
        "epochs=1\nepochs=3\n"
    );
}

#[test]
fn an_iterative_search_asks_its_tuner_for_each_batch() {
    let w = Work::new(&search(
        "  kind: iterative\n  maxIterations: 5\n  concurrency: 2\n  tuner: {hubRef: steps}\n  params:\n    x: {kind: range, value: [1, 10, 1]}",
        "echo acc={{ x }}",
    ));
    let hub = w.dir.join(".polyaxon/hub");
    std::fs::create_dir_all(&hub).unwrap();
    let script = r#"mkdir -p $POLYAXON_RUN_OUTPUTS_PATH; echo 'seen: {{ results }}'; case {{ iteration }} in 0) echo '[{"x": 1}, {"x": 2}, {"x": 3}]';; 1) echo '[{"x": 4}]';; *) echo '[]';; esac > $POLYAXON_RUN_OUTPUTS_PATH/suggestions.json"#;
    std::fs::write(
        hub.join("steps.yaml"),
        format!(
            "version: 1.1\nkind: component\nname: steps\ninputs:\n  - {{name: iteration, type: int}}\n  - {{name: results, type: any, isOptional: true}}\n  - {{name: matrix, type: any, isOptional: true}}\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, {}]\n",
            serde_json::to_string(script).unwrap()
        ),
    )
    .unwrap();
    let uuid = run_waited(&w);
    let parent = w.run_json(&uuid);
    assert_eq!(parent["status"], "succeeded", "{parent}");
    assert_eq!(parent["outputs"]["trials"], 4, "{parent}");
    let runs = trials_of(&w, &uuid);
    let tuners = runs
        .iter()
        .filter(|t| t["meta_info"]["tuner"] == true)
        .count();
    assert_eq!(tuners, 3, "three tuner runs: two batches, then none");
    let mut xs: Vec<i64> = runs
        .iter()
        .filter(|t| t["meta_info"]["tuner"] != true)
        .map(|t| t["inputs"]["x"].as_i64().unwrap())
        .collect();
    xs.sort();
    assert_eq!(xs, [1, 2, 3, 4]);
    let logs = w.ok(&["ops", "logs", "--uid", &uuid, "--hide-time"]);
    assert!(logs.contains("no more suggestions"), "{logs}");
}

#[test]
fn a_git_init_step_clones_and_never_replaces_what_is_not_the_runs() {
    // A repository to clone, on this machine (no network needed).
    let w = Work::new(&job("true", ""));
    let origin = w.env.home.path().join("origin");
    std::fs::create_dir_all(&origin).unwrap();
    std::fs::write(origin.join("README"), "from the repository").unwrap();
    let repo = git2::Repository::init(&origin).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
    std::fs::write(
        w.dir.join("clone.yml"),
        format!(
            "version: 1.1\nkind: component\nrun:\n  kind: job\n  init: [{{git: {{url: '{}'}}, path: cloned}}]\n  container: {{image: busybox, command: [sh, -c, 'cat $POLYAXON_RUN_ARTIFACTS_PATH/cloned/README']}}\n",
            origin.display()
        ),
    )
    .unwrap();
    let out = w.out(&["run", "-f", "clone.yml", "-l"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("from the repository"),
        "{}",
        stdout(&out)
    );
    // A directory of this machine that exists: refused, and left as it was.
    let mine = w.env.home.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("keep.txt"), "precious").unwrap();
    std::fs::write(
        w.dir.join("over.yml"),
        format!(
            "version: 1.1\nkind: component\nrun:\n  kind: job\n  init: [{{git: {{url: '{}'}}, path: '{}'}}]\n  container: {{image: busybox, command: [echo, job-ran]}}\n",
            origin.display(),
            mine.display()
        ),
    )
    .unwrap();
    let out = w.out(&["run", "-f", "over.yml", "-l"]);
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("exists, outside the run's directory"), "{all}");
    assert!(!all.contains("job-ran"), "{all}");
    assert_eq!(
        std::fs::read_to_string(mine.join("keep.txt")).unwrap(),
        "precious"
    );
}
