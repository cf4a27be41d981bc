"""Export verification (netwright.exporting.verifier) checked for what export's docstring and
ExportReport promise: an artifact passes when every output is within ``atol + rtol * |eager|``
(defaults by dtype), the relative difference is ``|artifact - eager| / max(|eager|, atol)``, an
error lists the largest differences, the check runs in a fresh process that imports this
netwright, its failures and time-outs are named, timings are medians of runs after a warm-up, and
nothing is left behind. Written for the mutation-testing measurement (issue 21,
docs/testing.md): the comparison is tested on arrays directly; the fresh process is started only
by the few tests that need it (TorchScript, the quickest to load)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

import netwright
from netwright.errors import ExportError
from netwright.exporting import export, verifier
from netwright.exporting.job import Job, prepare_job
from netwright.exporting.verifier import (MAX_SPREAD, Verifier, check_outputs, timing, to_numpy,
                                          tolerance, verify_artifacts)

pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated")]


def _job(names=("output",), expected=(), dynamic=True) -> Job:
    """The parts of a job the comparison reads: the output names and the eager outputs."""
    return Job(net=None, inputs=[], keywords=False, input_names=["x"], output_names=list(names),
               expected=list(expected), batch=2, dynamic=dynamic, int_ranges=[], float_stats=[])


# --- to_numpy ---------------------------------------------------------------------------------


def test_to_numpy_widens_bfloat16_and_keeps_other_dtypes():
    t = torch.tensor([1.5, -2.25], dtype=torch.bfloat16, requires_grad=True)
    a = to_numpy(t)
    assert a.dtype == np.float32 and a.tolist() == [1.5, -2.25]
    for dtype in (torch.float16, torch.float32, torch.float64, torch.int64, torch.bool):
        b = to_numpy(torch.ones(2, dtype=dtype, requires_grad=dtype.is_floating_point))
        assert b.dtype == torch.empty(0, dtype=dtype).numpy().dtype and b.tolist() == [1, 1]


# --- timing -----------------------------------------------------------------------------------


def _counter(seconds=0.0):
    calls = []

    def fn():
        calls.append(1)
        if seconds:
            time.sleep(seconds)
    return fn, calls


def test_timing_warms_up_then_runs_at_least_min_runs():
    fn, calls = _counter()
    timing(fn, budget=0.0, min_runs=15)
    assert len(calls) == 3 + 15
    fn, calls = _counter()
    timing(fn, budget=0.0, min_runs=4, warmup=0)
    assert len(calls) == 4


def test_timing_runs_until_the_budget_but_at_most_max_runs():
    fn, calls = _counter()
    timing(fn, budget=60.0, min_runs=2, max_runs=40, warmup=1)
    assert len(calls) == 1 + 40
    fn, calls = _counter(0.002)
    start = time.perf_counter()
    timing(fn, budget=0.1, min_runs=5, warmup=0)
    assert time.perf_counter() - start >= 0.1 and 5 < len(calls) < 400


def test_timing_returns_the_median_of_the_calls():
    fn, _ = _counter(0.01)
    median, spread = timing(fn, budget=0.0, min_runs=9, warmup=1)
    assert 0.009 < median < 0.05 and 0 <= spread < 10


def test_timing_a_call_that_takes_no_time_is_infinitely_noisy(monkeypatch):
    """A median of zero seconds cannot give a speed-up: its spread is infinite (too noisy)."""
    monkeypatch.setattr(verifier.time, "perf_counter", lambda: 1.0)
    assert timing(lambda: None, min_runs=15, max_runs=20) == (0.0, float("inf"))


# --- tolerance --------------------------------------------------------------------------------


@pytest.mark.parametrize("dtypes, expected", [
    ([torch.float64], (1e-7, 1e-9)), ([torch.float32], (1e-3, 1e-5)),
    ([torch.float16], (1e-2, 1e-3)), ([torch.bfloat16], (2e-2, 1e-2)),
    ([torch.float32, torch.float16], (1e-2, 1e-3)), ([torch.float64, torch.bfloat16], (2e-2, 1e-2)),
    ([torch.int64], (1e-3, 1e-5)), ([], (1e-3, 1e-5)),
])
def test_default_tolerance_is_the_loosest_of_the_outputs_dtypes(dtypes, expected):
    job = _job([f"o{i}" for i in range(len(dtypes))], [torch.zeros(2, dtype=d) for d in dtypes])
    assert tolerance(job, None, None) == expected


def test_given_rtol_or_atol_replace_only_their_default():
    job = _job(["o"], [torch.zeros(2, dtype=torch.float16)])
    assert tolerance(job, 0.5, None) == (0.5, 1e-3)
    assert tolerance(job, None, 0.25) == (1e-2, 0.25)
    assert tolerance(job, 0, 0) == (0.0, 0.0)
    rt, at = tolerance(job, 1, 2)
    assert (rt, at) == (1.0, 2.0) and type(rt) is float and type(at) is float


# --- check_outputs: the comparison --------------------------------------------------------------


BATCHES = {"example": 2, "other": 5}


def _check(expected, found, rtol=1e-3, atol=1e-5, names=("output",), fmt="onnx"):
    exp = {s: [np.asarray(a) for a in arrays] for s, arrays in expected.items()}
    got = {s: [np.asarray(a) for a in arrays] for s, arrays in found.items()}
    return check_outputs(fmt, Path("/x/m.onnx"), _job(names), got, exp, BATCHES, rtol, atol)


def test_outputs_within_tolerance_pass_with_their_largest_differences():
    e = np.array([[1.0, -2.0], [0.0, 4.0]], dtype=np.float32)
    g = e + np.array([[1e-4, 0.0], [5e-6, -2e-3]], dtype=np.float32)
    maxima, error = _check({"example": [e], "other": [e]}, {"example": [g], "other": [e]})
    assert error is None
    abs_ex, rel_ex = maxima["example"]
    assert abs_ex == pytest.approx(2e-3, rel=1e-3)
    # relative: |diff| / max(|eager|, atol); the 5e-6 at an eager 0 counts as 5e-6 / 1e-5
    assert rel_ex == pytest.approx(0.5, rel=1e-3)
    assert maxima["other"] == (0.0, 0.0)


def test_the_bound_is_atol_plus_rtol_times_the_eager_value():
    exact = np.array([4.0, 0.0])
    edge = np.array([4.0 + 0.5 * 4.0 + 0.25, 0.25])  # exactly at the bound: passes
    assert _check({"example": [exact]}, {"example": [edge]}, rtol=0.5, atol=0.25)[1] is None
    _, error = _check({"example": [exact]}, {"example": [edge + [0.0, 1e-9]]}, rtol=0.5, atol=0.25)
    assert "1 of 2 values beyond tolerance; worst at [1]" in str(error)
    e = np.array([100.0, 0.0])
    beyond = np.array([100.0 + 0.1001, 0.0])
    _, error = _check({"example": [e]}, {"example": [beyond]}, rtol=1e-3, atol=1e-5)
    assert error is not None and "1 of 2 values beyond tolerance" in str(error)
    at_zero = np.array([100.0, 2e-5])  # only atol applies where the eager value is 0
    _, error = _check({"example": [e]}, {"example": [at_zero]}, rtol=1e-3, atol=1e-5)
    assert "1 of 2 values beyond tolerance; worst at [1]" in str(error)


def test_the_bound_uses_the_magnitude_of_negative_values():
    e = np.array([-100.0])
    assert _check({"example": [e]}, {"example": [np.array([-100.09])]}, rtol=1e-3, atol=0)[1] is None


def test_relative_difference_with_atol_zero_is_over_the_eager_value():
    e = np.array([4.0, 0.0])
    g = np.array([5.0, 0.0])
    maxima, error = _check({"example": [e]}, {"example": [g]}, rtol=1.0, atol=0.0)
    assert error is None and maxima["example"] == (1.0, 0.25)


def test_nan_on_both_sides_and_equal_infinities_agree():
    e = np.array([np.nan, np.inf, -np.inf, 1.0])
    maxima, error = _check({"example": [e]}, {"example": [e.copy()]})
    assert error is None and maxima["example"] == (0.0, 0.0)


@pytest.mark.parametrize("got", [[np.nan, 1.0], [1.0, np.inf], [1.0, -np.inf]])
def test_nan_or_infinity_on_one_side_only_is_an_infinite_difference(got):
    e = np.array([1.0, 1.0])
    maxima, error = _check({"example": [e]}, {"example": [np.array(got)]})
    assert error is not None
    assert "max abs diff inf" in str(error) and "1 of 2 values beyond tolerance" in str(error)


def test_an_infinite_eager_value_does_not_loosen_the_bound():
    e = np.array([np.inf, 1.0])
    _, error = _check({"example": [e]}, {"example": [np.array([np.inf, 1.5])]})
    assert error is not None and "worst at [1]: model 1, onnx 1.5" in str(error)


def test_integer_outputs_are_compared_as_numbers():
    e = np.array([3, 4], dtype=np.int64)
    assert _check({"example": [e]}, {"example": [e.copy()]})[1] is None
    _, error = _check({"example": [e]}, {"example": [np.array([3, 5], dtype=np.int64)]})
    assert "worst at [1]: model 4, onnx 5" in str(error)


def test_an_error_names_the_artifact_the_tolerance_and_the_worst_value():
    e = np.zeros((2, 3), dtype=np.float32)
    g = e.copy()
    g[1, 2] = 0.5
    g[0, 1] = 0.25
    _, error = _check({"example": [e], "other": [e]}, {"example": [g], "other": [e]},
                      rtol=1e-3, atol=1e-5)
    lines = str(error).splitlines()
    assert lines[0] == ("ONNX artifact '/x/m.onnx' does not compute what the model computes "
                        "(rtol=0.001, atol=1e-05); the largest differences:")
    assert lines[1] == ("  output 'output', the example (batch 2): max abs diff 0.5, max rel diff "
                        "5e+04; 2 of 6 values beyond tolerance; worst at [1, 2]: model 0, onnx 0.5")
    assert lines[2] == ("Nothing was written. Fix: if the differences are rounding (half "
                        "precision, long sequences), pass a looser rtol=/atol=; otherwise export to "
                        "another format and report the model.")
    assert len(lines) == 3


def test_an_error_lists_at_most_five_outputs_the_worst_first():
    names = [f"o{i}" for i in range(7)]
    e = [np.zeros(3) for _ in names]
    g = [np.full(3, 0.1 * (i + 1)) for i in range(7)]
    _, error = _check({"example": e}, {"example": g}, names=names)
    shown = [ln.split("'")[1] for ln in str(error).splitlines()[1:-1]]
    assert shown == ["o6", "o5", "o4", "o3", "o2"]


def test_differences_only_on_the_other_batch_point_at_a_frozen_batch_size():
    e = np.ones((5, 2))
    _, error = _check({"example": [np.ones((2, 2))], "other": [e]},
                      {"example": [np.ones((2, 2))], "other": [e * 3]}, fmt="torchscript")
    text = str(error)
    assert text.startswith("TorchScript artifact '/x/m.onnx' does not compute")
    assert "output 'output', random inputs of batch 5: max abs diff 2" in text
    assert "worst at [0, 0]: model 1, torchscript 3" in text
    assert text.splitlines()[-1].startswith(
        "Nothing was written. Fix: the example matches but fresh inputs of another batch size do "
        "not: the export froze something the example fixed")


def test_differences_on_both_sets_get_the_general_fix():
    _, error = _check({"example": [np.ones(2)], "other": [np.ones(5)]},
                      {"example": [np.ones(2) * 2], "other": [np.ones(5) * 2]})
    assert "if the differences are rounding" in str(error)
    assert "the example (batch 2)" in str(error) and "random inputs of batch 5" in str(error)


def test_maxima_are_per_set_over_every_output():
    e = [np.zeros(2), np.ones(2)]
    g_example = [np.array([0.0, 1e-6]), np.array([1.0, 1.0 + 4e-6])]
    g_other = [np.array([3e-6, 0.0]), np.ones(2)]
    maxima, error = _check({"example": e, "other": e}, {"example": g_example, "other": g_other},
                           names=("a", "b"))
    assert error is None
    assert maxima["example"][0] == pytest.approx(4e-6) and maxima["example"][1] == pytest.approx(0.1)
    assert maxima["other"][0] == pytest.approx(3e-6) and maxima["other"][1] == pytest.approx(0.3)


def test_an_empty_output_compares_as_equal():
    e = np.zeros((0, 3))
    maxima, error = _check({"example": [e]}, {"example": [e.copy()]})
    assert error is None and maxima["example"] == (0.0, 0.0)


def test_a_wrong_number_of_outputs_is_named():
    _, error = _check({"example": [np.ones(2), np.ones(2)]}, {"example": [np.ones(2)]},
                      names=("logits", "value"))
    assert str(error) == ("ONNX artifact '/x/m.onnx' returns 1 outputs; the model returns 2 "
                          "(logits, value). Nothing was written.")


def test_a_wrong_output_shape_names_the_output_and_the_set():
    _, error = _check({"example": [np.ones((2, 3))], "other": [np.ones((5, 3))]},
                      {"example": [np.ones((2, 3))], "other": [np.ones((2, 3))]},
                      names=("logits",))
    assert str(error) == (
        "ONNX artifact '/x/m.onnx': output 'logits' has shape (2, 3) on random inputs of batch 5; "
        "the model gives (5, 3). The export does not follow the batch size. Nothing was written. "
        "Fix: use the input's own sizes in forward (x.shape[0]), or dynamic_batch=False.")


def test_an_artifact_that_could_not_run_is_named_with_the_reason():
    maxima, error = check_outputs("pt2", Path("/x/m.pt2"), _job(), "RuntimeError: no such op",
                                  {}, BATCHES, 1e-3, 1e-5)
    assert maxima == {}
    assert str(error) == (
        "torch.export (.pt2) artifact '/x/m.pt2' could not be loaded or run in a fresh process: "
        "RuntimeError: no such op. Nothing was written. Fix: the artifact needs something only "
        "this process has (e.g. a custom op library): export to another format, or verify=False.")


# --- the fresh process ------------------------------------------------------------------------


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 3), nn.Linear(4, 1)

    def forward(self, x):
        return self.a(x), self.b(x).sigmoid()


@pytest.fixture
def clean_tmp(tmp_path, monkeypatch):
    """Temporary files go to a folder of their own, to see that none is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(folder))
    return folder


