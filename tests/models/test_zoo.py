"""The model zoo: every model builds, learns (has gradients) and rebuilds from its description."""

import json

import pytest
import torch
import torch.nn as nn
from torch.nn.modules.lazy import LazyModuleMixin

from netwright.errors import ModelSpecError
from netwright.models import ZOO, build, build_zoo, rebuild, spec_of
from netwright.models.zoo import BasicBlock, ResNet

# name → (input_shape, args, input maker)
CASES = {
    "simplenet": ((20,), {"out_features": 3}, lambda n: torch.rand(n, 20)),
    "mlp": ((1, 8, 8), {"hidden": [16, 8], "num_classes": 4, "dropout": 0.1, "batchnorm": True},
            lambda n: torch.randn(n, 1, 8, 8)),
    "cnn": ((1, 28, 28), {}, lambda n: torch.randn(n, 1, 28, 28)),
    "resnet": ((3, 32, 32), {"stages": [1, 1], "width": 8}, lambda n: torch.randn(n, 3, 32, 32)),
    "rnn": ((12, 3), {"outputs": 2, "hidden_size": 8}, lambda n: torch.randn(n, 12, 3)),
    "lstm": ((12, 3), {"num_classes": 4, "hidden_size": 8, "bidirectional": True, "pool": "mean"},
             lambda n: torch.randn(n, 12, 3)),
    "gru": ((12, 3), {"num_classes": 2, "hidden_size": 8, "num_layers": 2, "dropout": 0.1},
            lambda n: torch.randn(n, 12, 3)),
    "text_classifier": ((10,), {"vocab_size": 40, "num_classes": 3, "embed_dim": 8, "hidden_size": 8,
                                "padding_idx": 0, "dropout": 0.2}, lambda n: torch.randint(0, 40, (n, 10))),
    "text_cnn": ((10,), {"vocab_size": 40, "num_classes": 3, "embed_dim": 8, "channels": 4,
                         "kernel_sizes": [2, 3], "dropout": 0.2}, lambda n: torch.randint(0, 40, (n, 10))),
    "text_transformer": ((10,), {"vocab_size": 40, "num_classes": 3, "d_model": 8, "nhead": 2,
                                 "num_layers": 1, "dim_feedforward": 16},
                         lambda n: torch.randint(0, 40, (n, 10))),
    "audio_cnn": ((1, 4000), {"num_classes": 3, "n_mels": 16, "channels": [4, 8], "hop_length": 128},
                  lambda n: torch.randn(n, 1, 4000)),
    "m5": ((1, 7000), {"num_classes": 3, "channels": 4, "sample_rate": 8000},
           lambda n: torch.randn(n, 1, 7000)),
}


def test_zoo_lists_the_documented_models():
    assert set(ZOO) == set(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_zoo_model_builds_backpropagates_and_rebuilds_identically(name):
    shape, args, make_input = CASES[name]
    torch.manual_seed(0)
    model = build_zoo(name, shape, **args)
    assert isinstance(model, nn.Module)
    assert not any(isinstance(m, LazyModuleMixin) for m in model.modules())

    x = make_input(4)
    out = model(x)
    assert out.shape[0] == 4 and out.ndim == 2
    out.float().pow(2).mean().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)

    desc = spec_of(model)
    assert desc["spec"]["zoo"] == name
    again = rebuild(json.loads(json.dumps(desc)))  # what a run stores in model.json
    again.load_state_dict(model.state_dict())
    model.eval(), again.eval()
    assert torch.equal(model(x), again(x))
    assert str(again) == str(model)

    # the same model through the builder's own zoo form
    via_spec = build({"zoo": name, **args}, shape)
    assert str(via_spec) == str(model)
    assert spec_of(via_spec)["spec"] == {"zoo": name, **args}


def test_build_zoo_stores_every_default_so_rebuilds_do_not_depend_on_them():
    spec = spec_of(build_zoo("cnn", (1, 28, 28)))["spec"]
    assert spec == {"zoo": "cnn", "num_classes": 10, "channels": [32, 64], "kernel_size": 3, "hidden": 128,
                    "dropout": 0.25, "fc_dropout": 0.5, "batchnorm": False}


class ArticleSimpleNet(nn.Module):
    """The article's SimpleNet (as in tests/conftest.py), optionally without its final softmax."""

    def __init__(self, in_features=10, out_features=2, softmax=True):
        super().__init__()
        self.linear1 = nn.Linear(in_features, 13, bias=True)
        self.linear2 = nn.Linear(13, 8, bias=True)
        self.output = nn.Linear(8, out_features, bias=True)
        self.softmax = softmax

    def forward(self, x):
        z3 = self.output(torch.sigmoid(self.linear2(torch.relu(self.linear1(x)))))
        return torch.softmax(z3, dim=1) if self.softmax else z3


