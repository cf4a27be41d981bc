"""How long `netwright doctor | summary | evaluate | predict` take on a small run, next to
`python -c "import torch"` (the floor every command pays). Not a test: it prints a table.

Each command runs in a fresh process, the commands interleaved round by round (the machine is
noisy), and the medians are compared. The bytecode is compiled first so that no run pays for
compiling netwright's sources (this machine sets PYTHONDONTWRITEBYTECODE=1).

``--baseline DIR`` also times every command with the netwright sources in DIR (a folder holding
``netwright/``), interleaved with the current ones, for a before/after table; e.g. the last
commit's: ``mkdir /tmp/before && git archive HEAD src | tar -x -C /tmp/before`` and
``--baseline /tmp/before/src``.

    python benchmarks/cli_latency.py [--rounds 3] [--baseline DIR]
"""

from __future__ import annotations

import argparse
import os
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


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def commands(work: Path, env: dict[str, str], label: str = "") -> dict[str, tuple[list[str], dict]]:
    """Train the small run with these sources, and the commands to time on it."""
    work.mkdir(parents=True)
    (work / "c.yaml").write_text(CONFIG.replace("RUNS", str(work / "runs")))
    subprocess.run([str(EXE), "train", "c.yaml", "-q"], cwd=work, check=True, capture_output=True, env=env)
    run = work / "runs" / "small"
    np.save(work / "x.npy", np.random.default_rng(0).random((20, 4), dtype=np.float32))
    cases = {
        "netwright summary RUN": [str(EXE), "summary", str(run)],
        "netwright evaluate RUN": [str(EXE), "evaluate", str(run)],
        "netwright predict RUN x.npy": [str(EXE), "predict", str(run), str(work / "x.npy")],
        "netwright doctor CONFIG --quick": [str(EXE), "doctor", str(work / "c.yaml"), "--quick"],
    }
    return {name + label: (cmd, env) for name, cmd in cases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="a folder holding other netwright sources to time alongside")
    args = parser.parse_args()
    env = dict(os.environ)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src")], check=True)
    work = Path(tempfile.mkdtemp())
    cases = {
        "python -c 'import torch'": ([sys.executable, "-c", "import torch"], env),
        "netwright --help": ([str(EXE), "--help"], env),
    }
    cases.update(commands(work / "current", env))
    if args.baseline is not None:
        base = args.baseline.resolve()
        if not (base / "netwright" / "__init__.py").is_file():
            parser.error(f"--baseline {base}: expected a folder holding netwright/")
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(base)], check=True)
        # PYTHONPATH comes before the editable install's .pth entry on sys.path
        base_env = {**env, "PYTHONPATH": str(base)}
        cases.update(commands(work / "baseline", base_env, " (baseline)"))
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, (cmd, cmd_env) in cases.items():
            times[name].append(timed(cmd, work, cmd_env))
    floor = statistics.median(times["python -c 'import torch'"])
    print(f"{'command':47} {'median s':>9} {'- import torch':>15}")
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:47} {med:9.2f} {med - floor:+15.2f}")


if __name__ == "__main__":
    main()
