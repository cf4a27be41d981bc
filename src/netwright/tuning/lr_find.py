"""The learning-rate range test (Smith 2017, "Cyclical Learning Rates for Training Neural
Networks", section 3.3): train a copy of the model for a few hundred batches while the learning
rate grows exponentially, watch the loss, and suggest the learning rate to train with.

Everything runs on copies: the caller's model (weights, buffers, train/eval mode), optimizer and
random generators are exactly as they were afterwards. The batches go through the trainer's own
step (:mod:`netwright.training.step`), so any optimizer netwright builds, precision, clipping and
a custom ``step=`` behave as they do in ``fit``.
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import os
import random
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import atomic_write_bytes
from ..data.batches import make_batches
from ..data.sources import to_source
from ..errors import ConfigError, DataError, ModelSpecError, describe, did_you_mean
from ..losses import resolve_loss
from ..optim import build_optimizer, needs_closure, param_groups
from ..training.devices import resolve_device
from ..training.step import (NonFiniteLoss, StepContext, autocast_for, closure_step, is_finite,
                             make_clipper, step_output, train_step)
from ..util import model_device, plain_module

__all__ = ["lr_find", "lr_find_config", "LRFinderResult", "RULES", "suggest"]

RULES = ("steepest", "valley", "minimum")
# The options of fit that change what one step does; the rest (epochs, callbacks, ...) mean
# nothing for a range test.
_OPTIONS = ("weight_decay", "decay_norm_and_bias", "clip_grad", "precision", "device", "target",
            "num_workers")
_SKIP_START = 0.1  # the first tenth: the smoothed loss is still settling from its first batches
_SKIP_END = 5  # the last points: mostly the blow-up (fastai crops them too)


@dataclass
class LRFinderResult:
    """What the range test saw: the learning rates tried, the loss at each (smoothed and raw),
    the suggested learning rate and the rule that chose it, and why the test ended."""

    lrs: list[float]
    losses: list[float]  # exponentially smoothed, bias-corrected (the curve to read)
    raw_losses: list[float]
    suggestion: float
    rule: str  # a sentence: which rule chose the suggestion
    stopped: str  # why the test ended: diverged at lr X / reached end_lr
    rule_name: str = "steepest"
    suggestion_index: int = 0
    start_lr: float = 0.0
    end_lr: float = 0.0
    steps: int = 0
    plot_path: Path | None = None
    optimizer: str = ""
    alternatives: dict = field(default_factory=dict)  # every rule's lr, for comparison
    config: str | None = None  # the config file the test ran on (lr_find_config)

    def to_dict(self) -> dict:
        return {"lrs": list(self.lrs), "losses": list(self.losses),
                "raw_losses": list(self.raw_losses), "suggestion": self.suggestion,
                "rule": self.rule, "rule_name": self.rule_name, "stopped": self.stopped,
                "start_lr": self.start_lr, "end_lr": self.end_lr, "steps": self.steps,
                "optimizer": self.optimizer, "alternatives": dict(self.alternatives),
                "plot": str(self.plot_path) if self.plot_path is not None else None}

    def plot(self, path: str | os.PathLike) -> Path:
        """Write a PNG: the smoothed loss (and, faint, the raw one) against the learning rate on
        a log axis, with the suggestion marked. Returns the path."""
        import matplotlib

        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        try:
            ax.plot(self.lrs, self.raw_losses, color="0.75", linewidth=0.8, label="loss (raw)")
            ax.plot(self.lrs, self.losses, color="C0", linewidth=1.8, label="loss (smoothed)")
            ax.axvline(self.suggestion, color="C3", linestyle="--", linewidth=1.2)
            y = self.losses[self.suggestion_index] if self.losses else 0.0
            ax.plot([self.suggestion], [y], "o", color="C3",
                    label=f"suggestion: lr={self.suggestion:.3g} ({self.rule_name})")
            ax.set_xscale("log")
            finite = [v for v in self.losses if math.isfinite(v)]
            if finite:  # the blow-up at the end would squash the interesting part
                low = min(finite + [v for v in self.raw_losses if math.isfinite(v)])
                first = finite[0]
                top = max(first, low) + 0.25 * abs(max(first, low) - low) + 1e-12
                ax.set_ylim(low - 0.1 * (top - low), top)
            ax.set_xlabel("learning rate (log scale)")
            ax.set_ylabel("training loss")
            ax.set_title(f"LR range test ({self.optimizer}): {self.stopped.split(' (')[0]}", fontsize=9)
            ax.legend(fontsize=8)
            ax.grid(True, which="both", alpha=0.25)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
        finally:
            plt.close(fig)
        path = atomic_write_bytes(path, buf.getvalue())
        self.plot_path = Path(path)
        return self.plot_path

    def summary(self) -> str:
        lines = [f"lr_find ({self.optimizer}): {len(self.lrs)} steps, lr {self.start_lr:.3g} -> "
                 f"{self.lrs[-1] if self.lrs else self.end_lr:.3g}; {self.stopped}.",
                 f"suggested learning rate: {self.suggestion:.3g}",
                 f"  rule: {self.rule}"]
        others = ", ".join(f"{k} {v:.3g}" for k, v in self.alternatives.items() if k != self.rule_name)
        if others:
            lines.append(f"  (other rules: {others})")
        if self.plot_path is not None:
            lines.append(f"plot: {self.plot_path}")
        if self.config is not None:
            lines.append(f"use it: netwright train {self.config} optimizer.lr={self.suggestion:.3g}")
        else:
            lines.append(f"use it: fit(..., lr={self.suggestion:.3g})   (a config: netwright "
                         f"train CONFIG optimizer.lr={self.suggestion:.3g})")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"LRFinderResult(suggestion={self.suggestion:.3g}, rule={self.rule_name!r}, "
                f"steps={len(self.lrs)}, stopped={self.stopped!r})")


# -- the suggestion rules ------------------------------------------------------------------

def _window(n: int) -> tuple[int, int]:
    """The part of the curve the rules read: without the settling start and the blow-up."""
    lo = int(n * _SKIP_START)
    hi = n - _SKIP_END if n - _SKIP_END - lo >= 5 else n
    return lo, hi


def _valley(losses: np.ndarray) -> int:
    """fastai's ``valley``: the longest decreasing (not necessarily contiguous) run of the
    smoothed loss, and the point half-way along it."""
    n = len(losses)
    lds = [1] * n
    start = end = 0
    for i in range(1, n):
        for j in range(i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
        if lds[end] < lds[i]:
            end = i
            start = end - lds[end]
    sections = (end - start) / 3
    return max(0, start + int(sections) + int(sections / 2))


def _steepest(log_lrs: np.ndarray, losses: np.ndarray) -> int:
    """The steepest fall of the smoothed loss (per decade of lr), looked for only before its
    minimum: a steep point past the minimum is the blow-up, not learning."""
    stop = int(np.argmin(losses)) + 1
    if stop < 3:
        return 0
    grad = np.gradient(losses[:stop], log_lrs[:stop])
    return int(np.argmin(grad))


_MINIMUM_FACTOR = 10.0


def suggest(lrs: Sequence[float], losses: Sequence[float], rule: str = "steepest") -> tuple[float, int, dict]:
    """The learning rate that ``rule`` reads from a (smoothed) range-test curve, its index, and
    every rule's choice ``{rule: lr}``.

    >>> lrs = np.logspace(-5, 0, 60); loss = 2 - np.tanh(np.log10(lrs) + 2.5) + np.where(lrs > 0.3, 5, 0)
    >>> lr, i, every = suggest(lrs, loss)
    >>> round(float(np.log10(lr)), 1), sorted(every)
    (-2.5, ['minimum', 'steepest', 'valley'])
    """
    if rule not in RULES:
        raise ConfigError(f"rule: expected one of {', '.join(RULES)}; received {rule!r}."
                          f"{did_you_mean(str(rule), RULES)}")
    lrs_a = np.asarray(lrs, dtype=float)
    loss_a = np.asarray(losses, dtype=float)
    n = len(loss_a)
    if n == 0:
        raise ConfigError("lr_find: no loss was recorded, so there is nothing to suggest from.")
    finite = np.isfinite(loss_a)
    if not finite.all():  # a NaN at the end is the blow-up
        n = int(np.argmin(finite)) or n
        lrs_a, loss_a = lrs_a[:n], loss_a[:n]
    lo, hi = _window(n)
    part_lr, part_loss = lrs_a[lo:hi], loss_a[lo:hi]
    logs = np.log10(part_lr)
    picks = {
        "valley": lo + _valley(part_loss),
        "steepest": None,
        "minimum": lo + int(np.argmin(part_loss)),
    }
    i_steep = lo + _steepest(logs, part_loss)
    choices = {"valley": float(lrs_a[picks["valley"]]),
               "steepest": float(lrs_a[i_steep]),
               "minimum": float(lrs_a[picks["minimum"]]) / _MINIMUM_FACTOR}
    picks["steepest"] = i_steep
    index = picks[rule]
    if rule == "minimum":  # the index of the lr closest to min/10, for marking the plot
        index = int(np.argmin(np.abs(np.log(lrs_a[:n]) - math.log(choices[rule]))))
    return choices[rule], int(index), choices


def _rule_sentence(rule: str) -> str:
    return {
        "valley": "valley: the longest stretch over which the smoothed loss keeps falling, and "
                  "the lr half-way along it (fastai's 'valley'; it sits well before the minimum "
                  "and does not depend on one noisy slope)",
        "steepest": "steepest descent of the smoothed loss before its minimum (the lr where it "
                    "falls fastest per decade of lr; past the minimum a steep stretch is the "
                    "blow-up, so it is not looked at)",
        "minimum": f"the lr of the smallest smoothed loss ÷ {_MINIMUM_FACTOR:g} (the classic rule "
                   f"of thumb)",
    }[rule]


# -- nothing of the caller changes --------------------------------------------------------

@contextlib.contextmanager
def _kept_random_state() -> Iterator[None]:
    """Put back torch's (CPU and every CUDA device's), NumPy's and Python's generators."""
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


def _optimizer_on(spec: Any, model: nn.Module, lr: float, weight_decay: float,
                  decay_norm_and_bias: bool) -> torch.optim.Optimizer:
    """A fresh optimizer of the caller's kind on the copy: for an instance, the same class with
    the instance's own settings (``optimizer.defaults``: momentum, betas, ...), never the
    instance itself (its state and parameters are the caller's)."""
    if isinstance(spec, torch.optim.Optimizer):
        cls = type(spec)
        options = {k: v for k, v in spec.defaults.items()
                   if k not in ("lr", "fused", "foreach", "capturable", "differentiable")}
        wd = options.pop("weight_decay", weight_decay)
        groups = ([{"params": [p for p in model.parameters() if p.requires_grad]}]
                  if needs_closure(cls) else param_groups(model, wd, decay_norm_and_bias))
        try:
            return cls(groups, lr=lr, **options)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"optimizer: could not make a fresh {cls.__name__} for the test "
                              f"from the instance's settings {options}: {exc}. Fix: pass its "
                              f"class or name with its options instead.") from exc
    if isinstance(spec, Mapping):
        spec = {k: v for k, v in spec.items() if k != "lr"}  # the test sets the lr itself
    return build_optimizer(spec, model, lr=lr, weight_decay=weight_decay,
                           decay_norm_and_bias=decay_norm_and_bias)


