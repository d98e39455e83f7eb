#!/usr/bin/env python3
"""Optimizer quality and proposal cost: our random, tpe and bayes searches, driven as
`polyaxon run` drives them (cli/examples/optim.rs: the matrix from the same spec fields, its
tuner from `for_matrix`, `concurrency` trials at once), against Optuna's RandomSampler,
TPESampler (constant_liar) and GPSampler given the same parallelism, on Branin (optimum
0.397887; x1 in [-5, 10], x2 in [0, 15]) and Hartmann6 (optimum -3.32237, the unit cube).

Parallelism: `concurrency` trials run at once; each trial's duration is simulated, a function
of the seed and its index (the same on both sides), so trials end out of order; when one ends
its result is told and the free slot asked for a new trial (Optuna: `study.tell`, then
`study.ask` with the others still running, as `n_jobs` does).

For each (optimizer, function, concurrency): the median and interquartile range over --seeds
seeds of the best value among the first 25, 50 and 100 trials, and the mean time to propose a
trial (the optimizer's own time, not the objective's). Also TPE's time per proposal around
trial 1,000.

Usage: python3 bench/optim_bench.py [--seeds 30] [--trials 100] [--concurrency 1 4] [--no-optuna-gp]
  Needs `cargo build --release -p polyaxon-cli --example optim`, and Optuna (with torch for
  its GP sampler) in the Python running it: `pip install optuna torch`.
Prints a table and writes bench/out/optim_bench.json.
"""
import argparse
import json
import math
import os
import pathlib
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
BUDGETS = (25, 50, 100)


def branin(x):
    x1, x2 = x
    a, b, c, r, s, t = 1, 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6, 10, 1 / (8 * math.pi)
    return a * (x2 - b * x1 ** 2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
P = [[0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886], [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
     [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650], [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381]]


def hartmann6(x):
    return -sum(ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6))) for i in range(4))


FUNCS = {"branin": (branin, [(-5.0, 10.0), (0.0, 15.0)]), "hartmann6": (hartmann6, [(0.0, 1.0)] * 6)}


def duration(seed, trial):
    """A trial's simulated duration, as cli/examples/optim.rs computes it."""
    v = math.sin((trial + 1.0) * 12.9898 + (seed + 1.0) * 78.233) * 43758.5453
    return 1.0 + (v - math.floor(v))


def optuna_runs(kind, func, seeds, trials, concurrency=1):
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    f, box = FUNCS[func]
    out = []
    for seed in range(seeds):
        sampler = {
            "random": lambda: optuna.samplers.RandomSampler(seed=seed),
            "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=True),
            "bayes": lambda: optuna.samplers.GPSampler(seed=seed),
        }[kind]()
        study = optuna.create_study(sampler=sampler, direction="minimize")
        values, ms = [None] * trials, []
        running = []  # (ends at, index, trial, value)
        now, asked = 0.0, 0
        while True:
            while len(running) < concurrency and asked < trials:
                t = time.perf_counter()
                trial = study.ask()
                x = [trial.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(box)]
                ms.append((time.perf_counter() - t) * 1e3)
                running.append((now + duration(seed, asked), asked, trial, f(x)))
                asked += 1
            if not running:
                break
            running.sort(key=lambda r: r[0])
            end, idx, trial, y = running.pop(0)
            now = end
            study.tell(trial, y)
            values[idx] = y
        best, b = [], float("inf")
        for v in values:
            b = min(b, v)
            best.append(b)
        out.append({"best": best, "ms": ms})
    return out


def ours(kind, func, seeds, trials, concurrency=1, spec=None):
    exe = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "examples" / "optim"
    if not exe.is_file():
        sys.exit(f"no {exe}: cargo build --release -p polyaxon-cli --example optim")
    env = {**os.environ, **({"OPTIM_SPEC": json.dumps(spec)} if spec else {})}
    out = subprocess.run([str(exe), kind, func, str(seeds), str(trials), str(concurrency)], capture_output=True, text=True, check=True, env=env)
    return [json.loads(line) for line in out.stdout.splitlines()]


def summary(runs):
    s = {}
    for k in BUDGETS:
        vals = sorted(r["best"][k - 1] for r in runs if len(r["best"]) >= k)
        if len(vals) >= 2:
            q = statistics.quantiles(vals, n=4)
            s[k] = (statistics.median(vals), q[0], q[2])
    s["ms"] = statistics.mean(m for r in runs for m in r["ms"])
    return s


def tpe_at_1000(seeds=3):
    """Mean proposal time of trials 950-1000, ours and Optuna's TPE (Branin)."""
    mine = ours("tpe", "branin", seeds, 1000)
    m = statistics.mean(x for r in mine for x in r["ms"][950:])
    try:
        theirs = optuna_runs("tpe", "branin", 1, 1000)
        t = statistics.mean(theirs[0]["ms"][950:])
    except ImportError:
        t = None
    return m, t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=30)
    ap.add_argument("--trials", type=int, default=100)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[1, 4])
    ap.add_argument("--kinds", nargs="+", default=["random", "tpe", "bayes"])
    ap.add_argument("--no-optuna-gp", action="store_true", help="skip Optuna's GP sampler (slow)")
    args = ap.parse_args()
    results = {}
    for c in args.concurrency:
        for func in FUNCS:
            for kind in args.kinds:
                print(f"{func} {kind} concurrency {c} …", file=sys.stderr, flush=True)
                results[f"ours {kind} {func} {c}"] = summary(ours(kind, func, args.seeds, args.trials, c))
                if kind == "bayes" and args.no_optuna_gp:
                    continue
                try:
                    results[f"optuna {kind} {func} {c}"] = summary(optuna_runs(kind, func, args.seeds, args.trials, c))
                except ImportError:
                    print("Optuna is not installed here: `pip install optuna torch`", file=sys.stderr)
    # The search of the issue that started this: ei with eps 0.01, concurrency 2, 50 trials.
    issue = {"utilityFunction": {"acquisitionFunction": "ei", "eps": 0.01, "gaussianProcess": {"kernel": "matern", "nu": 2.5}}}
    runs = ours("bayes", "branin", args.seeds, 50, 2, issue)
    results["issue: bayes branin eps 0.01 concurrency 2"] = {
        "first five seeds, best at 50": [r["best"][49] for r in runs[:5]],
        "median at 50": statistics.median(r["best"][49] for r in runs),
        "worst at 50": max(r["best"][49] for r in runs),
    }
    mine, theirs = tpe_at_1000()
    results["tpe ms at 1000"] = {"ours": mine, "optuna": theirs}
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "optim_bench.json").write_text(json.dumps(results, indent=2))
    print(f"| optimizer | function | concurrency | best after {' / '.join(map(str, BUDGETS))} (median [IQR]) | ms per proposal |")
    print("|---|---|---|---|---|")
    for key, s in results.items():
        if not key.startswith(("ours", "optuna")):
            continue
        who, kind, func, c = key.split()
        cells = " / ".join(f"{s[k][0]:.4f} [{s[k][1]:.4f}, {s[k][2]:.4f}]" for k in BUDGETS if k in s)
        print(f"| {who} {kind} | {func} | {c} | {cells} | {s['ms']:.3f} |")
    print("issue's search:", json.dumps(results["issue: bayes branin eps 0.01 concurrency 2"]))
    t = results["tpe ms at 1000"]
    print(f"TPE proposal time at trials 950-1000: ours {t['ours']:.3f} ms, Optuna "
          + (f"{t['optuna']:.1f} ms" if t["optuna"] is not None else "not measured"))


if __name__ == "__main__":
    main()
