"""nw.save / nw.load: model.json + safetensors, for built, zoo and plain torch models."""

import json
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn

import netwright as nw
from netwright.models import ZOO, build_zoo
from netwright.models.scaling import Scaled

ZOO_INPUTS = {
    "simplenet": ((20,), {"out_features": 3}),
    "mlp": ((12,), {"hidden": [16], "num_classes": 4}),
    "cnn": ((1, 28, 28), {"num_classes": 10}),
    "resnet": ((3, 32, 32), {"num_classes": 5}),
    "rnn": ((7, 3), {"num_classes": 2}),
    "lstm": ((7, 3), {"outputs": 1}),
    "gru": ((7, 3), {"num_classes": 3}),
    "text_classifier": ((9,), {"vocab_size": 50, "num_classes": 2}),
    "text_cnn": ((9,), {"vocab_size": 50, "channels": 4}),
    "text_transformer": ((9,), {"vocab_size": 50, "d_model": 8, "nhead": 2}),
    "audio_cnn": ((1, 4000), {"num_classes": 3, "channels": [4, 8]}),
    "m5": ((1, 7000), {"channels": 4}),
}


def _example(name, shape):
    if name.startswith("text_"):
        return torch.randint(0, 50, (4, *shape))
    return torch.randn(4, *shape)


def test_every_zoo_model_is_covered():
    assert set(ZOO_INPUTS) == set(ZOO)


@pytest.mark.parametrize("name", sorted(ZOO_INPUTS))
def test_save_load_round_trip_for_every_zoo_model(name, tmp_path):
    shape, args = ZOO_INPUTS[name]
    torch.manual_seed(0)
    model = build_zoo(name, shape, **args).eval()
    x = _example(name, shape)
    folder = nw.save(model, tmp_path / name)
    loaded = nw.load(folder)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert json.loads((folder / "model.json").read_text())["model"]["spec"]["zoo"] == name


def test_scaled_wrapper_and_its_statistics_round_trip(tmp_path):
    net = nw.build([{"linear": 2}], (3,))
    model = Scaled(net, (3,), (2,))
    model.set_stats(x=(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 2, 2])),
                    y=(torch.tensor([10.0, 20]), torch.tensor([5.0, 5])))
    loaded = nw.load(nw.save(model, tmp_path / "m"))
    x = torch.randn(5, 3)
    assert torch.equal(loaded(x), model(x))
    assert torch.equal(loaded.y_mean, torch.tensor([10.0, 20]))


PLAIN_TORCH = {
    "sequential": lambda: nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)),
    "named_cnn": lambda: nn.Sequential(OrderedDict(
        conv=nn.Conv2d(1, 4, 3, padding=1), act=nn.ReLU(), pool=nn.MaxPool2d(2), flat=nn.Flatten(),
        fc=nn.Linear(4 * 14 * 14, 10))),
    "nested_norms": lambda: nn.Sequential(
        nn.Linear(4, 4), nn.BatchNorm1d(4, momentum=0.2), nn.LayerNorm(4, elementwise_affine=False),
        nn.Dropout(0.3), nn.GELU(approximate="tanh"),
        nn.Sequential(nn.Linear(4, 2, bias=False), nn.LogSoftmax(dim=1))),
    "linear": lambda: nn.Linear(3, 2),
}
INPUTS = {"named_cnn": (2, 1, 28, 28), "nested_norms": (5, 4), "linear": (2, 3), "sequential": (2, 8)}


@pytest.mark.parametrize("name", list(PLAIN_TORCH))
def test_plain_torch_models_save_without_arguments(name, tmp_path):
    # nn.Sequential of torch's own layers is the most common model in PyTorch code: it saves as
    # is, and loads without trust_code (only torch.nn classes are named).
    torch.manual_seed(0)
    model = PLAIN_TORCH[name]().eval()
    folder = nw.save(model, tmp_path / name)
    loaded = nw.load(folder)
    assert repr(loaded) == repr(model)  # same layers, same arguments, same order
    x = torch.randn(INPUTS[name])
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_a_named_spec_keeps_its_layer_order_through_save(tmp_path):
    # model.json used to be written key-sorted: {'hidden', 'act', 'out'} came back as
    # act -> hidden -> out, a different network.
    model = nw.build({"hidden": {"linear": 13}, "act": "relu", "out": {"linear": 3}}, (20,))
    loaded = nw.load(nw.save(model, tmp_path / "m"))
    assert list(loaded._modules) == ["hidden", "act", "out"]
    x = torch.randn(4, 20)
    assert torch.equal(loaded(x), model(x))


