"""The doctor's deep check with compile=True names torch.compile's graph breaks by the line of
the model's code that causes each (NW508)."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn

import netwright as nw

pytestmark = pytest.mark.slow


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x):
        h = self.a(x)
        if h.sum().item() > 0:  # a data-dependent branch: dynamo breaks the graph here
            h = h * 2
        return self.b(h)


def _data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(32, 4, generator=g), torch.randint(0, 2, (32,), generator=g)


def test_a_graph_break_is_named_by_file_and_line():
    report = nw.doctor(Branchy(), _data(), loss="cross_entropy", deep=True, compile=True)
    found = [f for f in report if f.code == "NW508"]
    assert len(found) == 1 and found[0].severity == "warning"
    lines, start = inspect.getsourcelines(Branchy.forward)
    line = start + next(i for i, text in enumerate(lines) if ".item()" in text)
    assert f"test_doctor_compile.py:{line} in forward" in found[0].message
    assert "if h.sum().item() > 0:" in found[0].message and "graph break" in found[0].message


def test_a_model_that_compiles_whole_and_a_run_without_compile_get_no_nw508():
    clean = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    assert "NW508" not in nw.doctor(clean, _data(), loss="cross_entropy", deep=True, compile=True).codes
    assert "NW508" not in nw.doctor(Branchy(), _data(), loss="cross_entropy", deep=True).codes
