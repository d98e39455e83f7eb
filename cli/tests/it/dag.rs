//! DAG runs end to end on the process executor: values passed downstream, triggers, skips,
//! concurrency, searches and DAGs as operations, joins, events, stops and restarts.

use std::collections::BTreeMap;

use serde_json::Value as J;

use crate::common::{stderr, stdout, test_python};
use crate::work::{Work, secs};

/// A DAG polyaxonfile: its operations (YAML, indented for `operations:`) over the component
/// `step`, which echoes `y = x + 1` as a metric (so an output) after `sleep` seconds, and fails
/// when `fail` is true.
fn dag(extra: &str, operations: &str) -> String {
    format!(
        r#"version: 1.1
kind: component
name: pipeline
inputs: [{{name: base, type: float, value: 1.5, isOptional: true}}]
run:
  kind: dag
{extra}  operations:
{operations}
  components:
    - name: step
      tags: [dag-step]
      inputs:
        - {{name: x, type: float, value: 0, isOptional: true}}
        - {{name: sleep, type: float, value: 0, isOptional: true}}
        - {{name: fail, type: bool, value: false, isOptional: true}}
      outputs: [{{name: y, type: float}}]
      run:
        kind: job
        container:
          image: busybox
          env: [{{name: POLYAXON_STDOUT_METRICS, value: "true"}}]
          command: [sh, -c, "sleep {{{{ sleep }}}}; if [ {{{{ fail }}}} = True ]; then exit 3; fi; echo y=$(echo '{{{{ x }}}} + 1' | bc)"]
"#
    )
}

/// The DAG's operations by name, from `ops ls`.
fn ops_of(w: &Work, dag: &str) -> BTreeMap<String, J> {
    let q = format!("pipeline: {dag}");
    let list = w.json(&["ops", "ls", "-q", &q, "-l", "100", "-o", "json"]);
    list.as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap().to_string(), r.clone()))
        .collect()
}

