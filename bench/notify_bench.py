#!/usr/bin/env python3
"""A run's final status to its webhook received, through the paths users run.

Usage: bench/notify_bench.py --binary target/release/polyaxon [--runs 200] [--burst 100]
       [--embedded-runs 30]
Needs a PostgreSQL where the role may create databases: POLYAXON_BENCH_DATABASE_URL (default
the test server that scripts/test sets up), and `psql`. Prints the figures; bench/RESULTS.md
records them.

Measured:
  a. server: `polyaxon server start` on PostgreSQL (and on SQLite) with a webhook connection
     (signed); for each of `--runs` runs whose component has `plugins.notifications`, the
     clock starts just before the client sends the run's final status (`POST …/statuses`
     succeeded) and stops when the receiver (a threaded HTTP server here) has read the
     webhook's body; median and p95; one run at a time;
  b. a burst: `--burst` runs end at once (their final statuses sent from 8 threads), the same
     clock per run; median, p95 and the time until the last is received;
  c. embedded: `polyaxon run -f` of such a job on the process executor (SQLite in a private
     POLYAXON_HOME); the clock starts at the run's `finished_at` as the store recorded it and
     stops at the receiver (same machine, same clock).
"""
import argparse
import http.client
import http.server
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

PG = os.environ.get("POLYAXON_BENCH_DATABASE_URL", "postgres://polyaxon:polyaxon-test@127.0.0.1:5432/polyaxon_test")
DB = "polyaxon_notify_bench"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def psql(sql):
    subprocess.run(["psql", PG, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], check=True, capture_output=True, text=True)


class Receiver:
    """Records, per run uuid, when its webhook body was read."""

    def __init__(self):
        self.port = free_port()
        self.got = {}
        self.lock = threading.Lock()
        rec = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                t = time.time()
                uuid = json.loads(body).get("uuid")
                with rec.lock:
                    rec.got.setdefault(uuid, []).append(t)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.port}/hooks/bench"

    def wait(self, uuids, within=60):
        end = time.time() + within
        while time.time() < end:
            with self.lock:
                if all(u in self.got for u in uuids):
                    return
            time.sleep(0.002)
        raise SystemExit(f"not received: {[u for u in uuids if u not in self.got][:5]}")


