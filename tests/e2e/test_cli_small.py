"""Small promises of the command line (issue 11): names and messages that say what is true."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

import netwright as nw
from netwright.cli import _public_kind
from netwright.models.summary import summary

EXE = Path(sys.executable).parent / "netwright"


def cli(*args, cwd):
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_init_names_the_run_after_the_config_file(tmp_path):
    res = cli("init", "my_run.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    names = [ln for ln in (tmp_path / "my_run.yaml").read_text().splitlines() if ln.startswith("name:")]
    assert len(names) == 1 and names[0].split("#")[0].strip() == "name: my_run"
    assert nw.load_config(tmp_path / "my_run.yaml").name == "my_run"


def test_evaluate_of_a_missing_folder_says_it_does_not_exist(tmp_path):
    res = cli("evaluate", "runs/nope", cwd=tmp_path)
    assert res.returncode == 2
    assert "does not exist" in res.stderr and "None" not in res.stderr


def test_errors_print_their_documented_kind():
    # fit's doctor raises an internal subclass; users read the documented kind
    x, y = torch.rand(8, 3), torch.randint(0, 2, (8, 1)).float()
    try:
        nw.fit(torch.nn.Linear(3, 2), (x, y), loss="cross_entropy", epochs=1, verbose=0)
    except nw.LossTargetError as exc:
        assert type(exc).__name__ != "LossTargetError"  # the doctor's own subclass...
        assert _public_kind(exc) == "LossTargetError"   # ...printed as the documented kind
    else:
        raise AssertionError("float (N, 1) targets for cross_entropy were not refused")


def test_summary_states_small_sizes_in_readable_units():
    text = str(summary(torch.nn.Linear(20, 50), (20,)))
    assert "Size: 4.10 KB (parameters + buffers)" in text  # 1,050 float32 values = 4,200 bytes
