"""Export a model to TorchScript, ``torch.export`` (``.pt2``) or ONNX, and prove it computes what
the model computes.

Each artifact is written to a temporary name in its folder and loaded back **in a fresh Python
process** (``torch.jit.load``, ``torch.export.load``, an onnxruntime ``InferenceSession``), which
runs it on the example batch and on fresh random inputs of another batch size, and times it at
batch 1 and 64. Its outputs are compared with the eager model's, computed here; only an artifact
within tolerance is renamed into place, so a failed export never leaves a file behind.

    report = export(model, "model.onnx", example=(20,))         # a random batch of 2 × (20,)
    reports = export_all(model, "runs/demo/exports", example=x)  # .onnx, .ts, .pt2, verify.json
    y = predict_onnx("runs/demo/exports/model.onnx", features)   # onnxruntime + numpy only

Outputs are compared, and named in ONNX, in one documented order: a tensor is one output
(``output``); a dict gives its values in key order (named by key, ``a.b`` when nested); a tuple or
list gives its items in order (``output.0``, ``output.1``, ...).

torch, onnx and onnxruntime are imported inside the functions that use them: importing this module
is cheap, and :func:`predict_onnx` never imports torch.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import io
import json
import logging
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .atomic import fsync_dir
from .errors import ConfigError, DataError, ExportError, describe, did_you_mean

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = ["FORMATS", "FILE_NAMES", "ExportReport", "ExportWarning", "export", "export_all",
           "predict_onnx", "DEFAULT_TOLERANCE"]

FORMATS = ("onnx", "torchscript", "pt2")
#: The file each format is written to by :func:`export_all`.
FILE_NAMES = {"onnx": "model.onnx", "torchscript": "model.ts", "pt2": "model.pt2"}
VERIFY_FILE = "verify.json"
_LABEL = {"onnx": "ONNX", "torchscript": "TorchScript", "pt2": "torch.export (.pt2)"}
_ALIASES = {"ts": "torchscript", "torch.jit": "torchscript", "torch.export": "pt2"}
_SUFFIXES = {".onnx": "onnx", ".ts": "torchscript", ".torchscript": "torchscript", ".pt2": "pt2"}
#: (rtol, atol) by the outputs' dtype when rtol/atol are not given. Float32 leaves room for the
#: reordered sums of fused kernels and of other batch sizes (GEMM blocking), not for real errors.
DEFAULT_TOLERANCE = {"float64": (1e-7, 1e-9), "float32": (1e-3, 1e-5),
                     "float16": (1e-2, 1e-3), "bfloat16": (2e-2, 1e-2)}
LATENCY_BATCHES = (1, 64)
_SEED = 0
_SHOWN = 5  # differences listed in an error


class ExportWarning(UserWarning):
    """An export that works but may not generalise (e.g. TorchScript made by tracing)."""


# --------------------------------------------------------------------------------------------
# The report
# --------------------------------------------------------------------------------------------

@dataclass
class ExportReport:
    """What :func:`export` wrote and what its fresh-process check found.

    ``max_abs_example``/``max_rel_example`` compare the artifact with the eager model on the
    example batch, ``max_abs_other``/``max_rel_other`` on fresh random inputs of batch
    ``other_batch``. The relative difference is ``|artifact - eager| / max(|eager|, atol)``; an
    element passes when ``|artifact - eager| <= atol + rtol * |eager|``. ``latency_eager`` and
    ``latency_export`` map a batch size to the median seconds of one forward call (the artifact
    timed in the fresh process).

    >>> r = ExportReport(path=Path("m.onnx"), format="onnx", method="torch.onnx.export",
    ...                  latency_eager={1: 2e-4}, latency_export={1: 1e-4})
    >>> r.speedup(1)
    2.0
    """

    path: Path
    format: str
    method: str
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    dynamic_batch: bool = True
    verified: bool = False
    rtol: float | None = None
    atol: float | None = None
    example_batch: int | None = None
    other_batch: int | None = None
    max_abs_example: float | None = None
    max_rel_example: float | None = None
    max_abs_other: float | None = None
    max_rel_other: float | None = None
    latency_eager: dict[int, float] = field(default_factory=dict)
    latency_export: dict[int, float] = field(default_factory=dict)
    latency_noisy: list[int] = field(default_factory=list)  # batches whose timings spread too much
    opset: int | None = None
    torch_version: str = ""
    notes: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float | None:
        """The largest absolute difference over every check."""
        values = [v for v in (self.max_abs_example, self.max_abs_other) if v is not None]
        return max(values) if values else None

    @property
    def max_rel_diff(self) -> float | None:
        """The largest relative difference over every check."""
        values = [v for v in (self.max_rel_example, self.max_rel_other) if v is not None]
        return max(values) if values else None

    def speedup(self, batch: int) -> float | None:
        """Eager seconds / artifact seconds at ``batch`` (above 1: the artifact is faster)."""
        eager, exported = self.latency_eager.get(batch), self.latency_export.get(batch)
        if not eager or not exported:
            return None
        return eager / exported

    def to_dict(self) -> dict:
        """A JSON-able dict (what ``verify.json`` holds per format).

        >>> ExportReport(Path("m.ts"), "torchscript", "torch.jit.script").to_dict()["path"]
        'm.ts'
        """
        out = dataclasses.asdict(self)
        out["path"] = str(self.path)
        out["latency_eager"] = {str(k): v for k, v in self.latency_eager.items()}
        out["latency_export"] = {str(k): v for k, v in self.latency_export.items()}
        out["max_abs_diff"], out["max_rel_diff"] = self.max_abs_diff, self.max_rel_diff
        out["speedup"] = {str(b): self.speedup(b) for b in self.latency_export}
        out["latency_noisy"] = list(self.latency_noisy)
        return out

    def __str__(self) -> str:
        head = f"{self.path} ({self.format}, {self.method}"
        head += f", opset {self.opset})" if self.opset else ")"
        lines = [head + (": verified in a fresh process" if self.verified else ": NOT verified")]
        if self.verified:
            lines.append(f"  tolerance: rtol {self.rtol:.0e}, atol {self.atol:.0e}")
            lines.append(f"  example (batch {self.example_batch}): max abs diff "
                         f"{self.max_abs_example:.2e}, max rel diff {self.max_rel_example:.2e}")
            if self.max_abs_other is not None:
                lines.append(f"  random (batch {self.other_batch}):  max abs diff "
                             f"{self.max_abs_other:.2e}, max rel diff {self.max_rel_other:.2e}")
        for batch in sorted(self.latency_export):
            eager, art = self.latency_eager.get(batch), self.latency_export[batch]
            ratio = self.speedup(batch)
            note = " (timings too noisy to compare)" if batch in self.latency_noisy else (
                f" ({ratio:.2f}x eager's speed)" if ratio else "")
            lines.append(f"  latency batch {batch}: eager {_ms(eager)}, {self.format} {_ms(art)}{note}")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _ms(seconds: float | None) -> str:
    return "n/a" if seconds is None else f"{seconds * 1e3:.3f} ms"


# --------------------------------------------------------------------------------------------
# Arguments
# --------------------------------------------------------------------------------------------

def _check_format(fmt: Any, path: Path | None = None) -> str:
    """The canonical format name; ``None`` takes it from ``path``'s suffix (else ONNX)."""
    by_suffix = _SUFFIXES.get(path.suffix.lower()) if path is not None else None
    if fmt is None:
        if by_suffix is None and path is not None and path.suffix:
            raise ConfigError(
                f"export cannot tell the format from the suffix {path.suffix!r} of "
                f"{str(path)!r}. Fix: name the file *.onnx, *.ts or *.pt2, or pass format= "
                f"({', '.join(map(repr, FORMATS))}).")
        return by_suffix or "onnx"
    name = str(fmt).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise ConfigError(
            f"export format must be one of {', '.join(map(repr, FORMATS))}; got {fmt!r}."
            f"{did_you_mean(str(fmt), FORMATS + tuple(_ALIASES))} Fix: e.g. format='onnx', or "
            f"--format onnx,torchscript,pt2 on the command line."
        )
    if by_suffix is not None and by_suffix != name:
        raise ConfigError(
            f"export: the path {str(path)!r} ends in {path.suffix!r}, the suffix of {by_suffix!r} "
            f"files, but format={fmt!r}. Fix: name the file *{_suffix_of(name)} or pass "
            f"format={by_suffix!r}."
        )
    return name


def _suffix_of(fmt: str) -> str:
    return Path(FILE_NAMES[fmt]).suffix


