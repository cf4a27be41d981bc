"""The model doctor: find model-building mistakes before the first training step.

Each problem is a :class:`Finding` with a stable code (``NW101`` ...), a severity and a fix.
Severity follows consequence: a setup that cannot train, or trains meaninglessly, is an
``error``; one that trains, but badly, is a ``warning``; ``info`` is worth knowing but harmless.
The codes are listed, with an example and the fix, in ``docs/doctor.md`` and in :data:`CODES`.

- :func:`preflight` runs the cheap checks on one batch: one forward in eval mode under
  ``no_grad`` plus tensor reductions. ``fit`` runs it before training. It never changes the
  model (weights, buffers, the train/eval mode of every submodule) nor the global RNG.
- :func:`doctor` takes what ``fit`` takes, runs :func:`preflight` on the first batch (with the
  whole in-memory data for the data-wide checks), and with ``deep=True`` adds the deep checks on
  a copy of the model: a gradient check per layer and a few steps overfitting one batch.

Code groups: NW1xx output vs targets and loss, NW2xx the model and its input, NW3xx the data,
NW4xx optimizer, scheduler and logged values, NW5xx the deep checks.
"""

from __future__ import annotations

import copy
import json
import math
import textwrap
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from .data.batches import make_batches
from .data.sources import InMemory, first_len, to_source
from .errors import (ConfigError, DataError, LossTargetError, ModelSpecError, NetwrightError,
                     describe, describe_tensors)
from .losses import LossInfo, resolve_loss
from .models.scaling import Scaled
from .optim import Schedule, build_optimizer, build_scheduler

__all__ = ["Finding", "Report", "DoctorError", "CODES", "doctor", "preflight", "check_batch"]

SEVERITIES = ("error", "warning", "info")

# code: (severity, what it means, the error kind it raises as). The kind lets ``except
# LossTargetError`` (or DataError ...) keep catching what fit raised before the doctor existed.
_CODES: dict[str, tuple[str, str, type[NetwrightError]]] = {
    "NW101": ("warning", "probabilities fed to cross_entropy (a double softmax)", LossTargetError),
    "NW102": ("error", "nll on outputs that are not log-probabilities", LossTargetError),
    "NW103": ("warning", "nll on probabilities instead of log-probabilities", LossTargetError),
    "NW104": ("error", "float class targets", LossTargetError),
    "NW105": ("error", "class targets shaped as a column (N, 1)", LossTargetError),
    "NW106": ("error", "integer one-hot (or multi-hot) class targets", LossTargetError),
    "NW107": ("warning", "soft-label targets whose rows are not distributions", LossTargetError),
    "NW108": ("error", "class labels outside [0, C)", LossTargetError),
    "NW109": ("warning", "outputs for classes the targets never hold", LossTargetError),
    "NW110": ("warning", "strong class imbalance", DataError),
    "NW111": ("error", "a class loss on an output without a class dimension", LossTargetError),
    "NW112": ("error", "class targets whose shape does not fit the output", LossTargetError),
    "NW121": ("error", "bce on values outside [0, 1]", LossTargetError),
    "NW122": ("warning", "bce_with_logits after a final sigmoid", LossTargetError),
    "NW123": ("error", "binary targets outside [0, 1]", LossTargetError),
    "NW131": ("error", "element-wise loss on output and targets of different shapes", LossTargetError),
    "NW132": ("error", "integer targets for an element-wise loss", LossTargetError),
    "NW190": ("error", "the loss fails on the first batch", LossTargetError),
    "NW191": ("error", "the loss is NaN/Inf on the first batch", LossTargetError),
    "NW192": ("info", "the model returns several outputs: output checks skipped", LossTargetError),
    "NW201": ("error", "a layer does not fit its input size", ModelSpecError),
    "NW202": ("error", "channels-last images fed to a convolution", ModelSpecError),
    "NW203": ("error", "the forward fails", ModelSpecError),
    "NW204": ("error", "the input dtype does not fit the layer", ModelSpecError),
    "NW205": ("error", "token ids outside the embedding", ModelSpecError),
    "NW206": ("info", "the model is in eval mode", ModelSpecError),
    "NW207": ("warning", "randomness (dropout) active in evaluation", ModelSpecError),
    "NW208": ("error", "BatchNorm trained on batches of one sample", ModelSpecError),
    "NW209": ("error", "NaN/Inf outputs on finite inputs", ModelSpecError),
    "NW210": ("warning", "images that look channels-last", ModelSpecError),
    "NW211": ("error", "a recurrent layer reads the batch dimension as time", ModelSpecError),
    "NW301": ("error", "NaN/Inf in the inputs", DataError),
    "NW302": ("error", "NaN/Inf in the targets", DataError),
    "NW303": ("info", "constant features", DataError),
    "NW304": ("error", "every feature is constant", DataError),
    "NW305": ("warning", "inputs far from unit scale", DataError),
    "NW306": ("warning", "regression targets far from unit scale", DataError),
    "NW401": ("warning", "trainable parameters missing from the optimizer", ConfigError),
    "NW402": ("error", "the optimizer updates none of the model's parameters", ConfigError),
    "NW403": ("error", "the model has no trainable parameters", ModelSpecError),
    "NW411": ("error", "reduce_on_plateau monitors a value that is never logged", ConfigError),
    "NW412": ("error", "onecycle would step past its total_steps", ConfigError),
    "NW413": ("warning", "onecycle's total_steps exceed the run", ConfigError),
    "NW414": ("error", "the monitor is never logged", ConfigError),
    "NW415": ("error", "a metric that does not fit the task", ConfigError),
    "NW501": ("warning", "parameters that get no gradient (disconnected)", ModelSpecError),
    "NW502": ("warning", "parameters whose gradient is exactly zero (dead)", ModelSpecError),
    "NW503": ("error", "NaN/Inf gradients", ModelSpecError),
    "NW504": ("warning", "exploding gradients: the first step outgrows the weights", ModelSpecError),
    "NW505": ("warning", "the loss does not fall when overfitting one batch", ModelSpecError),
    "NW506": ("error", "the loss diverges when overfitting one batch", ModelSpecError),
    "NW507": ("error", "a training step fails", ModelSpecError),
}

#: Every finding code: ``{code: (severity, what it means)}``.
CODES: dict[str, tuple[str, str]] = {code: (sev, title) for code, (sev, title, _) in _CODES.items()}

# Thresholds. Inputs whose |mean| or std exceed _SCALE are "far from unit scale" (pixels
# 0-255, raw prices, years); a majority/minority ratio above _IMBALANCE is strong imbalance.
_SCALE = 10.0
_IMBALANCE = 10.0
_STEP_RATIO = 1.0  # a first step longer than the weights' own norm explodes
_SCALE_ROWS = 2048
# Overfitting one batch stops as soon as the loss has fallen by _OVERFIT_DROP; at fit's default
# lr (Adam, 1e-3) small healthy models get there in 20-120 steps, a double softmax does not.
_OVERFIT_STEPS = 150
_OVERFIT_DROP = 0.1  # the loss must fall by at least 10 % of its start


# --- findings and the report ---------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One problem: a stable ``code``, its ``severity``, a ``message`` naming the layer, tensor,
    column or setting with what was expected and what was received, the ``fix``, and ``where``
    (a layer path or an argument name).

    >>> f = Finding("NW105", "error", "targets are a column", "y = y.squeeze(1)", "targets")
    >>> str(f)
    'error NW105 [targets]: targets are a column Fix: y = y.squeeze(1)'
    """

    code: str
    severity: str
    message: str
    fix: str = ""
    where: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        where = f" [{self.where}]" if self.where else ""
        fix = f" Fix: {self.fix}" if self.fix else ""
        return f"{self.severity} {self.code}{where}: {self.message}{fix}"


def _finding(code: str, message: str, fix: str = "", where: str | None = None) -> Finding:
    return Finding(code, _CODES[code][0], message, fix, where)


class DoctorError(NetwrightError, ValueError):
    """The doctor found errors; ``.report`` holds every finding (errors, warnings, infos)."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__(report.error_text())

    def __reduce__(self) -> tuple:
        return type(self), (self.report,)


# Raised in place of DoctorError so that code catching the kind fit used to raise (a
# LossTargetError for float targets, a ModelSpecError for a forward that fails) still catches it.
class _LossTargetDoctorError(DoctorError, LossTargetError):
    pass


class _DataDoctorError(DoctorError, DataError):
    pass


class _ModelDoctorError(DoctorError, ModelSpecError):
    pass


class _ConfigDoctorError(DoctorError, ConfigError):
    pass


_ERROR_OF_KIND = {LossTargetError: _LossTargetDoctorError, DataError: _DataDoctorError,
                  ModelSpecError: _ModelDoctorError, ConfigError: _ConfigDoctorError}
_ORDER = {"error": 0, "warning": 1, "info": 2}


