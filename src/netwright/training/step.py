"""The training step and the evaluation step: the whole of what happens to one batch.

Read ``train_step`` top to bottom and you have read netwright's training: forward under the
chosen precision, loss, backward (scaled for float16), and, at the end of an accumulation
window, unscale → clip → optimizer step → zero the gradients.
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError, describe
from ..util import call_model  # re-exported: the Trainer and user steps call it from here

__all__ = ["StepContext", "NonFiniteLoss", "train_step", "closure_step", "eval_step", "call_model", "autocast_for", "PRECISIONS",
           "make_clipper", "step_output", "batch_stats", "is_finite", "finish_window", "accumulation_plan", "mean_loss"]

PRECISIONS = ("32", "bf16-mixed", "16-mixed")


def autocast_for(precision: str, device: torch.device) -> Callable[[], contextlib.AbstractContextManager]:
    """A factory of the autocast context for ``precision`` on ``device``."""
    if precision not in PRECISIONS:
        raise ConfigError(
            f"precision: expected one of {', '.join(PRECISIONS)}; received {precision!r}. "
            f"Fix: '32' (full precision), 'bf16-mixed' (CPU or CUDA), '16-mixed' (CUDA)."
        )
    if precision == "32":
        return contextlib.nullcontext
    if precision == "16-mixed" and device.type != "cuda":
        raise ConfigError(
            f"precision '16-mixed' needs a CUDA device; this run is on {device.type}. "
            f"Fix: precision='bf16-mixed' on CPU, or device='cuda'."
        )
    dtype = torch.bfloat16 if precision == "bf16-mixed" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


def make_clipper(clip_grad: Any) -> Callable[[Any], Any] | None:
    """``clip_grad``: a max norm (float), ``{"norm": 1.0}`` (optionally with ``"norm_type"``)
    or ``{"value": 0.5}``."""
    if clip_grad is None:
        return None
    if isinstance(clip_grad, (int, float)) and not isinstance(clip_grad, bool):
        clip_grad = {"norm": float(clip_grad)}
    if isinstance(clip_grad, Mapping) and len({"norm", "value"} & set(clip_grad)) == 1:
        if "norm" in clip_grad and float(clip_grad["norm"]) > 0:
            max_norm = float(clip_grad["norm"])
            norm_type = float(clip_grad.get("norm_type", 2.0))
            return lambda params: torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
        if "value" in clip_grad and float(clip_grad["value"]) > 0:
            value = float(clip_grad["value"])
            return lambda params: torch.nn.utils.clip_grad_value_(params, value)
    raise ConfigError(
        f"clip_grad: expected a positive max norm (1.0), {{'norm': 1.0}} or {{'value': 0.5}}; "
        f"received {clip_grad!r}."
    )


@dataclass
class StepContext:
    """What every step of one fit needs; built once by the Trainer."""

    model: nn.Module
    loss_fn: Callable[..., torch.Tensor]
    optimizer: torch.optim.Optimizer
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    scaler: Any = None  # torch.amp.GradScaler for float16, else None
    clip: Callable[[Any], Any] | None = None
    params: list = None  # the parameters to clip
    check_finite: bool = False  # refuse a NaN/Inf loss before backward (raises NonFiniteLoss)


def is_finite(loss: torch.Tensor) -> bool:
    """Whether a loss holds no NaN/Inf: ``.item()`` for one value (0.4 us on the CPU, against
    7 us for ``torch.isfinite``: this runs every step)."""
    if loss.numel() == 1:
        return math.isfinite(loss.item())
    return bool(torch.isfinite(loss).all())


class NonFiniteLoss(Exception):
    """A step met a NaN or infinite loss before it touched the weights; the Trainer turns it
    into a :class:`~netwright.errors.NonFiniteLossError` or skips the batch (``on_nonfinite``)."""

    def __init__(self, loss: torch.Tensor):
        super().__init__(f"non-finite loss {float(loss)}")
        self.loss = loss


def train_step(ctx: StepContext, x: Any, y: torch.Tensor, *, scale: float = 1.0,
               step: bool = True) -> torch.Tensor:
    """One batch of training; returns the batch's (unscaled) loss, detached.

    With gradient accumulation the caller passes ``step=False`` for every batch but the last of
    a window, and ``scale`` = this batch's size / the window's size: the gradients then add up
    to exactly those of one batch holding the whole window, also for a shorter last window.
    """
    with ctx.autocast():
        out = call_model(ctx.model, x)
        loss = ctx.loss_fn(out, y)
    if ctx.check_finite and not is_finite(loss):
        raise NonFiniteLoss(loss.detach())
    scaled = loss * scale if scale != 1.0 else loss
    if ctx.scaler is not None:
        ctx.scaler.scale(scaled).backward()
    else:
        scaled.backward()
    if step:
        finish_window(ctx)
    return loss.detach()


def finish_window(ctx: StepContext) -> None:
    """The end of an accumulation window: unscale (float16) → clip → optimizer step (skipped by
    the scaler on overflow) → zero the gradients (to None, freeing their memory before the next
    forward)."""
    if ctx.clip is not None:
        if ctx.scaler is not None:
            ctx.scaler.unscale_(ctx.optimizer)  # clip the true gradients, not scaled ones
        ctx.clip(ctx.params)
    if ctx.scaler is not None:
        ctx.scaler.step(ctx.optimizer)  # skips the step if gradients overflowed
        ctx.scaler.update()
    else:
        ctx.optimizer.step()
    ctx.optimizer.zero_grad(set_to_none=True)


def closure_step(ctx: StepContext, x: Any, y: torch.Tensor, *, scale: float = 1.0,
                 step: bool = True) -> torch.Tensor:
    """The step for optimizers that re-evaluate the loss (:class:`torch.optim.LBFGS`): the
    forward, loss, backward and clipping run in a closure the optimizer calls as often as it
    needs. Returns the loss before the step, detached. (No accumulation: the closure must see
    the same batch each time.)"""
    def closure() -> torch.Tensor:
        ctx.optimizer.zero_grad(set_to_none=True)
        with ctx.autocast():
            loss = ctx.loss_fn(call_model(ctx.model, x), y)
        if ctx.check_finite and not is_finite(loss):
            raise NonFiniteLoss(loss.detach())
        loss.backward()
        if ctx.clip is not None:
            ctx.clip(ctx.params)
        return loss

    # L-BFGS moves the weights between closure calls: a NaN in a later call must not leave them
    # (or its history) half-way, so both are put back before the error goes up.
    saved = None
    if ctx.check_finite:
        saved = ([p.detach().clone() for p in ctx.params], copy.deepcopy(ctx.optimizer.state_dict()))
    try:
        loss = ctx.optimizer.step(closure)
    except NonFiniteLoss:
        if saved is not None:
            with torch.no_grad():
                for p, kept in zip(ctx.params, saved[0]):
                    p.copy_(kept)
            ctx.optimizer.load_state_dict(saved[1])
        ctx.optimizer.zero_grad(set_to_none=True)
        raise
    ctx.optimizer.zero_grad(set_to_none=True)
    return loss.detach()


def eval_step(model: nn.Module, x: Any, y: torch.Tensor | None, loss_fn: Callable | None,
              autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
              ) -> tuple[Any, torch.Tensor | None]:
    """Forward one batch (the caller holds ``inference_mode`` and ``eval()``); returns the
    output and the loss (None without a loss or targets)."""
    with autocast():
        out = call_model(model, x)
        loss = loss_fn(out, y) if (loss_fn is not None and y is not None) else None
    return out, loss


def step_output(out: Any, epoch: int, index: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A custom step's result, the loss tensor or ``{"loss": ..., **values_to_log}``, as the
    detached loss and the other values (each a one-value tensor on its device, for the epoch's
    means; kept only once the loss is known to be finite)."""
    values: dict[str, torch.Tensor] = {}
    if isinstance(out, Mapping):
        if "loss" not in out:
            raise ConfigError(f"step: returned a dict without 'loss' (keys {sorted(out)}) at epoch "
                              f"{epoch + 1}, step {index + 1}. Fix: return {{'loss': loss, ...}}.")
        values = {key: torch.as_tensor(value).detach().float().mean()
                  for key, value in out.items() if key != "loss"}
        out = out["loss"]
    if not isinstance(out, torch.Tensor) or out.numel() != 1:
        raise ConfigError(f"step: expected the batch's loss as a one-value tensor (or a dict with "
                          f"'loss'), received {describe(out)} at epoch {epoch + 1}, step "
                          f"{index + 1}. Fix: return loss.detach() from your step.")
    return out.detach().reshape(()), values


