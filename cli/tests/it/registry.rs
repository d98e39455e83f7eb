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

use polyaxon_tests::docker::{busybox, docker_available};

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

fn hint(e: &anyhow::Error) -> String {
    let u = e
        .downcast_ref::<polyaxon_cli::error::UserError>()
        .unwrap_or_else(|| panic!("not a user error: {e:#}"));
    format!("{} / {}", u.message, u.hint.clone().unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn built_images_are_pushed_with_the_docker_logins_layer_by_layer() {
    let Some(bin) = registry_bin() else { return };
    if !docker_available() {
        return;
    }
    let Some(bb) = busybox() else {
        assert!(std::env::var_os("CI").is_none(), "busybox-static in CI");
        eprintln!("skipped: no busybox");
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
