"""Callbacks and the run directory written by fit."""

import csv
import io
import json

import torch
import torch.nn as nn

import netwright as nw
from netwright.checkpoint import load_weights_file
from netwright.training.callbacks import EpochPrinter, ProgressBar


def test_run_dir_holds_config_metrics_best_and_final_weights(tmp_path, blobs):
    X, y = blobs
    model = nn.Linear(2, 3)
    result = nw.fit(model, (X, y), loss="cross_entropy", lr=0.05, epochs=4, val=0.2,
                    metrics=["accuracy", "confusion_matrix"], run_dir=tmp_path / "run", verbose=0)
    run = tmp_path / "run"
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {"epoch", "train_loss", "val_loss", "val_accuracy", "lr"}
    assert float(rows[-1]["val_loss"]) == result.history[-1]["val_loss"]
    final = load_weights_file(run / "weights.safetensors")
    assert all(torch.equal(final[k], v.cpu()) for k, v in model.state_dict().items())
    state = json.loads((run / "checkpoints" / "best" / "state.json").read_text())["state"]
    assert state["epoch"] == result.best["epoch"] and state["monitor"] == "val_loss"
    assert state["history"][-1]["val_loss"] == result.best["val_loss"]
    for bundle in ("best", "last", "prev"):
        assert (run / "checkpoints" / bundle / "weights.safetensors").is_file()
        assert (run / "checkpoints" / bundle / "state.safetensors").is_file()
    assert "precision" in (run / "config.yaml").read_text()
    assert isinstance(result.history[-1]["val_confusion_matrix"], list)
    assert not list(run.rglob("*.tmp"))


def test_custom_callback_hooks_order_and_stop(blobs):
    X, y = blobs
    calls = []

    class Recorder:  # a plain object, no base class
        def on_fit_start(self, info):
            calls.append(("fit_start", info.epochs, info.batches_per_epoch))

        def on_epoch_start(self, epoch):
            calls.append(("epoch_start", epoch))

        def on_batch_end(self, epoch, batch, loss):
            calls.append(("batch", epoch, batch))

        def on_epoch_end(self, epoch, logs, model):
            calls.append(("epoch_end", epoch))
            return epoch == 1  # stop after the second epoch

        def on_fit_end(self, history, model):
            calls.append(("fit_end", len(history)))

    result = nw.fit(nn.Linear(2, 3), (X, y), loss="cross_entropy", epochs=5, batch_size=100,
                    callbacks=[Recorder()], verbose=0)
    assert result.stop_reason == "stopped by Recorder"
    assert calls[0] == ("fit_start", 5, 3)
    assert calls[1:6] == [("epoch_start", 0), ("batch", 0, 0), ("batch", 0, 1), ("batch", 0, 2), ("epoch_end", 0)]
    assert calls[-1] == ("fit_end", 2)


def test_progress_output_plain_lines_when_not_a_terminal(blobs, capsys):
    X, y = blobs
    nw.fit(nn.Linear(2, 3), (X, y), loss="cross_entropy", epochs=2, verbose=1)
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith("epoch 1/2  train_loss=")
    nw.fit(nn.Linear(2, 3), (X, y), loss="cross_entropy", epochs=2, verbose=0)
    assert capsys.readouterr().out == ""


def test_rich_progress_bar_shows_live_loss(blobs):
    from rich.console import Console

    X, y = blobs
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=100)
    nw.fit(nn.Linear(2, 3), (X, y), loss="cross_entropy", epochs=2,
           callbacks=[ProgressBar(console=console, refresh_s=0.0)], verbose=0)
    text = buf.getvalue()
    assert "epoch 2/2" in text and "train_loss=" in text and "loss " in text


def test_epoch_printer_to_a_stream(blobs):
    X, y = blobs
    buf = io.StringIO()
    nw.fit(nn.Linear(2, 3), (X, y), loss="cross_entropy", epochs=3, val=0.2,
           callbacks=[EpochPrinter(buf)], verbose=0)
    lines = buf.getvalue().splitlines()
    assert len(lines) == 3 and "val_loss=" in lines[-1]


def test_early_stopping_shortcut_and_bad_monitor(blobs):
    import pytest

    X, y = blobs
    result = nw.fit(nn.Linear(2, 3), (X, y), loss="cross_entropy", optimizer="sgd", lr=5.0,
                    epochs=40, val=0.3, early_stopping=2, verbose=0)
    assert result.stop_reason == "early_stopping"
    with pytest.raises(nw.ConfigError, match="EarlyStopping: monitor 'val_f1'"):
        nw.fit(nn.Linear(2, 3), (X, y), loss="cross_entropy", epochs=1, val=0.3,
               callbacks=[nw.EarlyStopping(monitor="val_f1")], verbose=0)
