"""Report and TensorBoard costs.

1. ``report.html`` of a 100-epoch run (the digits MLP): the time ``write_report`` takes in the
   process that trained (what the end of ``netwright train`` adds), and the wall time of a fresh
   ``netwright report RUN_DIR`` (imports, reopening the run, predicting its test split).
   Target: under 3 s on 2 cores.
2. The TensorBoard logger's cost: ``nw.fit`` of the zoo CNN on the 5,000 MNIST digits
   (2 epochs, batch 64) with ``loggers=["csv"]`` and ``["csv", "tensorboard"]``, alternating,
   three rounds, medians. Target: under 3 % more time.

    python -m compileall -q src && python benchmarks/report.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import netwright as nw


def report_times() -> None:
    from netwright.reporting.report import write_report

    root = Path(tempfile.mkdtemp())
    result = nw.run({"name": "digits100", "run_dir": str(root), "model": {"zoo": "mlp", "hidden": [64]},
                     "data": {"source": "digits"}, "loss": "cross_entropy",
                     "metrics": ["accuracy", "f1_macro"], "train": {"epochs": 100}}, verbose=0)
    times = []
    for _ in range(3):
        t = time.perf_counter()
        write_report(result.run_dir, model=result.model, data=result.data, findings=result.fit.findings)
        times.append(time.perf_counter() - t)
    exe = Path(sys.executable).parent / "netwright"
    walls = []
    for _ in range(3):
        t = time.perf_counter()
        subprocess.run([str(exe), "report", str(result.run_dir)], check=True, capture_output=True)
        walls.append(time.perf_counter() - t)
    print(f"report.html of a 100-epoch run: write_report {statistics.median(times):.2f} s "
          f"(in the training process), `netwright report` {statistics.median(walls):.2f} s "
          f"(fresh process); median of 3")


def tensorboard_overhead(rounds: int = 3) -> None:
    X, y = nw.load_builtin("mnist")
    X = (X / 255).reshape(-1, 1, 28, 28).astype("float32")
    times: dict[str, list[float]] = {"csv": [], "csv+tensorboard": []}
    for r in range(rounds):
        order = list(times) if r % 2 == 0 else list(times)[::-1]
        for name in order:
            torch.manual_seed(0)
            model = nw.build_zoo("cnn", (1, 28, 28), channels=[32, 64], hidden=128, num_classes=10)
            loggers = ["csv", "tensorboard"] if "tensorboard" in name else ["csv"]
            res = nw.fit(model, (X, y), loss="cross_entropy", epochs=2, batch_size=64, verbose=0,
                         loggers=loggers, run_dir=Path(tempfile.mkdtemp()) / "run")
            times[name].append(res.seconds)
    base, tb = statistics.median(times["csv"]), statistics.median(times["csv+tensorboard"])
    print(f"MNIST CNN, 2 epochs: csv {base:.2f} s, csv+tensorboard {tb:.2f} s: "
          f"{(tb / base - 1) * 100:+.1f} % (median of {rounds}, alternating)")


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="TensorBoard rounds (alternating)")
    parser.add_argument("--tensorboard-only", action="store_true")
    args = parser.parse_args()
    if not args.tensorboard_only:
        report_times()
    tensorboard_overhead(args.rounds)
