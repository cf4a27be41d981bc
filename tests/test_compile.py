"""train.compile / fit(compile=...): torch.compile for training and evaluation, the same
numbers as eager (within float rounding), and weights saved with the model's own keys."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import netwright as nw

pytestmark = pytest.mark.slow


def _data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 8)).astype("float32")
    y = (X[:, 0] + X[:, 1] > 0).astype("int64")
    return X, y


def _fit(tmp_path, name, model=None, **options):
    X, y = _data()
    torch.manual_seed(0)
    model = model or nw.build([{"linear": 16}, "relu", {"linear": 2}], (8,))
    return nw.fit(model, (X[:200], y[:200]), val=(X[200:], y[200:]), loss="cross_entropy",
                  metrics=["accuracy"], epochs=2, batch_size=32, verbose=0, seed=0,
                  run_dir=tmp_path / name, **options)


def test_compiled_training_matches_eager_and_saves_plain_keys(tmp_path):
    eager = _fit(tmp_path, "eager")
    compiled = _fit(tmp_path, "compiled", compile=True)
    for a, b in zip(eager.history, compiled.history):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    keys = set(load_file(str(tmp_path / "compiled" / "weights.safetensors")))
    assert keys == set(load_file(str(tmp_path / "eager" / "weights.safetensors")))
    assert not any("_orig_mod" in k for k in keys)
    bundle = load_file(str(tmp_path / "compiled" / "checkpoints" / "last" / "weights.safetensors"))
    assert not any("_orig_mod" in k for k in bundle)


def test_a_model_the_caller_compiled_trains_and_saves_as_the_module_it_wraps(tmp_path):
    torch.manual_seed(0)
    plain = nw.build([{"linear": 16}, "relu", {"linear": 2}], (8,))
    res = _fit(tmp_path, "theirs", model=torch.compile(plain))
    assert res.model is plain
    assert not any("_orig_mod" in k for k in load_file(str(tmp_path / "theirs" / "weights.safetensors")))
    again = nw.load(nw.save(torch.compile(plain), tmp_path / "saved"))
    x = torch.randn(3, 8)
    assert torch.equal(again(x), plain(x))


def test_an_unknown_compile_mode_is_a_config_error():
    with pytest.raises(nw.ConfigError, match="compile"):
        nw.fit(torch.nn.Linear(2, 2), (torch.rand(4, 2), torch.zeros(4, dtype=torch.long)),
               loss="cross_entropy", compile="fastest", verbose=0)
