"""Verified export to TorchScript, torch.export (.pt2) and ONNX: every zoo model round-trips
through every format (checked in a fresh process by netwright, and again here by loading each
file), dict/tuple outputs and several inputs work, the standardisation travels inside the ONNX
graph, and bad input gives clear errors with no file left behind.

Only what needs ONNX depends on the onnx packages (the ``export`` extra): where they do not
import, those tests, or the ONNX part of a test that checks every format, skip saying why, after
the TorchScript and .pt2 checks ran; with ``CI`` set they fail instead, so a broken install can
never turn into a row of quiet skips."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn

from netwright.errors import ConfigError, DataError, ExportError
from netwright.exporting import (FILE_NAMES, ExportReport, ExportWarning, export, export_all,
                              predict_onnx)
from netwright.models import build, build_zoo
from netwright.models.scaling import Scaled


def _missing(*modules: str) -> str | None:
    """Why the first of ``modules`` that does not import fails to, or None if all import. Any
    error counts (a broken binary raises OSError, not ImportError): it must not stop this file
    from being collected, which would take the TorchScript and .pt2 tests down with it."""
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - reported as the reason to skip (or fail in CI)
            return f"{name} does not import ({type(exc).__name__}: {exc})"
    return None


ONNX_MISSING = _missing("onnx", "onnxscript", "onnxruntime")  # netwright[export]
TORCH_FORMATS = ["pt2", "torchscript"]


def need_onnx() -> None:
    """Go on only if the ONNX packages import: else skip naming the reason, or, in CI, fail."""
    if ONNX_MISSING is None:
        return
    reason = f"needs the ONNX packages (pip install netwright[export]): {ONNX_MISSING}"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}. CI runs every export test: install the export extra there.",
                    pytrace=False)
    pytest.skip(reason)


def _formats() -> list[str]:
    """Every format this environment can export to: ONNX only where its packages import."""
    return (["onnx"] if ONNX_MISSING is None else []) + TORCH_FORMATS


NO_LATENCY = {"latency_batches": ()}
# torch deprecates torch.jit (this file loads .ts files to check them); netwright's own export
# call silences that itself.
pytestmark = [pytest.mark.filterwarnings("ignore:`torch.jit.* is deprecated"),
              pytest.mark.filterwarnings("ignore:The given buffer is not writable")]


def _load(fmt: str, path: Path):
    """Run an artifact in this process, independently of netwright's own check."""
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

        def run(*xs):
            feed = {i.name: x.numpy() for i, x in zip(session.get_inputs(), xs)}
            return [torch.from_numpy(o) for o in session.run(None, feed)]
        return run
    if fmt == "torchscript":
        module = torch.jit.load(str(path))
    else:
        module = torch.export.load(str(path)).module()

    def run_torch(*xs):
        with torch.inference_mode():
            out = module(*xs)
        if isinstance(out, dict):
            return list(out.values())
        return list(out) if isinstance(out, (tuple, list)) else [out]
    return run_torch


def _eager(model, *xs):
    model.eval()
    with torch.inference_mode():
        out = model(*xs)
    if isinstance(out, dict):
        return list(out.values())
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# --- every zoo model, every format --------------------------------------------------------------

ZOO_CASES = {
    "simplenet": ((20,), {"out_features": 3}),
    "mlp": ((1, 8, 8), {"hidden": [16], "num_classes": 3}),
    "cnn": ((1, 12, 12), {"channels": [4, 8], "hidden": 16}),
    "resnet": ((3, 16, 16), {"stages": [1, 1], "width": 8}),
    "rnn": ((6, 3), {"num_classes": 3}),
    "lstm": ((6, 3), {"num_classes": 2, "bidirectional": True}),
    "gru": ((6, 3), {"outputs": 2, "num_layers": 2}),
    "text_classifier": ((7,), {"vocab_size": 30, "num_classes": 3, "conv_kernel": 3}),
    "text_cnn": ((7,), {"vocab_size": 30, "num_classes": 3, "channels": 4, "ngrams": 3,
                        "ngram_buckets": 101}),
    "text_transformer": ((7,), {"vocab_size": 30, "num_classes": 3, "d_model": 8, "nhead": 2,
                                "conv_kernel": 3}),
    "audio_cnn": ((1, 4000), {"num_classes": 3, "n_mels": 16, "channels": [4, 8]}),
    "m5": ((1, 7000), {"num_classes": 3, "channels": 4}),
}


