//! The CLI against a real server (`polyaxon server start`) on SQLite and on PostgreSQL:
//! config, login, tokens, and the project and run commands over HTTP.

use std::collections::BTreeMap;

use serde_json::{Value as J, json};

use polyaxon_tests::sealed::{Env, stderr, stdout};
use polyaxon_tests::server::{http_with, start_with, terminate};

const PASSWORD: &str = "s3cret-admin-pass";

fn run(env: &Env, args: &[&str]) -> std::process::Output {
    env.cmd().args(args).output().unwrap()
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = run(env, args);
    assert!(
        out.status.success(),
        "`polyaxon {}` failed: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn fails(env: &Env, args: &[&str]) -> String {
    let out = run(env, args);
    assert_eq!(
        out.status.code(),
        Some(1),
        "`polyaxon {}`: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stderr(&out)
}

/// A server (on `database_url`, else SQLite) with a known admin password, and a client
/// environment pointed at it (not logged in). The server's stderr is dropped (closed) on
/// purpose: it must keep serving.
/// The server's own home comes back too: it must live as long as the server.
fn server_and_client(
    database_url: Option<&str>,
) -> (polyaxon_tests::server::Server, String, Env, Env) {
    let server_env = Env::new();
    let mut extra = vec![];
    if let Some(u) = database_url {
        extra = vec!["--database-url", u];
    }
    let (server, addr, _, _) = start_with(
        &server_env,
        &extra,
        &[("POLYAXON_ADMIN_PASSWORD", PASSWORD)],
    );
    let host = format!("http://{addr}");
    let env = Env::new();
    ok(&env, &["config", "set", "--host", &host]);
    (server, host, env, server_env)
}

/// As `server_and_client`, logged in as root, with a project `root/demo`.
pub(crate) fn logged_in_with_project(
    database_url: Option<&str>,
) -> (polyaxon_tests::server::Server, Env, Env) {
    let (server, _host, env, server_home) = server_and_client(database_url);
    let out = env
        .cmd()
        .args(["login", "-u", "root", "--password-stdin"])
        .write_stdin(format!("{PASSWORD}\n"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&env, &["project", "create", "-n", "demo"]);
    (server, env, server_home)
}

/// A command's JSON output.
fn json_of(env: &Env, args: &[&str]) -> J {
    let text = ok(env, args);
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: `{text}`"))
}

fn flow(database_url: Option<&str>) {
    let (mut server, host, env, _server_home) = server_and_client(database_url);
    let addr = host.trim_start_matches("http://").to_string();

    // Not logged in: the server refuses, the hint says what to do.
    let err = fails(&env, &["project", "ls"]);
    assert!(err.contains("polyaxon login"), "{err}");
    // A wrong password.
    let out = env
        .cmd()
        .args(["login", "-u", "root", "--password-stdin"])
        .write_stdin("wrong\n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("refused the login"),
        "{}",
        stderr(&out)
    );
    // No terminal, no password: a hint, not a hang.
    let err = fails(&env, &["login", "-u", "root"]);
    assert!(err.contains("--password-stdin"), "{err}");
    let out = env
        .cmd()
        .args(["login", "-u", "root", "--password-stdin"])
        .write_stdin(format!("{PASSWORD}\n"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("logged in to") && stderr(&out).contains("as `root`"));
    // Kept in a private file (no keyring here), never printed.
    let auth_file = env.home.path().join(".polyaxon/.auth");
    let auth: J = serde_json::from_slice(&std::fs::read(&auth_file).unwrap()).unwrap();
    let token = auth["tokens"][&host].as_str().unwrap().to_string();
    assert!(!stderr(&out).contains(&token) && !stdout(&out).contains(&token));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&auth_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let shown = ok(&env, &["config", "show"]);
    assert!(!shown.contains(&token), "{shown}");
    assert!(ok(&env, &["whoami"]).contains("root"));
    let v: J = json_of(&env, &["version", "-o", "json"]);
    assert_eq!(v["server"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["server"]["compatible"], true);
    ok(&env, &["version", "--check"]);

    // Projects and runs over HTTP.
    ok(
        &env,
        &["project", "create", "-n", "demo", "--tags", "remote"],
    );
    assert!(ok(&env, &["project", "ls"]).contains("root/demo"));
    let (st, body) = http_with(
        &addr,
        "POST",
        "/api/v1/root/demo/runs",
        Some(r#"{"name": "first"}"#),
        Some(&token),
    );
    assert_eq!(st, 200, "{body}");
    let uuid = serde_json::from_str::<J>(&body).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    for status in ["running", "succeeded"] {
        let (st, body) = http_with(
            &addr,
            "POST",
            &format!("/api/v1/root/demo/runs/{uuid}/statuses"),
            Some(&json!({"condition": {"type": status, "status": "True"}}).to_string()),
            Some(&token),
        );
        assert_eq!(st, 200, "{body}");
    }
    let (st, _) = http_with(
        &addr,
        "POST",
        &format!("/streams/v1/polyaxon/root/demo/runs/{uuid}/metrics"),
        Some(r#"{"metrics": [{"name": "loss", "step": [0, 1], "value": [0.5, 0.25]}]}"#),
        Some(&token),
    );
    assert_eq!(st, 200);
    let (st, _) = http_with(
        &addr,
        "POST",
        &format!("/streams/v1/polyaxon/root/demo/runs/{uuid}/logs"),
        Some(r#"{"logs": [{"value": "hello from the server"}]}"#),
        Some(&token),
    );
    assert_eq!(st, 204);
    let table = ok(&env, &["ops", "ls", "-p", "demo"]);
    assert!(
        table.contains(&uuid) && table.contains("succeeded"),
        "{table}"
    );
    assert!(ok(&env, &["ops", "get", "-uid", &uuid, "-p", "demo"]).contains("first"));
    assert_eq!(
        ok(&env, &["ops", "logs", "--hide-time"]),
        "hello from the server\n"
    );
    assert!(ok(&env, &["ops", "metrics"]).contains("0.25 (step 1)"));
    assert_eq!(
        ok(&env, &["ops", "dashboard", "--url"]),
        format!("{host}/ui/root/demo/runs/{uuid}\n")
    );
    let (st, _) =
        polyaxon_tests::server::http(&addr, "GET", &format!("/ui/root/demo/runs/{uuid}"), None);
    assert_eq!(st, 303, "the dashboard asks to sign in");
    ok(&env, &["ops", "delete", "-y"]);
    let err = fails(&env, &["ops", "get", "-p", "demo", "--uid", &uuid]);
    assert!(err.contains("not found"), "{err}");

    // Another user's view: their token cannot see root's project.
    let (st, body) = http_with(
        &addr,
        "POST",
        "/api/v1/admin/users",
        Some(r#"{"username": "ann", "password": "ann-password-1"}"#),
        Some(&token),
    );
    assert_eq!(st, 200, "{body}");
    let ann = Env::new();
    ok(&ann, &["config", "set", "--host", &host]);
    let out = ann
        .cmd()
        .args(["login", "--username", "ann", "--password-stdin"])
        .write_stdin("ann-password-1")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let err = fails(&ann, &["project", "get", "-p", "root/demo"]);
    assert!(err.contains("not found"), "{err}");
    ok(&ann, &["project", "create", "-n", "mine"]);
    assert!(ok(&ann, &["project", "ls", "-o", "json"]).contains("\"mine\""));

    // Tokens: a bad one is refused at login; the environment's wins over the stored one.
    let err = fails(&env, &["login", "--token", "plx_not-a-token"]);
    assert!(err.contains("does not accept this token"), "{err}");
    let out = env
        .cmd()
        .env("POLYAXON_AUTH_TOKEN", "plx_bad")
        .args(["whoami"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("POLYAXON_AUTH_TOKEN is set"),
        "{}",
        stderr(&out)
    );
    let out = env
        .cmd()
        .env("POLYAXON_AUTH_TOKEN", &token)
        .args(["whoami", "-o", "json"])
        .output()
        .unwrap();
    assert!(stdout(&out).contains("\"root\""));

    // Personal tokens: created (the secret shown once), listed without it, used, revoked.
    let made = json_of(
        &env,
        &[
            "token",
            "create",
            "--name",
            "ci",
            "--expiration",
            "30d",
            "-o",
            "json",
        ],
    );
    let (ci_id, ci_key) = (
        made["uuid"].as_str().unwrap().to_string(),
        made["key"].as_str().unwrap().to_string(),
    );
    assert_eq!(made["expiration"], 30 * 86_400, "{made}");
    let listed = json_of(&env, &["token", "ls", "-o", "json"]);
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["uuid"] == ci_id.as_str())
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["name"], "ci");
    assert_eq!(row["expiration"], 30 * 86_400, "{row}");
    assert!(!listed.to_string().contains(&ci_key), "{listed}");
    let table = ok(&env, &["token", "ls"]);
    assert!(
        table.contains(&ci_id)
            && (table.contains("(in 29 days)") || table.contains("(in 30 days)")),
        "{table}"
    );
    let with_ci = |args: &[&str]| {
        env.cmd()
            .env("POLYAXON_AUTH_TOKEN", &ci_key)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(with_ci(&["whoami"]).status.success());
    let out = run(&env, &["token", "create", "--expiration", "12x"]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("s, m, h, d or w"), "{}", stderr(&out));
    let out = run(&env, &["token", "revoke", &ci_id, "no-such-token"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!("token {ci_id} revoked")),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("no-such-token"), "{}", stderr(&out));
    // Revoked: refused at once, by this server and its cache of tokens.
    let out = with_ci(&["whoami"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(!ok(&env, &["token", "ls"]).contains(&ci_id));

    // Logout forgets the token.
    let out = run(&env, &["logout"]);
    assert!(stderr(&out).contains("logged out of"), "{}", stderr(&out));
    assert!(
        !auth_file.exists()
            || !std::fs::read_to_string(&auth_file)
                .unwrap()
                .contains(&token)
    );
    let err = fails(&env, &["whoami"]);
    assert!(err.contains("polyaxon login"), "{err}");

    assert!(terminate(&mut server).success());
    // The server gone: a clear error, after retries.
    let err = fails(&env, &["project", "ls", "--owner", "root"]);
    assert!(err.contains("is the server running"), "{err}");
}

/// `polyaxon run` against a server: the job runs here, its statuses, logs, metrics and
/// files go to the server; a run whose supervisor died is noticed by the next `run`.
fn runs(database_url: Option<&str>) {
    let (mut server, env, _server_home) = logged_in_with_project(database_url);
    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let job = |cmd: &str| {
        format!(
            "version: 1.1\nkind: component\nname: remote\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, {}]\n",
            serde_json::to_string(cmd).unwrap()
        )
    };
    std::fs::write(
        work.join("polyaxonfile.yml"),
        job("echo training here; echo loss=0.5; echo loss=0.25; mkdir -p $POLYAXON_RUN_OUTPUTS_PATH; echo weights > $POLYAXON_RUN_OUTPUTS_PATH/model.txt"),
    )
    .unwrap();
    let repo = git2::Repository::init(&work).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
    let in_work = |args: &[&str]| {
        env.cmd_std()
            .current_dir(&work)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .args(args)
            .output()
            .unwrap()
    };
    let out = in_work(&["run", "-p", "root/demo", "--stdout-metrics", "-l"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("training here"), "{}", stdout(&out));
    let run: J = json_of(&env, &["ops", "get", "-p", "root/demo", "-o", "json"]);
    assert_eq!(run["status"], "succeeded", "{run}");
    let uuid = run["uuid"].as_str().unwrap().to_string();
    let m: J = json_of(
        &env,
        &[
            "ops",
            "metrics",
            "-p",
            "root/demo",
            "--uid",
            &uuid,
            "-o",
            "json",
        ],
    );
    assert_eq!(m[0]["name"], "loss", "{m}");
    assert_eq!(m[0]["data"]["metric"], json!([0.5, 0.25]));
    let logs = ok(
        &env,
        &[
            "ops",
            "logs",
            "-p",
            "root/demo",
            "--uid",
            &uuid,
            "--hide-time",
        ],
    );
    assert!(logs.contains("training here"), "{logs}");
    assert!(logs.contains("sent the run's"), "{logs}");
    // The outputs the job wrote here are on the server.
    let got = env.home.path().join("got");
    ok(
        &env,
        &[
            "ops",
            "artifacts",
            "-p",
            "root/demo",
            "--uid",
            &uuid,
            "-f",
            "outputs/model.txt",
            "--path",
            got.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(got.join("outputs/model.txt")).unwrap(),
        "weights\n"
    );

    // A supervisor killed: the next `polyaxon run` here fails its run and ends its job.
    std::fs::write(work.join("sleep.yml"), job("sleep 60")).unwrap();
    let out = in_work(&["run", "-p", "root/demo", "-f", "sleep.yml", "-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let sleeper = serde_json::from_str::<J>(&stdout(&out)).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let get = |uuid: &str| -> J {
        json_of(
            &env,
            &["ops", "get", "-p", "root/demo", "--uid", uuid, "-o", "json"],
        )
    };
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let r = loop {
        let r = get(&sleeper);
        if r["status"] == "running" && r["meta_info"]["executor"]["job_pid"].is_u64() {
            break r;
        }
        assert!(std::time::Instant::now() < end, "never running: {r}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    let sup = r["meta_info"]["executor"]["pid"].as_u64().unwrap();
    let job_pid = r["meta_info"]["executor"]["job_pid"].as_u64().unwrap();
    std::process::Command::new("kill")
        .args(["-KILL", &sup.to_string()])
        .status()
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{sup}")).exists()
        && std::fs::read_to_string(format!("/proc/{sup}/stat")).is_ok_and(|s| !s.contains(") Z"))
        && std::time::Instant::now() < end
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = in_work(&["run", "-p", "root/demo", "-l"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let r = get(&sleeper);
    assert_eq!(r["status"], "failed", "{r}");
    let last = &r["status_conditions"].as_array().unwrap().last().unwrap()["reason"];
    assert_eq!(last, "ExecutorLost");
    let end = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::fs::read_to_string(format!("/proc/{job_pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
        && std::time::Instant::now() < end
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !std::fs::read_to_string(format!("/proc/{job_pid}/stat")).is_ok_and(|s| !s.contains(") Z")),
        "the orphaned job was ended"
    );
    assert!(terminate(&mut server).success());
}

/// `polyaxon run --executor kubernetes` end to end: a real server, the CLI's supervisor, and
/// a stand-in for the cluster's API (tests/it/fake_kube.rs). The run is submitted by
/// server-side apply, followed to its end by watches, its logs (and stdout metrics) reach the
/// server once each, and nothing is left on the cluster.
#[test]
fn a_run_on_a_kubernetes_cluster_end_to_end() {
    let (mut server, env, server_home) = logged_in_with_project(None);
    let kube = polyaxon_tests::fake_kube::FakeKube::start();
    // The pods share the server's artifacts store (its claim, as the deploy mounts it).
    kube.state.lock().unwrap().shared_artifacts =
        Some(server_home.home.path().join(".polyaxon/artifacts"));
    let kubeconfig = kube.kubeconfig(env.home.path());
    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("polyaxonfile.yml"),
        "version: 1.1\nkind: component\nname: on-cluster\ntermination: {maxRetries: 2}\nrun:\n  kind: job\n  container: {image: 'busybox:1.36', command: [sh, -c, 'echo hi']}\n",
    )
    .unwrap();
    let repo = git2::Repository::init(&work).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
    let out = env
        .cmd_std()
        .current_dir(&work)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "POLYAXON_K8S_API_HOST",
            "http://polyaxon-api.polyaxon.svc:80",
        )
        .env("POLYAXON_K8S_ARTIFACTS_CLAIM", "polyaxon-artifacts")
        .args([
            "run",
            "-p",
            "root/demo",
            "--executor",
            "k8s",
            "--stdout-metrics",
            "-l",
        ])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert_eq!(
        text.matches("hello from the cluster").count(),
        1,
        "each line once, though the log stream was read again: {text}"
    );
    assert!(
        !text.contains("[x7k2p/"),
        "one container: no source prefix: {text}"
    );
    let run: J = json_of(&env, &["ops", "get", "-p", "root/demo", "-o", "json"]);
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["meta_info"]["executor"]["kind"], "kubernetes");
    assert_eq!(run["meta_info"]["executor"]["namespace"], "runs");
    let uuid = run["uuid"].as_str().unwrap().to_string();
    let statuses: J = json_of(
        &env,
        &[
            "ops",
            "statuses",
            "-p",
            "root/demo",
            "--uid",
            &uuid,
            "-o",
            "json",
        ],
    );
    let kinds: Vec<&str> = statuses
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["type"].as_str())
        .collect();
    for want in ["scheduled", "running", "succeeded"] {
        assert!(kinds.contains(&want), "{want} missing: {kinds:?}");
    }
    let m = json_of(
        &env,
        &[
            "ops",
            "metrics",
            "-p",
            "root/demo",
            "--uid",
            &uuid,
            "-o",
            "json",
        ],
    );
    // The event file the pod wrote, every point once (its last line too), and stdout's.
    let series = |name: &str| {
        m.as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .map(|s| s["data"]["metric"].clone())
    };
    assert_eq!(series("acc"), Some(json!([0.5, 0.75])), "{m}");
    assert_eq!(series("loss"), Some(json!([0.5])), "{m}");
    // What the cluster was asked.
    let st = kube.state.lock().unwrap();
    let patches: Vec<&(String, String, J)> =
        st.requests.iter().filter(|r| r.0 == "PATCH").collect();
    assert!(
        patches[0].1.contains("/secrets/"),
        "the token's Secret first"
    );
    assert!(patches[0].1.contains("fieldManager=polyaxon"));
    let job = &patches
        .iter()
        .find(|r| r.1.contains("/jobs/"))
        .expect("a Job applied")
        .2;
    assert_eq!(job["spec"]["backoffLimit"], 2);
    let main = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(main["image"], "busybox:1.36");
    let env_of = |k: &str| {
        main["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == k)
            .map(|e| e["value"].clone())
    };
    assert_eq!(
        env_of("POLYAXON_RUN_INSTANCE"),
        Some(json!(format!("root.demo.runs.{uuid}")))
    );
    assert_eq!(
        env_of("POLYAXON_HOST"),
        Some(json!("http://polyaxon-api.polyaxon.svc:80"))
    );
    assert!(
        st.requests
            .iter()
            .any(|r| r.0 == "GET" && r.1.contains("watch=true")),
        "followed by watches"
    );
    let deletes: Vec<&(String, String, J)> =
        st.requests.iter().filter(|r| r.0 == "DELETE").collect();
    assert_eq!(deletes.len(), 2, "the Job and the Secret");
    assert!(
        deletes
            .iter()
            .all(|d| d.2["propagationPolicy"] == "Foreground")
    );
    assert!(
        st.objects.is_empty(),
        "nothing left: {:?}",
        st.objects.keys()
    );
    drop(st);
    assert!(terminate(&mut server).success());
}

/// A DAG on the stand-in cluster: one Job per operation, each followed by its own watch
/// (the cluster holds them all at once), a value passed downstream from what a pod recorded,
/// and nothing left on the cluster when the DAG ends.
#[test]
fn a_dag_on_a_kubernetes_cluster() {
    let (mut server, env, server_home) = logged_in_with_project(None);
    let kube = polyaxon_tests::fake_kube::FakeKube::start();
    kube.state.lock().unwrap().shared_artifacts =
        Some(server_home.home.path().join(".polyaxon/artifacts"));
    let kubeconfig = kube.kubeconfig(env.home.path());
    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("polyaxonfile.yml"),
        r#"version: 1.1
kind: component
name: pipeline
run:
  kind: dag
  operations:
    - {name: prepare, dagRef: step}
    - name: train
      dagRef: step
      params: {x: {ref: ops.prepare, value: outputs.acc}}
    - {name: report, dagRef: step, dependencies: [prepare]}
  components:
    - name: step
      inputs: [{name: x, type: float, value: 0, isOptional: true}]
      outputs: [{name: acc, type: float, isOptional: true}]
      run:
        kind: job
        container: {image: 'busybox:1.36', command: [sh, -c, 'echo x={{ x }}']}
"#,
    )
    .unwrap();
    let repo = git2::Repository::init(&work).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
    let out = env
        .cmd_std()
        .current_dir(&work)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("KUBECONFIG", &kubeconfig)
        .env(
            "POLYAXON_K8S_API_HOST",
            "http://polyaxon-api.polyaxon.svc:80",
        )
        .env("POLYAXON_K8S_ARTIFACTS_CLAIM", "polyaxon-artifacts")
        .args(["run", "-p", "root/demo", "--executor", "k8s", "-w"])
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    let dag: J = json_of(&env, &["ops", "get", "-p", "root/demo", "-o", "json"]);
    assert_eq!(dag["status"], "succeeded", "{dag}");
    let dag_uuid = dag["uuid"].as_str().unwrap().to_string();
    let q = format!("pipeline: {dag_uuid}");
    let ops: J = json_of(
        &env,
        &["ops", "ls", "-p", "root/demo", "-q", &q, "-o", "json"],
    );
    let ops: BTreeMap<String, J> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect();
    assert_eq!(
        ops.keys().map(String::as_str).collect::<Vec<_>>(),
        ["prepare", "report", "train"],
        "{ops:?}"
    );
    for (name, op) in &ops {
        assert_eq!(op["status"], "succeeded", "{name}: {op}");
        assert_eq!(op["meta_info"]["executor"]["kind"], "kubernetes", "{name}");
    }
    // What the pod of `prepare` recorded went into `train`.
    assert_eq!(
        ops["prepare"]["outputs"]["acc"],
        json!(0.75),
        "{}",
        ops["prepare"]
    );
    assert_eq!(ops["train"]["inputs"]["x"], json!(0.75), "{}", ops["train"]);
    let st = kube.state.lock().unwrap();
    let jobs: Vec<&J> = st
        .requests
        .iter()
        .filter(|r| r.0 == "PATCH" && r.1.contains("/jobs/"))
        .map(|r| &r.2)
        .collect();
    assert_eq!(jobs.len(), 3, "a Job per operation");
    let train = jobs
        .iter()
        .find(|j| {
            j["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/instance"]
                == ops["train"]["uuid"]
        })
        .expect("train's Job");
    let cmd = train["spec"]["template"]["spec"]["containers"][0]["command"].to_string();
    assert!(cmd.contains("x=0.75"), "{cmd}");
    assert!(
        st.objects.is_empty(),
        "nothing left: {:?}",
        st.objects.keys()
    );
    drop(st);
    assert!(terminate(&mut server).success());
}

#[test]
fn runs_against_a_server_on_sqlite() {
    runs(None);
}

#[test]
fn runs_against_a_server_on_postgres() {
    with_database("cli_runs", runs);
}

#[test]
fn against_a_server_on_sqlite() {
    flow(None);
}

#[test]
fn against_a_server_on_postgres() {
    with_database("cli", flow);
}

/// Runs `f` against a fresh PostgreSQL database (skipped where none is configured).
pub(crate) fn with_database(prefix: &str, f: fn(Option<&str>)) {
    let Ok(admin) = std::env::var("POLYAXON_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "POLYAXON_TEST_DATABASE_URL must be set in CI (scripts/test sets it)"
        );
        eprintln!("skipped: POLYAXON_TEST_DATABASE_URL is not set (scripts/test sets it)");
        return;
    };
    let db = format!("{prefix}_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exec = |sql: String| {
        rt.block_on(polyaxon_server::store::Store::raw_execute(&admin, &sql))
            .unwrap();
    };
    exec(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    exec(format!("CREATE DATABASE {db}"));
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let result = std::panic::catch_unwind(|| f(Some(&url)));
    exec(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