def batch_stats(t: Any) -> str:
    """A batch part in a few numbers: shape, mean, std, min, max, NaN and Inf counts."""
    if isinstance(t, (tuple, list)):
        return "(" + ", ".join(batch_stats(v) for v in t) + ")"
    if isinstance(t, Mapping):
        return "{" + ", ".join(f"{k}: {batch_stats(v)}" for k, v in t.items()) + "}"
    if not isinstance(t, torch.Tensor):
        return describe(t)
    shape = list(t.shape)
    if not t.is_floating_point():
        if t.numel() == 0:
            return f"shape {shape}"
        return f"shape {shape} {str(t.dtype).removeprefix('torch.')}, min {int(t.min())}, max {int(t.max())}"
    f = t.detach().float()
    nan, inf = int(torch.isnan(f).sum()), int(torch.isinf(f).sum())
    finite = f[torch.isfinite(f)]
    if finite.numel() == 0:
        return f"shape {shape}, all non-finite (NaN {nan}, Inf {inf})"
    return (f"shape {shape}, mean {float(finite.mean()):.4g}, std {float(finite.std()) if finite.numel() > 1 else 0.0:.4g}, "
            f"min {float(finite.min()):.4g}, max {float(finite.max()):.4g}, NaN {nan}, Inf {inf}")


def accumulation_plan(sizes: list[int] | None, nb: int, accumulate: int) -> list[tuple[float, bool]] | None:
    """Per batch: (its share of its accumulation window, whether the window ends there)."""
    if accumulate == 1:
        return None
    if sizes is None:
        sizes = [1] * nb  # unknown sizes: assume equal batches
    plan = []
    for start in range(0, len(sizes), accumulate):
        window = sizes[start:start + accumulate]
        total = sum(window)
        plan += [(s / total, j == len(window) - 1) for j, s in enumerate(window)]
    return plan


def mean_loss(losses: list[torch.Tensor], sizes: list[int] | None) -> float:
    if not losses:
        return float("nan")
    stacked = torch.stack(losses).float()
    if sizes is not None and len(sizes) == len(losses):
        w = torch.tensor(sizes, dtype=stacked.dtype, device=stacked.device)
        return float((stacked * w).sum() / w.sum())
    return float(stacked.mean())
