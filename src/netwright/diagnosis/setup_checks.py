"""Checks of the training setup (NW4xx): parameters the optimizer does not hold, a scheduler
that monitors a value never logged or steps past its end, metrics that do not fit the task."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..losses import LossInfo
from ..optim import Schedule
from .report import Finding, finding, listed


def param_findings(model: nn.Module, optimizer: Any) -> list[Finding]:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        total = sum(1 for _ in model.parameters())
        return [finding(
            "NW403", f"the model {type(model).__name__} has no trainable parameters ("
            + (f"all {total} have requires_grad=False" if total else "it has no parameters at all")
            + "): training cannot change it.",
            "unfreeze some layers (p.requires_grad_(True)), or add layers with weights", "model")]
    if not isinstance(optimizer, torch.optim.Optimizer):
        return []
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    kind = type(optimizer).__name__
    if not held:
        return [finding(
            "NW402", f"the optimizer {kind} holds no parameters, so no step changes the model.",
            "build it from the model, e.g. torch.optim.Adam(model.parameters())", "optimizer")]
    missing = [n for n, p in trainable if id(p) not in held]
    if len(missing) == len(trainable):
        return [finding(
            "NW402", f"the optimizer {kind} updates none of the {len(trainable)} trainable parameters "
            f"of {type(model).__name__}: it was built for other parameters (another model instance?).",
            "build the optimizer from this model's parameters after creating the model", "optimizer")]
    if missing:
        return [finding(
            "NW401", f"{len(missing)} of {len(trainable)} trainable parameters are not in the optimizer "
            f"{kind}, so they never change: {listed(missing)}.",
            "add them to the optimizer (build it from model.parameters()), or freeze them "
            "deliberately with requires_grad_(False)", "optimizer")]
    return []


def schedule_findings(schedule: Schedule | None, log_keys: Sequence[str] | None,
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
        found.append(finding(
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
            found.append(finding(
                "NW412", f"scheduler '{label}' has total_steps={total} but the run makes {how}: "
                f"torch raises 'Tried to step {total + 1} times' partway through training.",
                f"leave total_steps out (netwright sets it to epochs x steps per epoch = "
                f"{epochs * steps_per_epoch}), or set total_steps={planned}", "scheduler"))
        elif planned < total:
            epoch_note = "" if per_step else (
                " A OneCycleLR object is stepped per epoch unless given as {'scheduler': obj, "
                "'interval': 'step'}.")
            found.append(finding(
                "NW413", f"scheduler '{label}' has total_steps={total} but the run makes {how}: the "
                f"cycle stops at {100 * planned / total:.0f} %, with the learning rate still high "
                f"instead of annealed.{epoch_note}",
                f"set total_steps={planned} (or leave it out when naming 'onecycle')", "scheduler"))
    return found


def metric_names(metrics: Any) -> list[tuple[str, str]]:
    from ..metrics import parse_metric  # the same display names fit logs

    if not metrics:
        return []
    specs = [metrics] if isinstance(metrics, (str, Mapping)) else list(metrics)
    return [parse_metric(s)[:2] for s in specs]


def metric_findings(names: list[tuple[str, str]], info: LossInfo, y: Any) -> list[Finding]:
    from ..metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS

    found = []
    regression = info.task == "regression" or (
        info.task == "custom" and isinstance(y, torch.Tensor) and y.is_floating_point())
    for display, base in names:
        if base not in CLASSIFICATION_METRICS + REGRESSION_METRICS:
            found.append(finding(
                "NW415", f"metric {display!r} is not known; expected one of "
                f"{', '.join(CLASSIFICATION_METRICS + REGRESSION_METRICS)}.",
                "use one of those names (precision/recall/f1 take _macro, _micro or _weighted)",
                "metrics"))
        elif regression and base in CLASSIFICATION_METRICS:
            found.append(finding(
                "NW415", f"metric {display!r} scores classes, but loss '{info.name}' makes this a "
                f"regression run.", f"use {', '.join(REGRESSION_METRICS)}", "metrics"))
        elif not regression and info.task != "custom" and base in REGRESSION_METRICS:
            found.append(finding(
                "NW415", f"metric {display!r} scores values, but loss '{info.name}' makes this a "
                f"{info.task} run.", f"use {', '.join(CLASSIFICATION_METRICS)}", "metrics"))
    return found
