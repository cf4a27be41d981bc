"""Every example in examples/ runs (with few epochs)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
CONFIGS = sorted((ROOT / "examples").glob("*.yaml"))


def test_there_are_examples():
    assert len(EXAMPLES) >= 2 and len(CONFIGS) >= 8


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_runs(path, tmp_path):
    env = dict(os.environ, NETWRIGHT_EXAMPLE_EPOCHS="4")
    args = [sys.executable, str(path)]
    if path.name == "digits_mlp.py":
        args.append(str(tmp_path / "run"))
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-3000:]
    if path.name == "simplenet.py":
        assert "caught: netwright doctor found 1 error, 1 warning" in res.stdout
        assert "NW104 error [targets]: loss 'cross_entropy' expects targets as class indices" in res.stdout
        assert "NW101 warning [output]" in res.stdout
        assert "SimpleNet (logits out): val accuracy" in res.stdout
    if path.name == "custom_step.py":
        import re

        acc = float(re.search(r"test digit accuracy (\S+),", res.stdout).group(1))
        assert acc > 0.8, res.stdout  # two heads trained through the custom step
        assert re.search(r"lbfgs \(built-in closure step\): train loss 0\.0\d+, test accuracy 0\.[89]",
                         res.stdout), res.stdout
        assert "lbfgs (own closure)" in res.stdout and "gradient norm per epoch" in res.stdout
    if path.name == "digits_mlp.py":
        assert "test accuracy" in res.stdout and (tmp_path / "run" / "weights.safetensors").is_file()


@pytest.fixture(scope="module")
def digits_png(tmp_path_factory):
    """An image folder for the image examples, made by the command their comments give
    (`datasets export`). The examples name mnist_png; the test runs them on the 1,797 8x8
    digits, the same kind of folder, so that resnet18's epoch takes seconds, not a minute."""
    folder = tmp_path_factory.mktemp("examples") / "digits_png"
    res = subprocess.run([sys.executable, "-m", "netwright", "datasets", "export", "digits",
                          str(folder)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "1797 images in 10 class folders" in res.stdout
    return folder


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_example_config_runs_an_epoch_and_writes_scores_and_weights(path, tmp_path, request):
    import netwright as nw

    extra = []
    if "source: mnist_png" in path.read_text():
        extra.append(f"data.source={request.getfixturevalue('digits_png')}")
    result = nw.run(path, [f"run_dir={tmp_path}", "train.epochs=1", *extra], verbose=0)
    assert set(result.scores) == {"val", "test"}
    assert (result.run_dir / "weights.safetensors").is_file()