class Report(list):
    """The findings of a check, a list of :class:`Finding` (errors first). A report from
    :func:`preflight` also carries ``.output``: the model's eval-mode output on the batch (None
    when the forward failed).

    >>> r = Report([Finding("NW303", "info", "column 3 is constant", "drop it", "inputs")])
    >>> r.ok, len(r.errors), r.codes
    (True, 0, ['NW303'])
    >>> r.to_dict()["findings"][0]["code"]
    'NW303'
    """

    output: Any = None
    stage: str = "fit"  # the call that ran the checks (fit, evaluate, predict): named in errors

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self if f.severity == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self if f.severity == "warning"]

    @property
    def infos(self) -> list[Finding]:
        return [f for f in self if f.severity == "info"]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings and infos allowed)."""
        return not self.errors

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": len(self.errors), "warnings": len(self.warnings),
                "infos": len(self.infos), "findings": [f.to_dict() for f in self]}

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def summary(self) -> str:
        def n(count: int, word: str) -> str:
            return f"{count} {word}{'' if count == 1 else 's'}"
        return (f"{n(len(self.errors), 'error')}, {n(len(self.warnings), 'warning')}, "
                f"{len(self.infos)} info")

    def __repr__(self) -> str:
        return f"Report({self.summary()}: {', '.join(self.codes) or 'no findings'})"

    def __str__(self) -> str:
        if not self:
            return "netwright doctor: no findings."
        width = 100
        where_w = min(24, max(5, *(len(f.where or "") for f in self)))
        head = f"{'severity':<8}  {'code':<5}  {'where':<{where_w}}  finding"
        indent = " " * (8 + 2 + 5 + 2 + where_w + 2)
        lines = [f"netwright doctor: {self.summary()}", head, "-" * min(width, len(head) + 40)]
        body_w = max(40, width - len(indent))
        for f in self:
            where = (f.where or "")
            where = where if len(where) <= where_w else where[: where_w - 1] + "…"
            text = textwrap.wrap(f.message, body_w) or [""]
            if f.fix:
                text += textwrap.wrap("Fix: " + f.fix, body_w)
            lines.append(f"{f.severity:<8}  {f.code:<5}  {where:<{where_w}}  {text[0]}")
            lines += [indent + t for t in text[1:]]
        return "\n".join(lines)

    def to_table(self) -> Any:
        """The findings as a ``rich.table.Table`` (for the console)."""
        from rich.table import Table

        table = Table(title=f"netwright doctor: {self.summary()}", show_lines=True)
        for name in ("severity", "code", "where", "finding", "fix"):
            table.add_column(name, overflow="fold")
        style = {"error": "bold red", "warning": "yellow", "info": "cyan"}
        for f in self:
            table.add_row(f"[{style[f.severity]}]{f.severity}[/]", f.code, f.where or "",
                          f.message, f.fix)
        return table

    def error_text(self) -> str:
        shown = self.errors + self.warnings
        when = "before training" if self.stage == "fit" else f"in {self.stage}'s first batch"
        lines = [f"netwright doctor found {self.summary()} {when}:"]
        lines += [f"  {f.code} {f.severity} [{f.where or '-'}]: {f.message}"
                  + (f" Fix: {f.fix}" if f.fix else "") for f in shown]
        lines.append(f"(Each code is explained in docs/doctor.md; {self.stage}(..., check=False) "
                     f"skips these checks.)")
        return "\n".join(lines)

    def raise_for_errors(self) -> None:
        """Raise :class:`DoctorError` (carrying this report) if any finding is an error."""
        errors = self.errors
        if errors:
            kind = _CODES.get(errors[0].code, ("", "", NetwrightError))[2]
            raise _ERROR_OF_KIND.get(kind, DoctorError)(self)

    def sorted(self) -> Report:
        """The same findings, errors first, then warnings, then infos."""
        return Report(sorted(self, key=lambda f: _ORDER.get(f.severity, 3)))


# --- small helpers ---------------------------------------------------------------------------


_fmt = describe_tensors  # "float32 of shape (32, 1)", structures part by part


def _call(model: nn.Module, x: Any) -> Any:
    # The same spreading as training.step.call_model; the doctor sits below training.
    if isinstance(x, tuple):
        return model(*x)
    if isinstance(x, Mapping):
        return model(**x)
    return model(x)


def _tensors(value: Any, name: str) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor of a tensor / tuple / dict structure."""
    if isinstance(value, torch.Tensor):
        return [(name, value)]
    if isinstance(value, Mapping):
        return [t for k, v in value.items() for t in _tensors(v, f"{name}['{k}']")]
    if isinstance(value, (tuple, list)):
        return [t for i, v in enumerate(value) for t in _tensors(v, f"{name}[{i}]")]
    return []


def _layer(path: str, module: nn.Module) -> str:
    name = type(module).__name__
    return f"{name} (the model itself)" if not path else f"{name} '{path}'"


def _layer_repr(module: nn.Module) -> str:
    extra = module.extra_repr()
    return f"{type(module).__name__}({extra})" if extra else type(module).__name__


def _first_line(exc: BaseException, limit: int = 300) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    text = text if len(text) <= limit else text[:limit] + "…"
    return f"{type(exc).__name__}: {text}"


def _g(x: float) -> str:
    return f"{x:.4g}"


def _list(items: Sequence[Any], limit: int = 6) -> str:
    items = [str(i) for i in items]
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _set_modes(model: nn.Module, modes: Sequence[bool]) -> None:
    for module, mode in zip(model.modules(), modes):
        module.training = mode


class _RngGuard:
    """Saves the global CPU (and the data's CUDA device) RNG state; ``changed()`` tells whether
    anything drew from it since, ``restore()`` puts it back. A forward that draws random numbers
    in eval mode (dropout forced on) would otherwise shift every later random draw of the run."""

    def __init__(self, like: Any):
        self.cpu = torch.get_rng_state()
        self.cuda_device = None
        for _, t in _tensors(like, "x"):
            if t.is_cuda:
                self.cuda_device = t.device
                break
        self.cuda = torch.cuda.get_rng_state(self.cuda_device) if self.cuda_device is not None else None

    def changed(self) -> bool:
        if not torch.equal(torch.get_rng_state(), self.cpu):
            return True
        return self.cuda is not None and not torch.equal(
            torch.cuda.get_rng_state(self.cuda_device), self.cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.cuda_device)


# Layers whose input the doctor knows how to check against their sizes.
_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)
_CHECKABLE = (nn.Linear, nn.Bilinear, *_CONVS, nn.RNNBase, nn.Embedding, nn.EmbeddingBag,
              *_BATCHNORMS, nn.LayerNorm)
_DROPOUTS = (nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)


class _Trace:
    """Forward hooks that record, during one forward: the first layer the doctor can check (and
    its input), the chain of modules entered but not yet returned (so a failure names the
    innermost layer and its input), the last leaf to return (a final Softmax/Sigmoid) and the
    inputs of BatchNorm and recurrent layers."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.paths: dict[int, str] = {}
        self.stack: list[tuple[str, nn.Module, tuple]] = []
        self.first: tuple[str, nn.Module, tuple] | None = None
        self.last_leaf: tuple[str, nn.Module, Any] | None = None
        self.last_done: tuple[str, nn.Module, Any] | None = None
        self.norms: list[tuple[str, nn.Module, tuple[int, ...]]] = []
        self.recurrent: list[tuple[str, nn.Module, tuple[int, ...]]] = []
        self.handles: list[Any] = []

    def __enter__(self) -> _Trace:
        for path, module in self.model.named_modules():
            self.paths[id(module)] = path
            try:
                self.handles.append(module.register_forward_pre_hook(self._pre))
                self.handles.append(module.register_forward_hook(self._post))
            except (RuntimeError, AttributeError, TypeError):
                pass  # scripted modules take no hooks: they are simply not traced
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _pre(self, module: nn.Module, args: tuple) -> None:
        path = self.paths.get(id(module), "?")
        self.stack.append((path, module, args))
        if self.first is None and isinstance(module, _CHECKABLE):
            self.first = (path, module, args)
        head = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if head is not None:
            if isinstance(module, _BATCHNORMS):
                self.norms.append((path, module, tuple(head.shape)))
            elif isinstance(module, nn.RNNBase):
                self.recurrent.append((path, module, tuple(head.shape)))

    def final_module(self, out: Any) -> nn.Module | None:
        """The leaf module that produced the model's output itself (a final Softmax, Sigmoid)."""
        if self.last_leaf is not None and self.last_leaf[2] is out:
            return self.last_leaf[1]
        return None

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][1] is module:
                path = self.stack[i][0]
                del self.stack[i]
                break
        else:
            path = self.paths.get(id(module), "?")
        if module is not self.model:
            self.last_done = (path, module, output)
        if not module._modules:
            self.last_leaf = (path, module, output)


# --- the model and its input (NW2xx) -------------------------------------------------------------


def _permute_for(dims: int) -> str:
    return {1: "x.permute(0, 2, 1)", 2: "x.permute(0, 3, 1, 2)", 3: "x.permute(0, 4, 1, 2, 3)"}[dims]


