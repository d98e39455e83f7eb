//! Every manifest the project generates passes a real schema validator (kubernetes-validate,
//! strict, for the Kubernetes version of our k8s-openapi types): the runs of the compat
//! polyaxonfiles and the deploys of the compat deploy configs. Plus the tests that need a real
//! cluster, ignored unless one is there.

use std::path::{Path, PathBuf};

use serde_json::{Value as J, json};

use crate::common::{Env, compat_dir, stderr, stdout};

/// The Kubernetes version of the k8s-openapi feature the workspace selects.
const K8S_VERSION: &str = "1.33.0";

fn validator() -> Option<PathBuf> {
    let found = std::env::var_os("POLYAXON_TEST_PYTHON")
        .map(PathBuf::from)
        .and_then(|p| p.parent().map(|d| d.join("kubernetes-validate")))
        .filter(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubernetes-validate must be installed in CI (scripts/test installs it)"
        );
        eprintln!("skipped: kubernetes-validate is not installed (scripts/test installs it)");
    }
    found
}

/// Validates files; the failures, by file.
fn validate(bin: &Path, files: &[PathBuf]) -> Vec<String> {
    let out = std::process::Command::new(bin)
        .args(["--strict", "--quiet", "-k", K8S_VERSION])
        .args(files)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let mut bad: Vec<String> = text
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("FAIL") || l.contains("failed"))
        .map(str::to_string)
        .collect();
    if !out.status.success() && bad.is_empty() {
        bad.push(text);
    }
    bad
}

/// Validates Kubeflow jobs against the training SDK's models (`cli/tests/kubeflow_validate.py`:
/// the operator's CRDs are on no registry reachable here; its SDK, generated from the same
/// OpenAPI definitions, is). Unknown fields and wrong types fail, pod templates included.
fn validate_kubeflow(files: &[PathBuf]) -> Vec<String> {
    if files.is_empty() {
        return vec![];
    }
    let python = std::env::var_os("POLYAXON_TEST_PYTHON").expect("POLYAXON_TEST_PYTHON");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kubeflow_validate.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args(files)
        .output()
        .unwrap();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    let mut bad: Vec<String> = text
        .lines()
        .filter(|l| l.starts_with("ERROR"))
        .map(str::to_string)
        .collect();
    if !out.status.success() && bad.is_empty() {
        bad.push(text);
    }
    bad
}

/// Whether the Kubeflow SDK is installed beside the test Python (scripts/test installs it).
fn kubeflow_sdk() -> bool {
    let ok = std::env::var_os("POLYAXON_TEST_PYTHON").is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", "import kubeflow.training.models"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "kubeflow-training must be installed in CI (scripts/test installs it)"
        );
        eprintln!("skipped: the kubeflow-training SDK is not installed (scripts/test installs it)");
    }
    ok
}

/// Writes objects to files for the validators: built-in kinds for kubernetes-validate;
/// Kubeflow jobs for the SDK's models, and their pod templates, wrapped as PodTemplates, for
/// kubernetes-validate too (the Kubernetes version's own schema).
fn write_objects(dir: &Path, tag: &str, objects: &[J]) -> (Vec<PathBuf>, Vec<PathBuf>) {
    let (mut files, mut kubeflow) = (Vec::new(), Vec::new());
    let write = |n: usize, o: &J| {
        let p = dir.join(format!("{tag}-{n}.json"));
        std::fs::write(&p, serde_json::to_vec_pretty(o).unwrap()).unwrap();
        p
    };
    let mut n = 0;
    for o in objects {
        n += 1;
        let key = match o["kind"].as_str().unwrap_or_default() {
            "TFJob" => "tfReplicaSpecs",
            "PyTorchJob" => "pytorchReplicaSpecs",
            "MPIJob" => "mpiReplicaSpecs",
            _ => {
                files.push(write(n, o));
                continue;
            }
        };
        kubeflow.push(write(n, o));
        for (role, r) in o["spec"][key].as_object().cloned().unwrap_or_default() {
            n += 1;
            files.push(write(
                n,
                &json!({"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": format!("{tag}-{}", role.to_lowercase())}, "template": r["template"]}),
            ));
        }
    }
    (files, kubeflow)
}

