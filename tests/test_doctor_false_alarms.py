"""Healthy setups the doctor's second round must not refuse or warn about (found by review):
a user's model with a ``num_samples`` attribute, activations kept in a plain list, LoRA-style
zero-initialised adapters beside random layers, data whose rows repeat anyway, a category
above the label, a time-ordered regression target without shuffling, a custom loss below zero
in the LR finder, a user Dataset with ``path`` and ``index`` attributes."""

import torch
import torch.nn as nn

import netwright as nw


def _codes(report):
    return [f.code for f in report]


class MonteCarlo(nn.Module):
    def __init__(self):
        super().__init__()
        self.num_samples = 20  # forward passes at prediction: not a clip length
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))

    def forward(self, x):
        return self.net(x)


class Activations(nn.Module):
    def __init__(self):
        super().__init__()
        self.acts = [nn.ReLU(), nn.Tanh()]  # no weights: nothing is lost by the list
        self.a, self.b = nn.Linear(8, 16), nn.Linear(16, 3)

    def forward(self, x):
        return self.b(self.acts[1](self.acts[0](self.a(x))))


class LoRA(nn.Module):
    def __init__(self):
        super().__init__()
        self.base = nn.Linear(8, 3)
        self.lora_a = nn.Linear(8, 2, bias=False)
        self.lora_b = nn.Linear(2, 3, bias=False)
        nn.init.zeros_(self.lora_b.weight)  # the standard LoRA start: B = 0, A random

    def forward(self, x):
        return self.base(x) + self.lora_b(self.lora_a(x))


def test_healthy_models_are_not_refused():
    X, y = torch.randn(96, 8), torch.arange(96) % 3
    for model in (MonteCarlo(), Activations(), LoRA()):
        report = nw.doctor(model, (X, y), loss="cross_entropy")
        assert not report.errors, report
        assert not {"NW215", "NW216", "NW219"} & set(_codes(report)), report
        nw.fit(model, (X, y), loss="cross_entropy", epochs=1, verbose=0)  # fit trains it


def test_the_real_mistakes_are_still_named():
    class Hidden(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = [nn.Linear(8, 16)]  # a weighted layer in a list: lost
            self.out = nn.Linear(16, 3)

        def forward(self, x):
            return self.out(self.layers[0](x))

    X, y = torch.randn(96, 8), torch.arange(96) % 3
    assert "NW216" in _codes(nw.doctor(Hidden(), (X, y), loss="cross_entropy"))
    zero = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    for layer in (zero[0], zero[2]):
        nn.init.zeros_(layer.weight)
    assert "NW219" in _codes(nw.doctor(zero, (X, y), loss="cross_entropy"))


def test_data_whose_rows_repeat_is_not_a_copy_but_a_copied_split_is():
    g = torch.Generator().manual_seed(0)
    X = torch.randint(0, 2, (600, 6), generator=g).float()  # 64 possible rows
    y = (X.sum(1) > 3).long()
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))
    assert "NW310" not in _codes(nw.doctor(model, (X, y), loss="cross_entropy", val=0.2))
    Xc = torch.randn(200, 6, generator=g)
    yc = torch.arange(200) % 2
    assert "NW310" in _codes(nw.doctor(model, (Xc, yc), loss="cross_entropy",
                                       val=(Xc[:40].clone(), yc[:40].clone())))


def test_a_category_above_the_label_is_a_fair_feature_and_regression_may_run_in_order():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(120) % 4
    X = torch.cat([torch.randn(120, 5, generator=g), (y // 2).float()[:, None]], 1)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    assert "NW311" not in _codes(nw.doctor(model, (X, y), loss="cross_entropy"))
    X[:, 5] = y.float() * 2 + 1  # now the column names the class
    assert "NW311" in _codes(nw.doctor(model, (X, y), loss="cross_entropy"))
    t = torch.arange(120, dtype=torch.float32)[:, None] // 6  # a time-ordered target, 20 levels
    reg = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 1))
    assert "NW404" not in _codes(nw.doctor(reg, (X, (t - t.mean()) / t.std()), loss="mse",
                                           shuffle=False))


def test_the_lr_finder_takes_a_loss_below_zero():
    X, y = torch.randn(256, 8), torch.randn(256, 1)
    mse = nn.MSELoss()
    result = nw.lr_find(nn.Linear(8, 1), (X, y), loss=lambda out, t: mse(out, t) - 5.0,
                        optimizer="sgd", steps=40, end_lr=1e-1)
    assert len(result.lrs) == 40 and "reached" in result.stopped


def test_a_users_dataset_with_path_and_index_attributes_trains():
    class Table(torch.utils.data.Dataset):
        def __init__(self, n):
            self.path = "train.csv"  # an attribute, not netwright's path(i)
            self.index = list(range(n))
            self.x, self.y = torch.randn(n, 4), torch.arange(n) % 2

        def __len__(self):
            return len(self.index)

        def __getitem__(self, i):
            return self.x[i], self.y[i]

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    result = nw.fit(model, Table(64), val=Table(16), loss="cross_entropy", epochs=1, verbose=0)
    assert len(result.history) == 1
    assert "NW310" not in _codes(nw.doctor(model, Table(64), val=Table(16), loss="cross_entropy"))
