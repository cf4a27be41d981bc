"""restore_best: with val data the run ends with the weights of its best epoch by the monitor,
in the model and in weights.safetensors, also across a resume; restore_best=False (or an
EarlyStopping asking for it) keeps the last epoch; the result and the CLI say which epoch's
weights they hold."""

import json

import pytest
import torch
import torch.nn as nn
import yaml

import netwright as nw
from netwright.checkpoint import load_weights_file

EPOCHS = 10


def _data():
    g = torch.Generator().manual_seed(0)
    X, Xv = torch.randn(64, 8, generator=g), torch.randn(64, 8, generator=g)
    y = X[:, :1] + torch.randn(64, 1, generator=g)
    yv = Xv[:, :1] + torch.randn(64, 1, generator=g)
    return (X, y), (Xv, yv)


class Snapshots(nw.Callback):
    """Every epoch's weights, by the epoch number the logs give it (1-based)."""

    def __init__(self):
        self.by_epoch = {}

    def on_epoch_end(self, epoch, logs, model):
        self.by_epoch[logs["epoch"]] = {k: v.detach().clone() for k, v in model.state_dict().items()}


def _fit(snaps=None, **kw):
    train, val = _data()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Linear(128, 1))
    # A high lr makes the val loss bounce: its best epoch comes well before the last.
    options = dict(loss="mse", lr=0.05, epochs=EPOCHS, batch_size=16, val=val, verbose=0,
                   callbacks=[snaps] if snaps is not None else None)
    options.update(kw)
    return nw.fit(net, train, **options)


def _same(state, expected):
    return state.keys() == expected.keys() and all(torch.equal(state[k], expected[k]) for k in state)


def test_the_model_and_weights_file_hold_the_best_epoch(tmp_path):
    snaps = Snapshots()
    result = _fit(snaps, run_dir=tmp_path / "run")
    best = result.best["epoch"]
    assert best < EPOCHS  # the data makes an earlier epoch the best; else this proves nothing
    assert result.weights_epoch == best and result.restored_best
    assert _same(result.model.state_dict(), snaps.by_epoch[best])
    assert _same(load_weights_file(tmp_path / "run" / "weights.safetensors"), snaps.by_epoch[best])
    assert result.weights_note == f"best epoch {best} (by val_loss)"


@pytest.mark.parametrize("options", [{"restore_best": False},
                                     {"early_stopping": {"patience": 50, "restore_best": False}}],
                         ids=["restore_best-false", "early-stopping-asks-not-to"])
def test_restore_best_off_keeps_the_last_epoch_and_names_the_best(options):
    snaps = Snapshots()
    result = _fit(snaps, **options)
    best = result.best["epoch"]
    assert best < EPOCHS and result.weights_epoch == EPOCHS and not result.restored_best
    assert _same(result.model.state_dict(), snaps.by_epoch[EPOCHS])
    assert result.weights_note == f"last epoch {EPOCHS} (best was {best} by val_loss)"


def test_without_val_data_the_last_epoch_is_kept_unless_asked():
    result = _fit(val=None, epochs=2)
    assert result.weights_epoch == 2 and not result.restored_best
    asked = _fit(val=None, epochs=2, restore_best=True)
    assert asked.restored_best and asked.weights_epoch == asked.best["epoch"]
    with pytest.raises(nw.ConfigError, match="restore_best: expected true or false, received 'yes'"):
        _fit(restore_best="yes")


class _Interrupt(nw.Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_start(self, epoch):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_a_resumed_run_ends_with_the_best_epoch_from_before_the_interruption(tmp_path):
    reference = _fit(run_dir=tmp_path / "ref")
    best = reference.best["epoch"]
    assert best < EPOCHS - 1
    with pytest.raises(KeyboardInterrupt):
        _fit(run_dir=tmp_path / "cut", callbacks=[_Interrupt(best)])  # right after the best epoch
    resumed = _fit(run_dir=tmp_path / "cut", resume=True)
    # The epochs after the interruption are all worse: only the bundle can hold the best weights.
    assert resumed.weights_epoch == best
    assert _same(resumed.model.state_dict(), reference.model.state_dict())
    assert _same(load_weights_file(tmp_path / "cut" / "weights.safetensors"),
                 reference.model.state_dict())


def test_the_cli_says_which_epochs_weights_the_table_scores(tmp_path):
    from typer.testing import CliRunner

    from netwright.cli import app

    config = {"name": "iris", "model": {"zoo": "mlp", "hidden": [8]}, "data": {"source": "iris"},
              "loss": "cross_entropy", "metrics": ["accuracy"], "run_dir": str(tmp_path),
              "train": {"epochs": 3}}
    (tmp_path / "iris.yaml").write_text(yaml.safe_dump(config))
    quiet = CliRunner().invoke(app, ["train", str(tmp_path / "iris.yaml"), "--quiet"])
    assert quiet.exit_code == 0 and quiet.output == "", quiet.output  # --quiet: errors only
    res = CliRunner().invoke(app, ["train", str(tmp_path / "iris.yaml"), "name=iris2"])
    assert res.exit_code == 0, res.output
    results = json.loads((tmp_path / "iris2" / "results.json").read_text())
    best = results["best"]["epoch"]
    assert results["weights_epoch"] == best and results["restored_best"] is True
    out = " ".join(res.output.split())
    assert f"weights: best epoch {best} (by val_loss)" in out
    assert f"(weights of epoch {best})" in out
