"""torch.compile: what it costs at the start and what it saves per epoch, for the zoo MLP and
CNN on the built-in MNIST-5k digits (3,600 of them, batch 64, Adam), on this machine.

Each configuration trains in a fresh process (``nw.fit(..., compile=False | True)``); a callback
times every epoch. The first epoch of a compiled run holds the compilation (dynamo tracing and
inductor's C++ code generation; inductor's on-disk cache is cleared before each run, so this is
the cost a first run pays); the steady state is the median of the later epochs.

    python benchmarks/compile.py            # 5 epochs per run
    python benchmarks/compile.py --quick    # 3 epochs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r'''
import json, sys, time
import torch
import netwright as nw
from netwright.data.builtin import load_builtin
model_name, compile_, epochs, out = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
X, y = load_builtin("mnist")
X = (X[:3600] / 255.0).astype("float32"); y = y[:3600].astype("int64")
spec = {"zoo": "mlp", "hidden": [256, 128], "num_classes": 10} if model_name == "mlp" else {"zoo": "cnn"}
shape = (784,) if model_name == "mlp" else (1, 28, 28)
X = X.reshape(-1, *shape)
torch.manual_seed(0)
model = nw.build(spec, shape)

class Clock:
    def __init__(self): self.times = []
    def on_epoch_start(self, epoch): self.t = time.perf_counter()
    def on_epoch_end(self, epoch, logs, model): self.times.append(time.perf_counter() - self.t)

clock = Clock()
nw.fit(model, (X, y), loss="cross_entropy", epochs=epochs, batch_size=64, verbose=0, check=False,
       seed=0, compile=compile_, callbacks=[clock])
json.dump(clock.times, open(out, "w"))
'''


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    epochs = 3 if parser.parse_args().quick else 5
    src = Path(__file__).resolve().parents[1] / "src"
    print(f"{'model':<6}{'compile':>9}{'first epoch s':>15}{'steady epoch s':>16}")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "worker.py"
        script.write_text(WORKER)
        for model in ("mlp", "cnn"):
            for flag in ("0", "1"):
                out = Path(tmp) / f"{model}{flag}.json"
                cache = Path(tmp) / f"inductor-{model}{flag}"  # a cold cache per run
                env = {**os.environ, "PYTHONPATH": str(src), "TORCHINDUCTOR_CACHE_DIR": str(cache)}
                subprocess.run([sys.executable, str(script), model, flag, str(epochs), str(out)],
                               check=True, env=env, capture_output=True, timeout=1800)
                times = json.loads(out.read_text())
                steady = sorted(times[1:])[len(times[1:]) // 2]
                rows[model, flag] = (times[0], steady)
                print(f"{model:<6}{'yes' if flag == '1' else 'no':>9}{times[0]:>15.2f}{steady:>16.3f}")
    for model in ("mlp", "cnn"):
        (f0, s0), (f1, s1) = rows[model, "0"], rows[model, "1"]
        gain = s0 - s1
        pays = f"after {((f1 - f0) / gain):.0f} epochs" if gain > 0 else "never (no steady-state gain)"
        print(f"{model}: compile costs {f1 - f0:.1f} s once, steady epoch {s1 / s0:.2f}x of eager; pays off {pays}")


if __name__ == "__main__":
    main()
