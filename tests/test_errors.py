"""Bad input: each raises a NetwrightError kind naming the argument, what was expected, what
was received and the fix."""

import numpy as np
import pytest
import torch
import torch.nn as nn

import netwright as nw
from conftest import SimpleNet


@pytest.fixture
def xy():
    X = torch.rand(40, 20)
    return X, X[:, :3].argmax(1)


def test_article_float_column_targets_are_explained(xy):
    X, _ = xy
    y = torch.randint(0, 3, (40, 1)).float()  # as in the article
    with pytest.raises(nw.LossTargetError) as e:
        nw.fit(SimpleNet(20, 3), (X, y), loss="cross_entropy", epochs=1, verbose=0)
    msg = str(e.value)
    assert "float32 of shape (32, 1)" in msg and "y.squeeze(1).long()" in msg


def test_long_column_targets_and_out_of_range_labels(xy):
    X, y = xy
    with pytest.raises(nw.LossTargetError, match=r"squeeze\(1\)"):
        nw.fit(nn.Linear(20, 3), (X, y[:, None]), loss="cross_entropy", epochs=1, verbose=0)
    with pytest.raises(nw.LossTargetError, match=r"\[0, 3\).*labels from 3 to 5"):
        nw.fit(nn.Linear(20, 3), (X, y + 3), loss="cross_entropy", epochs=1, verbose=0)


def test_mse_shape_mismatch_is_an_error_not_a_broadcast(xy):
    X, _ = xy
    with pytest.raises(nw.LossTargetError, match=r"\(32, 1\).*\(32,\).*unsqueeze"):
        nw.fit(nn.Linear(20, 1), (X, torch.rand(40)), loss="mse", epochs=1, verbose=0)


def test_bce_on_logits_suggests_bce_with_logits(xy):
    X, _ = xy
    y = torch.randint(0, 2, (40, 1)).float()
    with pytest.raises(nw.LossTargetError, match="bce_with_logits"):
        nw.fit(nn.Linear(20, 1), (X * 10, y), loss="bce", epochs=1, verbose=0)
    with pytest.raises(nw.LossTargetError, match=r"y.float\(\)"):
        nw.fit(nn.Linear(20, 1), (X, y.long()), loss="bce_with_logits", epochs=1, verbose=0)


@pytest.mark.parametrize("kwargs, pattern", [
    ({"loss": "cross_entropyy"}, r"loss: unknown name 'cross_entropyy'\. Did you mean 'cross_entropy'\?"),
    ({"loss": "cross_entropy", "optimizer": "adma"}, r"optimizer: unknown optimizer 'adma'\. Did you mean 'adam'\?"),
    ({"loss": "cross_entropy", "scheduler": "cosin"}, r"scheduler: unknown scheduler 'cosin'\. Did you mean 'cosine'\?"),
    ({"loss": "cross_entropy", "metrics": ["acuracy"]}, r"metrics\[0\]: unknown metric 'acuracy'\. Did you mean 'accuracy'\?"),
    ({"loss": "cross_entropy", "metrics": ["r2"]}, r"'r2' is a regression metric.*multiclass"),
    ({"loss": "cross_entropy", "epochs": 0}, r"epochs: expected an integer >= 1, received 0"),
    ({"loss": "cross_entropy", "epochs": 2.5}, r"epochs: expected an integer, received 2.5"),
    ({"loss": "cross_entropy", "lr": 0}, r"lr: expected a positive number, received 0"),
    ({"loss": "cross_entropy", "lr": "fast"}, r"lr: expected a positive number, received 'fast'"),
    ({"loss": "cross_entropy", "batch_size": -1}, r"batch_size: expected an integer >= 1, received -1"),
    ({"loss": "cross_entropy", "precision": "16"}, r"precision: expected one of '32', 'bf16-mixed' or '16-mixed', received '16'"),
    ({"loss": "cross_entropy", "precision": "16-mixed", "device": "cpu"}, r"needs a CUDA device.*bf16-mixed"),
    ({"loss": "cross_entropy", "monitor": "val_acc"}, r"monitor: 'val_acc' is not a logged value"),
    ({"loss": "cross_entropy", "scheduler": {"name": "reduce_on_plateau", "monitor": "val_f1"}},
     r"monitor 'val_f1' will never be logged"),
    ({"loss": "cross_entropy", "clip_grad": -1}, r"clip_grad: expected a positive max norm"),
    ({"loss": "cross_entropy", "device": "tpu"}, r"device: expected 'auto', 'cpu'"),
])
def test_bad_arguments(xy, kwargs, pattern):
    X, y = xy
    with pytest.raises(nw.NetwrightError, match=pattern):
        nw.fit(nn.Linear(20, 3), (X, y), verbose=0, **({"epochs": 1} | kwargs))


