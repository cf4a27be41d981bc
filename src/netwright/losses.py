"""Loss names → torch losses, and what each one expects of the model's output and the targets.

A loss is named (``"cross_entropy"``), given with options (``{"name": "cross_entropy",
"label_smoothing": 0.1}``), or passed as any callable / ``nn.Module``. Named losses carry a
:class:`LossInfo` that says which task they imply and how their outputs become probabilities,
which is what metrics and the pre-flight target check need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, LossTargetError, did_you_mean

__all__ = ["LossInfo", "LOSSES", "resolve_loss", "check_output_target"]


@dataclass(frozen=True)
class LossInfo:
    """What a loss implies.

    ``task`` is ``"multiclass"``, ``"binary"`` (binary or multilabel, decided by the output's
    width), ``"regression"`` or ``"custom"`` (an unnamed callable: the task is inferred from the
    targets). ``output`` says what the model must return: ``"logits"``, ``"log_probs"``,
    ``"probs"`` or ``"values"``.
    """

    name: str
    task: str
    output: str
    target: str  # the target form, in words, for error messages


_INFO = {
    "cross_entropy": LossInfo(
        "cross_entropy", "multiclass", "logits",
        "class indices: an integer tensor of shape (N,) with values in [0, C); "
        "or class probabilities of the output's shape (N, C)",
    ),
    "nll": LossInfo(
        "nll", "multiclass", "log_probs",
        "class indices: an integer tensor of shape (N,) with values in [0, C)",
    ),
    "bce": LossInfo("bce", "binary", "probs", "floats in [0, 1] of the output's shape"),
    "bce_with_logits": LossInfo(
        "bce_with_logits", "binary", "logits", "floats in [0, 1] of the output's shape"
    ),
    "mse": LossInfo("mse", "regression", "values", "floats of the output's shape"),
    "l1": LossInfo("l1", "regression", "values", "floats of the output's shape"),
    "smooth_l1": LossInfo("smooth_l1", "regression", "values", "floats of the output's shape"),
    "huber": LossInfo("huber", "regression", "values", "floats of the output's shape"),
}

_CLASSES: dict[str, Callable[..., nn.Module]] = {
    "cross_entropy": nn.CrossEntropyLoss,
    "nll": nn.NLLLoss,
    "bce": nn.BCELoss,
    "bce_with_logits": nn.BCEWithLogitsLoss,
    "mse": nn.MSELoss,
    "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss,
    "huber": nn.HuberLoss,
}
_ALIASES = {
    "crossentropy": "cross_entropy", "ce": "cross_entropy", "mae": "l1",
    "binary_cross_entropy": "bce", "bcewithlogits": "bce_with_logits", "nll_loss": "nll",
}
LOSSES = tuple(_CLASSES)

# Torch loss classes we recognise when passed as objects, so they get the same checks and
# metric handling as their names.
_BY_CLASS = {cls: name for name, cls in _CLASSES.items()}


def _as_tensor_option(name: str, key: str, value: Any) -> torch.Tensor:
    try:
        return torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(
            f"loss '{name}' option '{key}': expected a list of numbers, received {value!r}. "
            f"Fix: give one number per class, e.g. {key}=[1.0, 3.0]."
        ) from exc


def resolve_loss(spec: Any) -> tuple[Callable[..., torch.Tensor], LossInfo]:
    """Turn a loss name, ``{"name": ..., **options}`` mapping, class or callable into a loss.

    >>> fn, info = resolve_loss({"name": "cross_entropy", "label_smoothing": 0.1})
    >>> info.task
    'multiclass'
    """
    if isinstance(spec, str) or isinstance(spec, Mapping):
        if isinstance(spec, Mapping):
            options = dict(spec)
            if "name" not in options:
                raise ConfigError(
                    f"loss: a mapping needs a 'name' key; received keys {sorted(options)}. "
                    f"Fix: {{'name': 'cross_entropy', ...}}; names: {', '.join(LOSSES)}."
                )
            name = options.pop("name")
        else:
            name, options = spec, {}
        key = str(name).strip().lower().replace("-", "_")
        key = _ALIASES.get(key, key)
        if key not in _CLASSES:
            raise ConfigError(
                f"loss: unknown name {name!r}.{did_you_mean(key, LOSSES)} "
                f"Expected one of: {', '.join(LOSSES)}; or pass any callable(output, target)."
            )
        for tensor_key in ("weight", "pos_weight"):
            if options.get(tensor_key) is not None and not isinstance(options[tensor_key], torch.Tensor):
                options[tensor_key] = _as_tensor_option(key, tensor_key, options[tensor_key])
        try:
            module = _CLASSES[key](**options)
        except TypeError as exc:
            raise ConfigError(
                f"loss '{key}': {exc}. Fix: use the keyword arguments of "
                f"torch.nn.{_CLASSES[key].__name__}."
            ) from exc
        return module, _INFO[key]
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        spec = spec()
    if isinstance(spec, nn.Module) and type(spec) in _BY_CLASS:
        return spec, _INFO[_BY_CLASS[type(spec)]]
    if callable(spec):
        name = getattr(spec, "__name__", type(spec).__name__)
        return spec, LossInfo(name, "custom", "values", "whatever the callable expects")
    raise ConfigError(
        f"loss: expected a name ({', '.join(LOSSES)}), a mapping with 'name', an nn.Module or a "
        f"callable(output, target); received {type(spec).__name__}."
    )


def _shape(t: torch.Tensor) -> str:
    return f"{t.dtype} of shape {tuple(t.shape)}".replace("torch.", "")


def check_output_target(
    info: LossInfo, output: Any, target: Any, *, ignore_index: int = -100
) -> None:
    """Raise :class:`LossTargetError` when ``output`` and ``target`` cannot fit the loss.

    Catches, before torch can fail far from the cause or silently broadcast: float or ``(N, 1)``
    class targets for cross-entropy, labels out of range (checked on CPU, before they can become
    a CUDA device-side assert), shape mismatches for element-wise losses, and BCE on values
    outside [0, 1]. Unnamed losses are not checked.
    """
    if info.task == "custom" or not isinstance(output, torch.Tensor) or not isinstance(target, torch.Tensor):
        return
    name, out, y = info.name, output.detach(), target.detach()
    if info.task == "multiclass":
        if out.ndim < 2:
            raise LossTargetError(
                f"loss '{name}' expects the model to output one score per class, shape (N, C); "
                f"the model output {_shape(out)}. Fix: end the model with a layer of C outputs."
            )
        classes = out.shape[1]
        if y.is_floating_point():
            if y.shape == out.shape and name == "cross_entropy":
                return  # class probabilities (soft labels) are a valid target
            squeeze = ".squeeze(1)" if y.ndim == 2 and y.shape[1] == 1 else ""
            raise LossTargetError(
                f"loss '{name}' expects targets as {info.target}; received {_shape(y)} while the "
                f"model outputs {_shape(out)}. Fix: pass class indices, y = y{squeeze}.long()."
            )
        if y.ndim == out.ndim and y.ndim >= 2 and y.shape[1] == 1 and out.shape[1] != 1:
            raise LossTargetError(
                f"loss '{name}' expects targets as {info.target}; received {_shape(y)}: a column, "
                f"not a vector. Fix: y = y.squeeze(1)."
            )
        if y.shape[0] != out.shape[0]:
            raise LossTargetError(
                f"loss '{name}': the batch has {out.shape[0]} outputs but {y.shape[0]} targets. "
                f"Fix: give one target per sample."
            )
        y_cpu = y.cpu()
        valid = y_cpu[y_cpu != ignore_index]
        if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= classes):
            raise LossTargetError(
                f"loss '{name}': class targets must lie in [0, {classes}) for a model with "
                f"{classes} outputs; the batch has labels from {int(valid.min())} to "
                f"{int(valid.max())}. Fix: map labels to 0..C-1, or give the last layer "
                f"{int(valid.max()) + 1} outputs."
            )
        return
    # Element-wise losses: torch broadcasts (N, 1) against (N,) to (N, N) with only a warning.
    if y.shape != out.shape:
        hint = ""
        if out.ndim == y.ndim + 1 and out.shape[-1] == 1:
            hint = " Fix: give targets of shape (N, 1), y = y.unsqueeze(1), or flatten the output."
        elif y.ndim == out.ndim + 1 and y.shape[-1] == 1:
            hint = " Fix: flatten the targets, y = y.squeeze(-1)."
        else:
            hint = " Fix: make the last layer output one value per target."
        raise LossTargetError(
            f"loss '{name}' compares output and target element by element, so their shapes must "
            f"be equal; the model output {_shape(out)} and the targets are {_shape(y)}.{hint}"
        )
    if not y.is_floating_point():
        raise LossTargetError(
            f"loss '{name}' expects {info.target}; received {_shape(y)}. Fix: y = y.float()."
        )
    if info.task == "binary":
        if float(y.min()) < 0 or float(y.max()) > 1:
            raise LossTargetError(
                f"loss '{name}' expects targets in [0, 1]; the batch has values from "
                f"{float(y.min()):g} to {float(y.max()):g}. Fix: binary labels must be 0 or 1."
            )
        if name == "bce" and (float(out.min()) < 0 or float(out.max()) > 1):
            raise LossTargetError(
                f"loss 'bce' expects probabilities in [0, 1]; the model output values from "
                f"{float(out.min()):.3g} to {float(out.max()):.3g}. Fix: use loss "
                f"'bce_with_logits' on the raw outputs (more stable than adding a sigmoid)."
            )