def _check_formats(formats: Any) -> list[str]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f.strip()]
    if not isinstance(formats, (list, tuple)) or not formats:
        raise ConfigError(f"export formats: expected a list such as ['onnx', 'torchscript', "
                          f"'pt2'] (or 'onnx,pt2'); got {formats!r}.")
    out: list[str] = []
    for f in formats:
        name = _check_format(f)
        if name not in out:
            out.append(name)
    return out


def _check_tolerance(rtol: Any, atol: Any) -> None:
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not value >= 0 or math.isinf(value)):
            raise ConfigError(f"export {name} must be a finite number >= 0 (or None for the "
                              f"default by dtype); got {value!r}.")


def _check_target_file(path: Path) -> None:
    """The file's folder must exist and be writable; the path must not be a folder."""
    if path.is_dir():
        raise ExportError(
            f"export: {str(path)!r} is a folder; expected a file path such as "
            f"{str(path / 'model.onnx')!r}. Fix: name the file, or call export_all(model, "
            f"{str(path)!r}) to write every format into that folder."
        )
    _check_writable_folder(path.parent, path)


def _check_not_replacing(paths: Sequence[Path], overwrite: bool, who: str) -> None:
    """Refuse (naming every one) paths that already exist, links included, unless overwrite."""
    if overwrite:
        return
    taken = [p for p in paths if os.path.lexists(p)]
    if taken:
        names = ", ".join(repr(str(p)) for p in taken)
        raise ExportError(
            f"{who}: {names} already exist{'s' if len(taken) == 1 else ''}; netwright does not "
            f"replace existing files, and nothing was written. Fix: pass overwrite=True "
            f"(netwright export RUN_DIR --overwrite) to replace "
            f"{'it' if len(taken) == 1 else 'them'}, or export to another path."
        )


def _check_writable_folder(folder: Path, target: Path) -> None:
    if not folder.exists():
        missing = folder
        while not missing.parent.exists() and missing.parent != missing:
            missing = missing.parent
        raise ExportError(
            f"export: cannot write {str(target)!r}: the folder {str(folder)!r} does not exist"
            f"{f' ({str(missing)!r} is missing)' if missing != folder else ''}. Fix: create "
            f"it first (mkdir -p {folder}) or write into an existing folder."
        )
    if not folder.is_dir():
        raise ExportError(f"export: cannot write {str(target)!r}: {str(folder)!r} is a file, not "
                          f"a folder. Fix: choose a path inside a folder.")
    # os.access says yes to root on a read-only folder; only a real write tells.
    try:
        fd, probe = tempfile.mkstemp(prefix=".netwright-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(
            f"export: cannot write {str(target)!r}: the folder {str(folder)!r} is not writable "
            f"({exc.strerror or type(exc).__name__}). Fix: write into a folder you can write to, "
            f"or change its permissions."
        ) from None


# --------------------------------------------------------------------------------------------
# The job: the model on the CPU in eval mode, its inputs, its eager outputs
# --------------------------------------------------------------------------------------------

