"""The spec → nn.Module builder: containers, shape inference, round trips and errors."""

import json
from collections import OrderedDict

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.lazy import LazyModuleMixin

from netwright.errors import ModelSpecError
from netwright.models import build, rebuild, spec_of
from netwright.models.layers import LAYERS, GRU, LSTM, Branches, Heads, Repeat, Residual


def no_lazy(model: nn.Module) -> bool:
    return not any(isinstance(m, LazyModuleMixin) for m in model.modules())


# --- containers ---------------------------------------------------------------------------------


def test_list_is_sequential_and_sizes_are_inferred():
    model = build([{"linear": 16}, "relu", {"linear": 3}], input_shape=(20,))
    assert type(model) is nn.Sequential and no_lazy(model)
    assert (model[0].in_features, model[0].out_features) == (20, 16)
    assert (model[2].in_features, model[2].out_features) == (16, 3)
    assert isinstance(model[1], nn.ReLU)
    assert model(torch.randn(5, 20)).shape == (5, 3)


def test_mapping_is_sequential_with_the_users_names():
    model = build({"linear1": {"linear": 13}, "act": "relu", "output": {"linear": {"out_features": 2, "bias": False}}},
                  input_shape=(10,))
    assert type(model) is nn.Sequential and list(model._modules) == ["linear1", "act", "output"]
    assert isinstance(model.linear1, nn.Linear) and model.output.bias is None
    assert "(linear1): Linear(in_features=10, out_features=13, bias=True)" in str(model)


def test_repeat_is_a_module_list_of_independent_blocks_applied_in_order():
    model = build({"repeat": {"times": 3, "block": [{"linear": 8}, "tanh"]}}, input_shape=(8,))
    assert isinstance(model, nn.ModuleList) and isinstance(model, Repeat) and len(model) == 3
    weights = {model[i][0].weight.data_ptr() for i in range(3)}
    assert len(weights) == 3  # built three times, not one block shared
    assert not torch.equal(model[0][0].weight, model[1][0].weight)
    x = torch.randn(4, 8)
    assert torch.equal(model(x), model[2](model[1](model[0](x))))


def test_repeat_chains_shapes_from_block_to_block():
    model = build({"repeat": {"times": 2, "block": [{"linear": 6}, "relu"]}}, input_shape=(4,))
    assert (model[0][0].in_features, model[1][0].in_features) == (4, 6)


@pytest.mark.parametrize("merge, dim, shape", [("concat", 1, (3, 7)), ("sum", 1, (3, 5)), ("stack", 1, (3, 2, 5))])
def test_branches_get_the_same_input_and_merge(merge, dim, shape):
    spec = {"branches": {"a": {"linear": 5}, "b": [{"linear": 2 if merge == "concat" else 5}, "relu"]}, "merge": merge, "dim": dim}
    model = build(spec, input_shape=(4,))
    assert isinstance(model, nn.ModuleDict) and isinstance(model, Branches) and list(model) == ["a", "b"]
    x = torch.randn(3, 4)
    out = model(x)
    assert out.shape == shape
    if merge == "sum":
        assert torch.allclose(out, model["a"](x) + model["b"](x))


def test_heads_return_a_dict_of_outputs():
    model = build([{"linear": 8}, "relu", {"heads": {"label": {"linear": 3}, "value": [{"linear": 1}, "sigmoid"]}}],
                  input_shape=(4,))
    heads = model[2]
    assert isinstance(heads, nn.ModuleDict) and isinstance(heads, Heads)
    assert heads["label"].in_features == 8
    out = model(torch.randn(6, 4))
    assert set(out) == {"label", "value"} and out["label"].shape == (6, 3) and out["value"].shape == (6, 1)


def test_residual_adds_the_input():
    model = build({"residual": [{"linear": 4}, "relu", {"linear": 4}]}, input_shape=(4,))
    assert isinstance(model, Residual)
    with torch.no_grad():
        model.block[2].weight.zero_()
        model.block[2].bias.zero_()
    x = torch.randn(3, 4)
    assert torch.equal(model(x), x)


