#!/usr/bin/env python3
"""Time `polyaxon check` per file over the polyaxonfile corpus, ours against upstream's Python
CLI (polyaxon 2.18 from PyPI, installed into a private virtualenv by this script).

Usage: bench/check_vs_upstream.py [--runs N] [--upstream-runs M]
Prints one line per file and a summary (medians, ratio). Wall time per invocation, whole
process included, with a private HOME so neither side reads user config.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
CACHE = pathlib.Path(os.environ.get("POLYAXON_BENCH_CACHE", pathlib.Path.home() / ".cache" / "polyaxon-rs"))
UPSTREAM_VERSION = "2.18.0"


def corpus():
    files = []
    compat = ROOT.parent / "shared" / "compat" / "polyaxonfiles"
    if (compat / "expected.tsv").is_file():
        for line in (compat / "expected.tsv").read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            cols = line.split("\t")
            files.append((compat / cols[0], cols[2].split() if len(cols) > 2 and cols[1] == "needs-params" else []))
    for p in sorted((ROOT / "polyaxonfile-schema" / "tests" / "fixtures" / "valid").iterdir()):
        params = []
        for line in p.read_text().splitlines():
            if line.startswith("# params:"):
                params = line.split(":", 1)[1].split()
        files.append((p, params))
    return files


def ensure_upstream():
    venv = CACHE / f"upstream-polyaxon-{UPSTREAM_VERSION}"
    exe = venv / "bin" / "polyaxon"
    if not exe.exists():
        print(f"installing upstream polyaxon {UPSTREAM_VERSION} into {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", f"polyaxon=={UPSTREAM_VERSION}"], check=True)
    return exe


def ensure_ours():
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "polyaxon-cli"], cwd=ROOT, check=True,
                   env={**os.environ, "CARGO_TARGET_DIR": str(target)})
    return target / "release" / "polyaxon"


def time_cmd(cmd, env, runs):
    times = []
    code = None
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
        code = p.returncode
    return statistics.median(times), code


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--upstream-runs", type=int, default=3)
    args = ap.parse_args()
    ours = ensure_ours()
    upstream = ensure_upstream()
    home = tempfile.mkdtemp()
    env = {"HOME": home, "PATH": os.environ["PATH"], "LANG": "C.UTF-8", "NO_COLOR": "1"}
    rows = []
    for path, params in corpus():
        extra = [a for p in params for a in ("-P", p)]
        cmd = ["check", "-f", str(path), *extra]
        o, oc = time_cmd([str(ours), *cmd], env, args.runs)
        u, uc = time_cmd([str(upstream), *cmd], env, args.upstream_runs)
        rows.append((path, o, u, oc, uc))
        rel = path.relative_to(ROOT.parent) if ROOT.parent in path.parents else path
        print(f"{str(rel)[-62:]:62}  ours {o * 1e3:7.2f} ms  upstream {u * 1e3:8.1f} ms  x{u / o:6.0f}  exit {oc}/{uc}", flush=True)
    ours_ms = [r[1] * 1e3 for r in rows]
    up_ms = [r[2] * 1e3 for r in rows]
    ratios = [r[2] / r[1] for r in rows]
    print()
    print(f"files: {len(rows)}")
    print(f"ours:     median {statistics.median(ours_ms):.2f} ms, max {max(ours_ms):.2f} ms per file")
    print(f"upstream: median {statistics.median(up_ms):.0f} ms, max {max(up_ms):.0f} ms per file")
    print(f"ratio (upstream / ours): median x{statistics.median(ratios):.0f}, min x{min(ratios):.0f}")


if __name__ == "__main__":
    main()