@dataclass
class _Job:
    net: Any  # nn.Module, CPU, eval mode
    inputs: list  # example tensors, in input_names order
    keywords: bool  # passed as forward(**dict) rather than forward(*tuple)
    input_names: list[str]
    output_names: list[str]
    expected: list  # eager outputs on the example, flattened
    batch: int
    dynamic: bool
    int_ranges: list  # per input: (low, high) for integer inputs, else None
    float_stats: list  # per input: (mean, std) for float inputs, else None
    other: list = field(default_factory=list)  # random inputs of another batch size
    other_expected: list = field(default_factory=list)  # eager outputs on them, flattened

    def call(self, inputs: Sequence) -> Any:
        if self.keywords:
            return self.net(**dict(zip(self.input_names, inputs)))
        return self.net(*inputs)

    def trace_inputs(self) -> list:
        """Inputs to trace with: torch.export specializes a dimension of size 1 to a constant,
        so a batch of 1 is doubled (the model sees the same sample twice)."""
        import torch

        if self.dynamic and self.batch == 1:
            return [torch.cat([t, t]) for t in self.inputs]
        return list(self.inputs)

    def trace_args(self) -> tuple[tuple, dict]:
        xs = self.trace_inputs()
        if self.keywords:
            return (), dict(zip(self.input_names, xs))
        return tuple(xs), {}

    def dynamic_shapes(self) -> Any:
        if not self.dynamic:
            return None
        import torch

        batch = torch.export.Dim("batch", min=1)
        if self.keywords:
            return {n: {0: batch} for n in self.input_names}
        return tuple({0: batch} for _ in self.inputs)


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Outputs in the documented order: dicts by key order, tuples/lists by position."""
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return [(prefix or "output", obj)]
    if isinstance(obj, Mapping):
        out = []
        for key, value in obj.items():
            out += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(obj, (list, tuple)):
        out = []
        for i, value in enumerate(obj):
            out += _flatten(value, f"{prefix}.{i}" if prefix else f"output.{i}")
        return out
    raise ExportError(
        f"export: the model returns {describe(obj)}{' at ' + repr(prefix) if prefix else ''}; "
        f"exports hold tensors only (alone, or in dicts, tuples and lists). Fix: return tensors "
        f"from forward, and compute other values outside the model."
    )


def _forward_names(net: Any, count: int) -> list[str]:
    try:
        params = list(inspect.signature(net.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names: list[str] = []
    for p in params:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or len(names) == count:
            break
        names.append(p.name)
    while len(names) < count:
        names.append(f"input_{len(names)}")
    return names


def _cpu_eval_copy(model: Any) -> Any:
    """The model to export: itself if it lives on the CPU (modes restored afterwards), else a
    CPU copy. Artifacts are made on the CPU so that they load anywhere."""
    import torch

    tensors = list(model.parameters()) + list(model.buffers())
    if all(t.device.type == "cpu" for t in tensors):
        return model
    return copy.deepcopy(model).to(torch.device("cpu"))


@contextlib.contextmanager
def _eval_mode(net: Any):
    modes = [(m, m.training) for m in net.modules()]
    net.eval()
    try:
        yield net
    finally:
        for m, mode in modes:
            m.training = mode


def _example_inputs(model: Any, example: Any, gen: Any) -> tuple[list, bool, list[str] | None,
                                                                  bool]:
    """(tensors, keywords?, names for keywords, made from a shape?)."""
    import torch

    from .models.builder import spec_of
    from .models.scaling import unwrap

    spec = spec_of(unwrap(model)) or {}
    if example is None:
        if not spec.get("input_shape"):
            raise ConfigError(
                "export needs an example input: the model was not built by netwright with an "
                "input_shape, so its input cannot be guessed. Fix: pass example=a batch of real "
                "inputs (a tensor, a tuple of tensors or a dict of tensors), or the shape of one "
                "sample, e.g. example=(20,)."
            )
        example = tuple(spec["input_shape"])
    if isinstance(example, np.ndarray):
        example = torch.from_numpy(example)
    is_shape = isinstance(example, torch.Size) or (
        isinstance(example, (tuple, list)) and example
        and all(isinstance(s, int) and not isinstance(s, bool) for s in example))
    if is_shape:
        shape = tuple(int(s) for s in example)
        if any(s < 1 for s in shape):
            raise ConfigError(f"export example shape {shape}: sizes must be positive.")
        if spec.get("input_dtype") == "int64" or _first_layer_is_embedding(model):
            vocab = _vocab_size(model) or 2
            return [torch.randint(0, vocab, (2, *shape), generator=gen)], False, None, True
        return [torch.randn((2, *shape), generator=gen)], False, None, True
    if isinstance(example, torch.Tensor):
        return [example], False, None, False
    if isinstance(example, (tuple, list)) and example and all(
            isinstance(t, (torch.Tensor, np.ndarray)) for t in example):
        return [torch.as_tensor(t) for t in example], False, None, False
    if isinstance(example, Mapping) and example and all(
            isinstance(k, str) and isinstance(v, (torch.Tensor, np.ndarray))
            for k, v in example.items()):
        return [torch.as_tensor(v) for v in example.values()], True, list(example), False
    raise ConfigError(
        f"export example: expected a batch of inputs (a tensor, a tuple of tensors for a model "
        f"with several inputs, or a dict of tensors passed as forward's keyword arguments) or "
        f"the shape of one sample such as (20,); got {describe(example)}."
    )


def _first_layer_is_embedding(model: Any) -> bool:
    from torch import nn

    for m in model.modules():
        if next(m.parameters(recurse=False), None) is not None:
            return isinstance(m, nn.Embedding)
    return False


def _vocab_size(model: Any) -> int | None:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Embedding):
            return int(m.num_embeddings)
    return None


def _prepare(model: Any, example: Any, dynamic_batch: bool) -> _Job:
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ConfigError(f"export expects an nn.Module; got {describe(model)}. Fix: pass the "
                          f"model (e.g. nw.load(run_dir)).")
    gen = torch.Generator().manual_seed(_SEED)
    inputs, keywords, names, from_shape = _example_inputs(model, example, gen)
    net = _cpu_eval_copy(model)
    inputs = [t.detach().to("cpu") for t in inputs]
    for name, t in zip(names or [None] * len(inputs), inputs):
        if t.ndim == 0:
            raise ExportError(f"export example{' ' + repr(name) if name else ''} is a scalar "
                              f"tensor; expected a batch with the batch dimension first. Fix: "
                              f"e.g. example=x.reshape(1, -1).")
    if keywords:
        order = _forward_names(net, 10_000)
        unknown = [n for n in names if n not in order]
        if unknown:
            raise ConfigError(
                f"export example dict: its keys are passed as forward's keyword arguments, but "
                f"{type(net).__name__}.forward has no parameter {', '.join(map(repr, unknown))} "
                f"(it takes {', '.join(order) or 'none'}). Fix: use forward's parameter names as "
                f"keys, or pass a tuple in forward's order."
            )
        # forward's order: torch.export lays keyword inputs out in the signature's order.
        pairs = sorted(zip(names, inputs), key=lambda p: order.index(p[0]))
        names, inputs = [p[0] for p in pairs], [p[1] for p in pairs]
    else:
        names = _forward_names(net, len(inputs))
    batches = {int(t.shape[0]) for t in inputs}
    if dynamic_batch and len(batches) > 1:
        raise ExportError(
            f"export example: with dynamic_batch=True the first dimension of every input is the "
            f"batch, but the inputs have first sizes "
            f"{', '.join(f'{n}={int(t.shape[0])}' for n, t in zip(names, inputs))}. Fix: give "
            f"every input the same batch size, or dynamic_batch=False."
        )
    with _eval_mode(net):
        _check_batch_dimension(model, inputs)
        outputs = _run_eager(net, inputs, keywords, names)
    flat = _flatten(outputs)
    out_names = [n for n, _ in flat]
    if len(set(out_names)) != len(out_names):
        raise ExportError(f"export: the model's outputs would get the same name twice "
                          f"({out_names}). Fix: use distinct dict keys.")
    int_ranges, float_stats = [], []
    for t in inputs:
        if t.is_floating_point():
            f = t.double()
            std = float(f.std()) if t.numel() > 1 else 0.0
            float_stats.append((float(f.mean()), std if std > 0 and math.isfinite(std) else 1.0))
            int_ranges.append(None)
        else:
            float_stats.append(None)
            if t.dtype == torch.bool:
                int_ranges.append((0, 1))
            elif from_shape:
                int_ranges.append((0, (_vocab_size(net) or 2) - 1))
            else:
                int_ranges.append((int(t.min()), int(t.max())) if t.numel() else (0, 0))
    job = _Job(net=net, inputs=inputs, keywords=keywords, input_names=list(names),
               output_names=out_names, expected=[t.detach() for _, t in flat],
               batch=int(inputs[0].shape[0]), dynamic=bool(dynamic_batch),
               int_ranges=int_ranges, float_stats=float_stats)
    if job.dynamic:
        job.other = _random_inputs(job, _other_batch(job.batch),
                                   torch.Generator().manual_seed(_SEED + 1))
        job.other_expected = [t for _, t in _flatten(_eager_on(job, job.other))]
    return job


def _eager_on(job: _Job, inputs: list) -> Any:
    """The eager model on inputs of another batch size: a model that cannot take them has its
    batch size written into forward, which a dynamic-batch export cannot hold."""
    import torch

    try:
        with _eval_mode(job.net), torch.inference_mode():
            return job.call(inputs)
    except Exception as exc:  # noqa: BLE001 - the model's own failure, explained
        raise ExportError(
            f"export: with dynamic_batch=True the model must run on any batch size, but it "
            f"runs on the example (batch {job.batch}) and fails on a batch of "
            f"{int(inputs[0].shape[0])}: {type(exc).__name__}: {_first_line(exc)}. Nothing was "
            f"exported. Fix: use the input's own batch size in forward (x.reshape(x.shape[0], "
            f"-1), not x.reshape({job.batch}, -1)), or dynamic_batch=False to export for batch "
            f"{job.batch} only."
        ) from None


def _check_batch_dimension(model: Any, inputs: list) -> None:
    from .models.builder import spec_of
    from .models.scaling import unwrap

    shape = (spec_of(unwrap(model)) or {}).get("input_shape")
    if shape and len(inputs) == 1 and tuple(inputs[0].shape) == tuple(shape):
        raise ExportError(
            f"export example has shape {tuple(inputs[0].shape)}: one sample without the batch "
            f"dimension; the model takes batches (N, {', '.join(map(str, shape))}). Fix: "
            f"example=x.unsqueeze(0), or example={tuple(shape)} to let netwright make a batch."
        )


def _run_eager(net: Any, inputs: list, keywords: bool, names: list[str]) -> Any:
    """The eager forward on the example, with the failing layer named if it fails."""
    import torch

    stack: list = []
    handles = []

    def pre(module, args, kwargs):
        stack.append((module, args, kwargs))

    def post(module, args, kwargs, output):
        if stack:
            stack.pop()

    for m in net.modules():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.inference_mode():
            if keywords:
                return net(**dict(zip(names, inputs)))
            return net(*inputs)
    except Exception as exc:  # noqa: BLE001 - any failure is an example the model cannot take
        raise _forward_error(net, inputs, stack, exc) from None
    finally:
        for h in handles:
            h.remove()


def _shape(t: Any) -> str:
    return str(tuple(t.shape)) if hasattr(t, "shape") else describe(t)


def _forward_error(net: Any, inputs: list, stack: list, exc: BaseException) -> ExportError:
    """Name the innermost module that was running when the forward failed, and what it
    expected against what it got, e.g. ``Linear 'fc1' expects 20 input features; the example
    has 64 (shape (4, 64))``."""
    from .models.builder import spec_of
    from .models.scaling import unwrap

    example = ", ".join(_shape(t) for t in inputs)
    core = (f"{type(net).__name__}.forward fails on the example ({example}): "
            f"{type(exc).__name__}: {_first_line(exc)}")
    if stack and stack[-1][0] is not net:
        module, args, kwargs = stack[-1]
        x = args[0] if args else next(iter(kwargs.values()), None)
        label = f"{type(module).__name__} {_module_name(net, module)!r}"
        if any(x is t for t in inputs):
            source = "the example has {} (shape " + _shape(x) + ")"
        else:
            source = "it receives {} (shape " + _shape(x) + ") from the example of shape " + example
        mismatch = _layer_mismatch(module, x) if hasattr(x, "shape") else None
        if mismatch is not None:
            expected, got = mismatch
            core = f"{label} expects {expected}; {source.format(got)}"
        else:
            core = (f"{label} fails on its input of shape {_shape(x)}: {type(exc).__name__}: "
                    f"{_first_line(exc)}")
    spec = spec_of(unwrap(net)) or {}
    shape = spec.get("input_shape")
    if shape:
        dtype = " int64 token ids" if spec.get("input_dtype") == "int64" else ""
        fix = (f"give an example batch of shape (N, {', '.join(map(str, shape))}){dtype}, what "
               f"the model was built for, or example={tuple(shape)} to let netwright make one.")
    else:
        fix = ("give an example batch shaped like the data the model was trained on, the batch "
               "dimension first.")
    return ExportError(f"export: {core}. The model cannot run on this example, so nothing was "
                       f"exported. Fix: {fix}")


def _module_name(net: Any, module: Any) -> str:
    return next((n for n, m in net.named_modules() if m is module), "?")


def _layer_mismatch(module: Any, x: Any) -> tuple[str, Any] | None:
    """(what the layer expects, what it got) where a common layer's input does not fit it."""
    from torch import nn

    if isinstance(module, nn.Linear) and x.ndim >= 1 and x.shape[-1] != module.in_features:
        return f"{module.in_features} input features", x.shape[-1]
    if isinstance(module, nn.modules.conv._ConvNd):
        rank = len(module.kernel_size) + 2
        if x.ndim not in (rank - 1, rank):
            return f"{rank}-D input (N, C, ...)", f"{x.ndim} dimensions"
        if x.shape[-rank + 1] != module.in_channels:
            return f"{module.in_channels} input channels", x.shape[-rank + 1]
    if isinstance(module, nn.RNNBase):
        if x.ndim not in (2, 3):
            return "sequences (N, T, F)", f"{x.ndim} dimensions"
        if x.shape[-1] != module.input_size:
            return f"{module.input_size} features per step", x.shape[-1]
    if isinstance(module, nn.Embedding):
        if x.is_floating_point():
            return "int64 token ids", f"{str(x.dtype).replace('torch.', '')} values"
        if x.numel() and (int(x.max()) >= module.num_embeddings or int(x.min()) < 0):
            return (f"token ids in [0, {module.num_embeddings})",
                    f"ids from {int(x.min())} to {int(x.max())}")
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and x.ndim >= 2 \
            and x.shape[1] != module.num_features:
        return f"{module.num_features} features (channels)", x.shape[1]
    if isinstance(module, nn.LayerNorm):
        want = tuple(module.normalized_shape)
        if tuple(x.shape[-len(want):]) != want:
            return f"trailing sizes {want}", tuple(x.shape[-len(want):])
    return None


