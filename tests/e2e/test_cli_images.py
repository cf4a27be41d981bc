"""Images from the command line, as a user meets them: export the built-in digits as PNG files,
look at the augmented training images, train on the folder, predict files and a folder."""

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("matplotlib", reason="matplotlib comes with the vision extra")


def cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "netwright", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def cli_here(*args, cwd):
    """The same command in this process (typer's runner): for the checks after the first
    subprocess ones, which would otherwise each pay torch's import again."""
    import os

    from typer.testing import CliRunner

    from netwright.cli import app

    here = os.getcwd()
    os.chdir(cwd)
    try:
        res = CliRunner().invoke(app, list(args))
    finally:
        os.chdir(here)
    return _Result(res.exit_code, res.stdout, res.stderr)


CONFIG = """\
name: digits_png
run_dir: runs
model: {zoo: cnn, channels: [16, 32], hidden: 64}
data:
  source: digits_png
  cache: memory
loss: cross_entropy
optimizer: {name: adam, lr: 0.003}
train: {epochs: 4, batch_size: 64}
metrics: [accuracy]
export: {formats: [onnx]}
"""


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("images_cli")
    res = cli("datasets", "export", "digits", "digits_png", cwd=root)
    assert res.returncode == 0, res.stderr
    assert "1797 images in 10 class folders written to digits_png" in res.stdout
    assert sorted(p.name for p in (root / "digits_png").iterdir()) == [str(i) for i in range(10)]
    (root / "digits.yaml").write_text(CONFIG)
    return root


def test_export_never_writes_into_an_existing_folder(workspace):
    res = cli("datasets", "export", "digits", "digits_png", cwd=workspace)
    assert res.returncode == 2 and "already exists" in res.stderr and "nothing was written" in res.stderr


def test_show_writes_a_grid_of_augmented_images_once(workspace):
    from PIL import Image

    res = cli("datasets", "show", "digits.yaml", "data.augment=[{random_affine: {degrees: 8}}]",
              "--out", "grid.png", "--count", "16", cwd=workspace)
    assert res.returncode == 0, res.stderr
    assert "16 augmented training images written to grid.png" in res.stdout
    with Image.open(workspace / "grid.png") as im:
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 100
    again = cli("datasets", "show", "digits.yaml", "--out", "grid.png", cwd=workspace)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_show_refuses_a_config_without_images(workspace):
    res = cli("datasets", "show", str(Path(__file__).parents[2] / "examples" / "iris.yaml"),
              "--out", "iris.png", cwd=workspace)
    assert res.returncode == 2 and "does not train on image files" in res.stderr


def test_train_on_the_folder_then_predict_a_folder_and_a_file(workspace):
    res = cli("train", "digits.yaml", "-q", cwd=workspace)
    assert res.returncode == 0, res.stderr
    run = workspace / "runs" / "digits_png"
    assert (run / "weights.safetensors").is_file()
    folder = workspace / "digits_png" / "7"
    out = cli("predict", str(run), str(folder), cwd=workspace)
    assert out.returncode == 0, out.stderr
    rows = list(csv.reader(io.StringIO(out.stdout)))
    assert rows[0] == ["path", "label"] + [f"p_{i}" for i in range(10)]
    assert len(rows) - 1 == len(list(folder.iterdir()))
    sevens = sum(r[1] == "7" for r in rows[1:])
    assert sevens / (len(rows) - 1) > 0.8  # a trained model calls most of folder 7 sevens
    one = cli_here("predict", str(run), str(next(folder.iterdir())), "--out", "one.csv", cwd=workspace)
    assert one.returncode == 0 and "1 predictions written to one.csv" in one.stdout
    # the exported graph takes [0, 1] images and normalises inside: the same probabilities
    onnx = cli("predict", str(run), str(folder), "--onnx", cwd=workspace)
    assert onnx.returncode == 0, onnx.stderr
    onnx_rows = list(csv.reader(io.StringIO(onnx.stdout)))
    assert onnx_rows[0] == rows[0] and [r[:2] for r in onnx_rows] == [r[:2] for r in rows]
    assert max(abs(float(a) - float(b)) for ra, rb in zip(rows[1:], onnx_rows[1:])
               for a, b in zip(ra[2:], rb[2:])) < 1e-4
    test = cli_here("evaluate", str(run), "--split", "test", cwd=workspace)
    assert test.returncode == 0 and "test, 359 samples" in test.stdout, test.stderr
    import json

    saved = json.loads((run / "results.json").read_text())["scores"]["test"]["accuracy"]
    assert f"{saved:.4f}" in test.stdout  # the run's own test split, made again from the seeds
    sevens_only = cli_here("evaluate", str(run), "--data", str(workspace / "digits_png"), cwd=workspace)
    assert sevens_only.returncode == 0 and "1797 samples" in sevens_only.stdout, sevens_only.stderr
    missing = cli_here("predict", str(run), "nope.png", cwd=workspace)
    assert missing.returncode == 2 and "image 'nope.png' does not exist" in missing.stderr
