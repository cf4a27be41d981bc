"""How long `netwright doctor | summary | evaluate | predict` take on a small run, next to
`python -c "import torch"` (the floor every command pays). Not a test: it prints a table.

Each command runs in a fresh process, the commands interleaved round by round (the machine is
noisy), and the medians are compared. The bytecode is compiled first so that no run pays for
compiling netwright's sources (this machine sets PYTHONDONTWRITEBYTECODE=1).

    python benchmarks/cli_latency.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXE = Path(sys.executable).parent / "netwright"
CONFIG = """model: {zoo: mlp, hidden: [64]}
data: {source: iris}
loss: cross_entropy
metrics: [accuracy]
train: {epochs: 2}
run_dir: RUNS
name: small
"""


def timed(cmd: list[str], cwd: Path) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    work = Path(tempfile.mkdtemp())
    (work / "c.yaml").write_text(CONFIG.replace("RUNS", str(work / "runs")))
    subprocess.run([str(EXE), "train", "c.yaml", "-q"], cwd=work, check=True, capture_output=True)
    run = work / "runs" / "small"
    np.save(work / "x.npy", np.random.default_rng(0).random((20, 4), dtype=np.float32))
    cases = {
        "python -c 'import torch'": [sys.executable, "-c", "import torch"],
        "netwright --help": [str(EXE), "--help"],
        "netwright summary RUN": [str(EXE), "summary", str(run)],
        "netwright evaluate RUN": [str(EXE), "evaluate", str(run)],
        "netwright predict RUN x.npy": [str(EXE), "predict", str(run), "x.npy"],
        "netwright doctor CONFIG --quick": [str(EXE), "doctor", "c.yaml", "--quick"],
    }
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, cmd in cases.items():
            times[name].append(timed(cmd, work))
    floor = statistics.median(times["python -c 'import torch'"])
    print(f"{'command':36} {'median s':>9} {'- import torch':>15}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:36} {med:9.2f} {med - floor:+15.2f}")


if __name__ == "__main__":
    main()