def _first_line(exc: BaseException | str) -> str:
    text = _strip_ansi(str(exc))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[0][:300] if lines else type(exc).__name__


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text)


# --------------------------------------------------------------------------------------------
# Writing each format (to a temporary path; the caller renames it into place)
# --------------------------------------------------------------------------------------------

@contextlib.contextmanager
def _quiet():
    """torch's exporters warn and log a lot about their own internals (deprecations, guards,
    LSTM weight views); the fresh-process comparison is what tells whether an export is right."""
    loggers = [logging.getLogger(n) for n in ("torch", "onnxscript", "onnx_ir")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        # torch.export prints the partial graph to stderr when it fails; the error says why.
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _temp_path(final: Path) -> Path:
    fd, name = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=f".tmp{final.suffix}",
                                dir=final.parent)
    os.close(fd)
    return Path(name)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _write_torchscript(job: _Job, tmp: Path, opset: int | None, final: Path) -> dict:
    import torch

    notes: list[str] = []
    with _quiet():
        try:
            artifact = torch.jit.script(job.net)
            method = "torch.jit.script"
        except Exception as script_exc:  # noqa: BLE001 - any scripting failure falls back
            reason = _script_reason(script_exc)
            args, kwargs = job.trace_args()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    # check_trace=False: the fresh-process check below is the stronger test.
                    artifact = torch.jit.trace(job.net, args if not kwargs else None,
                                               example_kwarg_inputs=kwargs or None,
                                               strict=False, check_trace=False)
                except Exception as trace_exc:  # noqa: BLE001
                    raise ExportError(
                        f"TorchScript export of {type(job.net).__name__} failed: torch.jit.script "
                        f"cannot compile it ({reason}) and torch.jit.trace fails too "
                        f"({type(trace_exc).__name__}: {_first_line(trace_exc)}). Nothing was "
                        f"written to {str(final)!r}. Fix: export to 'pt2' or 'onnx', or make "
                        f"forward scriptable (type-annotated, no **kwargs, no super() calls)."
                    ) from None
            method = "torch.jit.trace"
            torch_dir = str(Path(torch.__file__).parent)
            seen = sorted({f"{Path(w.filename).name}:{w.lineno}" for w in caught
                           if issubclass(w.category, torch.jit.TracerWarning)
                           and not str(w.filename).startswith(torch_dir)})
            message = (
                f"TorchScript: torch.jit.script cannot compile {type(job.net).__name__} "
                f"({reason}), so it was traced with torch.jit.trace instead. A trace records only "
                f"the operations this example ran: data-dependent control flow (an if or a loop "
                f"on tensor values or sizes) is frozen to the branch the example took, and the "
                f"artifact silently computes something else for inputs that would take another "
                f"branch."
                + (f" The tracer saw such control flow at {', '.join(seen)}." if seen else "")
                + " Check forward for such control flow, or export to 'pt2' or 'onnx', which "
                  "refuse it."
            )
            notes.append(message)
        buffer = io.BytesIO()
        torch.jit.save(artifact, buffer)
    _write_bytes(tmp, buffer.getvalue())
    if method == "torch.jit.trace":  # outside _quiet(), which silences warnings
        warnings.warn(notes[-1], ExportWarning, stacklevel=4)  # export() -> user
    return {"method": method, "notes": notes}


def _script_reason(exc: BaseException) -> str:
    text = _strip_ansi(str(exc))
    where = re.search(r'File "([^"]+)", line (\d+)', text)
    first = _first_line(exc).rstrip(":").rstrip()
    return first + (f" at {Path(where.group(1)).name}:{where.group(2)}" if where else "")