def test_verification_runs_both_sets_and_times_each_batch_once(tmp_path, clean_tmp):
    path = tmp_path / "m.ts"
    export(TwoHeads(), path, example=torch.randn(3, 4), verify=False)
    job = prepare_job(TwoHeads(), torch.randn(3, 4), True)
    v = Verifier(["torchscript"])
    try:
        checked, latency, eager = verify_artifacts(job, {"torchscript": path}, v,
                                                   latency_batches=(4, 1, 4), timeout=120)
    finally:
        v.close()
    assert v.proc.returncode == 0
    assert checked["batches"] == {"example": 3, "other": 5}
    outs = checked["outputs"]["torchscript"]
    assert set(outs) == {"example", "other"} and [a.shape for a in outs["example"]] == [(3, 3), (3, 1)]
    assert [a.shape for a in outs["other"]] == [(5, 3), (5, 1)]
    exp = checked["expected"]
    assert [a.shape for a in exp["example"]] == [(3, 3), (3, 1)]
    assert [a.shape for a in exp["other"]] == [(5, 3), (5, 1)]
    for got, want in zip(outs["example"] + outs["other"], exp["example"] + exp["other"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        np.testing.assert_allclose(exp["example"][0], job.net(job.inputs[0])[0].numpy())
    assert list(latency["torchscript"]) == [4, 1] and list(eager) == [4, 1]
    assert all(s > 0 for s in [*latency["torchscript"].values(), *eager.values()])
    assert set(checked["noisy"]) == {"torchscript"}
    assert list(clean_tmp.iterdir()) == []


def test_a_fixed_batch_is_timed_at_its_own_size_and_not_compared_on_another(tmp_path, clean_tmp):
    path = tmp_path / "m.ts"
    example = torch.randn(3, 4)
    export(TwoHeads(), path, example=example, dynamic_batch=False, verify=False)
    job = prepare_job(TwoHeads(), example, False)
    v = Verifier(["torchscript"])
    try:
        checked, latency, eager = verify_artifacts(job, {"torchscript": path}, v,
                                                   latency_batches=(1, 64), timeout=120)
    finally:
        v.close()
    assert checked["batches"] == {"example": 3} and set(checked["expected"]) == {"example"}
    assert set(checked["outputs"]["torchscript"]) == {"example"}
    assert list(latency["torchscript"]) == [3] and list(eager) == [3]
    assert list(clean_tmp.iterdir()) == []


def test_noisy_eager_timings_mark_every_batch_of_every_format(tmp_path, clean_tmp, monkeypatch):
    """A speed-up is shown only from timings that agree: an eager spread over MAX_SPREAD makes
    every batch's comparison noisy (sorted by batch)."""
    monkeypatch.setattr(verifier, "timing", lambda fn: (1e-3, MAX_SPREAD * 4))
    report = export(TwoHeads(), tmp_path / "m.ts", example=torch.randn(3, 4),
                    latency_batches=(8, 1))
    assert report.verified and report.latency_noisy == [1, 8]
    assert report.latency_eager == {8: 1e-3, 1: 1e-3} and set(report.latency_export) == {1, 8}
    assert report.rtol == 1e-3 and report.atol == 1e-5 and report.other_batch == 5
    assert list(clean_tmp.iterdir()) == []


def test_the_fresh_process_imports_this_netwright(monkeypatch):
    """The check must run the code under test, not another installed netwright: the child's
    PYTHONPATH starts with the folder this netwright was imported from."""
    seen = {}

    class Spy(subprocess.Popen):
        def __init__(self, args, **kwargs):
            seen.update(args=args, env=kwargs.get("env"))
            super().__init__(args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Spy)
    monkeypatch.setenv("PYTHONPATH", "/somewhere/else")
    v = Verifier(["torchscript", "pt2"])
    v.close()
    root = str(Path(netwright.__file__).resolve().parents[1])
    assert seen["env"]["PYTHONPATH"].split(os.pathsep) == [root, "/somewhere/else"]
    assert seen["args"] == [sys.executable, "-m", "netwright.exporting", "--verify-stdin",
                            "torchscript,pt2"]


def test_a_fresh_process_that_dies_is_an_error_naming_its_exit_code(tmp_path, clean_tmp):
    path = tmp_path / "m.ts"
    export(TwoHeads(), path, example=torch.randn(3, 4), verify=False)
    job = prepare_job(TwoHeads(), torch.randn(3, 4), True)
    v = Verifier(["torchscript"])
    v.proc.kill()
    v.proc.wait()
    with pytest.raises(ExportError) as err:
        verify_artifacts(job, {"torchscript": path}, v, latency_batches=(), timeout=60)
    message = str(err.value)
    assert message.startswith("export verification: the fresh process checking torchscript "
                              "exited with code -9:")
    assert message.endswith("Fix: verify=False skips the check (at your own risk).")
    assert list(clean_tmp.iterdir()) == []


def test_a_fresh_process_that_does_not_finish_in_time_is_killed_and_named(tmp_path):
    job_file = tmp_path / "job.json"
    job_file.write_text("{}")
    v = Verifier(["torchscript"])
    with pytest.raises(ExportError) as err:
        v.run(job_file, timeout=0.01)
    assert str(err.value) == ("export verification: the fresh process checking the artifacts did "
                              "not finish within 0 s. Fix: pass a larger timeout=, or verify=False.")
    assert v.proc.poll() is not None  # killed, not left running
    v.close()  # closing a finished process is harmless


def test_an_artifact_the_fresh_process_cannot_load_is_reported_with_its_error(tmp_path, clean_tmp):
    path = tmp_path / "m.ts"
    path.write_bytes(b"not a torchscript archive")
    job = prepare_job(TwoHeads(), torch.randn(3, 4), True)
    v = Verifier(["torchscript"])
    try:
        checked, latency, _ = verify_artifacts(job, {"torchscript": path}, v, latency_batches=(2,),
                                               timeout=120)
    finally:
        v.close()
    found = checked["outputs"]["torchscript"]
    assert isinstance(found, str) and found.startswith("RuntimeError: ")
    assert "torchscript" not in latency
    _, error = check_outputs("torchscript", path, job, found, checked["expected"],
                             checked["batches"], 1e-3, 1e-5)
    assert f"TorchScript artifact {str(path)!r} could not be loaded or run in a fresh process: " \
           f"RuntimeError: " in str(error)
    assert list(clean_tmp.iterdir()) == []


# --- survivors of the second measurement (docs/mutation/resume-export-doctor.md) ---------------


def test_a_floating_dtype_without_a_default_tolerance_gets_float32s():
    """float8 outputs have no entry of their own: float32's tolerance applies, alone or as the
    loosest with another dtype."""
    job = _job(["o"], [torch.zeros(2, dtype=torch.float8_e4m3fn)])
    assert tolerance(job, None, None) == (1e-3, 1e-5)
    job = _job(["a", "b"], [torch.zeros(2, dtype=torch.float8_e5m2), torch.zeros(2, dtype=torch.float64)])
    assert tolerance(job, None, None) == (1e-3, 1e-5)


def test_relative_difference_below_one_with_atol_zero():
    """|diff| / |eager| also where |eager| < 1 (no floor at 1): 0.1 off an eager 0.5 is 0.2."""
    maxima, error = _check({"example": [np.array([0.5])]}, {"example": [np.array([0.6])]},
                           rtol=1.0, atol=0.0)
    assert error is None
    assert maxima["example"] == (pytest.approx(0.1), pytest.approx(0.2))


@pytest.mark.parametrize("eager", [np.inf, -np.inf])
def test_an_infinite_eager_value_is_never_within_a_relative_tolerance(eager):
    """rtol scales |eager|, but an infinite eager value is not a licence for any finite value:
    even with rtol=2 (whose bound would overflow to infinity) a finite artifact value is an
    infinite difference."""
    _, error = _check({"example": [np.array([eager, 1.0])]}, {"example": [np.array([0.0, 1.0])]},
                      rtol=2.0, atol=0.0)
    assert error is not None and "1 of 2 values beyond tolerance; worst at [0]" in str(error)


def test_comparing_infinities_and_huge_values_emits_no_numpy_warning():
    """The comparison handles NaN, infinities and overflowing ratios itself: no RuntimeWarning
    reaches a user who runs with warnings as errors."""
    e = np.array([np.inf, -np.inf, np.nan, 1e300, 0.0])
    g = np.array([np.inf, 1.0, np.nan, -1e300, 1e300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, error = _check({"example": [e]}, {"example": [g]}, rtol=1e-3, atol=0.0)
    assert error is not None and "3 of 5 values beyond tolerance" in str(error)


def test_timing_by_default_runs_for_a_fifth_of_a_second(monkeypatch):
    """The default budget is 0.2 s: on a clock where each call takes 1/128 s (exact in binary),
    15 runs (0.117 s) are not enough, and the 26th run is the first to reach 0.2 s."""
    clock = [0.0]
    monkeypatch.setattr(verifier.time, "perf_counter", lambda: clock[0])
    calls = []

    def fn():
        calls.append(1)
        clock[0] += 1 / 128

    median, spread = timing(fn)
    assert len(calls) == 3 + 26
    assert median == 1 / 128 and spread == 0.0


def test_the_frozen_batch_size_fix_is_named_in_full():
    _, error = _check({"example": [np.ones(2)], "other": [np.ones(5)]},
                      {"example": [np.ones(2)], "other": [np.ones(5) * 2]})
    assert str(error).splitlines()[-1] == (
        "Nothing was written. Fix: the example matches but fresh inputs of another batch size do "
        "not: the export froze something the example fixed (data-dependent control flow in a "
        "trace, or a batch size written into forward). Check forward, export to another format, "
        "or use dynamic_batch=False.")


class _Probe:
    """Stands in for the fresh process (no process is started): records the job file it is sent
    and the inputs written for it, then answers as a process that failed."""

    def __init__(self):
        self.spec: dict = {}
        self.arrays: dict = {}
        self.folder: Path | None = None

    def run(self, job_file, timeout):
        import json

        self.folder = Path(job_file).parent
        self.spec = json.loads(Path(job_file).read_text())
        with np.load(self.spec["inputs"]) as data:
            self.arrays = {k: data[k].copy() for k in data.files}
        return 3, "probe: stopped here"


def _probe(job, latency_batches):
    probe = _Probe()
    with pytest.raises(ExportError, match="exited with code 3:\nprobe: stopped here\n"):
        verify_artifacts(job, {"torchscript": Path("/x/m.ts")}, probe,
                         latency_batches=latency_batches, timeout=1)
    return probe


def test_a_fixed_batch_without_latency_batches_asks_for_no_timing(clean_tmp):
    probe = _probe(prepare_job(TwoHeads(), torch.randn(3, 4), False), ())
    assert probe.spec["latency"] == {} and probe.spec["sets"] == ["example"]
    assert sorted(probe.arrays) == ["example__0"]
    assert list(clean_tmp.iterdir()) == []  # the work folder is removed after a failure too


def test_latency_inputs_come_from_a_seeded_generator_of_their_own(clean_tmp):
    """The inputs timed are the same on every export, and drawing them leaves the global RNG
    (the user's) untouched; the work folder is named for whoever finds it in the temp folder."""
    job = prepare_job(TwoHeads(), torch.randn(3, 4), True)
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    first = _probe(job, (2, 7))
    assert torch.equal(torch.get_rng_state(), before)
    torch.manual_seed(99)
    second = _probe(job, (2, 7))
    assert first.spec["latency"] == {"2": "b2", "7": "b7"}
    assert first.arrays["b2__0"].shape == (2, 4) and first.arrays["b7__0"].shape == (7, 4)
    for key in ("b2__0", "b7__0"):
        np.testing.assert_array_equal(first.arrays[key], second.arrays[key])
    assert first.folder.name.startswith("netwright-verify-") and first.folder.parent == clean_tmp


def _ticking(monkeypatch, seconds_per_call):
    """A clock that advances only inside fn, by ``seconds_per_call`` (exact binary fractions)."""
    clock = [0.0]
    monkeypatch.setattr(verifier.time, "perf_counter", lambda: clock[0])
    calls = []

    def fn():
        calls.append(1)
        clock[0] += seconds_per_call
    return fn, calls


def test_timing_defaults_to_15_to_400_runs(monkeypatch):
    fn, calls = _ticking(monkeypatch, 1.0)  # each call alone outlasts the budget
    timing(fn)
    assert len(calls) == 3 + 15
    fn, calls = _ticking(monkeypatch, 0.0)  # calls that take no time never reach the budget
    timing(fn)
    assert len(calls) == 3 + 400


def test_timing_stops_once_the_budget_is_reached_exactly(monkeypatch):
    fn, calls = _ticking(monkeypatch, 1 / 128)
    timing(fn, budget=32 / 128, min_runs=1, warmup=0)
    assert len(calls) == 32


class _FakeChild(_Probe):
    """Answers like the fresh process (result.json and out_<fmt>.npz, as exporting/child.py
    writes them), with outputs and timings chosen by the test: ``answers[fmt]`` is an error
    text, or a dict with ``outputs`` (per set, a list of arrays) and optional ``latency`` /
    ``spread`` (per batch)."""

    def __init__(self, answers, code=0, text=""):
        super().__init__()
        self.answers, self.code, self.text = answers, code, text
        self.timeout = None

    def run(self, job_file, timeout):
        import json

        super().run(job_file, timeout)
        self.timeout = timeout
        results = {}
        for fmt, answer in self.answers.items():
            if isinstance(answer, str):
                results[fmt] = {"error": answer, "latency": {}, "count": {}}
                continue
            outs = {f"{s}__{j}": a for s, arrays in answer["outputs"].items()
                    for j, a in enumerate(arrays)}
            np.savez(self.folder / f"out_{fmt}.npz", **outs)
            results[fmt] = {"error": None, "count": {s: len(a) for s, a in answer["outputs"].items()},
                            "latency": {str(b): s for b, s in answer.get("latency", {}).items()}}
            if "spread" in answer:
                results[fmt]["spread"] = {str(b): v for b, v in answer["spread"].items()}
        if results:
            (self.folder / "result.json").write_text(json.dumps(results))
        return self.code, self.text


def _answer(job, latency=None, spread=None):
    answer = {"outputs": {"example": [np.zeros((3, 2), np.float32)],
                          "other": [np.zeros((5, 2), np.float32)]}, "latency": latency or {}}
    if spread is not None:
        answer["spread"] = spread
    return answer


def test_outputs_timings_and_spreads_are_read_for_each_format_after_a_failed_one(clean_tmp,
                                                                                   monkeypatch):
    """One format's error does not stop the next format's results from being read; the
    process's spread marks its batches noisy; the eager model is what is timed per batch."""
    job = prepare_job(nn.Linear(4, 2), torch.randn(3, 4), True)
    timed = []
    monkeypatch.setattr(verifier, "timing", lambda fn: (timed.append(fn()), (2e-3, 0.1))[1])
    child = _FakeChild({"pt2": "RuntimeError: no such op",
                        "torchscript": _answer(job, {1: 5e-4, 8: 6e-4}, {1: 0.1, 8: MAX_SPREAD * 3})})
    checked, latency, eager = verify_artifacts(job, {"pt2": Path("/x/m.pt2"),
                                                     "torchscript": Path("/x/m.ts")},
                                               child, latency_batches=(1, 8), timeout=42)
    assert child.timeout == 42
    assert checked["outputs"]["pt2"] == "RuntimeError: no such op"
    assert [a.shape for a in checked["outputs"]["torchscript"]["other"]] == [(5, 2)]
    assert latency == {"torchscript": {1: 5e-4, 8: 6e-4}} and eager == {1: 2e-3, 8: 2e-3}
    assert checked["noisy"] == {"pt2": [], "torchscript": [8]}
    assert [tuple(t.shape) for t in timed] == [(1, 2), (8, 2)]  # job.call of each batch
    assert list(clean_tmp.iterdir()) == []


def test_a_process_that_exits_cleanly_without_a_result_is_an_error(clean_tmp):
    job = prepare_job(TwoHeads(), torch.randn(3, 4), True)
    with pytest.raises(ExportError, match=r"checking torchscript exited with code 0:\n\nFix: "):
        verify_artifacts(job, {"torchscript": Path("/x/m.ts")}, _FakeChild({}), latency_batches=(),
                         timeout=1)
    assert list(clean_tmp.iterdir()) == []


def test_a_failed_process_is_quoted_by_its_last_8_lines_naming_every_format(clean_tmp):
    job = prepare_job(TwoHeads(), torch.randn(3, 4), True)
    text = "\n".join(f"line {i}" for i in range(12)) + "\n\n"
    child = _FakeChild({}, code=1, text=text)
    with pytest.raises(ExportError) as err:
        verify_artifacts(job, {"torchscript": Path("/x/m.ts"), "onnx": Path("/x/m.onnx")}, child,
                         latency_batches=(), timeout=1)
    assert str(err.value) == (
        "export verification: the fresh process checking torchscript, onnx exited with code 1:\n"
        + "\n".join(f"line {i}" for i in range(4, 12))
        + "\nFix: verify=False skips the check (at your own risk).")


def test_outputs_holding_pickled_objects_are_refused(clean_tmp):
    """The outputs come back as plain arrays; a file with pickled objects is not unpickled."""
    job = prepare_job(TwoHeads(), torch.randn(3, 4), True)
    answer = {"outputs": {"example": [np.array([{"a": 1}], dtype=object)], "other": []}}
    with pytest.raises(ValueError, match="allow_pickle"):
        verify_artifacts(job, {"torchscript": Path("/x/m.ts")}, _FakeChild({"torchscript": answer}),
                         latency_batches=(), timeout=1)
    assert list(clean_tmp.iterdir()) == []


def test_the_fresh_process_without_a_pythonpath_gets_only_this_netwright(monkeypatch):
    seen = {}

    class Spy(subprocess.Popen):
        def __init__(self, args, **kwargs):
            seen.update(env=kwargs.get("env"))
            super().__init__(args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Spy)
    monkeypatch.delenv("PYTHONPATH", raising=False)
    Verifier(["torchscript"]).close()
    root = str(Path(netwright.__file__).resolve().parents[1])
    assert [p for p in seen["env"]["PYTHONPATH"].split(os.pathsep) if p] == [root]


def _process(code):
    """A Verifier whose process is ``python -c code`` (what run() does with any process)."""
    v = Verifier.__new__(Verifier)
    v.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return v


def test_run_returns_the_exit_code_and_stderr_else_stdout(tmp_path):
    job = tmp_path / "job.json"
    both = "import sys; print('out'); sys.stderr.write('err'); sys.exit(3)"
    assert _process(both).run(job, 30) == (3, "err")
    assert _process("import sys; print('only out'); sys.exit(2)").run(job, 30) == (2, "only out\n")
    assert _process("import sys; sys.exit(4)").run(job, 30) == (4, "")


def test_a_real_fresh_process_reports_its_error_and_prints_nothing_here(tmp_path, capfd):
    """Its stderr is captured into the error text (here: the job file does not exist), and
    neither stream reaches this process's terminal."""
    v = Verifier(["torchscript"])
    code, text = v.run(tmp_path / "missing.json", 120)
    assert code == 1 and "FileNotFoundError" in text and "missing.json" in text
    out, err = capfd.readouterr()
    assert "missing.json" not in out + err


class _Loud(nn.Module):
    def forward(self, x):
        print("loud forward")
        return x * 2


def test_what_an_artifact_prints_in_the_fresh_process_is_not_shown(tmp_path, capfd):
    path = tmp_path / "loud.ts"
    torch.jit.script(_Loud()).save(str(path))
    job = prepare_job(_Loud(), torch.randn(3, 4), True)  # prints here: the eager run
    capfd.readouterr()
    v = Verifier(["torchscript"])
    try:
        checked, _, _ = verify_artifacts(job, {"torchscript": path}, v, latency_batches=(),
                                         timeout=120)
    finally:
        v.close()
    assert [a.shape for a in checked["outputs"]["torchscript"]["example"]] == [(3, 4)]
    assert "loud forward" not in capfd.readouterr().out


def test_a_batch_is_noisy_when_either_spread_exceeds_max_spread(clean_tmp, monkeypatch):
    """Noisy means a spread strictly above MAX_SPREAD, from the fresh process (batch 1 sits
    exactly at it: not noisy; batch 2 has no spread recorded: not noisy) or from the eager
    timing (batch 4)."""
    job = prepare_job(nn.Linear(4, 2), torch.randn(3, 4), True)

    def eager_timing(fn):
        return 1e-3, (MAX_SPREAD * 2 if fn().shape[0] == 4 else 0.0)

    monkeypatch.setattr(verifier, "timing", eager_timing)
    child = _FakeChild({"torchscript": _answer(job, {1: 1e-3, 2: 1e-3, 4: 1e-3},
                                               {1: MAX_SPREAD, 4: 0.0})})
    checked, _, _ = verify_artifacts(job, {"torchscript": Path("/x/m.ts")}, child,
                                     latency_batches=(1, 2, 4), timeout=1)
    assert checked["noisy"] == {"torchscript": [4]}
