#!/usr/bin/env python3
"""Agents and queues, measured through the paths users run.

Usage: bench/agent_bench.py --binary target/release/polyaxon [--runs 10000] [--agents 4]
       [--capacity 8] [--latency-runs 40] [--skip-plan]
Needs a PostgreSQL where the role may create databases: POLYAXON_BENCH_DATABASE_URL (default
the test server that scripts/test sets up), and `psql`. Prints the figures; bench/RESULTS.md
records them.

Measured, against `polyaxon server start` on PostgreSQL:
  a. handoff latency: `POST …/runs` to the job's first instruction (`date +%s%N`), with one
     idle `polyaxon agent start` on the process executor; median and p95;
  b. claims: four claimers calling the agents' claim endpoint (8 runs a call, an agent's
     capacity) over `--runs` queued runs, runs claimed per second; then `--agents` real agents
     draining `--runs` queued no-op runs (`true`) end to end, runs executed per second;
  c. the claim's query plan and time with 1,000,000 finished and 10,000 queued runs in the
     table (EXPLAIN ANALYZE of the claim's statement, in a transaction rolled back).
"""
import argparse
import http.client
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

PG = os.environ.get("POLYAXON_BENCH_DATABASE_URL", "postgres://polyaxon:polyaxon-test@127.0.0.1:5432/polyaxon_test")
DB = "polyaxon_agent_bench"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def psql(sql, db=None):
    url = PG if db is None else PG.rsplit("/", 1)[0] + "/" + db
    out = subprocess.run(["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], check=True, capture_output=True, text=True)
    return out.stdout


class Api:
    def __init__(self, port, token=None):
        self.port, self.token = port, token
        self.local = threading.local()

    def conn(self):
        c = getattr(self.local, "c", None)
        if c is None:
            c = self.local.c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        return c

    def call(self, method, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = f"Token {self.token}"
        for attempt in range(3):
            try:
                c = self.conn()
                c.request(method, path, body=None if body is None else json.dumps(body), headers=headers)
                r = c.getresponse()
                data = r.read()
                if r.status >= 300:
                    raise RuntimeError(f"{method} {path}: {r.status} {data[:300]!r}")
                return json.loads(data) if data else None
            except (http.client.HTTPException, ConnectionError):
                self.local.c = None
                if attempt == 2:
                    raise


def job(cmd):
    return json.dumps({"version": 1.1, "kind": "component", "name": "noop",
                       "run": {"kind": "job", "container": {"image": "busybox", "command": cmd}}})


def create_many(api, n, body, threads=8):
    out, lock = [], threading.Lock()

    def work(k):
        mine = [api.call("POST", "/api/v1/root/bench/runs", body)["uuid"] for _ in range(n // threads + (1 if k < n % threads else 0))]
        with lock:
            out.extend(mine)

    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return out


def queue_state(api, name):
    return api.call("GET", f"/api/v1/admin/queues/{name}")


def start_agent(binary, port, token, name, args, home):
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "POLYAXON_HOME": f"{home}/.polyaxon",
           "POLYAXON_HOST": f"http://127.0.0.1:{port}", "POLYAXON_AUTH_TOKEN": token, "RUST_LOG": "warn"}
    log_path = pathlib.Path(home) / f"agent-{name}.log"
    p = subprocess.Popen([binary, "agent", "start", "--name", name, *args], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(log_path, "w"))
    end = time.time() + 30
    while "serving" not in log_path.read_text():
        if time.time() > end or p.poll() is not None:
            raise RuntimeError(f"agent {name} did not start: {log_path.read_text()}")
        time.sleep(0.05)
    return p


def stop(p):
    p.terminate()
    try:
        p.wait(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def handoff(binary, port, api, token, n):
    home = tempfile.mkdtemp()
    a = start_agent(binary, port, token, "latency", ["--max-concurrency", "4"], home)
    out = pathlib.Path(home) / "first"
    lat = []
    try:
        for i in range(n + 3):
            f = out.with_name(f"first-{i}")
            time.sleep(0.2)  # the agent is idle, waiting in its long poll
            t0 = time.time_ns()
            api.call("POST", "/api/v1/root/bench/runs", {"content": job(["sh", "-c", f"date +%s%N > {f}"])})
            end = time.time() + 30
            while not f.exists() or not f.read_text().strip():
                if time.time() > end:
                    raise RuntimeError("the job never ran")
                time.sleep(0.001)
            if i >= 3:  # warm-up
                lat.append((int(f.read_text().strip()) - t0) / 1e6)
    finally:
        stop(a)
    return {"median_ms": statistics.median(lat), "p95_ms": pct(lat, 0.95), "min_ms": min(lat), "runs": len(lat)}


def claims(api, runs):
    api.call("POST", "/api/v1/admin/queues", {"name": "claims"})
    log(f"  queueing {runs} runs on `claims`")
    create_many(api, runs, {"content": job(["true"]), "queue": "claims"})
    version = api.call("GET", "/api/v1/installation")["version"]
    for k in range(4):
        api.call("POST", "/api/v1/admin/agents", {"name": f"claimer-{k}", "instance": f"c{k}", "version": version,
                                                   "executor": "process", "queues": ["claims"], "capacity": 8})
    got = [0] * 4

    def work(k):
        while True:
            r = api.call("POST", f"/api/v1/admin/agents/claimer-{k}/claim",
                         {"instance": f"c{k}", "queues": ["claims"], "max": 8, "lease_seconds": 600})
            if not r["runs"]:
                return
            got[k] += len(r["runs"])

    t0 = time.time()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    took = time.time() - t0
    assert sum(got) == runs, (got, runs)
    return {"runs": runs, "seconds": took, "claimed_per_s": runs / took}


def drain(binary, port, api, token, runs, agents, capacity):
    log(f"  queueing {runs} no-op runs on `default`")
    create_many(api, runs, {"content": job(["true"])})
    home = tempfile.mkdtemp()
    t0 = time.time()
    procs = [start_agent(binary, port, token, f"drain-{k}", ["--max-concurrency", str(capacity)], home) for k in range(agents)]
    try:
        last = None
        while True:
            q = queue_state(api, "default")
            left = q["queued"] + q["running"]
            if left == 0:
                break
            now = time.time()
            if last is None or now - last > 10:
                log(f"    {runs - left} of {runs} done after {now - t0:.0f} s")
                last = now
            time.sleep(0.2)
        took = time.time() - t0
    finally:
        for p in procs:
            stop(p)
    done = api.call("GET", "/api/v1/root/bench/runs?query=status:succeeded&limit=1")["count"]
    return {"runs": runs, "agents": agents, "capacity": capacity, "seconds": took, "executed_per_s": runs / took, "succeeded_total": done}


def plan():
    pid = psql("SELECT id FROM projects WHERE name = 'bench'", DB).strip()
    log("  inserting 1,000,000 finished and 10,000 queued runs")
    psql(f"""INSERT INTO runs (uuid, project_id, status, created_at, updated_at, queue, priority, is_managed)
             SELECT md5('f' || i), {pid}, 'succeeded', i, i, 'default', 0, true FROM generate_series(1, 1000000) i;
             INSERT INTO runs (uuid, project_id, status, created_at, updated_at, queue, priority, is_managed)
             SELECT md5('q' || i), {pid}, 'queued', 2000000 + i, 2000000 + i, 'default', 0, true FROM generate_series(1, 10000) i;
             ANALYZE runs;""", DB)
    stmt = ("UPDATE runs SET agent = 'bench', lease_until = 1, status = 'scheduled', updated_at = 1 WHERE id IN ("
            "SELECT id FROM runs WHERE queue = 'default' AND status = 'queued' AND agent IS NULL AND pipeline_uuid IS NULL "
            "ORDER BY priority DESC, created_at, id LIMIT 8 FOR UPDATE SKIP LOCKED) RETURNING id")
    times, text = [], ""
    for _ in range(21):
        text = psql(f"BEGIN; EXPLAIN (ANALYZE, FORMAT TEXT) {stmt}; ROLLBACK;", DB)
        for line in text.splitlines():
            if line.startswith("Execution Time:"):
                times.append(float(line.split()[2]))
    held = psql("BEGIN; EXPLAIN (ANALYZE, FORMAT TEXT) SELECT COUNT(*) FROM runs WHERE queue = 'default' AND agent IS NOT NULL AND pipeline_uuid IS NULL; ROLLBACK;", DB)
    return {"median_ms": statistics.median(times), "max_ms": max(times), "plan": text.strip(),
            "uses_index": "runs_waiting" in text, "count_plan": held.strip()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--runs", type=int, default=10000)
    ap.add_argument("--agents", type=int, default=4)
    ap.add_argument("--capacity", type=int, default=8)
    ap.add_argument("--latency-runs", type=int, default=40)
    ap.add_argument("--skip-plan", action="store_true")
    a = ap.parse_args()
    binary = str(pathlib.Path(a.binary).resolve())
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB}")
    # Durable commits, as a deployment has: scripts/test turns them off for its own role.
    psql(f"ALTER ROLE CURRENT_USER IN DATABASE {DB} SET synchronous_commit = on")
    port = free_port()
    home = tempfile.mkdtemp()
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "POLYAXON_HOME": f"{home}/.polyaxon",
           "POLYAXON_ADMIN_PASSWORD": "bench-password", "RUST_LOG": "warn"}
    server = subprocess.Popen([binary, "server", "start", "--database-url", PG.rsplit("/", 1)[0] + "/" + DB, "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    results = {}
    try:
        end = time.time() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > end:
                    raise
                time.sleep(0.1)
        token = Api(port).call("POST", "/api/v1/auth/token", {"username": "root", "password": "bench-password"})["token"]
        api = Api(port, token)
        api.call("POST", "/api/v1/root/projects/create", {"name": "bench"})
        log(f"a. handoff latency over {a.latency_runs} runs")
        results["handoff"] = handoff(binary, port, api, token, a.latency_runs)
        log(f"  {json.dumps(results['handoff'])}")
        log(f"b. claims: 4 claimers over {a.runs} runs")
        results["claims"] = claims(api, a.runs)
        log(f"  {json.dumps(results['claims'])}")
        log(f"b. {a.agents} agents draining {a.runs} no-op runs")
        results["drain"] = drain(binary, port, api, token, a.runs, a.agents, a.capacity)
        log(f"  {json.dumps(results['drain'])}")
    finally:
        server.terminate()
        server.wait(timeout=60)
    if not a.skip_plan:
        log("c. the claim's plan at 1,000,000 finished and 10,000 queued runs")
        results["plan"] = plan()
        log(results["plan"]["plan"])
        log(f"  median {results['plan']['median_ms']:.3f} ms, max {results['plan']['max_ms']:.3f} ms, index: {results['plan']['uses_index']}")
    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    print(json.dumps({k: {kk: vv for kk, vv in v.items() if kk not in ('plan', 'count_plan')} for k, v in results.items()}, indent=2))


if __name__ == "__main__":
    main()
