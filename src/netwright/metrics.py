"""Metrics by name, with torchmetrics' definitions, and the task they are computed for.

The task (binary, multiclass, multilabel, regression) is inferred from the loss and the shapes
of the model's output and the targets, or set explicitly. Model outputs are turned into what
torchmetrics expects here (probabilities for classification) rather than left to torchmetrics'
guess, which treats logits that happen to lie in [0, 1] as probabilities.

torchmetrics takes seconds to import (it imports scipy, and torchvision and matplotlib where they
are installed), which a one-off ``netwright evaluate`` would pay for one accuracy. So the plain
metrics (accuracy, precision, recall, f1 with a macro/micro/weighted average, the confusion
matrix; mse, rmse, mae, r2) are computed in the second half of this module by torchmetrics'
own steps: the same input checks and messages, the same integer counts, the same float32
formulas in the same order, hence the same values. AUROC and any option beyond ``average`` are
torchmetrics' classes, imported when such a metric is built.
"""

from __future__ import annotations

import warnings
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


def parse_metric(spec: Any) -> tuple[str, str, dict]:
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
    if base in REGRESSION_METRICS:
        if task.is_classification:
            raise ConfigError(
                f"metrics: '{display}' is a regression metric but this run's task is "
                f"{task.kind}. Fix: use {', '.join(CLASSIFICATION_METRICS)}; or set task='regression'."
            )
        if not options:
            return _Regression(base)
        import torchmetrics as tm

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
    size = task.classes if task.kind != "binary" else 2
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
    if base == "auroc" and kw.get("average") == "micro" and task.kind == "multiclass":
        raise ConfigError("metrics: auroc has no 'micro' average for multiclass. Fix: macro or weighted.")
    if base != "auroc" and set(kw) <= {"task", "num_classes", "num_labels", "average"} and size >= 2 \
            and (task.kind != "binary" or "average" not in kw) \
            and kw.get("average", "micro") in ("micro", "macro", "weighted") \
            and not (base == "confusion_matrix" and "average" in kw):
        if base == "confusion_matrix":
            return _ConfusionMatrix(task.kind, size)
        return _StatMetric(base, task.kind, size, kw.get("average", "binary"))
    import torchmetrics as tm

    classes = {"accuracy": tm.Accuracy, "precision": tm.Precision, "recall": tm.Recall,
               "f1": tm.F1Score, "auroc": tm.AUROC, "confusion_matrix": tm.ConfusionMatrix}
    try:
        return classes[base](**kw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"metrics: '{display}' with options {options}: {exc}") from exc


def _two_class(base: str, options: dict, display: str) -> Any:
    """A binary metric averaged over both classes: probabilities p become rows [1 - p, p]."""
    if base != "auroc" and set(options) == {"average"} and options["average"] in ("micro", "macro", "weighted"):
        return _StatMetric(base, "multiclass", 2, options["average"], two_class=True)
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
    """Named metrics (torchmetrics' definitions) that accumulate over batches of raw model outputs.

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
            display, base, options = parse_metric(spec)
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


# --- the plain metrics, computed here ------------------------------------------------------------
# Each class below does what the torchmetrics class named in its docstring does for the default
# options (threshold 0.5, top_k 1, multidim_average 'global', no ignore_index, zero_division 0):
# the same validation and messages, the same counts kept as int64 tensors, the same reduction
# formulas (torchmetrics' _safe_divide, _adjust_weights_safe_divide, _accuracy_reduce,
# _precision_recall_reduce, _fbeta_reduce, _r2_score_compute). tests/test_metrics_native.py
# compares every one with torchmetrics, value for value.


class _Metric:
    """The part of torchmetrics' ``Metric`` that MetricSet uses: states summed over updates
    (and over processes under torch.distributed), ``reset``, ``to`` and ``compute``."""

    torchmetrics_name = "Metric"  # the class a warning names, as torchmetrics' warning would

    def __init__(self) -> None:
        self.device = torch.device("cpu")
        self.reset()

    def _defaults(self) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def reset(self) -> None:
        self.states = {k: v.to(self.device) for k, v in self._defaults().items()}
        self.updates = 0

    def to(self, device: Any) -> _Metric:
        self.device = torch.device(device)
        self.states = {k: v.to(self.device) for k, v in self.states.items()}
        return self

    def add(self, **values: Any) -> None:
        for key, value in values.items():
            self.states[key] = self.states[key] + value
        self.updates += 1

    def compute(self) -> torch.Tensor:
        if self.updates == 0:
            warnings.warn(f"The ``compute`` method of metric {self.torchmetrics_name} was called before "
                          f"the ``update`` method which may lead to errors, as metric states have not "
                          f"yet been updated.", UserWarning, stacklevel=2)
        return self._compute(**_summed_over_processes(self.states))


def _summed_over_processes(states: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Under torch.distributed, each state summed over the processes in rank order (gathered
    and stacked, as torchmetrics' sync does); the local states are left as they are."""
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return states
    out = {}
    for key, value in states.items():
        gathered = [torch.zeros_like(value) for _ in range(dist.get_world_size())]
        dist.all_gather(gathered, value.contiguous())
        out[key] = torch.stack(gathered).sum(dim=0)
    return out


