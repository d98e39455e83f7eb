//! The dashboard in a real browser: headless Chromium (Debian's, with its driver) driven by
//! `browser.py` through Selenium from the test virtualenv. Sign-in, the runs table's
//! checkboxes, a comparison of three runs whose drawn series are read back from the charts'
//! data (not pixels), smoothing changing the drawn values, the x axis by relative time, and a
//! run's own page; a running run's page following it live, edited and stopped from the page,
//! and a forged cross-site stop refused. Screenshots of each page are kept in
//! `$CARGO_TARGET_TMPDIR/screenshots/`.

use reqwest::StatusCode;
use serde_json::{Value as J, json};

use crate::common::{ADMIN_PASSWORD, TestServer};

/// The test virtualenv's Python with Selenium, and the system's Chromium and driver.
fn browser() -> Option<std::ffi::OsString> {
    let py = std::env::var_os("POLYAXON_TEST_PYTHON");
    let chromium = std::path::Path::new(
        &std::env::var_os("POLYAXON_TEST_CHROMIUM").unwrap_or("/usr/bin/chromium".into()),
    )
    .exists();
    let has_selenium = py.as_ref().is_some_and(|p| {
        std::process::Command::new(p)
            .args(["-c", "import selenium"])
            .status()
            .is_ok_and(|s| s.success())
    });
    match (py, chromium && has_selenium) {
        (Some(py), true) => Some(py),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "Chromium, chromedriver and Selenium must be installed in CI (scripts/test installs them)"
            );
            eprintln!(
                "skipped: Chromium, chromedriver or Selenium is missing (scripts/test installs them)"
            );
            None
        }
    }
}

/// Where the browser tests' screenshots are kept.
fn shots() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots")
}

/// Runs `browser.py SCENARIO BASE root PASSWORD PROJECT ARGS… SCREENSHOTS TAIL…` and returns
/// what it saw.
async fn scenario(
    py: &std::ffi::OsStr,
    name: &str,
    s: &TestServer,
    project: &str,
    args: &[&str],
    tail: &[&str],
) -> J {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/browser.py");
    let out = tokio::process::Command::new(py)
        .arg(&script)
        .args([name, &s.base, "root", ADMIN_PASSWORD, project])
        .args(args)
        .arg(shots())
        .args(tail)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(text.trim()).unwrap()
}

/// A run's loss and accuracy curves: `n` points, shaped by `k`.
fn curves(k: f64, n: usize) -> (Vec<f64>, Vec<f64>) {
    let loss = (0..n)
        .map(|i| k / (1.0 + i as f64) + 0.01 * ((i * 7) % 5) as f64)
        .collect();
    let acc = (0..n).map(|i| 1.0 - k / (2.0 + i as f64)).collect();
    (loss, acc)
}

