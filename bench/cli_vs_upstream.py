#!/usr/bin/env python3
"""Whole-process wall time of four CLI commands: ours against upstream's Python CLI.

Usage: bench/cli_vs_upstream.py [--binary PATH] [--runs N] [--upstream-runs M] [--seed-runs K]

Measured, for each side, as the median (and min) of N (ours, default 30) or M (upstream,
default 5) runs, after one untimed warm-up run:
  1. `polyaxon --help`
  2. `polyaxon version`
  3. `polyaxon project ls`
  4. `polyaxon ops ls -p bench`, with 10,000 runs in the project

Ours: the release binary in its embedded mode (no server; state in `$POLYAXON_HOME`, SQLite
`polyaxon.db`, owner `default`). The state is seeded through our own server
(`polyaxon server start --open --port 0` on that `POLYAXON_HOME`), which is stopped before timing.

Upstream: `polyaxon==2.18.0` (the Python CLI) talking over HTTP to a local `haupt==2.18.0`
sandbox server on SQLite (`haupt sandbox start`), both installed from PyPI into a private
virtualenv (~/.cache/polyaxon-rs/bench-upstream-cli-venv, reused when present). The upstream
server is seeded through its REST API (a run there needs an operation as `content`; it answers
some concurrent POSTs with a spurious 405, which are retried) and stays up while its CLI is
timed. Its CLI is pointed at it with `config set --host=... --no-purge`, which skips the check
against the vendor's cloud that a plain `config set --host` makes; with strace installed, the
script traces every command once and reports any connection to other than loopback.

Every timed run gets a fresh private HOME (a copy of that side's prepared state, made outside the
clock), so nothing one run writes reaches the next; the environment is only PATH, HOME
(+ POLYAXON_HOME for ours), NO_COLOR=1 and COLUMNS=120. Each run must exit 0.

Prints a table and writes every figure to bench/out/cli_vs_upstream.json. Servers it started are
stopped on exit, errors included. The driver uses the standard library only.
"""
import argparse
import gzip
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out" / "cli_vs_upstream.json"
CACHE = pathlib.Path(os.environ.get("POLYAXON_BENCH_CACHE", pathlib.Path.home() / ".cache" / "polyaxon-rs"))
VENV = CACHE / "bench-upstream-cli-venv"
UPSTREAM_VERSION = "2.18.0"
# `haupt[sandbox]` brings uvicorn and the other pieces its local server needs.
UPSTREAM_PACKAGES = [f"polyaxon=={UPSTREAM_VERSION}", f"haupt[sandbox]=={UPSTREAM_VERSION}"]

OWNER = "default"
PROJECT = "bench"
COMMANDS = [
    ("--help", ["--help"]),
    ("version", ["version"]),
    ("project ls", ["project", "ls"]),
    (f"ops ls -p {PROJECT}", ["ops", "ls", "-p", PROJECT]),
]
# Upstream refuses a run without an operation: the smallest one it accepts.
UPSTREAM_RUN_CONTENT = json.dumps(
    {"version": 1.1, "kind": "operation", "component": {"run": {"kind": "job", "container": {"image": "busybox"}}}}
)
STARTUP_TARGET_MS = 5.0
RATIO_TARGET = 100.0


class BenchError(Exception):
    """A failure with a message meant for the person running the bench."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def default_binary():
    target = os.environ.get("CARGO_TARGET_DIR")
    return pathlib.Path(target) / "release" / "polyaxon" if target else ROOT / "target" / "release" / "polyaxon"


# --- HTTP ------------------------------------------------------------------------------------


def api(base, method, path, body=None, timeout=60):
    """One JSON request; returns (status, decoded body or None). HTTP errors are returned, not
    raised. Upstream gzips its answers whatever the request says, so that is undone here."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    req.add_header("Accept-Encoding", "identity")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw, enc = resp.status, resp.read(), resp.headers.get("Content-Encoding")
    except urllib.error.HTTPError as e:
        status, raw, enc = e.code, e.read(), e.headers.get("Content-Encoding")
    if enc == "gzip":
        raw = gzip.decompress(raw)
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw.decode(errors="replace")