def _safe_divide(num: torch.Tensor, denom: torch.Tensor) -> torch.Tensor:
    num = num if num.is_floating_point() else num.float()
    denom = denom if denom.is_floating_point() else denom.float()
    return torch.where(denom != 0, num / denom, torch.full((), 0.0, dtype=num.dtype, device=num.device))


def _check_same_shape(preds: torch.Tensor, target: torch.Tensor) -> None:
    if preds.shape != target.shape:
        raise RuntimeError(f"Predictions and targets are expected to have the same shape, but got "
                           f"{preds.shape} and {target.shape}.")


def _check_zero_one(preds: torch.Tensor, target: torch.Tensor, preds_name: str) -> None:
    unique_values = torch.unique(target, dim=None)
    if torch.any((unique_values != 0) & (unique_values != 1)):
        raise RuntimeError(f"Detected the following values in `target`: {unique_values} but expected "
                           f"only the following values {[0, 1]}.")
    if not preds.is_floating_point():
        unique_values = torch.unique(preds, dim=None)
        if torch.any((unique_values != 0) & (unique_values != 1)):
            raise RuntimeError(f"Detected the following values in `preds`: {unique_values} but expected "
                               f"only the following values [0,1] since {preds_name} is a label tensor.")


def _check_multiclass(preds: torch.Tensor, target: torch.Tensor, num_classes: int, confmat: bool) -> None:
    if preds.ndim == target.ndim + 1:
        if not preds.is_floating_point():
            raise ValueError("If `preds` have one dimension more than `target`, `preds` should be a float tensor.")
        if preds.shape[1] != num_classes:
            raise ValueError("If `preds` have one dimension more than `target`, `preds.shape[1]` should be "
                             "equal to number of classes.")
        if preds.shape[2:] != target.shape[1:]:
            raise ValueError("If `preds` have one dimension more than `target`, the shape of `preds` should "
                             "be (N, C, ...), and the shape of `target` should be (N, ...).")
    elif preds.ndim == target.ndim:
        if preds.shape != target.shape:
            got = f" got `preds` with shape={preds.shape} and `target` with shape={target.shape}."
            if confmat:  # torchmetrics' confusion matrix passes its message as two arguments
                raise ValueError("The `preds` and `target` should have the same shape,", got)
            raise ValueError("The `preds` and `target` should have the same shape," + got)
    else:
        raise ValueError("Either `preds` and `target` both should have the (same) shape (N, ...), or "
                         "`target` should be (N, ...) and `preds` should be (N, C, ...).")
    if not preds.is_floating_point():  # label predictions: neither may hold more classes
        for t, name in ((target, "target"), (preds, "preds")):
            found = len(torch.unique(t, dim=None))
            if found > num_classes:
                raise RuntimeError(f"Detected more unique values in `{name}` than expected. Expected only "
                                   f"{num_classes} but found {found} in `{'target' if confmat else name}`."
                                   + ("" if confmat else f" Found values: {torch.unique(t, dim=None)}."))


