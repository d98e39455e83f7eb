#!/usr/bin/env python3
"""The dashboard in Chromium: time to the first chart drawn for a comparison of 10 runs x 5
metrics x 100,000 points each, side by side with MLflow's UI holding the same data; and the
runs table at 100,000 runs.

Usage: ~/.cache/polyaxon-rs/venv/bin/python bench/ui_bench.py [--runs 10] [--metrics 5]
           [--points 100000] [--table-runs 100000] [--repeat 5] [--no-mlflow]
Run it with the test virtualenv's Python (Selenium); Debian's chromium and chromium-driver.
Uses target/release/polyaxon when it is built (else the debug one, and says so). MLflow
(bench/server_vs_mlflow.py's pinned version) comes from its private virtualenv.

Measured, each in a fresh tab with the browser's cache warm (the second and later loads; the
first, cold, is printed too):
  1. ours: navigation start -> every chart of the comparison page drawn (charts.js marks it);
  2. MLflow: navigation start -> the first metric line chart of its runs' chart view drawn;
  3. the runs table at 100,000 runs: navigation start -> the page interactive
     (domInteractive), and the table's first page there.
"""
import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parent.parent
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", pathlib.Path.home() / ".cache/polyaxon-rs/target"))
PASSWORD = "bench-admin-password"
sys.path.insert(0, str(ROOT / "bench"))
import server_vs_mlflow as svm  # noqa: E402  (its MLflow virtualenv and helpers)

log = svm.log
free_port = svm.free_port


def wait_up(url, secs):
    """Waits until `url` answers (a server starting)."""
    end = time.time() + secs
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within {secs} s")


def call(base, method, path, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, method=method, data=data,
                                 headers={"Content-Type": "application/json"})
    if token:
        req.add_header("Authorization", f"Token {token}")
    with urllib.request.urlopen(req, timeout=600) as r:
        text = r.read()
        return json.loads(text) if text else None


def series(run, metric, n):
    # Noisy decreasing curves, different per run and metric.
    import math
    k = 1 + run * 0.1 + metric * 0.05
    return [k / (1 + i / 1000) + 0.05 * math.sin(i * 0.37 + run) for i in range(n)]


def browser():
    opts = Options()
    opts.binary_location = os.environ.get("POLYAXON_TEST_CHROMIUM", "/usr/bin/chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1100"]:
        opts.add_argument(a)
    return webdriver.Chrome(service=Service(os.environ.get("POLYAXON_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")),
                            options=opts)


def timed(driver, url, ready_js, timeout=120):
    """Loads `url` and waits until `ready_js` gives a number (a performance.now() time)."""
    driver.get("about:blank")
    driver.get(url)
    WebDriverWait(driver, timeout, poll_frequency=0.02).until(lambda d: d.execute_script(ready_js) is not None)
    return driver.execute_script(ready_js)


def ours(args, drv):
    binary = TARGET / "release" / "polyaxon"
    if not binary.exists():
        binary = TARGET / "debug" / "polyaxon"
        log(f"note: no release build; using {binary} (figures of a debug build)")
    home = tempfile.mkdtemp(prefix="plx-ui-bench-")
    port = free_port()
    env = dict(os.environ, POLYAXON_HOME=home, POLYAXON_ADMIN_PASSWORD=PASSWORD, RUST_LOG="warn")
    srv = subprocess.Popen([str(binary), "server", "start", "--port", str(port)], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base + "/healthz", 20)
        token = call(base, "POST", "/api/v1/auth/token", {"username": "root", "password": PASSWORD})["token"]
        call(base, "POST", "/api/v1/root/projects/create", {"name": "bench"}, token)
        uuids = []
        t0 = time.time()
        for r in range(args.runs):
            u = call(base, "POST", "/api/v1/root/bench/runs", {"name": f"run-{r}"}, token)["uuid"]
            uuids.append(u)
            for m in range(args.metrics):
                values = series(r, m, args.points)
                call(base, "POST", f"/streams/v1/polyaxon/root/bench/runs/{u}/metrics",
                     {"id": f"{u}-{m}", "metrics": [{"name": f"metric_{m}", "step": list(range(args.points)),
                                                     "value": values}]}, token)
        log(f"ours: {args.runs * args.metrics * args.points:,} points stored in {time.time() - t0:.1f} s")
        # Signed in as a user is.
        drv.get(f"{base}/ui/login")
        drv.find_element("name", "username").send_keys("root")
        drv.find_element("name", "password").send_keys(PASSWORD)
        drv.find_element("css selector", "form button").click()
        WebDriverWait(drv, 20).until(lambda d: "/ui/login" not in d.current_url)
        url = f"{base}/ui/root/bench/compare?runs={','.join(uuids)}"
        ready = "return window.plxChartsDrawnAt === undefined ? null : window.plxChartsDrawnAt"
        times = [timed(drv, url, ready) for _ in range(args.repeat + 1)]
        drawn = drv.execute_script("return Object.keys(window.plxCharts).length")
        points = drv.execute_script("return window.plxCharts.metric_0.data[0].length")
        log(f"ours: {drawn} charts, {points} points drawn per series")
        table = None
        if args.table_runs:
            t0 = time.time()
            made = args.runs
            # Many runs quickly: 8 concurrent creators.
            from concurrent.futures import ThreadPoolExecutor
            def create(i):
                call(base, "POST", "/api/v1/root/bench/runs", {"name": f"t-{i}", "tags": ["even" if i % 2 else "odd"]}, token)
            with ThreadPoolExecutor(8) as ex:
                list(ex.map(create, range(args.table_runs - made)))
            log(f"ours: {args.table_runs:,} runs in the project after {time.time() - t0:.0f} s")
            turl = f"{base}/ui/root/bench"
            ready_t = "return performance.getEntriesByType('navigation')[0].domInteractive || null"
            tt = [timed(drv, turl, ready_t) for _ in range(args.repeat + 1)]
            sorted_url = f"{base}/ui/root/bench?sort=-created_at&query=tags:even"
            ts = [timed(drv, sorted_url, ready_t) for _ in range(args.repeat + 1)]
            table = (tt, ts)
        return times, table
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(home, ignore_errors=True)