def test_a_bare_layer_spec_builds_that_layer():
    model = build({"linear": 3}, input_shape=(5,))
    assert type(model) is nn.Linear and model.in_features == 5


# --- shape inference and layers -----------------------------------------------------------------


def test_conv_stack_infers_channels_features_and_flatten_size():
    model = build([{"conv2d": [8, 3]}, "batchnorm2d", "relu", {"maxpool2d": 2}, "flatten", {"linear": 10}],
                  input_shape=(1, 12, 12))
    assert model[0].in_channels == 1 and model[1].num_features == 8
    assert model[5].in_features == 8 * 5 * 5
    assert no_lazy(model) and model(torch.randn(2, 1, 12, 12)).shape == (2, 10)


def test_build_leaves_running_statistics_and_modes_as_torch_makes_them():
    model = build([{"linear": 4}, "batchnorm1d", {"dropout": 0.5}], input_shape=(3,))
    bn = model[1]
    assert model.training and bn.training and model[2].training
    assert int(bn.num_batches_tracked) == 0 and torch.equal(bn.running_mean, torch.zeros(4))


def test_same_seed_same_weights():
    spec = [{"conv1d": [4, 3]}, "flatten", {"linear": 2}]
    torch.manual_seed(0)
    a = build(spec, (2, 10))
    torch.manual_seed(0)
    b = build(spec, (2, 10))
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


# One small spec per layer name: every registered name builds, runs and leaves no lazy module.
LAYER_CASES = {
    "linear": ([{"linear": 3}], (4,)),
    "conv1d": ([{"conv1d": [3, 2]}], (2, 6)),
    "conv2d": ([{"conv2d": {"out_channels": 3, "kernel_size": 3, "padding": "same"}}], (2, 5, 5)),
    "maxpool1d": ([{"maxpool1d": 2}], (2, 6)),
    "maxpool2d": ([{"maxpool2d": 2}], (2, 6, 6)),
    "avgpool1d": ([{"avgpool1d": 2}], (2, 6)),
    "avgpool2d": ([{"avgpool2d": 2}], (2, 6, 6)),
    "adaptive_avgpool1d": ([{"adaptive_avgpool1d": 1}], (2, 6)),
    "adaptive_avgpool2d": ([{"adaptive_avgpool2d": [1, 1]}], (2, 6, 6)),
    "batchnorm1d": (["batchnorm1d"], (4,)),
    "batchnorm2d": (["batchnorm2d"], (2, 3, 3)),
    "layernorm": (["layernorm"], (3, 4)),
    "dropout": ([{"dropout": 0.1}], (4,)),
    "flatten": (["flatten"], (2, 3)),
    "unflatten": ([{"unflatten": [1, [2, 3]]}], (6,)),
    "reshape": ([{"reshape": [2, 3]}], (6,)),
    "embedding": ([{"embedding": [10, 4]}], (5,)),
    "rnn": ([{"rnn": 4}], (5, 3)),
    "lstm": ([{"lstm": 4}], (5, 3)),
    "gru": ([{"gru": 4}], (5, 3)),
    "identity": (["identity"], (4,)),
    "relu": (["relu"], (4,)),
    "leaky_relu": ([{"leaky_relu": 0.2}], (4,)),
    "gelu": ([{"gelu": "tanh"}], (4,)),
    "silu": (["silu"], (4,)),
    "sigmoid": (["sigmoid"], (4,)),
    "tanh": (["tanh"], (4,)),
    "softmax": (["softmax"], (4,)),
    "log_softmax": (["log_softmax"], (4,)),
    "mel_spectrogram": ([{"mel_spectrogram": 16}], (1, 1000)),
    "log_mel": ([{"log_mel": 16}], (1000,)),
    "mfcc": ([{"mfcc": 8}], (1, 1000)),
    "amplitude_to_db": (["amplitude_to_db"], (1, 8, 5)),
    "spec_augment": (["spec_augment"], (8, 5)),
}


