"""Checks of the output against the targets and the loss (NW1xx): probabilities fed to a loss
that applies its own softmax or sigmoid, class targets in the wrong form (floats, a column,
one-hot, out of range), element-wise losses on shapes that only broadcast, a loss that fails or
is NaN on the first batch."""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ..losses import LossInfo
from ..util import call_model
from .report import Finding, error_line, finding, fmt, num
from .tracing import Trace


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
            out = call_model(model, x)
    except Exception:  # noqa: BLE001 - only a hint; the first forward already succeeded
        return None
    fn = getattr(out, "grad_fn", None) if isinstance(out, torch.Tensor) else None
    return type(fn).__name__ if fn is not None else None


def _class_target_findings(info: LossInfo, loss_fn: Any, out: torch.Tensor, y: torch.Tensor,
                           trace: Trace) -> list[Finding]:
    name = info.name
    found: list[Finding] = []
    if out.ndim < 2 or out.shape[1] == 1:
        effect = ("the log-softmax of a single score is always 0, so the loss is always 0 and "
                  "nothing is learned" if name == "cross_entropy" else
                  "the loss reads that one value as the score of class 0 and means nothing")
        return [finding(
            "NW111", f"loss '{name}' needs one score per class, output shape (N, C) with C >= 2; "
            f"the model outputs {fmt(out)}, "
            f"{'one value per sample' if out.ndim >= 1 else 'a single value'}: {effect}.",
            "give the last layer C outputs (one per class); for two classes with one output use "
            "loss 'bce_with_logits' and float targets of shape (N, 1)", "output")]
    classes = out.shape[1]
    o = out.detach().float()
    last = trace.final_module(out)
    probs = _is_distribution(o)
    if name == "cross_entropy" and (probs or isinstance(last, nn.Softmax)):
        found.append(finding(
            "NW101", f"loss 'cross_entropy' applies log-softmax itself, but the model's output rows "
            f"are already probabilities (non-negative, summing to 1; {fmt(out)}): a double softmax "
            f"squashes the gradients, so training is slow and stalls early.",
            "return logits: drop the final softmax (keep it only for prediction)", "output"))
    elif name == "nll":
        log_probs = float(o.max()) <= 1e-4 and _is_distribution(o.exp())
        if probs or isinstance(last, nn.Softmax):
            found.append(finding(
                "NW103", f"loss 'nll' expects log-probabilities; the model's output rows are "
                f"probabilities (non-negative, summing to 1; {fmt(out)}), so the loss is -p and its "
                f"gradients are weak.",
                "end the model with log_softmax instead of softmax, or return logits and use loss "
                "'cross_entropy'", "output"))
        elif not (log_probs or isinstance(last, nn.LogSoftmax)):
            found.append(finding(
                "NW102", f"loss 'nll' expects log-probabilities (values <= 0 whose exp sums to 1 per "
                f"row); the model outputs raw scores from {num(float(o.min()))} to {num(float(o.max()))} "
                f"({fmt(out)}): -score has no lower bound, so the loss falls forever and means nothing.",
                "use loss 'cross_entropy' on these logits, or end the model with log_softmax(dim=1)",
                "output"))
    expected = (out.shape[0], *out.shape[2:])
    squeeze = ".squeeze(1)" if y.ndim == 2 and y.shape[1] == 1 and out.ndim == 2 else ""
    if y.is_floating_point():
        if y.shape == out.shape and name == "cross_entropy":
            t = y.detach().float()
            if y.numel() and (float(t.min()) < 0 or not _is_distribution(t)):
                found.append(finding(
                    "NW107", f"float targets of the output's shape are class probabilities (soft "
                    f"labels) for 'cross_entropy', but their rows are not distributions (values from "
                    f"{num(float(t.min()))} to {num(float(t.max()))}; row sums from "
                    f"{num(float(t.sum(1).min()))} to {num(float(t.sum(1).max()))}).",
                    "for several labels per sample (multi-label) use loss 'bce_with_logits'; for soft "
                    "labels make each row sum to 1", "targets"))
            return found
        whole = bool(torch.equal(y, y.round())) if y.numel() else True
        fix = (f"pass class indices, y = y{squeeze}.long()" if whole else
               "these look like continuous values: use a regression loss such as 'mse'")
        found.append(finding(
            "NW104", f"loss '{name}' expects targets as {info.target}; received {fmt(y)} while the "
            f"model outputs {fmt(out)}.", fix, "targets"))
        return found
    if y.dtype == torch.bool or not (y.dtype.is_floating_point or y.dtype in (
            torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)):
        found.append(finding(
            "NW112", f"loss '{name}' expects int64 class indices; received {fmt(y)}.",
            "y = y.long()", "targets"))
        return found
    if y.ndim == out.ndim and y.ndim >= 2 and y.shape[1] == 1 and tuple(y.squeeze(1).shape) == expected:
        found.append(finding(
            "NW105", f"loss '{name}' expects targets as {info.target}; received {fmt(y)}: a column, "
            f"not a vector.", "y = y.squeeze(1)", "targets"))
        return found
    if y.shape == out.shape:
        onehot = bool(((y == 0) | (y == 1)).all()) and bool((y.sum(1) == 1).all())
        found.append(finding(
            "NW106", f"loss '{name}' expects targets as {info.target}; received integer targets of the "
            f"output's shape, {fmt(y)}: "
            + ("one-hot rows." if onehot else "several labels per row (multi-hot)."),
            "y = y.argmax(1) (class indices)" if onehot else
            "for several labels per sample use loss 'bce_with_logits' with y = y.float()", "targets"))
        return found
    if tuple(y.shape) != expected:
        found.append(finding(
            "NW112", f"loss '{name}' expects one class index per sample, targets of shape "
            f"{expected}, for the output {fmt(out)}; received {fmt(y)}.",
            "give one integer class per sample (the same number of rows as the inputs)", "targets"))
        return found
    ignore = getattr(loss_fn, "ignore_index", -100)
    y_cpu = y.detach().cpu()  # before it can become a CUDA device-side assert
    valid = y_cpu[y_cpu != ignore]
    if valid.numel() and (int(valid.min()) < 0 or int(valid.max()) >= classes):
        low, high = int(valid.min()), int(valid.max())
        found.append(finding(
            "NW108", f"loss '{name}': class targets must lie in [0, {classes}) for a model with "
            f"{classes} outputs; the batch has labels from {low} to {high}.",
            f"map labels to 0..C-1, or give the last layer {high + 1} outputs", "targets"))
    return found


