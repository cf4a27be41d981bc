"""`netwright serve` (issue 19): a real uvicorn server on a free 127.0.0.1 port answers what
`netwright predict` answers, batches concurrent requests, refuses bad ones with a 4xx naming
the field and keeps serving."""

from __future__ import annotations

import asyncio
import csv
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import netwright as nw

httpx = pytest.importorskip("httpx", reason="httpx comes with the dev extra")
pytest.importorskip("fastapi", reason="FastAPI comes with the serve extra")
pytest.importorskip("onnxruntime", reason="onnxruntime comes with the export extra")

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`python -m netwright serve RUN_DIR ...` in a subprocess, stopped by the fixture."""

    def __init__(self, run_dir: Path, *args: str) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([sys.executable, "-m", "netwright", "serve", str(run_dir),
                                      "--port", str(self.port), *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.proc.stdout.read().decode()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        self.stop()
        raise AssertionError("serve did not answer /health in 120 s")

    def stop(self) -> str:
        self.proc.terminate()
        try:
            out, _ = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
        return out.decode()


@pytest.fixture(scope="module")
def wine(tmp_path_factory):
    """A run on a CSV with named columns and named classes (the real wine data)."""
    from sklearn.datasets import load_wine

    root = tmp_path_factory.mktemp("wine")
    data = load_wine(as_frame=True)
    frame = data.frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    frame.to_csv(root / "wine.csv", index=False)
    frame.drop(columns="cultivar").iloc[:12].to_csv(root / "new.csv", index=False)
    result = nw.run({
        "name": "wine", "run_dir": str(root / "runs"), "model": {"zoo": "mlp", "hidden": [32]},
        "data": {"source": str(root / "wine.csv"), "target": "cultivar"},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 8, "batch_size": 32}, "metrics": ["accuracy"],
    }, verbose=0)
    return root, result.run_dir, frame


@pytest.fixture(scope="module")
def server(wine):
    _, run_dir, _ = wine
    # The run has no export: the service makes it when it starts. A long --max-wait-ms makes
    # the batching test independent of how fast a busy machine sends the concurrent requests.
    srv = Server(run_dir, "--max-wait-ms", "20")
    yield srv
    srv.stop()


def _predict_cli(run_dir: Path, path: Path) -> list[dict]:
    done = subprocess.run([sys.executable, "-m", "netwright", "predict", str(run_dir), str(path)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return list(csv.DictReader(done.stdout.splitlines()))


def test_answers_are_netwright_predicts_by_position_and_by_name(wine, server):
    root, run_dir, frame = wine
    assert (run_dir / "exports" / "model.onnx").is_file()  # exported on start
    want = _predict_cli(run_dir, root / "new.csv")
    features = frame.drop(columns="cultivar").iloc[:12]
    by_position = httpx.post(server.url + "/predict", json={"rows": features.values.tolist()})
    by_name = httpx.post(server.url + "/predict",
                         json={"rows": features.to_dict(orient="records")})
    for r in (by_position, by_name):
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["classes"] == ["barbera", "barolo", "grignolino"]
        assert body["labels"] == [row["label"] for row in want]
        got = np.array(body["probabilities"])
        cli = np.array([[float(row[f"p_{c}"]) for c in body["classes"]] for row in want])
        np.testing.assert_allclose(got, cli, atol=2e-6)  # the CLI rounds to 6 decimals
    assert by_position.json() == by_name.json()


def test_bad_requests_get_a_4xx_naming_the_field_and_the_service_keeps_serving(wine, server):
    _, _, frame = wine
    good = frame.drop(columns="cultivar").iloc[0].tolist()
    named = frame.drop(columns="cultivar").iloc[0].to_dict()
    cases = [
        (b"not json", 400, "body", "not JSON"),
        (b"", 400, "body", "empty"),
        (b"[1, 2]", 422, "body", "JSON object"),
        (json.dumps({"row": [good]}), 422, "rows", "Did you mean 'rows'"),
        (json.dumps({"rows": [good], "extra": 1}), 422, "extra", "unknown field"),
        (json.dumps({"rows": []}), 422, "rows", "empty"),
        (json.dumps({"rows": "abc"}), 422, "rows", "list of rows"),
        (json.dumps({"rows": [good[:-1]]}), 422, "rows[0]", "13 values"),
        (json.dumps({"rows": [good, good[:5]]}), 422, "rows[1]", "13 values"),
        (json.dumps({"rows": [good[:-1] + ["7"]]}), 422, "rows[0][12]", "expected a number"),
        (json.dumps({"rows": [good[:-1] + [None]]}), 422, "rows[0][12]", "expected a number"),
        (json.dumps({"rows": [good[:-1] + [True]]}), 422, "rows[0][12]", "expected a number"),
        (json.dumps({"rows": [good[:-1] + [float("nan")]]}), 422, "rows[0][12]", "NaN"),
        (json.dumps({"rows": [good[:-1] + [float("inf")]]}), 422, "rows[0][12]", "finite"),
        (json.dumps({"rows": [good] * 1025}), 413, "rows", "--max-rows"),
        (json.dumps({"rows": [{**named, "alcohl": 1.0}]}), 422, "rows[0].alcohl", "'alcohol'"),
        (json.dumps({"rows": [{k: v for k, v in named.items() if k != "proline"}]}), 422,
         "rows[0].proline", "missing"),
        (json.dumps({"rows": [{**named, "ash": "high"}]}), 422, "rows[0].ash", "expected a number"),
        (json.dumps({"rows": [good[:-1] + [1e39]]}), 422, "rows[0][12]", "float32"),
        (json.dumps({"rows": [good[:-1] + [10 ** 400]]}), 422, "rows[0][12]", "float32"),
        ('{"rows": ' + "[" * 900 + "1" + "]" * 900 + "}", 422, "rows", "nested"),
        (json.dumps({"rows": [[good]]}).replace("[[[", "[[[[").replace("]]]", "]]]]"), 422,
         "rows[0]", "13 values"),
        (json.dumps({"rows": [good[:-1] + [True]]}).encode("utf-16"), 400, "body", "UTF-8"),
    ]
    for body, status, field, words in cases:
        r = httpx.post(server.url + "/predict", content=body,
                       headers={"content-type": "application/json"})
        assert r.status_code == status, (body[:80], r.text)
        assert r.json()["field"] == field and words in r.json()["detail"], (body[:80], r.text)
    big = httpx.post(server.url + "/predict", content=b"[" + b"1," * 5_000_000 + b"1]")
    assert big.status_code == 413 and "--max-body-mb" in big.json()["detail"]

    def chunks():  # no Content-Length: the limit holds while the body streams in
        for _ in range(200):
            yield b" " * 65536

    streamed = httpx.post(server.url + "/predict", content=chunks())
    assert streamed.status_code == 413 and streamed.json()["field"] == "body", streamed.text
    assert httpx.get(server.url + "/predict").status_code == 405
    ok = httpx.post(server.url + "/predict", json={"rows": [good]})
    assert ok.status_code == 200 and ok.json()["labels"] == ["barolo"]


def test_concurrent_requests_share_model_calls(wine, server):
    _, _, frame = wine
    X = frame.drop(columns="cultivar").values
    groups = [X[i:i + 1 + i % 3].tolist() for i in range(0, 120, 3)]  # 40 requests, 1-3 rows
    before = httpx.get(server.url + "/metadata").json()["batching"]
    alone = [httpx.post(server.url + "/predict", json={"rows": g}).json() for g in groups]

    async def together():
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as client:
            return await asyncio.gather(*(client.post("/predict", json={"rows": g}) for g in groups))

    answers = asyncio.run(together())
    assert [a.json() for a in answers] == alone  # each request gets its own rows back
    after = httpx.get(server.url + "/metadata").json()["batching"]
    calls = after["model_calls"] - before["model_calls"] - 40  # the 40 one-by-one calls
    assert after["requests"] - before["requests"] == 80
    assert calls < 40, after  # at least two of the concurrent requests shared a model call


def test_metadata_health_and_openapi(wine, server):
    _, run_dir, _ = wine
    meta = httpx.get(server.url + "/metadata").json()
    assert meta["task"] == "multiclass" and meta["runtime"] == "onnx"
    assert meta["classes"] == ["barbera", "barolo", "grignolino"]
    assert meta["input"]["feature_names"][:2] == ["alcohol", "malic_acid"]
    assert meta["input"]["values_per_row"] == 13
    results = json.loads((run_dir / "results.json").read_text())
    assert meta["results"]["scores"] == results["scores"]
    assert meta["versions"]["onnxruntime"] and meta["versions"]["netwright"] == nw.__version__
    assert httpx.get(server.url + "/health").json()["status"] == "ok"
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/predict" in spec["paths"] and "422" in spec["paths"]["/predict"]["post"]["responses"]
    assert "swagger" in httpx.get(server.url + "/docs").text.lower()


def test_the_torch_runtime_and_batching_off_give_the_same_answers(wine, server):
    root, run_dir, frame = wine
    rows = frame.drop(columns="cultivar").iloc[:12].values.tolist()
    want = httpx.post(server.url + "/predict", json={"rows": rows}).json()
    srv = Server(run_dir, "--runtime", "torch", "--no-batching")
    try:
        got = httpx.post(srv.url + "/predict", json={"rows": rows}).json()
        meta = httpx.get(srv.url + "/metadata").json()
    finally:
        srv.stop()
    assert got["labels"] == want["labels"]
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)
    assert meta["runtime"] == "torch" and meta["batching"]["enabled"] is False


def test_two_worker_processes_serve_one_port(wine):
    _, run_dir, frame = wine
    srv = Server(run_dir, "--workers", "2")
    try:
        rows = frame.drop(columns="cultivar").iloc[:3].values.tolist()
        answers = [httpx.post(srv.url + "/predict", json={"rows": rows}) for _ in range(6)]
    finally:
        out = srv.stop()
    assert all(a.status_code == 200 for a in answers)
    assert len({json.dumps(a.json()) for a in answers}) == 1
    assert out.count("Started server process") >= 2, out


def test_a_non_loopback_host_is_warned_about_and_bad_options_are_named(wine):
    from netwright.cli_serve import is_loopback
    from netwright.errors import ConfigError

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4")
    _, run_dir, _ = wine
    with pytest.raises(ConfigError, match="runtime: expected one of onnx, torch"):
        nw.serve(run_dir, runtime="tensorrt")
    with pytest.raises(ConfigError, match="max_batch"):
        nw.serve(run_dir, max_batch=0)
    done = subprocess.run([sys.executable, "-m", "netwright", "serve", str(run_dir / "nope")],
                          capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 2 and "does not exist" in done.stderr


@pytest.mark.parametrize("data, loss", [("diabetes", "mse"), ("breast_cancer", "bce_with_logits")])
def test_regression_answers_values_and_binary_both_probabilities(tmp_path, data, loss):
    result = nw.run({
        "name": data, "run_dir": str(tmp_path), "model": {"zoo": "mlp", "hidden": [16]},
        "data": {"source": data}, "loss": loss, "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 3, "batch_size": 64},
    }, verbose=0)
    X, _ = nw.load_builtin(data)
    app = nw.serve(result.run_dir, runtime="torch")
    got = _asgi(app, "POST", "/predict", json={"rows": X[:5].tolist()})
    assert got.status_code == 200, got.text
    want = nw.predict(result.run_dir, X[:5])
    if data == "diabetes":
        np.testing.assert_allclose(got.json()["values"], [r["prediction"] for r in want],
                                   rtol=1e-4, atol=1e-4)
        return
    body = got.json()
    positive = body["classes"][1]
    assert body["labels"] == [str(r["label"]) for r in want]
    np.testing.assert_allclose([p[1] for p in body["probabilities"]],
                               [r[f"p_{positive}"] for r in want], atol=1e-5)
    np.testing.assert_allclose(np.sum(body["probabilities"], axis=1), 1.0, atol=1e-9)


def _asgi(app, method: str, url: str, **kwargs) -> "httpx.Response":
    """One request to an app in this process (the app is also what `netwright serve` runs)."""

    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())
