#!/usr/bin/env python3
"""Two builds of `polyaxon` side by side on the paths users feel at start-up: does a change
cost speed?

Usage: python3 bench/compare_binaries.py --before PATH --after PATH [--runs N]
(release builds of both, e.g. `git worktree add /tmp/before <commit>` and `cargo build
--release -p polyaxon-cli` in each). Stdlib only.

Measured, whole-process wall time, the two binaries interleaved run by run (so that load on the
machine falls on both alike), median and interquartile range of --runs (default 60):
  - `polyaxon --help`
  - `polyaxon check -f examples/quickstart/polyaxonfile.yml`
  - `polyaxon version`
  - `polyaxon project ls` on the embedded store (a fresh `$POLYAXON_HOME` with one project)
  - `polyaxon run`: launch to the job's first instruction (run_bench.py's start latency), in a
    git repository of a few files; fewer runs (--run-runs, default 20), also interleaved.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import run_bench  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parent.parent


def timed(cmd, env, cwd):
    t0 = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return (time.perf_counter() - t0) * 1e3


def summary(xs):
    q = statistics.quantiles(xs, n=4)
    return statistics.median(xs), q[0], q[2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--runs", type=int, default=60)
    ap.add_argument("--run-runs", type=int, default=20)
    args = ap.parse_args()
    bins = {"before": args.before, "after": args.after}
    for b in bins.values():
        if not pathlib.Path(b).is_file():
            sys.exit(f"no binary at {b}")
    quickstart = str(ROOT / "examples" / "quickstart" / "polyaxonfile.yml")
    rows = []
    with tempfile.TemporaryDirectory(prefix="polyaxon-compare-") as tmp:
        work = pathlib.Path(tmp)
        homes = {}
        for name, b in bins.items():
            home = work / f"home-{name}"
            home.mkdir()
            env = run_bench.env_for(home)
            subprocess.run([b, "project", "create", "-n", "bench"], env=env, cwd=home, check=True,
                           capture_output=True)
            homes[name] = (home, env)
        cases = [
            ("polyaxon --help", ["--help"]),
            ("polyaxon check -f quickstart", ["check", "-f", quickstart]),
            ("polyaxon version", ["version"]),
            ("polyaxon project ls (embedded)", ["project", "ls"]),
        ]
        for label, argv in cases:
            got = {n: [] for n in bins}
            for i in range(args.runs + 3):
                for n, b in bins.items():
                    home, env = homes[n]
                    t = timed([b, *argv], env, home)
                    if i >= 3:  # warm-up
                        got[n].append(t)
            rows.append((label, summary(got["before"]), summary(got["after"])))
        # Run start: each binary in its own repository and home, one run of each in turn.
        starts = {n: [] for n in bins}
        dirs = {}
        for n in bins:
            d = work / f"start-{n}"
            d.mkdir()
            dirs[n] = d
        for _ in range(args.run_runs):
            for n, b in bins.items():
                d = dirs[n] / f"r{len(starts[n])}"
                d.mkdir()
                r = run_bench.start_latency(b, d, 1)
                starts[n].append(r["median_ms"])
        rows.append(("polyaxon run: launch to first instruction",
                     summary(starts["before"]), summary(starts["after"])))
    print(f"{'':44} {'before (median, IQR)':>24} {'after (median, IQR)':>24} {'after/before':>12}")
    for label, b, a in rows:
        print(f"{label:44} {b[0]:8.2f} ms ({b[1]:.2f}-{b[2]:.2f}) {a[0]:8.2f} ms ({a[1]:.2f}-{a[2]:.2f}) {a[0] / b[0]:12.3f}")


if __name__ == "__main__":
    main()
