"""Hostile or unusual files give errors that name the file and the fix, never raw tracebacks or
minutes of work: a deeply nested safetensors header, .npz object arrays, a .pt whose pickle
calls os.system, a 200,000-column CSV; and metrics.csv keeps its columns across a resume
(issue #9)."""

from __future__ import annotations

import builtins
import csv
import json
import os
import struct

import numpy as np
import pytest
import torch
import torch.nn as nn

import netwright as nw
from netwright.checkpoint import load_weights, load_weights_file
from netwright.config import DataConfig
from netwright.data.prepare import features_from_file, prepare_data


# -- safetensors ----------------------------------------------------------------------------------

def test_deeply_nested_safetensors_header_is_a_clear_error(tmp_path):
    header = ('{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "x": '
              + "[" * 100_000 + "]" * 100_000 + "}").encode()
    path = tmp_path / "deep.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 4)
    for load in (lambda: load_weights_file(path), lambda: load_weights(nn.Linear(1, 1), path)):
        with pytest.raises(nw.CheckpointError) as err:
            load()
        assert str(path) in str(err.value) and "nested too deeply" in str(err.value)
        assert "Fix:" in str(err.value)


# -- pickles that torch refuses ---------------------------------------------------------------------

class _Shell:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Eval:
    def __reduce__(self):
        return (builtins.eval, ("1 + 1",))


def test_a_pt_whose_pickle_calls_os_system_is_refused_as_unsafe_not_corrupt(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(1, 1), "bias": torch.zeros(1), "x": _Shell(marker)}, path)
    with pytest.raises(nw.CheckpointError) as err:
        load_weights(nn.Linear(1, 1), path)
    message = str(err.value)
    assert str(path) in message and "unsafe" in message and "system" in message
    assert "allow_pickle=True" in message and "Fix:" in message
    assert "corrupt" not in message and "cut short" not in message
    assert not marker.exists()


def test_a_pt_whose_pickle_calls_eval_names_it_and_the_opt_in(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"weight": torch.zeros(1, 1), "bias": torch.zeros(1), "x": _Eval()}, path)
    with pytest.raises(nw.CheckpointError) as err:
        load_weights(nn.Linear(1, 1), path)
    message = str(err.value)
    assert str(path) in message and "eval" in message and "allow_pickle=True" in message
    assert "corrupt" not in message


# -- .npz object arrays ---------------------------------------------------------------------------

def test_npz_with_object_arrays_is_a_data_error_naming_the_file_and_array(tmp_path):
    path = tmp_path / "data.npz"
    X = np.empty(6, dtype=object)
    X[:] = [{"a": i} for i in range(6)]
    np.savez(path, X=X, y=np.arange(6) % 2)
    with pytest.raises(nw.DataError) as err:
        prepare_data(DataConfig(source=str(path)), "multiclass")
    message = str(err.value)
    assert str(path) in message and "'X'" in message and "dtype=object" in message
    assert "Fix:" in message and "allow_pickle" not in message.split("Fix:")[1]
    np.savez(path, X=np.ones((6, 2)), y=np.array([object()] * 6, dtype=object))
    with pytest.raises(nw.DataError, match=r"array 'y' holds Python objects"):
        features_from_file(path, DataConfig(source=str(path)), need_target=True)


# -- very wide tables -------------------------------------------------------------------------------

def _wide_csv(path, n):
    names = [f"f{i}" for i in range(n)]
    rows = [",".join(names) + ",label"]
    rows += [",".join(["1"] * (n - 1) + [str(r)]) + f",{r % 2}" for r in range(2)]
    path.write_text("\n".join(rows) + "\n")
    return names


@pytest.mark.slow
def test_a_200000_column_csv_is_read_in_seconds(tmp_path):
    path = tmp_path / "wide.csv"
    names = _wide_csv(path, 200_000)
    X, y, feats = features_from_file(path, DataConfig(source=str(path), target="label"),
                                     need_target=True)
    assert X.shape == (2, 200_000) and X.dtype == np.float32 and feats == names
    assert X[1, -1] == 1.0 and X[0, -1] == 0.0 and y.tolist() == [0, 1]


def test_errors_about_a_wide_csv_name_the_columns_briefly(tmp_path):
    path = tmp_path / "wide.csv"
    names = _wide_csv(path, 20_000)
    with pytest.raises(nw.DataError) as err:
        features_from_file(path, DataConfig(source=str(path), target="label",
                                            features=names[:3] + ["nope"]), need_target=True)
    message = str(err.value)
    assert "'nope'" in message and str(path) in message and "20,001 in all" in message
    assert len(message) < 2000


# -- metrics.csv across a resume ------------------------------------------------------------------

def test_metrics_csv_keeps_its_column_order_after_a_resume(tmp_path):
    class Interrupt(nw.Callback):
        def on_epoch_end(self, epoch, logs, model):
            if epoch == 1:
                raise KeyboardInterrupt

    g = torch.Generator().manual_seed(0)
    X = torch.rand(120, 4, generator=g)
    y = (X[:, 0] > X[:, 1]).long()

    def fit(run_dir, **kw):
        torch.manual_seed(0)
        return nw.fit(nn.Linear(4, 2), (X, y), loss="cross_entropy", epochs=4, val=0.25,
                      metrics=["accuracy", "f1_macro"], run_dir=run_dir, verbose=0, **kw)

    fit(tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut", callbacks=[Interrupt()])
    fit(tmp_path / "cut", resume=True)

    def read(run):
        with (run / "metrics.csv").open() as fh:
            return list(csv.reader(fh))

    whole, cut = read(tmp_path / "whole"), read(tmp_path / "cut")
    assert whole[0] == ["epoch", "train_loss", "val_loss", "val_accuracy", "val_f1_macro", "lr"]
    assert cut[0] == whole[0] and len(cut) == len(whole) == 5
    assert [r[0] for r in cut[1:]] == ["1", "2", "3", "4"]
