#!/usr/bin/env python3
"""A 200-operation DAG of no-op jobs, end to end, against Prefect 3 and Metaflow.

Usage: python3 bench/dag_bench.py [--binary PATH] [--runs N] [--peers-python PATH]
(build first: `cargo build --release -p polyaxon-cli`; for the peers, a virtualenv with
`pip install prefect metaflow`, e.g. `~/.cache/polyaxon-rs/bench-venv`). Stdlib only here.

The shape, the same for all three: a source, a fan-out of 99 chains of two operations
(`a_i` then `b_i`), and a sink that waits for all of them — 200 operations, each a process
running `true` (ours: a `job` on the process executor; Prefect: a task that runs the
subprocess; Metaflow: a step of a `foreach`, which runs its steps as processes anyway).

Measured, median of --runs (default 3), on a fresh home or store each time:
  - wall: launching the run to its end (ours: `polyaxon run -f dag.yml -w`, the whole
    command, which returns when the DAG ended; Prefect: `python flow.py`; Metaflow:
    `python flow.py run --max-workers 100`);
  - per operation: wall / 200;
  - ours, beyond the jobs' own time: (wall - the jobs' durations along the longest path,
    source + slowest chain + sink) / 200.
Target: ours at most 10 ms per operation beyond the jobs' own time, and at least 5 times
faster than the faster peer.
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

ROOT = pathlib.Path(__file__).resolve().parent.parent
WIDTH = 99  # chains; 1 + 2 * 99 + 1 = 200 operations
OPS = 2 * WIDTH + 2


def default_binary():
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return pathlib.Path(target) / "release" / "polyaxon"
    return ROOT / "target" / "release" / "polyaxon"


def ours_polyaxonfile():
    ops = ["    - {name: source, dagRef: noop}"]
    for i in range(WIDTH):
        ops.append(f"    - {{name: a{i}, dagRef: noop, dependencies: [source]}}")
        ops.append(f"    - {{name: b{i}, dagRef: noop, dependencies: [a{i}]}}")
    ops.append("    - {name: sink, dagRef: noop, dependencies: [" + ", ".join(f"b{i}" for i in range(WIDTH)) + "]}")
    return ("version: 1.1\nkind: component\nname: wide\nrun:\n  kind: dag\n  operations:\n" + "\n".join(ops) +
            "\n  components:\n    - name: noop\n      run: {kind: job, container: {image: busybox, command: [\"true\"]}}\n")


PREFECT_FLOW = f'''
import subprocess
from prefect import flow, task

@task
def noop():
    subprocess.run(["true"], check=True)

@flow
def wide():
    s = noop.submit()
    bs = []
    for i in range({WIDTH}):
        a = noop.submit(wait_for=[s])
        bs.append(noop.submit(wait_for=[a]))
    noop.submit(wait_for=bs).result()

if __name__ == "__main__":
    wide()
'''

METAFLOW_FLOW = f'''
from metaflow import FlowSpec, step

class Wide(FlowSpec):
    @step
    def start(self):
        self.items = list(range({WIDTH}))
        self.next(self.a, foreach="items")

    @step
    def a(self):
        self.next(self.b)

    @step
    def b(self):
        self.next(self.join)

    @step
    def join(self, inputs):
        self.next(self.end)

    @step
    def end(self):
        pass

if __name__ == "__main__":
    Wide()
'''


def timed(cmd, cwd, env):
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return took, out


critical = []


def ours(binary, runs):
    walls = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix="polyaxon-dag-bench-") as tmp:
            d = pathlib.Path(tmp)
            (d / "dag.yml").write_text(ours_polyaxonfile())
            env = {"HOME": str(d), "POLYAXON_HOME": str(d / ".polyaxon"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                   "NO_COLOR": "1"}
            took, _ = timed([binary, "run", "-f", "dag.yml", "-w"], d, env)
            r = json.loads(subprocess.run([binary, "ops", "get", "-o", "json"], cwd=d, env=env, capture_output=True,
                                          text=True, check=True).stdout)
            if r["status"] != "succeeded":
                raise RuntimeError(f"the DAG {r['status']}")
            q = subprocess.run([binary, "ops", "ls", "-q", f"pipeline: {r['uuid']}", "-l", "1000", "-o", "json"], cwd=d,
                               env=env, capture_output=True, text=True, check=True)
            ops = json.loads(q.stdout)
            if len(ops) != OPS or any(o["status"] != "succeeded" for o in ops):
                raise RuntimeError("not every operation succeeded")
            walls.append(took)
            # The jobs' own time along the longest path: source, the slowest chain, sink.
            d = {o["name"]: o["duration"] or 0.0 for o in ops}
            chain = max(d[f"a{i}"] + d[f"b{i}"] for i in range(WIDTH))
            critical.append(d["source"] + chain + d["sink"])
    return walls


def peer(python, name, source, args, runs):
    walls = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory(prefix=f"{name}-bench-") as tmp:
            d = pathlib.Path(tmp)
            (d / "flow.py").write_text(source)
            env = {**os.environ, "HOME": str(d), "PREFECT_HOME": str(d / ".prefect"), "USERNAME": "bench",
                   "METAFLOW_HOME": str(d / ".metaflow"), "PREFECT_LOGGING_LEVEL": "WARNING"}
            took, _ = timed([python, "flow.py", *args], d, env)
            walls.append(took)
    return walls


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(default_binary()))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--peers-python", default=str(pathlib.Path.home() / ".cache/polyaxon-rs/bench-venv/bin/python"))
    args = ap.parse_args()
    res = {}
    print("ours …", file=sys.stderr, flush=True)
    res["ours"] = ours(args.binary, args.runs)
    if pathlib.Path(args.peers_python).is_file():
        print("prefect …", file=sys.stderr, flush=True)
        res["prefect"] = peer(args.peers_python, "prefect", PREFECT_FLOW, [], args.runs)
        print("metaflow …", file=sys.stderr, flush=True)
        res["metaflow"] = peer(args.peers_python, "metaflow", METAFLOW_FLOW, ["run", "--max-workers", "100"], args.runs)
    else:
        print(f"no peers: {args.peers_python} is missing (pip install prefect metaflow in a virtualenv)", file=sys.stderr)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "dag_bench.json").write_text(json.dumps(res, indent=2))
    med = {k: statistics.median(v) for k, v in res.items()}
    for k, v in res.items():
        print(f"{k:9} wall median {med[k]:7.2f} s ({', '.join(f'{x:.2f}' for x in v)}), "
              f"{med[k] * 1e3 / OPS:6.1f} ms per operation")
    beyond = statistics.median(w - c for w, c in zip(res["ours"], critical))
    print(f"ours beyond the jobs' own time (their longest path, median {statistics.median(critical):.2f} s): "
          f"{beyond * 1e3 / OPS:.1f} ms per operation")
    peers = [med[k] for k in ("prefect", "metaflow") if k in med]
    if peers:
        print(f"ours is {min(peers) / med['ours']:.1f} times faster than the faster peer")


if __name__ == "__main__":
    main()
