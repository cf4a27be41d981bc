"""The fresh process that loads and runs the artifacts, started by
:class:`~netwright.exporting.verifier.Verifier` as ``python -m netwright.exporting --verify-stdin
FORMATS`` (or run by hand with ``--verify JOB.json``). It never sees the model: only the files,
the inputs (.npz) and their names."""

from __future__ import annotations

import contextlib
import json
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..util import first_line
from .job import flatten_outputs
from .runtime import onnx_feed, onnx_session
from .verifier import timing, to_numpy


def _runner(fmt: str, path: str, job: dict) -> tuple[Callable, Callable, Callable]:
    """(prepare numpy inputs, call, outputs to numpy) for one artifact."""
    names, keywords = job["input_names"], job["keywords"]
    if fmt == "onnx":
        session = onnx_session(Path(path), job["threads"])

        def prepare(arrays):
            return onnx_feed(session, dict(zip(names, arrays)), Path(path))

        return prepare, lambda feed: session.run(None, feed), list

    import torch

    torch.set_num_threads(job["threads"])
    if fmt == "torchscript":
        module = torch.jit.load(path, map_location="cpu")
    else:
        module = torch.export.load(path).module()
    dtypes = [getattr(torch, d) for d in job["input_dtypes"]]

    def prepare_t(arrays):
        return [torch.from_numpy(a).to(d) for a, d in zip(arrays, dtypes)]

    def call(xs):
        with torch.inference_mode():
            return module(**dict(zip(names, xs))) if keywords else module(*xs)

    def to_arrays(out):
        return [to_numpy(t) for _, t in flatten_outputs(out)]

    return prepare_t, call, to_arrays


def _verify_main(job_file: str) -> int:
    job = json.loads(Path(job_file).read_text())
    out_dir = Path(job["out_dir"])
    results: dict[str, dict] = {}
    with np.load(job["inputs"], allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    n_in = len(job["input_names"])

    def arrays(set_name: str) -> list[np.ndarray]:
        return [inputs[f"{set_name}__{i}"] for i in range(n_in)]

    for fmt, path in job["artifacts"].items():
        res: dict[str, Any] = {"error": None, "latency": {}, "count": {}}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepare, call, to_arrays = _runner(fmt, path, job)
                outs = {}
                for s in job["sets"]:
                    got = to_arrays(call(prepare(arrays(s))))
                    res["count"][s] = len(got)
                    outs.update({f"{s}__{j}": np.asarray(o) for j, o in enumerate(got)})
                np.savez(out_dir / f"out_{fmt}.npz", **outs)
                for batch, set_name in job["latency"].items():
                    native = prepare(arrays(set_name))
                    res["latency"][batch], res.setdefault("spread", {})[batch] = timing(
                        lambda: call(native))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            res["error"] = f"{type(exc).__name__}: {first_line(exc)}"
        results[fmt] = res
    (out_dir / "result.json").write_text(json.dumps(results))
    return 0


def _preload(formats: Sequence[str]) -> None:
    """Import what loading these formats needs, while the parent is still exporting."""
    if "onnx" in formats:
        import onnxruntime  # noqa: F401
    if "torchscript" in formats or "pt2" in formats:
        import torch  # noqa: F401
    if "pt2" in formats:
        import torch.export.pt2_archive._package  # noqa: F401 - the .pt2 loader (slow import)


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "--verify":
        return _verify_main(argv[1])
    if len(argv) == 2 and argv[0] == "--verify-stdin":
        with contextlib.suppress(ImportError):
            _preload(argv[1].split(","))
        job_file = sys.stdin.readline().strip()
        return _verify_main(job_file) if job_file else 0
    print("usage: python -m netwright.exporting --verify JOB.json  (run by netwright.exporting to "
          "check artifacts in a fresh process)", file=sys.stderr)
    return 2
