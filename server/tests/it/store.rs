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
    // What a later version's migration leaves behind.
    store
        .execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99991231000000, 'from the future', 1, X'00', 1)",
            vec![],
        )
        .await
        .unwrap();
    store.close().await;
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