/// What a dry run may refuse, and why.
const REFUSALS: &[&str] = &[
    "has no Kubernetes form here",          // dag, raycluster, daskcluster
    "a search has no manifests of its own", // matrix: one per trial
    "cannot run on a cluster here",         // init steps with no cluster form (paths, *Ref)
    "this operation is a DAG",
    "the container has no `image`", // v0.6 builds: the image comes from a build
    "no value for a required input", // needs `-P`
];

#[test]
fn manifests_of_the_compat_polyaxonfiles_pass_the_validator() {
    let Some(dir) = compat_dir() else {
        eprintln!("skipped: ../shared/compat is not beside the checkout");
        return;
    };
    let Some(bin) = validator() else { return };
    // Without the SDK (outside CI) the Kubeflow jobs' own fields go unchecked, the rest not.
    let sdk = kubeflow_sdk();
    let env = Env::new();
    let out_dir = tempfile::tempdir().unwrap();
    let mut kubeflow = Vec::new();
    let table = std::fs::read_to_string(dir.join("expected.tsv")).unwrap();
    let (mut files, mut problems, mut kinds) =
        (Vec::new(), Vec::new(), std::collections::BTreeMap::new());
    let mut refused = 0;
    for line in table
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols[1] != "valid" {
            continue;
        }
        let file = cols[0];
        let out = env
            .cmd()
            .current_dir(&dir)
            // Images described by `init.dockerfile` / `build` go there.
            .env("POLYAXON_K8S_REGISTRY", "registry.test:5000/ml")
            // Every pod with its files sidecar.
            .env("POLYAXON_K8S_SIDECAR_IMAGE", "polyaxon/polyaxon-rs:test")
            .args(["run", "--dry-run", "-o", "json", "-f", file])
            .output()
            .unwrap();
        if !out.status.success() {
            let err = stderr(&out);
            if REFUSALS.iter().any(|r| err.contains(r)) {
                refused += 1;
            } else {
                problems.push(format!("{file}: dry run failed:\n{err}"));
            }
            continue;
        }
        let objects: Vec<J> = serde_json::from_str(&stdout(&out))
            .unwrap_or_else(|e| panic!("{file}: {e}\n{}", stdout(&out)));
        for o in &objects {
            *kinds
                .entry(o["kind"].as_str().unwrap_or("?").to_string())
                .or_insert(0) += 1;
        }
        let tag = file.replace(['/', '.'], "_");
        let (plain, kf) = write_objects(out_dir.path(), &tag, &objects);
        files.extend(plain);
        kubeflow.extend(kf);
    }
    problems.extend(validate(&bin, &files));
    if sdk {
        problems.extend(validate_kubeflow(&kubeflow));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    eprintln!(
        "validated {} manifests ({kinds:?}; {} Kubeflow jobs by the SDK's models); {refused} specs have no manifests",
        files.len(),
        kubeflow.len()
    );
    // Every kind the executor makes is among them.
    for k in [
        "Secret",
        "Job",
        "Deployment",
        "Service",
        "TFJob",
        "PyTorchJob",
        "MPIJob",
    ] {
        assert!(kinds.contains_key(k), "no {k} among {kinds:?}");
    }
}

#[test]
fn the_validator_rejects_a_broken_manifest() {
    let Some(bin) = validator() else { return };
    let dir = tempfile::tempdir().unwrap();
    let bad = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "x"},
        "spec": {"backoffLimit": "two", "template": {"spec": {"containers": [{"name": "m", "image": "i", "cpu": 1}]}}}});
    let p = dir.path().join("bad.json");
    std::fs::write(&p, bad.to_string()).unwrap();
    assert!(
        !validate(&bin, &[p]).is_empty(),
        "a string backoffLimit and an unknown field must fail"
    );
}