def test_classification_metric_on_a_regression_run(xy):
    X, _ = xy
    with pytest.raises(nw.ConfigError, match=r"'accuracy' is a classification metric.*regression.*Fix: use mse"):
        nw.fit(nn.Linear(20, 1), (X, torch.rand(40, 1)), loss="mse", metrics=["accuracy"], verbose=0)


@pytest.mark.parametrize("train, pattern", [
    (np.zeros((10, 20)), r"train: expected \(X, y\).*received numpy.ndarray of shape \(10, 20\).*Fix"),
    ("data.csv", r"train: expected \(X, y\).*received str 'data.csv'"),
    ((np.zeros((10, 20)), np.zeros(9)), r"expected one target per sample \(10 rows.*received 9 targets"),
    ((np.array([["a"] * 20] * 4)), r"train"),
    ((np.array([["a"] * 20] * 4), np.zeros(4)), r"expected numbers, received an array of dtype <U1"),
])
def test_bad_training_data(train, pattern):
    with pytest.raises(nw.DataError, match=pattern):
        nw.fit(nn.Linear(20, 3), train, loss="cross_entropy", epochs=1, verbose=0)


def test_dataframe_errors_name_columns():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"a": [1.0, 2.0], "color": ["r", "g"], "y": [0, 1]})
    with pytest.raises(nw.DataError, match=r"target column 'label' is not in the DataFrame; its columns are \['a', 'color', 'y'\]"):
        nw.fit(nn.Linear(2, 2), (df, "label"), loss="cross_entropy", verbose=0)
    with pytest.raises(nw.DataError, match=r"\['color'\] are not.*get_dummies"):
        nw.fit(nn.Linear(2, 2), (df, "y"), loss="cross_entropy", verbose=0)


def test_model_that_is_not_a_module_and_forward_failures(xy):
    X, y = xy
    with pytest.raises(nw.ModelSpecError, match="SimpleNet\\(\\) rather than SimpleNet"):
        nw.fit(SimpleNet, (X, y), loss="cross_entropy", verbose=0)
    with pytest.raises(nw.ModelSpecError, match=r"forward failed on the first batch, inputs float32 of shape \(32, 20\)"):
        nw.fit(nn.Linear(10, 3), (X, y), loss="cross_entropy", epochs=1, verbose=0)


def test_errors_subclass_builtin_kinds():
    assert issubclass(nw.ConfigError, ValueError) and issubclass(nw.DataError, ValueError)
    assert issubclass(nw.LossTargetError, nw.NetwrightError)


def test_run_dir_is_never_overwritten(tmp_path, xy):
    X, y = xy
    nw.fit(nn.Linear(20, 3), (X, y), loss="cross_entropy", epochs=1, run_dir=tmp_path / "r", verbose=0)
    before = (tmp_path / "r" / "weights.safetensors").read_bytes()
    with pytest.raises(nw.ConfigError, match=r"is not empty.*weights\.safetensors.*overwrite=True"):
        nw.fit(nn.Linear(20, 3), (X, y), loss="cross_entropy", epochs=1, run_dir=tmp_path / "r", verbose=0)
    assert (tmp_path / "r" / "weights.safetensors").read_bytes() == before


def test_a_diverging_run_raises_naming_the_epoch_step_and_batch(xy):
    X, y = xy
    with pytest.raises(nw.NonFiniteLossError, match=r"loss became nan at epoch 1, step \d+ of \d+\. "
                       r"The batch: inputs shape \[8, 20\], mean .*lower the learning rate \(now 1e\+10\)"):
        nw.fit(nn.Linear(20, 3), (X * 1e30, y), loss="cross_entropy", optimizer="sgd",
               lr=1e10, epochs=5, batch_size=8, verbose=0, check=False)
