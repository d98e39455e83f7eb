//! Faults: the server killed outright (SIGKILL), again and again, while writers stream metric
//! batches with retries; every point sent is stored exactly once.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value as J, json};

use polyaxon_tests::sealed::Env;
use polyaxon_tests::server::{http, start};

use super::remote::with_database;

/// One request that may fail (the server is being killed): the status and body, or why not.
fn try_http(addr: &str, method: &str, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    let status = out
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("no status line in {out:?}")))?;
    Ok((
        status,
        out.split_once("\r\n\r\n")
            .map(|x| x.1.to_string())
            .unwrap_or_default(),
    ))
}

const WRITERS: usize = 4;
const BATCHES: usize = 60;
const POINTS: usize = 20;
const KILLS: usize = 5;

fn killed_while_writing(database_url: Option<&str>) {
    let env = Env::new();
    let mut args = vec!["--open"];
    if let Some(u) = database_url {
        args.extend(["--database-url", u]);
    }
    let (server, addr, _, _rx) = start(&env, &args);
    let mut server = Some(server);
    let (st, body) = http(
        &addr,
        "POST",
        "/api/v1/default/projects/create",
        Some(r#"{"name": "faults"}"#),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = http(
        &addr,
        "POST",
        "/api/v1/default/faults/runs",
        Some(r#"{"name": "killed"}"#),
    );
    assert_eq!(st, 200, "{body}");
    let uuid = serde_json::from_str::<J>(&body).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    let metrics = format!("/streams/v1/polyaxon/default/faults/runs/{uuid}/metrics");
    let current = Arc::new(Mutex::new(addr));
    let done = Arc::new(Mutex::new(0usize));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (current, metrics, done) = (current.clone(), metrics.clone(), done.clone());
            std::thread::spawn(move || {
                let mut retries = 0;
                for b in 0..BATCHES {
                    let first = (w * BATCHES + b) * POINTS;
                    let steps: Vec<usize> = (first..first + POINTS).collect();
                    let values: Vec<f64> = steps.iter().map(|s| *s as f64).collect();
                    let body = json!({"id": format!("w{w}-b{b}"), "metrics": [{"name": "loss", "step": steps, "value": values}]}).to_string();
                    let started = Instant::now();
                    loop {
                        let addr = current.lock().unwrap().clone();
                        match try_http(&addr, "POST", &metrics, &body) {
                            Ok((s, _)) if (200..300).contains(&s) => break,
                            Ok((s, b)) if s < 500 => panic!("batch {w}/{b}: {s} {b}"),
                            _ => {
                                retries += 1;
                                assert!(started.elapsed() < Duration::from_secs(60), "batch {w}/{b} never landed");
                                std::thread::sleep(Duration::from_millis(50));
                            }
                        }
                    }
                    std::thread::sleep(Duration::from_millis(10));
                }
                *done.lock().unwrap() += 1;
                retries
            })
        })
        .collect();
    // Killed outright while they write, and started again on the same store.
    let mut kills = 0;
    while kills < KILLS && *done.lock().unwrap() < WRITERS {
        std::thread::sleep(Duration::from_millis(400));
        let mut s = server.take().unwrap();
        s.0.kill().unwrap();
        s.0.wait().unwrap();
        kills += 1;
        let (next, addr, _, _) = start(&env, &args);
        *current.lock().unwrap() = addr;
        server = Some(next);
    }
    let retries: usize = writers.into_iter().map(|w| w.join().unwrap()).sum();
    let addr = current.lock().unwrap().clone();
    let (st, body) = http(
        &addr,
        "GET",
        &format!("/streams/v1/polyaxon/default/faults/runs/{uuid}/events/metric?names=loss"),
        None,
    );
    assert_eq!(st, 200, "{body}");
    let r: J = serde_json::from_str(&body).unwrap();
    let mut steps: Vec<i64> = r["data"][0]["data"]["step"]
        .as_array()
        .unwrap_or_else(|| panic!("no steps in {r}"))
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    steps.sort();
    let sent = WRITERS * BATCHES * POINTS;
    let before = steps.len();
    steps.dedup();
    assert_eq!(before, steps.len(), "points stored twice");
    assert_eq!(steps.len(), sent, "points lost");
    assert_eq!(steps, (0..sent as i64).collect::<Vec<_>>());
    eprintln!(
        "faults: {kills} kills of the server, {sent} points sent by {WRITERS} writers with {retries} retries, {} stored",
        steps.len()
    );
    assert!(
        kills >= 2,
        "the writers finished before the server was killed twice"
    );
}

#[test]
fn a_killed_server_loses_and_doubles_no_point_on_sqlite() {
    killed_while_writing(None);
}

#[test]
fn a_killed_server_loses_and_doubles_no_point_on_postgres() {
    with_database("faults", killed_while_writing);
}