def _cycle(batches: Any) -> Iterator[tuple[Any, Any]]:
    """The batches over and over, a new seeded order each pass."""
    epoch = 0
    while True:
        batches.set_epoch(epoch)
        seen = False
        for batch in batches:
            seen = True
            yield batch
        if not seen:
            raise DataError("lr_find: the data gave no batch. Fix: pass data with at least one "
                            "sample (and targets).")
        epoch += 1


def _check_range(steps: Any, start_lr: Any, end_lr: Any, smooth: Any, diverge: Any) -> None:
    problems = []
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 10:
        problems.append(f"steps: expected an integer >= 10 (one batch each); received {steps!r}. "
                        f"Fix: steps=100 or more (200 is the default).")
    for name, value in (("start_lr", start_lr), ("end_lr", end_lr)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0 \
                or not math.isfinite(value):
            problems.append(f"{name}: expected a positive learning rate; received {value!r}. "
                            f"Fix: e.g. start_lr=1e-7, end_lr=10.")
    if not problems and start_lr >= end_lr:
        problems.append(f"start_lr ({start_lr:g}) must be below end_lr ({end_lr:g}): the test "
                        f"grows the learning rate. Fix: e.g. start_lr=1e-7, end_lr=10.")
    if isinstance(smooth, bool) or not isinstance(smooth, (int, float)) or not 0 < smooth <= 1:
        problems.append(f"smooth: expected the weight of each new loss, in (0, 1]; received "
                        f"{smooth!r}. Fix: smooth=0.05 (1 means no smoothing).")
    if isinstance(diverge, bool) or not isinstance(diverge, (int, float)) or not diverge > 1:
        problems.append(f"diverge: expected a factor > 1 over the best smoothed loss; received "
                        f"{diverge!r}. Fix: diverge=4.")
    if problems:
        raise ConfigError("lr_find: " + " ".join(problems))


def lr_find(model: nn.Module, data: Any, *, loss: Any, optimizer: Any = "adam",
            start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 200, batch_size: int = 32,
            smooth: float = 0.05, diverge: float = 4.0, step: Callable | None = None,
            rule: str = "steepest", seed: int = 0, **options: Any) -> LRFinderResult:
    """The learning-rate range test on a copy of ``model``: one batch per step, the lr growing
    exponentially from ``start_lr`` to ``end_lr``, the loss smoothed exponentially (``smooth``:
    the weight of each new batch, bias-corrected); it stops early when the smoothed loss
    exceeds ``diverge`` x its best (or is NaN). Nothing of the caller changes: the model's
    weights, buffers and mode, an optimizer instance and every random generator are as before.

    ``optimizer``: a name, ``{"name": ..., **options}``, a torch optimizer class or instance (a
    fresh one of its class with its settings is made). ``step``: a custom step, as ``fit``
    takes it. ``rule``: ``"steepest"`` (default: the steepest fall of the smoothed loss before
    its minimum), ``"valley"`` (fastai's) or ``"minimum"`` (min-loss lr / 10); docs/tuning.md
    gives the measurements that chose the default. Other options, as in ``fit``: weight_decay,
    decay_norm_and_bias, clip_grad, precision, device, target, num_workers.

    >>> import torch, torch.nn as nn
    >>> X = torch.randn(256, 4); y = (X[:, 0] > 0).long()
    >>> result = lr_find(nn.Linear(4, 2), (X, y), loss="cross_entropy", steps=50, end_lr=1.0)
    >>> 1e-7 < result.suggestion < 1.0, len(result.lrs) <= 50
    (True, True)
    """
    _check_range(steps, start_lr, end_lr, smooth, diverge)
    if rule not in RULES:
        raise ConfigError(f"rule: expected one of {', '.join(RULES)}; received {rule!r}."
                          f"{did_you_mean(str(rule), RULES)}")
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model: expected a torch.nn.Module, received {describe(model)}. "
                             f"Fix: pass an instance, e.g. SimpleNet() rather than SimpleNet.")
    unknown = [k for k in options if k not in _OPTIONS]
    if unknown:
        raise ConfigError("lr_find: " + " ".join(
            f"{k}: unknown option.{did_you_mean(k, _OPTIONS)}" for k in unknown)
            + f" Options: {', '.join(_OPTIONS)}.")
    if step is not None and not callable(step):
        raise ConfigError(f"step: expected a function (ctx, x, y) -> loss, received {describe(step)}.")
    with _kept_random_state():
        return _run(model, data, loss=loss, optimizer=optimizer, start_lr=float(start_lr),
                    end_lr=float(end_lr), steps=steps, batch_size=batch_size, smooth=float(smooth),
                    diverge=float(diverge), step=step, rule=rule, seed=seed, options=options)


