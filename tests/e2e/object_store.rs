//! A server whose artifacts store is S3 (moto's server from the test virtualenv): `polyaxon
//! run -u` against it, the code archive and the job's outputs arriving in the bucket (and not
//! kept on the server's disk), read back through the API; a bucket that does not exist stops
//! the server at start, naming the store. Runs on a (stand-in) cluster send their files
//! through `polyaxon sidecar`, and an outage of the store, or of the server, delays them and
//! loses none.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value as J;

use polyaxon_tests::sealed::{Env, stderr, stdout, test_python};
use polyaxon_tests::server::start_with;

const PASSWORD: &str = "s3cret-admin-pass";

struct Moto(Child, u16);

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn moto() -> Option<Moto> {
    let py = test_python()?;
    let bin = py.parent().unwrap().join("moto_server");
    assert!(
        bin.is_file(),
        "moto_server in the test virtualenv (scripts/test installs it)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let m = Moto(child, port);
    let end = Instant::now() + Duration::from_secs(60);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "moto did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(m)
}

/// An unsigned request to moto (it takes any, or none): the status and the body.
fn s3(port: u16, method: &str, path: &str) -> (u16, String) {
    polyaxon_tests::server::http(&format!("127.0.0.1:{port}"), method, path, None)
}

fn ok(env: &Env, args: &[&str]) -> String {
    let out = env.cmd().args(args).output().unwrap();
    assert!(
        out.status.success(),
        "`polyaxon {}`: {}{}",
        args.join(" "),
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn store_args(port: u16, url: &str) -> Vec<String> {
    let mut a = vec!["--artifacts-store".to_string(), url.to_string()];
    for o in [
        format!("endpoint=http://127.0.0.1:{port}"),
        "allow_http=true".into(),
        "region=us-east-1".into(),
        "access_key_id=testing".into(),
        "secret_access_key=testing".into(),
    ] {
        a.push("--artifacts-store-option".into());
        a.push(o);
    }
    a
}

#[test]
fn a_server_on_s3_takes_a_runs_code_and_outputs() {
    let Some(m) = moto() else { return };
    let (code, body) = s3(m.1, "PUT", "/plx-bucket");
    assert_eq!(code, 200, "{body}");

    // A bucket that is not there: the server does not start, and says which store refused.
    let server_env = Env::new();
    let bad = store_args(m.1, "s3://no-such-bucket/runs");
    let out = server_env
        .cmd_std()
        .args(["server", "start", "--port", "0"])
        .args(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("s3://no-such-bucket/runs") && err.contains("refused"),
        "{err}"
    );

    let args = store_args(m.1, "s3://plx-bucket/team/runs");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (_server, addr, seen, _rx) =
        start_with(&server_env, &args, &[("POLYAXON_ADMIN_PASSWORD", PASSWORD)]);
    assert!(
        seen.iter().any(|l| l.contains("artifacts store checked")),
        "{seen:#?}"
    );
    let env = Env::new();
    ok(
        &env,
        &["config", "set", "--host", &format!("http://{addr}")],
    );
    let out = env
        .cmd()
        .args(["login", "-u", "root", "--password-stdin"])
        .write_stdin(format!("{PASSWORD}\n"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&env, &["project", "create", "-n", "demo"]);

    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("polyaxonfile.yml"),
        "version: 1.1\nkind: component\nname: on-s3\nrun:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, 'echo training; mkdir -p $POLYAXON_RUN_OUTPUTS_PATH/model; echo weights > $POLYAXON_RUN_OUTPUTS_PATH/model/w.txt']\n",
    )
    .unwrap();
    std::fs::write(work.join("train.py"), "print('hello')\n").unwrap();
    let repo = git2::Repository::init(&work).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
    let out = env
        .cmd_std()
        .current_dir(&work)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["run", "-p", "root/demo", "-u", "-l"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let run: J =
        serde_json::from_str(&ok(&env, &["ops", "get", "-p", "root/demo", "-o", "json"])).unwrap();
    assert_eq!(run["status"], "succeeded", "{run}");
    let uuid = run["uuid"].as_str().unwrap();

    // In the bucket, under the prefix: the uploaded code and the outputs.
    let (code, listing) = s3(
        m.1,
        "GET",
        &format!("/plx-bucket?list-type=2&prefix=team/runs/{uuid}/"),
    );
    assert_eq!(code, 200, "{listing}");
    for key in [
        format!("team/runs/{uuid}/uploads/train.py"),
        format!("team/runs/{uuid}/outputs/model/w.txt"),
    ] {
        assert!(
            listing.contains(&format!("<Key>{key}</Key>")),
            "{key}: {listing}"
        );
    }
    // Not kept on the server's disk.
    let local = server_env
        .home
        .path()
        .join(".polyaxon/artifacts")
        .join(uuid)
        .join("outputs/model/w.txt");
    assert!(!local.exists(), "{} is still here", local.display());

    // Read back through the API: one file, then the whole run as an archive.
    assert_eq!(downloaded(&env, uuid, "outputs/model/w.txt"), "weights\n");
    let whole = env.home.path().join("whole");
    ok(
        &env,
        &[
            "ops",
            "artifacts",
            "-p",
            "root/demo",
            "--uid",
            uuid,
            "--path",
            whole.to_str().unwrap(),
        ],
    );
    let found: Vec<String> = walk(&whole);
    assert!(
        found.iter().any(|p| p.ends_with("outputs/model/w.txt"))
            && found.iter().any(|p| p.ends_with("uploads/train.py")),
        "{found:?}"
    );
    // Logs are taken in on the server's disk, and copied to the bucket as the run ends.
    let logs_args = [
        "ops",
        "logs",
        "-p",
        "root/demo",
        "--uid",
        uuid,
        "--hide-time",
    ];
    let logs = ok(&env, &logs_args);
    assert!(logs.contains("training"), "{logs}");
    wait_for("the logs in the bucket", 60, || {
        keys(m.1, "plx-bucket", &format!("team/runs/{uuid}/plxlogs/"))
            .iter()
            .any(|k| k.ends_with(".jsonl"))
    });
    // The server's disk lost them (replaced, or another replica answers): read from there.
    let local_logs = server_env
        .home
        .path()
        .join(".polyaxon/artifacts")
        .join(uuid)
        .join("plxlogs");
    std::fs::remove_dir_all(&local_logs).unwrap();
    let again = ok(&env, &logs_args);
    assert_eq!(again, logs, "the same lines, from the bucket");
}

/// A run's file as `polyaxon ops artifacts -f` downloads it (through the server, from its
/// store).
fn downloaded(env: &Env, uuid: &str, rel: &str) -> String {
    let got = env
        .home
        .path()
        .join(format!("got-{}", rel.replace('/', "_")));
    ok(
        env,
        &[
            "ops",
            "artifacts",
            "-p",
            "root/demo",
            "--uid",
            uuid,
            "-f",
            rel,
            "--path",
            got.to_str().unwrap(),
        ],
    );
    std::fs::read_to_string(got.join(rel)).unwrap()
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = vec![];
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// A TCP proxy to a local port that can be cut (connections open are shut, new ones closed
/// as soon as accepted, as an unreachable host's would fail) and restored.
struct Proxy {
    port: u16,
    on: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

impl Proxy {
    fn to(target: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let on = Arc::new(AtomicBool::new(true));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let (on2, open2) = (on.clone(), open.clone());
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(down) = s else { continue };
                if !on2.load(Ordering::SeqCst) {
                    let _ = down.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                let Ok(up) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut o = open2.lock().unwrap();
                    o.push(down.try_clone().unwrap());
                    o.push(up.try_clone().unwrap());
                }
                for (mut a, mut b) in [
                    (down.try_clone().unwrap(), up.try_clone().unwrap()),
                    (up, down),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut a, &mut b);
                        let _ = b.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Proxy { port, on, open }
    }

    fn cut(&self) {
        self.on.store(false, Ordering::SeqCst);
        for c in self.open.lock().unwrap().drain(..) {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }

    fn restore(&self) {
        self.on.store(true, Ordering::SeqCst);
    }
}

/// The keys of the bucket below `prefix`.
fn keys(port: u16, bucket: &str, prefix: &str) -> Vec<String> {
    let (code, listing) = s3(
        port,
        "GET",
        &format!("/{bucket}?list-type=2&prefix={prefix}"),
    );
    assert_eq!(code, 200, "{listing}");
    listing
        .split("<Key>")
        .skip(1)
        .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k.to_string()))
        .collect()
}

fn wait_for(what: &str, secs: u64, f: impl FnMut() -> bool) {
    wait_for_with(what, secs, f, String::new)
}

/// The same, saying `detail()` when it times out.
fn wait_for_with(what: &str, secs: u64, mut f: impl FnMut() -> bool, detail: impl Fn() -> String) {
    let end = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(
            Instant::now() < end,
            "timed out waiting for {what}: {}",
            detail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A run's metric series, as `ops metrics -o json` gives them.
fn series(env: &Env, uuid: &str, name: &str) -> J {
    let m: J = serde_json::from_str(&ok(
        env,
        &[
            "ops",
            "metrics",
            "-p",
            "root/demo",
            "--uid",
            uuid,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    m.as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .map(|s| s["data"]["metric"].clone())
        .unwrap_or(J::Null)
}

/// A server on S3, logged in, with a project `demo`: the server's address, the client's env,
/// the server's env (its disk), and the process.
fn server_on(store_port: u16, url: &str) -> (polyaxon_tests::server::Server, String, Env, Env) {
    let server_env = Env::new();
    let args = store_args(store_port, url);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (server, addr, _seen, _rx) =
        start_with(&server_env, &args, &[("POLYAXON_ADMIN_PASSWORD", PASSWORD)]);
    let env = Env::new();
    ok(
        &env,
        &["config", "set", "--host", &format!("http://{addr}")],
    );
    let out = env
        .cmd()
        .args(["login", "-u", "root", "--password-stdin"])
        .write_stdin(format!("{PASSWORD}\n"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    ok(&env, &["project", "create", "-n", "demo"]);
    (server, addr, env, server_env)
}

/// `polyaxon run -u --executor kubernetes` against a server on S3, on a stand-in cluster that
/// runs each pod's sidecar for real: the pod shares no volume with the server, yet its
/// outputs and event files (their metrics too) arrive, with the code archive, in the bucket.
/// The store is cut off as the job ends: the sidecar's last pass waits for it, and the run's
/// last files and last point arrive once it is back.
#[test]
fn a_pods_files_reach_the_bucket_through_its_sidecar_across_an_outage() {
    let Some(m) = moto() else { return };
    let (code, body) = s3(m.1, "PUT", "/pods-bucket");
    assert_eq!(code, 200, "{body}");
    let store = Proxy::to(m.1);
    let (_server, addr, env, server_env) = server_on(store.port, "s3://pods-bucket/runs");

    let kube = polyaxon_tests::fake_kube::FakeKube::start();
    let pods = tempfile::tempdir().unwrap();
    {
        let mut st = kube.state.lock().unwrap();
        st.sidecar_binary = Some(polyaxon_tests::sealed::polyaxon_bin());
        st.pods_root = Some(pods.path().to_path_buf());
        st.done_after = Some(Duration::from_secs(8));
    }
    let kubeconfig = kube.kubeconfig(env.home.path());
    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("polyaxonfile.yml"),
        "version: 1.1\nkind: component\nname: on-cluster\nplugins: {sidecar: {syncInterval: 1}}\nrun:\n  kind: job\n  container: {image: 'busybox:1.36', command: [sh, -c, 'python train.py']}\n",
    )
    .unwrap();
    std::fs::write(work.join("train.py"), "print('hello')\n").unwrap();
    let repo = git2::Repository::init(&work).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
    let out = env
        .cmd_std()
        .current_dir(&work)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("KUBECONFIG", &kubeconfig)
        .env("POLYAXON_K8S_API_HOST", format!("http://{addr}"))
        .env("POLYAXON_K8S_SIDECAR_IMAGE", "polyaxon/polyaxon-rs:test")
        .args(["run", "-p", "root/demo", "--executor", "k8s", "-u"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let run: J =
        serde_json::from_str(&ok(&env, &["ops", "get", "-p", "root/demo", "-o", "json"])).unwrap();
    let uuid = run["uuid"].as_str().unwrap().to_string();
    let prefix = format!("runs/{uuid}/");

    // The first pass: the output and the event file the job wrote as it started, and the
    // metrics of its complete lines.
    wait_for("the first output in the bucket", 60, || {
        keys(m.1, "pods-bucket", &prefix).contains(&format!("{prefix}outputs/model.txt"))
    });
    wait_for("the first points", 60, || {
        series(&env, &uuid, "acc") == serde_json::json!([0.5])
    });
    let code_keys = keys(m.1, "pods-bucket", &format!("{prefix}code/"));
    assert!(
        code_keys.iter().any(|k| k.ends_with("code/train.py")),
        "the code archive, for the pod's init step: {code_keys:?}"
    );

    // The store goes away; the job ends meanwhile, and its sidecar is told to stop.
    store.cut();
    wait_for("the main container's end", 60, || {
        kube.state
            .lock()
            .unwrap()
            .sidecars
            .values()
            .all(|s| s.stopped)
    });
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !keys(m.1, "pods-bucket", &prefix).contains(&format!("{prefix}outputs/last.txt")),
        "not sent while the store is away"
    );
    store.restore();

    wait_for("the run's end", 90, || {
        let r: J = serde_json::from_str(&ok(
            &env,
            &[
                "ops",
                "get",
                "-p",
                "root/demo",
                "--uid",
                &uuid,
                "-o",
                "json",
            ],
        ))
        .unwrap();
        matches!(
            r["status"].as_str(),
            Some("succeeded" | "failed" | "stopped")
        )
    });
    let r: J = serde_json::from_str(&ok(
        &env,
        &[
            "ops",
            "get",
            "-p",
            "root/demo",
            "--uid",
            &uuid,
            "-o",
            "json",
        ],
    ))
    .unwrap();
    {
        let st = kube.state.lock().unwrap();
        let sc = st.sidecars.values().next().expect("the pod's sidecar ran");
        let log = std::fs::read_to_string(&sc.log).unwrap_or_default();
        assert_eq!(r["status"], "succeeded", "{r}\nsidecar: {log}");
        assert_eq!(sc.exit, Some(0), "the sidecar sent everything: {log}");
    }
    let got = keys(m.1, "pods-bucket", &prefix);
    for want in [
        "outputs/model.txt",
        "outputs/last.txt",
        "events/metric/acc.plx",
    ] {
        assert!(got.contains(&format!("{prefix}{want}")), "{want}: {got:?}");
    }
    // Every point once, the one written as the job ended (without its newline) too.
    assert_eq!(
        series(&env, &uuid, "acc"),
        serde_json::json!([0.5, 0.75, 0.875])
    );
    // Read back through the server, which keeps none of them on its disk.
    assert_eq!(
        downloaded(&env, &uuid, "outputs/last.txt"),
        "written as the job ended\n"
    );
    let local = server_env
        .home
        .path()
        .join(".polyaxon/artifacts")
        .join(&uuid)
        .join("outputs/last.txt");
    assert!(
        !local.exists(),
        "{} is on the server's disk",
        local.display()
    );
}

/// `polyaxon sidecar` on its own, beside a run's directory, with the server out of reach for
/// a while: the files written meanwhile wait, and arrive once it is back.
#[test]
fn the_sidecar_outlasts_the_server_out_of_reach() {
    let Some(m) = moto() else { return };
    let (code, body) = s3(m.1, "PUT", "/side-bucket");
    assert_eq!(code, 200, "{body}");
    let (_server, addr, env, _server_env) = server_on(m.1, "s3://side-bucket/runs");
    // A run to send files to (its job ran on this machine; only its files matter here).
    let work = env.home.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(
        work.join("polyaxonfile.yml"),
        "version: 1.1\nkind: component\nrun:\n  kind: job\n  container: {image: busybox, command: [sh, -c, 'true']}\n",
    )
    .unwrap();
    let out = env
        .cmd_std()
        .current_dir(&work)
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .args(["run", "-p", "root/demo", "-l"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let run: J =
        serde_json::from_str(&ok(&env, &["ops", "get", "-p", "root/demo", "-o", "json"])).unwrap();
    let uuid = run["uuid"].as_str().unwrap().to_string();
    let prefix = format!("runs/{uuid}/");

    // The sidecar talks to the server through a proxy that can be cut.
    let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
    let to_server = Proxy::to(port);
    let dir = env.home.path().join("pod");
    std::fs::create_dir_all(dir.join("outputs")).unwrap();
    std::fs::write(dir.join("outputs/one.txt"), "one\n").unwrap();
    let log = env.home.path().join("sidecar.log");
    // As in a pod: the host and a token from the env (the login's is for the other address).
    let token: J = serde_json::from_str(&ok(
        &env,
        &["token", "create", "--name", "pod", "-o", "json"],
    ))
    .unwrap();
    let mut sidecar = env
        .cmd_std()
        .env("POLYAXON_AUTH_TOKEN", token["key"].as_str().unwrap())
        .env(
            "POLYAXON_HOST",
            format!("http://127.0.0.1:{}", to_server.port),
        )
        .args([
            "sidecar",
            "--dir",
            dir.to_str().unwrap(),
            "--interval",
            "0.5",
        ])
        .args(["-p", "root/demo", "--uid", &uuid])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let said = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_for_with(
        "the first file",
        60,
        || keys(m.1, "side-bucket", &prefix).contains(&format!("{prefix}outputs/one.txt")),
        said,
    );
    to_server.cut();
    std::fs::write(dir.join("outputs/two.txt"), "two\n").unwrap();
    wait_for("the sidecar to say files wait", 60, || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("wait to be sent"))
    });
    assert!(sidecar.try_wait().unwrap().is_none(), "it keeps going");
    to_server.restore();
    wait_for("the file written while the server was away", 60, || {
        keys(m.1, "side-bucket", &prefix).contains(&format!("{prefix}outputs/two.txt"))
    });
    // Told to stop with a file just written: its last pass sends it, and it exits 0.
    std::fs::write(dir.join("outputs/three.txt"), "three\n").unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &sidecar.id().to_string()])
        .status();
    let st = sidecar.wait().unwrap();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(st.success(), "{text}");
    assert!(text.contains("sending again"), "{text}");
    assert!(
        keys(m.1, "side-bucket", &prefix).contains(&format!("{prefix}outputs/three.txt")),
        "{text}"
    );
    assert_eq!(downloaded(&env, &uuid, "outputs/two.txt"), "two\n");
}
