"""Optimizers and learning-rate schedulers by name, and when each scheduler steps.

The moment a scheduler steps is part of its meaning: ``onecycle`` and warm-up step after every
optimizer step, ``step``/``multistep``/``exponential``/``cosine`` after every epoch, and
``reduce_on_plateau`` after validation with the monitored value. :class:`Schedule` carries that
moment so the training loop never has to guess.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, did_you_mean

__all__ = ["OPTIMIZERS", "SCHEDULERS", "SCHEDULER_ALIASES", "build_optimizer", "build_scheduler",
           "Schedule", "metric_mode", "needs_closure", "scheduler_key"]

OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop", "adagrad", "lbfgs")
SCHEDULERS = ("step", "multistep", "exponential", "cosine", "onecycle", "reduce_on_plateau")
SCHEDULER_ALIASES = {"steplr": "step", "exponentiallr": "exponential", "plateau": "reduce_on_plateau",
                  "reducelronplateau": "reduce_on_plateau", "one_cycle": "onecycle",
                  "cosine_annealing": "cosine", "multisteplr": "multistep"}

# Norm layers whose weights are scales, not features: decaying them toward 0 only hurts.
_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm)
if hasattr(nn, "RMSNorm"):
    _NORMS = _NORMS + (nn.RMSNorm,)


def _name_and_options(spec: Any, what: str, names: tuple[str, ...]) -> tuple[str, dict]:
    if isinstance(spec, Mapping):
        options = dict(spec)
        if "name" not in options:
            raise ConfigError(
                f"{what}: a mapping needs a 'name' key; received keys {sorted(options)}. "
                f"Fix: {{'name': '{names[0]}', ...}}; names: {', '.join(names)}."
            )
        return str(options.pop("name")), options
    return str(spec), {}


def param_groups(model: nn.Module, weight_decay: float, decay_norm_and_bias: bool,
                 lr_factors: Mapping[int, float] | None = None) -> list[dict]:
    """Split parameters into a decayed group and a group (biases, norm weights) without decay.

    ``lr_factors`` (``{id(param): factor}``) puts those parameters, trainable now or not, in
    groups of their own marked ``"lr_factor"`` (split by decay the same way), after the others:
    :func:`build_optimizer` gives them ``lr * factor``.

    >>> groups = param_groups(nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2)), 0.01, False)
    >>> [len(g["params"]) for g in groups]
    [1, 3]
    """
    factors = dict(lr_factors or {})
    params = [p for p in model.parameters() if p.requires_grad or id(p) in factors]
    no_decay: set[int] = set()
    if not (decay_norm_and_bias or weight_decay == 0):
        for module in model.modules():
            for pname, p in module.named_parameters(recurse=False):
                if isinstance(module, _NORMS) or pname.endswith("bias"):
                    no_decay.add(id(p))
    groups = []
    for factor in [None, *dict.fromkeys(factors[id(p)] for p in params if id(p) in factors)]:
        chosen = [p for p in params if factors.get(id(p)) == factor]
        marked = {} if factor is None else {"lr_factor": factor}
        decay = [p for p in chosen if id(p) not in no_decay]
        rest = [p for p in chosen if id(p) in no_decay]
        groups += [g for g in ({"params": decay, "weight_decay": weight_decay, **marked},
                               {"params": rest, "weight_decay": 0.0, **marked}) if g["params"]]
    return groups or [{"params": [], "weight_decay": weight_decay}]


def build_optimizer(
    spec: Any,
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float = 0.0,
    decay_norm_and_bias: bool = True,
    lr_factors: Mapping[int, float] | None = None,
) -> torch.optim.Optimizer:
    """An optimizer from a name, ``{"name": ..., **options}``, a ``torch.optim`` class or instance.

    ``decay_norm_and_bias=False`` exempts biases and norm-layer weights from weight decay.
    ``lr_factors`` (``{id(param): factor}``) gives those parameters groups of their own with
    ``lr * factor`` (schedulers then scale them too); they are included even while they have
    ``requires_grad=False`` (fine-tuning: torch's optimizers skip a parameter without a
    gradient, so a frozen one is neither updated nor decayed until it trains).
    An instance is used as is (its own lr and parameters win).

    >>> opt = build_optimizer({"name": "sgd", "momentum": 0.9, "nesterov": True},
    ...                       nn.Linear(3, 1), lr=0.1)
    >>> type(opt).__name__, opt.param_groups[0]["momentum"]
    ('SGD', 0.9)
    """
    if isinstance(spec, torch.optim.Optimizer):
        if lr_factors:
            raise ConfigError(
                f"optimizer: fine-tuning gives the frozen parameters a group of their own with a "
                f"lower lr, which needs netwright to build the optimizer; received a "
                f"{type(spec).__name__} instance. Fix: pass its name or class with its options, "
                f"e.g. optimizer={{'name': 'adamw', 'betas': [0.9, 0.99]}}."
            )
        return spec
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise ConfigError(
            f"lr: expected a positive number, received {lr!r}. Fix: e.g. lr=1e-3 for adam, "
            f"lr=0.1 for sgd."
        )
    if not isinstance(weight_decay, (int, float)) or weight_decay < 0:
        raise ConfigError(f"weight_decay: expected a number >= 0, received {weight_decay!r}.")
    if isinstance(spec, type) and issubclass(spec, torch.optim.Optimizer):
        cls, options = spec, {}
    else:
        name, options = _name_and_options(spec, "optimizer", OPTIMIZERS)
        key = name.strip().lower()
        classes = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW,
                   "rmsprop": torch.optim.RMSprop, "adagrad": torch.optim.Adagrad,
                   "lbfgs": torch.optim.LBFGS}
        if key not in classes:
            raise ConfigError(
                f"optimizer: unknown name {name!r}.{did_you_mean(key, OPTIMIZERS)} Expected one "
                f"of: {', '.join(OPTIMIZERS)}; or a torch.optim class or instance."
            )
        cls = classes[key]
    options.setdefault("lr", lr)
    wd = options.pop("weight_decay", weight_decay)
    if needs_closure(cls):
        # L-BFGS keeps one flat history over all parameters: no parameter groups, no decay.
        if wd or lr_factors:
            what = f"weight_decay={wd}" if wd else "fine-tuning (a group with its own lr)"
            raise ConfigError(f"optimizer {cls.__name__}: {what} is not supported (it takes no "
                              f"parameter groups). Fix: "
                              f"{'weight_decay=0' if wd else 'another optimizer, e.g. adamw'}.")
        groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    else:
        groups = param_groups(model, wd, decay_norm_and_bias, lr_factors)
        for group in groups:
            if "lr_factor" in group:
                group["lr"] = options["lr"] * group.pop("lr_factor")
    if not any(g["params"] for g in groups):
        raise ConfigError(
            f"optimizer: the model {type(model).__name__} has no trainable parameters "
            f"(none with requires_grad=True). Fix: unfreeze some layers before training."
        )
    if _fused_possible(cls, groups, options):
        try:
            # torch's fused kernels run the whole update in one pass: 2-3x faster steps than
            # the default per-tensor loop on CPU (benchmarks/overhead.py), same algorithm.
            return cls(groups, **options, fused=True)
        except (RuntimeError, ValueError, TypeError):
            pass  # dtype/device/torch version without a fused kernel: use the default
    try:
        return cls(groups, **options)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"optimizer {cls.__name__}: {exc}. Fix: use the keyword arguments of "
            f"torch.optim.{cls.__name__}."
        ) from exc


def needs_closure(optimizer: Any) -> bool:
    """Whether ``optimizer.step`` (an optimizer or its class) requires a closure that
    re-evaluates the loss, as :class:`torch.optim.LBFGS` does.

    >>> needs_closure(torch.optim.LBFGS), needs_closure(torch.optim.Adam)
    (True, False)
    """
    import inspect

    step = getattr(optimizer, "step", None)
    try:
        param = inspect.signature(step).parameters.get("closure")
    except (TypeError, ValueError):
        return False
    return param is not None and param.default is inspect.Parameter.empty


def scheduler_key(name: Any) -> str:
    """A scheduler name in canonical form (``"StepLR"`` -> ``"step"``)."""
    key = str(name).strip().lower().replace("-", "_")
    return SCHEDULER_ALIASES.get(key, key)


_FUSED = ("Adam", "AdamW", "SGD", "Adagrad")


def _fused_possible(cls: type, groups: list[dict], options: dict) -> bool:
    """Whether to ask for ``fused=True``: a torch optimizer that has a fused kernel, options
    that do not choose an implementation, and floating parameters on one supported device."""
    if cls.__module__.split(".")[:2] != ["torch", "optim"] or cls.__name__ not in _FUSED:
        return False
    if any(k in options for k in ("fused", "foreach", "differentiable", "capturable")):
        return False
    try:
        from torch.optim.optimizer import _get_fused_kernels_supported_devices

        supported = set(_get_fused_kernels_supported_devices())
    except ImportError:
        return False
    params = [p for g in groups for p in g["params"]]
    devices = {p.device.type for p in params}
    return (len(devices) == 1 and devices <= supported
            and all(p.is_floating_point() and not p.is_sparse for p in params))


def metric_mode(monitor: str) -> str:
    """``"min"`` for losses and errors, ``"max"`` for scores such as accuracy or f1.

    >>> metric_mode("val_loss"), metric_mode("val_accuracy")
    ('min', 'max')
    """
    lowered = monitor.lower()
    return "min" if any(k in lowered for k in ("loss", "mse", "mae", "rmse", "error")) else "max"


@dataclass
class Schedule:
    """A scheduler and the moment it steps: ``"step"`` (after each optimizer step), ``"epoch"``
    or ``"plateau"`` (after validation, given ``logs[monitor]``). ``warmup`` is an optional
    per-step linear warm-up chained in front of it."""

    scheduler: Any = None
    interval: str = "epoch"
    monitor: str | None = None
    warmup: Any = None
    name: str = ""
    options: dict = field(default_factory=dict)

    def step_batch(self) -> None:
        if self.warmup is not None and self.warmup.last_epoch < self.warmup.total_iters:
            self.warmup.step()
        if self.interval == "step" and self.scheduler is not None:
            self.scheduler.step()

    def step_epoch(self, logs: Mapping[str, float]) -> None:
        if self.scheduler is None:
            return
        if self.interval == "epoch":
            self.scheduler.step()
        elif self.interval == "plateau":
            self.scheduler.step(logs[self.monitor])

    @property
    def per_batch(self) -> bool:
        return self.warmup is not None or (self.interval == "step" and self.scheduler is not None)

    def state_dict(self) -> dict:
        return {
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "warmup": self.warmup.state_dict() if self.warmup is not None else None,
        }

    def load_state_dict(self, state: Mapping) -> None:
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.warmup is not None and state.get("warmup") is not None:
            self.warmup.load_state_dict(state["warmup"])


def build_scheduler(
    spec: Any,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int,
    steps_per_epoch: int,
    default_monitor: str = "val_loss",
) -> Schedule:
    """A :class:`Schedule` from a name, ``{"name": ..., **options}``, or a torch scheduler.

    Options are torch's, plus ``warmup_steps`` (linear warm-up over that many optimizer steps)
    and, for ``reduce_on_plateau``, ``monitor`` (any logged value: ``val_loss``,
    ``val_accuracy``, ``train_loss`` ...; ``mode`` follows from its name unless given).
    A torch scheduler instance steps per epoch unless given as ``{"scheduler": obj,
    "interval": "step"}``.

    >>> opt = torch.optim.SGD(nn.Linear(2, 1).parameters(), lr=0.1)
    >>> build_scheduler("onecycle", opt, epochs=3, steps_per_epoch=10).interval
    'step'
    """
    if spec is None:
        return Schedule()
    if isinstance(spec, Mapping) and "scheduler" in spec:
        interval = spec.get("interval", "epoch")
        if interval not in ("step", "epoch", "plateau"):
            raise ConfigError(
                f"scheduler.interval: expected 'step', 'epoch' or 'plateau', received {interval!r}."
            )
        sched = spec["scheduler"]
        monitor = spec.get("monitor", default_monitor)
        if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
            interval = "plateau"
        return Schedule(sched, interval, monitor, name=type(sched).__name__)
    if isinstance(spec, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return Schedule(spec, "plateau", default_monitor, name="ReduceLROnPlateau")
    if isinstance(spec, torch.optim.lr_scheduler.LRScheduler):
        return Schedule(spec, "epoch", name=type(spec).__name__)
    name, options = _name_and_options(spec, "scheduler", SCHEDULERS)
    key = scheduler_key(name)
    if key not in SCHEDULERS:
        raise ConfigError(
            f"scheduler: unknown name {name!r}.{did_you_mean(key, SCHEDULERS)} Expected one of: "
            f"{', '.join(SCHEDULERS)}; or a torch.optim.lr_scheduler instance."
        )
    raw = dict(options)
    warmup_steps = int(options.pop("warmup_steps", 0) or 0)
    if warmup_steps < 0:
        raise ConfigError(f"scheduler.warmup_steps: expected a number >= 0, received {warmup_steps}.")
    if warmup_steps and key == "onecycle":
        raise ConfigError(
            "scheduler 'onecycle' has its own warm-up (pct_start); received warmup_steps too. "
            "Fix: drop warmup_steps, or set pct_start."
        )
    warmup = None
    if warmup_steps:
        # Created first so it records each group's base lr as 'initial_lr'; the main scheduler is
        # chained after it and, like LinearLR, scales the current lr multiplicatively.
        warmup = torch.optim.lr_scheduler.LinearLR(
            optimizer, start_factor=1.0 / (warmup_steps + 1), end_factor=1.0, total_iters=warmup_steps
        )
    lrs = torch.optim.lr_scheduler
    monitor = None
    try:
        if key == "step":
            options.setdefault("step_size", max(1, epochs // 3))
            sched, interval = lrs.StepLR(optimizer, **options), "epoch"
        elif key == "multistep":
            if "milestones" not in options:
                raise ConfigError(
                    "scheduler 'multistep': the option 'milestones' is required (the epochs at "
                    "which the lr is multiplied by gamma). Fix: {'name': 'multistep', "
                    "'milestones': [30, 60]}."
                )
            sched, interval = lrs.MultiStepLR(optimizer, **options), "epoch"
        elif key == "exponential":
            options.setdefault("gamma", 0.95)
            sched, interval = lrs.ExponentialLR(optimizer, **options), "epoch"
        elif key == "cosine":
            options.setdefault("T_max", epochs)
            sched, interval = lrs.CosineAnnealingLR(optimizer, **options), "epoch"
        elif key == "onecycle":
            options.setdefault("max_lr", [g["lr"] for g in optimizer.param_groups])
            options.setdefault("total_steps", epochs * steps_per_epoch)
            sched, interval = lrs.OneCycleLR(optimizer, **options), "step"
        else:  # reduce_on_plateau
            monitor = options.pop("monitor", default_monitor)
            options.setdefault("mode", metric_mode(monitor))
            sched, interval = lrs.ReduceLROnPlateau(optimizer, **options), "plateau"
    except TypeError as exc:
        raise ConfigError(
            f"scheduler '{key}': {exc}. Fix: use the keyword arguments of its torch class."
        ) from exc
    return Schedule(sched, interval, monitor, warmup, key, raw)
