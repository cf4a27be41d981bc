"""summary(): per-layer shapes, parameters and FLOPs that agree with torch's own counts."""

import json

import pytest
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from netwright.errors import ModelSpecError
from netwright.models import Summary, build, build_zoo, summary


class TwoInputs(nn.Module):
    """A multi-input model with a tuple output and a parameter of its own (not in a child)."""

    def __init__(self):
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten())
        self.meta = nn.Linear(3, 4)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, image, meta):
        a = self.image(image)
        return a.sum(1, keepdim=True) * self.scale, self.meta(meta)


def torch_flops(model, *args, **kwargs):
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(*args, **kwargs)
    return counter.get_total_flops()


def models():
    heads = build([{"linear": 8}, "relu", {"heads": {"label": {"linear": 3}, "box": [{"linear": 4}, "sigmoid"]}}], (5,))
    repeat = build({"repeat": {"times": 3, "block": [{"linear": 6}, "relu"]}}, (6,))
    return {
        "mlp": (build_zoo("mlp", (10,), hidden=[16], num_classes=3), (10,)),
        "cnn": (build_zoo("cnn", (1, 28, 28), channels=[4, 8], hidden=16), (1, 28, 28)),
        "resnet": (build_zoo("resnet", (3, 16, 16), stages=[1, 1], width=4), (3, 16, 16)),
        "heads (dict output)": (heads, (5,)),
        "repeat (ModuleList)": (repeat, (6,)),
        "lstm": (build_zoo("lstm", (7, 2), num_classes=2, hidden_size=4), (7, 2)),
    }


@pytest.mark.parametrize("name", list(models()))
def test_totals_match_torch(name):
    model, shape = models()[name]
    s = summary(model, shape)
    assert isinstance(s, Summary)
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.trainable_params == s.total_params and s.frozen_params == 0
    x = torch.zeros(1, *shape)
    assert s.flops == torch_flops(model, x)
    # each module's count includes its children, and these roots do no compute of their own
    assert sum(r.flops for r in s.rows if r.depth == 0) == s.flops
    # every parameter sits in exactly one leaf here, so the leaf rows add up to the total
    assert sum(r.params for r in s.rows if r.leaf) == s.total_params
    assert [r.name for r in s.rows] == [n for n, _ in model.named_modules() if n]
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert s.size_mb == pytest.approx((s.total_params * 4 + buffers) / 2**20)


def test_rows_have_shapes_types_and_per_module_flops():
    model = build({"hidden": {"linear": 8}, "act": "relu", "out": {"linear": 2}}, (4,))
    rows = {r.name: r for r in summary(model).rows}  # the model knows its own input shape
    assert rows["hidden"].type == "Linear" and rows["hidden"].output_shape == [1, 8]
    assert rows["hidden"].params == 4 * 8 + 8 and rows["hidden"].flops == 2 * 4 * 8
    assert rows["act"].flops == 0 and rows["out"].output_shape == [1, 2]


def test_dict_and_container_rows():
    model, shape = models()["heads (dict output)"]
    s = summary(model, shape)
    heads = next(r for r in s.rows if r.name == "2")
    assert heads.type == "Heads" and heads.output_shape == {"label": [1, 3], "box": [1, 4]}
    assert heads.params == 8 * 3 + 3 + 8 * 4 + 4 and not heads.leaf
    assert heads.flops == sum(r.flops for r in s.rows if r.name in ("2.label", "2.box")) > 0
    assert s.output_shape == {"label": [1, 3], "box": [1, 4]}
    assert "2.label (Linear)" in str(s) and "{label: (1, 3), box: (1, 4)}" in str(s)


def test_multi_input_models_with_tuple_outputs_via_example():
    model = TwoInputs()
    image, meta = torch.randn(2, 1, 5, 5), torch.randn(2, 3)
    s = summary(model, example=(image, meta))
    assert s.total_params == sum(p.numel() for p in model.parameters())
    assert s.flops == torch_flops(model, image, meta)
    assert s.output_shape == [[2, 1], [2, 4]]
    # the root's own parameter belongs to no row
    assert sum(r.params for r in s.rows if r.leaf) == s.total_params - 1
    by_dict = summary(model, example={"image": image, "meta": meta})
    assert by_dict.flops == s.flops and "image: (2, 1, 5, 5) float32" in by_dict.input


def test_frozen_parameters_are_counted_apart():
    model = build([{"linear": 8}, "relu", {"linear": 2}], (4,))
    for p in model[0].parameters():
        p.requires_grad_(False)
    s = summary(model)
    assert (s.frozen_params, s.trainable_params) == (40, 18)
    assert s.rows[0].frozen == 40 and "(40 frozen)" in str(s)


def test_summary_leaves_the_model_as_it_was():
    model = build([{"linear": 4}, "batchnorm1d", {"dropout": 0.5}], (3,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    summary(model)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks for m in model.modules())


def test_token_id_models_get_an_integer_example():
    s = summary(build_zoo("text_classifier", (6,), vocab_size=20, embed_dim=4, hidden_size=4))
    assert "int64" in s.input and s.output_shape == [1, 2]


def test_rich_table_and_dict():
    from rich.console import Console
    from rich.table import Table

    s = summary(build_zoo("mlp", (10,), hidden=[16], num_classes=3))
    assert isinstance(s.to_table(), Table) and isinstance(s.__rich__(), Table)
    console = Console(record=True, width=120)
    console.print(s)
    text = console.export_text()
    assert "linear1 (Linear)" in text and "Total params: 227" in text
    data = json.loads(json.dumps(s.to_dict()))
    assert data["total_params"] == 227 and data["rows"][0]["name"] == "linear1"


def test_errors_say_what_is_missing():
    with pytest.raises(ModelSpecError, match="input_shape"):
        summary(nn.Linear(3, 2))
    with pytest.raises(ModelSpecError, match=r"forward failed on \(1, 5\) float32"):
        summary(nn.Linear(3, 2), (5,))
