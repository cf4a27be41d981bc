"""A weights file cannot buy budget it does not hold, and model.json's sizing batch is counted
(found in review: a forged 80-byte header and a huge input_shape each let a load allocate GBs)."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from torch import nn

import netwright as nw


def _forged_weights(path, shape, dtype="F4"):
    header = json.dumps({"w": {"dtype": dtype, "shape": shape, "data_offsets": [0, 0]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header)


def test_a_header_shape_over_zero_bytes_is_not_counted_as_values(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    nw.save(nn.Sequential(nn.Linear(4, 2)), folder)
    description = json.loads((folder / "model.json").read_text())
    description["model"]["spec"] = [{"class": "torch.nn:Linear",
                                     "args": {"in_features": 8192, "out_features": 8192, "bias": False}}]
    (folder / "model.json").write_text(json.dumps(description))
    _forged_weights(folder / "weights.safetensors", [10**12])
    made = []
    real = nn.Linear.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        if self.weight.device.type != "meta":
            made.append(self.weight.numel())

    monkeypatch.setattr(nn.Linear, "__init__", spy)
    with pytest.raises(nw.CheckpointError):
        nw.load(folder)
    assert made == []  # the 67-million-value layer was never made for real


def test_a_huge_input_shape_is_refused_before_the_sizing_batch_is_made(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    nw.save(nn.Sequential(nn.Linear(4, 2)), folder)
    description = json.loads((folder / "model.json").read_text())
    description["model"]["input_shape"] = [2**30]
    description["model"]["spec"] = ["relu"]
    (folder / "model.json").write_text(json.dumps(description))
    sizes = []
    real = torch.zeros

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        sizes.append(out.numel())
        return out

    monkeypatch.setattr(torch, "zeros", spy)
    with pytest.raises(nw.CheckpointError, match=r"input_shape \[1073741824\] makes a sizing batch "
                                                 r"of 2,147,483,648 values"):
        nw.load(folder)
    assert not sizes or max(sizes) < 2**24
