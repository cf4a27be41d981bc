"""Model classes for tests/test_save_roundtrip.py, in a module of their own so that their import
path (``roundtrip_models:SimpleNet``) is real, as a user's models.py would be."""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class SimpleNet(nn.Module):
    def __init__(self):
        super(SimpleNet, self).__init__()
        self.linear1 = nn.Linear(20, 64)
        self.relu = nn.ReLU()
        self.linear2 = nn.Linear(64, 32)
        self.sigmoid = nn.Sigmoid()
        self.output = nn.Linear(32, 10)
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x):
        x = self.linear1(x)
        x = self.relu(x)
        x = self.linear2(x)
        x = self.sigmoid(x)
        x = self.output(x)
        x = self.softmax(x)
        return x


class Towers(nn.Module):
    """Keyword-only arguments, kept as attributes of the same names, and torch's containers
    nested three deep inside (ModuleDict → ModuleList → Sequential)."""

    def __init__(self, in_features, *, width, towers=2, dropout=0.0, names=("a", "b")):
        super().__init__()
        self.in_features, self.width, self.towers = in_features, width, towers
        self.dropout, self.names = dropout, names
        self.blocks = nn.ModuleDict({
            name: nn.ModuleList([
                nn.Sequential(OrderedDict(fc=nn.Linear(in_features, width), act=nn.GELU(),
                                          drop=nn.Dropout(dropout)))
                for _ in range(towers)])
            for name in names})
        self.head = nn.Linear(width * towers * len(names), 3)

    def forward(self, x):
        outs = [tower(x) for name in self.names for tower in self.blocks[name]]
        return self.head(torch.cat(outs, dim=1))


class NeedsArguments(nn.Module):
    """Its argument is not kept under its own name: model.json cannot read it back."""

    def __init__(self, hidden):
        super().__init__()
        self.fc = nn.Linear(5, hidden)

    def forward(self, x):
        return F.relu(self.fc(x))


class ChangesItsArgument(nn.Module):
    """Keeps an attribute named like its argument but holding another value: read back, it would
    build another model, which the check on the meta device catches."""

    def __init__(self, width=4):
        super().__init__()
        self.width = width + 1
        self.fc = nn.Linear(3, self.width)

    def forward(self, x):
        return self.fc(x)


class TakesKwargs(nn.Module):
    """What reaches **kwargs cannot be read back."""

    def __init__(self, **kwargs):
        super().__init__()
        self.fc = nn.Linear(3, kwargs.get("width", 2))

    def forward(self, x):
        return self.fc(x)