fn last_reason(w: &Work, uuid: &str) -> (String, String) {
    let r = w.run_json(uuid);
    let last = r["status_conditions"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    (
        last["reason"].as_str().unwrap_or("").to_string(),
        last["message"].as_str().unwrap_or("").to_string(),
    )
}

/// The run of operation `name` of a DAG, once the DAG created it.
fn op_uuid(w: &Work, dag: &str, name: &str) -> String {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if let Some(o) = ops_of(w, dag).get(name) {
            return o["uuid"].as_str().unwrap().to_string();
        }
        assert!(std::time::Instant::now() < end, "no operation `{name}`");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// Runs the DAG to its end with `-w`; returns its uuid and the output.
fn run_dag(w: &Work) -> (String, std::process::Output) {
    let out = w.out(&["run", "-w"]);
    let uuid = w.json(&["ops", "get", "-o", "json"])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    (uuid, out)
}

#[test]
fn values_flow_down_a_fan_out_and_fan_in() {
    let w = Work::new(&dag(
        "",
        r#"    - name: prepare
      dagRef: step
      params: {x: {ref: dag, value: inputs.base}}
    - name: left
      dagRef: step
      params: {x: {ref: ops.prepare, value: outputs.y}}
    - name: right
      dagRef: step
      dependencies: [prepare]
      params: {x: {value: "{{ base }}"}, sleep: {value: 0.3}}
    - name: join
      dagRef: step
      dependencies: [left, right]
      params: {x: {ref: ops.left, value: "{{ outputs.y }}"}}"#,
    ));
    let (uuid, out) = run_dag(&w);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let view = stdout(&out);
    assert!(
        view.contains("OP") && view.contains("prepare") && view.contains("join"),
        "{view}"
    );
    let dag = w.run_json(&uuid);
    assert_eq!(dag["status"], "succeeded", "{dag}");
    assert_eq!(dag["kind"], "dag");
    let ops = ops_of(&w, &uuid);
    assert_eq!(ops.len(), 4);
    let x = |n: &str| ops[n]["inputs"]["x"].as_f64().unwrap();
    let y = |n: &str| ops[n]["outputs"]["y"].as_f64().unwrap();
    assert_eq!((x("prepare"), y("prepare")), (1.5, 2.5));
    assert_eq!((x("left"), y("left")), (2.5, 3.5), "an upstream's output");
    assert_eq!(x("right"), 1.5, "a template of the DAG's input");
    assert_eq!((x("join"), y("join")), (3.5, 4.5));
    for op in ops.values() {
        assert_eq!(op["status"], "succeeded");
        assert_eq!(op["pipeline"]["uuid"].as_str(), Some(uuid.as_str()));
    }
    // Each starts after what it waits for ended.
    let t = |n: &str, f: &str| secs(&ops[n][f]);
    assert!(t("left", "started_at") >= t("prepare", "finished_at"));
    assert!(t("join", "started_at") >= t("right", "finished_at"));
    // `ops get` of the DAG lists its operations and what each waits for.
    let shown = w.ok(&["ops", "get", "--uid", &uuid]);
    assert!(shown.contains("AFTER"), "{shown}");
    assert!(shown.contains("left, right"), "{shown}");
}

#[test]
fn triggers_decide_after_a_failure() {
    let w = Work::new(&dag(
        "",
        r#"    - name: bad
      dagRef: step
      params: {fail: {value: true}}
    - name: slow
      dagRef: step
      params: {sleep: {value: 0.8}}
    - name: needs-bad
      dagRef: step
      dependencies: [bad]
    - name: after-all
      dagRef: step
      dependencies: [bad]
      trigger: all_done
    - name: on-failure
      dagRef: step
      dependencies: [bad]
      trigger: all_failed
    - name: any-success
      dagRef: step
      dependencies: [bad, slow]
      trigger: one_succeeded"#,
    ));
    let (uuid, out) = run_dag(&w);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let dag = w.run_json(&uuid);
    assert_eq!(dag["status"], "failed", "a failed operation fails the DAG");
    let ops = ops_of(&w, &uuid);
    let st = |n: &str| ops[n]["status"].as_str().unwrap().to_string();
    assert_eq!(st("bad"), "failed");
    assert_eq!(st("needs-bad"), "upstream_failed");
    let (reason, msg) = last_reason(&w, ops["needs-bad"]["uuid"].as_str().unwrap());
    assert_eq!(reason, "UpstreamFailed");
    assert!(
        msg.contains("all_succeeded") && msg.contains("`bad` failed"),
        "{msg}"
    );
    assert_eq!(st("after-all"), "succeeded");
    assert_eq!(st("on-failure"), "succeeded");
    // `one_succeeded` waits for the upstream that succeeds (upstream decided at the first end).
    assert_eq!(st("any-success"), "succeeded");
    assert!(secs(&ops["any-success"]["started_at"]) >= secs(&ops["slow"]["finished_at"]));
}

#[test]
fn conditions_skip_and_skips_follow_downstream() {
    let w = Work::new(&dag(
        "",
        r#"    - name: never
      dagRef: step
      conditions: "{{ base > 100 }}"
    - name: skips-too
      dagRef: step
      dependencies: [never]
      skipOnUpstreamSkip: true
    - name: waits
      dagRef: step
      dependencies: [never]
    - name: free
      dagRef: step"#,
    ));
    let (uuid, out) = run_dag(&w);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let ops = ops_of(&w, &uuid);
    let st = |n: &str| ops[n]["status"].as_str().unwrap().to_string();
    assert_eq!(st("never"), "skipped");
    assert_eq!(
        last_reason(&w, ops["never"]["uuid"].as_str().unwrap()).0,
        "ConditionsFalse"
    );
    assert_eq!(st("skips-too"), "skipped");
    assert_eq!(
        last_reason(&w, ops["skips-too"]["uuid"].as_str().unwrap()).0,
        "UpstreamSkipped"
    );
    // A skipped upstream is no success.
    assert_eq!(st("waits"), "upstream_failed");
    assert_eq!(st("free"), "succeeded");
    assert_eq!(w.run_json(&uuid)["status"], "succeeded");
}

#[test]
fn concurrency_bounds_the_operations_at_once() {
    let ops: String = (0..4)
        .map(|i| {
            format!(
                "    - name: op{i}\n      dagRef: step\n      params: {{sleep: {{value: 0.6}}}}\n"
            )
        })
        .collect();
    let w = Work::new(&dag("  concurrency: 2\n", ops.trim_end()));
    let (uuid, out) = run_dag(&w);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let spans: Vec<(f64, f64)> = ops_of(&w, &uuid)
        .values()
        .map(|o| (secs(&o["started_at"]), secs(&o["finished_at"])))
        .collect();
    assert_eq!(spans.len(), 4);
    let at_once = |s: f64| spans.iter().filter(|(a, b)| *a <= s && s < *b).count();
    let most = spans.iter().map(|(s, _)| at_once(*s)).max().unwrap();
    assert_eq!(most, 2, "never more than 2, and 2 used: {spans:?}");
}

#[test]
fn a_nested_dag_runs_within_its_roots_budget() {
    // The root allows 2 jobs at once; the nested DAG alone would run 3, its sibling 2 more.
    let w = Work::new(&dag(
        "  concurrency: 2\n",
        r#"    - name: inner
      component:
        name: inner
        run:
          kind: dag
          operations:
            - {name: a, dagRef: leaf}
            - {name: b, dagRef: leaf}
            - {name: c, dagRef: leaf}
          components:
            - name: leaf
              run: {kind: job, container: {image: busybox, command: [sh, -c, "sleep 0.6"]}}
    - {name: side1, dagRef: step, params: {sleep: {value: 0.6}}}
    - {name: side2, dagRef: step, params: {sleep: {value: 0.6}}}"#,
    ));
    let (uuid, out) = run_dag(&w);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let ops = ops_of(&w, &uuid);
    let inner = ops_of(&w, ops["inner"]["uuid"].as_str().unwrap());
    assert_eq!(inner.len(), 3);
    let jobs: Vec<(f64, f64)> = inner
        .values()
        .chain([&ops["side1"], &ops["side2"]])
        .map(|o| {
            assert_eq!(o["status"], "succeeded", "{o}");
            (secs(&o["started_at"]), secs(&o["finished_at"]))
        })
        .collect();
    let at_once = |s: f64| jobs.iter().filter(|(a, b)| *a <= s && s < *b).count();
    let most = jobs.iter().map(|(s, _)| at_once(*s)).max().unwrap();
    assert_eq!(
        most, 2,
        "never more than the root's 2 jobs, and 2 used: {jobs:?}"
    );
}

#[test]
fn searches_and_dags_are_operations_too() {
    let w = Work::new(&dag(
        "",
        r#"    - name: sweep
      dagRef: step
      matrix: {kind: grid, concurrency: 2, params: {x: {kind: choice, value: [1, 2, 3]}}}
    - name: inner
      dependencies: [sweep]
      component:
        name: inner
        run:
          kind: dag
          operations:
            - {name: a, dagRef: leaf}
            - {name: b, dagRef: leaf, dependencies: [a]}
          components:
            - name: leaf
              run: {kind: job, container: {image: busybox, command: [sh, -c, "echo leaf"]}}
    - name: reduce
      dependencies: [sweep]
      joins:
        - query: "tags: dag-step, kind: job, status: succeeded"
          params: {ys: {value: outputs.y}}
      component:
        name: reduce
        inputs: [{name: ys, type: float, isList: true}]
        run: {kind: job, container: {image: busybox, command: [sh, -c, "echo '{{ ys }}'"]}}"#,
    ));
    let (uuid, out) = run_dag(&w);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let ops = ops_of(&w, &uuid);
    for n in ["sweep", "inner", "reduce"] {
        assert_eq!(ops[n]["status"], "succeeded", "{n}: {:?}", ops[n]);
    }
    // The search's trials are its own children; the nested DAG's operations its own.
    let sweep = ops["sweep"]["uuid"].as_str().unwrap();
    let trials = ops_of(&w, sweep);
    assert_eq!(trials.len(), 3, "{trials:?}");
    let inner = ops_of(&w, ops["inner"]["uuid"].as_str().unwrap());
    assert_eq!(inner.len(), 2);
    assert!(inner.values().all(|o| o["status"] == "succeeded"));
    // The join collected the trials' outputs.
    let mut ys: Vec<f64> = ops["reduce"]["inputs"]["ys"]
        .as_array()
        .unwrap_or_else(|| panic!("{:?}", ops["reduce"]))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect();
    ys.sort_by(f64::total_cmp);
    assert_eq!(ys, [2.0, 3.0, 4.0]);
}

#[test]
fn an_event_starts_an_operation_beside_its_upstream() {
    let w = Work::new(&dag(
        "",
        r#"    - name: train
      dagRef: step
      params: {sleep: {value: 1.5}}
    - name: board
      dagRef: step
      events: [{kinds: [run_status_running], ref: ops.train}]"#,
    ));
    let (uuid, out) = run_dag(&w);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let ops = ops_of(&w, &uuid);
    assert_eq!(ops["board"]["status"], "succeeded");
    assert!(
        secs(&ops["board"]["started_at"]) < secs(&ops["train"]["finished_at"]),
        "the event, not the end, started it: {ops:?}"
    );
}

#[test]
fn an_output_that_does_not_fit_the_downstream_input_fails_it_at_compile() {
    let w = Work::new(&dag(
        "",
        // An output of no declared type passes `check`; its value decides when it arrives.
        r#"    - name: first
      component:
        name: loose
        outputs: [{name: y}]
        run:
          kind: job
          container:
            image: busybox
            env: [{name: POLYAXON_STDOUT_METRICS, value: "true"}]
            command: [sh, -c, "echo y=2.5"]
    - name: second
      dependencies: [first]
      params: {n: {ref: ops.first, value: outputs.y}}
      component:
        name: counts
        inputs: [{name: n, type: int}]
        run: {kind: job, container: {image: busybox, command: [sh, -c, "echo {{ n }}"]}}"#,
    ));
    let (uuid, out) = run_dag(&w);
    assert_eq!(out.status.code(), Some(1));
    let ops = ops_of(&w, &uuid);
    assert_eq!(ops["first"]["status"], "succeeded");
    assert_eq!(ops["second"]["status"], "failed");
    let (reason, msg) = last_reason(&w, ops["second"]["uuid"].as_str().unwrap());
    assert_eq!(reason, "CompilationFailed", "{msg}");
    assert!(msg.contains("2.5") && msg.contains("int"), "{msg}");
}

#[test]
fn a_missing_upstream_output_fails_the_operation_by_name() {
    let w = Work::new(&dag(
        "",
        r#"    - name: first
      component:
        name: quiet
        outputs: [{name: z, type: float}]
        run: {kind: job, container: {image: busybox, command: [sh, -c, "echo writes no z"]}}
    - name: second
      dagRef: step
      params: {x: {ref: ops.first, value: outputs.z}}"#,
    ));
    let (uuid, out) = run_dag(&w);
    assert_eq!(out.status.code(), Some(1));
    let ops = ops_of(&w, &uuid);
    assert_eq!(ops["second"]["status"], "failed");
    let (reason, msg) = last_reason(&w, ops["second"]["uuid"].as_str().unwrap());
    assert_eq!(reason, "DagParamsUnresolved");
    assert!(
        msg.contains("`first`") && msg.contains("no outputs"),
        "{msg}"
    );
}

#[test]
fn stopping_a_dag_stops_every_operation() {
    let w = Work::new(&dag(
        "",
        r#"    - name: long
      dagRef: step
      params: {sleep: {value: 30}}
    - name: later
      dagRef: step
      dependencies: [long]"#,
    ));
    let uuid = w.start(&[]);
    let long = op_uuid(&w, &uuid, "long");
    w.wait_status(&long, &["running"], 30);
    w.ok(&["ops", "stop", "--uid", &uuid, "--yes"]);
    let dag = w.wait_status(&uuid, &["stopped"], 30);
    assert_eq!(dag["status"], "stopped");
    let ops = ops_of(&w, &uuid);
    assert_eq!(ops["long"]["status"], "stopped");
    assert_eq!(
        ops["later"]["status"], "stopped",
        "not started: stopped too"
    );
}

#[test]
fn a_downstream_restart_reruns_one_operation_and_reuses_the_rest() {
    let w = Work::new(&dag(
        "",
        r#"    - name: prepare
      dagRef: step
      params: {x: {ref: dag, value: inputs.base}}
    - name: side
      dagRef: step
      dependencies: [prepare]
    - name: train
      dagRef: step
      params: {x: {ref: ops.prepare, value: outputs.y}}
    - name: report
      dagRef: step
      params: {x: {ref: ops.train, value: outputs.y}}"#,
    ));
    let (first, out) = run_dag(&w);
    assert!(out.status.success(), "{}", stderr(&out));
    let before = ops_of(&w, &first);
    let train = before["train"]["uuid"].as_str().unwrap();
    w.ok(&["ops", "restart", "--uid", train, "--downstream"]);
    let again = w.json(&[
        "ops",
        "ls",
        "-q",
        "kind: dag",
        "-s",
        "-created_at",
        "-o",
        "json",
    ])[0]["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(again, first);
    let dag = w.wait_status(&again, &["succeeded", "failed", "stopped"], 60);
    assert_eq!(dag["status"], "succeeded", "{dag}");
    let after = ops_of(&w, &again);
    for n in ["prepare", "side"] {
        let (reason, msg) = last_reason(&w, after[n]["uuid"].as_str().unwrap());
        assert_eq!(reason, "ReusedFromRun", "{n}");
        assert!(msg.contains(before[n]["uuid"].as_str().unwrap()), "{msg}");
        assert_eq!(after[n]["outputs"]["y"], before[n]["outputs"]["y"]);
    }
    for n in ["train", "report"] {
        assert_eq!(after[n]["status"], "succeeded");
        assert_eq!(
            last_reason(&w, after[n]["uuid"].as_str().unwrap()).0,
            "ExecutorSucceeded",
            "{n} ran again"
        );
        assert_eq!(after[n]["outputs"]["y"], before[n]["outputs"]["y"]);
    }
    // Only an operation of a DAG restarts downstream.
    let out = w.out(&["ops", "restart", "--uid", &first, "--downstream"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not an operation of a DAG"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_dag_whose_supervisor_died_ends_with_its_operations() {
    let w = Work::new(&dag(
        "",
        r#"    - name: long
      dagRef: step
      params: {sleep: {value: 30}}
    - name: later
      dagRef: step
      dependencies: [long]"#,
    ));
    let uuid = w.start(&[]);
    let long = op_uuid(&w, &uuid, "long");
    let running = w.wait_status(&long, &["running"], 30);
    let job_pid = running["meta_info"]["executor"]["job_pid"]
        .as_u64()
        .unwrap();
    let sup = w.run_json(&uuid)["meta_info"]["executor"]["pid"]
        .as_u64()
        .unwrap();
    assert_eq!(
        running["meta_info"]["executor"]["pid"].as_u64(),
        Some(sup),
        "the DAG's operations are driven in its process"
    );
    std::process::Command::new("kill")
        .args(["-9", &sup.to_string()])
        .status()
        .unwrap();
    // The next command notices.
    let dag = w.wait_status(&uuid, &["failed"], 30);
    assert_eq!(
        dag["status_conditions"].as_array().unwrap().last().unwrap()["reason"],
        "ExecutorLost"
    );
    let ops = ops_of(&w, &uuid);
    assert_eq!(ops["long"]["status"], "failed");
    assert_eq!(ops["later"]["status"], "stopped");
    assert_eq!(
        last_reason(&w, ops["later"]["uuid"].as_str().unwrap()).0,
        "PipelineLost"
    );
    let gone = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::path::Path::new(&format!("/proc/{job_pid}")).exists() {
        let stat = std::fs::read_to_string(format!("/proc/{job_pid}/stat")).unwrap_or_default();
        if stat.contains(") Z ") {
            break;
        }
        assert!(std::time::Instant::now() < gone, "the job outlived its DAG");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn values_written_by_the_official_tracking_client_flow_downstream() {
    let Some(python) = test_python() else {
        return;
    };
    let python = python.to_string_lossy().into_owned();
    let w = Work::new(&format!(
        r#"version: 1.1
kind: component
name: tracked-dag
run:
  kind: dag
  operations:
    - name: make
      component:
        name: make
        outputs: [{{name: dataset, type: str}}, {{name: rows, type: int}}]
        run: {{kind: job, container: {{image: python, command: ["{python}", -u, make.py]}}}}
    - name: use
      params:
        dataset: {{ref: ops.make, value: outputs.dataset}}
        rows: {{ref: ops.make, value: outputs.rows}}
      component:
        name: use
        inputs: [{{name: dataset, type: str}}, {{name: rows, type: int}}]
        run: {{kind: job, container: {{image: busybox, command: [sh, -c, "echo {{{{ dataset }}}} {{{{ rows }}}}"]}}}}
"#
    ));
    std::fs::write(
        w.dir.join("make.py"),
        "from polyaxon import tracking\ntracking.init()\ntracking.log_outputs(dataset='s3://data/clean', rows=1200)\ntracking.end()\n",
    )
    .unwrap();
    let (uuid, out) = run_dag(&w);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let ops = ops_of(&w, &uuid);
    assert_eq!(ops["use"]["inputs"]["dataset"], "s3://data/clean");
    assert_eq!(ops["use"]["inputs"]["rows"], 1200);
    let logs = w.ok(&[
        "ops",
        "logs",
        "--uid",
        ops["use"]["uuid"].as_str().unwrap(),
        "--hide-time",
    ]);
    assert!(logs.contains("s3://data/clean 1200"), "{logs}");
}

#[test]
fn the_cache_reuses_what_succeeded_with_the_same_inputs_and_code() {
    let w = Work::new(&dag(
        "",
        r#"    - name: only
      dagRef: step
      params: {x: {value: 2}}"#,
    ));
    let reason_of = |dag: &str| {
        let ops = ops_of(&w, dag);
        let uuid = ops["only"]["uuid"].as_str().unwrap().to_string();
        (last_reason(&w, &uuid).0, ops["only"].clone())
    };
    let (first, out) = run_dag(&w);
    assert!(out.status.success(), "{}", stderr(&out));
    let (reason, op1) = reason_of(&first);
    assert_eq!(reason, "ExecutorSucceeded");
    // The same DAG again: its operation is reused (on by default for a DAG's operations).
    let (second, _) = run_dag(&w);
    let (reason, op2) = reason_of(&second);
    assert_eq!(reason, "CacheHit");
    assert_eq!(op2["status"], "succeeded");
    assert_eq!(op2["outputs"]["y"], 3.0);
    assert_eq!(op2["meta_info"]["reused_from"], op1["uuid"]);
    // `--nocache` runs it.
    let out = w.out(&["run", "-w", "--nocache"]);
    assert!(out.status.success());
    let third = w.json(&["ops", "get", "-o", "json"])["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(reason_of(&third).0, "ExecutorSucceeded");
    // Another input is another computation.
    std::fs::write(
        w.dir.join("polyaxonfile.yml"),
        dag(
            "",
            "    - name: only\n      dagRef: step\n      params: {x: {value: 5}}",
        ),
    )
    .unwrap();
    let (fourth, _) = run_dag(&w);
    let (reason, op4) = reason_of(&fourth);
    assert_eq!(reason, "ExecutorSucceeded");
    assert_eq!(op4["outputs"]["y"], 6.0);
    // A job alone is cached only when it asks (`cache:`), and not past its `ttl`.
    let job = |cache: &str| {
        format!(
            "version: 1.1\nkind: component\nname: alone\n{cache}run:\n  kind: job\n  container:\n    image: busybox\n    command: [sh, -c, \"echo once\"]\n"
        )
    };
    let w = Work::new(&job(""));
    let once = |w: &Work| {
        let out = w.out(&["run", "-l"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let uuid = w.json(&["ops", "get", "-o", "json"])["uuid"]
            .as_str()
            .unwrap()
            .to_string();
        last_reason(w, &uuid).0
    };
    assert_eq!(once(&w), "ExecutorSucceeded");
    assert_eq!(once(&w), "ExecutorSucceeded", "off for a run alone");
    std::fs::write(w.dir.join("polyaxonfile.yml"), job("cache: {ttl: 3600}\n")).unwrap();
    assert_eq!(
        once(&w),
        "ExecutorSucceeded",
        "the file changed: other code"
    );
    assert_eq!(once(&w), "CacheHit");
    std::fs::write(w.dir.join("polyaxonfile.yml"), job("cache: {ttl: 0}\n")).unwrap();
    assert_eq!(once(&w), "ExecutorSucceeded");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert_eq!(once(&w), "ExecutorSucceeded", "too old for its ttl");
}

#[test]
fn a_skipped_operation_is_an_upstream_skip() {
    let w = Work::new(&dag(
        "",
        r#"    - name: slow
      dagRef: step
      params: {sleep: {value: 1.5}}
    - name: gate
      dagRef: step
      dependencies: [slow]
    - name: after-gate
      dagRef: step
      dependencies: [gate]
      skipOnUpstreamSkip: true"#,
    ));
    let uuid = w.start(&[]);
    let gate = op_uuid(&w, &uuid, "gate");
    w.ok(&["ops", "skip", "--uid", &gate, "--yes"]);
    let dag = w.wait_status(&uuid, &["succeeded", "failed", "stopped"], 30);
    assert_eq!(dag["status"], "succeeded");
    let ops = ops_of(&w, &uuid);
    assert_eq!(ops["slow"]["status"], "succeeded");
    assert_eq!(ops["gate"]["status"], "skipped");
    assert_eq!(ops["after-gate"]["status"], "skipped");
    // Only what has not started can be skipped.
    let out = w.out(&[
        "ops",
        "skip",
        "--uid",
        ops["slow"]["uuid"].as_str().unwrap(),
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("only a run that has not started"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_v06_pipeline_runs_through_its_upgrade() {
    let w = Work::new(
        r#"version: 1
kind: pipeline
name: legacy
concurrency: 1
ops:
  - name: first
    template: {name: echo}
    params: {word: hello}
  - name: second
    template: {name: echo}
    dependencies: [first]
    params: {word: world}
templates:
  - kind: job
    name: echo
    inputs: [{name: word, type: str}]
    run:
      cmd: echo {{ word }}
"#,
    );
    let (uuid, out) = run_dag(&w);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let ops = ops_of(&w, &uuid);
    assert!(secs(&ops["second"]["started_at"]) >= secs(&ops["first"]["finished_at"]));
    for (op, word) in [("first", "hello"), ("second", "world")] {
        let logs = w.ok(&[
            "ops",
            "logs",
            "--uid",
            ops[op]["uuid"].as_str().unwrap(),
            "--hide-time",
        ]);
        assert_eq!(logs.trim(), word);
    }
}