def test_simplenet_is_the_article_architecture_returning_logits():
    torch.manual_seed(0)
    ours = build_zoo("simplenet", (20,), out_features=3)
    reference = ArticleSimpleNet(20, 3, softmax=False)
    reference.load_state_dict(ours.state_dict())  # same parameter names: linear1, linear2, output
    x = torch.rand(8, 20)
    assert torch.allclose(ours(x), reference(x))
    assert not any(isinstance(m, nn.Softmax) for m in ours.modules())


def test_simplenet_softmax_reproduces_the_article_exactly():
    ours = build_zoo("simplenet", in_features=10, softmax=True)
    reference = ArticleSimpleNet()
    reference.load_state_dict(ours.state_dict())
    x = torch.rand(8, 10)
    assert torch.allclose(ours(x), reference(x)) and torch.allclose(ours(x).sum(1), torch.ones(8))


def test_cnn_is_designed_for_mnist_accuracy():
    model = build_zoo("cnn", (1, 28, 28), num_classes=10)
    assert (model.conv1.out_channels, model.conv2.out_channels, model.fc1.out_features) == (32, 64, 128)
    assert model.fc1.in_features == 64 * 7 * 7
    assert {type(m) for m in model.modules()} >= {nn.MaxPool2d, nn.Dropout, nn.ReLU}
    assert build_zoo("cnn", (3, 32, 32), channels=[16, 32, 64], batchnorm=True).fc1.in_features == 64 * 4 * 4


def test_cnn_stops_pooling_when_the_map_is_one_pixel():
    model = build_zoo("cnn", (1, 4, 4), channels=[4, 4, 4, 4])
    assert model(torch.randn(2, 1, 4, 4)).shape == (2, 10)


def test_resnet_works_on_mnist_and_cifar_shapes():
    for shape in [(1, 28, 28), (3, 32, 32)]:
        model = build_zoo("resnet", shape, num_classes=7, stages=[1, 1, 1], width=4)
        assert isinstance(model, ResNet) and model.stem[0].in_channels == shape[0]
        assert model.eval()(torch.randn(2, *shape)).shape == (2, 7)
    blocks = [m for m in model.modules() if isinstance(m, BasicBlock)]
    assert isinstance(blocks[0].shortcut, nn.Identity) and isinstance(blocks[1].shortcut, nn.Sequential)


def test_recurrent_heads_are_named_by_task():
    assert isinstance(build_zoo("lstm", (5, 2), num_classes=3).classifier, nn.Linear)
    assert build_zoo("gru", (5, 2), outputs=1).regressor.out_features == 1


def test_text_classifier_reads_token_ids():
    model = build_zoo("text_classifier", (10,), vocab_size=30)
    assert spec_of(model)["input_dtype"] == "int64" and model.embedding.num_embeddings == 30
    assert model(torch.randint(0, 30, (2, 10))).shape == (2, 2)


@pytest.mark.parametrize("name, shape, args, fragments", [
    ("cnnn", None, {}, ["unknown zoo model 'cnnn'", "Did you mean 'cnn'?", "simplenet, mlp"]),
    ("mlp", (4,), {"hiden": [4], "outputs": 1}, ["no argument 'hiden'", "Did you mean 'hidden'?"]),
    ("mlp", (4,), {}, ["exactly one of num_classes", "outputs"]),
    ("lstm", (4,), {"num_classes": 2, "outputs": 1}, ["exactly one of num_classes"]),
    ("lstm", (4,), {"num_classes": 2}, ["(T, F)", "(4,)"]),
    ("cnn", None, {}, ["cnn needs input_shape (C, H, W)"]),
    ("cnn", (1, 28, 28), {"kernel_size": 4}, ["kernel_size must be odd"]),
    ("resnet", (28, 28), {}, ["resnet needs images (C, H, W)"]),
    ("text_classifier", (10,), {}, ["zoo 'text_classifier' needs vocab_size"]),
    ("simplenet", None, {}, ["'linear' needs in_features", "input_shape"]),
    ("simplenet", (20,), {"in_features": 10}, ["in_features=10", "(N, 20)"]),
])
def test_zoo_errors(name, shape, args, fragments):
    with pytest.raises(ModelSpecError) as info:
        build_zoo(name, shape, **args)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {str(info.value)!r}"


def test_a_zoo_model_trains_with_fit(rule_data):
    from netwright.training.trainer import fit

    X, y = rule_data
    result = fit(build_zoo("simplenet", (20,), out_features=3), (X, y), loss="cross_entropy",
                 lr=1e-2, epochs=3, verbose=0)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
