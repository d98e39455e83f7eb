#!/usr/bin/env python3
"""Eight writers into one run against eight writers into eight runs, on PostgreSQL and SQLite.

Usage: bench/ingest_one_run.py [--repeats N]
Needs a PostgreSQL where the role may create databases: POLYAXON_BENCH_DATABASE_URL (default
the test server that scripts/test sets up) and `psql`. Builds the release binary and
`server/examples/loadgen.rs`, starts `polyaxon server start` on each store, and drives it over
HTTP: the same points either as 8 runs with one writer each, or as one run whose 8 writers share
its batches round-robin (into one series, every batch with an id), at a large batch size (a
file sync) and a small one (live training). Prints one JSON document; bench/RESULTS.md records
the figures.
"""
import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from server_vs_mlflow import PG, ROOT, TARGET, free_port, log, loadgen, psql_url, wait_http  # noqa: E402

CASES = [
    # (label, batch, total points)
    ("batches of 5,000 points", 5_000, 400_000),
    ("batches of 50 points", 50, 40_000),
]


def start_server(url, home):
    port = free_port()
    env = {**os.environ, "POLYAXON_HOME": home, "POLYAXON_ADMIN_PASSWORD": "bench-password", "RUST_LOG": "warn"}
    server = subprocess.Popen([str(TARGET / "release" / "polyaxon"), "server", "start", "--database-url", url, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    wait_http(f"{base}/healthz")
    req = urllib.request.Request(f"{base}/api/v1/auth/token", data=json.dumps({"username": "root", "password": "bench-password"}).encode(),
                                 headers={"Content-Type": "application/json"})
    token = json.load(urllib.request.urlopen(req))["token"]
    return server, base, token


def project(base, token, name):
    req = urllib.request.Request(f"{base}/api/v1/root/projects/create", data=json.dumps({"name": name}).encode(),
                                 headers={"Content-Type": "application/json", "Authorization": f"Token {token}"})
    urllib.request.urlopen(req)


def bench_store(label, url, repeats):
    home = tempfile.mkdtemp()
    server, base, token = start_server(url, home)
    out = {}
    try:
        for case, batch, total in CASES:
            for shape, runs, writers in [("8 runs, 1 writer each", 8, 1), ("1 run, 8 writers", 1, 8)]:
                rates = []
                for i in range(repeats):
                    name = f"p{len(out)}-{i}"
                    project(base, token, name)
                    r = loadgen("ingest", base, token, "root", name, runs, total // runs, batch, writers)
                    rates.append(r["points_per_second"])
                key = f"{case}: {shape}"
                out[key] = statistics.median(rates)
                log(f"{label}: {key}: {out[key]:,.0f} points/s (median of {repeats})")
    finally:
        server.terminate()
        server.wait(timeout=30)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "polyaxon-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "polyaxon-server", "--example", "loadgen"], cwd=ROOT, check=True)
    db = "polyaxon_bench_one_run"
    subprocess.run(["psql", "-q", PG, "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=True)
    subprocess.run(["psql", "-q", PG, "-c", f"CREATE DATABASE {db}"], check=True)
    # Durable commits, as a deployment has: scripts/test turns them off for its own role.
    subprocess.run(["psql", "-q", PG, "-c", f"ALTER ROLE CURRENT_USER IN DATABASE {db} SET synchronous_commit = on"], check=True)
    sqlite_dir = tempfile.mkdtemp()
    res = {
        "postgres": bench_store("postgres", psql_url(db), args.repeats),
        "sqlite": bench_store("sqlite", f"sqlite://{sqlite_dir}/polyaxon.db?mode=rwc", args.repeats),
        "at": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
