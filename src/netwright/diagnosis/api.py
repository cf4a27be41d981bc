"""The doctor's public functions: :func:`check_batch` (evaluate and predict), :func:`preflight`
(fit) and :func:`doctor` (``nw.doctor``, ``netwright doctor``)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..data.batches import make_batches
from ..data.sources import InMemory, first_len, to_source
from ..errors import DataError, ModelSpecError, describe
from ..losses import LossInfo, resolve_loss
from ..optim import Schedule, build_scheduler
from ..util import model_device
from .audio_checks import audio_findings, data_audio
from .data_checks import class_findings, data_findings, nonfinite_finding
from .leak_checks import split_findings
from .structure_checks import structure_findings
from .deep import deep_findings, optimizer_factory
from .model_checks import (batchnorm_findings, eval_randomness_findings, forward_failure,
                           nonfinite_output_findings, success_layer_findings)
from .output_checks import output_findings
from .report import Finding, Report, finding
from .setup_checks import metric_findings, metric_names, param_findings, schedule_findings
from .text_checks import text_findings
from .tracing import RngGuard, tensors, traced_forward

# What evaluate and predict refuse is what the caller gave them: the inputs, the targets and
# whether they fit the model's sizes and the loss. The training-only checks (parameters,
# optimizer, scheduler, BatchNorm batch sizes, input scale, class balance) do not apply, and the
# state of the weights is not the caller's mistake: a diverged model is scored, not refused.
_WEIGHTS_STATE = ("NW191", "NW209")


def structure_errors(model: nn.Module) -> Report:
    """The errors of how the model holds its parts (NW216, NW217) and of nothing to train
    (NW403), which fit checks before building its optimizer: no forward needed."""
    return Report(f for f in structure_findings(model) + param_findings(model, None)
                  if f.severity == "error")


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
    for code, (name, t) in [*(("NW301", p) for p in tensors(x, "inputs")),
                            *(("NW302", p) for p in tensors(y, "targets"))]:
        if t.ndim and t.shape[0]:
            bad = nonfinite_finding(code, name, t.detach(), "in the first batch",
                                    effect=effects[code], stage=stage)
            found += [bad] if bad is not None else []
    found += text_findings(model, x, training=False)
    out: Any = None
    if forward and not any(f.code in ("NW301", "NW213") for f in found):
        with traced_forward(model, x) as run:
            out = run.out
            if run.failure is not None:
                found.append(forward_failure(run.target, x, run.trace, run.failure))
            elif loss_fn is not None and y is not None:
                finite = not any(f.code == "NW302" for f in found)
                found += output_findings(run.target, x, y, out, info, loss_fn, run.trace, finite)
    report = Report(f for f in found if f.severity == "error" and f.code not in _WEIGHTS_STATE)
    report.output, report.stage = out, stage
    return report


def preflight(model: nn.Module, x: Any, y: Any, *, loss_fn: Callable, loss_info: LossInfo,
              optimizer: torch.optim.Optimizer | None = None, schedule: Schedule | None = None,
              log_keys: Sequence[str] | None = None, steps_per_epoch: int | None = None,
              epochs: int | None = None, data: tuple[Any, Any] | None = None,
              batch_sizes: Sequence[int] | None = None, audio: dict | None = None,
              sources: tuple[Any, Any] | None = None, shuffle: bool = True,
              sample: bool = False) -> Report:
    """The cheap checks on one batch ``(x, y)``, as ``fit`` runs them before training.

    One forward in eval mode under ``no_grad`` plus tensor reductions; the model's weights,
    buffers and the train/eval mode of every submodule are left as they were, and so is the
    global RNG. ``data`` is the whole in-memory ``(features, targets)`` when available (NaN
    anywhere, constant features, missing classes, imbalance); ``batch_sizes`` are the sizes of
    the epoch's batches (a last batch of 1 sample breaks BatchNorm); ``audio`` what sound data
    states of itself (its sample rate and level check, see ``audio_checks.data_audio``);
    ``sources`` fit's (training, validation) data sources (the validation one may be None) and
    ``shuffle`` whether training batches are shuffled: for the checks of duplicated rows across
    them, features that are the target in disguise and labels in sorted order; ``sample``
    whether items of a Dataset may be read for the duplicate check (``doctor``: yes; ``fit``: no,
    only in-memory rows and the files of image and sound datasets are compared).

    >>> from netwright.losses import resolve_loss
    >>> fn, info = resolve_loss("cross_entropy")
    >>> net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    >>> preflight(net, torch.randn(8, 4), torch.zeros(8, 1), loss_fn=fn, loss_info=info).codes
    ['NW104', 'NW101']
    """
    found: list[Finding] = []
    found += param_findings(model, optimizer)
    found += structure_findings(model)
    if sources is not None:
        found += split_findings(sources[0], sources[1], shuffle=shuffle, task=loss_info.task,
                                sample=sample)
    whole_x, whole_y = data if data is not None else (x, y)
    found += data_findings(whole_x, whole_y, loss_info, model, whole=data is not None)
    found += text_findings(model, x)
    found += audio_findings(model, x, audio)
    inputs_finite = not any(f.code == "NW301" for f in found)
    try:
        rows = first_len(x)
    except (TypeError, IndexError, KeyError, StopIteration, AttributeError):
        rows = None

    with traced_forward(model, x) as run:
        out = run.out
        if run.failure is not None:
            found.append(forward_failure(run.target, x, run.trace, run.failure))
        else:
            found += success_layer_findings(run.trace, rows)
            found += batchnorm_findings(run.trace, rows or 0, batch_sizes)
            if inputs_finite:
                found += nonfinite_output_findings(out)
            finite = not any(f.code in ("NW209", "NW301", "NW302") for f in found)
            found += output_findings(run.target, x, y, out, loss_info, loss_fn, run.trace, finite)
            if data is not None and isinstance(out, torch.Tensor) and isinstance(whole_y, torch.Tensor) \
                    and not any(f.severity == "error" and f.code.startswith("NW1") for f in found):
                found += class_findings(loss_info, loss_fn, out, whole_y)
            if run.rng.changed():
                found += eval_randomness_findings(run.target, x, out)
    found += schedule_findings(schedule, log_keys, steps_per_epoch, epochs)
    report = Report(found).sorted()
    report.output = out  # fit infers the task from it without a second forward
    return report


def doctor(model: nn.Module, data: Any, *, val: Any = None, deep: bool = False,
           **options: Any) -> Report:
    """Check a model, its data and its training setup before training; returns a :class:`Report`.

    Takes what :func:`netwright.fit` takes, checked by the same option schema (an unknown or
    mistyped option is a ``ConfigError`` with a "did you mean"): ``data`` as ``(X, y)``
    arrays/tensors, a ``Dataset`` or a ``DataLoader``; ``val`` the validation data or a fraction
    to hold out (split as fit splits it); ``loss`` by name, mapping or callable; ``optimizer`` a
    name, mapping or instance (an instance is checked for missing parameters); ``scheduler``,
    ``metrics``, ``epochs``, ``batch_size``, ``shuffle``, ``monitor``, ``lr``, ``target``,
    ``compile`` ... as in fit. ``deep=True`` adds the deep checks on a copy of the model: a
    gradient check per layer, a numerical check of every custom layer's backward, the first step
    and a few steps overfitting one batch; with ``compile`` also the forward's graph breaks, each
    by the line that causes it. The model itself is never changed. Bad arguments (an unknown
    loss or optimizer name, unreadable data) raise as they would in ``fit``.

    >>> net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    >>> X = torch.rand(64, 4); y = torch.randint(0, 3, (64, 1)).float()
    >>> report = doctor(net, (X, y), loss="cross_entropy")
    >>> report.codes
    ['NW104', 'NW101']
    >>> report.ok
    False
    """
    from ..config import fit_options
    from ..data.splits import split_fraction

    if not isinstance(model, nn.Module):
        raise ModelSpecError(
            f"model: expected a torch.nn.Module, received {describe(model)}. Fix: pass an instance, "
            f"e.g. SimpleNet() rather than SimpleNet.")
    opts = fit_options(options, where="doctor")
    optimizer, scheduler, metrics, monitor = opts.optimizer, opts.scheduler, opts.metrics, opts.monitor
    batch_size, lr, compile = int(opts.batch_size), opts.lr, opts.compile
    loss_fn, info = resolve_loss(opts.loss)
    source = to_source(data, arg="data", target=opts.target)
    val_source = None
    if isinstance(val, float) and 0 < val < 1:
        stratify = info.task in ("multiclass", "binary", "custom")
        source, val_source = split_fraction(source, val, seed=int(opts.seed or 0), stratify=stratify)
    elif val is not None and not isinstance(val, float):
        val_source = to_source(val, arg="val", target=opts.target)
    device = model_device(model)
    if isinstance(loss_fn, nn.Module):
        loss_fn = copy.deepcopy(loss_fn).to(device)  # the user's loss object stays where it is
    epochs_ = int(opts.epochs)
    batches = make_batches(source, batch_size=batch_size, shuffle=False, device=device,
                           generator=None, drop_last=opts.drop_last)
    head = batches.peek()
    if head is None:
        raise DataError("data: no batch could be read for the checks (an IterableDataset without "
                        "length, or a Dataset that cannot be indexed). Fix: pass (X, y) or a Dataset.")
    x, y = head
    sizes = batches.sizes()
    whole = None
    if isinstance(source, InMemory):
        whole = (source.x, source.y)
        full, rest = divmod(len(source), batch_size)
        sizes = [batch_size] * full + ([rest] if rest and not opts.drop_last else [])
    steps = max(1, len(sizes) if sizes else len(batches))

    names = metric_names(metrics)
    shown = [d for d, base in names if base != "confusion_matrix"]
    has_val = val is not None
    log_keys = ["epoch", "train_loss"]
    log_keys += (["val_loss"] + [f"val_{k}" for k in shown]) if has_val else [f"train_{k}" for k in shown]
    log_keys.append("lr")
    default_monitor = monitor or ("val_loss" if has_val else "train_loss")

    opt_instance = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
    make_optimizer = optimizer_factory(optimizer, lr, weight_decay=opts.weight_decay,
                                       decay_norm_and_bias=opts.decay_norm_and_bias)
    schedule = None
    if scheduler is not None:
        # A stand-in optimizer: building a scheduler sets the lr of the optimizer it is given.
        stand_in = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=float(lr or 1e-3))
        schedule = build_scheduler(scheduler, stand_in, epochs=epochs_, steps_per_epoch=steps,
                                   default_monitor=default_monitor)

    found = list(preflight(model, x, y, loss_fn=loss_fn, loss_info=info, optimizer=opt_instance,
                           schedule=schedule, log_keys=log_keys, steps_per_epoch=steps,
                           epochs=epochs_, data=whole, batch_sizes=sizes,
                           audio=data_audio(source), sources=(source, val_source),
                           shuffle=opts.shuffle, sample=True))
    if monitor is not None and monitor not in log_keys:
        found.append(finding(
            "NW414", f"monitor {monitor!r} (early stopping and the best checkpoint) is never logged; "
            f"each epoch logs {log_keys}.",
            "monitor one of those (val_* values need val data; a metric needs metrics=[...])", "monitor"))
    found += metric_findings(names, info, y)
    if not model.training:
        found.append(finding(
            "NW206", f"the model {type(model).__name__} is in eval mode (model.eval() was called): "
            f"fit switches it to training mode itself, but a hand-written loop would train it with "
            f"dropout off and BatchNorm statistics frozen.",
            "nothing for fit; in your own loop call model.train() before training", "model"))
    # A scripted model does not deep-copy into a trainable module: its deep checks are skipped.
    if (deep and not any(f.severity == "error" for f in found) and isinstance(y, torch.Tensor)
            and not isinstance(model, torch.jit.ScriptModule)):
        eager = model._orig_mod if type(model).__name__ == "OptimizedModule" else model
        with RngGuard(x):
            found += deep_findings(eager, x, y, loss_fn, make_optimizer)
            if compile:
                from .compile_checks import graph_break_findings

                found += graph_break_findings(eager, x)
    return Report(found).sorted()