def mlflow(args, drv):
    v = svm.venv()
    home = tempfile.mkdtemp(prefix="plx-ui-bench-mlflow-")
    port = free_port()
    srv = subprocess.Popen([str(v / "bin" / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
                            "--backend-store-uri", f"sqlite:///{home}/mlflow.db",
                            "--default-artifact-root", f"{home}/artifacts", "--workers", "2"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_up(base + "/health", 120)
        exp = call(base, "POST", "/api/2.0/mlflow/experiments/create", {"name": "bench"})["experiment_id"]
        # A model-training experiment (its runs' pages), not the GenAI overview MLflow 3 opens.
        call(base, "POST", "/api/2.0/mlflow/experiments/set-experiment-tag",
             {"experiment_id": exp, "key": "mlflow.experimentKind", "value": "custom_model_development"})
        ids = []
        t0 = time.time()
        now = int(time.time() * 1000)
        for r in range(args.runs):
            rid = call(base, "POST", "/api/2.0/mlflow/runs/create",
                       {"experiment_id": exp, "run_name": f"run-{r}", "start_time": now})["run"]["info"]["run_id"]
            ids.append(rid)
            for m in range(args.metrics):
                values = series(r, m, args.points)
                for i in range(0, args.points, 1000):
                    call(base, "POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": rid, "metrics": [
                        {"key": f"metric_{m}", "value": values[j], "timestamp": now + j, "step": j}
                        for j in range(i, min(i + 1000, args.points))]})
        log(f"mlflow: {args.runs * args.metrics * args.points:,} points stored in {time.time() - t0:.1f} s")
        # Its runs' chart view: a line chart per metric, every run overlaid (the runs shown are
        # the experiment's, all ten).
        url = f"{base}/#/experiments/{exp}/runs?compareRunsMode=CHART"
        ready = ("const p = document.querySelector('.js-plotly-plot .scatterlayer path.js-line, "
                 "[data-testid*=chart] canvas, .uplot canvas');"
                 "return p ? performance.now() : null")
        try:
            times = [timed(drv, url, ready, timeout=180) for _ in range(args.repeat + 1)]
        except Exception as e:  # noqa: BLE001 - said, not hidden
            drv.save_screenshot("/tmp/mlflow-ui-bench.png")
            log(f"mlflow: no chart seen within 180 s ({type(e).__name__}); screenshot in /tmp/mlflow-ui-bench.png")
            return None
        # What was drawn when the clock stopped, to look at.
        drv.save_screenshot("/tmp/mlflow-ui-bench.png")
        log("mlflow: its page as timed is in /tmp/mlflow-ui-bench.png")
        return times
    finally:
        srv.terminate()
        srv.wait()
        shutil.rmtree(home, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--metrics", type=int, default=5)
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--table-runs", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args()
    drv = browser()
    try:
        ours_t, table = ours(args, drv)
        ml = None if args.no_mlflow else mlflow(args, drv)
    finally:
        drv.quit()
    med = lambda xs: statistics.median(xs[1:])
    print(f"comparison of {args.runs} runs x {args.metrics} metrics x {args.points:,} points, first chart drawn:")
    print(f"  ours:   {med(ours_t):7.0f} ms warm (median of {args.repeat}), {ours_t[0]:.0f} ms cold")
    if ml:
        print(f"  MLflow: {med(ml):7.0f} ms warm (median of {args.repeat}), {ml[0]:.0f} ms cold"
              f"  -> ours {med(ml) / med(ours_t):.1f}x sooner")
    if table:
        tt, ts = table
        print(f"runs table at {args.table_runs:,} runs, interactive: {med(tt):.0f} ms (first page), "
              f"{med(ts):.0f} ms (query tags:even, sorted)")


if __name__ == "__main__":
    main()
