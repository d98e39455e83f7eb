#!/usr/bin/env python3
"""`polyaxon run` on the process executor, measured: how fast a job starts, how fast the code
is snapshot, how many log lines a second are stored, and how soon a line a job prints shows in
`polyaxon logs -f` running in another terminal.

Usage: python3 bench/run_bench.py [--binary PATH] [--runs N] [--files N]
(build first: `cargo build --release -p polyaxon-cli --bin polyaxon --example snapshot`). Stdlib only. Prints a table and writes
bench/out/run_bench.json.

Measured (embedded mode, a fresh POLYAXON_HOME in a temporary directory):
  1. start: wall time from launching `polyaxon run` to the job's first instruction. The job
     is `bash -c 'echo $EPOCHREALTIME > …'` (a builtin: no process of its own), compared with
     the launch time taken just before. Median of --runs (default 30), in a git repository
     of a few files. Target: under 30 ms.
  2. snapshot: the code snapshot `polyaxon run` takes (timed in-process by
     cli/examples/snapshot.rs) of a --files (default 10,000) file repository with uncommitted
     changes (1% of files modified, 1% new), against `git add -A && git commit` on a copy of
     the same repository (what a user would do by hand). Median of 5. Twice: on a fresh copy
     (every file's stat differs from the index's, so both hash every file) and on a copy where
     `git status` has refreshed the index first (the everyday case).
     Target: no slower than git.
  3. log throughput: a job printing 1,000,000 lines; lines per second from the job's start
     to every line stored (the run's end).
  4. log latency: a job printing one line (its time) every 50 ms; `polyaxon logs -f` in
     another process prints them; latency = time the follower printed the line minus the
     time the job wrote it. Median and 95th percentile of 100 lines. Target: under 100 ms.
  5. ending: how soon a run ends after what ends it — its `termination.timeout` (a `sleep 30`
     job with `timeout: 1`: the time from the job's start to the run's `failed`, less the
     second), and `polyaxon ops stop` (the time from the stop to the run's `stopped`) of a job
     that obeys SIGTERM and of one that ignores it (killed after the 10 s grace). Median of 5.
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


def default_binary():
    target = os.environ.get("CARGO_TARGET_DIR")
    if target:
        return pathlib.Path(target) / "release" / "polyaxon"
    return ROOT / "target" / "release" / "polyaxon"


def git(cwd, *args):
    subprocess.run(["git", "-c", "user.email=b@b", "-c", "user.name=bench", "-c", "gc.auto=0", *args], cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def env_for(home):
    return {"HOME": str(home), "POLYAXON_HOME": str(home / ".polyaxon"), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "NO_COLOR": "1", "LANG": "C.UTF-8"}


def polyaxonfile(command, name="bench"):
    return (f"version: 1.1\nkind: component\nname: {name}\nrun:\n  kind: job\n  container:\n    image: bash\n"
            f"    command: [bash, -c, {json.dumps(command)}]\n")


def wait_done(binary, env, cwd, uuid, timeout=300):
    end = time.time() + timeout
    while time.time() < end:
        out = subprocess.run([binary, "ops", "get", "--uid", uuid, "-o", "json"], env=env, cwd=cwd,
                             capture_output=True, text=True)
        if out.returncode == 0:
            r = json.loads(out.stdout)
            if r["status"] in ("succeeded", "failed", "stopped"):
                return r
        time.sleep(0.05)
    raise RuntimeError(f"run {uuid} did not end")


def start_latency(binary, work, runs):
    home = work / "start-home"
    repo = work / "start-repo"
    repo.mkdir()
    stamp = work / "stamp"
    (repo / "polyaxonfile.yml").write_text(polyaxonfile(f"echo $EPOCHREALTIME > {stamp}"))
    (repo / "train.py").write_text("print('hello')\n")
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "init")
    env = env_for(home)
    # Warm-up: creates the store and the default project.
    subprocess.run([binary, "run", "-l"], cwd=repo, env=env, check=True, capture_output=True)
    times = []
    for _ in range(runs):
        if stamp.exists():
            stamp.unlink()
        t0 = time.time()
        subprocess.run([binary, "run"], cwd=repo, env=env, check=True, capture_output=True)
        end = time.time() + 30
        while not stamp.exists() or not stamp.read_text().strip():
            if time.time() > end:
                raise RuntimeError("the job never started")
            time.sleep(0.0005)
        t1 = float(stamp.read_text().strip())
        times.append((t1 - t0) * 1e3)
        time.sleep(0.2)  # let the run finish before the next
    return {"median_ms": statistics.median(times), "min_ms": min(times), "max_ms": max(times), "runs": runs}


def make_repo(path, files):
    path.mkdir(parents=True)
    for i in range(files):
        d = path / f"pkg{i // 100:03d}"
        d.mkdir(exist_ok=True)
        (d / f"mod{i:05d}.py").write_text(f"# module {i}\nVALUE = {i}\n" + "x = 1\n" * 20)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "init")
    # Uncommitted work: 1% modified, 1% new files.
    for i in range(0, files, 100):
        (path / f"pkg{i // 100:03d}" / f"mod{i:05d}.py").write_text(f"# changed {i}\n")
        (path / f"pkg{i // 100:03d}" / f"new{i:05d}.py").write_text(f"# new {i}\n")


def snapshot_speed(example, work, files):
    base = work / "snap-base"
    make_repo(base, files)
    ours, theirs, ours_fresh, theirs_fresh = [], [], [], []
    for k in range(5):
        # Ours: the snapshot `polyaxon run` takes (cli/examples/snapshot.rs times exactly it).
        repo = work / f"snap-ours-{k}"
        shutil.copytree(base, repo, symlinks=True)
        out = subprocess.run([example, str(repo), f"bench{k}"], capture_output=True, text=True, check=True)
        r = json.loads(out.stdout)
        ours.append(r["ms"])
        # Git: the same on a copy, by hand, as a user would.
        copy = work / f"snap-git-{k}"
        shutil.copytree(base, copy, symlinks=True)
        t = time.perf_counter()
        git(copy, "add", "-A")
        git(copy, "commit", "-qm", "snapshot")
        theirs.append((time.perf_counter() - t) * 1e3)
        # The everyday case: the index's stat cache is fresh (`git status` was run).
        for side in ("ours", "git"):
            repo = work / f"snap-fresh-{side}-{k}"
            shutil.copytree(base, repo, symlinks=True)
            git(repo, "status", "--porcelain")
            if side == "ours":
                out = subprocess.run([example, str(repo), f"fresh{k}"], capture_output=True, text=True, check=True)
                ours_fresh.append(json.loads(out.stdout)["ms"])
            else:
                t = time.perf_counter()
                git(repo, "add", "-A")
                git(repo, "commit", "-qm", "snapshot")
                theirs_fresh.append((time.perf_counter() - t) * 1e3)
    return {"files": files, "snapshot_files": r["files"], "ours_median_ms": statistics.median(ours),
            "git_median_ms": statistics.median(theirs), "ours_all_ms": ours, "git_all_ms": theirs,
            "ours_fresh_median_ms": statistics.median(ours_fresh),
            "git_fresh_median_ms": statistics.median(theirs_fresh)}


def iso_ts(s):
    """Seconds since the epoch of an RFC 3339 time as the API writes them."""
    from datetime import datetime
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def log_throughput(binary, work, lines):
    home = work / "logs-home"
    d = work / "logs-repo"
    d.mkdir()
    (d / "polyaxonfile.yml").write_text(polyaxonfile(f"seq 1 {lines}"))
    env = env_for(home)
    out = subprocess.run([binary, "run", "-o", "json"], cwd=d, env=env, capture_output=True, text=True, check=True)
    uuid = json.loads(out.stdout)["uuid"]
    r = wait_done(binary, env, d, uuid)
    conds = {c["type"]: c["last_transition_time"] for c in r["status_conditions"]}

    secs = iso_ts(conds["succeeded"]) - iso_ts(conds["running"])
    # Every line stored, in order.
    logs = subprocess.run([binary, "ops", "logs", "--no-follow", "--hide-time", "--uid", uuid], cwd=d, env=env,
                          capture_output=True, text=True, check=True).stdout.split("\n")
    stored = len([x for x in logs if x])
    return {"lines": lines, "stored": stored, "seconds": secs, "lines_per_second": lines / secs}


def log_latency(binary, work, n):
    home = work / "lat-home"
    d = work / "lat-repo"
    d.mkdir()
    cmd = f"for i in $(seq 1 {n}); do echo \"$EPOCHREALTIME\"; sleep 0.05; done"
    (d / "polyaxonfile.yml").write_text(polyaxonfile(cmd))
    env = env_for(home)
    out = subprocess.run([binary, "run", "-o", "json"], cwd=d, env=env, capture_output=True, text=True, check=True)
    uuid = json.loads(out.stdout)["uuid"]
    follower = subprocess.Popen([binary, "logs", uuid, "--hide-time"], cwd=d, env=env, stdout=subprocess.PIPE,
                                text=True, bufsize=1)
    lat = []
    for line in follower.stdout:
        now = time.time()
        try:
            wrote = float(line.strip())
        except ValueError:
            continue
        lat.append((now - wrote) * 1e3)
    follower.wait()
    lat = lat[1:]  # the first line is read when the follower starts, not live
    lat.sort()
    return {"lines": len(lat), "median_ms": statistics.median(lat), "p95_ms": lat[int(len(lat) * 0.95) - 1],
            "max_ms": lat[-1]}


def status_times(binary, env, cwd, uuid):
    """The run's status history: (type, seconds since the epoch) of each condition."""
    out = subprocess.run([binary, "ops", "statuses", "--uid", uuid, "-o", "json"], env=env, cwd=cwd,
                         capture_output=True, text=True, check=True)
    return [(c["type"], iso_ts(c["last_transition_time"])) for c in json.loads(out.stdout)]