def test_every_layer_name_has_a_case():
    assert set(LAYER_CASES) == set(LAYERS)


@pytest.mark.parametrize("name", sorted(LAYER_CASES))
def test_every_layer_builds_and_runs(name):
    spec, shape = LAYER_CASES[name]
    model = build(spec, input_shape=shape)
    assert no_lazy(model) and isinstance(model[0], LAYERS[name].cls)
    x = torch.randint(0, 10, (2, *shape)) if name == "embedding" else torch.randn(2, *shape)
    assert model(x).shape[0] == 2


def test_inferred_sizes_for_norms_and_recurrent_layers():
    model = build([{"conv1d": [6, 1]}, "batchnorm1d", {"flatten": {"start_dim": 2}}, "layernorm",
                   {"lstm": {"hidden_size": 5, "output": "sequence"}}, {"gru": 7}], input_shape=(3, 9))
    assert model[0].in_channels == 3 and model[1].num_features == 6
    assert model[3].normalized_shape == (9,) and model[4].input_size == 9 and model[5].input_size == 5


def test_softmax_defaults_to_the_class_dimension():
    model = build(["softmax"], input_shape=(3,))
    assert model[0].dim == 1
    assert torch.allclose(model(torch.randn(4, 3)).sum(1), torch.ones(4))


@pytest.mark.parametrize("output, bidirectional, shape", [
    ("last", False, (2, 8)), ("mean", False, (2, 8)), ("max", True, (2, 16)),
    ("sequence", True, (2, 5, 16)), ("last", True, (2, 16)),
])
def test_recurrent_outputs(output, bidirectional, shape):
    model = build([{"lstm": {"hidden_size": 8, "output": output, "bidirectional": bidirectional}}], (5, 3))
    assert isinstance(model[0], LSTM) and model[0].batch_first
    assert model(torch.randn(2, 5, 3)).shape == shape
    assert f"output={output!r}" in str(model)


def test_recurrent_last_is_the_final_step_and_state_dict_is_torchs():
    model = build([{"gru": {"hidden_size": 6}}], (5, 3))[0]
    plain = nn.GRU(3, 6, batch_first=True)
    plain.load_state_dict(model.state_dict())  # same keys: weights of a hand-written GRU load
    x = torch.randn(2, 5, 3)
    seq, _ = plain(x)
    assert isinstance(model, GRU) and torch.allclose(model(x), seq[:, -1])
    bi = build([{"lstm": {"hidden_size": 4, "bidirectional": True}}], (5, 3))[0]
    seq, (h_n, _) = nn.LSTM.forward(bi, x)
    # the backward direction's final state is its output at t=0, not at t=-1
    assert torch.allclose(bi(x), torch.cat([seq[:, -1, :4], seq[:, 0, 4:]], dim=1))


def test_embedding_first_means_int64_token_ids():
    model = build([{"embedding": [50, 8]}, {"lstm": 16}, {"linear": 2}], input_shape=(7,))
    assert model[1].input_size == 8 and model[2].in_features == 16
    assert spec_of(model)["input_dtype"] == "int64"
    assert model(torch.randint(0, 50, (3, 7))).shape == (3, 2)


def test_class_and_zoo_specs_chain_with_layers():
    model = build({"features": {"class": "torch.nn:Linear", "args": {"in_features": 6, "out_features": 9}},
                   "body": {"zoo": "mlp", "hidden": [5], "outputs": 4},
                   "head": {"linear": 2}}, input_shape=(6,))
    assert type(model.features) is nn.Linear and model.body.linear1.in_features == 9
    assert model.head.in_features == 4


def test_builds_without_input_shape_when_every_size_is_given():
    model = build([{"linear": {"in_features": 4, "out_features": 3}}, "relu"])
    assert model[0].in_features == 4 and spec_of(model)["input_shape"] is None


# --- all four containers: train, then rebuild from JSON --------------------------------------------