class Api:
    def __init__(self, port):
        self.port = port
        self.local = threading.local()

    def call(self, method, path, body=None):
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        c.request(method, path, body=None if body is None else json.dumps(body), headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        if r.status >= 300:
            raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
        return json.loads(data) if data else None


def content(conn):
    return json.dumps({
        "version": 1.1, "kind": "component", "name": "bench",
        "plugins": {"notifications": [{"connections": [conn], "trigger": "succeeded"}]},
        "run": {"kind": "job", "container": {"command": ["true"]}},
    })


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def server_case(binary, db_url, label, runs, burst, home):
    rec = Receiver()
    port = free_port()
    env = {**os.environ, "POLYAXON_HOME": str(home), "RUST_LOG": "warn"}
    proc = subprocess.Popen([binary, "server", "start", "--open", "--port", str(port), "--database-url", db_url],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stderr:
            if "listening on" in line:
                break
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        api = Api(port)
        key = home / "key"
        key.write_text("bench-signing-key")
        api.call("POST", "/api/v1/orgs/default/connections",
                 {"name": "bench", "kind": "webhook", "schema": {"url": rec.url}, "secret": f"file:{key}"})
        api.call("POST", "/api/v1/default/projects/create", {"name": "nb"})

        def prepared():
            u = api.call("POST", "/api/v1/default/nb/runs", {"content": content("bench")})["uuid"]
            api.call("POST", f"/api/v1/default/nb/runs/{u}/statuses", {"condition": {"type": "running", "status": "True"}})
            return u

        def end(u):
            t = time.time()
            api.call("POST", f"/api/v1/default/nb/runs/{u}/statuses", {"condition": {"type": "succeeded", "status": "True"}})
            return t

        # Warm-up.
        for _ in range(5):
            u = prepared()
            end(u)
            rec.wait([u])
        lat = []
        for _ in range(runs):
            u = prepared()
            t = end(u)
            rec.wait([u])
            lat.append((rec.got[u][0] - t) * 1000)
        log(f"{label}: one at a time, {runs} runs: median {statistics.median(lat):.1f} ms, p95 {pct(lat, 95):.1f} ms")
        uuids = [prepared() for _ in range(burst)]
        with ThreadPoolExecutor(8) as ex:
            t0 = time.time()
            starts = dict(zip(uuids, ex.map(end, uuids)))
        rec.wait(uuids)
        blat = [(rec.got[u][0] - starts[u]) * 1000 for u in uuids]
        last = (max(rec.got[u][0] for u in uuids) - t0) * 1000
        dup = sum(1 for u in rec.got if len(rec.got[u]) > 1)
        log(f"{label}: burst of {burst}: median {statistics.median(blat):.1f} ms, p95 {pct(blat, 95):.1f} ms, last received {last:.0f} ms after the first end; {dup} sent twice")
        return lat, blat, last, dup
    finally:
        proc.terminate()
        proc.wait()
        rec.server.shutdown()


def embedded_case(binary, runs, home):
    rec = Receiver()
    env = {**os.environ, "POLYAXON_HOME": str(home), "HOME": str(home)}
    env.pop("POLYAXON_HOST", None)
    run = lambda *a: subprocess.run([binary, *a], env=env, check=True, capture_output=True, text=True, cwd=home)
    run("connections", "create", "--name", "bench", "--kind", "webhook", "--url", rec.url)
    run("project", "create", "--name", "nb")
    (home / "pf.json").write_text(content("bench"))
    lat = []
    for i in range(runs + 2):
        out = run("run", "-f", "pf.json", "-p", "nb", "-o", "json")
        u = json.loads(out.stdout)["uuid"]
        rec.wait([u])
        got = run("ops", "get", "-p", "nb", "-uid", u, "-o", "json")
        fin = json.loads(got.stdout)["finished_at"]
        t = datetime.fromisoformat(fin.replace("Z", "+00:00")).timestamp()
        if i >= 2:  # warm-up
            lat.append((rec.got[u][0] - t) * 1000)
    log(f"embedded: {runs} runs: finished_at to received, median {statistics.median(lat):.1f} ms, p95 {pct(lat, 95):.1f} ms")
    rec.server.shutdown()
    return lat


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--burst", type=int, default=100)
    ap.add_argument("--embedded-runs", type=int, default=30)
    a = ap.parse_args()
    binary = str(pathlib.Path(a.binary).resolve())
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB}")
    with tempfile.TemporaryDirectory() as d:
        d = pathlib.Path(d)
        (d / "pg").mkdir()
        (d / "sq").mkdir()
        (d / "emb").mkdir()
        pg = server_case(binary, PG.rsplit("/", 1)[0] + "/" + DB, "server on PostgreSQL", a.runs, a.burst, d / "pg")
        sq = server_case(binary, f"sqlite://{d / 'sq' / 'polyaxon.db'}?mode=rwc", "server on SQLite", a.runs, a.burst, d / "sq")
        emb = embedded_case(binary, a.embedded_runs, d / "emb")
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    print("| | median | p95 |")
    print("|---|---|---|")
    for label, (lat, blat, last, dup) in [("server on PostgreSQL", pg), ("server on SQLite", sq)]:
        print(f"| {label}, one run at a time ({a.runs}) | {statistics.median(lat):.1f} ms | {pct(lat, 95):.1f} ms |")
        print(f"| {label}, {a.burst} runs ending at once | {statistics.median(blat):.1f} ms | {pct(blat, 95):.1f} ms (last after {last:.0f} ms; {dup} doubles) |")
    print(f"| embedded, `polyaxon run` ({a.embedded_runs}) | {statistics.median(emb):.1f} ms | {pct(emb, 95):.1f} ms |")


if __name__ == "__main__":
    main()
