#!/usr/bin/env python3
"""`polyaxon check` per file with two builds side by side: did a change to the reader or the
compiler cost time?

Usage: python3 bench/check_before_after.py --before PATH --after PATH [--runs N]
(release builds of both, e.g. `git worktree add /tmp/before <commit>` and `cargo build
--release -p polyaxon-cli` there). Stdlib only.

The corpus is the polyaxonfiles of ../shared/compat (every file of expected.tsv) and this
repository's fixtures. For each file the two binaries run interleaved (so that load on the
machine falls on both alike), whole-process wall time with a private HOME; prints each build's
median over the corpus of the per-file medians, and the median and spread of after/before.
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent


def corpus():
    files = []
    compat = ROOT.parent / "shared" / "compat" / "polyaxonfiles"
    if (compat / "expected.tsv").is_file():
        for line in (compat / "expected.tsv").read_text().splitlines():
            if line.startswith("#") or not line.strip():
                continue
            files.append(compat / line.split("\t")[0])
    fixtures = ROOT / "polyaxonfile-schema" / "tests" / "fixtures"
    files += sorted(p for p in fixtures.glob("*/*") if p.suffix in (".yml", ".yaml", ".json"))
    return [f for f in files if f.is_file()]


def once(binary, path, env):
    t = time.perf_counter()
    subprocess.run([binary, "check", "-f", str(path)], cwd=path.parent, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1e3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", required=True)
    ap.add_argument("--after", required=True)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    home = tempfile.mkdtemp()
    env = {**os.environ, "HOME": home, "POLYAXON_HOME": os.path.join(home, ".polyaxon"), "NO_COLOR": "1"}
    files = corpus()
    before, after, ratios, named = [], [], [], []
    for f in files:
        b, a = [], []
        for _ in range(args.runs):
            b.append(once(args.before, f, env))
            a.append(once(args.after, f, env))
        mb, ma = statistics.median(b), statistics.median(a)
        before.append(mb)
        after.append(ma)
        ratios.append(ma / mb)
        named.append((ma / mb, mb, ma, f))
    q = statistics.quantiles(ratios, n=4)
    print(f"{len(files)} files, {args.runs} runs each per build")
    print(f"before: median per file {statistics.median(before):.2f} ms")
    print(f"after:  median per file {statistics.median(after):.2f} ms")
    print(f"after/before: median {statistics.median(ratios):.3f} (quartiles {q[0]:.3f}-{q[2]:.3f}), "
          f"min {min(ratios):.3f}, max {max(ratios):.3f}")
    for r, mb, ma, f in sorted(named, reverse=True)[:5]:
        print(f"  slowest after/before {r:.3f}: {mb:.2f} -> {ma:.2f} ms  {f.relative_to(f.parents[1])}")


if __name__ == "__main__":
    main()