def wait_http(base, path, proc, logfile, timeout):
    """Poll until `path` answers 200, failing early if the server process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited with {proc.returncode} before it was ready:\n{tail(logfile)}")
        try:
            if api(base, "GET", path, timeout=5)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise BenchError(f"server at {base} not ready after {timeout} s:\n{tail(logfile)}")


def tail(path, lines=30):
    try:
        return "\n".join(pathlib.Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- servers ---------------------------------------------------------------------------------


class Servers:
    """Every server process this script starts; `stop_all` ends each one (and its workers) by id."""

    def __init__(self):
        self.procs = []

    def start(self, argv, env, logfile):
        # A session of its own, so the server and any worker processes it forks share a process
        # group whose id is the server's pid: we signal exactly that group and nothing else.
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=open(logfile, "ab"),
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc, timeout=30):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                log(f"server {proc.pid} ignored SIGTERM for {timeout} s; killing it")
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        # Workers of the group may outlive their parent by a moment: make sure none are left.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if proc in self.procs:
            self.procs.remove(proc)
        return proc.returncode

    def stop_all(self):
        for proc in list(self.procs):
            self.stop(proc)


# --- seeding ---------------------------------------------------------------------------------


def create_runs(base, n, threads, body_for, retry_statuses=()):
    """POST n runs to the project from a thread pool. A status in `retry_statuses` is retried
    (upstream's server answers some concurrent POSTs with a spurious 405 and creates nothing);
    any other non-2xx status aborts. Returns (seconds, retries)."""
    path = f"/api/v1/{OWNER}/{PROJECT}/runs"

    def one(i):
        for attempt in range(200):
            status, resp = api(base, "POST", path, body_for(i))
            if 200 <= status < 300:
                return attempt
            if status not in retry_statuses:
                raise BenchError(f"POST {path} (run {i}) answered {status}: {str(resp)[:300]}")
            time.sleep(0.01 * min(attempt + 1, 10))
        raise BenchError(f"POST {path} (run {i}) still refused after 200 tries")

    t = time.perf_counter()
    pool = ThreadPoolExecutor(threads)
    try:
        retries = sum(pool.map(one, range(n)))
    finally:
        # On an error or a signal, drop the queued POSTs instead of sending them all first.
        pool.shutdown(wait=True, cancel_futures=True)
    return time.perf_counter() - t, retries


def create_project(base):
    status, resp = api(base, "POST", f"/api/v1/{OWNER}/projects/create", {"name": PROJECT})
    if not 200 <= status < 300:
        raise BenchError(f"creating project {PROJECT} answered {status}: {str(resp)[:300]}")


def check_count(base, n):
    status, resp = api(base, "GET", f"/api/v1/{OWNER}/{PROJECT}/runs?limit=1")
    count = resp.get("count") if isinstance(resp, dict) else None
    if status != 200 or count != n:
        raise BenchError(f"project {PROJECT} should hold {n} runs; the server says {status}: count={count}")


def seed_ours(binary, servers, state, n):
    """Seed `state` (used as HOME, with POLYAXON_HOME=state/.polyaxon) through our own server."""
    env = {"PATH": os.environ["PATH"], "HOME": str(state), "POLYAXON_HOME": str(state / ".polyaxon")}
    logfile = state.parent / "ours-server.log"
    proc = servers.start([str(binary), "server", "start", "--open", "--port", "0"], env, logfile)
    # The server names its address on stderr once it listens (port 0 = a free port).
    deadline, base = time.monotonic() + 60, None
    while base is None:
        m = re.search(r"polyaxon server listening on (http://\S+)", tail(logfile, 200))
        if m:
            base = m.group(1).rstrip("/")
        elif proc.poll() is not None:
            raise BenchError(f"our server exited with {proc.returncode}:\n{tail(logfile)}")
        elif time.monotonic() > deadline:
            raise BenchError(f"our server did not report its address within 60 s:\n{tail(logfile)}")
        else:
            time.sleep(0.05)
    create_project(base)
    secs, retries = create_runs(base, n, 8, lambda i: {"name": f"run-{i}", "tags": ["t"]})
    check_count(base, n)
    code = servers.stop(proc)
    if code != 0:
        raise BenchError(f"our server exited with {code} on SIGTERM:\n{tail(logfile)}")
    return {"seconds": round(secs, 2), "threads": 8, "retries": retries}


def ensure_venv():
    """The private virtualenv with upstream's CLI and server, pinned; reused when it holds them."""
    py = VENV / "bin" / "python"
    check = ("import importlib.metadata as m, uvicorn; "
             f"assert m.version('polyaxon') == m.version('haupt') == {UPSTREAM_VERSION!r}")
    if not py.exists() or subprocess.run([str(py), "-c", check], capture_output=True).returncode:
        log(f"installing {' '.join(UPSTREAM_PACKAGES)} into {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", *UPSTREAM_PACKAGES], check=True)
    return VENV / "bin" / "polyaxon"


