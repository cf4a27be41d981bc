"""Verification in a fresh process: the parent's side. :class:`Verifier` starts the process (it
imports while the parent exports), :func:`verify_artifacts` sends it the inputs and reads back
outputs and timings, :func:`check_outputs` compares them with the eager model's."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ExportError
from ..util import eval_mode
from .job import Job, eager_on, random_inputs
from .report import DEFAULT_TOLERANCE, LABELS, SEED

_SHOWN = 5  # differences listed in an error


def to_numpy(t: Any) -> np.ndarray:
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: stored widened, narrowed on loading
        t = t.float()
    return t.numpy()


MAX_SPREAD = 0.5  # interquartile range / median above which a latency is too noisy to compare


def timing(fn: Callable[[], Any], *, budget: float = 0.2, min_runs: int = 15,
           max_runs: int = 400, warmup: int = 3) -> tuple[float, float]:
    """(median seconds, interquartile range / median) of one call of ``fn`` after ``warmup``
    calls; runs until ``min_runs`` and ``budget`` seconds are both reached (or ``max_runs``).
    A spread over :data:`MAX_SPREAD` (e.g. another process took the CPU) makes a speed-up
    computed from the median noise, and it is reported as such."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs
                                     or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    q1, median, q3 = statistics.quantiles(times, n=4)
    return median, ((q3 - q1) / median if median > 0 else float("inf"))


class Verifier:
    """The fresh process that loads and runs the artifacts.

    It is started before the artifacts are written, so that its imports (torch, torch.export's
    loader, onnxruntime: seconds) overlap the export; it never sees the model, only the files
    and a job (inputs as .npz, names) sent once everything is written.
    """

    def __init__(self, formats: Sequence[str]):
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parents[2])  # src/, above netwright/
        env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
        self.command = [sys.executable, "-m", "netwright.exporting", "--verify-stdin",
                        ",".join(formats)]
        self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)

    def run(self, job_file: Path, timeout: float) -> tuple[int, str]:
        try:
            out, err = self.proc.communicate(str(job_file) + "\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise ExportError(f"export verification: the fresh process checking the artifacts "
                              f"did not finish within {timeout:.0f} s. Fix: pass a larger "
                              f"timeout=, or verify=False.") from None
        return self.proc.returncode, (err or out or "")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def verify_artifacts(job: Job, artifacts: dict[str, Path], verifier: Verifier, *,
                     latency_batches: Sequence[int], timeout: float) -> tuple[dict, dict, dict]:
    """Run each artifact in the fresh process. Returns (outputs and what they should be,
    artifact latency per format, eager latency)."""
    import torch

    gen = torch.Generator().manual_seed(SEED + 2)
    sets = {"example": job.inputs}
    if job.dynamic:
        sets["other"] = job.other
    batches = list(dict.fromkeys(latency_batches)) if job.dynamic else \
        ([job.batch] if latency_batches else [])
    lat_inputs = {b: random_inputs(job, b, gen) for b in batches}
    work = Path(tempfile.mkdtemp(prefix="netwright-verify-"))
    try:
        arrays = {}
        for name, xs in [*sets.items(), *((f"b{b}", xs) for b, xs in lat_inputs.items())]:
            for i, x in enumerate(xs):
                arrays[f"{name}__{i}"] = to_numpy(x)
        np.savez(work / "inputs.npz", **arrays)
        spec = {
            "artifacts": {fmt: str(path) for fmt, path in artifacts.items()},
            "inputs": str(work / "inputs.npz"),
            "input_names": job.input_names,
            "input_dtypes": [str(t.dtype).replace("torch.", "") for t in job.inputs],
            "keywords": job.keywords,
            "sets": list(sets),
            "latency": {str(b): f"b{b}" for b in batches},
            "threads": torch.get_num_threads(),
            "out_dir": str(work),
        }
        (work / "job.json").write_text(json.dumps(spec))
        code, text = verifier.run(work / "job.json", timeout)
        result_file = work / "result.json"
        if code != 0 or not result_file.is_file():
            tail = "\n".join(text.strip().splitlines()[-8:])
            raise ExportError(f"export verification: the fresh process checking "
                              f"{', '.join(artifacts)} exited with code {code}:\n{tail}\n"
                              f"Fix: verify=False skips the check (at your own risk).")
        results = json.loads(result_file.read_text())
        outputs, latency, spread = {}, {}, {}
        for fmt in artifacts:
            res = results[fmt]
            if res.get("error"):
                outputs[fmt] = res["error"]
                continue
            with np.load(work / f"out_{fmt}.npz", allow_pickle=False) as data:
                outputs[fmt] = {s: [data[f"{s}__{j}"] for j in range(res["count"][s])]
                                for s in sets}
            latency[fmt] = {int(b): sec for b, sec in res["latency"].items()}
            spread[fmt] = {int(b): v for b, v in res.get("spread", {}).items()}
        expected = {"example": [to_numpy(t) for t in job.expected]}
        if "other" in sets:
            expected["other"] = [to_numpy(t) for t in job.other_expected]
        eager_seconds, eager_spread = {}, {}
        # Timed only now, with the fresh process gone, so that the two never share the CPU.
        for b, xs in lat_inputs.items():
            eager_on(job, xs)  # a clear error if the model cannot take this batch size
            with eval_mode(job.net), torch.inference_mode():
                eager_seconds[b], eager_spread[b] = timing(lambda: job.call(xs))
        noisy = {fmt: sorted(b for b in latency.get(fmt, {}) if max(
            spread.get(fmt, {}).get(b, 0.0), eager_spread.get(b, 0.0)) > MAX_SPREAD) for fmt in artifacts}
        return {"outputs": outputs, "expected": expected, "noisy": noisy,
                "batches": {s: int(xs[0].shape[0]) for s, xs in sets.items()}}, latency, \
            eager_seconds
    finally:
        for f in sorted(work.glob("*")):
            f.unlink()
        work.rmdir()