def _write_bytes(tmp: Path, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


@contextlib.contextmanager
def _lstm_last_from_sequence(net: Any):
    """Make netwright's ``LSTM(output="last")`` layers read the last step from the output
    sequence while torch.export traces them.

    torch.export in torch 2.11 gives ``nn.LSTM``'s ``h_n`` a wrong shape under fake tensors
    (``(layers*D, 1, N, H)``), so reading it fails to trace. The same values are the sequence's
    final step of the forward direction and its first step of the backward direction; the
    fresh-process check confirms the two agree.
    """
    from .models.layers import LSTM

    patched = [m for m in net.modules()
               if type(m) is LSTM and m.output == "last" and "forward" not in vars(m)]
    for m in patched:
        m.forward = _lstm_last.__get__(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


def _lstm_last(self: Any, x: Any) -> Any:
    import torch
    from torch import nn

    seq, _ = nn.LSTM.forward(self, x)  # (N, T, D*H) when batch_first, else (T, N, D*H)
    size = self.proj_size or self.hidden_size
    first, last = (seq[:, 0], seq[:, -1]) if self.batch_first else (seq[0], seq[-1])
    if self.bidirectional:
        return torch.cat([last[..., :size], first[..., size:]], dim=-1)
    return last


def _torch_export(job: _Job, fmt: str, final: Path) -> Any:
    import torch

    args, kwargs = job.trace_args()
    try:
        with _quiet(), _lstm_last_from_sequence(job.net):
            return torch.export.export(job.net, args, kwargs or None,
                                       dynamic_shapes=job.dynamic_shapes())
    except Exception as exc:  # noqa: BLE001 - explained below
        raise _export_failure(exc, fmt, job, final) from None


def _write_pt2(job: _Job, tmp: Path, opset: int | None, final: Path) -> dict:
    import torch

    program = _torch_export(job, "pt2", final)
    buffer = io.BytesIO()
    with _quiet():
        torch.export.save(program, buffer)
    _write_bytes(tmp, buffer.getvalue())
    return {"method": "torch.export", "notes": []}


def _write_onnx(job: _Job, tmp: Path, opset: int | None, final: Path) -> dict:
    import torch

    try:
        import onnx
        import onnxscript  # noqa: F401 - torch's ONNX exporter needs it
    except ImportError as exc:
        raise ExportError(f"ONNX export needs the onnx and onnxscript packages (missing: "
                          f"{exc.name}). Fix: pip install 'netwright[export]'.") from None
    args, kwargs = job.trace_args()
    try:
        with _quiet(), _lstm_last_from_sequence(job.net):
            # dynamo=True: the torch.export-based exporter (the default since torch 2.9, named
            # so that torch 2.5-2.8 pick it too); dynamic_shapes marks the batch dimension.
            program = torch.onnx.export(
                job.net, args, None, kwargs=kwargs or None, dynamo=True,
                dynamic_shapes=job.dynamic_shapes(), input_names=job.input_names,
                output_names=job.output_names, opset_version=opset, verbose=False,
                external_data=False)
            program.save(str(tmp), external_data=False)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - explained below
        raise _export_failure(exc, "onnx", job, final, opset) from None
    _fsync(tmp)
    try:
        onnx.checker.check_model(str(tmp))
    except Exception as exc:  # noqa: BLE001
        raise ExportError(f"ONNX export of {type(job.net).__name__}: the file torch wrote fails "
                          f"onnx.checker ({_first_line(exc)}). Nothing was written to "
                          f"{str(final)!r}. Fix: try another opset (opset=...), or export to "
                          f"'pt2'.") from None
    model = onnx.load(str(tmp), load_external_data=False)
    used = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    dims = {i.name: i.type.tensor_type.shape.dim for i in model.graph.input}
    fixed = [name for name, d in dims.items() if d and d[0].HasField("dim_value")]
    if job.dynamic and fixed:
        raise ExportError(
            f"ONNX export of {type(job.net).__name__}: dynamic_batch=True, but the exporter "
            f"fixed the batch size of input {', '.join(map(repr, fixed))} to "
            f"{job.batch if job.batch > 1 else 2}: something in forward pins it. Nothing was "
            f"written to {str(final)!r}. Fix: use the input's own batch size in forward "
            f"(x.shape[0]), or dynamic_batch=False.")
    return {"method": "torch.onnx.export (dynamo)", "notes": [], "opset": used}


_WRITERS: dict[str, Callable[..., dict]] = {
    "onnx": _write_onnx, "torchscript": _write_torchscript, "pt2": _write_pt2}


def _export_failure(exc: BaseException, fmt: str, job: _Job, final: Path,
                    opset: int | None = None) -> ExportError:
    import torch

    text = _strip_ansi(f"{type(exc).__name__}: {exc}")
    label = _LABEL[fmt]
    model = type(job.net).__name__
    nothing = f"Nothing was written to {str(final)!r}."
    where = _user_call(text)
    if re.search(r"data.dependent|GuardOnDataDependent|DataDependentOutput", text):
        return ExportError(
            f"{label} export of {model} failed: the model has data-dependent control flow (a "
            f"Python if or loop on a tensor's values{where}). torch.export, which the {label} "
            f"export is built on, records one graph for every input and cannot choose a branch "
            f"from the data. {nothing} Fix: write the branch as torch.where(cond, a, b) or "
            f"torch.cond(...), or export to 'torchscript', whose torch.jit.script keeps both "
            f"branches."
        )
    if re.search(r"Constraints violated|specialized it to be a constant", text):
        return ExportError(
            f"{label} export of {model} failed: dynamic_batch=True, but the model fixes the "
            f"batch size (torch.export: {_summary(text)}){where}. {nothing} Fix: use the "
            f"input's own batch size in forward (x.view(x.shape[0], -1), not x.view({job.batch}, "
            f"-1)), or export for one batch size with dynamic_batch=False."
        )
    op = re.search(r"No ONNX function found for <OpOverload\(op='([\w.]+)', overload='(\w+)'\)>",
                   text) or re.search(r"No ONNX function found for ([\w.:]+)", text)
    if fmt == "onnx" and op:
        name = ".".join(g for g in op.groups() if g)
        return ExportError(
            f"ONNX export of {model} failed: ONNX cannot express the op {name} (torch "
            f"{torch.__version__}'s ONNX exporter has no translation for it"
            f"{f' at opset {opset}' if opset else ''}). {nothing} Fix: compute that part with "
            f"ops ONNX has, or export to 'pt2' or 'torchscript', which keep every torch op."
        )
    hint = ""
    if fmt != "torchscript" and any(isinstance(m, torch.nn.LSTM) for m in job.net.modules()):
        hint = (" If the model reads an LSTM's h_n: torch.export in some torch versions (2.11 "
                "among them) gives it a wrong shape; read the last step from the output "
                "sequence instead, or upgrade torch.")
    return ExportError(f"{label} export of {model} failed: {_summary(text)}{where}. {nothing} "
                       f"Fix: export to another format, or change the part of forward named "
                       f"above.{hint}")


def _summary(text: str) -> str:
    """The line that says what went wrong (torch's ONNX errors put it under a heading)."""
    part = text.split("## Exception summary", 1)[-1]
    lines = [ln.strip() for ln in part.splitlines() if ln.strip()]
    for ln in lines:
        if not ln.startswith(("Failed to", "- ", "#", "For more", "consider", "⬆")):
            return re.sub(r"^<class '(?:[\w]+\.)*(\w+)'>", r"\1", ln[:400]).rstrip(".")
    return (lines[0] if lines else text)[:400].rstrip(".")


def _user_call(text: str) -> str:
    found = re.search(r'The following call raised this error:\s*File "([^"]+)", line (\d+), in '
                      r'(\w+)\s*\n\s*(.+)', text)
    if not found:
        return ""
    return (f", at {Path(found.group(1)).name}:{found.group(2)} in {found.group(3)}: "
            f"`{found.group(4).strip()[:120]}`")


# --------------------------------------------------------------------------------------------
# Verification in a fresh process
# --------------------------------------------------------------------------------------------

def _random_inputs(job: _Job, batch: int, gen: Any) -> list:
    import torch

    out = []
    for t, ints, stats in zip(job.inputs, job.int_ranges, job.float_stats):
        shape = (batch, *t.shape[1:])
        if stats is not None:
            mean, std = stats
            x = torch.randn(shape, generator=gen, dtype=torch.float64) * std + mean
            out.append(x.to(t.dtype))
        elif t.dtype == torch.bool:
            out.append(torch.randint(0, 2, shape, generator=gen).bool())
        else:
            low, high = ints
            out.append(torch.randint(low, high + 1, shape, generator=gen).to(t.dtype))
    return out


def _other_batch(batch: int) -> int:
    return 5 if batch != 5 else 7


def _to_numpy(t: Any) -> np.ndarray:
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:  # numpy has no bfloat16: stored widened, narrowed on loading
        t = t.float()
    return t.numpy()


MAX_SPREAD = 0.5  # interquartile range / median above which a latency is too noisy to compare


def _timing(fn: Callable[[], Any], *, budget: float = 0.2, min_runs: int = 15,
            max_runs: int = 400, warmup: int = 3) -> tuple[float, float]:
    """(median seconds, interquartile range / median) of one call of ``fn`` after ``warmup``
    calls; runs until ``min_runs`` and ``budget`` seconds are both reached (or ``max_runs``).
    A spread over :data:`MAX_SPREAD` (e.g. another process took the CPU) makes a speed-up
    computed from the median noise, and it is reported as such."""
    for _ in range(warmup):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs
                                     or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    q1, median, q3 = statistics.quantiles(times, n=4)
    return median, ((q3 - q1) / median if median > 0 else float("inf"))


def _median_seconds(fn: Callable[[], Any], **options: Any) -> float:
    """Median seconds of one call of ``fn`` (see :func:`_timing`)."""
    return _timing(fn, **options)[0]


class _Verifier:
    """The fresh process that loads and runs the artifacts.

    It is started before the artifacts are written, so that its imports (torch, torch.export's
    loader, onnxruntime: seconds) overlap the export; it never sees the model, only the files
    and a job (inputs as .npz, names) sent once everything is written.
    """

    def __init__(self, formats: Sequence[str]):
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
        self.command = [sys.executable, "-m", "netwright.exporting", "--verify-stdin",
                        ",".join(formats)]
        self.proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)

    def run(self, job_file: Path, timeout: float) -> tuple[int, str]:
        try:
            out, err = self.proc.communicate(str(job_file) + "\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise ExportError(f"export verification: the fresh process checking the artifacts "
                              f"did not finish within {timeout:.0f} s. Fix: pass a larger "
                              f"timeout=, or verify=False.") from None
        return self.proc.returncode, (err or out or "")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def _verify(job: _Job, artifacts: dict[str, Path], verifier: _Verifier, *,
            latency_batches: Sequence[int], timeout: float) -> tuple[dict, dict, dict]:
    """Run each artifact in the fresh process. Returns (outputs and what they should be,
    artifact latency per format, eager latency)."""
    import torch

    gen = torch.Generator().manual_seed(_SEED + 2)
    sets = {"example": job.inputs}
    if job.dynamic:
        sets["other"] = job.other
    batches = list(dict.fromkeys(latency_batches)) if job.dynamic else \
        ([job.batch] if latency_batches else [])
    lat_inputs = {b: _random_inputs(job, b, gen) for b in batches}
    work = Path(tempfile.mkdtemp(prefix="netwright-verify-"))
    try:
        arrays = {}
        for name, xs in [*sets.items(), *((f"b{b}", xs) for b, xs in lat_inputs.items())]:
            for i, x in enumerate(xs):
                arrays[f"{name}__{i}"] = _to_numpy(x)
        np.savez(work / "inputs.npz", **arrays)
        spec = {
            "artifacts": {fmt: str(path) for fmt, path in artifacts.items()},
            "inputs": str(work / "inputs.npz"),
            "input_names": job.input_names,
            "input_dtypes": [str(t.dtype).replace("torch.", "") for t in job.inputs],
            "keywords": job.keywords,
            "sets": list(sets),
            "latency": {str(b): f"b{b}" for b in batches},
            "threads": torch.get_num_threads(),
            "out_dir": str(work),
        }
        (work / "job.json").write_text(json.dumps(spec))
        code, text = verifier.run(work / "job.json", timeout)
        result_file = work / "result.json"
        if code != 0 or not result_file.is_file():
            tail = "\n".join(text.strip().splitlines()[-8:])
            raise ExportError(f"export verification: the fresh process checking "
                              f"{', '.join(artifacts)} exited with code {code}:\n{tail}\n"
                              f"Fix: verify=False skips the check (at your own risk).")
        results = json.loads(result_file.read_text())
        outputs, latency, spread = {}, {}, {}
        for fmt in artifacts:
            res = results[fmt]
            if res.get("error"):
                outputs[fmt] = res["error"]
                continue
            with np.load(work / f"out_{fmt}.npz", allow_pickle=False) as data:
                outputs[fmt] = {s: [data[f"{s}__{j}"] for j in range(res["count"][s])]
                                for s in sets}
            latency[fmt] = {int(b): sec for b, sec in res["latency"].items()}
            spread[fmt] = {int(b): v for b, v in res.get("spread", {}).items()}
        expected = {"example": [_to_numpy(t) for t in job.expected]}
        if "other" in sets:
            expected["other"] = [_to_numpy(t) for t in job.other_expected]
        eager_seconds, eager_spread = {}, {}
        # Timed only now, with the fresh process gone, so that the two never share the CPU.
        for b, xs in lat_inputs.items():
            _eager_on(job, xs)  # a clear error if the model cannot take this batch size
            with _eval_mode(job.net), torch.inference_mode():
                eager_seconds[b], eager_spread[b] = _timing(lambda: job.call(xs))
        noisy = {fmt: sorted(b for b in latency.get(fmt, {}) if max(
            spread.get(fmt, {}).get(b, 0.0), eager_spread.get(b, 0.0)) > MAX_SPREAD) for fmt in artifacts}
        return {"outputs": outputs, "expected": expected, "noisy": noisy,
                "batches": {s: int(xs[0].shape[0]) for s, xs in sets.items()}}, latency, \
            eager_seconds
    finally:
        for f in sorted(work.glob("*")):
            f.unlink()
        work.rmdir()


def _tolerance(job: _Job, rtol: float | None, atol: float | None) -> tuple[float, float]:
    names = {str(t.dtype).replace("torch.", "") for t in job.expected if t.is_floating_point()}
    loosest = max((DEFAULT_TOLERANCE.get(n, DEFAULT_TOLERANCE["float32"]) for n in names),
                  default=DEFAULT_TOLERANCE["float32"])
    return (float(loosest[0] if rtol is None else rtol),
            float(loosest[1] if atol is None else atol))


@dataclass
class _Diff:
    output: str
    set: str
    batch: int
    max_abs: float
    max_rel: float
    bad: int
    total: int
    index: tuple
    expected: float
    got: float
    excess: float  # the largest |diff| / (atol + rtol |expected|)


def _compare(name: str, set_name: str, batch: int, exp: np.ndarray, got: np.ndarray, rtol: float,
             atol: float) -> _Diff:
    e = exp.astype(np.float64)
    g = got.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        # NaN where both are NaN and equal infinities count as agreeing; any other NaN or
        # infinity on one side only is an infinite difference.
        agree = (e == g) | (np.isnan(e) & np.isnan(g))
        diff = np.where(agree, 0.0, np.abs(g - e))
        diff = np.where(np.isnan(diff), np.inf, diff)
        magnitude = np.abs(np.nan_to_num(e, posinf=0.0, neginf=0.0))
        allowed = atol + rtol * magnitude
        rel = diff / np.maximum(magnitude, atol if atol > 0 else 1e-30)
        excess = diff / np.maximum(allowed, 1e-30)
    if diff.size == 0:
        return _Diff(name, set_name, batch, 0.0, 0.0, 0, 0, (), 0.0, 0.0, 0.0)
    worst = np.unravel_index(int(np.argmax(excess)), excess.shape)
    return _Diff(name, set_name, batch, float(diff.max()), float(rel.max()),
                 int((diff > allowed).sum()), int(diff.size), tuple(int(i) for i in worst),
                 float(e[worst]), float(g[worst]), float(excess[worst]))


def _check_outputs(fmt: str, final: Path, job: _Job, found: Any, expected: dict, batches: dict,
                   rtol: float, atol: float) -> tuple[dict, ExportError | None]:
    """Per-set (max abs, max rel), and an error if anything is beyond tolerance."""
    label = _LABEL[fmt]
    if isinstance(found, str):
        return {}, ExportError(
            f"{label} artifact {str(final)!r} could not be loaded or run in a fresh process: "
            f"{found}. Nothing was written. Fix: the artifact needs something only this process "
            f"has (e.g. a custom op library): export to another format, or verify=False.")
    maxima: dict[str, tuple[float, float]] = {}
    diffs: list[_Diff] = []
    for set_name, exp_list in expected.items():
        got_list = found[set_name]
        if len(got_list) != len(exp_list):
            return {}, ExportError(
                f"{label} artifact {str(final)!r} returns {len(got_list)} outputs; the model "
                f"returns {len(exp_list)} ({', '.join(job.output_names)}). Nothing was written.")
        for name, exp, got in zip(job.output_names, exp_list, got_list):
            if tuple(exp.shape) != tuple(got.shape):
                return {}, ExportError(
                    f"{label} artifact {str(final)!r}: output {name!r} has shape "
                    f"{tuple(got.shape)} on {_set_words(set_name, batches)}; the model gives "
                    f"{tuple(exp.shape)}. The export does not follow the batch size. Nothing was "
                    f"written. Fix: use the input's own sizes in forward (x.shape[0]), or "
                    f"dynamic_batch=False.")
            diffs.append(_compare(name, set_name, batches[set_name], exp, got, rtol, atol))
        these = [d for d in diffs if d.set == set_name]
        maxima[set_name] = (max(d.max_abs for d in these), max(d.max_rel for d in these))
    bad = sorted((d for d in diffs if d.bad), key=lambda d: -d.excess)
    if not bad:
        return maxima, None
    lines = [f"{label} artifact {str(final)!r} does not compute what the model computes "
             f"(rtol={rtol:g}, atol={atol:g}); the largest differences:"]
    for d in bad[:_SHOWN]:
        lines.append(f"  output {d.output!r}, {_set_words(d.set, batches)}: max abs diff "
                     f"{d.max_abs:.3g}, max rel diff {d.max_rel:.3g}; {d.bad} of {d.total} values "
                     f"beyond tolerance; worst at {list(d.index)}: model {d.expected:.6g}, "
                     f"{fmt} {d.got:.6g}")
    only_other = all(d.set == "other" for d in bad)
    if only_other:
        fix = ("the example matches but fresh inputs of another batch size do not: the export "
               "froze something the example fixed (data-dependent control flow in a trace, or a "
               "batch size written into forward). Check forward, export to another format, or "
               "use dynamic_batch=False.")
    else:
        fix = ("if the differences are rounding (half precision, long sequences), pass a looser "
               "rtol=/atol=; otherwise export to another format and report the model.")
    lines.append(f"Nothing was written. Fix: {fix}")
    return maxima, ExportError("\n".join(lines))


def _set_words(set_name: str, batches: dict) -> str:
    if set_name == "example":
        return f"the example (batch {batches[set_name]})"
    return f"random inputs of batch {batches[set_name]}"


# --------------------------------------------------------------------------------------------
# The public functions
# --------------------------------------------------------------------------------------------

def export(model: nn.Module, path: str | os.PathLike, *, format: str | None = None,
           example: Any = None, dynamic_batch: bool = True, verify: bool = True,
           rtol: float | None = None, atol: float | None = None, opset: int | None = None,
           latency_batches: Sequence[int] = LATENCY_BATCHES,
           timeout: float = 600.0, overwrite: bool = False) -> ExportReport:
    """Export ``model`` to ``path`` as ``format`` (``"onnx"``, ``"torchscript"`` or ``"pt2"``;
    by default from the file's suffix: ``.onnx``, ``.ts``, ``.pt2``) and verify it.

    An existing file at ``path`` is never replaced unless ``overwrite=True`` (then the new file
    replaces it, or the link at ``path``, atomically; a link's target is not written to).

    ``example`` is one input batch: a tensor, a tuple of tensors (several inputs), a dict of
    tensors (forward's keyword arguments), or the shape of one sample such as ``(20,)`` (then a
    random batch of 2 is made: floats, or int64 token ids for a model that reads them). It may be
    left out for a model built by netwright with an ``input_shape``. The batch dimension is
    dynamic unless ``dynamic_batch=False``.

    The model is exported in eval mode, on the CPU. With ``verify=True`` the artifact is loaded
    in a fresh Python process and run on the example and on random inputs of another batch
    size; any output beyond ``atol + rtol * |eager|`` (defaults by dtype:
    :data:`DEFAULT_TOLERANCE`) is an :class:`~netwright.errors.ExportError` listing the
    largest differences, and nothing is written. The same process times the artifact at each of
    ``latency_batches`` (eager is timed here). The file appears only once it is complete and
    verified.

    >>> import tempfile, torch
    >>> from netwright.models import build
    >>> model = build({"hidden": {"linear": 8}, "act": "relu", "out": {"linear": 3}}, (4,))
    >>> report = export(model, Path(tempfile.mkdtemp()) / "model.ts", latency_batches=())
    >>> report.method, report.outputs, report.max_abs_diff < 1e-5
    ('torch.jit.script', ['output'], True)
    """
    path = Path(path)
    fmt = _check_format(format, path)
    _check_tolerance(rtol, atol)
    _check_opset(opset)
    _check_target_file(path)
    _check_not_replacing([path], overwrite, "export")
    job = _prepare(model, example, dynamic_batch)
    return _export_many(job, {fmt: path}, verify=verify, rtol=rtol, atol=atol, opset=opset,
                        latency_batches=latency_batches, timeout=timeout,
                        overwrite=overwrite)[fmt]


def export_all(model: nn.Module, folder: str | os.PathLike,
               formats: Sequence[str] | str = FORMATS, *, example: Any = None,
               dynamic_batch: bool = True, verify: bool = True, rtol: float | None = None,
               atol: float | None = None, opset: int | None = None,
               latency_batches: Sequence[int] = LATENCY_BATCHES,
               timeout: float = 600.0, overwrite: bool = False) -> dict[str, ExportReport]:
    """Export ``model`` to every format in ``formats`` inside ``folder`` (``model.onnx``,
    ``model.ts``, ``model.pt2``), verify them all in one fresh process, and write
    ``folder/verify.json`` with every report. Arguments as :func:`export`.

    ``folder`` is created if only its last part is missing (``RUN_DIR/exports``). It is all or
    nothing: when one format fails to export or verify, the error names each failure and which
    formats did work, and no file is written. Existing files (``model.*``, ``verify.json``) are
    never replaced unless ``overwrite=True``; every one is checked before anything is written. A
    ``folder`` that is a symbolic link is refused (pass the folder it points to instead).

    >>> import tempfile
    >>> from netwright.models import build
    >>> model = build([{"linear": 3}], (4,))
    >>> reports = export_all(model, Path(tempfile.mkdtemp()) / "exports", ["torchscript"],
    ...                      latency_batches=())
    >>> sorted(p.name for p in reports["torchscript"].path.parent.iterdir())
    ['model.ts', 'verify.json']
    """
    folder = Path(folder)
    fmts = _check_formats(formats)
    _check_tolerance(rtol, atol)
    _check_opset(opset)
    if folder.is_symlink():
        raise ExportError(
            f"export_all: {str(folder)!r} is a symbolic link (to {os.readlink(folder)!r}); "
            f"netwright does not write through a link, which would put the exports outside the "
            f"folder named. Expected a real folder. Fix: remove the link (the files it points to "
            f"are kept) and export again, or pass the folder it points to, "
            f"{str(folder.resolve())!r}, if that is where the exports belong.")
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"export_all: {str(folder)!r} is a file; expected a folder to write "
                          f"{', '.join(FILE_NAMES[f] for f in fmts)} into.")
    _check_writable_folder(folder.parent, folder)
    _check_not_replacing([folder / FILE_NAMES[f] for f in fmts] + [folder / VERIFY_FILE],
                         overwrite, "export_all")
    job = _prepare(model, example, dynamic_batch)
    created = not folder.exists()
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise ExportError(f"export_all: cannot create {str(folder)!r} "
                          f"({exc.strerror or type(exc).__name__}). Fix: choose a folder you can "
                          f"write to.") from None
    try:
        reports = _export_many(job, {f: folder / FILE_NAMES[f] for f in fmts}, verify=verify,
                               rtol=rtol, atol=atol, opset=opset,
                               latency_batches=latency_batches, timeout=timeout,
                               after=lambda reps: _write_verify_json(folder, job, reps),
                               overwrite=overwrite, also=[folder / VERIFY_FILE])
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty: never removes what someone else put there
        raise
    return reports


