"""Any model saved, nothing lost: nw.save describes the model (a spec, torch's containers nested,
a torchvision builder, a class and the arguments read back from it), nw.load rebuilds the very
same model; where a model cannot be described, its weights are still written and a warning says
how to load them."""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict

import pytest
import roundtrip_models as rm
import torch
import torch.nn as nn

import netwright as nw
from netwright.errors import ModelSpecError, UntrustedCodeError
from netwright.models import ZOO, build_zoo

ZOO_INPUTS = {
    "simplenet": ((20,), {"out_features": 3, "softmax": True}),
    "mlp": ((1, 6, 6), {"hidden": [16, 8], "num_classes": 4, "dropout": 0.1, "batchnorm": True}),
    "cnn": ((1, 12, 12), {"num_classes": 5, "channels": [4, 8], "hidden": 16}),
    "resnet": ((3, 16, 16), {"num_classes": 5, "stages": [1, 2], "width": 8}),
    "rnn": ((7, 3), {"num_classes": 2, "bidirectional": True}),
    "lstm": ((7, 3), {"outputs": 1, "num_layers": 2, "dropout": 0.1, "pool": "mean"}),
    "gru": ((7, 3), {"num_classes": 3, "pool": "max"}),
    "text_classifier": ((9,), {"vocab_size": 50, "num_classes": 2, "padding_idx": 0}),
    "text_cnn": ((9,), {"vocab_size": 50, "channels": 4, "kernel_sizes": [2, 3]}),
    "text_transformer": ((9,), {"vocab_size": 50, "d_model": 8, "nhead": 2, "num_layers": 1}),
    "audio_cnn": ((1, 2000), {"num_classes": 3, "n_mels": 16, "channels": [4], "spec_augment": False}),
    "m5": ((7000,), {"num_classes": 3, "channels": 4, "stride": 16}),
}


def _tree(model):
    return [(name, type(m)) for name, m in model.named_modules(remove_duplicate=False)]


def round_trip(model, x, tmp_path, **load_args):
    """Save ``model``, load it back, and check it is the same model: the same module tree
    (names, classes, repr), the same state_dict keys and values, the same output on ``x``."""
    model.eval()
    folder = nw.save(model, tmp_path / "saved")
    loaded = nw.load(folder, **load_args)
    assert _tree(loaded) == _tree(model)
    assert repr(loaded) == repr(model)
    ours, theirs = model.state_dict(), loaded.state_dict()
    assert list(theirs) == list(ours)
    assert all(theirs[k].dtype == ours[k].dtype and torch.equal(theirs[k], ours[k]) for k in ours)
    if x is not None:
        with torch.no_grad():
            assert torch.equal(loaded(x), model(x))
    return folder, loaded


def _spec(folder):
    return json.loads((folder / "model.json").read_text())["model"]["spec"]


def test_every_zoo_model_is_covered():
    assert set(ZOO_INPUTS) == set(ZOO)


@pytest.mark.parametrize("name", sorted(ZOO_INPUTS))
def test_every_zoo_model_round_trips(name, tmp_path):
    shape, args = ZOO_INPUTS[name]
    torch.manual_seed(0)
    model = build_zoo(name, shape, **args)
    x = torch.randint(1, 50, (4, *shape)) if name.startswith("text_") else torch.randn(4, *shape)
    folder, _ = round_trip(model, x, tmp_path)
    assert _spec(folder)["zoo"] == name


def test_the_articles_simplenet_round_trips_by_its_import_path(tmp_path):
    torch.manual_seed(0)
    model = rm.SimpleNet()
    folder = nw.save(model, tmp_path / "untrusted")
    assert _spec(folder) == {"class": "roundtrip_models:SimpleNet", "args": {}}
    # Its module is the user's own code: importing it needs the opt-in.
    with pytest.raises(UntrustedCodeError, match=r"roundtrip_models:SimpleNet.*trust_code=True"):
        nw.load(folder)
    _, loaded = round_trip(model, torch.rand(8, 20), tmp_path, trust_code=True)
    assert isinstance(loaded, rm.SimpleNet)


