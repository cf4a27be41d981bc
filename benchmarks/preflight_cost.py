"""What fit's pre-flight doctor checks cost, against the fit they guard.

On the three tasks of ``benchmarks/overhead.py`` (the article's SimpleNet on 500×20, an MLP and
a small CNN on MNIST-5k, with that benchmark's batch sizes and epochs), this measures in one
process:

- the pre-flight exactly as ``fit`` calls it (``netwright.diagnosis.preflight`` on the first
  batch, with the whole in-memory data, both data sources — a 10 % validation split held out as
  fit holds it out — and the shuffle flag: every cheap check, the structure, leakage,
  duplicate and order checks included), median of 15 calls;
- ``nw.fit(..., check=False)`` on the same data, median of 3 runs;

and prints the pre-flight's share of the fit. The target is under 2 %.

    python -m compileall -q src && python benchmarks/preflight_cost.py
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from overhead import TASKS, build  # noqa: E402


def preflight_seconds(task: str, rounds: int = 15) -> float:
    from netwright.data.batches import make_batches
    from netwright.data.sources import InMemory
    from netwright.data.splits import split_fraction
    from netwright.diagnosis import preflight
    from netwright.losses import resolve_loss

    model, X, y = build(task)
    batch_size = TASKS[task][0]
    train, val = split_fraction(InMemory(X, y), 0.1, seed=0, stratify=True)
    batches = make_batches(train, batch_size=batch_size, shuffle=True, device=torch.device("cpu"),
                           generator=torch.Generator().manual_seed(0))
    x, t = batches.peek()
    loss_fn, info = resolve_loss("cross_entropy")
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        preflight(model, x, t, loss_fn=loss_fn, loss_info=info, optimizer=optimizer,
                  log_keys=["epoch", "train_loss", "val_loss", "lr"],
                  steps_per_epoch=len(batches), epochs=TASKS[task][1], data=(train.x, train.y),
                  batch_sizes=batches.sizes(), sources=(train, val), shuffle=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fit_seconds(task: str, rounds: int = 3) -> float:
    import netwright as nw

    times = []
    for _ in range(rounds):
        model, X, y = build(task)
        batch_size, epochs, _ = TASKS[task]
        start = time.perf_counter()
        nw.fit(model, (X, y), val=0.1, loss="cross_entropy", lr=1e-3, batch_size=batch_size,
               epochs=epochs, verbose=0, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    print(f"{'task':12s} {'pre-flight':>12s} {'fit':>10s} {'share':>8s}   (target < 2 %)")
    for task in TASKS:
        pre = preflight_seconds(task)
        fit = fit_seconds(task)
        print(f"{task:12s} {pre * 1000:9.2f} ms {fit:8.2f} s {100 * pre / fit:7.2f} %")


if __name__ == "__main__":
    main()
