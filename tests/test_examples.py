"""Every example in examples/ runs (with few epochs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.py"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, tmp_path):
    env = dict(os.environ, NETWRIGHT_EXAMPLE_EPOCHS="4")
    args = [sys.executable, str(path)]
    if path.name == "digits_mlp.py":
        args.append(str(tmp_path / "run"))
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    if path.name == "simplenet.py":
        assert "caught: loss 'cross_entropy' expects targets as class indices" in res.stdout
        assert "SimpleNet (logits out): val accuracy" in res.stdout
    if path.name == "digits_mlp.py":
        assert "test accuracy" in res.stdout and (tmp_path / "run" / "weights.safetensors").is_file()