/// TensorBoard's smoothing, as the page computes it.
fn ema(ys: &[f64], w: f64) -> Vec<f64> {
    let (mut last, mut n) = (0.0, 0);
    ys.iter()
        .map(|y| {
            last = last * w + (1.0 - w) * y;
            n += 1;
            last / (1.0 - w.powi(n))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comparing_runs_in_chromium() {
    let Some(py) = browser() else { return };
    let s = TestServer::sqlite().await;
    let p = s.project("vision").await;
    let n = 40;
    let mut runs = Vec::new();
    for (i, (name, lr, k)) in [
        ("baseline", 0.1, 1.0),
        ("wider", 0.1, 0.8),
        ("faster", 0.3, 1.3),
    ]
    .into_iter()
    .enumerate()
    {
        let uuid = s.run(&p, json!({"name": name})).await;
        let (st, b) = s
            .patch(
                &format!("/api/v1/root/{p}/runs/{uuid}"),
                json!({"inputs": {"lr": lr, "layers": 4}}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let (loss, acc) = curves(k, n);
        let steps: Vec<i64> = (0..n as i64).collect();
        // One point a second, each run starting at its own time.
        let ts: Vec<J> = (0..n)
            .map(|j| json!(1_796_000_000.0 + (i * 1000 + j) as f64))
            .collect();
        let (st, b) = s
            .post(
                &format!("/streams/v1/polyaxon/root/{p}/runs/{uuid}/metrics"),
                json!({"id": format!("seed-{uuid}"), "metrics": [
                    {"name": "loss", "step": steps, "timestamp": ts, "value": loss},
                    {"name": "acc", "step": steps, "timestamp": ts, "value": acc},
                ]}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        runs.push((uuid, name, loss));
    }
    let uuids: Vec<&str> = runs.iter().map(|r| r.0.as_str()).collect();
    let seen = scenario(&py, "compare", &s, &p, &[&uuids.join(",")], &[]).await;
    let shots = shots();

    // The runs table: the columns kept, sorted by a metric, queried.
    assert_eq!(
        seen["kept_cols"],
        json!(["✓", "name", "status", "lr", "loss"]),
        "{seen}"
    );
    assert_eq!(
        seen["by_loss"],
        json!(["wider", "baseline", "faster"]),
        "{seen}"
    );
    assert!(
        seen["suggests"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "metrics.loss: "),
        "{seen}"
    );
    assert_eq!(seen["queried"], json!(["faster"]), "{seen}");
    // Signed in, and back to the runs table; the comparison's address names the three runs.
    assert!(
        seen["signed_in_at"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/ui/root/{p}"))
    );
    let url = seen["compare_url"].as_str().unwrap();
    let named = url.split("runs=").nth(1).unwrap_or_default();
    let mut named: Vec<&str> = named.split(['&', ',']).take(3).collect();
    named.sort_unstable();
    let mut want = uuids.clone();
    want.sort_unstable();
    assert_eq!(named, want, "{url}");
    // The params that differ are marked (lr), the one they share is not (layers); the
    // outputs (each metric's last value) differ too.
    assert_eq!(seen["differs"], json!(["lr", "acc", "loss"]), "{seen}");

    // Every run's loss, drawn as it was logged: x the steps, one series per run.
    let loss = &seen["drawn"]["loss"];
    let steps: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let xs: Vec<f64> = serde_json::from_value(loss["data"][0].clone()).unwrap();
    assert_eq!(xs, steps);
    for (uuid, name, values) in &runs {
        let i = loss["runs"]
            .as_array()
            .unwrap()
            .iter()
            .position(|u| u == uuid.as_str())
            .unwrap_or_else(|| panic!("{name} not drawn: {loss}"));
        assert_eq!(loss["series"][i + 1], *name);
        let drawn: Vec<f64> = serde_json::from_value(loss["data"][i + 1].clone()).unwrap();
        for (a, b) in drawn.iter().zip(values) {
            assert!((a - b).abs() < 1e-9, "{name}: drawn {a}, logged {b}");
        }
        assert!(
            seen["legend"]
                .as_array()
                .unwrap()
                .iter()
                .any(|l| l == *name),
            "{seen}"
        );
    }
    assert!(seen["drawn"]["acc"].is_object(), "every shared metric");

    // Smoothing: the drawn values are the moving average of the logged ones.
    let smooth = &seen["smoothed"]["loss"];
    let i = smooth["runs"]
        .as_array()
        .unwrap()
        .iter()
        .position(|u| u == runs[2].0.as_str())
        .unwrap();
    let drawn: Vec<f64> = serde_json::from_value(smooth["data"][i + 1].clone()).unwrap();
    let want = ema(&runs[2].2, 0.6);
    assert!(
        (drawn[5] - runs[2].2[5]).abs() > 1e-3,
        "smoothing changes the drawn values"
    );
    for (a, b) in drawn.iter().zip(&want) {
        assert!((a - b).abs() < 1e-9, "smoothed: drawn {a}, want {b}");
    }
    // Relative time: seconds since each run's first point.
    let rel = &seen["relative"]["loss"]["data"][0];
    assert_eq!(rel[0], 0.0);
    assert_eq!(rel[n - 1], (n - 1) as f64);

    // A run's page charts its own series.
    assert_eq!(seen["run_page"]["loss"]["runs"], json!([runs[0].0]));
    assert_eq!(seen["console"], json!([]), "no errors in the page");
    for f in [
        "runs-table.png",
        "compare.png",
        "compare-smoothed.png",
        "run.png",
    ] {
        assert!(shots.join(f).is_file(), "{f}");
    }
}

/// The assets pages load: named by their content's hash, cached for good, the chart library's
/// licence served beside it, anything else not found.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assets_are_hashed_and_cached() {
    let s = TestServer::sqlite().await;
    for (stem, ext, ctype) in [
        ("uplot", "js", "text/javascript"),
        ("uplot", "css", "text/css"),
        ("charts", "js", "text/javascript"),
        ("uplot-license", "txt", "text/plain"),
    ] {
        let url = polyaxon_server::ui::asset_url(stem, ext);
        let resp = reqwest::get(format!("{}{url}", s.base)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{url}");
        let h = resp.headers().clone();
        assert!(h["content-type"].to_str().unwrap().starts_with(ctype));
        assert!(h["cache-control"].to_str().unwrap().contains("immutable"));
        let body = resp.text().await.unwrap();
        assert!(!body.is_empty());
        if stem == "uplot-license" {
            assert!(body.contains("MIT License"), "{body}");
        }
    }
    let stale = reqwest::get(format!("{}/ui/assets/uplot.000000000000.js", s.base))
        .await
        .unwrap();
    assert_eq!(stale.status(), StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_run_is_followed_edited_and_stopped_from_its_page() {
    let Some(py) = browser() else { return };
    let s = TestServer::sqlite().await;
    let p = s.project("live").await;
    let running = s.run(&p, json!({"name": "training"})).await;
    let other = s.run(&p, json!({"name": "bystander"})).await;
    for st in ["queued", "scheduled", "running"] {
        let (code, b) = s
            .post(
                &format!("/api/v1/root/{p}/runs/{running}/statuses"),
                json!({"condition": {"type": st}, "force": true}),
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{b}");
    }
    let streams = format!("/streams/v1/polyaxon/root/{p}/runs/{running}");
    let (code, b) = s
        .post(
            &format!("{streams}/logs"),
            json!({"logs": [{"value": "epoch 1 done"}]}),
        )
        .await;
    assert!(code.is_success(), "{b}");
    let (code, b) = s
        .post(
            &format!("{streams}/metrics"),
            json!({"metrics": [{"name": "loss", "step": [0, 1, 2], "value": [0.9, 0.7, 0.5]}]}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{b}");

    let seen = scenario(&py, "live", &s, &p, &[&running, &other], &[&s.root_token]).await;
    let shots = shots();
    // The new line and points arrived without a reload.
    assert_eq!(seen["reloads"], 1, "{seen}");
    assert_eq!(
        seen["live_points"],
        json!([0.9, 0.7, 0.5, 0.3, 0.2, 0.1]),
        "{seen}"
    );
    eprintln!("live update seen after {} s; {seen}", seen["live_after_s"]);
    // Zoomed (+) to the middle half, panned (→) by a fifth of it, kept while points arrived;
    // reset (0) to every point, the new ones too.
    let x = |k: &str| -> (f64, f64) {
        (
            seen[k][0].as_f64().unwrap_or(f64::NAN),
            seen[k][1].as_f64().unwrap_or(f64::NAN),
        )
    };
    let (full, zoomed, panned) = (x("x_full"), x("x_zoomed"), x("x_panned"));
    let w = full.1 - full.0;
    assert!((zoomed.1 - zoomed.0 - w / 2.0).abs() < 1e-6, "{seen}");
    assert!((panned.0 - zoomed.0 - w / 10.0).abs() < 1e-6, "{seen}");
    assert_eq!(x("x_after_points"), panned, "{seen}");
    assert_eq!(x("x_reset"), (0.0, 21.0), "{seen}");
    // A page opened before its run's first metric charts it as it arrives.
    assert_eq!(seen["charts_at_load"], json!([]), "{seen}");
    assert_eq!(seen["controls_hidden_at_load"], true, "{seen}");
    assert_eq!(
        seen["discovered"]["acc"]["data"],
        json!([[0, 1], [0.25, 0.5]]),
        "{seen}"
    );
    assert_eq!(seen["controls_hidden_after"], false, "{seen}");
    assert!(
        seen["confirm"].as_str().unwrap().contains("Stop run"),
        "{seen}"
    );
    assert!(
        matches!(
            seen["stopped_status"].as_str(),
            Some("stopping" | "stopped")
        ),
        "{seen}"
    );
    let (_, r) = s.get(&format!("/api/v1/root/{p}/runs/{running}")).await;
    assert_eq!(r["name"], "renamed-from-the-page");
    assert!(
        matches!(r["status"].as_str(), Some("stopping" | "stopped")),
        "{r}"
    );
    // The forged stop changed nothing.
    let (_, r) = s.get(&format!("/api/v1/root/{p}/runs/{other}")).await;
    assert_eq!(r["status"], "created", "{seen}");
    for f in ["live.png", "stopped.png"] {
        assert!(shots.join(f).is_file(), "{f}");
    }
}

/// Changes through the dashboard's cookie need the page's CSRF token, from this site: a
/// cookie alone, a wrong token, or another origin is refused; a bearer token needs none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_by_cookie_need_the_pages_csrf_token() {
    let s = TestServer::sqlite().await;
    let p = s.project("csrf").await;
    let uuid = s.run(&p, json!({"name": "target"})).await;
    let client = reqwest::Client::new();
    let host = s.base.trim_start_matches("http://").to_string();
    let session = s.root_token.clone();
    let good = polyaxon_server::auth::csrf_token(&session);
    let stop = format!("{}/api/v1/root/{p}/runs/{uuid}/approve", s.base);
    let send = |csrf: Option<&str>, origin: Option<&str>| {
        let mut rb = client
            .post(&stop)
            .header(
                "Cookie",
                format!("{}={session}", polyaxon_server::auth::COOKIE),
            )
            .header("Host", &host);
        if let Some(c) = csrf {
            rb = rb.header(polyaxon_server::auth::CSRF_HEADER, c);
        }
        if let Some(o) = origin {
            rb = rb.header("Origin", o);
        }
        rb.send()
    };
    for (csrf, origin, why) in [
        (None, None, "a cookie alone"),
        (Some("0000"), None, "a wrong token"),
        (
            Some(good.as_str()),
            Some("http://evil.example"),
            "another origin",
        ),
    ] {
        let resp = send(csrf, origin).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{why}");
    }
    let resp = send(Some(&good), Some(&s.base)).await.unwrap();
    assert!(
        resp.status().is_success(),
        "the page's own: {}",
        resp.status()
    );
    let resp = send(Some(&good), None).await.unwrap();
    assert!(
        resp.status().is_success(),
        "no Origin (same-site navigations)"
    );
    // Behind a proxy that rewrites `Host`: the host it was asked for is the site's.
    let proxied = |origin: &str| {
        client
            .post(&stop)
            .header(
                "Cookie",
                format!("{}={session}", polyaxon_server::auth::COOKIE),
            )
            .header("Host", &host)
            .header("X-Forwarded-Host", "plx.example.com")
            .header(polyaxon_server::auth::CSRF_HEADER, &good)
            .header("Origin", origin)
            .send()
    };
    let resp = proxied("https://plx.example.com").await.unwrap();
    assert!(resp.status().is_success(), "proxied: {}", resp.status());
    let resp = proxied("https://evil.example").await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "another origin, proxied"
    );
}

/// What `polyaxon.tracking` (the official client, offline, from the test virtualenv) logs
/// besides metrics, on the run's page: images, text, HTML (sandboxed), a histogram, a ROC curve;
/// and a file's preview.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_tracking_logs_is_shown_on_the_runs_page() {
    let Some(py) = browser() else { return };
    let s = TestServer::sqlite().await;
    let p = s.project("media").await;
    let uuid = s.run(&p, json!({"name": "vision"})).await;
    let offline = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(&py)
        .args(["-c", r#"
import numpy as np
from polyaxon import tracking
tracking.init(is_offline=True, project="media", name="vision")
for step in range(2):
    img = np.zeros((16, 24, 3), dtype="uint8")
    img[:, : 12 * (step + 1)] = 255
    tracking.log_image(img, name="sample", step=step, dataformats="HWC")
    tracking.log_text(name="notes", text=f"epoch {step} looks fine", step=step)
    tracking.log_html(name="report", html=f"<b>step {step}</b><script>parent.pwned = 1</script>", step=step)
    tracking.log_histogram(name="weights", values=np.linspace(-1, 1, 100), bins=5, step=step)
tracking.log_roc_auc_curve(name="roc", fpr=[0.0, 0.2, 1.0], tpr=[0.0, 0.8, 1.0], auc=0.8, step=1)
# A dataframe: anything with pandas' `to_csv(path)` (pandas itself is not needed for the
# client's code path), written as pandas writes one, its index first.
import csv
class Frame:
    def to_csv(self, path):
        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["", "label", "score"])
            for i, (label, score) in enumerate([("cat", 0.9), ("dog, big", 0.4), ('say "hi"', 0.7)]):
                w.writerow([i, label, score])
tracking.log_dataframe(df=Frame(), name="predictions", content_type="csv", step=1)
tracking.log_confusion_matrix(name="errors", x=["cat", "dog"], y=["cat", "dog"], z=[[5, 1], [2, 7]], step=1)
tracking.TRACKING_RUN._event_logger.flush()
import os
os._exit(0)
"#])
        .env("POLYAXON_IS_OFFLINE", "true")
        .env("POLYAXON_OFFLINE_ROOT", offline.path())
        .env("POLYAXON_NO_OP", "false")
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // What it wrote, where a job's files go (the run's directory on the server's disk).
    let runs = offline.path().join("runs");
    let written = std::fs::read_dir(&runs)
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let dest = s.artifacts.path().join(&uuid);
    for sub in ["events", "assets"] {
        copy_tree(&written.join(sub), &dest.join(sub));
    }
    std::fs::write(dest.join("notes.txt"), "a <b>text</b> file\n").unwrap();

    let seen = scenario(&py, "media", &s, &p, &[&uuid], &[]).await;
    let shots = shots();
    let kinds: Vec<&str> = seen["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(J::as_str)
        .collect();
    for k in [
        "image:sample",
        "text:notes",
        "html:report",
        "histogram:weights",
        "curve:roc",
        "dataframe:predictions",
        "confusion:errors",
    ] {
        assert!(kinds.contains(&k), "{k} not shown: {seen}");
    }
    // Both steps' images, decoded by the browser at their size.
    let images = seen["images"].as_array().unwrap();
    assert_eq!(images.len(), 2, "{seen}");
    for i in images {
        assert_eq!(
            (i["w"].as_u64(), i["h"].as_u64()),
            (Some(24), Some(16)),
            "{seen}"
        );
    }
    // The last HTML, sandboxed (its script does not run here).
    assert!(
        seen["html"]["srcdoc"]
            .as_str()
            .unwrap()
            .contains("<b>step 1</b>")
    );
    assert_eq!(seen["html"]["sandbox"], "");
    assert!(
        seen["text"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "epoch 1 looks fine"),
        "{seen}"
    );
    assert_eq!(seen["bars"], 5, "one bar per bin: {seen}");
    assert!(
        seen["curve"]
            .as_str()
            .is_some_and(|p| p.split(' ').filter(|x| !x.is_empty()).count() == 3),
        "{seen}"
    );
    // The dataframe's rows as a table, quoted fields read as CSV has them.
    assert_eq!(
        seen["dataframe"],
        json!([
            ["", "label", "score"],
            ["0", "cat", "0.9"],
            ["1", "dog, big", "0.4"],
            ["2", "say \"hi\"", "0.7"]
        ]),
        "{seen}"
    );
    // The confusion matrix: actual classes by row, predicted by column.
    assert_eq!(
        seen["confusion"],
        json!([
            ["actual ╲ predicted", "cat", "dog"],
            ["cat", "5", "1"],
            ["dog", "2", "7"]
        ]),
        "{seen}"
    );
    assert_eq!(seen["preview_image_width"], 24);
    assert_eq!(seen["preview_text"], "a <b>text</b> file");
    assert_eq!(seen["console"], json!([]), "{seen}");
    assert!(shots.join("media.png").is_file());
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).into_iter().flatten().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// The runs table as CSV: the chosen columns, every run the query matches, fields quoted and
/// a spreadsheet formula defused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runs_table_exports_csv() {
    let s = TestServer::sqlite().await;
    let p = s.project("export").await;
    for (name, lr) in [("=HYPERLINK(\"x\")", 0.1), ("plain, with a comma", 0.2)] {
        let uuid = s.run(&p, json!({"name": name})).await;
        let (st, b) = s
            .patch(
                &format!("/api/v1/root/{p}/runs/{uuid}"),
                json!({"inputs": {"lr": lr}}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
    }
    let resp = reqwest::Client::new()
        .get(format!(
            "{}/ui/root/{p}?col=name&col=params.lr&sort=params.lr&format=csv",
            s.base
        ))
        .header("Authorization", format!("Token {}", s.root_token))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let text = resp.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "name,params.lr,uuid");
    assert!(
        lines[1].starts_with("\"'=HYPERLINK(\"\"x\"\")\",0.1,"),
        "{text}"
    );
    assert!(
        lines[2].starts_with("\"plain, with a comma\",0.2,"),
        "{text}"
    );
    assert_eq!(lines.len(), 3);
}

/// A search's page (trials best first, its parallel coordinates brushed with the mouse, each
/// param against the metric, the best so far) and a running DAG's page following its
/// operations' statuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_searchs_trials_are_brushed_and_a_dag_followed_live() {
    let Some(py) = browser() else { return };
    let s = TestServer::sqlite().await;
    let p = s.project("tuning").await;
    let content = r#"
version: 1.1
kind: operation
matrix:
  kind: bayes
  numInitialRuns: 8
  maxIterations: 2
  metric: {name: loss, optimization: minimize}
  params:
    lr: {kind: loguniform, value: [0.0001, 0.1]}
    layers: {kind: choice, value: [2, 4, 8]}
    act: {kind: choice, value: [relu, tanh]}
component:
  inputs:
    - {name: lr, type: float}
    - {name: layers, type: int}
    - {name: act, type: str}
  run:
    kind: job
    container: {image: busybox, command: ["true"]}
"#;
    let search = s
        .run(&p, json!({"name": "lr-search", "content": content}))
        .await;
    // Trials: (lr, layers, act, loss, acc); the last two without a loss (running, failed).
    let trials = [
        (0.0001, 2, "relu", Some(0.90), 0.40),
        (0.001, 4, "tanh", Some(0.35), 0.81),
        (0.01, 8, "relu", Some(0.20), 0.86),
        (0.1, 2, "tanh", Some(0.75), 0.55),
        (0.003, 4, "relu", Some(0.28), 0.90),
        (0.03, 8, "tanh", Some(0.22), 0.84),
        (0.0003, 2, "relu", None, 0.0),
        (0.05, 4, "tanh", None, 0.0),
    ];
    let mut uuids = Vec::new();
    for (i, (lr, layers, act, loss, acc)) in trials.iter().enumerate() {
        let u = s
            .run(
                &p,
                json!({"name": format!("lr-search-{}", i + 1),
                       "meta_info": {"pipeline": search, "pipeline_kind": "matrix", "trial": i}}),
            )
            .await;
        let (st, b) = s
            .patch(
                &format!("/api/v1/root/{p}/runs/{u}"),
                json!({"inputs": {"lr": lr, "layers": layers, "act": act}}),
            )
            .await;
        assert_eq!(st, StatusCode::OK, "{b}");
        let end = match (loss, i) {
            (Some(_), _) => "succeeded",
            (None, 6) => "running",
            _ => "failed",
        };
        let path = if end == "failed" {
            vec!["queued", "scheduled", "running", "failed"]
        } else {
            ["queued", "scheduled", "running", end][..if end == "running" { 3 } else { 4 }].to_vec()
        };
        for st in path {
            let (code, b) = s
                .post(
                    &format!("/api/v1/root/{p}/runs/{u}/statuses"),
                    json!({"condition": {"type": st}, "force": true}),
                )
                .await;
            assert_eq!(code, StatusCode::OK, "{b}");
        }
        if let Some(loss) = loss {
            let (st, b) = s
                .post(
                    &format!("/streams/v1/polyaxon/root/{p}/runs/{u}/metrics"),
                    json!({"metrics": [{"name": "loss", "step": [0, 1], "value": [1.0, loss]},
                                       {"name": "acc", "step": [1], "value": [acc]}]}),
                )
                .await;
            assert_eq!(st, StatusCode::OK, "{b}");
        }
        uuids.push(u);
    }
    // A DAG that is running: `prepare` running, `train` waiting for it.
    let dag = s.run(&p, json!({"name": "pipeline"})).await;
    let mut ops = vec![];
    for name in ["prepare", "train"] {
        let u = s
            .run(
                &p,
                json!({"name": name, "meta_info": {"pipeline": dag, "pipeline_kind": "dag"}}),
            )
            .await;
        ops.push(u);
    }
    s.patch(
        &format!("/api/v1/root/{p}/runs/{dag}"),
        json!({"meta_info": {"dag": {"ops": [{"name": "prepare", "uuid": ops[0]}, {"name": "train", "uuid": ops[1]}],
               "edges": [["prepare", "train"]]}}}),
    )
    .await;
    for u in [&dag, &ops[0]] {
        for st in ["queued", "scheduled", "running"] {
            s.post(
                &format!("/api/v1/root/{p}/runs/{u}/statuses"),
                json!({"condition": {"type": st}, "force": true}),
            )
            .await;
        }
    }

    let dag_arg = format!("{dag},{},{}", ops[0], ops[1]);
    let seen = scenario(
        &py,
        "pipelines",
        &s,
        &p,
        &[&search, &dag_arg],
        &[&s.root_token],
    )
    .await;
    let shots = shots();
    let loss_of = |u: &J| {
        let i = uuids.iter().position(|x| x == u.as_str().unwrap()).unwrap();
        trials[i].3
    };
    // Best (lowest loss) first, those without one last in their order.
    let want: Vec<&str> = [2, 5, 4, 1, 3, 0, 6, 7]
        .iter()
        .map(|&i| uuids[i].as_str())
        .collect();
    assert_eq!(seen["ranked"], json!(want), "{seen}");
    // An axis per param (lr by its logarithm, as the matrix samples it), the metric last.
    let axes = seen["axes"].as_array().unwrap();
    let names: Vec<&str> = axes.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names.last(), Some(&"loss"), "{seen}");
    let mut params = names[..names.len() - 1].to_vec();
    params.sort_unstable();
    assert_eq!(params, ["act", "layers", "lr"]);
    let lr = axes.iter().find(|a| a["name"] == "lr").unwrap();
    assert_eq!(lr["scale"], "log", "{lr}");
    assert_eq!(
        axes.iter().find(|a| a["name"] == "act").unwrap()["categories"],
        json!(["relu", "tanh"])
    );
    // Each param against the loss: a point per trial that has one.
    let scatters = seen["scatters"].as_array().unwrap();
    assert_eq!(scatters.len(), 3, "{seen}");
    assert!(scatters.iter().all(|s| s[1] == 6), "{seen}");
    // The best so far, in the trials' order.
    assert_eq!(
        seen["best_so_far"],
        json!([0.9, 0.35, 0.2, 0.2, 0.2, 0.2]),
        "{seen}"
    );

    // The lower half of the loss axis: from the lowest loss to about the middle.
    let range = &seen["brushed"]["ranges"]["loss"];
    let (lo, hi) = (range[0].as_f64().unwrap(), range[1].as_f64().unwrap());
    assert!((lo - 0.2).abs() < 1e-9, "{range}");
    assert!((hi - 0.55).abs() < 0.05, "{range}");
    let within: Vec<&str> = uuids
        .iter()
        .enumerate()
        .filter(|(i, _)| trials[*i].3.is_some_and(|l| l >= lo && l <= hi))
        .map(|(_, u)| u.as_str())
        .collect();
    let mut selected: Vec<&str> = seen["brushed"]["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    selected.sort_unstable();
    let mut want_sel = within.clone();
    want_sel.sort_unstable();
    assert_eq!(selected, want_sel, "{seen}");
    assert_eq!(within.len(), 4);
    // The table keeps those rows only, still best first; the others' lines fade.
    let rows: Vec<&J> = seen["brushed_rows"].as_array().unwrap().iter().collect();
    assert_eq!(rows.len(), 4, "{seen}");
    assert!(rows.windows(2).all(|w| loss_of(w[0]) <= loss_of(w[1])));
    assert_eq!(seen["faded"], 4, "{seen}");
    // With `act` brushed to `tanh` too: both ranges hold.
    assert_eq!(seen["both"]["ranges"]["act"], json!(["tanh"]), "{seen}");
    let both: Vec<&str> = seen["both_rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert_eq!(both, [uuids[5].as_str(), uuids[1].as_str()], "{seen}");
    // Cleared by a click on the loss axis, then by Escape.
    assert!(
        seen["cleared_one"]["ranges"].get("loss").is_none(),
        "{seen}"
    );
    assert!(seen["cleared_one"]["ranges"].get("act").is_some(), "{seen}");
    assert_eq!(seen["cleared_all"]["ranges"], json!({}), "{seen}");
    assert_eq!(seen["rows_after_clear"], seen["ranked"]);
    // By keyboard: the middle half of lr's (log) axis, then a tenth up.
    let kr = &seen["keyboard"]["ranges"]["lr"];
    let (klo, khi) = (kr[0].as_f64().unwrap(), kr[1].as_f64().unwrap());
    let at = |t: f64| (0.0001f64.ln() + t * (0.1f64.ln() - 0.0001f64.ln())).exp();
    assert!(
        (klo - at(0.35)).abs() < 1e-9 && (khi - at(0.85)).abs() < 1e-9,
        "{kr}"
    );
    let mut kept: Vec<&str> = seen["keyboard"]["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    kept.sort_unstable();
    let mut want_kept: Vec<&str> = uuids
        .iter()
        .enumerate()
        .filter(|(i, _)| trials[*i].0 >= klo && trials[*i].0 <= khi)
        .map(|(_, u)| u.as_str())
        .collect();
    want_kept.sort_unstable();
    assert_eq!(kept, want_kept, "{seen}");
    assert_eq!(seen["keyboard_cleared"]["ranges"], json!({}), "{seen}");
    // Ranked by accuracy, highest first, when asked.
    assert_eq!(seen["by_acc"][0], json!(uuids[4]), "{seen}");
    assert_eq!(seen["by_acc"][1], json!(uuids[2]), "{seen}");

    // The DAG's nodes followed their runs without a reload.
    assert_eq!(seen["dag_before"], json!(["running", "created"]), "{seen}");
    assert_eq!(seen["dag_after"], json!(["succeeded", "running"]), "{seen}");
    assert_eq!(seen["dag_table"], json!(["succeeded", "running"]), "{seen}");
    assert_eq!(seen["reloads"], 1, "{seen}");
    eprintln!("the DAG's statuses followed in {} s", seen["dag_after_s"]);
    assert_eq!(seen["console"], json!([]), "no errors in the page");
    for f in ["search.png", "search-brushed.png", "dag.png"] {
        assert!(shots.join(f).is_file(), "{f}");
    }
}
