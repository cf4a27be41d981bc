"""nw.lr_find and `netwright lr-find`: the range test runs on copies, stops on divergence, works
with every optimizer netwright builds, a custom step and any data kind, and its suggestion is
a learning rate worth training with (measured against a grid)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import TensorDataset

import netwright as nw
from netwright.errors import ConfigError
from netwright.tuning.lr_find import LRFinderResult, lr_find


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).long()
    return X, y


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(16, 2))


def test_nothing_of_the_caller_changes_bitwise():
    model = _net()
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    model.train()
    F.cross_entropy(model(_data()[0][:32]), _data()[1][:32]).backward()
    opt.step()  # the caller's optimizer has state (momentum buffers) to keep
    opt.zero_grad()
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt_state = {id(p): s["momentum_buffer"].clone() for p, s in opt.state.items()}
    torch.manual_seed(123); np.random.seed(7); random.seed(5)
    rng = (torch.get_rng_state(), np.random.get_state(), random.getstate())

    result = lr_find(model, _data(), loss="cross_entropy", optimizer=opt, steps=40)

    assert not model.training and not any(m.training for m in model.modules())
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # BatchNorm's running stats included
    assert opt.param_groups[0]["lr"] == 0.05
    assert {id(p): s["momentum_buffer"] for p, s in opt.state.items()}.keys() == opt_state.keys()
    for p, s in opt.state.items():
        assert torch.equal(s["momentum_buffer"], opt_state[id(p)])
    assert torch.equal(torch.get_rng_state(), rng[0])
    np_now, np_before = np.random.get_state(), rng[1]
    assert np_now[0] == np_before[0] and np.array_equal(np_now[1], np_before[1]) and np_now[2:] == np_before[2:]
    assert random.getstate() == rng[2]
    assert result.optimizer == "SGD"


def test_result_fields_plot_and_summary(tmp_path):
    result = nw.lr_find(_net(), _data(), loss="cross_entropy", steps=60, end_lr=1.0)
    assert isinstance(result, LRFinderResult)
    n = len(result.lrs)
    assert 3 <= n <= 60 and len(result.losses) == len(result.raw_losses) == n
    ratios = np.diff(np.log(result.lrs))
    assert np.allclose(ratios, ratios[0])  # exponential growth
    assert result.lrs[0] == pytest.approx(1e-7)
    assert result.lrs[0] <= result.suggestion <= result.lrs[-1]
    assert result.rule.startswith("steepest descent of the smoothed loss")
    assert set(result.alternatives) == {"steepest", "valley", "minimum"}
    # the smoothed curve is the bias-corrected EMA of the raw one
    assert result.losses[0] == pytest.approx(result.raw_losses[0])
    d = result.to_dict()
    assert d["suggestion"] == result.suggestion and d["lrs"] == result.lrs
    path = result.plot(tmp_path / "lr.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = result.summary()
    assert f"{result.suggestion:.3g}" in text and "lr=" in text and str(path) in text


def test_divergence_stops_early_and_says_so():
    result = lr_find(_net(), _data(), loss="cross_entropy", optimizer="sgd", steps=100,
                     start_lr=1e-4, end_lr=100.0)
    assert len(result.lrs) < 100
    assert result.stopped.startswith("diverged at lr")
    assert result.lrs[-1] < 100.0
    reached = lr_find(_net(), _data(), loss="cross_entropy", optimizer="sgd", steps=30,
                      start_lr=1e-6, end_lr=1e-3)
    assert len(reached.lrs) == 30 and reached.stopped == "reached end_lr 0.001"


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop",
                                       {"name": "sgd", "momentum": 0.9, "lr": 5.0},
                                       torch.optim.Adagrad])
def test_every_optimizer(optimizer):
    result = lr_find(_net(), _data(), loss="cross_entropy", optimizer=optimizer, steps=30)
    assert len(result.lrs) >= 3 and np.isfinite(result.suggestion)
    assert result.lrs[0] == pytest.approx(1e-7)  # a mapping's own lr does not move the start


def test_custom_step_is_used():
    calls = []

    def step(ctx, x, y, *, scale=1.0, step=True):
        calls.append(ctx.optimizer.param_groups[0]["lr"])
        loss = F.cross_entropy(ctx.model(x), y)
        loss.backward()
        ctx.optimizer.step()
        ctx.optimizer.zero_grad(set_to_none=True)
        return {"loss": loss.detach(), "extra": loss.detach() * 0}

    result = lr_find(_net(), _data(), loss="cross_entropy", step=step, steps=25, end_lr=1e-2)
    assert calls == pytest.approx(result.lrs)


def test_a_dataset_and_a_dataframe():
    X, y = _data()
    result = lr_find(_net(), TensorDataset(X, y), loss="cross_entropy", steps=20, batch_size=16)
    assert len(result.lrs) == 20  # 16 batches: the data is cycled
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(X.numpy(), columns=[f"f{i}" for i in range(8)]).assign(label=y.numpy())
    result = lr_find(_net(), (df, "label"), loss="cross_entropy", steps=12)
    assert len(result.lrs) == 12


@pytest.mark.parametrize("kwargs, words", [
    ({"steps": 5}, "steps: expected an integer >= 10"),
    ({"start_lr": 1.0, "end_lr": 0.1}, "must be below end_lr"),
    ({"end_lr": 0.0}, "end_lr: expected a positive learning rate"),
    ({"rule": "valey"}, "Did you mean 'valley'"),
    ({"epochs": 3}, "epochs: unknown option"),
])
def test_bad_arguments_are_clear(kwargs, words):
    with pytest.raises(ConfigError, match=words.replace("(", r"\(")) as info:
        lr_find(_net(), _data(), loss="cross_entropy", **kwargs)
    assert "Fix" in str(info.value) or "Did you mean" in str(info.value) or "Options" in str(info.value)


def test_cli_writes_the_plot_and_prints_the_suggestion(tmp_path):
    from typer.testing import CliRunner

    from netwright.cli import app

    out = tmp_path / "lr.png"
    res = CliRunner().invoke(app, ["lr-find", "examples/digits_mlp.yaml", f"run_dir={tmp_path}",
                                   "--steps", "60", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    assert "suggested learning rate:" in res.output and "optimizer.lr=" in res.output
    assert "AdamW" in res.output  # the config's optimizer
    default = CliRunner().invoke(app, ["lr-find", "examples/digits_mlp.yaml", f"run_dir={tmp_path}",
                                       "--steps", "20"])
    assert default.exit_code == 0, default.output
    assert (tmp_path / "digits_mlp-lr_find.png").is_file()
    bad = CliRunner().invoke(app, ["lr-find", "examples/digits_mlp.yaml", "--start-lr", "1",
                                   "--end-lr", "0.5"])
    assert bad.exit_code == 2 and "must be below end_lr" in bad.output


def _digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(X))
    X, y = X[order].astype("float32"), y[order].astype("int64")
    n = int(0.7 * len(X))
    X = (X - X[:n].mean(0)) / (X[:n].std(0) + 1e-6)
    return (X[:n], y[:n]), (X[n:], y[n:])


@pytest.fixture
def one_thread():
    """A 64-unit MLP steps faster on one thread than on two that contend (several times here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["adam", {"name": "sgd", "momentum": 0.9}],
                         ids=["adam", "sgd-momentum"])
def test_the_suggestion_trains_as_well_as_the_best_of_a_grid(optimizer, one_thread):
    train, val = _digits()

    def net():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))

    def accuracy(lr):
        r = nw.fit(net(), train, val=val, loss="cross_entropy", optimizer=optimizer, lr=lr,
                   epochs=8, batch_size=64, metrics=["accuracy"], seed=0, verbose=0,
                   restore_best=False, check=False)
        return r.history[-1]["val_accuracy"]

    grid = {lr: accuracy(lr) for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1)}
    suggestion = lr_find(net(), train, loss="cross_entropy", optimizer=optimizer,
                         batch_size=64).suggestion
    got = accuracy(suggestion)
    assert got >= max(grid.values()) - 0.01, (suggestion, got, grid)
    assert got > min(grid.values()) + 0.1  # the grid spans bad to good: the check has teeth
