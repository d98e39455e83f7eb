//! Agents against a server process on SQLite and PostgreSQL: runs created through the API are
//! executed by the agents serving their queue, each exactly once, within each queue's
//! concurrency and by priority; an agent killed outright loses its runs (failed with the
//! reason, their jobs ended); SIGTERM drains; the official Python client's runs are executed.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value as J, json};

use polyaxon_tests::sealed::{Env, stderr, stdout, test_python};
use polyaxon_tests::server::http_with;

use super::remote::{logged_in_with_project, with_database};

/// An agent process, killed when the test ends.
struct Agent {
    child: Child,
    log: std::path::PathBuf,
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Agent {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let ok = std::process::Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

fn agent(env: &Env, name: &str, args: &[&str]) -> Agent {
    let log = env.home.path().join(format!("agent-{name}.log"));
    let child = env
        .cmd_std()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["agent", "start", "--name", name])
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let a = Agent { child, log };
    let t = Instant::now();
    while !a.log().contains("serving") {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "agent `{name}` did not start: {}",
            a.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    a
}

/// The server's address and the logged-in token, from the client's config.
fn api(env: &Env) -> (String, String) {
    let cfg: J =
        serde_json::from_slice(&std::fs::read(env.home.path().join(".polyaxon/.client")).unwrap())
            .unwrap();
    let host = cfg["host"].as_str().unwrap().to_string();
    let auth: J =
        serde_json::from_slice(&std::fs::read(env.home.path().join(".polyaxon/.auth")).unwrap())
            .unwrap();
    let token = auth["tokens"][&host].as_str().unwrap().to_string();
    (host.trim_start_matches("http://").to_string(), token)
}

fn job(cmd: &str) -> String {
    format!(
        "version: 1.1\nkind: component\nname: queued\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, {}]\n",
        serde_json::to_string(cmd).unwrap()
    )
}

/// Creates a run through the API, as any client would; its uuid.
fn create(addr: &str, token: &str, body: J) -> String {
    let (st, run) = http_with(
        addr,
        "POST",
        "/api/v1/root/demo/runs",
        Some(&body.to_string()),
        Some(token),
    );
    assert_eq!(st, 200, "{run}");
    let run: J = serde_json::from_str(&run).unwrap();
    run["uuid"].as_str().unwrap().to_string()
}

fn get(addr: &str, token: &str, path: &str) -> J {
    // As the CLI's client does: a read the server answers 503 (busy) is tried again.
    let mut tries = 0;
    let (st, body) = loop {
        let (st, body) = http_with(addr, "GET", path, None, Some(token));
        tries += 1;
        if st != 503 || tries == 4 {
            break (st, body);
        }
        std::thread::sleep(Duration::from_millis(500 * tries));
    };
    assert_eq!(st, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn count(addr: &str, token: &str, query: &str) -> i64 {
    let q: String = query
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    get(
        addr,
        token,
        &format!("/api/v1/root/demo/runs?query={q}&limit=1"),
    )["count"]
        .as_i64()
        .unwrap()
}

/// Waits until no run of the project is left unfinished.
fn wait_all_done(addr: &str, token: &str, within: Duration, agents: &[&Agent]) {
    let t = Instant::now();
    loop {
        let left = count(
            addr,
            token,
            "status:created|queued|scheduled|starting|running|stopping|warning|retrying",
        );
        if left == 0 {
            return;
        }
        assert!(
            t.elapsed() < within,
            "{left} runs still unfinished after {within:?}; agents said:\n{}",
            agents
                .iter()
                .map(|a| a.log())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

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

/// Many runs, several agents: every run executed once, a limited queue's concurrency held.
fn every_run_once(database_url: Option<&str>, runs: usize) {
    let (_server, env, _server_home) = logged_in_with_project(database_url);
    let (addr, token) = api(&env);
    let ran = env.home.path().join("ran.txt");
    let spans = env.home.path().join("spans.txt");
    ok(&env, &["queue", "create", "limited", "--concurrency", "2"]);
    // Created before any agent runs: they wait, then are drained by three agents at once.
    let body = |cmd: &str, queue: &str| json!({"content": job(cmd), "queue": queue});
    let creators: Vec<_> = (0..4)
        .map(|_| {
            let (addr, token, ran) = (addr.clone(), token.clone(), ran.clone());
            std::thread::spawn(move || {
                (0..runs / 4)
                    .map(|_| {
                        create(
                            &addr,
                            &token,
                            body(
                                &format!("echo $POLYAXON_RUN_INSTANCE >> {}", ran.display()),
                                "default",
                            ),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut limited = Vec::new();
    for _ in 0..6 {
        limited.push(create(
            &addr,
            &token,
            body(
                &format!(
                    "echo start $(date +%s%N) >> {0}; sleep 0.3; echo end $(date +%s%N) >> {0}",
                    spans.display()
                ),
                "limited",
            ),
        ));
    }
    let created: BTreeSet<String> = creators
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    assert_eq!(created.len(), runs / 4 * 4);
    let queues = get(&addr, &token, "/api/v1/admin/queues");
    let default = queues["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "default")
        .unwrap()
        .clone();
    assert_eq!(default["queued"], created.len() as i64, "{queues}");
    let started = Instant::now();
    let agents: Vec<Agent> = ["a1", "a2", "a3"]
        .iter()
        .map(|n| {
            agent(
                &env,
                n,
                &["--queue", "default,limited", "--max-concurrency", "4"],
            )
        })
        .collect();
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_all_done(&addr, &token, Duration::from_secs(900), &refs);
    eprintln!(
        "{} runs by 3 agents in {:.1} s",
        created.len() + limited.len(),
        started.elapsed().as_secs_f64()
    );
    // Each exactly once.
    let lines: Vec<String> = std::fs::read_to_string(&ran)
        .unwrap()
        .lines()
        .map(|l| l.rsplit('.').next().unwrap().to_string())
        .collect();
    let once: BTreeSet<String> = lines.iter().cloned().collect();
    assert_eq!(lines.len(), created.len(), "some run ran twice");
    assert_eq!(once, created, "every run ran");
    assert_eq!(
        count(&addr, &token, "status:succeeded"),
        (created.len() + limited.len()) as i64
    );
    // Every agent took a share.
    let listed = get(&addr, &token, "/api/v1/admin/agents");
    assert_eq!(listed["count"], 3, "{listed}");
    for a in &agents {
        assert!(a.log().contains("starting run"), "{}", a.log());
    }
    // The limited queue never ran more than two at once.
    let mut events: Vec<(i64, i32)> = std::fs::read_to_string(&spans)
        .unwrap()
        .lines()
        .map(|l| {
            let (k, t) = l.split_once(' ').unwrap();
            (t.parse().unwrap(), if k == "start" { 1 } else { -1 })
        })
        .collect();
    events.sort_by_key(|&(t, d)| (t, d));
    let (mut now, mut most) = (0, 0);
    for (_, d) in &events {
        now += d;
        most = most.max(now);
    }
    assert_eq!(events.len(), 12);
    assert!(most <= 2, "queue `limited` ran {most} at once");
    // One claim per run: a single `scheduled` in its history.
    let sample = created.iter().next().unwrap();
    let st = get(
        &addr,
        &token,
        &format!("/api/v1/root/demo/runs/{sample}/statuses"),
    );
    let scheduled = st["status_conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "scheduled")
        .count();
    assert_eq!(scheduled, 1, "{st}");
}

#[test]
fn agents_run_every_queued_run_once_on_sqlite() {
    every_run_once(None, 1000);
}

#[test]
fn agents_run_every_queued_run_once_on_postgres() {
    with_database("agents_once", |url| every_run_once(url, 1000));
}

/// Priority first, then age; an unknown queue is refused naming it.
#[test]
fn priorities_and_unknown_queues() {
    let (_server, env, _server_home) = logged_in_with_project(None);
    let (addr, token) = api(&env);
    let order = env.home.path().join("order.txt");
    ok(&env, &["queue", "create", "prio"]);
    let mut names = BTreeMap::new();
    for (i, p) in [0, 0, 5, 0, 10].iter().enumerate() {
        let u = create(
            &addr,
            &token,
            json!({
                "content": job(&format!("echo {i} >> {}", order.display())),
                "queue": "prio",
                "priority": p
            }),
        );
        names.insert(i, u);
    }
    let (st, body) = http_with(
        &addr,
        "POST",
        "/api/v1/root/demo/runs",
        Some(&json!({"content": job("true"), "queue": "nope"}).to_string()),
        Some(&token),
    );
    assert_eq!(st, 404, "{body}");
    assert!(body.contains("unknown queue `nope`"), "{body}");
    let a = agent(&env, "solo", &["--queue", "prio", "--max-concurrency", "1"]);
    wait_all_done(&addr, &token, Duration::from_secs(60), &[&a]);
    let ran: Vec<String> = std::fs::read_to_string(&order)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(ran, ["4", "2", "0", "1", "3"]);
    // A run this agent's executor cannot run fails once, saying why; it is not retried.
    let tf = create(
        &addr,
        &token,
        json!({
            "content": "version: 1.1\nkind: component\nrun:\n  kind: tfjob\n  worker: {replicas: 2, container: {image: tf, command: [python, t.py]}}\n",
            "queue": "prio"
        }),
    );
    wait_all_done(&addr, &token, Duration::from_secs(60), &[&a]);
    let r = get(
        &addr,
        &token,
        &format!("/api/v1/root/demo/runs/{tf}/statuses"),
    );
    let conds = r["status_conditions"].as_array().unwrap();
    let last = conds.last().unwrap();
    assert_eq!(last["type"], "failed", "{r}");
    assert!(
        last["message"]
            .as_str()
            .unwrap()
            .contains("needs a cluster"),
        "{r}"
    );
    assert_eq!(
        conds.iter().filter(|c| c["type"] == "scheduled").count(),
        1,
        "claimed once: {r}"
    );
    let status = ok(&env, &["agent", "status"]);
    assert!(
        status.contains("prio") && status.contains("solo"),
        "{status}"
    );
    let ls = ok(&env, &["agent", "ls"]);
    assert!(ls.contains("solo") && ls.contains("running"), "{ls}");
}

/// An agent killed outright: its running runs fail with the reason and their jobs end; the
/// queued runs go to the next agent; nothing runs twice.
#[test]
fn a_killed_agent_loses_its_runs() {
    let (_server, env, _server_home) = logged_in_with_project(None);
    let (addr, token) = api(&env);
    let marks = env.home.path().join("marks.txt");
    let long = job(&format!(
        "echo $POLYAXON_RUN_INSTANCE >> {}; sleep 120",
        marks.display()
    ));
    let short = job(&format!(
        "echo $POLYAXON_RUN_INSTANCE >> {}",
        marks.display()
    ));
    let doomed: Vec<String> = (0..2)
        .map(|_| create(&addr, &token, json!({"content": long})))
        .collect();
    let a = agent(&env, "doomed", &["--max-concurrency", "2", "--lease", "3"]);
    let t = Instant::now();
    while count(&addr, &token, "status:running") < 2 {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", a.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let waiting: Vec<String> = (0..3)
        .map(|_| create(&addr, &token, json!({"content": short})))
        .collect();
    let jobs: Vec<u32> = doomed
        .iter()
        .map(|u| {
            let t = Instant::now();
            loop {
                let r = get(&addr, &token, &format!("/api/v1/root/demo/runs/{u}"));
                if let Some(p) = r["meta_info"]["executor"]["job_pid"].as_u64() {
                    return p as u32;
                }
                assert!(t.elapsed() < Duration::from_secs(10), "{r}");
                std::thread::sleep(Duration::from_millis(50));
            }
        })
        .collect();
    let mut a = a;
    a.signal("-KILL");
    let _ = a.child.wait();
    let b = agent(&env, "next", &["--max-concurrency", "2", "--lease", "3"]);
    wait_all_done(&addr, &token, Duration::from_secs(60), &[&b]);
    for u in &doomed {
        let r = get(
            &addr,
            &token,
            &format!("/api/v1/root/demo/runs/{u}/statuses"),
        );
        let last = r["status_conditions"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["type"], "failed", "{r}");
        let reason = last["reason"].as_str().unwrap();
        assert!(reason == "AgentLost" || reason == "ExecutorLost", "{r}");
    }
    for u in &waiting {
        let r = get(&addr, &token, &format!("/api/v1/root/demo/runs/{u}"));
        assert_eq!(r["status"], "succeeded", "{r}");
        assert_eq!(r["agent"], J::Null);
    }
    // The killed agent's jobs did not outlive it.
    std::thread::sleep(Duration::from_millis(300));
    for pid in jobs {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let state = stat.rsplit(')').next().unwrap_or("").trim_start();
        assert!(
            stat.is_empty() || state.starts_with('Z'),
            "job {pid} still runs: {stat}"
        );
    }
    let lines = std::fs::read_to_string(&marks).unwrap();
    assert_eq!(lines.lines().count(), 5, "each run once: {lines}");
}

/// SIGTERM drains: no new claims, the running run finishes; the agent then says it stopped.
#[test]
fn sigterm_drains() {
    let (_server, env, _server_home) = logged_in_with_project(None);
    let (addr, token) = api(&env);
    let a = agent(&env, "drainer", &["--max-concurrency", "1"]);
    let first = create(&addr, &token, json!({"content": job("sleep 1.5")}));
    let t = Instant::now();
    while get(&addr, &token, &format!("/api/v1/root/demo/runs/{first}"))["status"] != "running" {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = create(&addr, &token, json!({"content": job("true")}));
    a.signal("-TERM");
    let mut a = a;
    let status = a.child.wait().unwrap();
    assert!(status.success(), "{}", a.log());
    let r = get(&addr, &token, &format!("/api/v1/root/demo/runs/{first}"));
    assert_eq!(r["status"], "succeeded", "{r}\n{}", a.log());
    let r = get(&addr, &token, &format!("/api/v1/root/demo/runs/{second}"));
    assert_eq!(r["status"], "queued", "not claimed while draining: {r}");
    assert_eq!(r["agent"], J::Null);
    let ls = get(&addr, &token, "/api/v1/admin/agents");
    assert_eq!(ls["results"][0]["state"], "stopped", "{ls}");
    assert!(a.log().contains("draining"), "{}", a.log());
}

/// `polyaxon run` against a server whose queue an agent serves: queued and run by the agent;
/// `--local` runs here; with no agent it runs here and says so.
#[test]
fn polyaxon_run_goes_to_the_agents() {
    let (_server, env, _server_home) = logged_in_with_project(None);
    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("polyaxonfile.yml"), job("echo hello from $PWD")).unwrap();
    let run = |args: &[&str]| {
        env.cmd_std()
            .current_dir(&work)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["run", "-p", "root/demo", "-l"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("no agent serves queue `default`"),
        "{}",
        stderr(&out)
    );
    let a = agent(&env, "served", &[]);
    let out = run(&["run", "-p", "root/demo", "-l"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("queued on `default`"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).contains("hello from"), "{}", stdout(&out));
    assert!(a.log().contains("starting run"), "{}", a.log());
    let out = run(&["run", "-p", "root/demo", "--local", "-l"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(a.log().matches("starting run").count(), 1, "{}", a.log());
    let out = run(&["run", "-p", "root/demo", "--queue", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown queue `nope`"),
        "{}",
        stderr(&out)
    );
}

/// A run the official Python client creates from a polyaxonfile's content is executed by an
/// agent, and what it tracks is stored.
#[test]
fn the_official_client_creates_a_run_an_agent_executes() {
    let Some(python) = test_python() else {
        return;
    };
    let (_server, env, _server_home) = logged_in_with_project(None);
    let (addr, token) = api(&env);
    let _a = agent(&env, "py", &[]);
    let track = "from polyaxon import tracking\ntracking.init()\nfor s in range(20):\n    tracking.log_metrics(step=s, loss=1.0 / (s + 1))\ntracking.log_outputs(done=1)\ntracking.end()\n";
    let content = format!(
        "version: 1.1\nkind: component\nname: from-python\nrun:\n  kind: job\n  container:\n    image: python\n    command: [{}, -u, -c, {}]\n",
        python.display(),
        serde_json::to_string(track).unwrap()
    );
    let script = r#"
import sys, time
from polyaxon.client import RunClient
rc = RunClient(owner="root", project="demo")
rc.create(name="from-python", content=sys.stdin.read())
for _ in range(600):
    rc.refresh_data()
    if rc.run_data.status in ("succeeded", "failed", "stopped"):
        break
    time.sleep(0.1)
print(rc.run_uuid, rc.run_data.status)
"#;
    let mut child = std::process::Command::new(&python)
        .args(["-c", script])
        .env("POLYAXON_HOST", format!("http://{addr}"))
        .env("POLYAXON_AUTH_TOKEN", &token)
        .env("POLYAXON_NO_OP", "false")
        .env("HOME", env.home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(content.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    let (uuid, status) = said.trim().split_once(' ').unwrap();
    assert_eq!(status, "succeeded", "{said}\n{}", _a.log());
    let m = get(
        &addr,
        &token,
        &format!("/streams/v1/polyaxon/root/demo/runs/{uuid}/events/metric?names=loss"),
    );
    let text = m.to_string();
    assert!(text.contains("loss"), "{text}");
    let r = get(&addr, &token, &format!("/api/v1/root/demo/runs/{uuid}"));
    assert_eq!(r["outputs"]["done"], 1, "{r}");
}

/// The deploy's agent token: the server accepts it as root's from its first start on, and
/// again at every start after.
#[test]
fn the_server_accepts_the_deploys_agent_token() {
    let server_env = Env::new();
    let token = "plx_agent_0123456789abcdef";
    for _ in 0..2 {
        let (mut server, addr, _, _) = polyaxon_tests::server::start_with(
            &server_env,
            &[],
            &[
                ("POLYAXON_ADMIN_PASSWORD", "an-admin-password"),
                ("POLYAXON_AGENT_TOKEN", token),
            ],
        );
        let (st, body) = http_with(&addr, "GET", "/api/v1/admin/agents", None, Some(token));
        assert_eq!(st, 200, "{body}");
        let (st, _) = http_with(
            &addr,
            "GET",
            "/api/v1/admin/agents",
            None,
            Some("plx_wrong"),
        );
        assert_eq!(st, 401);
        assert!(polyaxon_tests::server::terminate(&mut server).success());
    }
}

/// An agent on the (stand-in) cluster killed outright while its job runs: the next agent
/// finds the job by its labels and follows it to its end; the job is not submitted twice.
#[test]
fn a_restarted_agent_adopts_a_running_cluster_job() {
    let (_server, env, server_home) = logged_in_with_project(None);
    let (addr, token) = api(&env);
    let kube = polyaxon_tests::fake_kube::FakeKube::start();
    {
        let mut st = kube.state.lock().unwrap();
        st.shared_artifacts = Some(server_home.home.path().join(".polyaxon/artifacts"));
        st.done_after = Some(Duration::from_secs(10));
    }
    let kubeconfig = kube.kubeconfig(env.home.path());
    let on_cluster = |name: &str| {
        let log = env.home.path().join(format!("agent-{name}.log"));
        let child = env
            .cmd_std()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("KUBECONFIG", &kubeconfig)
            .env(
                "POLYAXON_K8S_API_HOST",
                "http://polyaxon-api.polyaxon.svc:80",
            )
            .env("POLYAXON_K8S_ARTIFACTS_CLAIM", "polyaxon-artifacts")
            .args([
                "agent",
                "start",
                "--executor",
                "kubernetes",
                "--lease",
                "2",
                "--name",
                name,
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let a = Agent { child, log };
        let t = Instant::now();
        while !a.log().contains("serving") {
            assert!(t.elapsed() < Duration::from_secs(30), "{}", a.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        a
    };
    let mut first = on_cluster("first");
    let u = create(
        &addr,
        &token,
        json!({"content": job("echo on the cluster")}),
    );
    let t = Instant::now();
    while get(&addr, &token, &format!("/api/v1/root/demo/runs/{u}"))["status"] != "running" {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", first.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    first.signal("-KILL");
    let _ = first.child.wait();
    let second = on_cluster("second");
    wait_all_done(&addr, &token, Duration::from_secs(60), &[&second]);
    let r = get(&addr, &token, &format!("/api/v1/root/demo/runs/{u}"));
    assert_eq!(r["status"], "succeeded", "{r}\n{}", second.log());
    assert_eq!(r["meta_info"]["executor"]["agent"], "second", "{r}");
    let st = get(
        &addr,
        &token,
        &format!("/api/v1/root/demo/runs/{u}/statuses"),
    );
    let reasons: Vec<&str> = st["status_conditions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["reason"].as_str())
        .collect();
    assert!(
        reasons.contains(&"AgentLost") && reasons.contains(&"AgentAdopted"),
        "{reasons:?}"
    );
    assert!(second.log().contains("adopting run"), "{}", second.log());
    let submitted = kube
        .state
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(m, p, _)| m == "PATCH" && p.contains("/jobs/"))
        .count();
    assert_eq!(submitted, 1, "the job was applied once");
}

/// A DAG and a schedule created through the API are driven by an agent: the DAG's operations
/// run and pass values downstream, the schedule fires its runs at their ticks.
#[test]
fn an_agent_drives_dags_and_schedules() {
    let (_server, env, _server_home) = logged_in_with_project(None);
    let (addr, token) = api(&env);
    let a = agent(&env, "orchestrator", &["--max-concurrency", "4"]);
    let dag = r#"version: 1.1
kind: component
name: pipeline
run:
  kind: dag
  operations:
    - {name: first, dagRef: step, params: {x: {value: 1}}}
    - {name: second, dagRef: step, params: {x: {ref: ops.first, value: outputs.y}}}
  components:
    - name: step
      inputs: [{name: x, type: float}]
      outputs: [{name: y, type: float}]
      run:
        kind: job
        container:
          image: busybox
          env: [{name: POLYAXON_STDOUT_METRICS, value: "true"}]
          command: [sh, -c, 'echo y=$(echo "{{ x }} + 1" | bc)']
"#;
    let d = create(&addr, &token, json!({"content": dag}));
    let schedule = "version: 1.1\nkind: operation\nname: ticking\nschedule: {kind: interval, frequency: 1, maxRuns: 2}\ncomponent:\n  run:\n    kind: job\n    container: {image: busybox, command: [sh, -c, 'echo tick']}\n";
    let s = create(&addr, &token, json!({"content": schedule}));
    wait_all_done(&addr, &token, Duration::from_secs(90), &[&a]);
    for u in [&d, &s] {
        let r = get(&addr, &token, &format!("/api/v1/root/demo/runs/{u}"));
        assert_eq!(r["status"], "succeeded", "{r}\n{}", a.log());
    }
    let children = |p: &str| {
        let q: String = format!("pipeline:{p}");
        get(
            &addr,
            &token,
            &format!(
                "/api/v1/root/demo/runs?query={}&limit=10",
                q.replace(':', "%3A")
            ),
        )
    };
    let ops = children(&d);
    assert_eq!(ops["count"], 2, "{ops}");
    let second = ops["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "second")
        .unwrap()
        .clone();
    assert_eq!(second["inputs"]["x"].as_f64(), Some(2.0), "{second}");
    let ticks = children(&s);
    assert_eq!(ticks["count"], 2, "{ticks}");
}

/// `--handoff`: on SIGTERM the agent stops its running run and queues it again; another agent
/// resumes it to its end.
#[test]
fn handoff_hands_running_runs_to_another_agent() {
    let (_server, env, _server_home) = logged_in_with_project(None);
    let (addr, token) = api(&env);
    let a = agent(&env, "leaving", &["--max-concurrency", "1", "--handoff"]);
    let u = create(&addr, &token, json!({"content": job("sleep 2; echo done")}));
    let t = Instant::now();
    while get(&addr, &token, &format!("/api/v1/root/demo/runs/{u}"))["status"] != "running" {
        assert!(t.elapsed() < Duration::from_secs(30), "{}", a.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let b = agent(&env, "staying", &["--max-concurrency", "1"]);
    a.signal("-TERM");
    let mut a = a;
    assert!(a.child.wait().unwrap().success(), "{}", a.log());
    wait_all_done(&addr, &token, Duration::from_secs(60), &[&b]);
    let r = get(&addr, &token, &format!("/api/v1/root/demo/runs/{u}"));
    assert_eq!(r["status"], "succeeded", "{r}\n{}\n{}", a.log(), b.log());
    assert_eq!(r["meta_info"]["executor"]["agent"], "staying", "{r}");
    let st = get(
        &addr,
        &token,
        &format!("/api/v1/root/demo/runs/{u}/statuses"),
    );
    let kinds: Vec<&str> = st["status_conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["type"].as_str().unwrap())
        .collect();
    let at = |k: &str| kinds.iter().position(|x| *x == k);
    assert!(
        at("stopped") < at("resuming") && at("resuming").is_some(),
        "{kinds:?}"
    );
    assert!(a.log().contains("handed back"), "{}", a.log());
}
