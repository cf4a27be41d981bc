"""The same config gives the same run: two `netwright train` processes with one seed write
bitwise-equal weights and print equal metrics (the model used to be built before anything was
seeded, so its initial weights differed on every run)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "netwright"


def train(tmp_path: Path, name: str, *extra: str) -> Path:
    res = subprocess.run([str(EXE), "train", str(ROOT / "examples" / "digits_mlp.yaml"),
                          "train.epochs=2", f"run_dir={tmp_path}", f"name={name}", "-q", *extra],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return tmp_path / name


def weights(run: Path) -> dict:
    # Tensors, not file bytes: safetensors writes its metadata in a per-process hash order.
    from safetensors.torch import load_file

    return load_file(str(run / "weights.safetensors"))


def equal(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_cli_runs_of_one_config_are_bitwise_equal(tmp_path):
    a, b = train(tmp_path, "a"), train(tmp_path, "b")
    assert equal(weights(a), weights(b))
    scores = [json.loads((r / "results.json").read_text())["scores"] for r in (a, b)]
    assert scores[0] == scores[1]
    c = train(tmp_path, "c", "train.seed=1")  # and the seed matters
    assert not equal(weights(c), weights(a))
