//! Schedules end to end on the process executor: interval and cron ticks, missed ticks by each
//! `catchUp`, the concurrency policies, a stop.

use serde_json::Value as J;

use crate::common::{stderr, stdout};
use crate::work::{Work, secs};

/// A scheduled operation echoing its tick after `sleep` seconds.
fn scheduled(schedule: &str, sleep: f64) -> String {
    format!(
        r#"version: 1.1
kind: operation
name: tick
schedule: {schedule}
component:
  inputs: [{{name: at, type: str, value: "{{{{ globals.schedule_at }}}}", isOptional: true}}]
  run: {{kind: job, container: {{image: busybox, command: [sh, -c, "sleep {sleep}; echo at {{{{ globals.schedule_at }}}}"]}}}}
"#
    )
}

/// An RFC 3339 time `secs` from now (whole seconds).
fn at(secs: i64) -> String {
    let t = jiff::Timestamp::now()
        .checked_add(jiff::SignedDuration::from_secs(secs))
        .unwrap();
    jiff::Timestamp::from_second(t.as_second())
        .unwrap()
        .to_string()
}

/// The schedule's runs, oldest tick first.
fn runs_of(w: &Work, parent: &str) -> Vec<J> {
    let q = format!("pipeline: {parent}");
    let mut runs = w
        .json(&["ops", "ls", "-q", &q, "-l", "100", "-o", "json"])
        .as_array()
        .unwrap()
        .clone();
    runs.sort_by_key(|r| {
        r["meta_info"]["schedule_at"]
            .as_str()
            .unwrap_or("")
            .to_string()
    });
    runs
}

fn tick_of(r: &J) -> f64 {
    secs(&r["meta_info"]["schedule_at"])
}

fn run_to_end(w: &Work) -> String {
    let out = w.out(&["run", "-w"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let parent = w.json(&["ops", "get", "-o", "json"]);
    assert_eq!(parent["kind"], "schedule");
    assert_eq!(parent["status"], "succeeded", "{parent}");
    parent["uuid"].as_str().unwrap().to_string()
}

#[test]
fn an_interval_fires_each_run_at_its_tick() {
    let w = Work::new(&scheduled(
        &format!(
            "{{kind: interval, frequency: 1, startAt: \"{}\", maxRuns: 3}}",
            at(2)
        ),
        0.0,
    ));
    let parent = run_to_end(&w);
    let runs = runs_of(&w, &parent);
    assert_eq!(runs.len(), 3, "{runs:?}");
    for (k, r) in runs.iter().enumerate() {
        assert_eq!(r["status"], "succeeded");
        let late = secs(&r["started_at"]) - tick_of(r);
        assert!(
            (0.0..1.0).contains(&late),
            "run {k} started {late} s after its tick"
        );
        // The job saw its own tick.
        assert_eq!(r["inputs"]["at"], r["meta_info"]["schedule_at"]);
        if k > 0 {
            assert_eq!(tick_of(r) - tick_of(&runs[k - 1]), 1.0);
        }
    }
    let logs = w.ok(&[
        "ops",
        "logs",
        "--uid",
        runs[2]["uuid"].as_str().unwrap(),
        "--hide-time",
    ]);
    assert!(
        logs.contains(&format!(
            "at {}",
            runs[2]["meta_info"]["schedule_at"].as_str().unwrap()
        )),
        "{logs}"
    );
}

#[test]
fn missed_ticks_by_each_catch_up_policy() {
    // Ticks every second from 3.5 s ago: three were missed when the schedule starts.
    let past = |policy: &str| {
        let start = jiff::Timestamp::now()
            .checked_sub(jiff::SignedDuration::from_millis(3500))
            .unwrap();
        scheduled(
            &format!(
                "{{kind: interval, frequency: 1, startAt: \"{start}\", maxRuns: 3, catchUp: {policy}}}"
            ),
            0.0,
        )
    };
    // all: each missed tick, back to back.
    let w = Work::new(&past("all"));
    let started = secs(&J::String(jiff::Timestamp::now().to_string()));
    let runs = runs_of(&w, &run_to_end(&w));
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter().all(|r| tick_of(r) < started),
        "every tick was one missed: {runs:?}"
    );
    // latest: the last missed one at once, then the ticks as they come.
    let w = Work::new(&past("latest"));
    let started = secs(&J::String(jiff::Timestamp::now().to_string()));
    let runs = runs_of(&w, &run_to_end(&w));
    assert_eq!(runs.len(), 3);
    assert!(
        tick_of(&runs[0]) < started && tick_of(&runs[0]) > started - 1.5,
        "{runs:?}"
    );
    assert!(tick_of(&runs[1]) > started, "{runs:?}");
    // none: only the ticks ahead.
    let w = Work::new(&past("none"));
    let started = secs(&J::String(jiff::Timestamp::now().to_string()));
    let runs = runs_of(&w, &run_to_end(&w));
    assert_eq!(runs.len(), 3);
    assert!(runs.iter().all(|r| tick_of(r) > started), "{runs:?}");
}

#[test]
fn a_cron_schedule_ticks_on_whole_minutes() {
    // From three minutes ago, every minute, catching up on each: the three past minutes.
    let now = jiff::Timestamp::now().as_second();
    let start = jiff::Timestamp::from_second(now - now % 60 - 180).unwrap();
    let w = Work::new(&scheduled(
        &format!(
            "{{kind: cron, cron: \"* * * * *\", startAt: \"{start}\", maxRuns: 3, catchUp: all}}"
        ),
        0.0,
    ));
    let runs = runs_of(&w, &run_to_end(&w));
    assert_eq!(runs.len(), 3);
    for (k, r) in runs.iter().enumerate() {
        let t = tick_of(r) as i64;
        assert_eq!(t % 60, 0, "a whole minute: {r}");
        assert_eq!(t, start.as_second() + 60 * k as i64);
    }
}

#[test]
fn depends_on_past_waits_and_replace_stops_the_previous_run() {
    // forbid (dependsOnPast): runs never overlap.
    let w = Work::new(&scheduled(
        &format!(
            "{{kind: interval, frequency: 1, startAt: \"{}\", maxRuns: 2, dependsOnPast: true}}",
            at(1)
        ),
        1.8,
    ));
    let runs = runs_of(&w, &run_to_end(&w));
    assert_eq!(runs.len(), 2);
    assert!(
        secs(&runs[1]["started_at"]) >= secs(&runs[0]["finished_at"]),
        "the second waited for the first: {runs:?}"
    );
    // replace: the running one is stopped for the next.
    let w = Work::new(&scheduled(
        &format!(
            "{{kind: interval, frequency: 1, startAt: \"{}\", maxRuns: 2, concurrencyPolicy: replace}}",
            at(1)
        ),
        30.0,
    ));
    let uuid = w.start(&[]);
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let runs = loop {
        let runs = runs_of(&w, &uuid);
        if runs.len() == 2 && runs[0]["status"] == "stopped" && runs[1]["status"] == "running" {
            break runs;
        }
        assert!(std::time::Instant::now() < end, "{runs:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    };
    assert!(secs(&runs[0]["finished_at"]) <= secs(&runs[1]["started_at"]) + 0.5);
    // A stop ends the schedule and what it runs.
    w.ok(&["ops", "stop", "--uid", &uuid, "--yes"]);
    let parent = w.wait_status(&uuid, &["stopped"], 30);
    assert_eq!(parent["status"], "stopped");
    assert!(runs_of(&w, &uuid).iter().all(|r| r["status"] == "stopped"));
}