def test_the_cases_cover_the_whole_zoo():
    from netwright.models import ZOO

    assert set(ZOO_CASES) == set(ZOO)


@pytest.mark.parametrize("name", list(ZOO_CASES))
def test_zoo_model_round_trips_through_every_format(name, tmp_path):
    shape, args = ZOO_CASES[name]
    torch.manual_seed(0)
    model = build_zoo(name, shape, **args)
    if getattr(model, "ngram_bag", None) is not None:  # rows that start at zero would hide a mistake
        torch.nn.init.normal_(model.ngram_bag.table.weight)
        torch.nn.init.normal_(model.ngram_bag.importance.weight)
    latency = {"latency_batches": (1, 64)} if name == "mlp" else NO_LATENCY
    # netwright's recurrent layers call torch's forward through super(), which TorchScript
    # cannot compile: they are traced instead, with a warning saying what that risks.
    # The text models (netwright.models.text) pick their path with checks TorchScript cannot
    # compile either: they are traced too.
    recurrent = name in ("rnn", "lstm", "gru") or name.startswith("text_")
    with pytest.warns(ExportWarning) if recurrent else contextlib.nullcontext():
        # No example: the model's own input_shape (int64 ids for the text classifier) is used.
        reports = export_all(model, tmp_path / "exports", _formats(), **latency)

    assert sorted(reports) == sorted(_formats())
    assert _leftovers(tmp_path / "exports") == sorted(
        [FILE_NAMES[f] for f in _formats()] + ["verify.json"])
    for fmt, report in reports.items():
        assert report.verified and report.path == tmp_path / "exports" / FILE_NAMES[fmt]
        assert report.example_batch == 2 and report.other_batch not in (None, 2)
        assert report.max_abs_other is not None
        assert report.max_abs_diff < 1e-4  # float32 rounding at most
    ts = reports["torchscript"]
    assert ts.method == ("torch.jit.trace" if recurrent else "torch.jit.script")
    assert any("data-dependent control flow" in n for n in ts.notes) == recurrent

    saved = json.loads((tmp_path / "exports" / "verify.json").read_text())
    assert set(saved["reports"]) == set(_formats())
    # a text model's exported sequence length is dynamic too
    assert saved["inputs"][0]["shape"] == (["batch", "sequence"] if name.startswith("text_")
                                           else ["batch", *shape])

    # A third batch size, checked here by loading each file directly.
    if name.startswith("text_"):
        x = torch.randint(0, 30, (3, *shape))
        assert saved["inputs"][0]["dtype"] == "int64"
    else:
        x = torch.randn(3, *shape)
    want = _eager(model, x)
    for fmt, report in reports.items():
        got = _load(fmt, report.path)(x)
        assert len(got) == len(want) == 1
        torch.testing.assert_close(got[0], want[0], rtol=1e-4, atol=1e-5)

    if name == "mlp":
        for report in reports.values():
            assert set(report.latency_eager) == set(report.latency_export) == {1, 64}
            assert all(s > 0 for s in report.latency_export.values())
            assert report.speedup(64) > 0 and "latency batch 64" in str(report)
    need_onnx()  # the ONNX part ran above only if the packages import


# --- outputs and inputs of other forms ----------------------------------------------------------