#[test]
fn the_kubeflow_validator_rejects_broken_jobs() {
    if !kubeflow_sdk() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let good = json!({"apiVersion": "kubeflow.org/v1", "kind": "PyTorchJob", "metadata": {"name": "x"},
        "spec": {"runPolicy": {"cleanPodPolicy": "None"}, "pytorchReplicaSpecs": {"Master": {"replicas": 1, "restartPolicy": "OnFailure",
            "template": {"spec": {"containers": [{"name": "pytorch", "image": "i", "resources": {"limits": {"nvidia.com/gpu": "1"}}}]}}}}}});
    let write = |name: &str, o: &J| {
        let p = dir.path().join(name);
        std::fs::write(&p, o.to_string()).unwrap();
        p
    };
    assert_eq!(
        validate_kubeflow(&[write("good.json", &good)]),
        Vec::<String>::new()
    );
    let mut cases = vec![];
    let mut bad = good.clone();
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["replicas"] = json!("one");
    cases.push(("replicas", bad));
    let mut bad = good.clone();
    bad["spec"]["pytorchReplicaSpecs"]["Chief"] =
        bad["spec"]["pytorchReplicaSpecs"]["Master"].clone();
    cases.push(("unknown role `Chief`", bad));
    let mut bad = good.clone();
    bad["spec"].as_object_mut().unwrap().remove("runPolicy");
    cases.push(("`runPolicy` is required", bad));
    let mut bad = good.clone();
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("name");
    cases.push(("`name` is required", bad));
    let mut bad = good.clone();
    bad["spec"]["runPolicy"]["cleanPodPolicy"] = json!("Sometimes");
    cases.push(("cleanPodPolicy", bad));
    let mut bad = good.clone();
    bad["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["cpu"] =
        json!(1);
    cases.push(("unknown field `cpu`", bad));
    for (i, (want, o)) in cases.iter().enumerate() {
        let got = validate_kubeflow(&[write(&format!("bad{i}.json"), o)]).join("\n");
        assert!(got.contains(want), "{want}: {got}");
    }
}

fn deploy_configs() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/compat/deploy-configs");
    dir.is_dir().then_some(dir)
}

/// Upstream refuses `wrong_values1.yml` (an in-cluster PostgreSQL with nothing else said);
/// here the database's password is generated, so it deploys.
const ACCEPTED_HERE: &[&str] = &["wrong_values1.yml"];

#[test]
fn deploy_configs_valid_ones_deploy_and_wrong_ones_are_refused_with_their_key() {
    let Some(dir) = deploy_configs() else {
        eprintln!("skipped: ../shared/compat is not beside the checkout");
        return;
    };
    let Some(bin) = validator() else { return };
    let env = Env::new();
    let out_dir = tempfile::tempdir().unwrap();
    let (mut files, mut problems) = (Vec::new(), Vec::new());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml"))
        .collect();
    names.sort();
    let (mut valid, mut wrong) = (0, 0);
    for name in &names {
        let out = env
            .cmd()
            .args(["admin", "deploy", "--dry-run", "-o", "json", "-f"])
            .arg(dir.join(name))
            .output()
            .unwrap();
        let err = stderr(&out);
        if name.starts_with("wrong_") && !ACCEPTED_HERE.contains(&name.as_str()) {
            wrong += 1;
            if out.status.code() != Some(1) || !err.contains('`') {
                problems.push(format!(
                    "{name}: expected a refusal naming the key, got {:?}:\n{err}",
                    out.status.code()
                ));
            }
            continue;
        }
        valid += 1;
        if !out.status.success() {
            problems.push(format!("{name}: refused:\n{err}"));
            continue;
        }
        let objects: Vec<J> = serde_json::from_str(&stdout(&out)).unwrap();
        assert!(
            objects
                .iter()
                .all(|o| o["kind"] != "Secret"
                    || !o.to_string().contains("database-url\":\"postgres")),
            "{name}: secrets printed without --show-secrets"
        );
        let (plain, kubeflow) = write_objects(out_dir.path(), &name.replace('.', "_"), &objects);
        assert!(kubeflow.is_empty(), "{name}: a deploy has no training jobs");
        files.extend(plain);
    }
    problems.extend(validate(&bin, &files));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(valid >= 14 && wrong >= 10, "{valid} valid, {wrong} wrong");
    eprintln!(
        "{valid} configs deployed ({} manifests validated), {wrong} refused",
        files.len()
    );
}

