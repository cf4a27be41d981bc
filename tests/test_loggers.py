"""train.loggers: TensorBoard event files, read back with TensorBoard's own event reader."""

from __future__ import annotations

import pytest
import torch

import netwright as nw

pytest.importorskip("tensorboard", reason="tensorboard comes with the report extra")


def _events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "graph": 1})
    acc.Reload()
    return acc


def test_tensorboard_event_files_hold_epochs_steps_and_the_graph(tmp_path):
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16).astype("float32")
    torch.manual_seed(0)
    model = nw.build([{"linear": 32}, "relu", {"linear": 10}], (64,))
    result = nw.fit(model, (X[:1200], y[:1200]), val=(X[1200:], y[1200:]), loss="cross_entropy",
                    metrics=["accuracy"], epochs=3, batch_size=16, scheduler="cosine",
                    loggers=["csv", "tensorboard"], run_dir=tmp_path / "run", verbose=0)
    acc = _events(tmp_path / "run" / "tensorboard")
    tags = set(acc.Tags()["scalars"])
    assert {"train_loss", "val_loss", "val_accuracy", "lr", "step/train_loss", "step/lr"} <= tags
    val = [(e.step, e.value) for e in acc.Scalars("val_accuracy")]
    assert [s for s, _ in val] == [1, 2, 3]
    assert [v for _, v in val] == pytest.approx([row["val_accuracy"] for row in result.history])
    steps = acc.Scalars("step/train_loss")
    assert len(steps) == 3 * 38  # 75 batches an epoch: every 2nd step, at most 50 points an epoch
    lrs = [e.value for e in acc.Scalars("step/lr")]
    assert lrs[0] > lrs[-1]  # the cosine schedule, per step
    assert acc.Graph() is not None and any(n.op == "aten::linear" or "Linear" in n.name
                                           for n in acc.Graph().node)
    assert (tmp_path / "run" / "metrics.csv").is_file()  # csv stays


def test_tensorboard_needs_a_run_dir_and_a_known_name():
    model = nw.build([{"linear": 2}], (3,))
    data = (torch.randn(8, 3), torch.randint(0, 2, (8,)))
    with pytest.raises(nw.ConfigError, match="loggers: 'tensorboard' writes into the run directory"):
        nw.fit(model, data, loss="cross_entropy", epochs=1, loggers=["tensorboard"], verbose=0)
    with pytest.raises(nw.ConfigError, match="loggers"):
        nw.fit(model, data, loss="cross_entropy", epochs=1, loggers=["wandb"], verbose=0)
