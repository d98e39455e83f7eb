#!/usr/bin/env python3
"""Metrics at speed: our server against the MLflow tracking server and a raw PostgreSQL COPY,
on the same PostgreSQL.

Usage: bench/server_vs_mlflow.py [--mlflow-points N]
Needs a PostgreSQL where the role may create databases: POLYAXON_BENCH_DATABASE_URL (default
the test server that scripts/test sets up). Installs mlflow and psycopg2 into a private
virtualenv. Prints the figures; bench/RESULTS.md records them.

Measured:
  1. ingestion: 1,000,000 points from 8 concurrent runs through our HTTP batch endpoint;
     MLflow `log_batch` (1000 metrics a call, its limit) from 8 concurrent runs; raw COPY of the
     same 1,000,000 rows into a plain (run, key, value, step, timestamp) table.
  2. fetch: a 1,000,000-point series downsampled to 1,000 points (median of 20).
  3. listing: the first page of runs, a page deep in, and a query, at 100,000 runs (median of 20).
"""
import argparse
import io
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("POLYAXON_BENCH_CACHE", pathlib.Path.home() / ".cache" / "polyaxon-rs"))
PG = os.environ.get("POLYAXON_BENCH_DATABASE_URL", "postgres://polyaxon:polyaxon-test@127.0.0.1:5432/polyaxon_test")
MLFLOW = "3.17.2"
TARGET = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def venv():
    v = CACHE / "bench-mlflow-venv"
    py = v / "bin" / "python"
    check = f"import mlflow, psycopg2; assert mlflow.__version__ == {MLFLOW!r}"
    if not py.exists() or subprocess.run([str(py), "-c", check], capture_output=True).returncode:
        log(f"installing mlflow {MLFLOW} and psycopg2 into {v}")
        subprocess.run([sys.executable, "-m", "venv", str(v)], check=True)
        subprocess.run([str(v / "bin" / "pip"), "install", "-q", f"mlflow=={MLFLOW}", "psycopg2-binary==2.9.10"], check=True)
    return v


def psql_url(db):
    base = PG.rsplit("/", 1)[0]
    return f"{base}/{db}"


def recreate(db, py):
    code = f"""
import psycopg2
c = psycopg2.connect({PG!r}); c.autocommit = True
cur = c.cursor()
cur.execute("DROP DATABASE IF EXISTS {db} WITH (FORCE)")
cur.execute("CREATE DATABASE {db}")
# Durable commits, as a deployment has: scripts/test turns them off for its own role.
cur.execute("ALTER ROLE CURRENT_USER IN DATABASE {db} SET synchronous_commit = on")
"""
    subprocess.run([str(py), "-c", code], check=True)


def wait_http(url, timeout=60):
    end = time.time() + timeout
    while time.time() < end:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except Exception:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