def _binary_findings(info: LossInfo, out: torch.Tensor, y: torch.Tensor, trace: Trace,
                     model: nn.Module, x: Any) -> list[Finding]:
    name = info.name
    found: list[Finding] = []
    if not y.is_floating_point():
        found.append(finding(
            "NW132", f"loss '{name}' expects {info.target}; received {fmt(y)}.", "y = y.float()",
            "targets"))
    elif y.numel() and (float(y.min()) < 0 or float(y.max()) > 1):
        found.append(finding(
            "NW123", f"loss '{name}' expects targets in [0, 1]; the batch has values from "
            f"{num(float(y.min()))} to {num(float(y.max()))}.",
            "binary labels must be 0 or 1 (or probabilities); for several classes use "
            "'cross_entropy' with integer labels", "targets"))
    o = out.detach().float()
    if not o.numel():
        return found
    low, high = float(o.min()), float(o.max())
    if name == "bce" and (low < 0 or high > 1):
        found.append(finding(
            "NW121", f"loss 'bce' expects probabilities in [0, 1]; the model outputs values from "
            f"{num(low)} to {num(high)} ({fmt(out)}).",
            "use loss 'bce_with_logits' on the raw outputs (more stable than adding a sigmoid)",
            "output"))
    elif name == "bce_with_logits" and low >= 0 and high <= 1:
        if isinstance(trace.final_module(out), nn.Sigmoid) or _output_op(model, x) == "SigmoidBackward0":
            found.append(finding(
                "NW122", f"loss 'bce_with_logits' applies a sigmoid itself, but the model already "
                f"ends in a sigmoid (outputs from {num(low)} to {num(high)}): a double sigmoid keeps "
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
    return [finding(
        "NW131", f"loss '{info.name}' compares output and target element by element, so their shapes "
        f"must be equal; the model output {fmt(out)} and the targets are {fmt(y)}: {effect}.",
        fix, "targets")]


def batch_softmax_findings(out: Any, trace: Trace) -> list[Finding]:
    """NW113: outputs (N, C) whose columns sum to 1 over the batch while the rows do not:
    ``softmax(dim=0)`` (or ``nn.Softmax(dim=0)``), a probability per sample instead of per class."""
    if not (isinstance(out, torch.Tensor) and out.is_floating_point() and out.ndim == 2
            and out.shape[0] >= 2 and out.shape[1] >= 2):
        return []
    o = out.detach().float()
    log = float(o.max()) <= 1e-4 and float(o.min()) < 0  # log-probabilities (log_softmax)
    if log:
        o = o.exp()
    if not _is_distribution(o, dim=0) or _is_distribution(o, dim=1):
        return []
    last = trace.final_module(out)
    what = (f"{type(last).__name__}(dim={last.dim})" if isinstance(last, (nn.Softmax, nn.LogSoftmax))
            else "the output" if not log else "exp(output)")
    return [finding(
        "NW113", f"{what} sums to 1 down each column over the batch ({fmt(out)}), not across "
        f"each row: the softmax runs along dim 0, the samples, so a sample's 'probabilities' "
        f"depend on the other samples of its batch and its classes do not compete.",
        f"{'log_' if log else ''}softmax over the classes: F.{'log_' if log else ''}softmax(z, "
        f"dim=1) (or nn.{'Log' if log else ''}Softmax(dim=1)); before cross_entropy, return the "
        f"logits and drop the softmax", "output")]


def output_findings(model: nn.Module, x: Any, y: Any, out: Any, info: LossInfo, loss_fn: Any,
                    trace: Trace, finite: bool = True) -> list[Finding]:
    """Output vs targets vs loss. ``finite`` is False when a NaN/Inf was already found in the
    inputs, targets or output: a NaN loss is then no news."""
    found: list[Finding] = []
    if y is None:
        return found
    batch = batch_softmax_findings(out, trace)
    if batch:
        return batch  # every loss and target check would only restate it
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
                    found.append(finding(
                        "NW132", f"loss '{info.name}' expects {info.target}; received {fmt(y)}.",
                        "y = y.float()", "targets"))
    if any(f.severity == "error" for f in found):
        return found  # the loss would only fail again on the same cause
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = loss_fn(out, y)
    except Exception as exc:  # noqa: BLE001 - any failure of the loss becomes a finding
        several = not isinstance(out, torch.Tensor)
        found.append(finding(
            "NW190", f"loss '{info.name}' failed on the first batch: output {fmt(out)}, targets "
            f"{fmt(y)}: {error_line(exc)}",
            ("the model returns several outputs: return one tensor, or pass a loss callable(output, "
             "target) that takes this structure") if several else
            f"give outputs and targets in the form loss '{info.name}' expects ({info.target})",
            "loss"))
        return found
    if not isinstance(out, torch.Tensor):
        found.append(finding(
            "NW192", f"the model returns {fmt(out)}, not one tensor: the loss '{info.name}' takes it, "
            f"but the output checks (probabilities, target shapes and ranges) were skipped.",
            "nothing to do if the loss is meant for this structure", "output"))
    if (finite and isinstance(value, torch.Tensor) and value.numel()
            and not bool(torch.isfinite(value.detach()).all())):
        found.append(finding(
            "NW191", f"loss '{info.name}' is {float(value.detach().float().reshape(-1)[0])} on the "
            f"first batch (output {fmt(out)}, targets {fmt(y)}).",
            "check the output range the loss expects (e.g. log of 0); fix NaN/Inf inputs first", "loss"))
    return found
