#!/usr/bin/env python3
"""A run's files through the server to S3 (moto's server), side by side with object_store's
own put and get of the same files: the limit the server's path is held to.

Usage: bench/store_bench.py --binary target/release/polyaxon
       --raw target/release/examples/store_raw [--files 1000] [--size-mib 1] [--concurrency 8]
Needs the test virtualenv's moto (`scripts/test` installs it): POLYAXON_TEST_PYTHON, or
~/.cache/polyaxon-rs/venv. Prints the figures; bench/RESULTS.md records them.

Measured, on one fresh moto per case (so neither side finds the other's objects):
  raw:    `store_raw` (a cargo example of polyaxon-server: `object_store` alone, the same
          S3 client settings as the server's store) puts then gets every file, `--concurrency`
          at a time; the wall time of each half.
  server: `polyaxon server start --open --artifacts-store s3://…` on SQLite; one run; every
          file uploaded as the CLI sends outputs (POST …/artifacts/upload?path=…, a raw body),
          `--concurrency` at a time, each answered once the bucket has it; then every file
          downloaded (GET …/artifact?path=…, streamed from the bucket); the wall time of each.
The tree is `--files` files of `--size-mib` MiB of random bytes (1,000 × 1 MiB = 1 GiB).
"""
import argparse
import concurrent.futures
import hashlib
import http.client
import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def venv_bin(name):
    py = os.environ.get("POLYAXON_TEST_PYTHON") or str(pathlib.Path.home() / ".cache/polyaxon-rs/venv/bin/python")
    return str(pathlib.Path(py).parent / name)


def wait_port(port, within=60):
    end = time.time() + within
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listens on {port}")


class Moto:
    def __enter__(self):
        self.port = free_port()
        self.p = subprocess.Popen([venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(self.port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)
        c = http.client.HTTPConnection("127.0.0.1", self.port)
        c.request("PUT", "/bench")
        r = c.getresponse()
        r.read()
        assert r.status == 200, r.status
        return self

    def __exit__(self, *a):
        self.p.kill()
        self.p.wait()

    def options(self):
        return [f"endpoint=http://127.0.0.1:{self.port}", "allow_http=true", "region=us-east-1",
                "access_key_id=testing", "secret_access_key=testing"]


def make_tree(root, files, size):
    digests = {}
    for i in range(files):
        rel = f"d{i % 10}/f{i:04d}.bin"
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        data = os.urandom(size)
        p.write_bytes(data)
        digests[rel] = hashlib.sha256(data).hexdigest()
    return digests


def raw_case(raw_bin, tree, concurrency):
    with Moto() as m:
        out = subprocess.run([raw_bin, "--url", "s3://bench/raw", "--dir", str(tree),
                              "--concurrency", str(concurrency)] + sum((["--option", o] for o in m.options()), []),
                             check=True, capture_output=True, text=True)
        return json.loads(out.stdout)


def server_case(binary, tree, digests, concurrency):
    with Moto() as m, tempfile.TemporaryDirectory() as home:
        port = free_port()
        env = dict(os.environ, POLYAXON_HOME=home, RUST_LOG="warn")
        args = [binary, "server", "start", "--open", "--port", str(port), "--artifacts-store", "s3://bench/server"]
        for o in m.options():
            args += ["--artifacts-store-option", o]
        srv = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_port(port)

            def call(method, path, body=None):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                c.request(method, path, body=json.dumps(body) if body is not None else None,
                          headers={"Content-Type": "application/json"})
                r = c.getresponse()
                data = r.read()
                assert r.status < 300, (r.status, data)
                return json.loads(data) if data else None

            call("POST", "/api/v1/default/projects/create", {"name": "sb"})
            uuid = call("POST", "/api/v1/default/sb/runs", {"name": "store-bench", "is_managed": False})["uuid"]
            rels = sorted(digests)

            def upload(rel):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                body = (tree / rel).read_bytes()
                c.request("POST", f"/api/v1/default/sb/runs/{uuid}/artifacts/upload?path=outputs/{rel}", body=body,
                          headers={"Content-Type": "application/octet-stream", "Content-Length": str(len(body))})
                r = c.getresponse()
                r.read()
                assert r.status == 200, r.status

            def download(rel):
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
                c.request("GET", f"/streams/v1/polyaxon/default/sb/runs/{uuid}/artifact?path=outputs/{rel}")
                r = c.getresponse()
                h = hashlib.sha256()
                buf = bytearray(1 << 20)
                view = memoryview(buf)
                while True:
                    n = r.readinto(buf)
                    if not n:
                        break
                    h.update(view[:n])
                assert r.status == 200, r.status
                assert h.hexdigest() == digests[rel], rel

            with concurrent.futures.ThreadPoolExecutor(concurrency) as ex:
                t0 = time.perf_counter()
                list(ex.map(upload, rels))
                t1 = time.perf_counter()
                list(ex.map(download, rels))
                t2 = time.perf_counter()
            local = pathlib.Path(home) / "artifacts" / uuid / "outputs"
            left = sum(1 for p in local.rglob("*") if p.is_file()) if local.exists() else 0
            assert left == 0, f"{left} files still on the server's disk"
            return {"put_s": t1 - t0, "get_s": t2 - t1}
        finally:
            srv.terminate()
            srv.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--raw", required=True)
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--size-mib", type=float, default=1.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    a = ap.parse_args()
    size = int(a.size_mib * (1 << 20))
    total = a.files * size
    with tempfile.TemporaryDirectory() as d:
        tree = pathlib.Path(d)
        log(f"writing {a.files} files of {size} bytes ({total / (1 << 30):.2f} GiB)")
        digests = make_tree(tree, a.files, size)
        rows = []
        for i in range(a.rounds):
            log(f"round {i + 1}: raw object_store")
            raw = raw_case(a.raw, tree, a.concurrency)
            log(f"  put {raw['put_s']:.2f} s, get {raw['get_s']:.2f} s")
            log(f"round {i + 1}: through the server")
            srv = server_case(a.binary, tree, digests, a.concurrency)
            log(f"  put {srv['put_s']:.2f} s, get {srv['get_s']:.2f} s")
            rows.append((raw, srv))
    best = lambda k, side: min(r[side][k] for r in rows)
    mib = total / (1 << 20)
    print(f"{a.files} files, {mib:.0f} MiB, concurrency {a.concurrency}, best of {a.rounds} rounds")
    print("| | raw object_store | through the server | server / raw throughput |")
    print("|---|---|---|---|")
    for k, label in (("put_s", "upload"), ("get_s", "download")):
        raw_t, srv_t = best(k, 0), best(k, 1)
        print(f"| {label} | {raw_t:.2f} s ({mib / raw_t:.0f} MiB/s) | {srv_t:.2f} s ({mib / srv_t:.0f} MiB/s) | {raw_t / srv_t:.0%} |")


if __name__ == "__main__":
    main()