def test_dict_outputs_keep_their_names_and_order(tmp_path):
    torch.manual_seed(0)
    model = build({"trunk": [{"linear": 8}, "relu"],
                   "out": {"heads": {"label": {"linear": 3}, "value": {"linear": 1}}}}, (5,))
    reports = export_all(model, tmp_path, _formats(), **NO_LATENCY)
    assert all(report.outputs == ["label", "value"] for report in reports.values())

    x = torch.randn(4, 5)
    want = _eager(model, x)
    for fmt, report in reports.items():
        for got, exp in zip(_load(fmt, report.path)(x), want):
            torch.testing.assert_close(got, exp, rtol=1e-4, atol=1e-5)
    need_onnx()
    served = predict_onnx(reports["onnx"].path, x.numpy())
    assert list(served) == ["label", "value"]
    np.testing.assert_allclose(served["value"], want[1].numpy(), rtol=1e-4, atol=1e-5)


class TwoInTwoOut(nn.Module):
    """An image and a table in; logits and the joint features out, as a tuple."""

    def __init__(self):
        super().__init__()
        self.image = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
        self.table = nn.Linear(3, 4)
        self.out = nn.Linear(2 * 4 * 4 + 4, 2)

    def forward(self, image: torch.Tensor, table: torch.Tensor):
        features = torch.cat([self.image(image), torch.relu(self.table(table))], dim=1)
        return self.out(features), features


def test_two_inputs_and_tuple_outputs_round_trip(tmp_path):
    torch.manual_seed(0)
    model = TwoInTwoOut()
    example = (torch.randn(2, 1, 6, 6), torch.randn(2, 3))
    reports = export_all(model, tmp_path, _formats(), example=example, **NO_LATENCY)
    # forward's parameter names
    assert all(report.inputs == ["image", "table"] for report in reports.values())
    assert reports["pt2"].outputs == ["output.0", "output.1"]  # a tuple, flattened in order
    xs = (torch.randn(5, 1, 6, 6), torch.randn(5, 3))
    want = _eager(model, *xs)
    for fmt, report in reports.items():
        got = _load(fmt, report.path)(*xs)
        assert [tuple(g.shape) for g in got] == [(5, 2), (5, 36)]
        for g, w in zip(got, want):
            torch.testing.assert_close(g, w, rtol=1e-4, atol=1e-5)
    need_onnx()
    served = predict_onnx(reports["onnx"].path, {"image": xs[0].numpy(), "table": xs[1].numpy()})
    assert list(served) == ["output.0", "output.1"]
    np.testing.assert_allclose(served["output.0"], want[0].numpy(), rtol=1e-4, atol=1e-5)
    positional = predict_onnx(reports["onnx"].path, (xs[0].numpy(), xs[1].numpy()))
    np.testing.assert_array_equal(positional["output.1"], served["output.1"])


def test_a_dict_example_is_passed_as_keyword_arguments(tmp_path):
    need_onnx()
    model = TwoInTwoOut()
    # Given in the other order: forward's order decides the ONNX inputs' order.
    example = {"table": torch.randn(2, 3), "image": torch.randn(2, 1, 6, 6)}
    report = export(model, tmp_path / "m.onnx", example=example, **NO_LATENCY)
    assert report.verified and report.inputs == ["image", "table"]
    with pytest.raises(ConfigError, match="no parameter 'tabel'"):
        export(model, tmp_path / "n.onnx", example={"image": example["image"],
                                                    "tabel": example["table"]})


def test_a_batch_of_one_still_exports_a_dynamic_batch(tmp_path):
    need_onnx()
    # torch.export (under .pt2 and ONNX) would fix a batch of 1 as a constant.
    model = build([{"linear": 4}, "relu", {"linear": 2}], (3,))
    report = export(model, tmp_path / "m.onnx", example=torch.randn(1, 3), **NO_LATENCY)
    assert report.verified and report.example_batch == 1 and report.other_batch == 5
    assert predict_onnx(report.path, np.ones((9, 3))).shape == (9, 2)


