"""The command line, run as a user runs it."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run(*args, timeout=300):
    cmd = [sys.executable, "-m", "netwright.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def test_help_lists_commands_without_importing_torch():
    code = ("import sys; from netwright.cli import app; from typer.testing import CliRunner; "
            "r = CliRunner().invoke(app, ['--help']); print(r.output); "
            "print('TORCH_LOADED' if 'torch' in sys.modules else 'NO_TORCH')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60).stdout
    assert "quickstart" in out and "datasets" in out
    assert "NO_TORCH" in out


def test_quickstart_trains_on_real_digits_and_prints_test_metrics(tmp_path):
    res = run("quickstart", "--dataset", "digits", "--epochs", "8", "--run-dir", str(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    assert "digits: held-out test set of 359 samples" in res.stdout
    acc = float(next(l for l in res.stdout.splitlines() if l.startswith("│ accuracy")).split()[-2])
    assert acc > 0.9
    assert (tmp_path / "run" / "metrics.csv").is_file()


def test_quickstart_regression_and_binary():
    res = run("quickstart", "--dataset", "diabetes", "--epochs", "5")
    assert res.returncode == 0, res.stderr
    assert "r2" in res.stdout and "rmse" in res.stdout
    res = run("quickstart", "--dataset", "breast_cancer", "--epochs", "3")
    assert res.returncode == 0, res.stderr
    assert "auroc" in res.stdout


def test_unknown_dataset_is_a_one_line_error_with_exit_code_2():
    res = run("quickstart", "--dataset", "digit")
    assert res.returncode == 2
    assert "unknown built-in data set 'digit'. Did you mean 'digits'?" in res.stderr
    assert "Traceback" not in res.stderr


def test_datasets_lists_builtins():
    res = run("datasets")
    assert res.returncode == 0
    for name in ("digits", "iris", "wine", "breast_cancer", "diabetes", "mnist"):
        assert name in res.stdout


def test_console_script_is_installed():
    exe = Path(sys.executable).parent / "netwright"
    if not exe.exists():
        pytest.skip("netwright is not installed as a console script in this environment")
    res = subprocess.run([str(exe), "version"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.startswith("netwright 0.1.0, torch ")
