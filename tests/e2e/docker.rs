//! `--executor docker` against a real Docker Engine: an image built `FROM scratch` with
//! busybox through `init.dockerfile`, a job run in it with its logs, a stop, a rebuild skipped
//! when nothing changed, and no container left behind.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value as J;

use polyaxon_tests::docker::{busybox, docker_available};
use polyaxon_tests::sealed::{Env, stderr, stdout};

const POLYAXONFILE: &str = r#"version: 1.1
kind: component
name: boxed
inputs:
  - {name: seconds, type: int, value: 0, isOptional: true}
run:
  kind: job
  init:
    - dockerfile:
        image: scratch
        copy: [[busybox, /bin/busybox]]
        run: ['["/bin/busybox", "--install", "-s", "/bin"]']
        workdir: /
  container:
    image: busybox
    command: [sh, -c]
    args: ["echo in a container as $(id -u); ls $POLYAXON_RUN_OUTPUTS_PATH/..; echo out > $POLYAXON_RUN_OUTPUTS_PATH/result.txt; sleep {{ seconds }}; echo bye"]
"#;

fn containers_of(uuid: &str) -> usize {
    let o = Command::new("docker")
        .args([
            "ps",
            "-a",
            "-q",
            "--filter",
            &format!("label=operation.polyaxon.com/uuid={uuid}"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout).lines().count()
}

/// Starts the job for a minute in the background; returns its run's uuid.
fn start_long_job(cmd: &dyn Fn(&[&str]) -> std::process::Output) -> String {
    let out = cmd(&[
        "run",
        "--executor",
        "docker",
        "-P",
        "seconds=60",
        "-o",
        "json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    serde_json::from_slice::<J>(&out.stdout).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string()
}

/// Waits up to a minute for the run to reach `status`; returns the run.
fn wait_for(cmd: &dyn Fn(&[&str]) -> std::process::Output, uuid: &str, status: &str) -> J {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let r: J =
            serde_json::from_slice(&cmd(&["ops", "get", "--uid", uuid, "-o", "json"]).stdout)
                .unwrap();
        if r["status"] == status {
            return r;
        }
        assert!(Instant::now() < end, "never {status}: {r}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Removes an image the test built (by tag: see `a_dag_in_containers`), when the test ends.
struct RemoveImage(String);

impl Drop for RemoveImage {
    fn drop(&mut self) {
        let _ = Command::new("docker").args(["rmi", "-f", &self.0]).output();
    }
}

#[test]
fn build_run_stop_and_reuse() {
    if !docker_available() {
        return;
    }
    let Some(bb) = busybox() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "busybox-static must be installed in CI"
        );
        eprintln!("skipped: no busybox (scripts/test installs busybox-static)");
        return;
    };
    let env = Env::new();
    let dir = env.home.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&bb, dir.join("busybox")).unwrap();
    std::fs::write(dir.join("polyaxonfile.yml"), POLYAXONFILE).unwrap();
    // A context no earlier test built (images persist between runs of the suite).
    let nonce = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    std::fs::write(dir.join("nonce.txt"), nonce).unwrap();
    let repo = git2::Repository::init(&dir).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
    let cmd = |args: &[&str]| {
        env.cmd_std()
            .current_dir(&dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .args(args)
            .output()
            .unwrap()
    };

    // Built from the generated Dockerfile, run in it, output streamed.
    let out = cmd(&["run", "--executor", "docker", "-l"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("Step 4/4 : RUN"),
        "the build's output: {text}"
    );
    assert!(text.contains("built the image `polyaxon/boxed:"), "{text}");
    assert!(
        text.contains("in a container as 0") || text.contains("in a container as "),
        "{text}"
    );
    assert!(text.contains("bye"));
    let tag = text
        .split("built the image `")
        .nth(1)
        .and_then(|t| t.split('`').next())
        .unwrap()
        .to_string();
    let _cleanup = RemoveImage(tag);
    let r: J = serde_json::from_slice(&cmd(&["ops", "get", "-o", "json"]).stdout).unwrap();
    let uuid = r["uuid"].as_str().unwrap().to_string();
    assert_eq!(r["status"], "succeeded");
    // What the job wrote under its outputs is in the run's directory here.
    let result = env
        .home
        .path()
        .join(".polyaxon/artifacts")
        .join(&uuid)
        .join("outputs/result.txt");
    assert_eq!(std::fs::read_to_string(result).unwrap(), "out\n");
    assert_eq!(containers_of(&uuid), 0, "the container is removed");

    // Nothing changed: the image is reused, not rebuilt.
    let out = cmd(&["run", "--executor", "docker", "-l"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("is up to date"), "{}", stdout(&out));
    assert!(!stdout(&out).contains("Step 1/4"), "{}", stdout(&out));

    // A long job, stopped from another command: stopped, its container gone.
    let uuid = start_long_job(&cmd);
    wait_for(&cmd, &uuid, "running");
    assert_eq!(containers_of(&uuid), 1);
    let out = cmd(&["ops", "stop", "-y", "--uid", &uuid]);
    assert!(out.status.success(), "{}", stderr(&out));
    wait_for(&cmd, &uuid, "stopped");
    assert_eq!(containers_of(&uuid), 0, "no container is left behind");

    // A job's container killed from outside (`docker kill`, as `kill -9` of its process):
    // the run fails and says so, and the container is gone.
    let uuid = start_long_job(&cmd);
    wait_for(&cmd, &uuid, "running");
    let ids = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            &format!("label=operation.polyaxon.com/uuid={uuid}"),
        ])
        .output()
        .unwrap();
    let id = String::from_utf8_lossy(&ids.stdout).trim().to_string();
    assert!(!id.is_empty(), "the job's container runs");
    let killed = Command::new("docker")
        .args(["kill", "--signal", "KILL", &id])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{}", stderr(&killed));
    let r = wait_for(&cmd, &uuid, "failed");
    let st = cmd(&["ops", "statuses", "--uid", &uuid, "-o", "json"]);
    let last = serde_json::from_slice::<J>(&st.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["reason"], "Killed", "{last} {r}");
    assert!(
        last["message"].as_str().unwrap().contains("SIGKILL"),
        "{last}"
    );
    assert_eq!(containers_of(&uuid), 0, "the killed container is removed");

    // A broken build says which step failed.
    std::fs::write(
        dir.join("polyaxonfile.yml"),
        POLYAXONFILE.replace(
            r#"run: ['["/bin/busybox", "--install", "-s", "/bin"]']"#,
            r#"run: ['["/bin/busybox", "false"]']"#,
        ),
    )
    .unwrap();
    let out = cmd(&["run", "--executor", "docker", "-l"]);
    assert_eq!(out.status.code(), Some(1));
    let st = cmd(&["ops", "statuses", "-o", "json"]);
    let last = serde_json::from_slice::<J>(&st.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["type"], "failed");
    assert!(
        last["message"].as_str().unwrap().contains("Step 4/4"),
        "{last}"
    );
}

/// The server's image (`scripts/server-image`, what `admin deploy` runs) is built FROM scratch
/// from this binary and serves.
#[test]
fn the_server_image_is_built_from_scratch_and_serves() {
    if !docker_available() {
        return;
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tag = format!("polyaxon/polyaxon-rs:test-{}", std::process::id());
    let _cleanup = RemoveImage(tag.clone());
    let out = Command::new(root.join("scripts/server-image"))
        .args([
            "--binary",
            polyaxon_tests::sealed::polyaxon_bin().to_str().unwrap(),
            "--tag",
            &tag,
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let name = format!("plx-server-image-{}", std::process::id());
    struct RemoveContainer(String);
    impl Drop for RemoveContainer {
        fn drop(&mut self) {
            let _ = Command::new("docker").args(["rm", "-f", &self.0]).output();
        }
    }
    let _c = RemoveContainer(name.clone());
    let run = Command::new("docker")
        .args(["run", "-d", "--name", &name, "--network", "host", &tag])
        .args([
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr(&run));
    let end = Instant::now() + Duration::from_secs(30);
    let answer = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            write!(s, "GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            let mut b = String::new();
            let _ = s.read_to_string(&mut b);
            if !b.is_empty() {
                break b;
            }
        }
        let logs = Command::new("docker")
            .args(["logs", &name])
            .output()
            .unwrap();
        assert!(
            Instant::now() < end,
            "the server never answered: {}{}",
            stdout(&logs),
            stderr(&logs)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    // It runs as the unprivileged user, not root.
    let user = Command::new("docker")
        .args(["inspect", "--format", "{{.Config.User}}", &tag])
        .output()
        .unwrap();
    assert_eq!(stdout(&user).trim(), "1000:1000");
}

/// A DAG whose operations run in containers: each operation's image built from its `init.dockerfile`,
/// two operations in containers at once, a value passed downstream from a job's
/// output, and no container left behind.
#[test]
fn a_dag_in_containers() {
    if !docker_available() {
        return;
    }
    let Some(bb) = busybox() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "busybox-static must be installed in CI"
        );
        eprintln!("skipped: no busybox (scripts/test installs busybox-static)");
        return;
    };
    let env = Env::new();
    let dir = env.home.path().join("work");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&bb, dir.join("busybox")).unwrap();
    std::fs::write(
        dir.join("polyaxonfile.yml"),
        r#"version: 1.1
kind: component
name: boxed-dag
run:
  kind: dag
  operations:
    - {name: first, dagRef: step, params: {x: {value: 1}}}
    - name: left
      dagRef: step
      params: {x: {ref: ops.first, value: outputs.y}, seconds: {value: 1}}
    - name: right
      dagRef: step
      params: {x: {ref: ops.first, value: outputs.y}, seconds: {value: 1}}
  components:
    - name: step
      inputs:
        - {name: x, type: int}
        - {name: seconds, type: int, value: 0, isOptional: true}
      outputs: [{name: y, type: int}]
      run:
        kind: job
        init:
          - dockerfile:
              image: scratch
              copy: [[busybox, /bin/busybox]]
              run: ['["/bin/busybox", "--install", "-s", "/bin"]']
              workdir: /
        container:
          image: busybox
          env: [{name: POLYAXON_STDOUT_METRICS, value: "true"}]
          command: [sh, -c]
          args: ["sleep {{ seconds }}; echo y=$(( {{ x }} * 10 ))"]
"#,
    )
    .unwrap();
    let nonce = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    std::fs::write(dir.join("nonce.txt"), nonce).unwrap();
    let repo = git2::Repository::init(&dir).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "initial").unwrap();
    let cmd = |args: &[&str]| {
        env.cmd_std()
            .current_dir(&dir)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .args(args)
            .output()
            .unwrap()
    };
    let out = cmd(&["run", "--executor", "docker", "-w"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let dag: J = serde_json::from_slice(&cmd(&["ops", "get", "-o", "json"]).stdout).unwrap();
    assert_eq!(dag["status"], "succeeded", "{dag}");
    let q = format!("pipeline: {}", dag["uuid"].as_str().unwrap());
    let ops: J =
        serde_json::from_slice(&cmd(&["ops", "ls", "-q", &q, "-o", "json"]).stdout).unwrap();
    let ops = ops.as_array().unwrap();
    assert_eq!(ops.len(), 3, "{ops:?}");
    let op = |name: &str| ops.iter().find(|o| o["name"] == name).unwrap().clone();
    for name in ["first", "left", "right"] {
        let o = op(name);
        assert_eq!(o["status"], "succeeded", "{o}");
        assert_eq!(o["meta_info"]["executor"]["kind"], "docker", "{o}");
        assert_eq!(containers_of(o["uuid"].as_str().unwrap()), 0, "{name}");
    }
    // Outputs recorded from metrics are numbers as metrics are; an `int` input takes them whole.
    assert_eq!(op("first")["outputs"]["y"].as_f64(), Some(10.0));
    assert_eq!(op("left")["inputs"]["x"], 10);
    assert_eq!(op("left")["outputs"]["y"].as_f64(), Some(100.0));
    assert_eq!(op("right")["outputs"]["y"].as_f64(), Some(100.0));
    // The two downstream operations overlapped in their containers.
    let span = |o: &J| {
        (
            o["started_at"].as_str().unwrap().to_string(),
            o["finished_at"].as_str().unwrap().to_string(),
        )
    };
    let (l, r) = (span(&op("left")), span(&op("right")));
    assert!(l.0 < r.1 && r.0 < l.1, "left {l:?}, right {r:?}");
    // Each operation's image, by its tags, removed when the test ends. By tag, not id: the
    // images of tests running meanwhile can be the same image (the same layers, another tag),
    // and `rmi -f ID` would take their tags too.
    let _cleanup: Vec<RemoveImage> = ["first", "left", "right"]
        .iter()
        .flat_map(|name| {
            let o = Command::new("docker")
                .args([
                    "images",
                    "--format",
                    "{{.Repository}}:{{.Tag}}",
                    &format!("polyaxon/{name}"),
                ])
                .output()
                .unwrap();
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|id| RemoveImage(id.to_string()))
                .collect::<Vec<_>>()
        })
        .collect();
}
