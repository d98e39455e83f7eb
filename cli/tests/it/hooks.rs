//! Hooks that run a component, as a user writes them: a local hub component started when the
//! run succeeds, its params rendered over the finished run (its outputs by name, `globals`,
//! upstream's default context), `conditions` false → no hook run, an undefined name → the
//! delivery fails saying so and the run's status is left alone.

use crate::work::Work;

const ANNOUNCE: &str = "version: 1.1\nkind: component\nname: announce\ninputs:\n  - {name: status, type: str}\n  - {name: note, type: str}\n  - {name: channel, type: str, value: general, isOptional: true}\nrun:\n  kind: job\n  container:\n    command: [sh, -c, \"echo hook saw {{ status }}: {{ note }}\"]\n";

fn train(hooks: &str) -> String {
    format!(
        "version: 1.1\nkind: component\nname: train\nhooks:\n{hooks}run:\n  kind: job\n  container:\n    command: [sh, -c, \"echo loss=0.125\"]\n"
    )
}

#[test]
fn a_hook_runs_its_component_with_the_finished_runs_values() {
    let w = Work::new(&train(
        "  - hubRef: announce\n    trigger: succeeded\n    presets: [team]\n    conditions: \"{{ loss < 0.5 }}\"\n    params:\n      note: {value: \"loss {{ loss }} of {{ globals.uuid }} by {{ name }}\"}\n  - hubRef: announce\n    trigger: succeeded\n    conditions: \"{{ loss > 0.5 }}\"\n    params:\n      note: {value: never}\n",
    ));
    let hub = w.dir.join(".polyaxon/hub");
    std::fs::create_dir_all(&hub).unwrap();
    std::fs::write(hub.join("announce.yaml"), ANNOUNCE).unwrap();
    let presets = w.dir.join(".polyaxon/presets");
    std::fs::create_dir_all(&presets).unwrap();
    std::fs::write(
        presets.join("team.yaml"),
        "version: 1.1\nkind: operation\nisPreset: true\nparams:\n  channel: {value: ml-team}\n",
    )
    .unwrap();
    let uuid = w.start(&["--stdout-metrics"]);
    let r = w.wait_status(&uuid, &["succeeded", "failed"], 60);
    assert_eq!(r["status"], "succeeded", "{r}");
    // The supervisor waits for its deliveries: the hook's run exists soon after the run ends.
    let mut d = Vec::new();
    for _ in 0..100 {
        d = w
            .json(&["ops", "notifications", "--uid", &uuid, "-o", "json"])
            .as_array()
            .unwrap()
            .clone();
        if d.len() == 2 && d.iter().all(|x| x["state"] != "pending") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut states: Vec<&str> = d.iter().map(|x| x["state"].as_str().unwrap()).collect();
    states.sort();
    assert_eq!(states, ["delivered", "skipped"], "{d:?}");
    let hook_run = d
        .iter()
        .find_map(|x| x["hook_run"].as_str())
        .unwrap_or_else(|| panic!("{d:?}"))
        .to_string();
    let h = w.wait_status(&hook_run, &["succeeded", "failed"], 60);
    assert_eq!(h["status"], "succeeded", "{h}");
    assert_eq!(h["name"], "train-announce");
    assert_eq!(
        h["inputs"]["channel"], "ml-team",
        "the hook's preset applied: {h}"
    );
    assert_eq!(h["meta_info"]["hook"]["source"], uuid.as_str(), "{h}");
    let logs = w.ok(&["logs", "--uid", &hook_run, "-nf"]);
    assert!(
        logs.contains(&format!(
            "hook saw succeeded: loss 0.125 of {uuid} by train"
        )),
        "{logs}"
    );
}

#[test]
fn an_undefined_name_in_a_hook_fails_its_delivery_not_the_run() {
    let w = Work::new(&train(
        "  - hubRef: announce\n    params:\n      note: {value: \"{{ no_such_output }}\"}\n",
    ));
    let hub = w.dir.join(".polyaxon/hub");
    std::fs::create_dir_all(&hub).unwrap();
    std::fs::write(hub.join("announce.yaml"), ANNOUNCE).unwrap();
    let uuid = w.start(&[]);
    let r = w.wait_status(&uuid, &["succeeded", "failed"], 60);
    assert_eq!(r["status"], "succeeded", "{r}");
    let mut d = serde_json::Value::Null;
    for _ in 0..100 {
        d = w.json(&["ops", "notifications", "--uid", &uuid, "-o", "json"]);
        if d[0]["state"] != "pending" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(d[0]["state"], "failed", "{d}");
    let err = d[0]["last_error"].as_str().unwrap();
    assert!(
        err.contains("param `note` of the hook") && err.contains("no_such_output"),
        "{err}"
    );
    assert!(
        d[0]["hook_run"].is_null(),
        "no run for a hook that cannot render: {d}"
    );
}
