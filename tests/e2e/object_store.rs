//! A server whose artifacts store is S3 (moto's server from the test virtualenv): `polyaxon
//! run -u` against it, the code archive and the job's outputs arriving in the bucket (and not
//! kept on the server's disk), read back through the API; a bucket that does not exist stops
//! the server at start, naming the store.

use std::process::{Child, Command, Stdio};
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
    let got = env.home.path().join("got");
    ok(
        &env,
        &[
            "ops",
            "artifacts",
            "-p",
            "root/demo",
            "--uid",
            uuid,
            "-f",
            "outputs/model/w.txt",
            "--path",
            got.to_str().unwrap(),
        ],
    );
    assert_eq!(
        std::fs::read_to_string(got.join("outputs/model/w.txt")).unwrap(),
        "weights\n"
    );
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
    // Logs stay with the server: they are read as before.
    let logs = ok(
        &env,
        &[
            "ops",
            "logs",
            "-p",
            "root/demo",
            "--uid",
            uuid,
            "--hide-time",
        ],
    );
    assert!(logs.contains("training"), "{logs}");
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