def _fit_problem(path: str, module: nn.Module, args: tuple) -> tuple[str, str, str] | None:
    """(code, message, fix) when ``module`` cannot take ``args[0]``, else None."""
    if not args or not isinstance(args[0], torch.Tensor):
        return None
    t = args[0]
    name = _layer(path, module)
    weight = getattr(module, "weight", None)
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        if t.is_floating_point():
            return ("NW204", f"{name} looks up integer token ids; its input is {_fmt(t)}.",
                    "pass the ids as integers, x = x.long(); for continuous features use a Linear "
                    "layer instead of an Embedding")
        if t.numel():
            low, high = int(t.min()), int(t.max())
            if low < 0 or high >= module.num_embeddings:
                return ("NW205", f"{name} holds {module.num_embeddings} rows (ids 0 to "
                        f"{module.num_embeddings - 1}); its input has ids from {low} to {high}.",
                        f"set num_embeddings (vocab_size) to at least {high + 1}, or map "
                        f"unknown tokens to an id below {module.num_embeddings}")
        return None
    if isinstance(module, (nn.Linear, *_CONVS, nn.RNNBase)) and not t.is_floating_point():
        pixels = " (0-255 pixels: x = x.float() / 255)" if t.dtype in (torch.uint8, torch.int64) else ""
        return ("NW204", f"{name} computes in floating point; its input is {_fmt(t)}.",
                f"convert the inputs to float, x = x.float(){pixels}")
    if (isinstance(weight, torch.Tensor) and t.is_floating_point() and weight.is_floating_point()
            and t.dtype != weight.dtype):
        return ("NW204", f"{name} has {str(weight.dtype).replace('torch.', '')} weights; its input "
                f"is {_fmt(t)}.", f"x = x.to({str(weight.dtype)}) (or model.to(the input's dtype))")
    if isinstance(module, nn.Linear):
        if t.ndim >= 1 and t.shape[-1] != module.in_features:
            per_row = math.prod(t.shape[1:]) if t.ndim > 1 else t.shape[-1]
            if t.ndim > 2 and per_row == module.in_features:
                fix = (f"flatten each sample first: add nn.Flatten() before '{path or 'it'}' "
                       f"(or x = x.reshape(len(x), -1))")
            else:
                fix = (f"set in_features={t.shape[-1]} on {name}, or give it inputs with "
                       f"{module.in_features} features")
            return ("NW201", f"{name} expects in_features={module.in_features} input features; "
                    f"its input has {t.shape[-1]} ({_fmt(t)}).", fix)
        return None
    if isinstance(module, _CONVS):
        dims = len(module.kernel_size)
        cin = module.in_channels
        if t.ndim == dims + 2:
            if t.shape[1] != cin:
                if t.shape[-1] == cin:
                    return ("NW202", f"{name} expects channels first, (N, C={cin}, ...); its input "
                            f"{_fmt(t)} has the {cin} channel(s) last.",
                            f"move the channels to dim 1: x = {_permute_for(dims)}")
                return ("NW201", f"{name} expects in_channels={cin}; its input {_fmt(t)} has "
                        f"{t.shape[1]} channels in dim 1.",
                        f"set in_channels={t.shape[1]}, or give images of {cin} channel(s)")
            return None
        if t.ndim == dims + 1 and t.shape[0] != cin:
            return ("NW201", f"{name} expects batches of shape (N, C={cin}, {dims} spatial dims); "
                    f"its input {_fmt(t)} has no channel dimension.",
                    "add the channel dimension: x = x.unsqueeze(1)" if cin == 1 else
                    f"give inputs of shape (N, {cin}, ...)")
        if t.ndim == 2 and dims == 2:
            side = math.isqrt(max(t.shape[1] // max(cin, 1), 0))
            guess = (f"x = x.reshape(-1, {cin}, {side}, {side})" if cin * side * side == t.shape[1]
                     else f"x = x.reshape(-1, {cin}, H, W)")
            return ("NW201", f"{name} expects images (N, C={cin}, H, W); its input is flat, {_fmt(t)}.",
                    f"reshape each row into an image, {guess} (a run config: data.shape)")
        if t.ndim not in (dims + 1, dims + 2):
            return ("NW201", f"{name} expects inputs with {dims + 2} dims (N, C, ...); its input "
                    f"is {_fmt(t)}.", f"reshape the inputs to (N, {cin}, ...)")
        return None
    if isinstance(module, nn.RNNBase):
        if t.ndim >= 1 and t.shape[-1] != module.input_size:
            if t.ndim == 2 and module.input_size == 1:
                fix = "add the feature dimension: x = x.unsqueeze(-1), giving (N, T, 1)"
            else:
                fix = (f"set input_size={t.shape[-1]}, or give sequences of {module.input_size} "
                       f"features per step")
            return ("NW201", f"{name} expects input_size={module.input_size} features per step; its "
                    f"input {_fmt(t)} has {t.shape[-1]}.", fix)
        return None
    if isinstance(module, _BATCHNORMS):
        if t.ndim >= 2 and t.shape[1] != module.num_features:
            return ("NW201", f"{name} expects num_features={module.num_features} channels in dim 1; "
                    f"its input {_fmt(t)} has {t.shape[1]}.",
                    f"set num_features={t.shape[1]}")
        return None
    if isinstance(module, nn.LayerNorm):
        shape = tuple(module.normalized_shape)
        if tuple(t.shape[-len(shape):]) != shape:
            return ("NW201", f"{name} normalises the last dims of shape {shape}; its input is {_fmt(t)}.",
                    f"set normalized_shape={tuple(t.shape[-len(shape):])}")
    return None


def _forward_failure(model: nn.Module, x: Any, trace: _Trace, exc: BaseException) -> Finding:
    """A finding that names the layer where the forward failed, its input, and a fix."""
    lead = f"forward failed on the first batch, inputs {_fmt(x)}"
    if not trace.stack:  # no hook fired (a scripted model): only the exception to go by
        return _finding("NW203", f"{lead}: {_first_line(exc)}",
                        f"make {type(model).__name__}.forward accept these inputs", "model")
    path, module, args = trace.stack[-1]
    problem = _fit_problem(path, module, args)
    if problem is not None:
        code, message, fix = problem
        if code == "NW201" and trace.first is not None and trace.first[1] is not module:
            code = "NW203"  # a layer further in: its size does not fit what the layer before returns
            message += " (it is not the first layer: check what the layer before it returns)"
        return _finding(code, f"{lead}: {message}", fix, path or "model")
    if module is model or not path:
        after = ""
        if trace.last_done is not None:
            after = (f", after layer '{trace.last_done[0]}' returned {_fmt(trace.last_done[2])}")
        return _finding(
            "NW203", f"{lead}, in {type(model).__name__}.forward itself{after}: {_first_line(exc)}",
            f"check the tensor operations in {type(model).__name__}.forward"
            + (f" after '{trace.last_done[0]}'" if trace.last_done else "")
            + " against these shapes", "model")
    return _finding(
        "NW203", f"{lead}, in layer '{path}' ({_layer_repr(module)}) whose input was "
        f"{_fmt(args)}: {_first_line(exc)}",
        f"make '{path}' accept {_fmt(args[0] if len(args) == 1 else args)} (change its sizes) or "
        f"change what the layers before it return", path)


def _success_layer_findings(trace: _Trace, rows: int | None) -> list[Finding]:
    found = []
    if trace.first is not None:
        path, module, args = trace.first
        t = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if (isinstance(module, nn.Conv2d) and t is not None and t.ndim == 4
                and t.shape[3] in (1, 3, 4) and t.shape[1] > 4 and t.shape[2] > 4):
            found.append(_finding(
                "NW210", f"{_layer(path, module)} reads dim 1 of {_fmt(t)} as {t.shape[1]} channels, "
                f"but the images look channels-last (N, H, W, C={t.shape[3]}): the convolution then "
                f"slides over width and channels.",
                f"x = x.permute(0, 3, 1, 2) and in_channels={t.shape[3]}", path or "model"))
    if rows:
        for path, module, shape in trace.recurrent:
            if (not module.batch_first and len(shape) == 3 and shape[0] == rows and shape[1] != rows):
                found.append(_finding(
                    "NW211", f"{_layer(path, module)} has batch_first=False, so it reads its input "
                    f"of shape {shape} as (T={shape[0]}, N={shape[1]}, F): the {rows} samples of the "
                    f"batch become time steps and the {shape[1]} time steps become samples.",
                    "create it with batch_first=True (netwright's rnn/lstm/gru layers do), or pass "
                    "x.transpose(0, 1)", path or "model"))
    return found


def _batchnorm_findings(trace: _Trace, rows: int, batch_sizes: Sequence[int] | None) -> list[Finding]:
    if not trace.norms or not rows:
        return []
    sizes = [b for b in (batch_sizes or []) if b > 0]
    smallest = min(sizes) if sizes else rows
    found = []
    for path, module, shape in trace.norms:
        if len(shape) < 2 or shape[1] == 0:
            continue
        per_channel = math.prod(shape) // shape[1]  # values per channel in this batch
        at_smallest = per_channel * smallest / rows
        if at_smallest <= 1:
            which = ("every batch has 1 sample (batch_size=1)" if smallest == rows
                     else f"a batch of {smallest} sample (the last one: the data does not divide "
                     f"into batches of {max(sizes or [rows])})")
            found.append(_finding(
                "NW208", f"{_layer(path, module)} normalises each channel over the batch and in "
                f"training needs more than 1 value per channel; {which}, so it gets input of shape "
                f"({smallest}, {', '.join(str(s) for s in shape[1:])}) and torch raises "
                f"'Expected more than 1 value per channel when training'.",
                "use drop_last=True or a batch size that leaves no batch of 1 sample; or nn.LayerNorm/"
                "nn.GroupNorm, which do not depend on the batch", path or "model"))
            break
    return found


# --- output vs targets and loss (NW1xx) ----------------------------------------------------------


def _is_distribution(o: torch.Tensor, dim: int = 1) -> bool:
    """Rows non-negative, at most 1, summing to 1 along ``dim``."""
    if o.numel() == 0 or float(o.min()) < 0 or float(o.max()) > 1 + 1e-4:
        return False
    sums = o.sum(dim)
    return bool(torch.allclose(sums, torch.ones_like(sums), atol=1e-3))


def _output_op(model: nn.Module, x: Any) -> str | None:
    """The autograd op that made the output (``SigmoidBackward0`` ...): one extra forward with
    grad on, run only when the values already look squashed, to tell a functional sigmoid or
    softmax (no module to see) from raw scores that happen to lie in [0, 1]."""
    try:
        with torch.enable_grad():
            out = _call(model, x)
    except Exception:  # noqa: BLE001 - only a hint; the first forward already succeeded
        return None
    fn = getattr(out, "grad_fn", None) if isinstance(out, torch.Tensor) else None
    return type(fn).__name__ if fn is not None else None


def _class_target_findings(info: LossInfo, loss_fn: Any, out: torch.Tensor, y: torch.Tensor,
                           trace: _Trace) -> list[Finding]:
    name = info.name
    found: list[Finding] = []
    if out.ndim < 2 or out.shape[1] == 1:
        effect = ("the log-softmax of a single score is always 0, so the loss is always 0 and "
                  "nothing is learned" if name == "cross_entropy" else
                  "the loss reads that one value as the score of class 0 and means nothing")
        return [_finding(
            "NW111", f"loss '{name}' needs one score per class, output shape (N, C) with C >= 2; "
            f"the model outputs {_fmt(out)}, "
            f"{'one value per sample' if out.ndim >= 1 else 'a single value'}: {effect}.",
            "give the last layer C outputs (one per class); for two classes with one output use "
            "loss 'bce_with_logits' and float targets of shape (N, 1)", "output")]
    classes = out.shape[1]
    o = out.detach().float()
    last = trace.final_module(out)
    probs = _is_distribution(o)
    if name == "cross_entropy" and (probs or isinstance(last, nn.Softmax)):
        found.append(_finding(
            "NW101", f"loss 'cross_entropy' applies log-softmax itself, but the model's output rows "
            f"are already probabilities (non-negative, summing to 1; {_fmt(out)}): a double softmax "
            f"squashes the gradients, so training is slow and stalls early.",
            "return logits: drop the final softmax (keep it only for prediction)", "output"))
    elif name == "nll":
        log_probs = float(o.max()) <= 1e-4 and _is_distribution(o.exp())
        if probs or isinstance(last, nn.Softmax):
            found.append(_finding(
                "NW103", f"loss 'nll' expects log-probabilities; the model's output rows are "
                f"probabilities (non-negative, summing to 1; {_fmt(out)}), so the loss is -p and its "
                f"gradients are weak.",
                "end the model with log_softmax instead of softmax, or return logits and use loss "
                "'cross_entropy'", "output"))
        elif not (log_probs or isinstance(last, nn.LogSoftmax)):
            found.append(_finding(
                "NW102", f"loss 'nll' expects log-probabilities (values <= 0 whose exp sums to 1 per "
                f"row); the model outputs raw scores from {_g(float(o.min()))} to {_g(float(o.max()))} "
                f"({_fmt(out)}): -score has no lower bound, so the loss falls forever and means nothing.",
                "use loss 'cross_entropy' on these logits, or end the model with log_softmax(dim=1)",
                "output"))
    expected = (out.shape[0], *out.shape[2:])
    squeeze = ".squeeze(1)" if y.ndim == 2 and y.shape[1] == 1 and out.ndim == 2 else ""
    if y.is_floating_point():
        if y.shape == out.shape and name == "cross_entropy":
            t = y.detach().float()
            if y.numel() and (float(t.min()) < 0 or not _is_distribution(t)):
                found.append(_finding(
                    "NW107", f"float targets of the output's shape are class probabilities (soft "
                    f"labels) for 'cross_entropy', but their rows are not distributions (values from "
                    f"{_g(float(t.min()))} to {_g(float(t.max()))}; row sums from "
                    f"{_g(float(t.sum(1).min()))} to {_g(float(t.sum(1).max()))}).",
                    "for several labels per sample (multi-label) use loss 'bce_with_logits'; for soft "
                    "labels make each row sum to 1", "targets"))
            return found
        whole = bool(torch.equal(y, y.round())) if y.numel() else True
        fix = (f"pass class indices, y = y{squeeze}.long()" if whole else
               "these look like continuous values: use a regression loss such as 'mse'")
        found.append(_finding(
            "NW104", f"loss '{name}' expects targets as {info.target}; received {_fmt(y)} while the "
            f"model outputs {_fmt(out)}.", fix, "targets"))
        return found
    if y.dtype == torch.bool or not (y.dtype.is_floating_point or y.dtype in (
            torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)):
        found.append(_finding(
            "NW112", f"loss '{name}' expects int64 class indices; received {_fmt(y)}.",
            "y = y.long()", "targets"))
        return found
    if y.ndim == out.ndim and y.ndim >= 2 and y.shape[1] == 1 and tuple(y.squeeze(1).shape) == expected:
        found.append(_finding(
            "NW105", f"loss '{name}' expects targets as {info.target}; received {_fmt(y)}: a column, "
            f"not a vector.", "y = y.squeeze(1)", "targets"))
        return found
    if y.shape == out.shape:
        onehot = bool(((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all())
        found.append(_finding(
            "NW106", f"loss '{name}' expects targets as {info.target}; received integer targets of the "
            f"output's shape, {_fmt(y)}: "
            + ("one-hot rows." if onehot else "several labels per row (multi-hot)."),
            "y = y.argmax(1) (class indices)" if onehot else
            "for several labels per sample use loss 'bce_with_logits' with y = y.float()", "targets"))
        return found
    if tuple(y.shape) != expected:
        found.append(_finding(
            "NW112", f"loss '{name}' expects one class index per sample, targets of shape "
            f"{expected}, for the output {_fmt(out)}; received {_fmt(y)}.",
            "give one integer class per sample (the same number of rows as the inputs)", "targets"))
        return found
    ignore = getattr(loss_fn, "ignore_index", -100)
    y_cpu = y.detach().cpu()  # before it can become a CUDA device-side assert
    valid = y_cpu[y_cpu != ignore]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= classes):
        low, high = int(valid.min()), int(valid.max())
        found.append(_finding(
            "NW108", f"loss '{name}': class targets must lie in [0, {classes}) for a model with "
            f"{classes} outputs; the batch has labels from {low} to {high}.",
            f"map labels to 0..C-1, or give the last layer {high + 1} outputs", "targets"))
    return found


def _binary_findings(info: LossInfo, out: torch.Tensor, y: torch.Tensor, trace: _Trace,
                     model: nn.Module, x: Any) -> list[Finding]:
    name = info.name
    found: list[Finding] = []
    if not y.is_floating_point():
        found.append(_finding(
            "NW132", f"loss '{name}' expects {info.target}; received {_fmt(y)}.", "y = y.float()",
            "targets"))
    elif y.numel() and (float(y.min()) < 0 or float(y.max()) > 1):
        found.append(_finding(
            "NW123", f"loss '{name}' expects targets in [0, 1]; the batch has values from "
            f"{_g(float(y.min()))} to {_g(float(y.max()))}.",
            "binary labels must be 0 or 1 (or probabilities); for several classes use "
            "'cross_entropy' with integer labels", "targets"))
    o = out.detach().float()
    if not o.numel():
        return found
    low, high = float(o.min()), float(o.max())
    if name == "bce" and (low < 0 or high > 1):
        found.append(_finding(
            "NW121", f"loss 'bce' expects probabilities in [0, 1]; the model outputs values from "
            f"{_g(low)} to {_g(high)} ({_fmt(out)}).",
            "use loss 'bce_with_logits' on the raw outputs (more stable than adding a sigmoid)",
            "output"))
    elif name == "bce_with_logits" and low >= 0 and high <= 1:
        if isinstance(trace.final_module(out), nn.Sigmoid) or _output_op(model, x) == "SigmoidBackward0":
            found.append(_finding(
                "NW122", f"loss 'bce_with_logits' applies a sigmoid itself, but the model already "
                f"ends in a sigmoid (outputs from {_g(low)} to {_g(high)}): a double sigmoid keeps "
                f"the predicted probability between 0.5 and 0.73 and squashes the gradients.",
                "return logits: drop the final sigmoid", "output"))
    return found


def _shape_findings(info: LossInfo, out: torch.Tensor, y: torch.Tensor) -> list[Finding]:
    if y.shape == out.shape:
        return []
    if out.ndim == y.ndim + 1 and out.shape[-1] == 1:
        fix = "give targets of shape (N, 1), y = y.unsqueeze(1), or flatten the output"
    elif y.ndim == out.ndim + 1 and y.shape[-1] == 1:
        fix = "flatten the targets, y = y.squeeze(-1)"
    else:
        fix = "make the last layer output one value per target"
    try:
        shape = tuple(torch.broadcast_shapes(out.shape, y.shape))
        effect = f"torch would broadcast them to {shape} and compare every output with every target"
    except RuntimeError:
        effect = "torch cannot even broadcast them"
    return [_finding(
        "NW131", f"loss '{info.name}' compares output and target element by element, so their shapes "
        f"must be equal; the model output {_fmt(out)} and the targets are {_fmt(y)}: {effect}.",
        fix, "targets")]


def _output_findings(model: nn.Module, x: Any, y: Any, out: Any, info: LossInfo, loss_fn: Any,
                     trace: _Trace, finite: bool = True) -> list[Finding]:
    """Output vs targets vs loss. ``finite`` is False when a NaN/Inf was already found in the
    inputs, targets or output: a NaN loss is then no news."""
    found: list[Finding] = []
    if y is None:
        return found
    if (isinstance(out, torch.Tensor) and isinstance(y, torch.Tensor) and out.is_floating_point()
            and info.task != "custom"):
        if info.task == "multiclass":
            found += _class_target_findings(info, loss_fn, out, y, trace)
        else:
            shape = _shape_findings(info, out, y)
            found += shape
            if not shape:
                if info.task == "binary":
                    found += _binary_findings(info, out, y, trace, model, x)
                elif not y.is_floating_point():
                    found.append(_finding(
                        "NW132", f"loss '{info.name}' expects {info.target}; received {_fmt(y)}.",
                        "y = y.float()", "targets"))
    if any(f.severity == "error" for f in found):
        return found  # the loss would only fail again on the same cause
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = loss_fn(out, y)
    except Exception as exc:  # noqa: BLE001 - any failure of the loss becomes a finding
        several = not isinstance(out, torch.Tensor)
        found.append(_finding(
            "NW190", f"loss '{info.name}' failed on the first batch: output {_fmt(out)}, targets "
            f"{_fmt(y)}: {_first_line(exc)}",
            ("the model returns several outputs: return one tensor, or pass a loss callable(output, "
             "target) that takes this structure") if several else
            f"give outputs and targets in the form loss '{info.name}' expects ({info.target})",
            "loss"))
        return found
    if not isinstance(out, torch.Tensor):
        found.append(_finding(
            "NW192", f"the model returns {_fmt(out)}, not one tensor: the loss '{info.name}' takes it, "
            f"but the output checks (probabilities, target shapes and ranges) were skipped.",
            "nothing to do if the loss is meant for this structure", "output"))
    if (finite and isinstance(value, torch.Tensor) and value.numel()
            and not bool(torch.isfinite(value.detach()).all())):
        found.append(_finding(
            "NW191", f"loss '{info.name}' is {float(value.detach().float().reshape(-1)[0])} on the "
            f"first batch (output {_fmt(out)}, targets {_fmt(y)}).",
            "check the output range the loss expects (e.g. log of 0); fix NaN/Inf inputs first", "loss"))
    return found


# --- the data (NW3xx) and classes ----------------------------------------------------------------


def _nonfinite_finding(code: str, name: str, t: torch.Tensor, scope: str,
                       total: torch.Tensor | None = None, *,
                       effect: str = "any NaN makes the loss and then every weight NaN",
                       stage: str = "training") -> Finding | None:
    """NaN/Inf rows of ``t``. ``total`` is a sum over ``t`` already computed: any NaN/Inf makes
    it non-finite, so the exact (slower) row search runs only when there is something to find."""
    if not t.is_floating_point() or not t.numel():
        return None
    if total is None:
        total = t.sum()
    if bool(torch.isfinite(total).all()):
        return None
    flat = t.reshape(t.shape[0], -1) if t.ndim > 1 else t.reshape(-1, 1)
    bad = ~torch.isfinite(flat)
    rows = bad.any(1).nonzero().flatten()
    if not rows.numel():
        return None  # the sum overflowed; the values themselves are finite
    what = "inputs" if code == "NW301" else "targets"
    return _finding(
        code, f"{name} have {len(rows)} row(s) with NaN/Inf values ({int(bad.sum())} values) {scope}, "
        f"the first at row {int(rows[0])}: {effect}.",
        f"drop or fill those rows before {stage} (e.g. impute, or {what} = torch.nan_to_num(...))",
        name)


def _std_mean(t: torch.Tensor, dim: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(std, mean) of the first _SCALE_ROWS rows, from a sum and a sum of squares: enough for a
    threshold of 10, and several times cheaper than torch.std_mean over the whole data."""
    n = t.shape[0] if dim == 0 else t.numel()
    mean = (t.sum(dim) if dim is not None else t.sum()) / n
    sq = (t * t).sum(dim) if dim is not None else (t * t).sum()
    return (sq / n - mean * mean).clamp(min=0).sqrt(), mean


def _constant_columns(t: torch.Tensor) -> list[int]:
    """Columns with one value in every row: candidates from the first rows, confirmed on all."""
    head = t[:_SCALE_ROWS]
    candidates = (head.amax(0) == head.amin(0)).nonzero().flatten()
    if not candidates.numel() or t.shape[0] <= _SCALE_ROWS:
        return candidates.tolist()
    sub = t[:, candidates]
    return candidates[sub.amax(0) == sub.amin(0)].tolist()


def _data_findings(x: Any, y: Any, info: LossInfo, model: nn.Module, whole: bool) -> list[Finding]:
    """NaN/Inf, scale and constant-feature checks over ``x``/``y`` (the whole data or a batch)."""
    found: list[Finding] = []
    scope = "in the data given" if whole else "in the first batch"
    scaled_in = isinstance(model, Scaled) and model.scale_inputs
    scaled_out = isinstance(model, Scaled) and model.scale_outputs
    for name, t in _tensors(x, "inputs"):
        if not t.is_floating_point() or t.ndim == 0 or t.shape[0] == 0:
            continue
        t32 = t.detach().float()
        bad = _nonfinite_finding("NW301", name, t32, scope)
        if bad is not None:
            found.append(bad)
            continue
        tabular = t32.ndim == 2 and t32.shape[0] > 1
        std, mean = _std_mean(t32[:_SCALE_ROWS], 0 if tabular else None)
        if tabular:
            if whole:
                constant = _constant_columns(t32)
                if constant and len(constant) == t32.shape[1]:
                    found.append(_finding(
                        "NW304", f"{name}: every one of the {t32.shape[1]} features is constant over "
                        f"all {t32.shape[0]} rows of the training data: all samples look the same, "
                        f"nothing can be learned.",
                        "check the data loading (a wrong column, a fill value, a lost scaling)", name))
                    continue
                if constant:
                    found.append(_finding(
                        "NW303", f"{name}: {len(constant)} of {t32.shape[1]} features are constant "
                        f"over all {t32.shape[0]} rows of the training data (columns "
                        f"{_list(constant)}): they carry no "
                        f"information.", "drop them (harmless, but they only add parameters)", name))
            if scaled_in:
                continue
            far = ((mean.abs() > _SCALE) | (std > _SCALE)).nonzero().flatten().tolist()
            if far:
                cols = [f"column {c} (mean {_g(float(mean[c]))}, std {_g(float(std[c]))})" for c in far]
                found.append(_finding(
                    "NW305", f"{name}: {len(far)} of {t32.shape[1]} features are far from unit scale "
                    f"(|mean| or std above {_SCALE:g}) {scope}: {_list(cols, 4)}. Large inputs make "
                    f"large activations and gradients: training is slow or unstable.",
                    "standardise the inputs with the training data's statistics, "
                    "X = (X - X.mean(0)) / X.std(0) (a run config does this: data.standardize)", name))
        elif not scaled_in and t32.numel() > 1:
            m, s = float(mean), float(std)
            if abs(m) > _SCALE or s > _SCALE:
                found.append(_finding(
                    "NW305", f"{name} are far from unit scale {scope}: mean {_g(m)}, std {_g(s)}, "
                    f"values from {_g(float(t32.min()))} to {_g(float(t32.max()))} (e.g. 0-255 pixels).",
                    "scale the inputs: x / 255 for pixels, or (x - mean) / std with the training "
                    "data's statistics (a run config: data.standardize: global)", name))
    if isinstance(y, torch.Tensor) and y.is_floating_point() and y.numel():
        y32 = y.detach().float()
        bad = _nonfinite_finding("NW302", "targets", y32, scope)
        if bad is not None:
            found.append(bad)
        elif info.task == "regression" and y.numel() > 1 and not scaled_out:
            std, mean = _std_mean(y32[:_SCALE_ROWS], None)
            m, s = float(mean), float(std)
            if abs(m) > _SCALE or s > _SCALE:
                found.append(_finding(
                    "NW306", f"regression targets are far from unit scale {scope}: mean {_g(m)}, "
                    f"std {_g(s)}: the first errors are huge, gradients explode or the model needs "
                    f"many epochs just to reach the targets' range.",
                    "standardise the targets and undo it on predictions (a run config does both: "
                    "data.standardize_target)", "targets"))
    return found


def _class_findings(info: LossInfo, loss_fn: Any, out: torch.Tensor, y_all: torch.Tensor) -> list[Finding]:
    """Class coverage and imbalance over the whole data (one batch can miss classes)."""
    found: list[Finding] = []
    y = y_all.detach()
    if info.task == "multiclass" and not y.is_floating_point() and out.ndim >= 2:
        classes = out.shape[1]
        labels = y.reshape(-1).cpu()
        labels = labels[(labels >= 0) & (labels < classes)]
        if labels.numel() < 2 or classes < 2:
            return found
        counts = torch.bincount(labels, minlength=classes)
        present = (counts > 0).nonzero().flatten().tolist()
        if len(present) < classes:
            absent = (counts == 0).nonzero().flatten().tolist()
            found.append(_finding(
                "NW109", f"the model outputs {classes} class scores but the targets hold only "
                f"{len(present)} classes ({_list(present, 10)}); classes {_list(absent, 10)} never "
                f"occur, so their outputs only learn to be unlikely.",
                f"give the last layer {max(present) + 1} outputs if the labels are complete "
                f"(num_classes={max(present) + 1}), or check that the data holds every class", "output"))
        if len(present) >= 2 and getattr(loss_fn, "weight", None) is None:
            seen = counts[counts > 0].float()
            ratio = float(seen.max() / seen.min())
            if ratio > _IMBALANCE:
                weights = (labels.numel() / (len(present) * counts.clamp(min=1).float())).tolist()
                shown = "[" + ", ".join(f"{w:.3g}" for w in weights) + "]" if classes <= 20 else \
                    "N / (C * count of each class)"
                found.append(_finding(
                    "NW110", f"class imbalance: the most frequent class has {ratio:.0f}x as many "
                    f"samples as the rarest (counts {_list(counts.tolist(), 10)} over "
                    f"{labels.numel()} targets): the model can score well by ignoring rare classes.",
                    f"weight the classes, loss={{'name': '{info.name}', 'weight': {shown}}}; and judge "
                    f"it by f1_macro or recall, not accuracy", "targets"))
    elif info.task == "binary" and y.is_floating_point() and y.numel():
        cols = y.reshape(y.shape[0], -1).float()
        hard = bool(((cols == 0) | (cols == 1)).all())
        if not hard or cols.shape[0] < 2:
            return found
        pos = cols.sum(0)
        neg = cols.shape[0] - pos
        single = ((pos == 0) | (neg == 0)).nonzero().flatten().tolist()
        if single:
            found.append(_finding(
                "NW109", f"binary target column(s) {_list(single)} hold only one class over "
                f"{cols.shape[0]} rows: the model can only learn to always predict it.",
                "check the labels (a wrong column or encoding), or drop those outputs", "targets"))
        elif getattr(loss_fn, "pos_weight", None) is None:
            ratio = torch.maximum(pos, neg) / torch.minimum(pos, neg)
            worst = int(ratio.argmax())
            if float(ratio[worst]) > _IMBALANCE:
                pw = (neg / pos).tolist()
                shown = "[" + ", ".join(f"{w:.3g}" for w in pw[:20]) + "]"
                found.append(_finding(
                    "NW110", f"class imbalance: target column {worst} has {int(pos[worst])} positives "
                    f"and {int(neg[worst])} negatives ({float(ratio[worst]):.0f}x).",
                    f"weight the positives, loss={{'name': '{info.name}', 'pos_weight': {shown}}}; and "
                    f"judge it by f1 or auroc, not accuracy", "targets"))
    return found


# --- parameters, optimizer, scheduler, logged values (NW4xx) -------------------------------------


def _param_findings(model: nn.Module, optimizer: Any) -> list[Finding]:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        total = sum(1 for _ in model.parameters())
        return [_finding(
            "NW403", f"the model {type(model).__name__} has no trainable parameters ("
            + (f"all {total} have requires_grad=False" if total else "it has no parameters at all")
            + "): training cannot change it.",
            "unfreeze some layers (p.requires_grad_(True)), or add layers with weights", "model")]
    if not isinstance(optimizer, torch.optim.Optimizer):
        return []
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    kind = type(optimizer).__name__
    if not held:
        return [_finding(
            "NW402", f"the optimizer {kind} holds no parameters, so no step changes the model.",
            "build it from the model, e.g. torch.optim.Adam(model.parameters())", "optimizer")]
    missing = [n for n, p in trainable if id(p) not in held]
    if len(missing) == len(trainable):
        return [_finding(
            "NW402", f"the optimizer {kind} updates none of the {len(trainable)} trainable parameters "
            f"of {type(model).__name__}: it was built for other parameters (another model instance?).",
            "build the optimizer from this model's parameters after creating the model", "optimizer")]
    if missing:
        return [_finding(
            "NW401", f"{len(missing)} of {len(trainable)} trainable parameters are not in the optimizer "
            f"{kind}, so they never change: {_list(missing)}.",
            "add them to the optimizer (build it from model.parameters()), or freeze them "
            "deliberately with requires_grad_(False)", "optimizer")]
    return []


def _schedule_findings(schedule: Schedule | None, log_keys: Sequence[str] | None,
                       steps_per_epoch: int | None, epochs: int | None) -> list[Finding]:
    if schedule is None or schedule.scheduler is None:
        return []
    found: list[Finding] = []
    sched = schedule.scheduler
    label = schedule.name or type(sched).__name__
    if schedule.interval == "plateau" and log_keys is not None and schedule.monitor not in log_keys:
        monitor = str(schedule.monitor)
        hint = ""
        if monitor.startswith("val_") and not any(k.startswith("val_") for k in log_keys):
            hint = " (val_* values need val data)"
        elif monitor.split("_", 1)[-1] not in {k.split("_", 1)[-1] for k in log_keys}:
            hint = f" (add the metric: metrics=['{monitor.split('_', 1)[-1]}'])"
        found.append(_finding(
            "NW411", f"scheduler '{label}' monitors {monitor!r}, which is never logged{hint}; each "
            f"epoch logs {list(log_keys)}: torch would fail at the end of the first epoch.",
            "monitor one of the logged values, e.g. {'name': 'reduce_on_plateau', 'monitor': "
            f"'{'val_loss' if 'val_loss' in log_keys else 'train_loss'}'}}", "scheduler"))
    if isinstance(sched, torch.optim.lr_scheduler.OneCycleLR) and epochs and steps_per_epoch:
        total = int(sched.total_steps)
        per_step = schedule.interval == "step"
        planned = epochs * steps_per_epoch if per_step else epochs
        how = (f"{epochs} epochs x {steps_per_epoch} steps = {planned} optimizer steps" if per_step
               else f"it steps once per epoch here, {planned} times")
        if planned > total:
            found.append(_finding(
                "NW412", f"scheduler '{label}' has total_steps={total} but the run makes {how}: "
                f"torch raises 'Tried to step {total + 1} times' partway through training.",
                f"leave total_steps out (netwright sets it to epochs x steps per epoch = "
                f"{epochs * steps_per_epoch}), or set total_steps={planned}", "scheduler"))
        elif planned < total:
            epoch_note = "" if per_step else (
                " A OneCycleLR object is stepped per epoch unless given as {'scheduler': obj, "
                "'interval': 'step'}.")
            found.append(_finding(
                "NW413", f"scheduler '{label}' has total_steps={total} but the run makes {how}: the "
                f"cycle stops at {100 * planned / total:.0f} %, with the learning rate still high "
                f"instead of annealed.{epoch_note}",
                f"set total_steps={planned} (or leave it out when naming 'onecycle')", "scheduler"))
    return found


# --- the cheap checks on one batch ---------------------------------------------------------------


def _checked_module(model: nn.Module) -> nn.Module:
    """The module to run the traced forward on."""
    target = model
    if type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None),
                                                                nn.Module):
        # torch.compile'd: check the eager module. Hooks on the compiled one would cost a
        # recompilation now and another when training removes them.
        target = model._orig_mod
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in target.parameters()):
        target = copy.deepcopy(target)  # a lazy layer would otherwise take its shapes from this call
    return target


# What evaluate and predict refuse is what the caller gave them: the inputs, the targets and
# whether they fit the model's sizes and the loss. The training-only checks (parameters,
# optimizer, scheduler, BatchNorm batch sizes, input scale, class balance) do not apply, and the
# state of the weights is not the caller's mistake: a diverged model is scored, not refused.
_WEIGHTS_STATE = ("NW191", "NW209")


def check_batch(model: nn.Module, x: Any, y: Any = None, *, loss_fn: Callable | None = None,
                loss_info: LossInfo | None = None, stage: str = "evaluate",
                forward: bool = True) -> Report:
    """The cheap checks ``evaluate`` and ``predict`` run on their first batch, with fit's codes:
    NaN/Inf in the inputs or targets (NW301, NW302); with ``forward``, one forward in eval mode
    under ``no_grad`` whose failure is named by layer, expected and received (NW2xx); with a
    loss and targets too, the output against the targets and the loss (NW1xx). Only errors are
    kept; ``.output`` is the forward's output. The model, its modes and the global RNG are left
    as they were.

    >>> net = nn.Linear(20, 3)
    >>> check_batch(net, torch.rand(5, 19), stage="predict").codes
    ['NW201']
    >>> fn, info = resolve_loss("cross_entropy")
    >>> check_batch(net, torch.rand(5, 20), torch.zeros(5, 1), loss_fn=fn, loss_info=info).codes
    ['NW104']
    """
    info = loss_info if loss_info is not None else LossInfo("none", "custom", "values", "")
    found: list[Finding] = []
    effects = {"NW301": "the model's outputs for those rows are NaN, and so is every score they enter",
               "NW302": "the loss and every score they enter are NaN"}
    for code, (name, t) in [*(("NW301", p) for p in _tensors(x, "inputs")),
                            *(("NW302", p) for p in _tensors(y, "targets"))]:
        if t.ndim and t.shape[0]:
            bad = _nonfinite_finding(code, name, t.detach(), "in the first batch",
                                     effect=effects[code], stage=stage)
            found += [bad] if bad is not None else []
    out: Any = None
    if forward and not any(f.code == "NW301" for f in found):
        target = _checked_module(model)
        modes = [m.training for m in target.modules()]
        rng = _RngGuard(x)
        try:
            trace, out, failure = _traced_forward(target, x)
            if failure is not None:
                found.append(_forward_failure(target, x, trace, failure))
            elif loss_fn is not None and y is not None:
                finite = not any(f.code == "NW302" for f in found)
                found += _output_findings(target, x, y, out, info, loss_fn, trace, finite)
        finally:
            _set_modes(target, modes)
            rng.restore()
    report = Report(f for f in found if f.severity == "error" and f.code not in _WEIGHTS_STATE)
    report.output, report.stage = out, stage
    return report


def _traced_forward(target: nn.Module, x: Any) -> tuple[_Trace, Any, BaseException | None]:
    """One forward of ``target`` in eval mode with every layer traced: (trace, output, the
    exception it raised or None). The caller restores the modes and the RNG."""
    target.eval()
    trace, out, failure = _Trace(target), None, None
    # no_grad rather than inference_mode: a model that caches a tensor in its forward must
    # not be left holding an inference tensor that training later cannot backpropagate into.
    with trace, torch.no_grad():
        try:
            out = _call(target, x)
        except Exception as exc:  # noqa: BLE001 - reported as a finding naming the layer
            failure = exc
    return trace, out, failure


def preflight(model: nn.Module, x: Any, y: Any, *, loss_fn: Callable, loss_info: LossInfo,
              optimizer: torch.optim.Optimizer | None = None, schedule: Schedule | None = None,
              log_keys: Sequence[str] | None = None, steps_per_epoch: int | None = None,
              epochs: int | None = None, data: tuple[Any, Any] | None = None,
              batch_sizes: Sequence[int] | None = None) -> Report:
    """The cheap checks on one batch ``(x, y)``, as ``fit`` runs them before training.

    One forward in eval mode under ``no_grad`` plus tensor reductions; the model's weights,
    buffers and the train/eval mode of every submodule are left as they were, and so is the
    global RNG. ``data`` is the whole in-memory ``(features, targets)`` when available (NaN
    anywhere, constant features, missing classes, imbalance); ``batch_sizes`` are the sizes of
    the epoch's batches (a last batch of 1 sample breaks BatchNorm).

    >>> from netwright.losses import resolve_loss
    >>> fn, info = resolve_loss("cross_entropy")
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    >>> preflight(net, torch.randn(8, 4), torch.zeros(8, 1), loss_fn=fn, loss_info=info).codes
    ['NW104', 'NW101']
    """
    found: list[Finding] = []
    out: Any = None
    found += _param_findings(model, optimizer)
    whole_x, whole_y = data if data is not None else (x, y)
    found += _data_findings(whole_x, whole_y, loss_info, model, whole=data is not None)
    inputs_finite = not any(f.code == "NW301" for f in found)
    try:
        rows = first_len(x)
    except (TypeError, IndexError, KeyError, StopIteration, AttributeError):
        rows = None

    target = _checked_module(model)
    modes = [m.training for m in target.modules()]
    rng = _RngGuard(x)
    try:
        trace, out, failure = _traced_forward(target, x)
        if failure is not None:
            found.append(_forward_failure(target, x, trace, failure))
        else:
            found += _success_layer_findings(trace, rows)
            found += _batchnorm_findings(trace, rows or 0, batch_sizes)
            outs = _tensors(out, "output")
            if inputs_finite:
                for name, t in outs:
                    if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
                        found.append(_finding(
                            "NW209", f"the model's {name} ({_fmt(t)}) has "
                            f"{int((~torch.isfinite(t)).sum())} NaN/Inf values although the inputs are "
                            f"finite.", "look for log/sqrt/division of values that can be 0 or "
                            "negative in forward, or weights that were loaded NaN", "output"))
            finite = not any(f.code in ("NW209", "NW301", "NW302") for f in found)
            found += _output_findings(target, x, y, out, loss_info, loss_fn, trace, finite)
            if data is not None and isinstance(out, torch.Tensor) and isinstance(whole_y, torch.Tensor) \
                    and not any(f.severity == "error" and f.code.startswith("NW1") for f in found):
                found += _class_findings(loss_info, loss_fn, out, whole_y)
            if rng.changed():
                # The eval-mode forward drew random numbers: compare a second one to be sure.
                with torch.no_grad():
                    try:
                        again = _call(target, x)
                    except Exception:  # noqa: BLE001
                        again = out
                first_t = _tensors(out, "o")
                second_t = _tensors(again, "o")
                differs = any(a[1].shape != b[1].shape or not torch.equal(a[1], b[1])
                              for a, b in zip(first_t, second_t))
                if differs:
                    found.append(_finding(
                        "NW207", "two eval-mode forwards of the same batch give different outputs: "
                        "something random stays active in evaluation, typically F.dropout(x, p) whose "
                        "training argument defaults to True, so validation scores and predictions are "
                        "noisy.", "use nn.Dropout modules, or F.dropout(x, p, training=self.training)",
                        "model"))
    finally:
        _set_modes(target, modes)
        rng.restore()
    found += _schedule_findings(schedule, log_keys, steps_per_epoch, epochs)
    report = Report(found).sorted()
    report.output = out  # fit infers the task from it without a second forward
    return report


# --- the deep checks (NW5xx) ---------------------------------------------------------------------


def _layers_of(names: Sequence[str]) -> str:
    by_layer: dict[str, list[str]] = {}
    for n in names:
        layer, _, leaf = n.rpartition(".")
        by_layer.setdefault(layer or "(model)", []).append(leaf)
    return _list([f"'{layer}' ({', '.join(p)})" for layer, p in by_layer.items()], 6)


def _deep_findings(model: nn.Module, x: Any, y: torch.Tensor, loss_fn: Callable,
                   make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> list[Finding]:
    found: list[Finding] = []
    net = copy.deepcopy(model)
    net.train()
    try:
        loss = loss_fn(_call(net, x), y)
        loss.backward()
    except Exception as exc:  # noqa: BLE001 - reported with the batch's shapes
        return [_finding("NW507", f"a training-mode forward and backward on the first batch (inputs "
                         f"{_fmt(x)}, targets {_fmt(y)}) failed: {_first_line(exc)}",
                         "fix the error above; the model works in eval mode but not in train mode",
                         "model")]
    none, zero, nonfinite, norms = [], [], [], {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            none.append(name)
        elif not bool(torch.isfinite(p.grad).all()):
            nonfinite.append(name)
        else:
            norm = float(p.grad.detach().float().norm())
            norms[name] = norm
            if norm == 0.0:
                zero.append(name)
    if none:
        found.append(_finding(
            "NW501", f"{len(none)} parameter(s) get no gradient from the loss, so they never train: "
            f"{_layers_of(none)}; they are not used to compute the output (a layer defined in "
            f"__init__ but skipped in forward, or a tensor detached on the way).",
            "use the layer in forward, remove it, or freeze it on purpose (requires_grad_(False))",
            none[0].rpartition(".")[0] or "model"))
    if zero:
        found.append(_finding(
            "NW502", f"{len(zero)} parameter(s) get an all-zero gradient on the first batch: "
            f"{_layers_of(zero)} (dead ReLUs, a zero-initialised layer feeding them, or an input "
            f"that is always 0 there).",
            "check the initialisation and activations before these layers (e.g. LeakyReLU, a lower "
            "lr, no zero init)", zero[0].rpartition(".")[0] or "model"))
    if nonfinite:
        found.append(_finding(
            "NW503", f"{len(nonfinite)} parameter(s) get NaN/Inf gradients on the first batch: "
            f"{_layers_of(nonfinite)}.",
            "look for sqrt/log/division at 0 in forward, and clean NaN/Inf inputs",
            nonfinite[0].rpartition(".")[0] or "model"))
    if norms and not nonfinite:
        found += _first_step_findings(net, norms, make_optimizer)
    del net
    if not nonfinite:
        found += _overfit_findings(model, x, y, loss_fn, make_optimizer)
    return found


def _first_step_findings(net: nn.Module, norms: dict[str, float],
                         make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> list[Finding]:
    """Take the user's optimizer's first step on the copy and compare how far it moves the
    weights with their norm. A raw gradient norm says little on its own: Adam's step does not
    grow with it, plain SGD's does; the step itself is what explodes or not."""
    params = [p for p in net.parameters() if p.grad is not None]
    before = [p.detach().clone() for p in params]
    try:
        opt = make_optimizer(net)
        opt.step()
    except Exception:  # noqa: BLE001 - the overfit check reports optimizer failures
        return []
    with torch.no_grad():
        moved = math.sqrt(sum(float(((p - b) ** 2).sum()) for p, b in zip(params, before)))
        size = math.sqrt(sum(float((b ** 2).sum()) for b in before))
    if not size or moved <= _STEP_RATIO * size:
        return []
    total = math.sqrt(sum(v * v for v in norms.values()))
    worst = max(norms, key=norms.get)
    lr = opt.param_groups[0].get("lr", float("nan"))
    return [_finding(
        "NW504", f"the gradient norm on the first batch is {_g(total)} (the largest is {worst!r}, "
        f"{_g(norms[worst])}) against a weight norm of {_g(size)}: the first {type(opt).__name__} "
        f"step at lr={float(lr):g} moves the weights by {moved / size:.1f}x their own norm, so "
        f"training starts by throwing them away.",
        "standardise inputs and targets, lower the lr, clip gradients (clip_grad=1.0), or use an "
        "adaptive optimizer such as adam", worst.rpartition(".")[0] or "model")]


def _overfit(model: nn.Module, x: Any, y: torch.Tensor, loss_fn: Callable,
             make_optimizer: Callable[[nn.Module], torch.optim.Optimizer], factor: float
             ) -> tuple[float, float, float]:
    """(first loss, last loss, lr) after training a copy on one batch for a few steps."""
    net = copy.deepcopy(model)
    net.train()
    for m in net.modules():
        if isinstance(m, _DROPOUTS):
            m.eval()  # dropout noise would hide whether the loss falls; BatchNorm stays in train
    opt = make_optimizer(net)
    for group in opt.param_groups:
        group["lr"] = group["lr"] * factor
    lr = float(opt.param_groups[0]["lr"])
    first = math.nan
    for step in range(_OVERFIT_STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(_call(net, x), y)
        value = float(loss.detach())
        if step == 0:
            first = value
        if not math.isfinite(value) or (step and _fell(first, value)):
            return first, value, lr
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_fn(_call(net, x), y))
    return first, last, lr


def _fell(first: float, last: float) -> bool:
    return math.isfinite(last) and (last <= first - _OVERFIT_DROP * abs(first) or abs(first) < 1e-6)


def _overfit_findings(model: nn.Module, x: Any, y: torch.Tensor, loss_fn: Callable,
                      make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> list[Finding]:
    try:
        first, last, lr = _overfit(model, x, y, loss_fn, make_optimizer, 1.0)
    except Exception:  # noqa: BLE001
        # Forward and backward already worked on this batch (the gradient check): what fails here
        # is the optimizer used without fit's loop (LBFGS needs a closure), so there is no hint.
        return []
    if _fell(first, last):
        return []
    diverged = not math.isfinite(last)
    tries = []
    for factor in ((0.1, 0.01) if diverged else (10.0, 0.1)):
        try:
            f2, l2, lr2 = _overfit(model, x, y, loss_fn, make_optimizer, factor)
        except Exception:  # noqa: BLE001 - only a hint
            continue
        tries.append((factor, f2, l2, lr2))
    good = [t for t in tries if _fell(t[1], t[2])]
    if good:
        factor, f2, l2, lr2 = good[0]
        how = {10.0: "10x higher", 0.1: "10x lower", 0.01: "100x lower"}[factor]
        hint = f"try lr={lr2:g} ({how}): there the loss fell from {_g(f2)} to {_g(l2)}"
    elif diverged:
        hint = ("it diverged at 10x and 100x lower lr too: look for NaN/Inf inputs, a log of 0 in the "
                "loss, or clip gradients (clip_grad=1.0)")
    else:
        hint = ("it did not fall at 10x higher or 10x lower lr either: the model may be unable to fit "
                "(a final softmax/sigmoid before the loss, dead units, a too small or frozen network)")
    if diverged:
        return [_finding(
            "NW506", f"training a copy of the model on the first batch at lr={lr:g}: the loss went "
            f"from {_g(first)} to {last} within {_OVERFIT_STEPS} steps.", hint, "optimizer")]
    return [_finding(
        "NW505", f"training a copy of the model on the first batch for {_OVERFIT_STEPS} steps at "
        f"lr={lr:g}, the loss went from {_g(first)} to {_g(last)}: a network that cannot overfit one "
        f"batch will not learn the data.", hint, "optimizer")]


def _optimizer_factory(optimizer: Any, lr: float | None) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """Builds the user's optimizer (same class and settings) on a copy of the model."""
    if isinstance(optimizer, torch.optim.Optimizer):
        cls = type(optimizer)
        settings = dict(optimizer.defaults)
        if optimizer.param_groups:
            settings["lr"] = optimizer.param_groups[0]["lr"]

        def make(net: nn.Module) -> torch.optim.Optimizer:
            params = [p for p in net.parameters() if p.requires_grad]
            try:
                return cls(params, **settings)
            except Exception:  # noqa: BLE001 - an optimizer class with unusual arguments
                return torch.optim.Adam(params, lr=float(settings.get("lr", 1e-3)))
        return make
    spec = optimizer if optimizer is not None else "adam"
    decay_nb, spec_lr = True, None
    if isinstance(spec, Mapping):
        spec = dict(spec)
        decay_nb = bool(spec.pop("decay_norm_and_bias", True))
        spec_lr = spec.pop("lr", None)
    base_lr = float(spec_lr or lr or 1e-3)
    return lambda net: build_optimizer(spec, net, lr=base_lr, decay_norm_and_bias=decay_nb)


def _metric_names(metrics: Any) -> list[tuple[str, str]]:
    from .metrics import _parse  # the same display names fit logs

    if not metrics:
        return []
    specs = [metrics] if isinstance(metrics, (str, Mapping)) else list(metrics)
    return [_parse(s)[:2] for s in specs]


def _metric_findings(names: list[tuple[str, str]], info: LossInfo, y: Any) -> list[Finding]:
    from .metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

    found = []
    regression = info.task == "regression" or (
        info.task == "custom" and isinstance(y, torch.Tensor) and y.is_floating_point())
    for display, base in names:
        if base not in CLASSIFICATION_METRICS + REGRESSION_METRICS:
            found.append(_finding(
                "NW415", f"metric {display!r} is not known; expected one of "
                f"{', '.join(CLASSIFICATION_METRICS + REGRESSION_METRICS)}.",
                "use one of those names (precision/recall/f1 take _macro, _micro or _weighted)",
                "metrics"))
        elif regression and base in CLASSIFICATION_METRICS:
            found.append(_finding(
                "NW415", f"metric {display!r} scores classes, but loss '{info.name}' makes this a "
                f"regression run.", f"use {', '.join(REGRESSION_METRICS)}", "metrics"))
        elif not regression and info.task != "custom" and base in REGRESSION_METRICS:
            found.append(_finding(
                "NW415", f"metric {display!r} scores values, but loss '{info.name}' makes this a "
                f"{info.task} run.", f"use {', '.join(CLASSIFICATION_METRICS)}", "metrics"))
    return found


def doctor(model: nn.Module, data: Any, *, loss: Any, optimizer: Any = None, scheduler: Any = None,
           metrics: Any = None, epochs: int | None = None, batch_size: int = 32, deep: bool = False,
           monitor: str | None = None, val: Any = None, lr: float | None = None) -> Report:
    """Check a model, its data and its training setup before training; returns a :class:`Report`.

    Takes what :func:`netwright.fit` takes: ``data`` as ``(X, y)`` arrays/tensors, a
    ``Dataset`` or a ``DataLoader``; ``loss`` by name, mapping or callable; ``optimizer`` a name,
    mapping or instance (an instance is checked for missing parameters); ``scheduler`` a name,
    mapping or torch scheduler; ``val`` the validation data or fraction (only whether there is
    one matters: it decides the logged values); ``epochs`` defaults to fit's 10. ``deep=True``
    adds the deep checks on a copy of the model: a gradient check per layer and a few steps
    overfitting one batch. The model itself is never changed. Bad arguments (an unknown loss or
    optimizer name, unreadable data) raise as they would in ``fit``.

    >>> net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    >>> X = torch.rand(64, 4); y = torch.randint(0, 3, (64, 1)).float()
    >>> report = doctor(net, (X, y), loss="cross_entropy")
    >>> report.codes
    ['NW104', 'NW101']
    >>> report.ok
    False
    """
    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"model: expected a torch.nn.Module, received {describe(model)}. Fix: pass an instance, "
            f"e.g. SimpleNet() rather than SimpleNet.")
    loss_fn, info = resolve_loss(loss)
    source = to_source(data, arg="data")
    device = _model_device(model)
    if isinstance(loss_fn, nn.Module):
        loss_fn = copy.deepcopy(loss_fn).to(device)  # the user's loss object stays where it is
    epochs_ = int(epochs) if epochs is not None else 10
    batches = make_batches(source, batch_size=batch_size, shuffle=False, device=device, generator=None)
    head = batches.peek()
    if head is None:
        raise DataError("data: no batch could be read for the checks (an IterableDataset without "
                        "length, or a Dataset that cannot be indexed). Fix: pass (X, y) or a Dataset.")
    x, y = head
    sizes = batches.sizes()
    whole = None
    if isinstance(source, InMemory):
        whole = (source.x, source.y)
        n = len(source)
        if isinstance(val, float) and 0 < val < 1:
            n -= int(round(n * val))  # fit holds this many out first
        full, rest = divmod(n, batch_size)
        sizes = [batch_size] * full + ([rest] if rest else [])
    steps = max(1, len(sizes) if sizes else len(batches))

    names = _metric_names(metrics)
    shown = [d for d, base in names if base != "confusion_matrix"]
    has_val = val is not None
    log_keys = ["epoch", "train_loss"]
    log_keys += (["val_loss"] + [f"val_{k}" for k in shown]) if has_val else [f"train_{k}" for k in shown]
    log_keys.append("lr")
    default_monitor = monitor or ("val_loss" if has_val else "train_loss")

    opt_instance = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
    make_optimizer = _optimizer_factory(optimizer, lr)
    schedule = None
    if scheduler is not None:
        # A stand-in optimizer: building a scheduler sets the lr of the optimizer it is given.
        stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=float(lr or 1e-3))
        schedule = build_scheduler(scheduler, stand_in, epochs=epochs_, steps_per_epoch=steps,
                                   default_monitor=default_monitor)

    found = list(preflight(model, x, y, loss_fn=loss_fn, loss_info=info, optimizer=opt_instance,
                           schedule=schedule, log_keys=log_keys, steps_per_epoch=steps,
                           epochs=epochs_, data=whole, batch_sizes=sizes))
    if monitor is not None and monitor not in log_keys:
        found.append(_finding(
            "NW414", f"monitor {monitor!r} (early stopping and the best checkpoint) is never logged; "
            f"each epoch logs {log_keys}.",
            "monitor one of those (val_* values need val data; a metric needs metrics=[...])", "monitor"))
    found += _metric_findings(names, info, y)
    if not model.training:
        found.append(_finding(
            "NW206", f"the model {type(model).__name__} is in eval mode (model.eval() was called): "
            f"fit switches it to training mode itself, but a hand-written loop would train it with "
            f"dropout off and BatchNorm statistics frozen.",
            "nothing for fit; in your own loop call model.train() before training", "model"))
    # A scripted model does not deep-copy into a trainable module: its deep checks are skipped.
    if (deep and not any(f.severity == "error" for f in found) and isinstance(y, torch.Tensor)
            and not isinstance(model, torch.jit.ScriptModule)):
        rng = _RngGuard(x)
        eager = model._orig_mod if type(model).__name__ == "OptimizedModule" else model
        try:
            found += _deep_findings(eager, x, y, loss_fn, make_optimizer)
        finally:
            rng.restore()
    return Report(found).sorted()
