#!/usr/bin/env python3
"""A mixed load against the release server, on PostgreSQL and SQLite.

Usage: bench/load.py [--clients 200] [--seconds 60]
Needs a PostgreSQL where the role may create databases: POLYAXON_BENCH_DATABASE_URL (default
the test server that scripts/test sets up) and `psql`. Builds the release binary and
`server/examples/loadgen.rs`, starts `polyaxon server start` on each store, and runs
`loadgen mixed`: the clients list a project's runs (a page and a PQL query), read a run, read a
metric downsampled and send metrics batches, for the given time (the same driver as the `load`
test in scripts/test). Prints one JSON document; bench/RESULTS.md records the figures.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import pathlib
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from server_vs_mlflow import PG, ROOT, log, loadgen, psql_url  # noqa: E402
from ingest_one_run import project, start_server  # noqa: E402


def cpu_seconds(pid):
    """User and system CPU time of a process, in seconds (0 when it is gone)."""
    try:
        fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_pids():
    out = subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def bench_store(label, url, clients, seconds):
    home = tempfile.mkdtemp()
    server, base, token = start_server(url, home)
    try:
        project(base, token, "load")
        # Where the machine's CPU goes while the load runs: the server, the clients, the database.
        pg_before = {p: cpu_seconds(p) for p in postgres_pids()}
        server_before = cpu_seconds(server.pid)
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = loadgen("mixed", base, token, "root", "load", clients, seconds)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        r["cpu_seconds"] = {
            "server": round(cpu_seconds(server.pid) - server_before, 1),
            "clients": round(children.ru_utime + children.ru_stime - children_before.ru_utime - children_before.ru_stime, 1),
            "postgres": round(sum(cpu_seconds(p) - pg_before.get(p, 0.0) for p in postgres_pids()), 1),
        }
        log(f"{label}: CPU seconds {r['cpu_seconds']} over {r['seconds']:.1f} s")
        log(f"{label}: {r['requests']:,} requests in {r['seconds']:.1f} s, {r['errors']} errors; "
            f"reads p50 {r['reads']['p50_ms']:.1f} ms p99 {r['reads']['p99_ms']:.1f} ms; "
            f"writes p50 {r['writes']['p50_ms']:.1f} ms p99 {r['writes']['p99_ms']:.1f} ms")
        return r
    finally:
        server.terminate()
        server.wait(timeout=60)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60)
    args = ap.parse_args()
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "polyaxon-cli"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "polyaxon-server", "--example", "loadgen"], cwd=ROOT, check=True)
    db = "polyaxon_bench_load"
    subprocess.run(["psql", "-q", PG, "-c", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"], check=True)
    subprocess.run(["psql", "-q", PG, "-c", f"CREATE DATABASE {db}"], check=True)
    # Durable commits, as a deployment has: scripts/test turns them off for its own role.
    subprocess.run(["psql", "-q", PG, "-c", f"ALTER ROLE CURRENT_USER IN DATABASE {db} SET synchronous_commit = on"], check=True)
    sqlite_dir = tempfile.mkdtemp()
    res = {
        "postgres": bench_store("postgres", psql_url(db), args.clients, args.seconds),
        "sqlite": bench_store("sqlite", f"sqlite://{sqlite_dir}/polyaxon.db?mode=rwc", args.clients, args.seconds),
        "at": time.strftime("%Y-%m-%d"),
    }
    print(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
