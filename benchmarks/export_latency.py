"""Inference latency of eager PyTorch against its exports: TorchScript, ``torch.export`` (.pt2)
and onnxruntime, at batch 1 and batch 64.

Models: the zoo MLP 784 → 256 → 128 → 10 and the zoo CNN on 1×28×28 images (32 → 64 channels,
128 hidden), with fixed random weights. Each is saved (``nw.save``, for eager) and exported with
``export_all`` (verified as usual). Then every runtime is timed in its own fresh process: load the
model or artifact, warm up, time single forward calls (``torch.inference_mode``; onnxruntime's
``InferenceSession.run``) for ``--seconds`` per batch size and take the median. The runtimes are
interleaved round by round (in a rotating order), and the table shows the median over rounds,
with each export's time as a ratio to eager's (below 1: faster than eager). Every process uses
the same number of threads for torch and onnxruntime alike: ``--threads``, 1 by default (one
request per core, as CPU serving is usually set up; and on a machine shared with other work,
more threads than free cores make torch's OpenMP threads wait on each other, which skews eager
and TorchScript times far more than onnxruntime's).

    python benchmarks/export_latency.py            # 3 rounds
    python benchmarks/export_latency.py --quick    # 1 round, shorter timing (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODELS = {
    "mlp": ("mlp", (784,), {"hidden": [256, 128], "num_classes": 10}),
    "cnn": ("cnn", (1, 28, 28), {}),
}
RUNTIMES = ("eager", "torchscript", "pt2", "onnx")
BATCHES = (1, 64)


def prepare(folder: Path) -> None:
    """Save each model (for eager) and export it to every format, verified."""
    import torch

    from netwright.exporting import export_all
    from netwright.models import build_zoo
    from netwright.saving import save

    for name, (zoo, shape, args) in MODELS.items():
        torch.manual_seed(0)
        model = build_zoo(zoo, shape, **args)
        save(model, folder / name)
        reports = export_all(model, folder / name / "exports", latency_batches=())
        worst = max(r.max_abs_diff for r in reports.values())
        methods = ", ".join(f"{f}: {r.method}" for f, r in reports.items())
        print(f"{name}: exported and verified ({methods}; max abs diff {worst:.1e})")


def worker(runtime: str, folder: Path, threads: int, seconds: float) -> dict:
    """Load one runtime's model in this (fresh) process and time it at each batch size."""
    import numpy as np

    spec = json.loads((folder / "model.json").read_text())["model"]
    shape = tuple(spec["input_shape"])
    rng = np.random.default_rng(0)
    inputs = {b: rng.standard_normal((b, *shape)).astype(np.float32) for b in BATCHES}
    if runtime == "onnx":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(str(folder / "exports" / "model.onnx"), options,
                                       providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        calls = {b: (lambda x=x: session.run(None, {name: x})) for b, x in inputs.items()}
    else:
        import torch

        torch.set_num_threads(threads)
        if runtime == "eager":
            from netwright.saving import load

            module = load(folder)
        elif runtime == "torchscript":
            module = torch.jit.load(str(folder / "exports" / "model.ts"))
        else:
            module = torch.export.load(str(folder / "exports" / "model.pt2")).module()
        tensors = {b: torch.from_numpy(x) for b, x in inputs.items()}

        def call(x):
            with torch.inference_mode():
                return module(x)

        calls = {b: (lambda x=x: call(x)) for b, x in tensors.items()}
    result = {}
    for b, fn in calls.items():
        for _ in range(10):  # warm-up: TorchScript's profiling executor optimises on early calls
            fn()
        times = []
        start = time.perf_counter()
        while len(times) < 20 or time.perf_counter() - start < seconds:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        result[str(b)] = statistics.median(times)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=1.0, help="timing per batch size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="1 round, 0.3 s per batch size")
    parser.add_argument("--worker", nargs=2, metavar=("RUNTIME", "FOLDER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        runtime, folder = args.worker
        print(json.dumps(worker(runtime, Path(folder), args.threads, args.seconds)))
        return
    if args.quick:
        args.rounds, args.seconds = 1, 0.3

    import onnxruntime
    import torch

    print(f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, "
          f"{args.threads} threads, {args.rounds} rounds, {args.seconds:g} s per measurement")
    times: dict[tuple[str, str, int], list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="nw-export-bench-") as tmp:
        folder = Path(tmp)
        prepare(folder)
        for r in range(args.rounds):
            order = RUNTIMES[r % len(RUNTIMES):] + RUNTIMES[:r % len(RUNTIMES)]
            for name in MODELS:
                for runtime in order:
                    out = subprocess.run(
                        [sys.executable, __file__, "--worker", runtime, str(folder / name),
                         "--threads", str(args.threads), "--seconds", str(args.seconds)],
                        capture_output=True, text=True, check=False)
                    if out.returncode != 0:
                        sys.exit(f"{runtime} on {name} failed:\n{out.stderr[-2000:]}")
                    for b, s in json.loads(out.stdout.strip().splitlines()[-1]).items():
                        times.setdefault((name, runtime, int(b)), []).append(s)
    print()
    header = f"{'model':<6} {'batch':>5} {'eager ms':>9}" + "".join(
        f" {rt + ' ms':>15} {'ratio':>6}" for rt in RUNTIMES[1:])
    print(header)
    print("-" * len(header))
    for name in MODELS:
        for b in BATCHES:
            eager = statistics.median(times[(name, "eager", b)])
            row = f"{name:<6} {b:>5} {eager * 1e3:>9.3f}"
            for rt in RUNTIMES[1:]:
                t = statistics.median(times[(name, rt, b)])
                row += f" {t * 1e3:>15.3f} {t / eager:>6.2f}"
            print(row)
    print("\nratio = export's median time / eager's median time (below 1: the export is faster)")


if __name__ == "__main__":
    main()
