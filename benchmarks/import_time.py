"""What importing netwright costs: `import netwright` alone, and the training API
(`nw.fit` resolved, which imports torch) against a bare `import torch`.

Each measurement is a fresh interpreter; the runs are interleaved and the medians compared.

    python benchmarks/import_time.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

CASES = {
    "python": "pass",
    "import torch": "import torch",
    "import netwright": "import netwright",
    "netwright + nw.fit": "import netwright as nw; nw.fit",
    "netwright --help": "from typer.testing import CliRunner; from netwright.cli import app; CliRunner().invoke(app, ['--help'])",
}


def measure(code: str) -> float:
    timed = f"import time; t0 = time.perf_counter(); {code}; print(time.perf_counter() - t0)"
    out = subprocess.run([sys.executable, "-c", timed], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    times: dict[str, list[float]] = {k: [] for k in CASES}
    for _ in range(args.rounds):
        for name, code in CASES.items():
            times[name].append(measure(code))
    med = {k: statistics.median(v) for k, v in times.items()}
    for name, value in med.items():
        print(f"{name:<22} {value:7.3f} s (median of {args.rounds})")
    extra = med["netwright + nw.fit"] - med["import torch"]
    print(f"\nthe training API adds {extra:.3f} s over import torch (target <= 0.3 s)")


if __name__ == "__main__":
    main()
