"""Export output that says only what is true (issue 11): netwright's own Scaled wrapper scripts
without a trace fallback warning, and a speed-up is shown only from timings that agree."""

from __future__ import annotations

import time
import warnings

import pytest
import torch

from netwright.cli import _speed_text
from netwright.exporting import MAX_SPREAD, ExportReport
from netwright.exporting.verifier import timing
from netwright.models import build_zoo
from netwright.models.scaling import Scaled


@pytest.mark.parametrize("x_shape, y_shape", [((3,), None), (None, (2,)), ((3,), (2,))])
def test_scaled_scripts_whichever_statistics_it_holds(x_shape, y_shape):
    model = Scaled(build_zoo("mlp", (3,), hidden=[4], outputs=2), x_shape, y_shape).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script's own deprecation notice
        scripted = torch.jit.script(model)
    x = torch.randn(5, 3)
    assert torch.equal(scripted(x), model(x))


def test_timing_reports_the_spread_of_its_calls():
    _, steady = timing(lambda: time.sleep(0.002), budget=0.05, min_runs=12)
    calls = iter(range(10**6))
    _, erratic = timing(lambda: time.sleep(0.0005 if next(calls) % 2 else 0.01), budget=0.05,
                        min_runs=12)
    assert steady < MAX_SPREAD < erratic


def test_speed_is_shown_only_when_measured_and_not_noisy():
    r = ExportReport(path=__import__("pathlib").Path("m.onnx"), format="onnx", method="x",
                     latency_eager={1: 2e-3, 64: 4e-3}, latency_export={1: 1e-3, 64: 8e-3},
                     latency_noisy=[64])
    assert _speed_text(r.speedup(1), True) == "2.00x faster"
    assert _speed_text(0.5, True) == "2.00x slower"  # never "0.50x faster"
    assert _speed_text(None, True) == "noisy" and _speed_text(None, False) == "-"
    assert "too noisy to compare" in str(r) and "2.00x eager's speed" in str(r)
