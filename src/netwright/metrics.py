"""Metrics by name, computed by torchmetrics, and the task they are computed for.

The task (binary, multiclass, multilabel, regression) is inferred from the loss and the shapes
of the model's output and the targets, or set explicitly. Model outputs are turned into what
torchmetrics expects here (probabilities for classification) rather than left to torchmetrics'
guess, which treats logits that happen to lie in [0, 1] as probabilities.

torchmetrics is imported only when a metric is built: it takes seconds to import.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from .errors import ConfigError, did_you_mean
from .losses import LossInfo

__all__ = ["Task", "infer_task", "MetricSet", "CLASSIFICATION_METRICS", "REGRESSION_METRICS"]

CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "auroc", "confusion_matrix")
REGRESSION_METRICS = ("mse", "mae", "rmse", "r2")
TASKS = ("binary", "multiclass", "multilabel", "regression")
_AVERAGES = ("macro", "micro", "weighted")


@dataclass(frozen=True)
class Task:
    """``kind`` is one of binary, multiclass, multilabel, regression; ``classes`` is the number
    of classes (multiclass) or labels (multilabel); ``output`` says what the model returns
    (logits, log_probs, probs or values)."""

    kind: str
    classes: int = 0
    output: str = "values"

    @property
    def is_classification(self) -> bool:
        return self.kind != "regression"


def infer_task(info: LossInfo, output: torch.Tensor, target: torch.Tensor | None,
               task: str | None = None) -> Task:
    """Infer the task from the loss, one batch of model output and its targets.

    >>> from netwright.losses import resolve_loss
    >>> _, info = resolve_loss("cross_entropy")
    >>> infer_task(info, torch.zeros(4, 3), torch.zeros(4, dtype=torch.long))
    Task(kind='multiclass', classes=3, output='logits')
    """
    if task is not None and task not in TASKS:
        raise ConfigError(
            f"task: expected one of {', '.join(TASKS)}, received {task!r}.{did_you_mean(task, TASKS)}"
        )
    width = output.shape[1] if output.ndim >= 2 else 1
    out_kind = info.output
    if info.task == "custom":
        # No loss to go by: read the targets. Integer targets with several outputs are classes;
        # 0/1 float targets of the output's shape are binary/multilabel; the rest regression.
        # Outputs already in [0, 1] (rows summing to 1 for classes) are taken as probabilities.
        out = output.detach().float()
        in_unit = bool(((out >= 0) & (out <= 1)).all())
        if target is not None and not target.is_floating_point() and width > 1:
            guessed = "multiclass"
            sums_to_one = in_unit and bool(torch.allclose(out.sum(1), torch.ones(out.shape[0]).to(out)))
            out_kind = "probs" if sums_to_one else "logits"
        elif (target is not None and target.is_floating_point() and target.shape == output.shape
              and bool(((target == 0) | (target == 1)).all())):
            guessed = "binary" if width == 1 or output.ndim == 1 else "multilabel"
            out_kind = "probs" if in_unit else "logits"
        else:
            guessed = "regression"
    elif info.task == "binary":
        guessed = "binary" if width == 1 or output.ndim == 1 else "multilabel"
    else:
        guessed = info.task
    kind = task or guessed
    if kind == "regression":
        return Task("regression", 0, "values")
    if out_kind == "values":  # a task set by hand over a regression-style output
        out = output.detach().float()
        out_kind = "probs" if bool(((out >= 0) & (out <= 1)).all()) else "logits"
    return Task(kind, 2 if kind == "binary" else int(width), out_kind)


def _parse(spec: Any) -> tuple[str, str, dict]:
    """(display name, base metric name, options) from 'f1', 'f1_weighted' or {'name': ...}."""
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise ConfigError(f"metrics: a mapping needs a 'name' key; received {sorted(options)}.")
        base = str(options.pop("name")).lower()
        display = base if "average" not in options else f"{base}_{options['average']}"
        return display, base, options
    name = str(spec).strip().lower()
    for avg in _AVERAGES:
        if name.endswith("_" + avg):
            return name, name[: -len(avg) - 1], {"average": avg}
    return name, name, {}


def _make(base: str, options: dict, task: Task, display: str) -> Any:
    import torchmetrics

    tm = torchmetrics
    if base in REGRESSION_METRICS:
        if task.is_classification:
            raise ConfigError(
                f"metrics: '{display}' is a regression metric but this run's task is "
                f"{task.kind}. Fix: use {', '.join(CLASSIFICATION_METRICS)}; or set task='regression'."
            )
        return {"mse": lambda: tm.MeanSquaredError(**options),
                "rmse": lambda: tm.MeanSquaredError(squared=False, **options),
                "mae": lambda: tm.MeanAbsoluteError(**options),
                "r2": lambda: tm.R2Score(**options)}[base]()
    if not task.is_classification:
        raise ConfigError(
            f"metrics: '{display}' is a classification metric but this run's task is regression "
            f"(a regression loss, or float targets). Fix: use {', '.join(REGRESSION_METRICS)}; or "
            f"set task='binary'/'multiclass' with a classification loss."
        )
    kw: dict[str, Any] = {"task": task.kind}
    if task.kind == "multiclass":
        kw["num_classes"] = task.classes
    elif task.kind == "multilabel":
        kw["num_labels"] = task.classes
    if base == "accuracy" and task.kind != "binary":
        kw["average"] = "micro"  # accuracy in its usual sense; torchmetrics' default is macro
    if base in ("precision", "recall", "f1") and task.kind != "binary":
        kw["average"] = "macro"
    if options.get("average") not in (None, "binary") and task.kind == "binary" and base != "confusion_matrix":
        # 'f1_macro' on a binary run means sklearn's average over both classes, not the
        # positive-class score under a macro name: score it as a two-class problem.
        return _two_class(base, {k: v for k, v in options.items()}, display)
    if "average" in options and task.kind == "binary":
        options = {k: v for k, v in options.items() if k != "average"}
    kw.update(options)
    classes = {"accuracy": tm.Accuracy, "precision": tm.Precision, "recall": tm.Recall,
               "f1": tm.F1Score, "auroc": tm.AUROC, "confusion_matrix": tm.ConfusionMatrix}
    if base == "auroc" and kw.get("average") == "micro" and task.kind == "multiclass":
        raise ConfigError("metrics: auroc has no 'micro' average for multiclass. Fix: macro or weighted.")
    try:
        return classes[base](**kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metrics: '{display}' with options {options}: {exc}") from exc


def _two_class(base: str, options: dict, display: str) -> Any:
    """A binary metric averaged over both classes: probabilities p become rows [1 - p, p]."""
    import torch
    from torchmetrics import classification as tc

    cls = {"accuracy": tc.MulticlassAccuracy, "precision": tc.MulticlassPrecision,
           "recall": tc.MulticlassRecall, "f1": tc.MulticlassF1Score, "auroc": tc.MulticlassAUROC}[base]
    if base == "auroc" and options.get("average") == "micro":
        raise ConfigError(f"metrics: '{display}': auroc has no 'micro' average. Fix: macro or weighted.")

    class TwoClass(cls):  # type: ignore[misc, valid-type]
        def update(self, preds, target):
            preds = preds.reshape(-1)
            super().update(torch.stack([1 - preds, preds], dim=1), target.reshape(-1))

    try:
        return TwoClass(num_classes=2, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metrics: '{display}' with options {options}: {exc}") from exc


class MetricSet:
    """Named torchmetrics metrics that accumulate over batches of raw model outputs.

    >>> from netwright.losses import resolve_loss
    >>> _, info = resolve_loss("cross_entropy")
    >>> ms = MetricSet(["accuracy", "f1_weighted"], Task("multiclass", 3, "logits"))
    >>> ms.update(torch.tensor([[2., 0, 0], [0, 2., 0]]), torch.tensor([0, 2]))
    >>> ms.compute()["accuracy"]
    0.5
    """

    def __init__(self, names: Sequence[Any] | str | None, task: Task):
        self.task = task
        self.metrics: dict[str, Any] = {}
        if names is None:
            return
        if isinstance(names, (str, Mapping)):
            names = [names]
        known = CLASSIFICATION_METRICS + REGRESSION_METRICS
        for spec in names:
            display, base, options = _parse(spec)
            if base not in known:
                raise ConfigError(
                    f"metrics: unknown name {base!r}.{did_you_mean(base, known)} Expected one of: "
                    f"{', '.join(known)} (precision/recall/f1 take _macro, _micro or _weighted)."
                )
            if "average" in options and options["average"] not in _AVERAGES + ("none", None):
                raise ConfigError(
                    f"metrics: '{display}': average must be one of {', '.join(_AVERAGES)}; "
                    f"received {options['average']!r}."
                )
            self.metrics[display] = _make(base, options, task, display)

    def __bool__(self) -> bool:
        return bool(self.metrics)

    def to(self, device: torch.device) -> MetricSet:
        for m in self.metrics.values():
            m.to(device)
        return self

    def reset(self) -> None:
        for m in self.metrics.values():
            m.reset()

    def prepare(self, output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Map raw outputs/targets to what torchmetrics expects for this task."""
        out = output.detach().float()
        y = target.detach()
        kind, how = self.task.kind, self.task.output
        if kind == "regression":
            if out.shape != y.shape and out.numel() == y.numel():
                out = out.reshape(y.shape)
            return out, y.float()
        if kind == "multiclass":
            if how == "log_probs":
                out = out.exp()
            elif how == "logits":
                out = out.softmax(dim=1)
            if y.is_floating_point() and y.shape == out.shape:
                y = y.argmax(dim=1)  # soft labels: score against the most likely class
            elif y.ndim == out.ndim and y.ndim >= 2 and y.shape[1] == 1:
                y = y.squeeze(1)
            return out, y.long()
        if how == "logits":
            out = out.sigmoid()
        if kind == "binary":
            out, y = out.reshape(-1), y.reshape(-1)
        return out, (y > 0.5).long() if y.is_floating_point() else y.long()

    def update(self, output: torch.Tensor, target: torch.Tensor) -> None:
        out, y = self.prepare(output, target)
        for m in self.metrics.values():
            m.update(out, y)

    def compute(self) -> dict[str, Any]:
        """Scalars as floats; the confusion matrix as a nested list of ints."""
        results: dict[str, Any] = {}
        for name, m in self.metrics.items():
            value = m.compute()
            if value.numel() == 1:
                results[name] = float(value)
            else:
                results[name] = value.cpu().tolist()
        return results