MIXED = {
    "trunk": [{"linear": 32}, "relu"],
    "blocks": {"repeat": {"times": 2, "block": {"residual": [{"linear": 32}, "layernorm", "gelu"]}}},
    "mix": {"branches": {"wide": {"linear": 16}, "deep": [{"linear": 8}, "tanh"]}, "merge": "concat"},
    "norm": "batchnorm1d",
    "out": {"heads": {"label": {"linear": 3}, "value": [{"linear": 1}]}},
}


def test_mixed_spec_trains_and_round_trips_through_json():
    torch.manual_seed(0)
    model = build(MIXED, input_shape=(20,))
    assert type(model) is nn.Sequential and list(model._modules) == ["trunk", "blocks", "mix", "norm", "out"]
    assert type(model.trunk) is nn.Sequential and isinstance(model.blocks, nn.ModuleList)
    assert isinstance(model.mix, nn.ModuleDict) and isinstance(model.out, nn.ModuleDict)
    assert model.norm.num_features == 24 and model.out["label"].in_features == 24 and no_lazy(model)

    X = torch.randn(64, 20)
    y_cls, y_reg = X[:, :3].argmax(1), X[:, :1]
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        out = model(X)
        loss = nn.functional.cross_entropy(out["label"], y_cls) + nn.functional.mse_loss(out["value"], y_reg)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]

    stored = json.dumps({"spec": MIXED, "input_shape": [20]})
    desc = json.loads(stored)
    again = build(desc["spec"], desc["input_shape"])
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    x = torch.randn(5, 20)
    a, b = model(x), again(x)
    assert torch.equal(a["label"], b["label"]) and torch.equal(a["value"], b["value"])
    assert str(again) == str(model)

    desc = spec_of(model)
    assert {k: desc[k] for k in ("spec", "input_shape", "input_dtype")} == {
        "spec": MIXED, "input_shape": [20], "input_dtype": None}
    # every inferred size, by the path of its layer (each repetition of a block has its own)
    assert desc["sizes"]["layers"]["model.blocks[0].block[0]"] == {"in_features": 32}
    assert desc["sizes"]["layers"]["model.blocks[1].block[1]"] == {"normalized_shape": 32}
    third = rebuild(json.loads(json.dumps(spec_of(model))))
    third.load_state_dict(model.state_dict())
    assert torch.equal(third.eval()(x)["label"], a["label"])


# --- errors ---------------------------------------------------------------------------------------