def start_upstream(servers, work):
    """`haupt sandbox start`: upstream's all-in-one local server, SQLite in <path>/.polyaxon/plx.db.
    It migrates its database on start. It gets its own HOME, since it writes its config there."""
    port = free_port()
    home = work / "upstream-server"
    home.mkdir()
    env = {"PATH": f"{VENV / 'bin'}:{os.environ['PATH']}", "HOME": str(home)}
    argv = [str(VENV / "bin" / "haupt"), "sandbox", "start", "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--path", str(home / "sandbox")]
    logfile = work / "upstream-server.log"
    proc = servers.start(argv, env, logfile)
    base = f"http://127.0.0.1:{port}"
    wait_http(base, "/healthz", proc, logfile, timeout=180)
    return base, argv, env


def seed_upstream(base, n, threads):
    create_project(base)
    body = lambda i: {"name": f"run-{i}", "tags": ["t"], "content": UPSTREAM_RUN_CONTENT}  # noqa: E731
    secs, retries = create_runs(base, n, threads, body, retry_statuses=(405,))
    check_count(base, n)
    return {"seconds": round(secs, 2), "threads": threads, "retries_after_405": retries}


def configure_upstream_cli(cli, template, base):
    """Point upstream's CLI at the server, in the HOME every timed run starts from.
    `--no-purge`: a plain `config set --host` also asks the vendor's cloud for compatible versions
    (an outside DNS lookup, failing here); a fresh HOME has nothing to purge anyway."""
    template.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(template)}
    p = subprocess.run([str(cli), "config", "set", f"--host={base}", "--no-purge",
                        "--disable-errors-reporting=true"], env=env, capture_output=True, text=True)
    if p.returncode:
        raise BenchError(f"upstream `config set` failed ({p.returncode}):\n{p.stdout}{p.stderr}")


# --- timing ----------------------------------------------------------------------------------


