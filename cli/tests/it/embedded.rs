//! Every command against the embedded store: nothing configured, no login.

use serde_json::{Value as J, json};

use crate::common::{Env, Seed, stderr, stdout};

fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.cmd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "`polyaxon {}` failed: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs a command that must fail with `code`; returns stderr.
fn fails(env: &Env, args: &[&str], code: i32) -> String {
    let out = env.cmd().args(args).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(code),
        "`polyaxon {}`: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

fn json_of(env: &Env, args: &[&str]) -> J {
    let text = ok(env, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn projects_from_create_to_delete() {
    let env = Env::new();
    let out = env
        .cmd()
        .args([
            "project",
            "create",
            "-n",
            "mnist",
            "--description",
            "digits",
            "--tags",
            "vision, small",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("project `default/mnist` created"));
    assert!(stdout(&out).contains("default/mnist"));
    // A second time: a conflict that says so.
    let err = fails(&env, &["project", "create", "-n", "mnist"], 1);
    assert!(err.contains("already exists"), "{err}");
    ok(&env, &["projects", "create", "-n", "cifar", "--public"]);

    let table = ok(&env, &["project", "ls"]);
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("default/mnist") && table.contains("default/cifar"));
    let list = json_of(&env, &["project", "ls", "-o", "json", "--sort", "name"]);
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cifar", "mnist"]);
    let csv = ok(&env, &["project", "ls", "-o", "csv", "-q", "tags: vision"]);
    assert!(
        csv.starts_with("name,description,tags,visibility,created,updated\n"),
        "{csv}"
    );
    assert!(
        csv.contains("default/mnist,digits,\"vision, small\",private"),
        "{csv}"
    );
    assert!(!csv.contains("cifar"));
    // A bad query is the server's 400, with its message.
    let err = fails(&env, &["project", "ls", "-q", "colour: red"], 1);
    assert!(err.contains("colour"), "{err}");

    let got = json_of(&env, &["project", "get", "-p", "mnist", "-o", "json"]);
    assert_eq!(got["description"], "digits");
    let upd = json_of(
        &env,
        &[
            "project",
            "update",
            "-p",
            "default/mnist",
            "--tags",
            "a,b",
            "--private",
            "false",
            "-o",
            "json",
        ],
    );
    assert_eq!(upd["tags"], json!(["a", "b"]));
    assert_eq!(upd["is_public"], true);
    let err = fails(&env, &["project", "update", "-p", "mnist"], 1);
    assert!(err.contains("nothing to change"), "{err}");

    // Deleting asks; without a terminal and without --yes it refuses.
    let err = fails(&env, &["project", "delete", "-p", "mnist"], 1);
    assert!(err.contains("--yes"), "{err}");
    ok(&env, &["project", "delete", "-p", "mnist", "-y"]);
    let err = fails(&env, &["project", "get", "-p", "mnist"], 1);
    assert!(err.contains("project `default/mnist` not found"), "{err}");
    assert!(err.contains("polyaxon project ls"), "{err}");
    // No project anywhere.
    let err = fails(&env, &["project", "get"], 1);
    assert!(err.contains("polyaxon init"), "{err}");
}

#[test]
fn init_sets_the_directory_project() {
    let env = Env::new();
    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let run_in = |args: &[&str]| env.cmd().current_dir(&work).args(args).output().unwrap();
    // A missing project is not created without asking.
    let out = run_in(&["init", "-p", "demo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("does not exist"));
    let out = run_in(&[
        "init",
        "-p",
        "demo",
        "--yes",
        "--polyaxonfile",
        "--polyaxonignore",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(work.join(".polyaxon/.project").is_file());
    assert!(work.join(".polyaxonignore").is_file());
    // The starter polyaxonfile is valid.
    let out = run_in(&["check", "-f", "polyaxonfile.yml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Commands in the directory (and below it) use the project.
    std::fs::create_dir_all(work.join("src")).unwrap();
    let out = env
        .cmd()
        .current_dir(work.join("src"))
        .args(["project", "get", "-o", "json"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("\"demo\""), "{}", stderr(&out));
    let out = run_in(&["ops", "ls"]);
    assert!(out.status.success());
    assert!(stderr(&out).contains("no runs in `default/demo` yet"));
    let out = run_in(&["config", "show", "-o", "json"]);
    let shown: J = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["project"], "default/demo");
    assert_eq!(shown["mode"], "embedded");
}

/// A project with runs in every state, metrics, logs and files.
fn seeded(env: &Env) -> (Seed, Vec<String>) {
    let seed = Seed::new(env);
    seed.project("demo");
    let mut uuids = Vec::new();
    for (i, (status, loss)) in [("succeeded", 0.1), ("failed", 0.9), ("running", 0.5)]
        .iter()
        .enumerate()
    {
        let uuid = seed.run(
            "demo",
            json!({"name": format!("run-{i}"), "tags": [format!("t{i}")]}),
        );
        seed.call(
            "PATCH",
            &format!("/api/v1/default/demo/runs/{uuid}"),
            json!({"inputs": {"lr": 0.01 * (i + 1) as f64}}),
        );
        seed.status("demo", &uuid, "running");
        seed.metrics("demo", &uuid, "loss", &[1.0, 0.7, *loss]);
        if *status != "running" {
            seed.status("demo", &uuid, status);
        }
        uuids.push(uuid);
    }
    (seed, uuids)
}

#[test]
fn listing_and_showing_runs() {
    let env = Env::new();
    let (_seed, uuids) = seeded(&env);
    let table = ok(&env, &["ops", "ls", "-p", "demo"]);
    let header = table.lines().next().unwrap();
    assert!(
        header.starts_with("UUID") && header.contains("STATUS"),
        "{table}"
    );
    for u in &uuids {
        assert!(table.contains(u.as_str()), "{table}");
    }
    assert!(table.contains("succeeded") && table.contains("failed") && table.contains("running"));
    for line in table.lines() {
        assert!(line.chars().count() <= 100, "wider than COLUMNS: {line:?}");
    }
    // Queries, sorting, paging, columns.
    let failed = json_of(
        &env,
        &[
            "ops",
            "ls",
            "-p",
            "demo",
            "-q",
            "status: failed",
            "-o",
            "json",
        ],
    );
    assert_eq!(failed.as_array().unwrap().len(), 1);
    assert_eq!(failed[0]["uuid"], uuids[1].as_str());
    let best = json_of(
        &env,
        &[
            "ops",
            "ls",
            "-p",
            "demo",
            "-s",
            "metrics.loss",
            "--limit",
            "1",
            "-o",
            "json",
        ],
    );
    assert_eq!(best[0]["uuid"], uuids[0].as_str());
    let page = env
        .cmd()
        .args(["ops", "-p", "demo", "ls", "-l", "2", "-off", "1"])
        .output()
        .unwrap();
    assert!(stderr(&page).contains("2–3 of 3 runs"), "{}", stderr(&page));
    let cols = ok(
        &env,
        &[
            "ops",
            "ls",
            "-p",
            "demo",
            "-c",
            "name,metrics.loss,params.lr",
            "-s",
            "name",
        ],
    );
    let lines: Vec<&str> = cols.lines().collect();
    assert!(
        lines[0].starts_with("NAME")
            && lines[0].contains("METRICS.LOSS")
            && lines[0].contains("PARAMS.LR"),
        "{cols}"
    );
    assert!(
        lines[1].starts_with("run-0") && lines[1].contains("0.1") && lines[1].contains("0.01"),
        "{cols}"
    );
    let io = ok(&env, &["ops", "ls", "-p", "demo", "--io"]);
    assert!(
        io.contains("PARAMS.LR") && io.contains("METRICS.LOSS"),
        "{io}"
    );
    let err = fails(&env, &["ops", "ls", "-p", "demo", "-c", "colour"], 1);
    assert!(err.contains("`colour` is not a column"), "{err}");
    let err = fails(
        &env,
        &["ops", "ls", "-p", "demo", "-q", "metrics.loss: <<1"],
        1,
    );
    assert!(err.contains("not a number"), "{err}");
    let csv = ok(
        &env,
        &["ops", "ls", "-p", "demo", "-o", "csv", "-c", "uuid,status"],
    );
    assert!(csv.starts_with("uuid,status\n"), "{csv}");
    let yaml = ok(&env, &["ops", "ls", "-p", "demo", "-o", "yaml"]);
    assert!(yaml.starts_with("- "), "{yaml}");

    // A run by uuid (upstream's `-uid` too); it becomes the last run used.
    let got = ok(&env, &["ops", "get", "-p", "demo", "-uid", &uuids[1]]);
    assert!(got.contains("failed") && got.contains("run-1"), "{got}");
    assert!(got.contains("lr = 0.02"), "{got}");
    let again = json_of(&env, &["ops", "get", "-o", "json"]);
    assert_eq!(again["uuid"], uuids[1].as_str());
    let path = env.home.path().join("run.json");
    ok(
        &env,
        &["ops", "get", "-o", &format!("path={}", path.display())],
    );
    let written: J = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    assert_eq!(written["name"], "run-1");
    let err = fails(
        &env,
        &[
            "ops",
            "get",
            "-p",
            "demo",
            "--uid",
            "0123456789abcdef0123456789abcdef",
        ],
        1,
    );
    assert!(err.contains("not found in `default/demo`"), "{err}");
}

#[test]
fn statuses_logs_and_metrics() {
    let env = Env::new();
    let (seed, uuids) = seeded(&env);
    let done = &uuids[0];
    seed.logs("demo", done, &["epoch 1", "epoch 2", "saved model"]);
    let st = ok(&env, &["ops", "statuses", "-p", "demo", "--uid", done]);
    let kinds: Vec<&str> = st
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(kinds, ["created", "running", "succeeded"], "{st}");
    // Watching a run that has ended prints its history and returns.
    let watched = ok(&env, &["ops", "statuses", "-w"]);
    assert!(watched.contains("succeeded"), "{watched}");

    let logs = ok(&env, &["ops", "logs", "--hide-time"]);
    assert_eq!(logs, "epoch 1\nepoch 2\nsaved model\n");
    let logs = ok(&env, &["logs", done, "-p", "demo"]);
    assert!(
        logs.lines()
            .all(|l| l.len() > 24 && l.as_bytes()[4] == b'-'),
        "timestamps: {logs}"
    );
    let quiet = env
        .cmd()
        .args(["logs", "-p", "demo", &uuids[1], "--no-follow"])
        .output()
        .unwrap();
    assert!(quiet.status.success());
    assert!(stderr(&quiet).contains("has no logs"), "{}", stderr(&quiet));

    let m = ok(&env, &["ops", "metrics", "-p", "demo", "--uid", done]);
    assert!(m.starts_with("NAME"), "{m}");
    assert!(
        m.contains("loss") && m.contains("0.1 (step 2)") && m.contains("1 (step 0)"),
        "{m}"
    );
    let plot = ok(&env, &["ops", "metrics", "--plot", "--height", "5"]);
    assert!(plot.contains("loss  last 0.1 (step 2)"), "{plot}");
    assert!(
        plot.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)),
        "braille dots: {plot}"
    );
    let csv = ok(&env, &["ops", "metrics", "-o", "csv"]);
    assert!(
        csv.starts_with("name,step,timestamp,value\nloss,0,"),
        "{csv}"
    );
    let series = json_of(&env, &["ops", "metrics", "--names", "loss", "-o", "json"]);
    assert_eq!(series[0]["data"]["metric"], json!([1.0, 0.7, 0.1]));
    let out = env
        .cmd()
        .args(["ops", "metrics", "--names", "acc"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("no metric `acc`"), "{}", stderr(&out));
}

#[test]
fn following_logs_until_the_run_ends() {
    let env = Env::new();
    let (seed, uuids) = seeded(&env);
    let running = uuids[2].clone();
    seed.logs("demo", &running, &["starting"]);
    let child = env
        .cmd_std()
        .args(["logs", "-p", "demo", &running, "--hide-time"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    seed.logs("demo", &running, &["step 1", "step 2"]);
    std::thread::sleep(std::time::Duration::from_millis(300));
    seed.logs("demo", &running, &["done"]);
    seed.status("demo", &running, "succeeded");
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "starting\nstep 1\nstep 2\ndone\n");
}

#[test]
fn stopping_restarting_and_deleting_runs() {
    let env = Env::new();
    let (seed, uuids) = seeded(&env);
    let (done, running) = (&uuids[0], &uuids[2]);
    seed.file(done, "outputs/model.txt", b"weights");
    // Stop asks first.
    let err = fails(&env, &["ops", "stop", "-p", "demo", "--uid", running], 1);
    assert!(err.contains("--yes"), "{err}");
    let out = env.cmd().args(["ops", "stop", "-y"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("is stopping"), "{}", stderr(&out));
    let out = env
        .cmd()
        .args(["ops", "stop", "-p", "demo", "--uid", done, "-y"])
        .output()
        .unwrap();
    assert!(stderr(&out).contains("has already ended (succeeded)"));

    let copy = json_of(
        &env,
        &[
            "ops", "restart", "-p", "demo", "--uid", done, "--copy", "--name", "again", "-o",
            "json",
        ],
    );
    let copied = copy["uuid"].as_str().unwrap().to_string();
    assert_ne!(copied, *done);
    assert_eq!(copy["name"], "again");
    assert_eq!(copy["original"]["uuid"], done.as_str());
    assert!(
        seed.home
            .join("artifacts")
            .join(&copied)
            .join("outputs/model.txt")
            .is_file()
    );
    // The new run is now the last one used.
    let last = json_of(&env, &["ops", "get", "-o", "json"]);
    assert_eq!(last["uuid"], copied.as_str());
    let restarted = json_of(
        &env,
        &["ops", "restart", "-p", "demo", "--uid", done, "-o", "json"],
    );
    assert!(
        !seed
            .home
            .join("artifacts")
            .join(restarted["uuid"].as_str().unwrap())
            .join("outputs")
            .exists()
    );

    let resumed = json_of(
        &env,
        &["ops", "resume", "-p", "demo", "--uid", done, "-o", "json"],
    );
    assert_eq!(resumed["uuid"], done.as_str());
    assert_eq!(resumed["status"], "resuming");
    let upd = json_of(
        &env,
        &[
            "ops", "update", "--tags", "best", "-n", "winner", "-o", "json",
        ],
    );
    assert_eq!(upd["name"], "winner");
    assert_eq!(upd["tags"], json!(["t0", "best"]));

    fails(&env, &["ops", "delete", "-p", "demo", "--uid", &copied], 1);
    ok(
        &env,
        &["ops", "delete", "-p", "demo", "--uid", &copied, "-y"],
    );
    assert!(!seed.home.join("artifacts").join(&copied).exists());
    let err = fails(&env, &["ops", "get", "-p", "demo", "--uid", &copied], 1);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn downloading_artifacts() {
    let env = Env::new();
    let (seed, uuids) = seeded(&env);
    let u = &uuids[0];
    seed.file(u, "outputs/model.txt", b"weights");
    seed.file(u, "outputs/sub/notes.md", b"# notes");
    seed.file(u, "events/metric/loss.plx", b"step|timestamp|metric\n");
    let dest = env.home.path().join("dl");
    let d = dest.display().to_string();
    ok(
        &env,
        &["ops", "artifacts", "-p", "demo", "--uid", u, "--path", &d],
    );
    assert_eq!(
        std::fs::read(dest.join("outputs/model.txt")).unwrap(),
        b"weights"
    );
    assert!(dest.join("outputs/sub/notes.md").is_file());
    assert!(dest.join("events/metric/loss.plx").is_file());
    let one = env.home.path().join("one");
    ok(
        &env,
        &[
            "ops",
            "artifacts",
            "-f",
            "outputs/sub/notes.md",
            "-d",
            "outputs/sub",
            "--path",
            &one.display().to_string(),
        ],
    );
    assert_eq!(
        std::fs::read(one.join("outputs/sub/notes.md")).unwrap(),
        b"# notes"
    );
    assert!(!one.join("events").exists());
    let tgz = env.home.path().join("tgz");
    ok(
        &env,
        &[
            "ops",
            "artifacts",
            "-d",
            "outputs",
            "--no-untar",
            "--path",
            &tgz.display().to_string(),
        ],
    );
    assert!(tgz.join("outputs.tar.gz").is_file());
    let err = fails(&env, &["ops", "artifacts", "-f", "../../etc/passwd"], 1);
    assert!(err.contains("not a path inside the run"), "{err}");
    let err = fails(
        &env,
        &[
            "ops",
            "artifacts",
            "-f",
            "outputs/missing.bin",
            "--path",
            &d,
        ],
        1,
    );
    assert!(err.contains("has no file `outputs/missing.bin`"), "{err}");
    let err = fails(
        &env,
        &[
            "ops",
            "artifacts",
            "-p",
            "demo",
            "--uid",
            &uuids[1],
            "--path",
            &d,
        ],
        1,
    );
    assert!(err.contains("has no files yet"), "{err}");
}

#[test]
fn configuration() {
    let env = Env::new();
    let shown = ok(&env, &["config", "show"]);
    assert!(shown.contains("none: the embedded store"), "{shown}");
    assert_eq!(
        ok(&env, &["config", "get", "timeout", "verify-ssl"]),
        "20\ntrue\n"
    );
    let err = fails(&env, &["config", "get", "hots"], 1);
    assert!(err.contains("did you mean `host`"), "{err}");
    let err = fails(&env, &["config", "set", "--host", "ftp://x"], 1);
    assert!(err.contains("not a server address"), "{err}");
    let err = fails(&env, &["config", "set", "--timeout=-3"], 1);
    assert!(err.contains("positive"), "{err}");
    fails(&env, &["config", "set"], 1);
    // The executor of `polyaxon run`: the config's, unless POLYAXON_EXECUTOR or --executor.
    assert_eq!(ok(&env, &["config", "get", "executor"]), "process\n");
    let out = env
        .cmd()
        .args(["config", "set", "--executor", "k8s"])
        .output()
        .unwrap();
    assert!(
        stderr(&out).contains("executor = kubernetes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(ok(&env, &["config", "get", "executor"]), "kubernetes\n");
    let err = fails(&env, &["config", "set", "--executor", "slurm"], 1);
    assert!(
        err.contains("`--executor slurm` is not an executor"),
        "{err}"
    );
    let f = env.home.path().join("job.yml");
    std::fs::write(&f, "version: 1.1\nkind: component\nrun:\n  kind: job\n  container: {image: x, command: [echo, hi]}\n").unwrap();
    let out = env
        .cmd()
        .env("POLYAXON_EXECUTOR", "slurm")
        .args(["run", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("POLYAXON_EXECUTOR `slurm` is not an executor"),
        "{}",
        stderr(&out)
    );
    // Kubernetes from the config, in the embedded mode: said why it cannot run here.
    let out = env
        .cmd()
        .args(["run", "-l", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("kubernetes") || stderr(&out).contains("kubernetes"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    ok(&env, &["config", "set", "--executor", ""]);
    assert_eq!(ok(&env, &["config", "get", "executor"]), "process\n");
    let out = env
        .cmd()
        .args(["config", "set", "--host", "localhost:9", "--timeout", "2.5"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("host = http://localhost:9"));
    assert_eq!(
        ok(&env, &["config", "get", "host", "timeout"]),
        "http://localhost:9\n2.5\n"
    );
    // An unreachable server: the error says where and what to check.
    let err = fails(&env, &["project", "ls"], 1);
    assert!(
        err.contains("localhost:9") && err.contains("is the server running"),
        "{err}"
    );
    // Back to embedded.
    ok(&env, &["config", "set", "--host", ""]);
    ok(&env, &["project", "create", "-n", "kept"]);
    ok(&env, &["config", "purge"]);
    assert!(
        env.home.path().join(".polyaxon/polyaxon.db").is_file(),
        "purge keeps the runs"
    );
    assert!(!env.home.path().join(".polyaxon/.client").exists());
    assert!(ok(&env, &["project", "ls"]).contains("default/kept"));
    // Login is for servers.
    let err = fails(&env, &["login", "--token", "x"], 1);
    assert!(
        err.contains("needs no login") && err.contains("config set --host"),
        "{err}"
    );
    let err = fails(&env, &["logout"], 1);
    assert!(err.contains("needs no login"), "{err}");
    let who = ok(&env, &["whoami"]);
    assert!(who.contains("default"), "{who}");
    let v = json_of(&env, &["version", "-o", "json"]);
    assert_eq!(v["cli"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["server"]["mode"], "embedded");
    // A corrupt config file is named.
    std::fs::write(env.home.path().join(".polyaxon/.client"), "{not json").unwrap();
    let err = fails(&env, &["project", "ls"], 1);
    assert!(
        err.contains(".client` is not valid") && err.contains("config purge"),
        "{err}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let env = Env::new();
    let err = fails(&env, &["ops", "ls", "--limit", "many"], 2);
    assert!(err.contains("invalid value"), "{err}");
    fails(&env, &["nope"], 2);
    let err = fails(&env, &["ops", "ls", "-o", "xml"], 2);
    assert!(err.contains("table, json, yaml, csv or path=FILE"), "{err}");
}

#[test]
fn the_dashboard_is_served_from_the_embedded_store() {
    use std::io::BufRead;
    let env = Env::new();
    let (_seed, uuids) = seeded(&env);
    let mut child = env
        .cmd_std()
        .args([
            "ops",
            "dashboard",
            "-p",
            "demo",
            "--uid",
            &uuids[0],
            "--url",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line.trim().to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{url}");
    assert!(
        url.ends_with(&format!("/ui/default/demo/runs/{}", uuids[0])),
        "{url}"
    );
    let rest = url.trim_start_matches("http://");
    let (addr, path) = rest.split_at(rest.find('/').unwrap());
    let (st, html) = polyaxon_tests::server::http(addr, "GET", path, None);
    assert_eq!(st, 200, "{html}");
    assert!(html.contains("run-0") && html.contains("<svg"), "{html}");
    assert!(polyaxon_tests::server::terminate(&mut child).success());
}
