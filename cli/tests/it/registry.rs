//! Pushing a built image for the cluster: a real registry (Debian's `docker-registry`, with
//! htpasswd logins) on this machine, reached through the real Docker Engine. Refused without
//! credentials and with wrong ones (each with what to do), pushed with the Docker config
//! file's, layer by layer, by digest; pushed again, every layer is found already there.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use polyaxon_cli::registry::{self, Registry};
use serde_json::Value as J;

use polyaxon_tests::docker::{busybox, docker_available};

use crate::work::Work;

const USER: &str = "plx";
const PASSWORD: &str = "plx-push-secret";
/// `PASSWORD` as bcrypt (the only scheme the registry's htpasswd reads), made once for this test.
const HTPASSWD: &str = "plx:$2b$05$ZZ2PcqMuQjQAsmDb.BFFve5bXR6Tuag4wIeRae11TVqAEk47rOcQm\n";

fn registry_bin() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/docker-registry");
    if p.is_file() {
        return Some(p);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "docker-registry must be installed in CI (scripts/test installs it)"
    );
    eprintln!("skipped: no docker-registry (scripts/test installs Debian's package)");
    None
}

/// A registry serving on a free local port until dropped.
struct LocalRegistry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for LocalRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry(bin: &PathBuf) -> LocalRegistry {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(dir.path().join("htpasswd"), HTPASSWD).unwrap();
    let config = format!(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\nauth:\n  htpasswd:\n    realm: plx-test\n    path: {}\n",
        dir.path().join("data").display(),
        dir.path().join("htpasswd").display()
    );
    std::fs::write(dir.path().join("config.yml"), config).unwrap();
    let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(dir.path().join("config.yml"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let r = LocalRegistry {
        child,
        port,
        _dir: dir,
    };
    let end = Instant::now() + Duration::from_secs(20);
    while get(port, "/v2/", None).0 != 401 {
        assert!(
            Instant::now() < end,
            "the registry did not start: {}",
            std::fs::read_to_string(r._dir.path().join("registry.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    r
}

/// A plain HTTP GET: the status and the response's head and body.
fn get(port: u16, path: &str, basic: Option<(&str, &str)>) -> (u16, String) {
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let auth = basic
        .map(|(u, p)| {
            format!(
                "Authorization: Basic {}\r\n",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        })
        .unwrap_or_default();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Accept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).unwrap();
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, text)
}

/// Removes the images a test made.
struct RemoveImages(Vec<String>);

impl Drop for RemoveImages {
    fn drop(&mut self) {
        for i in &self.0 {
            let _ = Command::new("docker").args(["rmi", "-f", i]).output();
        }
    }
}

async fn push_lines(
    docker: &bollard::Docker,
    local: &str,
    repo: &str,
    tag: &str,
    auth: Option<&registry::Auth>,
) -> (anyhow::Result<String>, Vec<String>) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(4096);
    let socket = registry::engine_socket(std::env::var("DOCKER_HOST").ok().as_deref()).unwrap();
    let r = registry::push(docker, &socket, local, repo, tag, auth, &tx).await;
    drop(tx);
    let mut lines = vec![];
    while let Some(l) = rx.recv().await {
        lines.push(l.text);
    }
    (r, lines)
}

/// The registry's binary and a static busybox, with a Docker Engine running; `None` (the test
/// skipped, saying why) where one is missing outside CI.
fn prerequisites() -> Option<(PathBuf, PathBuf)> {
    let bin = registry_bin()?;
    if !docker_available() {
        return None;
    }
    let Some(bb) = busybox() else {
        assert!(std::env::var_os("CI").is_none(), "busybox-static in CI");
        eprintln!("skipped: no busybox");
        return None;
    };
    Some((bin, bb))
}

fn hint(e: &anyhow::Error) -> String {
    let u = e
        .downcast_ref::<polyaxon_cli::error::UserError>()
        .unwrap_or_else(|| panic!("not a user error: {e:#}"));
    format!("{} / {}", u.message, u.hint.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_images_are_pushed_with_the_docker_logins_layer_by_layer() {
    let Some((bin, bb)) = prerequisites() else {
        return;
    };
    let reg = start_registry(&bin);
    let host = format!("127.0.0.1:{}", reg.port);

    // Two layers: busybox and a file no earlier run pushed.
    let ctx = tempfile::tempdir().unwrap();
    std::fs::copy(&bb, ctx.path().join("busybox")).unwrap();
    let nonce = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
    std::fs::write(ctx.path().join("nonce.txt"), nonce).unwrap();
    let spec = polyaxon_cli::build::BuildSpec {
        dockerfile: "FROM scratch\nCOPY busybox /bin/busybox\nCOPY nonce.txt /nonce.txt\n".into(),
        context: ctx.path().to_path_buf(),
        name: "polyaxon/pushed".into(),
        no_cache: false,
    };
    let docker = polyaxon_cli::executor::docker::Docker::connect()
        .await
        .unwrap();
    let (tx, _rx) = tokio::sync::mpsc::channel(4096);
    let (local, _) = docker.build(&spec, &tx).await.unwrap();
    let target = Registry::parse(&format!("{host}/ml")).unwrap();
    let (repo, tag) = target.target(&local);
    assert_eq!(repo, format!("{host}/ml/pushed"));
    let _cleanup = RemoveImages(vec![local.clone(), format!("{repo}:{tag}")]);

    // No credentials: refused, with how to log in.
    let (r, _) = push_lines(&docker.api, &local, &repo, &tag, None).await;
    let e = r.unwrap_err();
    assert!(
        hint(&e).contains(&format!("docker login {host}")),
        "{}",
        hint(&e)
    );

    // Wrong ones from a Docker config file: refused, naming where they came from.
    let cfg = tempfile::tempdir().unwrap();
    let write_cfg = |pass: &str| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{pass}"));
        std::fs::write(
            cfg.path().join("config.json"),
            format!(r#"{{"auths": {{"{host}": {{"auth": "{b64}"}}}}}}"#),
        )
        .unwrap();
        registry::from_docker_config(&cfg.path().join("config.json"), &target.host)
            .unwrap()
            .unwrap()
    };
    let wrong = write_cfg("not-the-password");
    let (r, _) = push_lines(&docker.api, &local, &repo, &tag, Some(&wrong)).await;
    let e = r.unwrap_err();
    assert!(
        hint(&e).contains("refused the credentials from") && hint(&e).contains("config.json"),
        "{}",
        hint(&e)
    );

    // The right ones: every layer pushed, the image named by digest.
    let right = write_cfg(PASSWORD);
    let (r, lines) = push_lines(&docker.api, &local, &repo, &tag, Some(&right)).await;
    let image = r.unwrap_or_else(|e| panic!("{e:#}\n{}", lines.join("\n")));
    let digest = image
        .split_once('@')
        .map(|(_, d)| d.to_string())
        .unwrap_or_else(|| panic!("not by digest: {image}"));
    assert!(
        image.starts_with(&format!("{repo}:{tag}@sha256:")),
        "{image}"
    );
    let pushed: Vec<&String> = lines.iter().filter(|l| l.contains(": pushed")).collect();
    assert_eq!(pushed.len(), 2, "{}", lines.join("\n"));
    assert!(
        lines.last().unwrap().contains("2 layers: 2 pushed"),
        "{}",
        lines.join("\n")
    );
    // The registry has it, under that digest.
    let (code, head) = get(
        reg.port,
        &format!("/v2/ml/pushed/manifests/{tag}"),
        Some((USER, PASSWORD)),
    );
    assert_eq!(code, 200, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("docker-content-digest: {digest}")),
        "{head}"
    );

    // Again: nothing to send.
    let (r, lines) = push_lines(&docker.api, &local, &repo, &tag, Some(&right)).await;
    assert_eq!(r.unwrap(), image);
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with("already in the registry"))
            .count(),
        2,
        "{}",
        lines.join("\n")
    );
}

/// The hub's `kaniko` as an operation of its own, as upstream's docs write it: a DAG whose
/// `build` op builds the project's Dockerfile with the local Engine and pushes it through a
/// `registry` connection (its Docker config file as the secret), and whose `train` op runs
/// the image it output, on the Docker executor. Then `dockerizer` with `init.dockerfile` and no
/// registry: only tagged here. A connection that is not in the catalogue fails the build,
/// naming it.
#[test]
fn kaniko_and_dockerizer_operations_build_push_and_feed_the_next_operation() {
    let Some((bin, bb)) = prerequisites() else {
        return;
    };
    let reg = start_registry(&bin);
    let host = format!("127.0.0.1:{}", reg.port);
    let nonce = format!("{:?}-{}", std::time::SystemTime::now(), std::process::id());
    let dag = r#"
version: 1.1
kind: component
name: build-then-train
run:
  kind: dag
  operations:
    - name: build
      hubRef: kaniko
      params:
        destination:
          connection: team-registry
          value: "trainer:v1"
    - name: train
      dependencies: [build]
      params:
        image: {ref: ops.build, value: outputs.destination}
      component:
        inputs: [{name: image, type: image}]
        run:
          kind: job
          container:
            image: "{{ image }}"
            command: [/bin/busybox, cat, /msg.txt]
"#;
    let w = Work::new(dag);
    std::fs::copy(&bb, w.dir.join("busybox")).unwrap();
    std::fs::write(w.dir.join("msg.txt"), format!("message {nonce}\n")).unwrap();
    std::fs::write(
        w.dir.join("Dockerfile"),
        "FROM scratch\nCOPY busybox /bin/busybox\nCOPY msg.txt /msg.txt\n",
    )
    .unwrap();
    let repo = git2::Repository::open(&w.dir).unwrap();
    polyaxon_cli::snapshot::commit_all(&repo, "a Dockerfile").unwrap();
    let cfg = w.env.home.path().join("registry-config.json");
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        &cfg,
        format!(r#"{{"auths": {{"{host}": {{"auth": "{b64}"}}}}}}"#),
    )
    .unwrap();
    let home = w.env.home.path().join(".polyaxon");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        home.join("connections.yaml"),
        format!(
            "connections:\n  - name: team-registry\n    kind: registry\n    schema: {{url: \"{host}/ml\"}}\n    secret: {{file: {}}}\n",
            cfg.display()
        ),
    )
    .unwrap();
    let _cleanup = RemoveImages(vec![
        format!("{host}/ml/trainer:v1"),
        "plx-test/dockerized:v2".into(),
    ]);

    let uuid = w.start(&["--executor", "docker"]);
    let r = w.wait_status(&uuid, &["succeeded", "failed"], 180);
    let q = format!("pipeline: {uuid}");
    let ops = w.json(&["ops", "ls", "-q", &q, "-l", "100", "-o", "json"]);
    let op = |name: &str| -> J {
        ops.as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == name)
            .unwrap_or_else(|| panic!("no op {name}: {ops}"))
            .clone()
    };
    let build = op("build");
    let build_uuid = build["uuid"].as_str().unwrap();
    let build_logs = w.ok(&["logs", "--uid", build_uuid, "-nf"]);
    assert_eq!(
        r["status"],
        "succeeded",
        "{:?}\n{build_logs}",
        w.statuses(build_uuid)
    );
    // Stored with the hub's component inline: a server or agent elsewhere has no hub.
    let content = r["content"].as_str().unwrap();
    assert!(
        !content.contains("hubRef") && content.contains("build-and-push"),
        "{content}"
    );
    let image = build["outputs"]["destination"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        image.starts_with(&format!("{host}/ml/trainer:v1@sha256:")),
        "{image}"
    );
    assert!(build_logs.contains("pushed"), "{build_logs}");
    // The registry has it; the next op ran it.
    let (code, head) = get(
        reg.port,
        "/v2/ml/trainer/manifests/v1",
        Some((USER, PASSWORD)),
    );
    assert_eq!(code, 200, "{head}");
    let train = op("train");
    assert_eq!(train["inputs"]["image"], image.as_str(), "{train}");
    let logs = w.ok(&["logs", "--uid", train["uuid"].as_str().unwrap(), "-nf"]);
    assert!(logs.contains(&format!("message {nonce}")), "{logs}");

    // dockerizer, the Dockerfile from `init.dockerfile`, no registry: tagged here only.
    std::fs::write(
        w.dir.join("dockerize.yml"),
        r#"
version: 1.1
kind: operation
hubRef: dockerizer
params:
  destination: {value: "plx-test/dockerized:v2"}
  nocache: {value: true}
runPatch:
  init:
    - dockerfile:
        image: scratch
        copy: [busybox, [msg.txt, /srv/msg.txt]]
"#,
    )
    .unwrap();
    let uuid = w.start(&["-f", "dockerize.yml"]);
    let r = w.wait_status(&uuid, &["succeeded", "failed"], 120);
    let logs = w.ok(&["logs", "--uid", &uuid, "-nf"]);
    assert_eq!(r["status"], "succeeded", "{r}\n{logs}");
    assert_eq!(r["outputs"]["destination"], "plx-test/dockerized:v2", "{r}");
    assert!(logs.contains("not pushed"), "{logs}");
    let o = Command::new("docker")
        .args([
            "run",
            "--rm",
            "plx-test/dockerized:v2",
            "/code/busybox",
            "cat",
            "/srv/msg.txt",
        ])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stdout).contains(&nonce),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );

    // A connection the catalogue does not have: the build fails before building, naming it
    // and the registry connections there are.
    std::fs::write(
        w.dir.join("bad.yml"),
        "version: 1.1\nkind: operation\nhubRef: kaniko\nparams:\n  destination: {value: x, connection: nowhere}\n",
    )
    .unwrap();
    let uuid = w.start(&["-f", "bad.yml"]);
    let r = w.wait_status(&uuid, &["succeeded", "failed"], 60);
    assert_eq!(r["status"], "failed", "{r}");
    let why = w
        .statuses(&uuid)
        .into_iter()
        .map(|(_, m)| m)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        why.contains("`nowhere`") && why.contains("team-registry"),
        "{why}"
    );
    // A context outside the run's code and files (this machine's `/etc`): refused, nothing
    // built.
    std::fs::write(
        w.dir.join("outside.yml"),
        "version: 1.1\nkind: operation\nhubRef: dockerizer\nparams:\n  destination: {value: plx-test/never:1}\n  context: {value: /etc}\n",
    )
    .unwrap();
    let uuid = w.start(&["-f", "outside.yml"]);
    let r = w.wait_status(&uuid, &["succeeded", "failed"], 60);
    assert_eq!(r["status"], "failed", "{r}");
    let why: Vec<String> = w.statuses(&uuid).into_iter().map(|(_, m)| m).collect();
    assert!(
        why.iter()
            .any(|m| m.contains("outside the run's code and files")),
        "{why:?}"
    );
}
