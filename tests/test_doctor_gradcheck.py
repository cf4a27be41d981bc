"""NW509: deep=True checks custom layers and custom autograd Functions numerically: a wrong
backward is named with its layer, its Function and the worst tensor; healthy custom layers (and
surrogate gradients on purpose) say nothing; the model and the global RNG are left alone."""

import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import netwright as nw


def cls_data(n=64, features=20, classes=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, features, generator=g)
    y = torch.arange(n) % classes
    return X, y[torch.randperm(n, generator=g)]


def _doctor(model, X=None, y=None, deep=True):
    if X is None:
        X, y = cls_data()
    return nw.doctor(model, (X, y), loss="cross_entropy", deep=deep)


def _nw509(report):
    return [f for f in report if f.code == "NW509"]


# --- custom autograd Functions --------------------------------------------------------------------


class SquareFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return g * x  # wrong: 2 * g * x


class GoodSquareFn(SquareFn):
    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved_tensors
        return 2 * g * x


class ScaleFn(torch.autograd.Function):
    """x * w, w a vector over the features; the gradient for w is wrong (not summed with x)."""

    @staticmethod
    def forward(ctx, x, w):
        ctx.save_for_backward(x, w)
        return x * w

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved_tensors
        return g * w, g.sum(0)  # wrong: (g * x).sum(0)


class GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return -g


class RoundSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return torch.round(x * 4) / 4

    @staticmethod
    def backward(ctx, g):
        return g


class Square(nn.Module):
    def __init__(self, fn=SquareFn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn.apply(x)


class WithSquare(nn.Module):
    def __init__(self, fn=SquareFn):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(20, 16)
        self.square = Square(fn)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.square(self.fc1(x)))


class TopLevelSquare(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(20, 16)
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(SquareFn.apply(self.fc1(x)))


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.linspace(0.5, 1.5, 16))

    def forward(self, x):
        return ScaleFn.apply(x, self.w)


class WithScale(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(20, 16)
        self.scale = Scale()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(torch.relu(self.scale(self.fc1(x))))


def test_wrong_backward_in_a_custom_layer_is_named():
    report = _doctor(WithSquare())
    found = _nw509(report)
    assert len(found) == 1, report
    f = found[0]
    assert f.severity == "error" and f.where == "square"
    assert "'square'" in f.message and "Square," in f.message and "SquareFn" in f.message
    assert "input 0" in f.message and "50%" in f.message
    assert "SquareFn.backward" in f.fix
    print(f.message)
    print(f.fix)


def test_not_without_deep():
    assert not _nw509(_doctor(WithSquare(), deep=False))


def test_wrong_backward_in_the_model_itself():
    found = _nw509(_doctor(TopLevelSquare()))
    assert len(found) == 1
    assert found[0].where == "model" and "the model" in found[0].message
    assert "SquareFn" in found[0].message


def test_wrong_parameter_gradient_names_the_parameter():
    found = _nw509(_doctor(WithScale()))
    assert len(found) == 1, found
    assert found[0].where == "scale" and "parameter 'w'" in found[0].message
    assert "ScaleFn" in found[0].message


def test_model_and_rng_unchanged():
    model = WithSquare()
    state = copy.deepcopy(model.state_dict())
    torch.manual_seed(123)
    rng = torch.get_rng_state()
    _doctor(model)
    assert torch.equal(torch.get_rng_state(), rng)
    assert model.training
    after = model.state_dict()
    assert all(torch.equal(state[k], after[k]) for k in state)


# --- healthy custom layers: no NW509 ---------------------------------------------------------------


class Residual(nn.Module):
    def __init__(self, d=16):
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)

    def forward(self, x):
        return self.norm(x + F.gelu(self.fc(x)))


class TorchOps(nn.Module):
    def forward(self, x):
        return torch.tanh(x) * x.sigmoid() + x.pow(2).mean(-1, keepdim=True)


class Drop(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return F.dropout(self.fc(x), 0.5, training=True) + nn.functional.dropout(x, 0.3, self.training)


class WithBatchNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)
        self.bn = nn.BatchNorm1d(16)

    def forward(self, x):
        return torch.relu(self.bn(self.fc(x)))


class ReluTwice(nn.Module):
    """ReLU on an input that already holds exact zeros: a kink, not a bug."""

    def forward(self, x):
        return torch.relu(x) * 2 + F.max_pool1d(x.unsqueeze(1), 2).repeat_interleave(2, -1).squeeze(1)


class Healthy(nn.Module):
    def __init__(self, middle):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(20, 16)
        self.middle = middle
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.middle(torch.relu(self.fc1(x))))


class LSTMWrap(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lstm = nn.LSTM(4, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        out, _ = self.lstm(x.view(x.shape[0], 5, 4))
        return self.fc(out[:, -1])


class Lookup(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 8)

    def forward(self, ids, mask):
        e = self.emb(ids) * mask.unsqueeze(-1)
        return e.masked_fill(mask.unsqueeze(-1) == 0, 0.0).mean(1)


class TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.look = Lookup()
        self.fc = nn.Linear(8, 3)

    def forward(self, ids):
        mask = (ids != 0).float()
        return self.fc(self.look(ids, mask))


class DictLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        return {"h": self.fc(x), "n": x.shape[0], "idx": x.argmax(-1)}


class WithDict(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(20, 16)
        self.d = DictLayer()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x):
        return self.fc2(self.d(self.fc1(x))["h"])


class Conv(nn.Module):
    """Images with large constant (zero) regions: tied maxima in max pooling."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        return self.fc(F.max_pool2d(torch.relu(self.conv(x)), 2).flatten(1))


class Float32Inside(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(16))

    def forward(self, x):
        return x @ torch.diag(self.w).float()


@pytest.mark.parametrize("middle", [Residual(), TorchOps(), Drop(), WithBatchNorm(), ReluTwice(),
                                    Square(GoodSquareFn), Float32Inside(),
                                    nn.Sequential(Residual(), nn.Dropout(0.5), Residual())],
                         ids=["residual", "torch-ops", "dropout", "batchnorm", "kinks",
                              "good-function", "float32-inside", "nested"])
def test_healthy_custom_layers_say_nothing(middle):
    report = _doctor(Healthy(middle))
    assert not _nw509(report), report


def test_healthy_models_with_special_inputs_say_nothing():
    X, y = cls_data()
    assert not _nw509(_doctor(LSTMWrap(), X, y))
    assert not _nw509(_doctor(WithDict(), X, y))
    ids = torch.randint(0, 10, (64, 7), generator=torch.Generator().manual_seed(1))
    ids[:, 5:] = 0
    assert not _nw509(_doctor(TokenModel(), ids, y))
    img = torch.zeros(64, 1, 8, 8)
    img[:, :, 2:5, 3:6] = torch.rand(64, 1, 3, 3, generator=torch.Generator().manual_seed(2))
    assert not _nw509(_doctor(Conv(), img, y))


@pytest.mark.parametrize("fn", [GradReverse, RoundSTE], ids=["gradient-reversal", "straight-through"])
def test_surrogate_gradients_on_purpose_say_nothing(fn):
    assert not _nw509(_doctor(WithSquare(fn)))