def tolerance(job: Job, rtol: float | None, atol: float | None) -> tuple[float, float]:
    names = {str(t.dtype).replace("torch.", "") for t in job.expected if t.is_floating_point()}
    loosest = max((DEFAULT_TOLERANCE.get(n, DEFAULT_TOLERANCE["float32"]) for n in names),
                  default=DEFAULT_TOLERANCE["float32"])
    return (float(loosest[0] if rtol is None else rtol),
            float(loosest[1] if atol is None else atol))


@dataclass
class _Diff:
    output: str
    set: str
    batch: int
    max_abs: float
    max_rel: float
    bad: int
    total: int
    index: tuple
    expected: float
    got: float
    excess: float  # the largest |diff| / (atol + rtol |expected|)


def _compare(name: str, set_name: str, batch: int, exp: np.ndarray, got: np.ndarray, rtol: float,
             atol: float) -> _Diff:
    e = exp.astype(np.float64)
    g = got.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        # NaN where both are NaN and equal infinities count as agreeing; any other NaN or
        # infinity on one side only is an infinite difference.
        agree = (e == g) | (np.isnan(e) & np.isnan(g))
        diff = np.where(agree, 0.0, np.abs(g - e))
        diff = np.where(np.isnan(diff), np.inf, diff)
        magnitude = np.abs(np.nan_to_num(e, posinf=0.0, neginf=0.0))
        allowed = atol + rtol * magnitude
        rel = diff / np.maximum(magnitude, atol if atol > 0 else 1e-30)
        excess = diff / np.maximum(allowed, 1e-30)
    if diff.size == 0:
        return _Diff(name, set_name, batch, 0.0, 0.0, 0, 0, (), 0.0, 0.0, 0.0)
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    return _Diff(name, set_name, batch, float(diff.max()), float(rel.max()),
                 int((diff > allowed).sum()), int(diff.size), tuple(int(i) for i in worst),
                 float(e[worst]), float(g[worst]), float(excess[worst]))


def check_outputs(fmt: str, final: Path, job: Job, found: Any, expected: dict, batches: dict,
                  rtol: float, atol: float) -> tuple[dict, ExportError | None]:
    """Per-set (max abs, max rel), and an error if anything is beyond tolerance."""
    label = LABELS[fmt]
    if isinstance(found, str):
        return {}, ExportError(
            f"{label} artifact {str(final)!r} could not be loaded or run in a fresh process: "
            f"{found}. Nothing was written. Fix: the artifact needs something only this process "
            f"has (e.g. a custom op library): export to another format, or verify=False.")
    maxima: dict[str, tuple[float, float]] = {}
    diffs: list[_Diff] = []
    for set_name, exp_list in expected.items():
        got_list = found[set_name]
        if len(got_list) != len(exp_list):
            return {}, ExportError(
                f"{label} artifact {str(final)!r} returns {len(got_list)} outputs; the model "
                f"returns {len(exp_list)} ({', '.join(job.output_names)}). Nothing was written.")
        for name, exp, got in zip(job.output_names, exp_list, got_list):
            if tuple(exp.shape) != tuple(got.shape):
                return {}, ExportError(
                    f"{label} artifact {str(final)!r}: output {name!r} has shape "
                    f"{tuple(got.shape)} on {_set_words(set_name, batches)}; the model gives "
                    f"{tuple(exp.shape)}. The export does not follow the batch size. Nothing was "
                    f"written. Fix: use the input's own sizes in forward (x.shape[0]), or "
                    f"dynamic_batch=False.")
            diffs.append(_compare(name, set_name, batches[set_name], exp, got, rtol, atol))
        these = [d for d in diffs if d.set == set_name]
        maxima[set_name] = (max(d.max_abs for d in these), max(d.max_rel for d in these))
    bad = sorted((d for d in diffs if d.bad), key=lambda d: -d.excess)
    if not bad:
        return maxima, None
    lines = [f"{label} artifact {str(final)!r} does not compute what the model computes "
             f"(rtol={rtol:g}, atol={atol:g}); the largest differences:"]
    for d in bad[:_SHOWN]:
        lines.append(f"  output {d.output!r}, {_set_words(d.set, batches)}: max abs diff "
                     f"{d.max_abs:.3g}, max rel diff {d.max_rel:.3g}; {d.bad} of {d.total} values "
                     f"beyond tolerance; worst at {list(d.index)}: model {d.expected:.6g}, "
                     f"{fmt} {d.got:.6g}")
    only_other = all(d.set == "other" for d in bad)
    if only_other:
        fix = ("the example matches but fresh inputs of another batch size do not: the export "
               "froze something the example fixed (data-dependent control flow in a trace, or a "
               "batch size written into forward). Check forward, export to another format, or "
               "use dynamic_batch=False.")
    else:
        fix = ("if the differences are rounding (half precision, long sequences), pass a looser "
               "rtol=/atol=; otherwise export to another format and report the model.")
    lines.append(f"Nothing was written. Fix: {fix}")
    return maxima, ExportError("\n".join(lines))


def _set_words(set_name: str, batches: dict) -> str:
    if set_name == "example":
        return f"the example (batch {batches[set_name]})"
    return f"random inputs of batch {batches[set_name]}"
