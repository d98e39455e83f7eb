//! The CLI against a real server (`polyaxon server start`) on SQLite and on PostgreSQL:
//! config, login, tokens, and the project and run commands over HTTP.

use serde_json::{Value as J, json};

use crate::common::{Env, stderr, stdout};
use crate::server::{http_with, start_with, terminate};

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

fn flow(database_url: Option<&str>) {
    let server_env = Env::new();
    let mut extra = vec![];
    if let Some(u) = database_url {
        extra = vec!["--database-url", u];
    }
    // The server's stderr is dropped (closed) on purpose: it must keep serving.
    let (mut server, addr, _, _) = start_with(
        &server_env,
        &extra,
        &[("POLYAXON_ADMIN_PASSWORD", PASSWORD)],
    );
    let host = format!("http://{addr}");
    let env = Env::new();
    ok(&env, &["config", "set", "--host", &host]);

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
    let v: J = serde_json::from_str(&ok(&env, &["version", "-o", "json"])).unwrap();
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
    let (st, _) = crate::server::http(&addr, "GET", &format!("/ui/root/demo/runs/{uuid}"), None);
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

#[test]
fn against_a_server_on_sqlite() {
    flow(None);
}

#[test]
fn against_a_server_on_postgres() {
    let Ok(admin) = std::env::var("POLYAXON_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "POLYAXON_TEST_DATABASE_URL must be set in CI (scripts/test sets it)"
        );
        eprintln!("skipped: POLYAXON_TEST_DATABASE_URL is not set (scripts/test sets it)");
        return;
    };
    let db = format!("cli_{}", std::process::id());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let exec = |sql: String| {
        rt.block_on(polyaxon_server::store::Store::raw_pg_execute(&admin, &sql))
            .unwrap();
    };
    exec(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    exec(format!("CREATE DATABASE {db}"));
    let url = format!("{}/{db}", admin.rsplit_once('/').unwrap().0);
    let result = std::panic::catch_unwind(|| flow(Some(&url)));
    exec(format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"));
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}