def test_torch_containers_nested_three_deep_round_trip(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(OrderedDict(
        encoder=nn.Sequential(
            nn.Sequential(nn.Linear(6, 8), nn.LeakyReLU(0.2)),
            nn.Sequential(OrderedDict(norm=nn.BatchNorm1d(8, momentum=0.3), drop=nn.Dropout(0.25))),
        ),
        head=nn.Sequential(nn.Linear(8, 3, bias=False), nn.LogSoftmax(dim=1)),
    ))
    model.train()(torch.randn(16, 6))  # running statistics move: they are state too
    folder, _ = round_trip(model, torch.randn(5, 6), tmp_path)
    spec = _spec(folder)
    assert list(spec) == ["encoder", "head"] and isinstance(spec["encoder"][1], dict)


def test_module_lists_and_dicts_nested_three_deep_round_trip(tmp_path):
    # torch's ModuleDict and ModuleList cannot be called: each Sequential inside is compared.
    torch.manual_seed(0)
    model = nn.ModuleDict({
        "towers": nn.ModuleList([
            nn.ModuleDict({"fc": nn.Sequential(nn.Linear(4, 4), nn.Tanh())}),
            nn.ModuleList([nn.Sequential(OrderedDict(conv=nn.Conv1d(2, 3, 3, padding=1)))]),
        ]),
        "rnn": nn.GRU(4, 5, batch_first=True, bidirectional=True),
    })
    folder, loaded = round_trip(model, None, tmp_path)
    spec = _spec(folder)
    assert set(spec) == {"module_dict"} and set(spec["module_dict"]["towers"]) == {"module_list"}
    x, seq = torch.randn(2, 4), torch.randn(2, 2, 6)
    with torch.no_grad():
        assert torch.equal(loaded["towers"][0]["fc"](x), model["towers"][0]["fc"](x))
        assert torch.equal(loaded["towers"][1][0](seq), model["towers"][1][0](seq))
        assert torch.equal(loaded["rnn"](torch.randn(2, 3, 4).fill_(0.5))[0],
                           model["rnn"](torch.randn(2, 3, 4).fill_(0.5))[0])


def test_a_class_with_keyword_only_arguments_round_trips(tmp_path):
    torch.manual_seed(0)
    model = rm.Towers(6, width=5, towers=3, dropout=0.1, names=("left", "right"))
    folder, loaded = round_trip(model, torch.randn(4, 6), tmp_path, trust_code=True)
    assert _spec(folder) == {"class": "roundtrip_models:Towers", "args": {
        "in_features": 6, "width": 5, "towers": 3, "dropout": 0.1, "names": ["left", "right"]}}
    assert list(loaded.blocks) == ["left", "right"] and len(loaded.blocks["left"]) == 3


def test_a_class_inside_torch_containers_round_trips(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(rm.Towers(4, width=2), nn.Softmax(dim=1))
    folder, _ = round_trip(model, torch.randn(3, 4), tmp_path, trust_code=True)
    assert _spec(folder)[0]["class"] == "roundtrip_models:Towers"


def test_a_torchvision_classification_model_round_trips_without_trust_code(tmp_path):
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    model = tvm.resnet18(num_classes=3)
    folder, loaded = round_trip(model, torch.randn(2, 3, 32, 32), tmp_path)
    assert _spec(folder) == {"torchvision": "resnet18", "args": {"num_classes": 3}}
    assert type(loaded) is type(model)


def test_a_torchvision_model_built_with_other_arguments_round_trips(tmp_path):
    tvm = pytest.importorskip("torchvision.models")
    torch.manual_seed(0)
    model = tvm.mobilenet_v3_small(num_classes=4, dropout=0.5)
    folder, _ = round_trip(model, torch.randn(2, 3, 32, 32), tmp_path)
    assert _spec(folder) == {"torchvision": "mobilenet_v3_small",
                             "args": {"num_classes": 4, "dropout": 0.5}}


def test_a_torchvision_spec_never_downloads_weights(tmp_path):
    pytest.importorskip("torchvision.models")
    with pytest.raises(ModelSpecError, match=r"without weights.*never downloads"):
        nw.build({"torchvision": "resnet18", "args": {"weights": "DEFAULT"}})
    with pytest.raises(ModelSpecError, match=r"not a torchvision classification model.*'resnet18'"):
        nw.build({"torchvision": "resnet81"})
    with pytest.raises(ModelSpecError, match=r"not a torchvision classification model"):
        nw.build({"torchvision": "fasterrcnn_resnet50_fpn"})  # its builder downloads a backbone


def test_a_torchvision_spec_from_a_file_is_counted_before_it_is_made(tmp_path):
    # model.json may come from someone else: a huge head on a tiny weights file is refused from
    # the meta device's count, before the model is allocated.
    pytest.importorskip("torchvision.models")
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({
        "format": "netwright.model/1", "scaled": None,
        "model": {"spec": {"torchvision": "resnet18", "args": {"num_classes": 10**7}},
                  "input_shape": None, "input_dtype": None}}))
    from safetensors.torch import save_file

    save_file({"fc.bias": torch.zeros(3)}, str(folder / "weights.safetensors"))
    with pytest.raises(nw.CheckpointError, match=r"describes a model of 5,141,186,132 values.*refuses"):
        nw.load(folder)


def test_a_double_precision_model_keeps_its_dtype(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1)).double()
    folder, loaded = round_trip(model, torch.randn(2, 3, dtype=torch.float64), tmp_path)
    assert json.loads((folder / "model.json").read_text())["model"]["dtype"] == "float64"