def _labels(preds: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Probabilities to 0/1 labels; scores outside [0, 1] are taken as logits, as torchmetrics'
    normalize_logits_if_needed does."""
    if not preds.is_floating_point():
        return preds
    if preds.device == torch.device("cpu"):
        if not torch.all((preds >= 0) * (preds <= 1)):
            preds = preds.sigmoid()
    else:
        preds = torch.where(((preds < 0) | (preds > 1)).any(), torch.sigmoid(preds), preds)
    return preds > threshold


def _bincount(x: torch.Tensor, minlength: int) -> torch.Tensor:
    if torch.are_deterministic_algorithms_enabled() or x.is_mps:
        mesh = torch.arange(minlength, device=x.device).repeat(len(x), 1)
        return torch.eq(x.reshape(-1, 1), mesh).sum(dim=0)
    return torch.bincount(x, minlength=minlength)


_KINDS = {"binary": "Binary", "multiclass": "Multiclass", "multilabel": "Multilabel"}
_STAT_NAMES = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1Score"}


class _StatMetric(_Metric):
    """torchmetrics' Binary/Multiclass/Multilabel Accuracy, Precision, Recall and F1Score.

    ``average`` is 'binary' for binary tasks, else micro, macro or weighted; ``two_class``
    scores binary probabilities p as the two-class rows [1 - p, p] (netwright's 'f1_macro' on
    a binary run)."""

    def __init__(self, base: str, kind: str, size: int, average: str, *, two_class: bool = False):
        self.base, self.kind, self.size, self.average, self.two_class = base, kind, size, average, two_class
        self.torchmetrics_name = _KINDS[kind] + _STAT_NAMES[base]
        super().__init__()

    def _defaults(self) -> dict[str, torch.Tensor]:
        # binary and micro-averaged multiclass counts are scalars; the rest one per class/label
        n = 1 if self.kind == "binary" or (self.kind == "multiclass" and self.average == "micro") else self.size
        return {k: torch.zeros(n, dtype=torch.long) for k in ("tp", "fp", "tn", "fn")}

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if self.two_class:
            preds = preds.reshape(-1)
            preds, target = torch.stack([1 - preds, preds], dim=1), target.reshape(-1)
        if self.kind == "multiclass":
            _check_multiclass(preds, target, self.size, confmat=False)
            if preds.ndim == target.ndim + 1:
                preds = preds.argmax(dim=1)
            preds, target = preds.reshape(preds.shape[0], -1).flatten(), target.reshape(target.shape[0], -1).flatten()
            if self.average == "micro":
                tp, fp = (preds == target).sum(), (preds != target).sum()
                fn = (preds != target).sum()
                tn = self.size * preds.numel() - (fp + fn + tp)
            else:
                confmat = _bincount(target.to(torch.long) * self.size + preds.to(torch.long),
                                    self.size**2).reshape(self.size, self.size)
                tp = confmat.diag()
                fp, fn = confmat.sum(0) - tp, confmat.sum(1) - tp
                tn = confmat.sum() - (fp + fn + tp)
            self.add(tp=tp, fp=fp, tn=tn, fn=fn)
            return
        _check_same_shape(preds, target)
        if self.kind == "multilabel" and preds.shape[1] != self.size:
            raise ValueError(f"Expected both `target.shape[1]` and `preds.shape[1]` to be equal to the "
                             f"number of labels but got {preds.shape[1]} and expected {self.size}")
        _check_zero_one(preds, target, "`preds`" if self.kind == "binary" else "preds")
        preds = _labels(preds)
        if self.kind == "binary":
            preds, target, dims = preds.reshape(preds.shape[0], -1), target.reshape(target.shape[0], -1), [0, 1]
        else:
            preds, target, dims = preds.reshape(*preds.shape[:2], -1), target.reshape(*target.shape[:2], -1), [0, -1]
        self.add(tp=((target == preds) & (target == 1)).sum(dims).squeeze(),
                 fp=((target != preds) & (target == 0)).sum(dims).squeeze(),
                 tn=((target == preds) & (target == 0)).sum(dims).squeeze(),
                 fn=((target != preds) & (target == 1)).sum(dims).squeeze())

    def _compute(self, tp: torch.Tensor, fp: torch.Tensor, tn: torch.Tensor, fn: torch.Tensor) -> torch.Tensor:
        average, multilabel = self.average, self.kind == "multilabel"
        if average == "micro":
            tp, fp, tn, fn = tp.sum(dim=0), fp.sum(dim=0), tn.sum(dim=0), fn.sum(dim=0)
        if self.base == "accuracy":
            if average == "binary" or (average == "micro" and multilabel):
                return _safe_divide(tp + tn, tp + tn + fp + fn)
            if average == "micro":
                return _safe_divide(tp, tp + fn)
            score = _safe_divide(tp + tn, tp + tn + fp + fn) if multilabel else _safe_divide(tp, tp + fn)
        elif self.base in ("precision", "recall"):
            score = _safe_divide(tp, tp + (fp if self.base == "precision" else fn))
        else:  # f1: torchmetrics' F-beta with beta = 1
            beta2 = 1.0
            score = _safe_divide((1 + beta2) * tp, (1 + beta2) * tp + beta2 * fn + fp)
        if average in ("binary", "micro"):
            return score
        if average == "weighted":
            weights = tp + fn
        else:
            weights = torch.ones_like(score)
            if not multilabel:
                weights[tp + fp + fn == 0] = 0.0  # classes neither present nor predicted
        return _safe_divide(weights * score, weights.sum(-1, keepdim=True)).sum(-1)


class _ConfusionMatrix(_Metric):
    """torchmetrics' Binary/Multiclass/Multilabel ConfusionMatrix (counts, not normalised)."""

    def __init__(self, kind: str, size: int):
        self.kind, self.size = kind, size
        self.torchmetrics_name = _KINDS[kind] + "ConfusionMatrix"
        super().__init__()

    def _defaults(self) -> dict[str, torch.Tensor]:
        shape = {"binary": (2, 2), "multiclass": (self.size, self.size), "multilabel": (self.size, 2, 2)}
        return {"confmat": torch.zeros(shape[self.kind], dtype=torch.long)}

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        if self.kind == "multiclass":
            _check_multiclass(preds, target, self.size, confmat=True)
            if preds.ndim == target.ndim + 1:
                preds = preds.argmax(dim=1)
            mapping = target.flatten().to(torch.long) * self.size + preds.flatten().to(torch.long)
            confmat = _bincount(mapping, self.size**2).reshape(self.size, self.size)
        else:
            _check_same_shape(preds, target)
            if self.kind == "multilabel" and preds.shape[1] != self.size:
                raise ValueError(f"Expected both `target.shape[1]` and `preds.shape[1]` to be equal to the "
                                 f"number of labels but got {preds.shape[1]} and expected {self.size}")
            _check_zero_one(preds, target, "preds")
            if self.kind == "binary":
                preds, target = _labels(preds.flatten()), target.flatten()
                confmat = _bincount((target * 2 + preds).to(torch.long), 4).reshape(2, 2)
            else:
                preds = torch.movedim(_labels(preds), 1, -1).reshape(-1, self.size)
                target = torch.movedim(target, 1, -1).reshape(-1, self.size)
                mapping = (2 * target + preds + 4 * torch.arange(self.size, device=preds.device)).flatten()
                confmat = _bincount(mapping[mapping >= 0], 4 * self.size).reshape(self.size, 2, 2)
        self.add(confmat=confmat)

    def _compute(self, confmat: torch.Tensor) -> torch.Tensor:
        return confmat


class _Regression(_Metric):
    """torchmetrics' MeanSquaredError (rmse: squared=False), MeanAbsoluteError and R2Score."""

    def __init__(self, base: str):
        self.base = base
        self.torchmetrics_name = {"mse": "MeanSquaredError", "rmse": "MeanSquaredError",
                                  "mae": "MeanAbsoluteError", "r2": "R2Score"}[base]
        super().__init__()

    def _defaults(self) -> dict[str, torch.Tensor]:
        if self.base == "r2":
            return {"sum_squared_error": torch.tensor(0.0), "sum_error": torch.tensor(0.0),
                    "residual": torch.tensor(0.0), "total": torch.tensor(0)}
        return {"sum": torch.zeros(1), "total": torch.tensor(0)}

    def update(self, preds: torch.Tensor, target: torch.Tensor) -> None:
        _check_same_shape(preds, target)
        if self.base == "r2":
            if preds.ndim > 2:
                raise ValueError(f"Expected both prediction and target to be 1D or 2D tensors, but "
                                 f"received tensors with dimension {preds.shape}")
            residual = target - preds
            self.add(sum_squared_error=torch.sum(target * target, dim=0), sum_error=torch.sum(target, dim=0),
                     residual=torch.sum(residual * residual, dim=0), total=target.size(0))
            return
        preds, target = preds.view(-1), target.view(-1)
        if self.base == "mae":
            self.add(sum=torch.sum(torch.abs(preds - target), dim=0), total=target.shape[0])
        else:
            diff = preds - target
            self.add(sum=torch.sum(diff * diff, dim=0), total=target.shape[0])

    def _compute(self, **states: torch.Tensor) -> torch.Tensor:
        if self.base != "r2":
            mean = states["sum"] / states["total"]
            return torch.sqrt(mean) if self.base == "rmse" else mean
        sum_squared_obs, sum_obs, rss, num_obs = (states[k] for k in ("sum_squared_error", "sum_error",
                                                                       "residual", "total"))
        if num_obs < 2:
            raise ValueError("Needs at least two samples to calculate r2 score.")
        mean_obs = sum_obs / num_obs
        tss = sum_squared_obs - sum_obs * mean_obs
        cond_rss = ~torch.isclose(rss, torch.zeros_like(rss), atol=0.0001)
        cond_tss = ~torch.isclose(tss, torch.zeros_like(tss), atol=0.0001)
        cond = cond_rss & cond_tss
        raw_scores = torch.ones_like(rss)
        raw_scores[cond] = 1 - rss[cond] / tss[cond]
        raw_scores[cond_rss & ~cond_tss] = 0.0
        return torch.mean(raw_scores)