def _run(model: nn.Module, data: Any, *, loss: Any, optimizer: Any, start_lr: float, end_lr: float,
         steps: int, batch_size: int, smooth: float, diverge: float, step: Callable | None,
         rule: str, seed: int, options: dict) -> LRFinderResult:
    torch.manual_seed(seed)  # dropout and the like in the copy; put back afterwards
    device = (resolve_device(options["device"]) if options.get("device") not in (None, "auto")
              else model_device(model) if any(True for _ in model.parameters())
              else resolve_device("auto"))
    work = copy.deepcopy(plain_module(model)).to(device)
    work.train()
    loss_fn, _ = resolve_loss(loss)
    if isinstance(loss_fn, nn.Module):  # a module of the caller's (with weights, say): a copy too
        loss_fn = copy.deepcopy(loss_fn).to(device)
    opt = _optimizer_on(optimizer, work, start_lr, float(options.get("weight_decay", 0.0)),
                        bool(options.get("decay_norm_and_bias", True)))
    source = to_source(data, arg="data", target=options.get("target"))
    generator = torch.Generator().manual_seed(int(seed))
    batches = make_batches(source, batch_size=batch_size, shuffle=True, device=device,
                           generator=generator, num_workers=int(options.get("num_workers", 0)))
    precision = str(options.get("precision", "32"))
    params = [p for g in opt.param_groups for p in g["params"]]
    ctx = StepContext(work, loss_fn, opt, autocast_for(precision, device),
                      torch.amp.GradScaler(device.type) if precision == "16-mixed" else None,
                      make_clipper(options.get("clip_grad")), params, check_finite=True)
    step_fn = step if step is not None else (closure_step if needs_closure(opt) else train_step)

    ratio = end_lr / start_lr
    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    stopped = f"reached end_lr {end_lr:g}"
    beta = 1.0 - smooth
    opt.zero_grad(set_to_none=True)
    batch_iter = _cycle(batches)
    for i in range(steps):
        lr = start_lr * ratio ** (i / (steps - 1))
        for group in opt.param_groups:
            group["lr"] = lr
        x, y = next(batch_iter)
        try:
            out = step_fn(ctx, x, y)
            value, _ = step_output(out, 0, i) if step is not None else (out, None)
            if not is_finite(value):
                raise NonFiniteLoss(value)
        except NonFiniteLoss:
            stopped = f"diverged at lr {lr:.3g} (the loss became NaN/Inf at step {i + 1} of {steps})"
            break
        current = float(value)
        avg = beta * avg + smooth * current
        smooth_loss = avg / (1.0 - beta ** (i + 1))  # bias correction: avg starts at 0
        lrs.append(lr)
        raw.append(current)
        smoothed.append(smooth_loss)
        best = min(best, smooth_loss)
        # "diverge x its best", measured from the best so that a loss that can be 0 or negative
        # (a custom loss) is not taken for a divergence: best + (diverge - 1) * |best|.
        if i > 0 and smooth_loss - best > (diverge - 1) * abs(best) and smooth_loss != best:
            stopped = (f"diverged at lr {lr:.3g} (the smoothed loss passed {diverge:g} x its "
                       f"best at step {i + 1} of {steps})")
            break
    if len(lrs) < 3:
        raise ConfigError(
            f"lr_find: the loss diverged after {len(lrs)} step(s), at lr {start_lr * ratio ** (len(lrs) / (steps - 1)):.3g}; "
            f"there is no curve to read. Fix: a lower start_lr (now {start_lr:g}), or look at the "
            f"data and the model with `netwright doctor`.")
    value, index, every = suggest(lrs, smoothed, rule)
    name = type(opt).__name__
    return LRFinderResult(lrs, smoothed, raw, value, _rule_sentence(rule), stopped, rule, index,
                          start_lr, end_lr, steps, None, name, every)


