"""The loss must agree with what the targets are (issue 11): a classification loss on 214
distinct disease scores, or mse on ten digit classes, used to train silently and print accuracy
0.0000. Now each is an error before training, in Python, `netwright train` and `netwright doctor`,
with the fix; `data.task` accepts a deliberate choice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import netwright as nw
from netwright.config import load_config
from netwright.data.prepare import prepare_data, targets_kind

EXE = Path(sys.executable).parent / "netwright"


def cfg(source, loss, **data):
    return {"model": {"zoo": "mlp", "hidden": [8]}, "data": {"source": source, **data},
            "loss": loss, "train": {"epochs": 1}}


@pytest.mark.parametrize("source, loss, words", [
    ("diabetes", "cross_entropy", ["214 distinct whole-number targets: a regression", "loss: mse"]),
    ("digits", "mse", ["10 distinct whole-number targets: class labels", "loss: cross_entropy"]),
    ("iris", "huber", ["3 distinct", "class labels"]),
])
def test_a_loss_that_disagrees_with_the_targets_is_refused_before_training(tmp_path, source, loss, words):
    with pytest.raises(nw.LossTargetError) as info:
        nw.run({**cfg(source, loss), "run_dir": str(tmp_path)}, verbose=0)
    for w in words:
        assert w in str(info.value)
    assert not any(tmp_path.iterdir())  # refused before the run directory was made


@pytest.mark.parametrize("source, loss", [("diabetes", "mse"), ("digits", "cross_entropy"),
                                          ("breast_cancer", "bce_with_logits")])
def test_agreeing_losses_prepare_as_before(source, loss):
    c = load_config(cfg(source, loss))
    info = nw.resolve_loss(loss)[1]
    data = prepare_data(c.data, info.task, info.name)
    assert data.task == info.task


def test_data_task_accepts_a_deliberate_choice_and_must_match_the_loss():
    c = load_config(cfg("iris", "mse", task="regression"))  # ordinal labels as numbers, on purpose
    data = prepare_data(c.data, "regression", "mse")
    assert data.task == "regression" and data.train[1].dtype == np.float32
    c = load_config(cfg("iris", "cross_entropy", task="regression"))
    with pytest.raises(nw.LossTargetError, match="data.task is 'regression' but loss"):
        prepare_data(c.data, "multiclass", "cross_entropy")


def test_targets_kind():
    assert targets_kind(np.array(["a", "b", "a"]))[0] == "classes"
    assert targets_kind(np.array([1.0, 2.0, 1.0]))[0] == "classes"
    assert targets_kind(np.arange(31.0))[0] == "values"
    assert targets_kind(np.arange(30))[0] == "classes"
    assert targets_kind(np.array([0.5, 0.25]))[0] == "values"
    assert targets_kind(np.zeros((4, 3))) is None  # several columns: not judged here


def test_netwright_doctor_and_train_report_the_disagreement(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {zoo: mlp, hidden: [8]}\ndata: {source: diabetes}\nloss: cross_entropy\n"
                    f"metrics: [accuracy]\nrun_dir: {tmp_path / 'runs'}\n")
    for cmd in (["doctor", str(path), "--quick"], ["train", str(path), "-q"]):
        res = subprocess.run([str(EXE), *cmd], capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert res.returncode == 2, res.stdout + res.stderr
        assert "LossTargetError" in res.stderr and "a regression" in res.stderr and "loss: mse" in res.stderr
    assert not (tmp_path / "runs").exists()