class Side:
    """One CLI to time: its executable, the state each run's HOME is copied from, and extra env."""

    def __init__(self, name, exe, template, polyaxon_home_rel=None):
        self.name, self.exe, self.template, self.polyaxon_home_rel = name, exe, template, polyaxon_home_rel
        self.ops_ls_rows = None  # rows `ops ls` printed, set by verify()

    def fresh_env(self, scratch):
        """A private copy of the state (made before the clock starts) and the env for one run."""
        home = pathlib.Path(tempfile.mkdtemp(dir=scratch)) / "home"
        shutil.copytree(self.template, home, symlinks=True)
        env = {"PATH": os.environ["PATH"], "HOME": str(home), "NO_COLOR": "1", "COLUMNS": "120"}
        if self.polyaxon_home_rel is not None:
            env["POLYAXON_HOME"] = str(home / self.polyaxon_home_rel)
        return home, env

    def run(self, argv, scratch, capture=False):
        """One run in a fresh HOME: (seconds, exit code, stdout+stderr if captured)."""
        home, env = self.fresh_env(scratch)
        out = subprocess.PIPE if capture else subprocess.DEVNULL
        try:
            t = time.perf_counter()
            p = subprocess.run([str(self.exe), *argv], env=env, cwd=home, stdin=subprocess.DEVNULL,
                               stdout=out, stderr=subprocess.STDOUT if capture else subprocess.DEVNULL)
            secs = time.perf_counter() - t
        finally:
            shutil.rmtree(home.parent, ignore_errors=True)
        text = p.stdout.decode(errors="replace") if capture else ""
        return secs, p.returncode, text

    def time(self, argv, runs, scratch):
        self.run(argv, scratch)  # warm-up: page cache, Python's bytecode cache
        samples = []
        for _ in range(runs):
            secs, code, _ = self.run(argv, scratch)
            if code != 0:
                raise BenchError(f"{self.name}: `polyaxon {' '.join(argv)}` exited {code} during timing")
            samples.append(secs * 1e3)
        return {"median_ms": round(statistics.median(samples), 3), "min_ms": round(min(samples), 3),
                "runs": runs, "samples_ms": [round(s, 3) for s in samples]}

    def verify(self, n, scratch):
        """Each command must exit 0, and the listings must show the project and its runs."""
        for label, argv in COMMANDS:
            _, code, text = self.run(argv, scratch, capture=True)
            if code != 0:
                raise BenchError(f"{self.name}: `polyaxon {label}` exited {code}:\n{text[-2000:]}")
            if label == "project ls" and PROJECT not in text:
                raise BenchError(f"{self.name}: `polyaxon project ls` does not list {PROJECT}:\n{text[-2000:]}")
            if label.startswith("ops ls"):
                shown = len(re.findall(r"\brun-\d+\b", text))
                # The total: ours says "1–20 of N runs", upstream's navigation table "count N".
                if not shown or not re.search(rf"\b(?:of|count)\s+(?:{n}|{n:,})\b", text):
                    raise BenchError(f"{self.name}: `polyaxon {label}` shows {shown} runs and no total "
                                     f"of {n}:\n{text[-3000:]}")
                self.ops_ls_rows = shown

    def network_check(self, scratch):
        """Under strace (when installed), the addresses each command connects to other than
        loopback: proof that nothing but the local server is contacted."""
        if not shutil.which("strace"):
            return None
        found = {}
        for label, argv in COMMANDS:
            home, env = self.fresh_env(scratch)
            trace = home.parent / "trace"
            try:
                subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect", "-o", str(trace), str(self.exe), *argv],
                               env=env, cwd=home, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
                text = trace.read_text(errors="replace") if trace.exists() else ""
            finally:
                shutil.rmtree(home.parent, ignore_errors=True)
            addrs = re.findall(r'inet_addr\("([\d.]+)"\)|inet_pton\(AF_INET6, "([^"]+)"', text)
            outside = sorted({a or b for a, b in addrs if not (a.startswith("127.") or b == "::1")})
            found[label] = outside
        return found


# --- report ----------------------------------------------------------------------------------


