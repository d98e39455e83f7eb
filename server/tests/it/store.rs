//! Opening stores: errors that say what is wrong.

use polyaxon_server::store::{OpenError, Store};

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("polyaxon.db").display()
    );
    let store = Store::open(&url).await.unwrap();
    store.close().await;
    // What a later version's migration leaves behind.
    Store::raw_execute(
        &url,
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99991231000000, 'from the future', 1, X'00', 1)",
    )
    .await
    .unwrap();
    match Store::open(&url).await {
        Err(e @ OpenError::SchemaNewer(99991231000000)) => {
            let msg = e.to_string();
            assert!(msg.contains("newer than this server"), "{msg}");
            assert!(msg.contains("upgrade polyaxon"), "{msg}");
        }
        Err(other) => panic!("wrong error: {other}"),
        Ok(_) => panic!("a newer schema was accepted"),
    }
}

#[tokio::test]
async fn unreachable_databases_fail_at_once_without_their_password() {
    let Err(err) = Store::open("postgres://someone:hunter2secret@127.0.0.1:1/polyaxon").await
    else {
        panic!("nothing listens on port 1")
    };
    let msg = err.to_string();
    assert!(msg.contains("cannot connect to the database"), "{msg}");
    assert!(msg.contains("127.0.0.1:1"), "{msg}");
    assert!(!msg.contains("hunter2secret"), "{msg}");
    let Err(err) = Store::open("mysql://x@y/z").await else {
        panic!("mysql is not a supported database")
    };
    assert!(err.to_string().contains("mysql://x@y/z"), "{err}");
}

/// Processes opening a fresh embedded store at once (`polyaxon run` and a `polyaxon ops get`
/// started beside it) all get it: the schema is created once, the open-mode user once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fresh_store_opened_at_once_by_many() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("polyaxon.db").display()
    );
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let url = url.clone();
        let artifacts = dir.path().join("artifacts");
        tasks.push(tokio::spawn(async move {
            let store = Store::open(&url).await.map_err(|e| e.to_string())?;
            let config = polyaxon_server::Config::new(
                &artifacts,
                polyaxon_server::AuthMode::Open {
                    user: "default".into(),
                },
            );
            polyaxon_server::App::start(store, config, None)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}