def lr_find_config(config: Any, overrides: Sequence[str] = (), *, steps: int = 200,
                   start_lr: float = 1e-7, end_lr: float = 10.0,
                   out: str | os.PathLike | None = None, trust_code: bool = False,
                   verbose: int = 1, rule: str = "steepest") -> LRFinderResult:
    """``netwright lr-find CONFIG``: the range test on a config's model (built and seeded as
    ``netwright train`` builds it), loss, optimizer (the lr aside) and training split; the plot
    is written to ``out`` or ``<run_dir>/<name>-lr_find.png``.

    >>> import tempfile
    >>> r = lr_find_config({"model": {"zoo": "mlp", "hidden": [16]}, "data": {"source": "iris"},
    ...                     "loss": "cross_entropy", "run_dir": tempfile.mkdtemp()}, steps=30,
    ...                    verbose=0, trust_code=True)
    >>> r.plot_path.name
    'run-lr_find.png'
    """
    from ..config import load_config
    from ..data.prepare import prepare_data
    from ..runner import build_model, check_model_classes
    from ..training.devices import seed_everything

    _check_range(steps, start_lr, end_lr, 0.05, 4.0)
    cfg = load_config(config, overrides)
    if not trust_code and not isinstance(config, Mapping):  # refused before any data is read
        check_model_classes(cfg.model, f"config file {str(config)!r}")
    _, info = resolve_loss(cfg.loss)
    data = prepare_data(cfg.data, info.task, info.name)
    with _kept_random_state():
        # The same first weights `netwright train` starts from: it seeds just before building.
        seed_everything(int(cfg.train.seed if cfg.train.seed is not None else 0))
        model = build_model(cfg, data, trust_code=trust_code, verbose=verbose)
    opt = cfg.optimizer.model_dump()
    opt.pop("lr")
    wd, dnb = opt.pop("weight_decay"), opt.pop("decay_norm_and_bias")
    train = cfg.train
    workers = train.num_workers if "num_workers" in train.model_fields_set else (data.workers or 0)
    if verbose:
        print(f"lr_find: {cfg.name}: {steps} steps, lr {start_lr:g} -> {end_lr:g}, optimizer "
              f"{opt['name']}, batch_size {train.batch_size}", file=sys.stderr)
    result = lr_find(model, data.train, loss=cfg.loss, optimizer=opt, start_lr=start_lr,
                     end_lr=end_lr, steps=steps, batch_size=train.batch_size, rule=rule,
                     seed=int(train.seed if train.seed is not None else 0), weight_decay=wd,
                     decay_norm_and_bias=dnb, clip_grad=train.clip_grad, precision=train.precision,
                     device=train.device, num_workers=workers)
    if isinstance(config, (str, os.PathLike)):
        result.config = " ".join([str(config), *overrides])
    path = Path(out) if out is not None else Path(cfg.run_dir) / f"{cfg.name}-lr_find.png"
    try:
        result.plot(path)
    except ImportError as exc:  # pragma: no cover - matplotlib comes with the report extra
        raise ConfigError(f"lr_find: the plot needs matplotlib ({exc}). Fix: pip install "
                          f"'netwright[report]'.") from exc
    except OSError as exc:
        raise ConfigError(f"lr_find: cannot write the plot to {path}: {exc}. Fix: --out a "
                          f"writable path.") from exc
    return result