def _write_verify_json(folder: Path, job: _Job, reports: dict[str, ExportReport]) -> None:
    from .checkpoint import atomic_write_json
    import torch

    try:
        import onnxruntime
        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    atomic_write_json(folder / VERIFY_FILE, {
        "format": "netwright.exports/1",
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "inputs": [{"name": n, "shape": ["batch" if job.dynamic and i == 0 else s
                                         for i, s in enumerate(t.shape)],
                    "dtype": str(t.dtype).replace("torch.", "")}
                   for n, t in zip(job.input_names, job.inputs)],
        "outputs": job.output_names,
        "files": {fmt: r.path.name for fmt, r in reports.items()},
        "reports": {fmt: {**r.to_dict(), "path": r.path.name} for fmt, r in reports.items()},
    })


def _check_opset(opset: Any) -> None:
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise ConfigError(f"export opset must be an ONNX opset number such as 18 (or None for "
                          f"torch's default); got {opset!r}.")


def _export_many(job: _Job, targets: dict[str, Path], *, verify: bool, rtol: float | None,
                 atol: float | None, opset: int | None, latency_batches: Sequence[int],
                 timeout: float, after: Callable[[dict], None] | None = None,
                 overwrite: bool = False, also: Sequence[Path] = ()
                 ) -> dict[str, ExportReport]:
    import torch

    if any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in latency_batches):
        raise ConfigError(f"export latency_batches must be positive batch sizes such as (1, 64); "
                          f"got {latency_batches!r}.")
    temps: dict[str, Path] = {}
    made: dict[str, dict] = {}
    failures: dict[str, ExportError] = {}
    verifier = _Verifier(list(targets)) if verify else None
    try:
        with _eval_mode(job.net):
            for fmt, final in targets.items():
                temps[fmt] = _temp_path(final)
                try:
                    made[fmt] = _WRITERS[fmt](job, temps[fmt], opset, final)
                except ExportError as exc:
                    failures[fmt] = exc
                except Exception as exc:  # noqa: BLE001 - e.g. saving failed: named, not raw
                    failures[fmt] = _export_failure(exc, fmt, job, final, opset)
        if failures:
            raise _combined(failures, [f for f in targets if f in made])
        reports = {}
        for fmt, final in targets.items():
            notes = made[fmt]["notes"]
            if job.dynamic and job.batch == 1 and fmt != "torchscript":
                notes.append("the example has batch 1, which torch.export would fix as a "
                             "constant: it was traced with the sample repeated (batch 2)")
            reports[fmt] = ExportReport(path=final, format=fmt, method=made[fmt]["method"],
                                        inputs=list(job.input_names),
                                        outputs=list(job.output_names),
                                        dynamic_batch=job.dynamic, verified=False,
                                        example_batch=job.batch, opset=made[fmt].get("opset"),
                                        torch_version=torch.__version__,
                                        notes=notes)
        if verify:
            rt, at = _tolerance(job, rtol, atol)
            checked, latency, eager = _verify(job, temps, verifier,
                                              latency_batches=latency_batches, timeout=timeout)
            for fmt, final in targets.items():
                maxima, error = _check_outputs(fmt, final, job, checked["outputs"][fmt],
                                               checked["expected"], checked["batches"], rt, at)
                if error is not None:
                    failures[fmt] = error
                    continue
                r = reports[fmt]
                r.verified, r.rtol, r.atol = True, rt, at
                r.max_abs_example, r.max_rel_example = maxima["example"]
                if "other" in maxima:
                    r.other_batch = checked["batches"]["other"]
                    r.max_abs_other, r.max_rel_other = maxima["other"]
                r.latency_eager = dict(eager)
                r.latency_export = dict(latency.get(fmt, {}))
                r.latency_noisy = list(checked.get("noisy", {}).get(fmt, []))
            if failures:
                raise _combined(failures, [f for f in targets if f not in failures])
        else:
            for r in reports.values():
                r.notes.append("not verified (verify=False)")
        # Checked again at the last moment: a file may have appeared while exporting.
        _check_not_replacing(list(targets.values()) + list(also), overwrite, "export")
        for fmt, final in targets.items():
            os.replace(temps.pop(fmt), final)
        for folder in {p.parent for p in targets.values()}:
            fsync_dir(folder)
        if after is not None:
            after(reports)
        return reports
    finally:
        if verifier is not None:
            verifier.close()
        for tmp in temps.values():
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def _combined(failures: dict[str, ExportError], worked: list[str]) -> ExportError:
    if len(failures) == 1 and not worked:
        return next(iter(failures.values()))
    lines = [f"export failed for {', '.join(failures)}"
             + (f" ({', '.join(worked)} worked, but nothing is written unless every format "
                f"does)" if worked else "") + ":"]
    for fmt, exc in failures.items():
        lines.append(f"- {fmt}: {exc}")
    if worked:
        lines.append(f"Fix: export only the formats that work: formats={worked!r} "
                     f"(--format {','.join(worked)}), or fix the model as said above.")
    return ExportError("\n".join(lines))


