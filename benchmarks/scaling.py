"""Data-parallel scaling: samples per second of the README's MNIST CNN in 1 and 2 processes.

The same model (zoo ``cnn``, 32 -> 64 channels), data (3,600 of the built-in MNIST-5k digits),
optimizer (AdamW), per-process batch (64) and epochs train three ways, each a fresh run:

- ``plain``: one process, ``nw.fit`` with torch's default threads (both cores);
- ``plain_1thread``: one process with one thread (what each DDP process gets below);
- ``ddp2``: ``torchrun --nproc-per-node 2``, one thread per process (torchrun's default
  OMP_NUM_THREADS=1), each process training its half of every epoch. Against
  ``plain_1thread`` it shows what DDP gains per core and what it costs (gradient all-reduce,
  the second interpreter); against ``plain`` what a user with these 2 cores gets.

Only the training is timed (``FitResult.seconds``: data loading and start-up excluded; the first
epoch is included in every mode alike). The modes are interleaved round by round and the
medians compared.

    python benchmarks/scaling.py            # 3 rounds
    python benchmarks/scaling.py --quick    # 1 round, 1 epoch
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r'''
import json, os, sys
import numpy as np, torch
import netwright as nw
from netwright.data.builtin import load_builtin
epochs, out = int(sys.argv[1]), sys.argv[2]
X, y = load_builtin("mnist")
X = (X[:3600].reshape(-1, 1, 28, 28) / 255.0).astype("float32"); y = y[:3600].astype("int64")
torch.manual_seed(0)
model = nw.build({"zoo": "cnn", "channels": [32, 64], "hidden": 128}, (1, 28, 28))
res = nw.fit(model, (X, y), loss="cross_entropy", optimizer="adamw", lr=2e-3, epochs=epochs,
             batch_size=64, verbose=0, check=False, seed=0)
if os.environ.get("RANK", "0") == "0":
    json.dump({"seconds": res.seconds, "samples": len(X) * epochs,
               "loss": res.history[-1]["train_loss"]}, open(out, "w"))
'''


def run(mode: str, epochs: int, tmp: Path) -> dict:
    script, out = tmp / "worker.py", tmp / f"{mode}.json"
    script.write_text(WORKER)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    if mode == "plain":
        cmd = [sys.executable, str(script)]
    elif mode == "plain_1thread":
        cmd, env["OMP_NUM_THREADS"] = [sys.executable, str(script)], "1"
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               str(script)]
        env["OMP_NUM_THREADS"] = "1"
    subprocess.run([*cmd, str(epochs), str(out)], check=True, env=env, capture_output=True, timeout=1200)
    return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    rounds, epochs = (1, 1) if args.quick else (3, 2)
    modes = ("plain", "plain_1thread", "ddp2")
    results: dict[str, list[dict]] = {m: [] for m in modes}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for mode in modes:  # interleaved: the machine's drift hits every mode alike
                results[mode].append(run(mode, epochs, Path(tmp)))
    print(f"{'mode':<15}{'median s':>10}{'samples/s':>12}{'final loss':>12}")
    rate = {}
    for mode in modes:
        secs = statistics.median(r["seconds"] for r in results[mode])
        rate[mode] = results[mode][0]["samples"] / secs
        print(f"{mode:<15}{secs:>10.2f}{rate[mode]:>12.0f}{results[mode][-1]['loss']:>12.4f}")
    print(f"ddp2 / plain_1thread throughput: {rate['ddp2'] / rate['plain_1thread']:.2f}x "
          f"(2 processes, 1 thread each, against 1 process with 1 thread)")
    print(f"ddp2 / plain throughput: {rate['ddp2'] / rate['plain']:.2f}x "
          f"(against 1 process using both cores with 2 threads)")
    print(f"cores: {os.cpu_count()}")


if __name__ == "__main__":
    main()
