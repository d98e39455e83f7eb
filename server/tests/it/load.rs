//! A bounded mixed load (200 clients listing, reading and ingesting; 10 s, or
//! `POLYAXON_LOAD_SECONDS`) against the server on each store: no request fails. Its
//! latencies are printed, not asserted (a debug build on a shared machine; the figures that
//! count come from `bench/load.py` against the release server).

#[path = "../support/mixed_load.rs"]
mod mixed_load;

crate::both!(two_hundred_clients_at_once, |s| {
    let seconds: f64 = std::env::var("POLYAXON_LOAD_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10.0);
    s.project("load").await;
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(256)
        .build()
        .unwrap();
    let f = mixed_load::run(
        &client,
        &s.base,
        &s.root_token,
        "root",
        "load",
        200,
        seconds,
    )
    .await;
    eprintln!("mixed load: {}", f.json());
    assert!(f.requests > 200, "{}", f.json());
    assert_eq!(f.errors, 0, "{}", f.json());
});
