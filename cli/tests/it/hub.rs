//! The component hub: the built-in library, the project's and user's directories over it,
//! `polyaxon hub ls|get` and `polyaxon run --hub`.

use serde_json::Value as J;

use crate::common::stderr;
use crate::work::Work;

#[test]
fn the_hub_lists_prints_and_runs_components() {
    let w = Work::new(
        "version: 1.1\nkind: component\nrun: {kind: job, container: {image: busybox, command: [true]}}\n",
    );
    // The built-in library, tags and all.
    let all = w.json(&["hub", "ls", "-o", "json"]);
    let names: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}:{}",
                e["name"].as_str().unwrap(),
                e["tag"].as_str().unwrap(),
                e["source"].as_str().unwrap()
            )
        })
        .collect();
    for want in [
        "jupyterlab:latest:built-in",
        "notebook:latest:built-in",
        "vscode:latest:built-in",
        "streamlit:latest:built-in",
        "tensorboard:latest:built-in",
        "tensorboard:path:built-in",
        "tensorboard:multi-runs:built-in",
        "kaniko:latest:built-in",
        "dockerizer:latest:built-in",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    assert!(
        all.as_array()
            .unwrap()
            .iter()
            .all(|e| !e["description"].as_str().unwrap().is_empty()),
        "{all}"
    );
    // `get` prints a component that checks, with its values rendered.
    let text = w.ok(&["hub", "get", "tensorboard:path"]);
    std::fs::write(w.dir.join("tb.yml"), &text).unwrap();
    let c = w.json(&["check", "-f", "tb.yml", "-P", "path=runs/a", "-o", "json"]);
    let args = &c["compiled"]["run"]["container"]["args"];
    assert!(args[0].as_str().unwrap().ends_with("/runs/a"), "{args}");
    assert_eq!(args[1], "--port=6006");
    let out = w.out(&["hub", "get", "no-such-thing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("jupyterlab:latest"),
        "{}",
        stderr(&out)
    );
    // A project's component shadows the built-in of the same name, and `run --hub` runs it.
    let hub = w.dir.join(".polyaxon/hub");
    std::fs::create_dir_all(&hub).unwrap();
    std::fs::write(
        hub.join("jupyterlab.yaml"),
        "version: 1.1\nkind: component\ndescription: ours\ninputs: [{name: word, type: str}]\nrun:\n  kind: job\n  container: {image: busybox, command: [echo, \"said {{ word }}\"]}\n",
    )
    .unwrap();
    let all = w.json(&["hub", "ls", "-o", "json"]);
    let jl: Vec<&J> = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["name"] == "jupyterlab")
        .collect();
    assert_eq!(jl.len(), 1, "{all}");
    assert_eq!(jl[0]["source"], "project");
    let uuid = w.start(&["--hub", "jupyterlab", "-P", "word=hello"]);
    let r = w.wait_status(&uuid, &["succeeded", "failed"], 60);
    assert_eq!(r["status"], "succeeded", "{r}");
    let logs = w.ok(&["logs", "--uid", &uuid]);
    assert!(logs.contains("said hello"), "{logs}");
    // A name the hub does not have: the error says where it looked.
    let out = w.out(&["run", "--hub", "nothing-here"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("`nothing-here` is not available"),
        "{}",
        stderr(&out)
    );
}

/// A top-level operation's `joins` collect the project's runs at its start (as
/// `tensorboard:multi-runs` is meant to be given them): each join param gets the list.
#[test]
fn a_top_level_join_collects_runs() {
    let w = Work::new(
        "version: 1.1\nkind: component\nname: train\nrun:\n  kind: job\n  container: {image: busybox, command: [sh, -c, \"echo loss=0.25\"]}\n",
    );
    let mut trained = Vec::new();
    for _ in 0..2 {
        let uuid = w.start(&["--stdout-metrics"]);
        w.wait_status(&uuid, &["succeeded"], 60);
        trained.push(uuid);
    }
    std::fs::write(
        w.dir.join("compare.yml"),
        "version: 1.1\nkind: operation\njoins:\n  - query: \"name:train, status:succeeded\"\n    sort: created_at\n    params:\n      uuids: {value: globals.uuid}\n      losses: {value: outputs.loss}\ncomponent:\n  name: compare\n  inputs:\n    - {name: uuids, type: str, isList: true}\n    - {name: losses, type: float, isList: true}\n  run:\n    kind: job\n    container:\n      image: busybox\n      command: [echo, \"{{ uuids | length }} runs: {{ uuids | join(',') }} at {{ losses | join(',') }}\"]\n",
    )
    .unwrap();
    let uuid = w.start(&["-f", "compare.yml"]);
    let r = w.wait_status(&uuid, &["succeeded", "failed"], 60);
    assert_eq!(r["status"], "succeeded", "{r}");
    // The values the joins found are the run's inputs.
    assert_eq!(r["inputs"]["uuids"], serde_json::json!(trained), "{r}");
    assert_eq!(
        r["inputs"]["losses"],
        serde_json::json!([0.25, 0.25]),
        "{r}"
    );
    let logs = w.ok(&["logs", "--uid", &uuid]);
    assert!(
        logs.contains(&format!(
            "2 runs: {},{} at 0.25,0.25",
            trained[0], trained[1]
        )),
        "{logs}"
    );
}
