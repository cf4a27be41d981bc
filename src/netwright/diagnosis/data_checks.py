"""Checks of the data (NW3xx) and its classes: NaN/Inf rows, constant features, inputs and
regression targets far from unit scale; classes the targets never hold, strong imbalance."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..losses import LossInfo
from ..models.scaling import Scaled
from .report import Finding, finding, listed, num
from .tracing import tensors

# Thresholds. Inputs whose |mean| or std exceed _SCALE are "far from unit scale" (pixels
# 0-255, raw prices, years); a majority/minority ratio above _IMBALANCE is strong imbalance.
_SCALE = 10.0
_IMBALANCE = 10.0
_SCALE_ROWS = 2048


def nonfinite_finding(code: str, name: str, t: torch.Tensor, scope: str,
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
    return finding(
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


def data_findings(x: Any, y: Any, info: LossInfo, model: nn.Module, whole: bool) -> list[Finding]:
    """NaN/Inf, scale and constant-feature checks over ``x``/``y`` (the whole data or a batch)."""
    found: list[Finding] = []
    scope = "in the data given" if whole else "in the first batch"
    scaled_in = isinstance(model, Scaled) and model.scale_inputs
    scaled_out = isinstance(model, Scaled) and model.scale_outputs
    for name, t in tensors(x, "inputs"):
        if not t.is_floating_point() or t.ndim == 0 or t.shape[0] == 0:
            continue
        t32 = t.detach().float()
        bad = nonfinite_finding("NW301", name, t32, scope)
        if bad is not None:
            found.append(bad)
            continue
        tabular = t32.ndim == 2 and t32.shape[0] > 1
        std, mean = _std_mean(t32[:_SCALE_ROWS], 0 if tabular else None)
        if tabular:
            if whole:
                constant = _constant_columns(t32)
                if constant and len(constant) == t32.shape[1]:
                    found.append(finding(
                        "NW304", f"{name}: every one of the {t32.shape[1]} features is constant over "
                        f"all {t32.shape[0]} rows of the training data: all samples look the same, "
                        f"nothing can be learned.",
                        "check the data loading (a wrong column, a fill value, a lost scaling)", name))
                    continue
                if constant:
                    found.append(finding(
                        "NW303", f"{name}: {len(constant)} of {t32.shape[1]} features are constant "
                        f"over all {t32.shape[0]} rows of the training data (columns "
                        f"{listed(constant)}): they carry no "
                        f"information.", "drop them (harmless, but they only add parameters)", name))
            if scaled_in:
                continue
            far = ((mean.abs() > _SCALE) | (std > _SCALE)).nonzero().flatten().tolist()
            if far:
                cols = [f"column {c} (mean {num(float(mean[c]))}, std {num(float(std[c]))})" for c in far]
                found.append(finding(
                    "NW305", f"{name}: {len(far)} of {t32.shape[1]} features are far from unit scale "
                    f"(|mean| or std above {_SCALE:g}) {scope}: {listed(cols, 4)}. Large inputs make "
                    f"large activations and gradients: training is slow or unstable.",
                    "standardise the inputs with the training data's statistics, "
                    "X = (X - X.mean(0)) / X.std(0) (a run config does this: data.standardize)", name))
        elif not scaled_in and t32.numel() > 1:
            m, s = float(mean), float(std)
            if abs(m) > _SCALE or s > _SCALE:
                found.append(finding(
                    "NW305", f"{name} are far from unit scale {scope}: mean {num(m)}, std {num(s)}, "
                    f"values from {num(float(t32.min()))} to {num(float(t32.max()))} (e.g. 0-255 pixels).",
                    "scale the inputs: x / 255 for pixels, or (x - mean) / std with the training "
                    "data's statistics (a run config: data.standardize: global)", name))
    if isinstance(y, torch.Tensor) and y.is_floating_point() and y.numel():
        y32 = y.detach().float()
        bad = nonfinite_finding("NW302", "targets", y32, scope)
        if bad is not None:
            found.append(bad)
        elif info.task == "regression" and y.numel() > 1 and not scaled_out:
            std, mean = _std_mean(y32[:_SCALE_ROWS], None)
            m, s = float(mean), float(std)
            if abs(m) > _SCALE or s > _SCALE:
                found.append(finding(
                    "NW306", f"regression targets are far from unit scale {scope}: mean {num(m)}, "
                    f"std {num(s)}: the first errors are huge, gradients explode or the model needs "
                    f"many epochs just to reach the targets' range.",
                    "standardise the targets and undo it on predictions (a run config does both: "
                    "data.standardize_target)", "targets"))
    return found


def class_findings(info: LossInfo, loss_fn: Any, out: torch.Tensor, y_all: torch.Tensor) -> list[Finding]:
    """Class coverage and imbalance over the whole data (one batch can miss classes)."""
    found: list[Finding] = []
    y = y_all.detach()
    if info.task == "multiclass" and not y.is_floating_point() and out.ndim >= 2:
        classes = out.shape[1]
        labels = y.reshape(-1).cpu()
        labels = labels[labels != getattr(loss_fn, "ignore_index", -100)]
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= classes):
            low, high = int(labels.min()), int(labels.max())
            outside = int(((labels < 0) | (labels >= classes)).sum())
            return [finding(
                "NW108", f"loss '{info.name}': class targets must lie in [0, {classes}) for a model "
                f"with {classes} outputs; the data has labels from {low} to {high} ({outside} of "
                f"{labels.numel()} outside; the first batch happened to hold none of them).",
                f"map labels to 0..C-1 (e.g. y - {low} for labels {low}..{high}), or give the last "
                f"layer {high + 1} outputs", "targets")]
        if labels.numel() < 2 or classes < 2:
            return found
        counts = torch.bincount(labels, minlength=classes)
        present = (counts > 0).nonzero().flatten().tolist()
        if len(present) < classes:
            absent = (counts == 0).nonzero().flatten().tolist()
            found.append(finding(
                "NW109", f"the model outputs {classes} class scores but the targets hold only "
                f"{len(present)} classes ({listed(present, 10)}); classes {listed(absent, 10)} never "
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
                found.append(finding(
                    "NW110", f"class imbalance: the most frequent class has {ratio:.0f}x as many "
                    f"samples as the rarest (counts {listed(counts.tolist(), 10)} over "
                    f"{labels.numel()} targets): the model can score well by ignoring rare classes.",
                    f"weight the classes, loss={{'name': '{info.name}', 'weight': {shown}}}; and judge "
                    f"it by f1_macro or recall, not accuracy", "targets"))
    elif info.task == "binary" and y.is_floating_point() and y.numel():
        cols = y.reshape(y.shape[0], -1).float()
        low, high = float(cols.min()), float(cols.max())
        if low < 0 or high > 1:
            return [finding(
                "NW123", f"loss '{info.name}' expects targets in [0, 1]; the data has values from "
                f"{num(low)} to {num(high)} (the first batch happened to hold none outside).",
                "binary labels must be 0 or 1 (or probabilities); for several classes use "
                "'cross_entropy' with integer labels", "targets")]
        hard = bool(((cols == 0) | (cols == 1)).all())
        if not hard or cols.shape[0] < 2:
            return found
        pos = cols.sum(0)
        neg = cols.shape[0] - pos
        single = ((pos == 0) | (neg == 0)).nonzero().flatten().tolist()
        if single:
            found.append(finding(
                "NW109", f"binary target column(s) {listed(single)} hold only one class over "
                f"{cols.shape[0]} rows: the model can only learn to always predict it.",
                "check the labels (a wrong column or encoding), or drop those outputs", "targets"))
        elif getattr(loss_fn, "pos_weight", None) is None:
            ratio = torch.maximum(pos, neg) / torch.minimum(pos, neg)
            worst = int(ratio.argmax())
            if float(ratio[worst]) > _IMBALANCE:
                pw = (neg / pos).tolist()
                shown = "[" + ", ".join(f"{w:.3g}" for w in pw[:20]) + "]"
                found.append(finding(
                    "NW110", f"class imbalance: target column {worst} has {int(pos[worst])} positives "
                    f"and {int(neg[worst])} negatives ({float(ratio[worst]):.0f}x).",
                    f"weight the positives, loss={{'name': '{info.name}', 'pos_weight': {shown}}}; and "
                    f"judge it by f1 or auroc, not accuracy", "targets"))
    return found