# --------------------------------------------------------------------------------------------
# Serving with onnxruntime (no torch)
# --------------------------------------------------------------------------------------------

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
              "tensor(float16)": np.float16, "tensor(int64)": np.int64,
              "tensor(int32)": np.int32, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
              "tensor(bool)": np.bool_}
_SESSIONS: dict[tuple, Any] = {}


def _session(path: Path, threads: int | None = None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("predict_onnx needs onnxruntime. Fix: pip install onnxruntime "
                          "(or 'netwright[export]').") from None
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, threads)
    session = _SESSIONS.get(key)
    if session is None:
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error kinds
            raise ExportError(f"{str(path)!r} is not an ONNX model onnxruntime can load "
                              f"({_first_line(exc)}). Fix: export it again with "
                              f"netwright export RUN_DIR --format onnx.") from None
        if len(_SESSIONS) >= 8:
            _SESSIONS.pop(next(iter(_SESSIONS)))
        _SESSIONS[key] = session
    return session


def _feed(session: Any, features: Any, path: Path) -> dict[str, np.ndarray]:
    specs = session.get_inputs()
    names = [i.name for i in specs]
    if isinstance(features, Mapping):
        missing = [n for n in names if n not in features]
        if missing:
            raise DataError(f"{path.name} takes inputs {names}; the features dict lacks "
                            f"{missing}. Fix: give one array per input name.")
        arrays = [features[n] for n in names]
    elif isinstance(features, (list, tuple)) and len(names) > 1:
        arrays = list(features)
    else:
        arrays = [features]
    if len(arrays) != len(names):
        raise DataError(f"{path.name} takes {len(names)} inputs ({', '.join(names)}); got "
                        f"{len(arrays)}. Fix: pass a tuple or a dict with one array per input.")
    feed = {}
    for spec, array in zip(specs, arrays):
        array = np.asarray(array)
        want = _ORT_TYPES.get(spec.type)
        if want is not None and array.dtype != want:
            if np.issubdtype(want, np.integer) and array.dtype.kind == "f":
                if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
                    raise DataError(f"{path.name} input {spec.name!r} takes integer ids "
                                    f"({spec.type}); the features are non-integer floats. Fix: "
                                    f"give the token ids.")
            array = array.astype(want)
        dims = list(spec.shape)
        if array.ndim != len(dims) or any(isinstance(d, int) and d != s
                                          for d, s in zip(dims, array.shape)):
            shown = "(" + ", ".join("N" if not isinstance(d, int) else str(d) for d in dims) + ")"
            raise DataError(f"{path.name} input {spec.name!r} takes arrays of shape {shown}; got "
                            f"shape {array.shape}. Fix: give a batch of samples shaped as in "
                            f"training, the batch dimension first.")
        feed[spec.name] = np.ascontiguousarray(array)
    return feed


