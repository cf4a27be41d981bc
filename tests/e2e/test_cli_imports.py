"""Issue 11's fast commands: `netwright summary | evaluate | predict | doctor` on a small run
import nothing they do not need. Each command runs in a fresh interpreter through the CLI's
main(), which then lists the heavy modules that were imported (timings live in
benchmarks/cli_latency.py; a test asserts what was loaded, not how long it took)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import netwright as nw

HEAVY = ("torch._dynamo", "sympy", "sklearn", "torchmetrics", "matplotlib", "scipy", "pandas")
PROBE = """
import json, sys
heavy = json.loads(sys.argv[2])
sys.argv = ["netwright", *json.loads(sys.argv[1])]
from netwright.cli import main
try:
    main()
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print("LOADED=" + json.dumps([m for m in heavy if m in sys.modules]))
print("CODE=" + json.dumps(code))
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("fast")
    config = {"model": {"zoo": "mlp", "hidden": [16]}, "data": {"source": "iris"},
              "loss": "cross_entropy", "metrics": ["accuracy", "f1_macro"],
              "train": {"epochs": 1}, "run_dir": str(work / "runs"), "name": "small"}
    nw.run(config, verbose=0)
    (work / "c.yaml").write_text(json.dumps(config))  # JSON is YAML
    np.save(work / "x.npy", np.random.default_rng(0).random((5, 4), dtype=np.float32))
    return work


def loaded(args: list[str], cwd) -> list[str]:
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args), json.dumps(HEAVY)],
                         capture_output=True, text=True, timeout=300, cwd=cwd)
    lines = dict(ln.split("=", 1) for ln in res.stdout.splitlines() if ln.startswith(("LOADED=", "CODE=")))
    assert json.loads(lines.get("CODE", "1")) in (0, None), res.stdout[-2000:] + res.stderr[-3000:]
    return json.loads(lines["LOADED"])


@pytest.mark.parametrize("command", [
    ["evaluate", "runs/small"],
    ["evaluate", "runs/small", "--split", "val"],
    ["predict", "runs/small", "x.npy"],
    ["doctor", "c.yaml", "--quick"],
])
def test_run_commands_import_nothing_heavy(small_run, command):
    assert loaded(command, small_run) == []


def test_summary_of_a_run_imports_nothing_heavy(small_run):
    # The FLOP count runs torch's FlopCounterMode without the _disable_dynamo wrapper torch puts
    # on every dispatch mode (whose first call imports torch._dynamo): models.summary.flop_counter.
    assert loaded(["summary", "runs/small"], small_run) == []


def test_the_unwrapped_flop_counter_counts_what_torchs_counts():
    import torch
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from netwright.models.summary import flop_counter

    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 4, 3)
            self.lstm = nn.LSTM(4, 8, batch_first=True)
            self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
            self.head = nn.Linear(8, 3)

        def forward(self, x):
            h = self.conv(x).mean(2).transpose(1, 2)  # (N, 10, 4)
            h, _ = self.lstm(h)
            h, _ = self.attn(h, h, h)
            return self.head(h.mean(1))

    model, x = Mixed().eval(), torch.randn(2, 1, 6, 12)
    ours, theirs = flop_counter(), FlopCounterMode(display=False)
    with torch.no_grad():
        with ours:
            model(x)
        with theirs:
            model(x)
    assert ours.get_total_flops() == theirs.get_total_flops() > 0
    assert ours.get_flop_counts() == theirs.get_flop_counts()