@pytest.mark.parametrize("case", ["child_named_like_a_layer", "layer_with_children", "class_in_main",
                                  "needs_arguments"])
def test_a_model_that_cannot_be_described_still_has_its_weights_saved(tmp_path, case):
    # Nothing is lost: the weights are written, model.json says why it cannot rebuild the model,
    # a warning says how to load them, and nw.load(path, model=...) does.
    torch.manual_seed(0)

    class Local(nn.Module):
        def __init__(self, width):
            super().__init__()
            self.fc = nn.Linear(3, width)

        def forward(self, x):
            return self.fc(x)

    Local.__module__ = "__main__" if case == "class_in_main" else __name__
    make = {
        "child_named_like_a_layer": lambda: nn.Sequential(OrderedDict(linear=nn.Linear(3, 2))),
        "layer_with_children": lambda: nn.Sequential(nn.TransformerEncoderLayer(
            d_model=3, nhead=1, dim_feedforward=4, batch_first=True)),
        "class_in_main": lambda: Local(2),
        "needs_arguments": lambda: Local(2),  # Local() cannot be called without its width
    }[case]
    model = make().eval()
    with pytest.warns(UserWarning, match=r"the weights are saved") as caught:
        folder = nw.save(model, tmp_path / "m")
    why = json.loads((folder / "model.json").read_text())["not_rebuildable"]
    message = str(caught[0].message)
    assert why and why in message and "model=" in message
    with pytest.raises(nw.CheckpointError, match=r"could not be described when it was saved"):
        nw.load(folder)
    torch.manual_seed(1)
    loaded = nw.load(folder, model=make())
    x = torch.randn(2, 1, 3) if case == "layer_with_children" else torch.randn(2, 3)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_load_into_a_given_model_rewraps_the_standardisation(tmp_path):
    model = Scaled(nn.Linear(3, 2), (3,), (2,))
    model.set_stats(x=(torch.tensor([1.0, 2, 3]), torch.tensor([2.0, 2, 2])),
                    y=(torch.tensor([10.0, 20]), torch.tensor([3.0, 4])))
    folder = nw.save(model, tmp_path / "m")
    loaded = nw.load(folder, model=nn.Linear(3, 2))  # the bare network: wrapped as it was saved
    assert isinstance(loaded, Scaled) and torch.equal(loaded.y_mean, torch.tensor([10.0, 20]))
    x = torch.randn(4, 3)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_save_never_overwrites_and_load_explains_missing_pieces(tmp_path):
    model = nw.build([{"linear": 2}], (3,))
    nw.save(model, tmp_path / "m")
    before = (tmp_path / "m" / "weights.safetensors").read_bytes()
    with pytest.raises(nw.CheckpointError, match="does not overwrite"):
        nw.save(nw.build([{"linear": 2}], (3,)), tmp_path / "m")
    assert (tmp_path / "m" / "weights.safetensors").read_bytes() == before
    (tmp_path / "w").mkdir()
    with pytest.raises(nw.CheckpointError, match=r"has no model.json.*load_weights"):
        nw.load(tmp_path / "w")
    with pytest.raises(nw.CheckpointError, match="is not a folder"):
        nw.load(tmp_path / "nothing")


def test_a_checkpoint_of_another_architecture_is_a_clear_error(tmp_path):
    nw.save(nw.build([{"linear": 4}], (3,)), tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    meta["model"]["spec"] = [{"linear": 5}]
    (tmp_path / "m" / "model.json").write_text(json.dumps(meta))
    with pytest.raises(nw.CheckpointError, match=r"(?s)checkpoint.*\(4, 3\).*model.*\(5, 3\)"):
        nw.load(tmp_path / "m")