#[test]
fn deploy_config_errors_say_where_and_what() {
    let env = Env::new();
    let cfg = env.home.path().join("c.yml");
    std::fs::write(&cfg, "gateway:\n  replicas: three\n  service: {type: Cluster}\nemail: {useTLS: true}\nredis: {enabled: true}\n").unwrap();
    let out = env
        .cmd()
        .args(["admin", "deploy", "--dry-run", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("`gateway.replicas`: expected an integer, found a string (`three`)"),
        "{err}"
    );
    assert!(
        err.contains("`email.useTLS` is not a key here: did you mean `useTls`?"),
        "{err}"
    );
    // Unused sections are said once, as warnings, and do not fail a valid config.
    std::fs::write(&cfg, "redis: {enabled: true}\nbroker: redis\n").unwrap();
    let out = env
        .cmd()
        .args(["admin", "deploy", "--dry-run", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn dry_run_prints_the_job_and_its_secret_without_a_cluster() {
    let env = Env::new();
    let f = env.home.path().join("p.yml");
    std::fs::write(
        &f,
        "version: 1.1\nkind: component\ntermination: {maxRetries: 3, timeout: 60, ttl: 30}\nrun:\n  kind: job\n  container: {image: 'python:3.12', command: [python, t.py], resources: {limits: {nvidia.com/gpu: '1'}}}\n",
    )
    .unwrap();
    let out = env
        .cmd()
        .args(["run", "--dry-run", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("kind: Secret") && text.contains("---\napiVersion: batch/v1\nkind: Job"),
        "{text}"
    );
    for want in [
        "backoffLimit: 3",
        "activeDeadlineSeconds: 60",
        "ttlSecondsAfterFinished: 30",
        "nvidia.com/gpu: \"1\"",
        "name: polyaxon-main",
    ] {
        assert!(text.contains(want), "{want} missing:\n{text}");
    }
    // Nothing was created.
    assert!(
        !env.home.path().join(".polyaxon/polyaxon.db").exists() || {
            let ls = env
                .cmd()
                .args(["ops", "ls", "-o", "json"])
                .output()
                .unwrap();
            stdout(&ls).trim() == "[]"
        }
    );
}

#[test]
fn the_deploy_runs_an_agent_beside_the_server_or_alone() {
    let env = Env::new();
    let deploy = |cfg: &str| -> (Vec<J>, String) {
        let f = env.home.path().join("deploy.yml");
        std::fs::write(&f, cfg).unwrap();
        let out = env
            .cmd()
            .args([
                "admin",
                "deploy",
                "--dry-run",
                "--show-secrets",
                "-o",
                "json",
                "-f",
            ])
            .arg(&f)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        (serde_json::from_str(&stdout(&out)).unwrap(), stderr(&out))
    };
    let find = |objs: &[J], kind: &str, name: &str| {
        objs.iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .cloned()
    };
    let env_of = |d: &J, var: &str| {
        d["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == var)
            .cloned()
            .unwrap_or(J::Null)
    };
    // Beside the server: its token in the deploy's secret, given to both.
    let (objs, _) = deploy("namespace: plx\nagent: {maxConcurrency: 12, queues: 'default,gpu'}\n");
    let agent = find(&objs, "Deployment", "polyaxon-agent").expect("an agent Deployment");
    let api = find(&objs, "Deployment", "polyaxon-api").unwrap();
    let args: Vec<&str> = agent["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "agent",
            "start",
            "--executor",
            "kubernetes",
            "--name",
            "plx-agent",
            "--max-concurrency",
            "12",
            "--queue",
            "default,gpu"
        ]
    );
    assert_eq!(
        env_of(&agent, "POLYAXON_HOST")["value"],
        "http://polyaxon-api.plx.svc:80"
    );
    assert_eq!(
        env_of(&agent, "POLYAXON_AUTH_TOKEN")["valueFrom"]["secretKeyRef"]["key"],
        "agent-token"
    );
    assert_eq!(
        env_of(&api, "POLYAXON_AGENT_TOKEN")["valueFrom"]["secretKeyRef"]["key"],
        "agent-token"
    );
    assert_eq!(
        agent["spec"]["template"]["spec"]["serviceAccountName"],
        "polyaxon-executor"
    );
    // Its runs' pods send their files through a sidecar of the agent's own image.
    assert_eq!(
        env_of(&agent, "POLYAXON_K8S_SIDECAR_IMAGE")["value"],
        agent["spec"]["template"]["spec"]["containers"][0]["image"]
    );
    let secret = find(&objs, "Secret", "polyaxon-secrets").unwrap();
    let token = secret["stringData"]["agent-token"].as_str().unwrap();
    assert!(token.len() >= 32, "{token}");
    // Upstream's bucket artifacts store: the server's `--artifacts-store`, its credentials
    // from the secret named, and a claim still for what the server takes in.
    let (objs, said) = deploy(
        "namespace: plx\nartifactsStore: {name: store, kind: s3, schema: {bucket: 's3://team-artifacts/plx'}, secret: aws-creds}\n",
    );
    let api = find(&objs, "Deployment", "polyaxon-api").unwrap();
    assert_eq!(
        env_of(&api, "POLYAXON_ARTIFACTS_STORE")["value"],
        "s3://team-artifacts/plx"
    );
    assert_eq!(
        api["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "aws-creds"
    );
    assert!(said.contains("go to the bucket"), "{said}");
    let (objs, _) = deploy(
        "namespace: plx\nartifactsStore: {name: store, kind: gcs, schema: {bucket: team-artifacts}, secret: {name: gcs-creds}}\n",
    );
    let api = find(&objs, "Deployment", "polyaxon-api").unwrap();
    assert_eq!(
        api["spec"]["template"]["spec"]["containers"][0]["envFrom"][0]["secretRef"]["name"],
        "gcs-creds",
        "upstream's `secret: {{name: …}}`"
    );
    assert_eq!(
        env_of(&api, "POLYAXON_ARTIFACTS_STORE")["value"],
        "gs://team-artifacts"
    );
    // A GCS key file: the secret mounted where `mountPath` says, its path for the client.
    let (objs, _) = deploy(
        "namespace: plx\nartifactsStore: {name: store, kind: gcs, schema: {bucket: 'gs://team-artifacts'}, secret: {name: gcs-key, mountPath: /plx-secrets/gcs}}\n",
    );
    let api = find(&objs, "Deployment", "polyaxon-api").unwrap();
    let pod = &api["spec"]["template"]["spec"];
    assert!(
        pod["containers"][0]["envFrom"].is_null(),
        "mounted, not env"
    );
    assert_eq!(
        env_of(&api, "GOOGLE_APPLICATION_CREDENTIALS")["value"],
        "/plx-secrets/gcs/gc-secret.json"
    );
    let vol = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "artifacts-store-key")
        .expect("the key's volume");
    assert_eq!(vol["secret"]["secretName"], "gcs-key");
    let mount = pod["containers"][0]["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "artifacts-store-key")
        .expect("the key's mount");
    assert_eq!(mount["mountPath"], "/plx-secrets/gcs");
    assert_eq!(mount["readOnly"], true);
    let (objs, _) = deploy(
        "namespace: plx\nartifactsStore: {name: store, kind: volume_claim, schema: {volumeClaim: vc}}\n",
    );
    let api = find(&objs, "Deployment", "polyaxon-api").unwrap();
    assert!(env_of(&api, "POLYAXON_ARTIFACTS_STORE").is_null());
    // Turned off.
    let (objs, _) = deploy("namespace: plx\nagent: {enabled: false}\n");
    assert!(find(&objs, "Deployment", "polyaxon-agent").is_none());
    // The agent chart: the agent alone, against a server elsewhere.
    let (objs, said) = deploy(
        "deploymentChart: agent\nnamespace: plx\nexternalServices: {api: {host: 'https://plx.example.com', port: 443}}\n",
    );
    assert!(find(&objs, "Deployment", "polyaxon-api").is_none());
    let agent = find(&objs, "Deployment", "polyaxon-agent").expect("the agent");
    assert_eq!(
        env_of(&agent, "POLYAXON_HOST")["value"],
        "https://plx.example.com:443"
    );
    assert!(said.contains("agent.token"), "{said}");
    let (objs, _) = deploy(
        "deploymentChart: agent\nnamespace: plx\nexternalServices: {api: {host: 'https://plx.example.com'}}\nagent: {token: plx_given_token_123456}\n",
    );
    let secret = find(&objs, "Secret", "polyaxon-secrets").unwrap();
    assert_eq!(
        secret["stringData"]["agent-token"],
        "plx_given_token_123456"
    );
    // Without a server to work for, refused with the key.
    let f = env.home.path().join("deploy.yml");
    std::fs::write(&f, "deploymentChart: agent\n").unwrap();
    let out = env
        .cmd()
        .args(["admin", "deploy", "--dry-run", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("externalServices.api.host"),
        "{}",
        stderr(&out)
    );
}

/// `polyaxon run --dry-run [ARGS] -f SPEC` with `vars` set, from a fresh home.
fn dry_run(spec: &str, vars: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let env = Env::new();
    let f = env.home.path().join("p.yml");
    std::fs::write(&f, spec).unwrap();
    env.cmd()
        .envs(vars.iter().copied())
        .args(["run", "--dry-run"])
        .args(args)
        .arg("-f")
        .arg(&f)
        .output()
        .unwrap()
}

/// The Job of a successful JSON dry run.
fn dry_run_job(spec: &str, vars: &[(&str, &str)]) -> J {
    let out = dry_run(spec, vars, &["-o", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let objects: Vec<J> = serde_json::from_str(&stdout(&out)).unwrap();
    objects.into_iter().find(|o| o["kind"] == "Job").unwrap()
}

#[test]
fn dry_runs_of_built_images_name_the_registry_or_ask_for_one() {
    let spec = "version: 1.1\nkind: component\nname: Train_Net\nrun:\n  kind: job\n  init: [{dockerfile: {image: 'python:3.12', run: ['pip install torch']}}]\n  container: {image: 'python:3.12', command: [python, t.py]}\n";
    let out = dry_run(spec, &[], &[]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("none is configured") && err.contains("POLYAXON_K8S_REGISTRY"),
        "{err}"
    );
    let registry = [("POLYAXON_K8S_REGISTRY", "registry.example.com:5000/ml")];
    let out = dry_run(spec, &registry, &[]);
    assert!(
        stderr(&out).contains("built and pushed"),
        "{}",
        stderr(&out)
    );
    let job = dry_run_job(spec, &registry);
    assert_eq!(
        job["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example.com:5000/ml/train_net:built-when-the-run-starts"
    );
    let out = dry_run(
        spec,
        &[("POLYAXON_K8S_REGISTRY", "registry.example.com:port")],
        &[],
    );
    assert!(
        stderr(&out).contains("the port is not a number"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn pods_without_a_shared_claim_get_the_files_sidecar() {
    let spec = "version: 1.1\nkind: component\nrun:\n  kind: job\n  container: {image: 'busybox:1.36', command: [sh, -c, 'true']}\n";
    let image = [("POLYAXON_K8S_SIDECAR_IMAGE", "polyaxon/polyaxon-rs:9.9")];
    let job = dry_run_job(spec, &image);
    let pod = &job["spec"]["template"]["spec"];
    let inits = pod["initContainers"].as_array().expect("init containers");
    let sc = inits.last().unwrap();
    assert_eq!(sc["name"], "polyaxon-sidecar");
    assert_eq!(sc["image"], "polyaxon/polyaxon-rs:9.9");
    assert_eq!(sc["restartPolicy"], "Always", "a native sidecar: {sc}");
    assert_eq!(sc["command"], json!(["polyaxon"]));
    let args: Vec<&str> = sc["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(args[0], "sidecar");
    assert_eq!(args[3..], ["--interval", "5"]);
    let main = &pod["containers"][0];
    let env_of = |c: &J, k: &str| {
        c["env"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["name"] == k)
            .cloned()
    };
    // The same run, the same directory, the same context volume as the main container.
    assert_eq!(
        args[2],
        env_of(main, "POLYAXON_RUN_ARTIFACTS_PATH").unwrap()["value"]
    );
    for k in [
        "POLYAXON_RUN_INSTANCE",
        "POLYAXON_HOST",
        "POLYAXON_AUTH_TOKEN",
    ] {
        assert_eq!(env_of(sc, k), env_of(main, k), "{k}");
    }
    assert_eq!(sc["volumeMounts"][0], main["volumeMounts"][0]);
    assert_eq!(sc["resources"]["limits"]["memory"], "256Mi");

    // The spec's `plugins.sidecar`: its interval, resources and pull policy.
    let tuned = dry_run_job(
        &format!(
            "{spec}plugins:\n  sidecar: {{syncInterval: 30, imagePullPolicy: IfNotPresent, resources: {{limits: {{memory: 1Gi}}}}}}\n"
        ),
        &image,
    );
    let sc = tuned["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(sc["args"][4], "30");
    assert_eq!(sc["imagePullPolicy"], "IfNotPresent");
    assert_eq!(sc["resources"], json!({"limits": {"memory": "1Gi"}}));

    // None where the pods share the server's claim, where the spec collects no artifacts,
    // or where no image is configured.
    let no_sidecar = |job: &J| {
        !job["spec"]["template"]["spec"]["initContainers"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["name"] == "polyaxon-sidecar")
    };
    let claim = [
        image[0],
        ("POLYAXON_K8S_ARTIFACTS_CLAIM", "polyaxon-artifacts"),
    ];
    assert!(no_sidecar(&dry_run_job(spec, &claim)));
    assert!(no_sidecar(&dry_run_job(
        &format!("{spec}plugins: {{collectArtifacts: false}}\n"),
        &image
    )));
    assert!(no_sidecar(&dry_run_job(spec, &[])));
}

#[test]
fn default_pull_secrets_join_the_specs() {
    let job = dry_run_job(
        "version: 1.1\nkind: component\nrun:\n  kind: job\n  environment: {imagePullSecrets: [mine, regcred]}\n  container: {image: 'reg.example.com/ml/x:1', command: [x]}\n",
        &[("POLYAXON_K8S_IMAGE_PULL_SECRETS", "regcred, team-registry")],
    );
    assert_eq!(
        job["spec"]["template"]["spec"]["imagePullSecrets"],
        json!([{"name": "mine"}, {"name": "regcred"}, {"name": "team-registry"}])
    );
}

/// A real cluster: `KUBECONFIG` pointing at one, with a server reachable from its pods
/// (`POLYAXON_HOST`, e.g. after `polyaxon admin deploy` and a port-forward).
fn cluster() -> bool {
    std::env::var_os("KUBECONFIG").is_some() && std::env::var_os("POLYAXON_HOST").is_some()
}

#[test]
#[ignore = "needs cluster"]
fn a_job_runs_on_the_cluster_and_its_logs_come_back() {
    assert!(
        cluster(),
        "set KUBECONFIG and POLYAXON_HOST (see the README)"
    );
    let env = Env::new();
    let f = env.home.path().join("p.yml");
    std::fs::write(&f, "version: 1.1\nkind: component\nrun:\n  kind: job\n  container: {image: 'busybox:1.36', command: [sh, -c, 'for i in 1 2 3; do echo line $i; sleep 1; done']}\n").unwrap();
    let mut c = env.cmd();
    for k in [
        "KUBECONFIG",
        "POLYAXON_HOST",
        "POLYAXON_AUTH_TOKEN",
        "POLYAXON_K8S_NAMESPACE",
        "POLYAXON_K8S_API_HOST",
    ] {
        if let Some(v) = std::env::var_os(k) {
            c.env(k, v);
        }
    }
    let out = c
        .args(["run", "--executor", "kubernetes", "-l", "-f"])
        .arg(&f)
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    for i in 1..=3 {
        assert_eq!(text.matches(&format!("line {i}")).count(), 1, "{text}");
    }
}

#[test]
#[ignore = "needs cluster"]
fn admin_check_reaches_the_cluster() {
    assert!(std::env::var_os("KUBECONFIG").is_some(), "set KUBECONFIG");
    let env = Env::new();
    let cfg = env.home.path().join("c.yml");
    std::fs::write(&cfg, "namespace: polyaxon-test\n").unwrap();
    let out = env
        .cmd()
        .env("KUBECONFIG", std::env::var_os("KUBECONFIG").unwrap())
        .args(["admin", "deploy", "--check", "-f"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cluster: Kubernetes"),
        "{}",
        stderr(&out)
    );
}

#[test]
#[ignore = "needs cluster"]
fn port_forward_reaches_the_deployed_server() {
    assert!(std::env::var_os("KUBECONFIG").is_some(), "set KUBECONFIG");
    // The deploy to reach: `polyaxon admin deploy` with this namespace and release name.
    let ns = std::env::var("POLYAXON_TEST_DEPLOY_NAMESPACE").unwrap_or_else(|_| "polyaxon".into());
    let rel = std::env::var("POLYAXON_TEST_DEPLOY_RELEASE").unwrap_or_else(|_| "polyaxon".into());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let env = Env::new();
    let mut child = env
        .cmd_std()
        .env("KUBECONFIG", std::env::var_os("KUBECONFIG").unwrap())
        .args([
            "port-forward",
            "-n",
            &ns,
            "-r",
            &rel,
            "-p",
            &port.to_string(),
        ])
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let answer = loop {
        if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            write!(s, "GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            let mut b = String::new();
            let _ = s.read_to_string(&mut b);
            if !b.is_empty() {
                break b;
            }
        }
        assert!(
            std::time::Instant::now() < end,
            "nothing answered through the forward"
        );
        std::thread::sleep(std::time::Duration::from_millis(300));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.starts_with("HTTP/1."), "{answer}");
}