ERRORS = [
    # (spec, input_shape, kwargs, fragments the message must contain)
    (["relu", "rleu"], (4,), {}, ["model[1]", "unknown layer 'rleu'", "Did you mean 'relu'?", "linear, conv1d"]),
    ({"linaer": {"out_features": 3}}, (4,), {}, ["unknown layer 'linaer'", "Did you mean 'linear'?"]),
    ([{"linear": {"out_feature": 3}}], (4,), {},
     ["model[0] 'linear'", "no argument 'out_feature'", "Did you mean 'out_features'?", "in_features, out_features, bias"]),
    ({"hidden": {"linear": {"in_features": 10, "out_features": 3}}}, (20,), {},
     ["model.hidden 'linear'", "in_features=10", "(N, 20)", "set in_features=20"]),
    ([{"conv2d": [8, 3]}, {"linear": 10}], (1, 8, 8), {},
     ["model[1] 'linear'", "(N, F)", "(N, 8, 6, 6)", "add 'flatten' before it"]),
    ([{"conv2d": [8, 3]}], (784,), {}, ["model[0] 'conv2d'", "(N, C, H, W)", "(N, 784)", "{'reshape': [1, 28, 28]}"]),
    ([{"lstm": 8}], (20,), {}, ["model[0] 'lstm'", "(N, T, F)", "(N, 20)"]),
    (["batchnorm1d"], (3, 4, 4), {}, ["'batchnorm1d'", "(N, 3, 4, 4)", "use 'batchnorm2d'"]),
    ({"block": {"residual": [{"linear": 5}]}}, (20,), {},
     ["model.block 'residual'", "(N, 20)", "(N, 5)", "20 features"]),
    ({"branches": {"a": {"linear": 2}, "b": {"reshape": [4, 5]}}}, (20,), {},
     ["'branches'", "'a': (N, 2)", "'b': (N, 4, 5)"]),
    ([{"heads": {"a": {"linear": 2}}}, "relu"], (4,), {}, ["model[1] follows model[0]", "dict", "'heads' the last"]),
    ([{"heads": {"a": {"linear": {"in_features": 4, "out_features": 2}}}}, "relu"], None, {}, ["model[1]", "'heads' the last"]),
    ([{"linear": 3}], None, {}, ["model[0] 'linear' needs in_features", "input_shape"]),
    ([{"conv2d": 3}], (1, 8, 8), {}, ["'conv2d' needs kernel_size", "[out_channels, kernel_size]"]),
    ([{"maxpool2d": 16}], (1, 8, 8), {}, ["model[0] 'maxpool2d'", "(N, 1, 8, 8)"]),
    ([{"embedding": [10, 4]}, {"embedding": [10, 4]}], (5,), {}, ["model[1] 'embedding'", "integer token ids", "(N, 5, 4)"]),
    ([{"linear": 3}], (5,), {"input_dtype": "int64"}, ["'linear' expects floats", "int64"]),
    ([{"lstm": {"hidden_size": 4, "output": "first"}}], (5, 3), {}, ["'lstm'", "'last', 'mean', 'max', 'sequence'", "'first'"]),
    ([{"class": "nosuch_pkg.models:Net"}], (4,), {}, ["cannot import module 'nosuch_pkg.models'"]),
    ([{"class": "json:dumps"}], (4,), {}, ["expected an nn.Module class", "'json:dumps'"]),
    ([{"class": "torch.nn.Linear"}], (4,), {}, ["expected 'package.module:ClassName'"]),
    ([{"class": "torch.nn:Linear", "args": {"in_features": 4}}], (4,), {}, ["'torch.nn:Linear' cannot be made", "out_features"]),
    ([{"zoo": "cnnn"}], (1, 28, 28), {}, ["unknown zoo model 'cnnn'", "Did you mean 'cnn'?"]),
    ([{"zoo": "cnn", "num_clases": 3}], (1, 28, 28), {}, ["zoo 'cnn' has no argument 'num_clases'", "Did you mean 'num_classes'?"]),
    ([nn.ReLU()], (4,), {}, ["JSON-serialisable", "ReLU"]),
    ({"a.b": "relu"}, (4,), {}, ["'a.b'", "without '.'"]),
    ({"repeat": {"times": 0, "block": "relu"}}, (4,), {}, ["'repeat'", "an integer from 1 to 10,000", "0"]),
    ({"repeat": {"block": "relu"}}, (4,), {}, ["'repeat'", "{'times': N, 'block': spec}"]),
    ({"branches": {"a": "relu"}, "merge": "max"}, (4,), {}, ["'branches'", "'concat', 'sum', 'stack'"]),
    ([{"conv2d": [8, 3, 1]}], (1, 8, 8), {}, ["main arguments out_channels, kernel_size", "3 values"]),
    (["relu", 5], (4,), {}, ["model[1]", "received 5"]),
    ([{"linear": 3}], (0,), {}, ["input_shape", "(0,)"]),
]


@pytest.mark.parametrize("spec, shape, kwargs, fragments", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_bad_specs_raise_model_spec_errors_that_say_where_and_how_to_fix(spec, shape, kwargs, fragments):
    with pytest.raises(ModelSpecError) as info:
        build(spec, shape, **kwargs)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert isinstance(info.value, ValueError)  # callers catching ValueError still catch it


def test_user_names_that_look_like_layers_still_name_blocks():
    model = build({"lstm1": {"lstm": 4}, "head": {"linear": 2}}, (5, 3))
    assert list(model._modules) == ["lstm1", "head"]
    assert isinstance(OrderedDict(model.named_children())["lstm1"], LSTM)