def test_a_fixed_batch_export_refuses_other_batch_sizes(tmp_path):
    need_onnx()
    model = build([{"linear": 2}], (3,))
    report = export(model, tmp_path / "m.onnx", example=torch.randn(4, 3), dynamic_batch=False,
                    latency_batches=(1, 64))
    assert report.verified and report.other_batch is None and report.max_abs_other is None
    assert set(report.latency_export) == {4}  # only the batch it was exported for
    assert predict_onnx(report.path, np.zeros((4, 3))).shape == (4, 2)
    with pytest.raises(DataError, match=r"takes arrays of shape \(4, 3\); got shape \(2, 3\)"):
        predict_onnx(report.path, np.zeros((2, 3)))


# --- serving --------------------------------------------------------------------------------------

def test_scaled_model_serves_raw_features_through_onnx(tmp_path):
    need_onnx()
    torch.manual_seed(0)
    net = build_zoo("mlp", (3,), hidden=[8], outputs=2)
    model = Scaled(net, (3,), (2,))
    model.set_stats(x=(torch.tensor([100.0, -5.0, 0.5]), torch.tensor([10.0, 2.0, 0.1])),
                    y=(torch.tensor([1000.0, 3.0]), torch.tensor([50.0, 0.5])))
    raw = np.array([[110.0, -4.0, 0.45], [95.0, -7.0, 0.6], [100.0, -5.0, 0.5]], np.float64)
    report = export(model, tmp_path / "model.onnx", example=(3,), **NO_LATENCY)
    assert report.verified

    served = predict_onnx(report.path, raw)  # float64 raw features: cast, standardised inside
    want = _eager(model, torch.tensor(raw, dtype=torch.float32))[0].numpy()
    np.testing.assert_allclose(served, want, rtol=1e-5, atol=1e-4)
    # The standardisation really is in the graph: the network alone gives something else.
    alone = _eager(net, torch.tensor(raw, dtype=torch.float32))[0].numpy()
    assert np.abs(served - alone).max() > 1.0
    # In chunks, the same.
    np.testing.assert_allclose(predict_onnx(report.path, raw, batch_size=2), served, rtol=1e-6)


