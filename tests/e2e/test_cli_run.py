"""train → evaluate → predict → summary, and init, from the command line."""

import csv
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]


def cli(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "netwright.cli", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    res = cli("train", "examples/digits_mlp.yaml", "train.epochs=6", f"run_dir={root}")
    assert res.returncode == 0, res.stderr
    return root / "digits_mlp", res.stdout


def test_train_prints_val_and_test_metrics_and_the_run_dir(trained):
    run_dir, out = trained
    assert "final metrics" in out and "accuracy" in out and "test" in out and "val" in out
    assert f"run directory: {run_dir}" in out
    assert (run_dir / "model.json").is_file() and (run_dir / "weights.safetensors").is_file()


def test_evaluate_the_test_split_and_a_file(trained, tmp_path):
    run_dir, _ = trained
    res = cli("evaluate", str(run_dir), "--split", "test")
    assert res.returncode == 0, res.stderr
    assert "accuracy" in res.stdout and "test, 359 samples" in res.stdout
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    np.savez(tmp_path / "d.npz", X=X[:50].astype(np.float32), y=y[:50])
    res = cli("evaluate", str(run_dir), "--data", str(tmp_path / "d.npz"))
    assert res.returncode == 0, res.stderr
    assert "50 samples" in res.stdout


def test_predict_writes_labels_and_probabilities(trained, tmp_path):
    run_dir, _ = trained
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    np.save(tmp_path / "x.npy", X[:20])
    out = tmp_path / "pred.csv"
    res = cli("predict", str(run_dir), str(tmp_path / "x.npy"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    rows = list(csv.reader(io.StringIO(out.read_text())))
    assert rows[0] == ["label"] + [f"p_{i}" for i in range(10)]
    assert len(rows) == 21
    assert abs(sum(float(p) for p in rows[1][1:]) - 1) < 1e-4
    assert sum(int(r[0]) == t for r, t in zip(rows[1:], y[:20])) >= 16
    again = cli("predict", str(run_dir), str(tmp_path / "x.npy"), "--out", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_summary_of_a_config_and_of_a_run(trained):
    run_dir, _ = trained
    for target in ("examples/all_containers.yaml", str(run_dir)):
        res = cli("summary", target)
        assert res.returncode == 0, res.stderr
        assert "Linear" in res.stdout


def test_config_errors_are_reported_before_anything_is_written(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: {zoo: mlp}\ndata: {source: digits, vall: 0.1}\nloss: cross_entropy\n"
                   "optimizer: {lr: fast}\n")
    res = cli("train", str(bad), f"run_dir={tmp_path / 'runs'}")
    assert res.returncode == 2
    assert "data.vall: unknown key. Did you mean 'val'?" in res.stderr
    assert "optimizer.lr: expected a positive number, received 'fast'" in res.stderr
    assert not (tmp_path / "runs").exists()


def test_init_writes_a_config_that_trains_and_never_overwrites(tmp_path):
    res = cli("init", "my.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    res = cli("train", "my.yaml", "train.epochs=2", "--quiet", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "runs" / "my" / "metrics.csv").is_file()  # named after the config file
    res = cli("init", "my.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "already exists" in res.stderr


def test_train_resume_continues_the_newest_run(tmp_path):
    res = cli("train", "examples/digits_mlp.yaml",
              "train.epochs=2", f"run_dir={tmp_path}", "--quiet")
    assert res.returncode == 0, res.stderr
    res = cli("train", "examples/digits_mlp.yaml", "train.epochs=2", f"run_dir={tmp_path}", "--resume")
    assert res.returncode == 0, res.stderr
    assert "resumed from" in res.stdout and f"{tmp_path}/digits_mlp" in res.stdout
    assert not (tmp_path / "digits_mlp-2").exists()
    res = cli("train", "examples/digits_mlp.yaml", "train.epochs=3", f"run_dir={tmp_path}", "--resume")
    assert res.returncode == 2 and "train.epochs: 2 -> 3" in res.stderr


def test_export_then_serve_with_onnx_without_torch(trained, tmp_path):
    run_dir, _ = trained
    res = cli("export", str(run_dir), "--format", "onnx,torchscript")
    assert res.returncode == 0, res.stderr
    assert (run_dir / "exports" / "model.onnx").is_file() and (run_dir / "exports" / "verify.json").is_file()
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    np.save(tmp_path / "x.npy", X[:20])
    # Serve in a process where importing torch fails: ONNX serving must not need it.
    code = ("import sys; sys.modules['torch'] = None; from netwright.cli import main; "
            f"sys.argv = ['netwright', 'predict', {str(run_dir)!r}, {str(tmp_path / 'x.npy')!r}, '--onnx']; main()")
    served = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert served.returncode == 0, served.stderr[-2000:]
    eager = cli("predict", str(run_dir), str(tmp_path / "x.npy"))
    onnx_rows = list(csv.reader(io.StringIO(served.stdout)))
    eager_rows = list(csv.reader(io.StringIO(eager.stdout)))
    assert [r[0] for r in onnx_rows] == [r[0] for r in eager_rows]
    assert all(abs(float(a) - float(b)) < 1e-4 for ra, rb in zip(onnx_rows[1:], eager_rows[1:])
               for a, b in zip(ra[1:], rb[1:]))