def report(results, startup_ms, min_ratio):
    rows = [("command", "ours median", "ours min", "upstream median", "upstream min", "upstream/ours")]
    for r in results:
        o, u = r["ours"], r["upstream"]
        rows.append((f"polyaxon {r['command']}", f"{o['median_ms']:.2f} ms", f"{o['min_ms']:.2f} ms",
                     f"{u['median_ms']:.0f} ms", f"{u['min_ms']:.0f} ms", f"x{r['ratio']:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for k, row in enumerate(rows):
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if k == 0:
            print("  ".join("-" * w for w in widths))
    print()
    met = lambda ok: "met" if ok else "NOT met"  # noqa: E731
    print(f"start-up (ours, median of the --help and version runs): {startup_ms:.2f} ms "
          f"(target < {STARTUP_TARGET_MS:g} ms: {met(startup_ms < STARTUP_TARGET_MS)})")
    print(f"smallest ratio upstream/ours over the four commands: x{min_ratio:.0f} "
          f"(target >= x{RATIO_TARGET:g}: {met(min_ratio >= RATIO_TARGET)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", type=pathlib.Path, default=default_binary(),
                    help="our release binary (default: $CARGO_TARGET_DIR/release/polyaxon, else target/release/polyaxon)")
    ap.add_argument("--runs", type=int, default=30, help="timed runs of each of our commands")
    ap.add_argument("--upstream-runs", type=int, default=5, help="timed runs of each upstream command")
    ap.add_argument("--seed-runs", type=int, default=10_000, help="runs in the listed project")
    ap.add_argument("--upstream-seed-threads", type=int, default=2,
                    help="concurrent POSTs when seeding upstream (its server refuses many at once)")
    args = ap.parse_args()

    binary = args.binary.resolve()
    if not binary.is_file() or not os.access(binary, os.X_OK):
        sys.exit(f"error: our binary {binary} is missing or not executable; build it with "
                 "`cargo build --release -p polyaxon-cli` or pass --binary PATH")

    # SIGTERM/SIGHUP end the script through the same `finally` as Ctrl-C and errors do.
    def on_signal(signum, _frame):
        log(f"stopping on signal {signum}")
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    servers = Servers()
    work = pathlib.Path(tempfile.mkdtemp(prefix="polyaxon-cli-bench-"))
    scratch = work / "runs"
    scratch.mkdir()
    try:
        cli = ensure_venv()

        log(f"ours: seeding {args.seed_runs} runs through `polyaxon server start --open`")
        ours_state = work / "ours-home"
        (ours_state / ".polyaxon").mkdir(parents=True)
        ours_seed = seed_ours(binary, servers, ours_state, args.seed_runs)
        ours = Side("ours", binary, ours_state, polyaxon_home_rel=".polyaxon")
        ours.verify(args.seed_runs, scratch)

        log("upstream: starting `haupt sandbox start` (SQLite)")
        base, haupt_argv, haupt_env = start_upstream(servers, work)
        log(f"upstream: seeding {args.seed_runs} runs at {base} ({args.upstream_seed_threads} threads)")
        up_seed = seed_upstream(base, args.seed_runs, args.upstream_seed_threads)
        up_template = work / "upstream-home"
        configure_upstream_cli(cli, up_template, base)
        upstream = Side("upstream", cli, up_template)
        upstream.verify(args.seed_runs, scratch)

        network = {"ours": ours.network_check(scratch), "upstream": upstream.network_check(scratch)}

        results = []
        for label, argv in COMMANDS:
            log(f"timing `polyaxon {label}`: ours x{args.runs}, upstream x{args.upstream_runs}")
            o = ours.time(argv, args.runs, scratch)
            u = upstream.time(argv, args.upstream_runs, scratch)
            results.append({"command": label, "argv": argv, "ours": o, "upstream": u,
                            "ratio": round(u["median_ms"] / o["median_ms"], 1)})
    finally:
        servers.stop_all()
        shutil.rmtree(work, ignore_errors=True)

    startup = statistics.median(results[0]["ours"]["samples_ms"] + results[1]["ours"]["samples_ms"])
    min_ratio = min(r["ratio"] for r in results)
    report(results, startup, min_ratio)
    print()
    print(f"rows shown by `ops ls` at {args.seed_runs} runs: ours {ours.ops_ls_rows}, upstream {upstream.ops_ls_rows}")
    print(f"seeding: ours {ours_seed['seconds']} s, upstream {up_seed['seconds']} s "
          f"({up_seed['retries_after_405']} POSTs retried after a 405)")
    for side, found in network.items():
        if found is not None:
            outside = {k: v for k, v in found.items() if v}
            print(f"non-loopback connects ({side}, strace): {outside or 'none'}")

    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
        "ours": {"binary": str(binary), "mode": "embedded (SQLite in $POLYAXON_HOME)", "seeding": ours_seed,
                 "ops_ls_rows": ours.ops_ls_rows},
        "upstream": {"packages": UPSTREAM_PACKAGES, "venv": str(VENV),
                     "server": {"argv": [pathlib.Path(haupt_argv[0]).name, *haupt_argv[1:]],
                                "env": sorted(haupt_env), "database": "SQLite <path>/.polyaxon/plx.db"},
                     "cli_config": ["config", "set", "--host=<server>", "--no-purge", "--disable-errors-reporting=true"],
                     "seeding": up_seed, "ops_ls_rows": upstream.ops_ls_rows},
        "seed_runs": args.seed_runs,
        "env": ["PATH", "HOME (fresh copy per run)", "POLYAXON_HOME (ours)", "NO_COLOR=1", "COLUMNS=120"],
        "network_check": network,
        "commands": results,
        "startup_ms": round(startup, 3),
        "startup_target_ms": STARTUP_TARGET_MS,
        "min_ratio": min_ratio,
        "ratio_target": RATIO_TARGET,
    }, indent=2) + "\n")
    print(f"\nwrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    try:
        main()
    except BenchError as e:
        sys.exit(f"error: {e}")
