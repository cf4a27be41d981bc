"""Loading counts each module on the meta device before it is made for real (instead of first
building the whole model on meta with forward passes, which imports torch._dynamo): the same
model comes out, nothing past the budget is ever allocated, and what cannot be counted that way
(lazy layers, trusted classes that cannot be made on meta) goes through the whole-model ghost."""

from __future__ import annotations

import pytest
import torch
from hostile import baseline_mb, peak_mb, python, tiny_weights, write_model_json

import netwright as nw
from netwright.errors import CheckpointError
from netwright.models.budget import BudgetExceeded

SPECS = [
    ([{"linear": 8}, "relu", "batchnorm1d", "layernorm", {"dropout": 0.1}, {"linear": 3}], (5,)),
    ([{"conv2d": [4, 3]}, "batchnorm2d", {"maxpool2d": 2}, "flatten", {"linear": 2}], (1, 8, 8)),
    ({"zoo": "resnet", "stages": [1, 1], "width": 4}, (3, 8, 8)),
    ({"zoo": "text_classifier", "vocab_size": 50, "embed_dim": 8, "hidden_size": 6}, (12,)),
    ({"zoo": "gru", "outputs": 2, "hidden_size": 5, "bidirectional": True}, (7, 3)),
    ({"repeat": {"times": 3, "block": {"residual": [{"linear": 6}, "tanh"]}}}, (6,)),
    ({"branches": {"a": {"linear": 2}, "b": [{"linear": 3}, "relu"]}}, (4,)),
    ({"class": "torch.nn:MultiheadAttention", "args": {"embed_dim": 8, "num_heads": 2}}, None),
]


@pytest.mark.parametrize("spec, shape", SPECS)
def test_a_counted_build_is_the_same_model_with_the_same_random_numbers(spec, shape):
    torch.manual_seed(0)
    plain, after_plain = nw.build(spec, shape), torch.rand(3)
    torch.manual_seed(0)
    counted, after_counted = nw.build(spec, shape, max_values=10**8), torch.rand(3)
    assert repr(counted) == repr(plain)
    a, b = plain.state_dict(), counted.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert torch.equal(after_plain, after_counted)  # meta construction drew no random numbers


def test_the_budget_stops_before_the_module_that_passes_it():
    spec = [{"linear": 4}, {"linear": 4}]  # 20 + 20 values
    assert sum(p.numel() for p in nw.build(spec, (4,), max_values=40).parameters()) == 40
    with pytest.raises(BudgetExceeded, match=r"model\[1\].*more than 39 values \(at least 40"):
        nw.build(spec, (4,), max_values=39)


def test_loading_imports_no_dynamo(tmp_path):
    for i, (spec, shape) in enumerate(SPECS):
        nw.save(nw.build(spec, shape), tmp_path / f"m{i}")
    res = python(f"""
        import sys
        import netwright as nw
        for i in range({len(SPECS)}):
            nw.load(f'm{{i}}')
        print('DYNAMO', 'torch._dynamo' in sys.modules)
    """, cwd=tmp_path)
    assert "DYNAMO False" in res.stdout, res.stdout + res.stderr[-3000:]


def test_a_lazy_layer_is_measured_on_the_ghost_and_refused_in_bounded_memory(tmp_path):
    base = baseline_mb(tmp_path)
    run = tmp_path / "run"
    write_model_json(run, {"class": "torch.nn:LazyLinear", "args": {"out_features": 10**6}},
                     input_shape=[8192])  # 8.2 billion values once a forward has sized it
    tiny_weights(run)
    res = python("""
        import netwright as nw
        try:
            nw.load('run')
        except nw.NetwrightError as exc:
            print('REFUSED', type(exc).__name__, exc)
    """, cwd=tmp_path)
    assert "REFUSED CheckpointError" in res.stdout and "8,193,000,000 values" in res.stdout, \
        res.stdout + res.stderr[-3000:]
    assert peak_mb(res) < base + 200


def test_a_lazy_layer_within_the_budget_loads(tmp_path):
    model = nw.build({"class": "torch.nn:LazyLinear", "args": {"out_features": 2}}, (4,))
    loaded = nw.load(nw.save(model, tmp_path / "m"))
    x = torch.rand(3, 4)
    assert torch.equal(loaded(x), model(x))


def test_a_trusted_class_that_cannot_be_made_on_meta_still_loads(tmp_path, monkeypatch):
    (tmp_path / "meta_shy.py").write_text(
        "import torch\nclass Net(torch.nn.Module):\n    def __init__(self, width=3):\n"
        "        super().__init__(); self.a = torch.nn.Linear(2, width)\n"
        "        self.scale = float(torch.ones(1).sum().item())  # fails on the meta device\n"
        "    def forward(self, x):\n        return self.a(x) * self.scale\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import meta_shy

    model = meta_shy.Net(width=4)
    loaded = nw.load(nw.save(model, tmp_path / "m", init_args={"width": 4}), trust_code=True)
    assert torch.equal(loaded.a.weight, model.a.weight)
    with torch.device("meta"), pytest.raises(RuntimeError):
        meta_shy.Net()  # the premise: this constructor does fail on meta


def test_a_corrupt_weights_header_is_reported_after_the_specs_own_errors(tmp_path):
    write_model_json(tmp_path, [{"linear": 4}, "no_such_layer"], input_shape=[4])
    (tmp_path / "weights.safetensors").write_bytes(b"\xff" * 16)
    with pytest.raises(nw.ModelSpecError, match="unknown layer 'no_such_layer'"):
        nw.load(tmp_path)
    write_model_json(tmp_path, [{"linear": 4}], input_shape=[4])
    with pytest.raises(CheckpointError, match="weights.safetensors"):
        nw.load(tmp_path)