def predict_onnx(path: str | os.PathLike, features: Any, *, batch_size: int | None = None,
                 threads: int | None = None) -> Any:
    """Run an ``.onnx`` file on ``features`` with onnxruntime (no torch needed).

    ``features`` is one array (a batch, the batch dimension first), or a tuple/dict of arrays
    for a model with several inputs; they are cast to the input's dtype (float32, or int64 token
    ids). A model trained by ``netwright train`` holds its input standardisation inside the
    graph (the ``Scaled`` wrapper), so raw features go in as they are. Returns the output array,
    or a dict ``{name: array}`` in the documented output order when there are several.
    ``batch_size`` runs large inputs in chunks; sessions are cached per file.

    >>> import tempfile
    >>> from netwright.models import build
    >>> model = build([{"linear": 2}], (3,))
    >>> r = export(model, Path(tempfile.mkdtemp()) / "m.onnx", verify=False)
    >>> predict_onnx(r.path, np.ones((4, 3), dtype=np.float32)).shape
    (4, 2)
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"predict_onnx: {str(path)!r} does not exist. Fix: export the model "
                          f"first (netwright export RUN_DIR --format onnx writes "
                          f"RUN_DIR/exports/model.onnx).")
    session = _session(path, threads)
    feed = _feed(session, features, path)
    names = [o.name for o in session.get_outputs()]
    n = len(next(iter(feed.values())))
    if batch_size and n > batch_size:
        parts = [session.run(None, {k: v[i:i + batch_size] for k, v in feed.items()})
                 for i in range(0, n, batch_size)]
        outs = [np.concatenate([p[j] for p in parts]) for j in range(len(names))]
    else:
        outs = session.run(None, feed)
    return outs[0] if len(outs) == 1 else dict(zip(names, outs))


# --------------------------------------------------------------------------------------------
# The fresh process: python -m netwright.exporting --verify JOB.json
# --------------------------------------------------------------------------------------------

def _runner(fmt: str, path: str, job: dict) -> tuple[Callable, Callable, Callable]:
    """(prepare numpy inputs, call, outputs to numpy) for one artifact."""
    names, keywords = job["input_names"], job["keywords"]
    if fmt == "onnx":
        session = _session(Path(path), job["threads"])

        def prepare(arrays):
            return _feed(session, dict(zip(names, arrays)), Path(path))

        return prepare, lambda feed: session.run(None, feed), list

    import torch

    torch.set_num_threads(job["threads"])
    if fmt == "torchscript":
        module = torch.jit.load(path, map_location="cpu")
    else:
        module = torch.export.load(path).module()
    dtypes = [getattr(torch, d) for d in job["input_dtypes"]]

    def prepare_t(arrays):
        return [torch.from_numpy(a).to(d) for a, d in zip(arrays, dtypes)]

    def call(xs):
        with torch.inference_mode():
            return module(**dict(zip(names, xs))) if keywords else module(*xs)

    def to_numpy(out):
        return [_to_numpy(t) for _, t in _flatten(out)]

    return prepare_t, call, to_numpy


def _verify_main(job_file: str) -> int:
    job = json.loads(Path(job_file).read_text())
    out_dir = Path(job["out_dir"])
    results: dict[str, dict] = {}
    with np.load(job["inputs"], allow_pickle=False) as data:
        inputs = {k: data[k] for k in data.files}
    n_in = len(job["input_names"])

    def arrays(set_name: str) -> list[np.ndarray]:
        return [inputs[f"{set_name}__{i}"] for i in range(n_in)]

    for fmt, path in job["artifacts"].items():
        res: dict[str, Any] = {"error": None, "latency": {}, "count": {}}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                prepare, call, to_numpy = _runner(fmt, path, job)
                outs = {}
                for s in job["sets"]:
                    got = to_numpy(call(prepare(arrays(s))))
                    res["count"][s] = len(got)
                    outs.update({f"{s}__{j}": np.asarray(o) for j, o in enumerate(got)})
                np.savez(out_dir / f"out_{fmt}.npz", **outs)
                for batch, set_name in job["latency"].items():
                    native = prepare(arrays(set_name))
                    res["latency"][batch], res.setdefault("spread", {})[batch] = _timing(
                        lambda: call(native))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises
            res["error"] = f"{type(exc).__name__}: {_first_line(exc)}"
        results[fmt] = res
    (out_dir / "result.json").write_text(json.dumps(results))
    return 0


def _preload(formats: Sequence[str]) -> None:
    """Import what loading these formats needs, while the parent is still exporting."""
    if "onnx" in formats:
        import onnxruntime  # noqa: F401
    if "torchscript" in formats or "pt2" in formats:
        import torch  # noqa: F401
    if "pt2" in formats:
        import torch.export.pt2_archive._package  # noqa: F401 - the .pt2 loader (slow import)


def _main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "--verify":
        return _verify_main(argv[1])
    if len(argv) == 2 and argv[0] == "--verify-stdin":
        with contextlib.suppress(ImportError):
            _preload(argv[1].split(","))
        job_file = sys.stdin.readline().strip()
        return _verify_main(job_file) if job_file else 0
    print("usage: python -m netwright.exporting --verify JOB.json  (run by netwright.exporting to "
          "check artifacts in a fresh process)", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover - run by _Verifier in a fresh process
    sys.exit(_main(sys.argv[1:]))
