"""A weights file cannot buy budget it does not hold, and a load computes no activation (found in
review: a forged 80-byte header, a huge input_shape and a layer that expands its input each let a
load allocate GBs)."""

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


def test_a_huge_input_shape_allocates_no_sizing_batch(tmp_path, monkeypatch):
    folder = tmp_path / "m"
    nw.save(nn.Sequential(nn.Linear(4, 2)), folder)
    description = json.loads((folder / "model.json").read_text())
    description["model"].update(input_shape=[2**30], spec=["relu"], sizes=None)
    (folder / "model.json").write_text(json.dumps(description))
    sizes = []
    real = torch.zeros

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        if out.device.type != "meta":
            sizes.append(out.numel())
        return out

    monkeypatch.setattr(torch, "zeros", spy)
    with pytest.raises(nw.CheckpointError, match="weights.safetensors"):
        nw.load(folder)  # a relu has no weights: the file's two tensors are unexpected
    assert not sizes or max(sizes) < 2**24  # the sizes were found on the meta device


# A 1x1 convolution to 4,096 channels over a 1x2048x2048 input: 8,192 parameters, and 34
# billion values (137 GB) of activations for the builder's batch of two.
EXPANDING = [{"conv2d": {"in_channels": 1, "out_channels": 4096, "kernel_size": 1}}]
HUGE = [1, 2048, 2048]


def _expanding_run(tmp_path, spec, sizes):
    folder = tmp_path / "run"
    nw.save(nw.build(spec[:1], (1, 4, 4)), folder)  # the real weights of the convolution
    description = json.loads((folder / "model.json").read_text())
    description["model"].update(spec=spec, input_shape=HUGE, sizes=sizes)
    (folder / "model.json").write_text(json.dumps(description))
    return folder


@pytest.mark.parametrize("sizes", ["none", "forged"])
def test_a_layer_that_expands_its_input_is_loaded_without_a_forward(tmp_path, sizes):
    """model.json without sizes (written before they were saved, or by hand) is sized on meta;
    with sizes (here forged for this spec) nothing is sized at all. Either way the load
    allocates the 8,192 parameters and no activation."""
    from hostile import baseline_mb, peak_mb, python

    from netwright.models.arguments import sizes_digest

    base = baseline_mb(tmp_path)
    given = None if sizes == "none" else {"of": sizes_digest(EXPANDING, HUGE), "layers": {}}
    _expanding_run(tmp_path, EXPANDING, given)
    res = python("""
        import netwright as nw
        model = nw.load('run')
        print('LOADED', sum(p.numel() for p in model.parameters()))
    """, cwd=tmp_path)
    assert "LOADED 8192" in res.stdout, res.stdout + res.stderr[-3000:]
    assert peak_mb(res) < base + 200


def test_a_lazy_layer_behind_an_expanding_one_is_refused_in_bounded_memory(tmp_path):
    """A lazy layer learns its size from a forward pass; the load measures that pass on meta
    first and refuses it when one layer's output passes the budget."""
    from hostile import baseline_mb, peak_mb, python

    base = baseline_mb(tmp_path)
    _expanding_run(tmp_path, [*EXPANDING, {"class": "torch.nn:LazyLinear", "args": {"out_features": 2}}],
                   None)
    res = python("""
        import netwright as nw
        try:
            nw.load('run')
        except nw.NetwrightError as exc:
            print('REFUSED', type(exc).__name__, exc)
    """, cwd=tmp_path)
    assert "REFUSED CheckpointError" in res.stdout and "34,359,738,368 values" in res.stdout, \
        res.stdout + res.stderr[-3000:]
    assert peak_mb(res) < base + 200