def loadgen(*args):
    out = subprocess.run([str(TARGET / "release" / "examples" / "loadgen"), *map(str, args)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "polyaxon-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "polyaxon-server", "--example", "loadgen"], cwd=ROOT, check=True)
    py = venv() / "bin" / "python"
    recreate("polyaxon_bench", py)
    port = free_port()
    home = tempfile.mkdtemp()
    env = {**os.environ, "POLYAXON_HOME": home, "POLYAXON_ADMIN_PASSWORD": "bench-password", "RUST_LOG": "warn"}
    server = subprocess.Popen([str(TARGET / "release" / "polyaxon"), "server", "start", "--database-url", psql_url("polyaxon_bench"), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
        req = urllib.request.Request(f"{base}/api/v1/auth/token", data=json.dumps({"username": "root", "password": "bench-password"}).encode(),
                                     headers={"Content-Type": "application/json"})
        token = json.load(urllib.request.urlopen(req))["token"]
        for name in ["ingest", "fetch", "listing"]:
            req = urllib.request.Request(f"{base}/api/v1/root/projects/create", data=json.dumps({"name": name}).encode(),
                                         headers={"Content-Type": "application/json", "Authorization": f"Token {token}"})
            urllib.request.urlopen(req)
        log("ours: ingesting 1,000,000 points from 8 runs")
        ingest = loadgen("ingest", base, token, "root", "ingest", 8, 125_000, 5_000)
        log(f"  {ingest['points_per_second']:,.0f} points/s")
        log("ours: one 1,000,000-point series, fetched downsampled to 1,000")
        one = loadgen("ingest", base, token, "root", "fetch", 1, 1_000_000, 20_000)
        fetch = loadgen("fetch", base, token, "root", "fetch", one["runs"][0], "loss", 1000, 20)
        log(f"  median {fetch['median_ms']:.1f} ms")
        log("ours: 100,000 runs, then listing pages")
        created = loadgen("runs", base, token, "root", "listing", 100_000, 8)
        listing = loadgen("list", base, token, "root", "listing", 20)
        log(f"  {json.dumps(listing)}")
        return {"ingest": ingest | {"runs": None}, "fetch": fetch, "create_runs": created, "listing": listing}
    finally:
        server.terminate()
        server.wait(timeout=30)


MLFLOW_CLIENT = r"""
import sys, threading, time
from mlflow.tracking import MlflowClient
from mlflow.entities import Metric
uri, runs, per_run = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
client = MlflowClient(tracking_uri=uri)
exp = client.create_experiment(f"bench-{time.time()}")
run_ids = [client.create_run(exp).info.run_id for _ in range(runs)]
batches = {}
for rid in run_ids:
    batches[rid] = [[Metric("loss", 1.0 / (1 + s), 1700000000000 + s, s) for s in range(start, min(start + 1000, per_run))] for start in range(0, per_run, 1000)]
def work(rid):
    c = MlflowClient(tracking_uri=uri)
    for b in batches[rid]:
        c.log_batch(rid, metrics=b)
t = time.perf_counter()
ts = [threading.Thread(target=work, args=(r,)) for r in run_ids]
[x.start() for x in ts]; [x.join() for x in ts]
secs = time.perf_counter() - t
print(runs * per_run, secs)
"""


def mlflow(points):
    v = venv()
    recreate("mlflow_bench", v / "bin" / "python")
    port = free_port()
    art = tempfile.mkdtemp()
    # SQLAlchemy 2.1 takes plain postgresql:// to mean psycopg 3: name the driver installed.
    uri = psql_url("mlflow_bench").replace("postgres://", "postgresql+psycopg2://")
    server_log = open(pathlib.Path(art) / "server.log", "w")
    server = subprocess.Popen([str(v / "bin" / "mlflow"), "server", "--backend-store-uri", uri, "--default-artifact-root", art,
                               "--host", "127.0.0.1", "--port", str(port), "--workers", "4"],
                              stdout=server_log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}/health", timeout=120)
        except RuntimeError:
            log((pathlib.Path(art) / "server.log").read_text()[-3000:])
            raise
        per_run = points // 8
        log(f"mlflow: log_batch of {8 * per_run:,} points from 8 runs")
        out = subprocess.run([str(v / "bin" / "python"), "-c", MLFLOW_CLIENT, f"http://127.0.0.1:{port}", "8", str(per_run)],
                             check=True, capture_output=True, text=True)
        n, secs = out.stdout.split()
        rate = int(n) / float(secs)
        log(f"  {rate:,.0f} points/s")
        return {"points": int(n), "seconds": float(secs), "points_per_second": rate}
    finally:
        server.terminate()
        server.wait(timeout=30)


COPY = r"""
import io, sys, time, psycopg2
url, n = sys.argv[1], int(sys.argv[2])
c = psycopg2.connect(url); cur = c.cursor()
cur.execute("DROP TABLE IF EXISTS raw_metrics")
cur.execute("CREATE TABLE raw_metrics (run_id INTEGER NOT NULL, key TEXT NOT NULL, value DOUBLE PRECISION NOT NULL, step BIGINT, ts BIGINT NOT NULL)")
c.commit()
buf = io.StringIO()
for i in range(n):
    run = i % 8
    buf.write(f"{run}\tloss\t{1.0 / (1 + i)}\t{i}\t{1700000000000000 + i}\n")
data = buf.getvalue()
t = time.perf_counter()
cur.copy_expert("COPY raw_metrics (run_id, key, value, step, ts) FROM STDIN", io.StringIO(data))
c.commit()
print(n, time.perf_counter() - t)
"""


def raw_copy():
    v = venv()
    recreate("copy_bench", v / "bin" / "python")
    log("raw COPY of 1,000,000 rows")
    out = subprocess.run([str(v / "bin" / "python"), "-c", COPY, psql_url("copy_bench"), "1000000"], check=True, capture_output=True, text=True)
    n, secs = out.stdout.split()
    rate = int(n) / float(secs)
    log(f"  {rate:,.0f} points/s")
    return {"points": int(n), "seconds": float(secs), "points_per_second": rate}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mlflow-points", type=int, default=200_000)
    args = ap.parse_args()
    res = {"ours": ours(), "raw_copy": raw_copy(), "mlflow": mlflow(args.mlflow_points)}
    o = res["ours"]["ingest"]["points_per_second"]
    res["ratios"] = {"ours_over_mlflow": o / res["mlflow"]["points_per_second"], "ours_over_copy": o / res["raw_copy"]["points_per_second"]}
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "server_vs_mlflow.json").write_text(json.dumps(res, indent=2))
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