def test_predict_onnx_needs_neither_torch_nor_the_training_stack(tmp_path):
    need_onnx()
    report = export(build([{"linear": 2}], (3,)), tmp_path / "m.onnx", verify=False)
    code = ("import sys, numpy as np\n"
            "from netwright.exporting import predict_onnx\n"
            f"y = predict_onnx({str(report.path)!r}, np.ones((5, 3)))\n"
            "assert y.shape == (5, 2), y.shape\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_predict_onnx_errors(tmp_path):
    need_onnx()
    model = build([{"embedding": [10, 4]}, "flatten", {"linear": 2}], (5,))  # reads int64 ids
    report = export(model, tmp_path / "t.onnx", verify=False)
    ids = np.array([[1, 2, 3, 4, 5]])
    assert predict_onnx(report.path, ids.astype(np.float32)).shape == (1, 2)  # whole floats: ok
    with pytest.raises(DataError, match="integer ids"):
        predict_onnx(report.path, ids + 0.5)
    with pytest.raises(DataError, match=r"shape \(N, 5\); got shape \(1, 4\)"):
        predict_onnx(report.path, ids[:, :4])
    with pytest.raises(ExportError, match="does not exist"):
        predict_onnx(tmp_path / "missing.onnx", ids)
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(ExportError, match="not an ONNX model"):
        predict_onnx(tmp_path / "junk.onnx", ids)


# --- data-dependent control flow ----------------------------------------------------------------

class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.up = nn.Linear(3, 2)
        self.down = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.up(x)
        return self.down(x) * 10


class UnscriptableBranchy(Branchy):
    def forward(self, *inputs):  # *args: torch.jit.script refuses it, so export has to trace
        x = inputs[0]
        if x.sum() > 0:
            return self.up(x)
        return self.down(x) * 10


def test_script_keeps_both_branches_of_data_dependent_control_flow(tmp_path):
    torch.manual_seed(0)
    model = Branchy()
    report = export(model, tmp_path / "m.ts", example=torch.rand(2, 3) + 1, latency_batches=(1,))
    assert report.method == "torch.jit.script" and report.verified
    loaded = torch.jit.load(str(report.path))
    for x in (torch.rand(4, 3) + 1, -torch.rand(4, 3) - 1):  # one input per branch
        torch.testing.assert_close(loaded(x), _eager(model, x)[0])

    # The report, as verify.json and the CLI show it.
    data = json.loads(json.dumps(report.to_dict()))
    assert data["format"] == "torchscript" and data["verified"] is True
    assert set(data["latency_export"]) == {"1"} and data["speedup"]["1"] > 0
    text = str(report)
    assert "verified in a fresh process" in text and "random (batch 5)" in text
    assert "latency batch 1: eager" in text


@pytest.mark.parametrize("fmt", ["pt2", "onnx"])
def test_graph_formats_refuse_data_dependent_control_flow(fmt, tmp_path):
    if fmt == "onnx":
        need_onnx()
    path = tmp_path / f"m.{fmt}"
    with pytest.raises(ExportError) as info:
        export(Branchy(), path, example=(3,), **NO_LATENCY)
    message = str(info.value)
    assert "data-dependent control flow" in message and "if x.sum() > 0" in message
    assert "torch.cond" in message and "'torchscript'" in message
    assert _leftovers(tmp_path) == []


def test_trace_fallback_warns_that_it_freezes_data_dependent_control_flow(tmp_path):
    torch.manual_seed(0)
    model = UnscriptableBranchy()
    with pytest.warns(ExportWarning, match="data-dependent control flow") as caught:
        report = export(model, tmp_path / "m.ts", example=torch.rand(2, 3) + 1, **NO_LATENCY)
    message = str(caught[0].message)
    assert "Compiled functions can't take variable number of arguments" in message
    assert "test_export.py" in message  # where the tracer saw the branch
    assert report.method == "torch.jit.trace" and report.verified
    # Positive inputs all take the traced branch, so the check passes, but the warning was
    # right: the other branch is gone.
    loaded = torch.jit.load(str(report.path))
    x = -torch.rand(4, 3) - 1
    assert not torch.allclose(loaded(x), _eager(model, x)[0])


class BatchBranch(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(3, 2)

    def forward(self, *inputs):
        x = inputs[0]
        if x.shape[0] > 3:  # frozen to the example's batch of 2 by a trace
            return self.a(x) * 2
        return self.a(x)


def test_verification_catches_a_trace_that_does_not_generalise(tmp_path):
    with pytest.warns(ExportWarning):
        with pytest.raises(ExportError) as info:
            export(BatchBranch(), tmp_path / "m.ts", example=(3,), **NO_LATENCY)
    message = str(info.value)
    assert "does not compute what the model computes" in message
    assert "random inputs of batch 5" in message and "max abs diff" in message
    assert "the example (batch 2)" not in message  # the example itself matched
    assert _leftovers(tmp_path) == []


# --- an op ONNX cannot express ------------------------------------------------------------------

class Eigen(nn.Module):
    """Eigenvalue features: torch.linalg.eigvals works on complex numbers, which ONNX lacks."""

    def __init__(self):
        super().__init__()
        self.out = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.linalg.eigvals(x).real)


def test_an_op_onnx_cannot_express_is_named_and_leaves_no_file(tmp_path):
    need_onnx()
    with pytest.raises(ExportError) as info:
        export(Eigen(), tmp_path / "eig.onnx", example=(3, 3), **NO_LATENCY)
    message = str(info.value)
    assert message.startswith("ONNX export of Eigen failed")
    assert "aten.linalg_eig" in message and "'pt2'" in message
    assert _leftovers(tmp_path) == []

    # All or nothing: pt2 works, but export_all writes nothing and says what to do.
    with pytest.raises(ExportError) as info:
        export_all(Eigen(), tmp_path / "exports", ["onnx", "pt2"], example=(3, 3), **NO_LATENCY)
    message = str(info.value)
    assert "pt2 worked" in message and "formats=['pt2']" in message
    assert "aten.linalg_eig" in message
    assert _leftovers(tmp_path) == []  # not even the folder it created


# --- bad input ------------------------------------------------------------------------------------

def test_an_example_of_the_wrong_shape_names_the_layer_and_both_sizes(tmp_path):
    model = build_zoo("simplenet", (20,), out_features=3)
    with pytest.raises(ExportError) as info:
        export(model, tmp_path / "m.onnx", example=torch.randn(4, 64))
    message = str(info.value)
    assert "Linear 'linear1' expects 20 input features; the example has 64" in message
    assert "Fix: give an example batch of shape (N, 20)" in message
    assert _leftovers(tmp_path) == []


def test_a_wrong_image_size_names_the_layer_where_it_breaks(tmp_path):
    model = build_zoo("cnn", (1, 12, 12), channels=[4], hidden=8)
    with pytest.raises(ExportError, match=r"Linear 'fc1' expects 144 input features; it receives "
                                          r"576 \(shape \(2, 576\)\) from the example of shape "
                                          r"\(2, 1, 24, 24\)"):
        export_all(model, tmp_path / "exports", example=(1, 24, 24))
    assert _leftovers(tmp_path) == []


def test_other_example_mistakes(tmp_path):
    model = build_zoo("simplenet", (20,), out_features=3)
    with pytest.raises(ExportError, match=r"one sample without the batch dimension.*"
                                          r"example=x.unsqueeze\(0\)"):
        export(model, tmp_path / "m.onnx", example=torch.randn(20))
    with pytest.raises(ExportError, match="Conv2d 'conv1' expects 1 input channels; the "
                                          "example has 3"):
        export(build_zoo("cnn", (1, 8, 8)), tmp_path / "c.onnx", example=(3, 8, 8))
    with pytest.raises(ExportError, match=r"Embedding 'embedding' expects int64 token ids"):
        export(build_zoo("text_classifier", (5,), vocab_size=9), tmp_path / "t.onnx",
               example=torch.randn(2, 5))
    with pytest.raises(ConfigError, match="needs an example input"):
        export(TwoInTwoOut(), tmp_path / "x.onnx")
    with pytest.raises(ConfigError, match="expected a batch of inputs"):
        export(model, tmp_path / "m.onnx", example="(20,)")
    assert _leftovers(tmp_path) == []


def test_a_format_typo_is_a_config_error_with_a_suggestion(tmp_path):
    model = build([{"linear": 2}], (3,))
    with pytest.raises(ConfigError, match="got 'onxx'. Did you mean 'onnx'?"):
        export(model, tmp_path / "m.bin", format="onxx")
    with pytest.raises(ConfigError, match="Did you mean 'torchscript'?"):
        export_all(model, tmp_path / "exports", formats="onnx,torchscirpt")
    with pytest.raises(ConfigError, match=r"ends in '.onnx'.*format='pt2'"):
        export(model, tmp_path / "m.onnx", format="pt2")
    assert _leftovers(tmp_path) == []


def test_an_output_folder_that_is_missing_or_read_only(tmp_path):
    model = build([{"linear": 2}], (3,))
    with pytest.raises(ExportError, match=r"nope' does not exist. Fix: create it"):
        export(model, tmp_path / "nope" / "m.onnx")
    with pytest.raises(ExportError, match="does not exist"):
        export_all(model, tmp_path / "nope" / "deeper" / "exports")
    with pytest.raises(ExportError, match="is a folder"):
        export(model, tmp_path)
    assert _leftovers(tmp_path) == []

    if os.geteuid() == 0:  # root writes through permission bits: use a folder no one can write
        read_only = Path("/sys")
        try:
            tempfile.NamedTemporaryFile(dir=read_only).close()
            pytest.skip("no read-only folder to test with")
        except OSError:
            pass
    else:
        read_only = tmp_path / "ro"
        read_only.mkdir()
        read_only.chmod(0o555)
    with pytest.raises(ExportError, match="is not writable"):
        export(model, read_only / "m.onnx")
    with pytest.raises(ExportError, match="is not writable"):
        export_all(model, read_only / "exports")


def test_export_leaves_the_model_as_it_was(tmp_path):
    model = build_zoo("mlp", (4,), hidden=[8], outputs=1, dropout=0.5)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = export(model, tmp_path / ("m.onnx" if ONNX_MISSING is None else "m.pt2"),
                    **NO_LATENCY)
    assert model.training and all(m.training for m in model.modules())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # Exported in eval mode: dropout off, so the check against eager (in eval) passes.
    assert report.verified
    need_onnx()  # without the ONNX packages, only .pt2 was checked


def test_an_unverified_export_says_so(tmp_path):
    report = export(build([{"linear": 2}], (3,)), tmp_path / "n.ts", verify=False)
    assert isinstance(report, ExportReport) and report.path.is_file()
    assert not report.verified and report.max_abs_diff is None and not report.latency_export
    assert "NOT verified" in str(report) and "not verified (verify=False)" in report.notes


# --- the check runs in a fresh process ------------------------------------------------------------

class _Poisoned(AssertionError):
    pass


def test_verification_runs_in_a_separate_process(tmp_path, monkeypatch):
    """Every way to load or run an artifact is poisoned in this process (torch.jit.load,
    torch.export.load, onnxruntime's InferenceSession, and netwright's own verifying functions):
    a check run here would fail with _Poisoned. A fresh process, with its own imports, never sees
    the poison, so only a verification that really runs elsewhere lets the exports verify."""
    def poisoned(*args, **kwargs):
        raise _Poisoned("an artifact was loaded or verified in the test's own process")

    from netwright.exporting import child, runtime

    for module, name in [(torch.jit, "load"), (torch.export, "load"),
                         (child, "_verify_main"), (child, "_runner"),
                         (runtime, "onnx_session")]:
        monkeypatch.setattr(module, name, poisoned)
    if ONNX_MISSING is None:
        import onnxruntime

        monkeypatch.setattr(onnxruntime, "InferenceSession", poisoned)
    started = []

    class Spy(subprocess.Popen):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(subprocess, "Popen", Spy)
    torch.manual_seed(0)
    model = build([{"linear": 6}, "relu", {"linear": 2}], (4,))
    reports = export_all(model, tmp_path, _formats(), **NO_LATENCY)
    assert sorted(reports) == sorted(_formats())
    for report in reports.values():
        assert report.verified and report.max_abs_diff < 1e-5 and report.max_abs_other < 1e-5
        assert "verified in a fresh process" in str(report)
    saved = json.loads((tmp_path / "verify.json").read_text())
    assert all(saved["reports"][fmt]["verified"] for fmt in _formats())
    # One child python ran `-m netwright.exporting` for all the formats, and exited cleanly.
    assert len(started) == 1
    child = started[0]
    assert child.pid != os.getpid() and child.returncode == 0
    assert child.args[:3] == [sys.executable, "-m", "netwright.exporting"]
    need_onnx()


@pytest.mark.parametrize("ci", [None, "true"], ids=["locally", "in-CI"])
def test_missing_onnx_packages_skip_with_the_reason_only_outside_ci(monkeypatch, ci):
    monkeypatch.setitem(globals(), "ONNX_MISSING", "onnx does not import (ImportError: gone)")
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)
    outcome = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(outcome, match=r"netwright\[export\]\): onnx does not import "
                                      r"\(ImportError: gone\)") as info:
        need_onnx()
    assert ("CI runs every export test" in str(info.value)) == bool(ci)
    assert _formats() == TORCH_FORMATS