def ending(binary, work, runs=5):
    home = work / "end-home"
    repo = work / "end-repo"
    repo.mkdir()
    env = env_for(home)
    (repo / "timeout.yml").write_text(polyaxonfile("sleep 30", "timeout") + "termination: {timeout: 1}\n")
    (repo / "obeys.yml").write_text(polyaxonfile("sleep 30", "obeys"))
    (repo / "ignores.yml").write_text(polyaxonfile("trap '' TERM; sleep 30 & wait", "ignores"))

    def start(f):
        out = subprocess.run([binary, "run", "-f", f, "-o", "json"], cwd=repo, env=env, check=True,
                             capture_output=True, text=True)
        return json.loads(out.stdout)["uuid"]

    def wait_running(uuid):
        end = time.time() + 30
        while time.time() < end:
            if any(t == "running" for t, _ in status_times(binary, env, repo, uuid)):
                return
            time.sleep(0.02)
        raise RuntimeError("the job never ran")

    timeout, obeys, ignores = [], [], []
    for _ in range(runs):
        uuid = start("timeout.yml")
        wait_done(binary, env, repo, uuid, 60)
        st = dict(status_times(binary, env, repo, uuid))
        timeout.append((st["failed"] - st["running"] - 1.0) * 1e3)
        for f, out in (("obeys.yml", obeys), ("ignores.yml", ignores)):
            uuid = start(f)
            wait_running(uuid)
            time.sleep(0.3)
            t0 = time.time()
            subprocess.run([binary, "ops", "stop", "--uid", uuid, "--yes"], cwd=repo, env=env, check=True,
                           capture_output=True)
            wait_done(binary, env, repo, uuid, 60)
            out.append((dict(status_times(binary, env, repo, uuid))["stopped"] - t0) * 1e3)
    med = statistics.median
    return {"timeout_overshoot_ms": med(timeout), "stop_obeys_ms": med(obeys), "stop_ignores_ms": med(ignores),
            "runs": runs}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=str(default_binary()))
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--log-lines", type=int, default=1_000_000)
    args = ap.parse_args()
    binary = pathlib.Path(args.binary)
    if not binary.is_file():
        sys.exit(f"no polyaxon binary at {binary}: build it with `cargo build --release -p polyaxon-cli`")
    binary = str(binary)
    with tempfile.TemporaryDirectory(prefix="polyaxon-run-bench-") as tmp:
        work = pathlib.Path(tmp)
        res = {}
        print("start latency …", file=sys.stderr, flush=True)
        res["start"] = start_latency(binary, work, args.runs)
        print("snapshot …", file=sys.stderr, flush=True)
        res["snapshot"] = snapshot_speed(str(pathlib.Path(binary).parent / "examples" / "snapshot"), work, args.files)
        print("log throughput …", file=sys.stderr, flush=True)
        res["log_throughput"] = log_throughput(binary, work, args.log_lines)
        print("log latency …", file=sys.stderr, flush=True)
        res["log_latency"] = log_latency(binary, work, 100)
        print("ending …", file=sys.stderr, flush=True)
        res["ending"] = ending(binary, work)
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "run_bench.json").write_text(json.dumps(res, indent=2))
    s, sn, lt, ll = res["start"], res["snapshot"], res["log_throughput"], res["log_latency"]
    print(f"run start to the job's first instruction: median {s['median_ms']:.1f} ms (min {s['min_ms']:.1f}, max {s['max_ms']:.1f}; {s['runs']} runs)")
    print(f"snapshot of {sn['files']:,} files, copied tree (stale stat cache): ours {sn['ours_median_ms']:.0f} ms, git add -A && git commit {sn['git_median_ms']:.0f} ms")
    print(f"snapshot of {sn['files']:,} files, after `git status` (fresh stat cache): ours {sn['ours_fresh_median_ms']:.0f} ms, git add -A && git commit {sn['git_fresh_median_ms']:.0f} ms")
    print(f"log throughput: {lt['lines_per_second']:,.0f} lines/s ({lt['stored']:,} of {lt['lines']:,} stored)")
    print(f"log latency, write to display: median {ll['median_ms']:.1f} ms, p95 {ll['p95_ms']:.1f} ms, max {ll['max_ms']:.1f} ms ({ll['lines']} lines)")
    e = res["ending"]
    print(f"termination.timeout: the run ends {e['timeout_overshoot_ms']:.0f} ms after its deadline (median of {e['runs']})")
    print(f"ops stop to `stopped`: {e['stop_obeys_ms']:.0f} ms for a job that obeys SIGTERM, {e['stop_ignores_ms']:.0f} ms for one that ignores it (10 s grace)")


if __name__ == "__main__":
    main()