def test_saving_draws_no_random_numbers():
    # Describing a model builds it again (on the meta device): the caller's random stream is
    # the same as if it had not saved.
    from netwright.saving import describe_model

    models = [rm.Towers(3, width=2), nn.Sequential(nn.Linear(2, 2), nn.ModuleList([nn.PReLU()]))]
    torch.manual_seed(0)
    expected = torch.rand(3)
    for model in models:
        torch.manual_seed(0)
        describe_model(model)
        assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("case", ["needs_arguments", "changes_its_argument", "takes_kwargs",
                                  "tied_weights", "torchvision_new_head"])
def test_a_model_that_cannot_be_described_is_saved_with_a_warning(case, tmp_path):
    torch.manual_seed(0)

    def make():
        if case == "needs_arguments":
            return rm.NeedsArguments(7)
        if case == "changes_its_argument":
            return rm.ChangesItsArgument(4)
        if case == "takes_kwargs":
            return rm.TakesKwargs(width=3)
        if case == "tied_weights":
            net = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 4))
            net[1].weight = net[0].weight  # a rebuilt Sequential would have two weights
            return net
        tvm = pytest.importorskip("torchvision.models")
        net = tvm.resnet18(num_classes=3)
        net.fc = nn.Sequential(nn.Dropout(0.2), nn.Linear(512, 3))
        return net

    model = make().eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        folder = nw.save(model, tmp_path / "m")  # nothing raises
    saved = json.loads((folder / "model.json").read_text())
    assert saved["model"] is None and saved["not_rebuildable"]
    message = "\n".join(str(w.message) for w in caught)
    assert "the weights are saved" in message and "model=" in message
    assert saved["not_rebuildable"] in message
    assert (folder / "weights.safetensors").is_file()
    with pytest.raises(nw.CheckpointError, match=r"could not be described.*model="):
        nw.load(folder)
    torch.manual_seed(1)
    fresh = make()
    if case == "tied_weights":
        fresh[1].weight = fresh[0].weight
    loaded = nw.load(folder, model=fresh)
    x = torch.randn(2, 3, 32, 32) if case == "torchvision_new_head" else torch.randn(
        2, {"needs_arguments": 5, "tied_weights": 4}.get(case, 3))
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))


def test_the_warning_names_what_to_give(tmp_path):
    with pytest.warns(UserWarning, match=r"keeps no attribute named 'hidden'.*init_args=\{'hidden'"):
        nw.save(rm.NeedsArguments(7), tmp_path / "a")
    with pytest.warns(UserWarning, match=r"model.width is 5; rebuilt, 6"):
        nw.save(rm.ChangesItsArgument(4), tmp_path / "b")


def test_init_args_describe_what_cannot_be_read_back(tmp_path):
    torch.manual_seed(0)
    model = rm.NeedsArguments(7)
    folder = nw.save(model, tmp_path / "m", init_args={"hidden": 7})
    assert _spec(folder) == {"class": "roundtrip_models:NeedsArguments", "args": {"hidden": 7}}
    loaded = nw.load(folder, trust_code=True)
    x = torch.randn(3, 5)
    assert torch.equal(loaded(x), model(x))
    # Arguments that build another model are the caller's to fix: nothing is written.
    with pytest.raises(ModelSpecError, match=r"another shape.*\(7, 5\).*\(8, 5\)"):
        nw.save(model, tmp_path / "wrong", init_args={"hidden": 8})
    assert not (tmp_path / "wrong" / "weights.safetensors").exists()
    with pytest.raises(ModelSpecError, match=r"nn.Sequential.*leave init_args out"):
        nw.save(nn.Sequential(nn.Linear(2, 2)), tmp_path / "seq", init_args={"x": 1})


def test_a_module_list_cannot_take_an_input():
    with pytest.raises(ModelSpecError, match=r"'module_list' holds modules without a forward.*'repeat'"):
        nw.build({"module_list": [{"linear": 3}]}, input_shape=(4,))
    model = nw.build({"module_list": [{"class": "torch.nn:Linear", "args": {"in_features": 2,
                                                                           "out_features": 3}}]})
    assert type(model) is nn.ModuleList and model[0].out_features == 3


def test_a_model_without_parameters_round_trips(tmp_path):
    import netwright as nw
    import torch
    from torch import nn

    model = nn.Sequential(nn.MaxPool2d(2), nn.Flatten())
    nw.save(model, tmp_path / "m")
    loaded = nw.load(tmp_path / "m")
    x = torch.randn(2, 1, 4, 4)
    assert torch.equal(loaded(x), model(x))
