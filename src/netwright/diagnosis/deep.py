"""The deep checks (NW5xx), run by ``doctor(deep=True)`` on copies of the model: a gradient
check per layer (disconnected, dead, NaN/Inf), the first optimizer step against the weights'
norm, a few steps overfitting one batch (a loss that does not fall, or diverges), and custom
layers and autograd Functions whose backward disagrees with their forward's numerical gradient
(NW509, in gradcheck.py)."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from ..optim import build_optimizer
from ..util import call_model
from .gradcheck import gradcheck_findings
from .report import Finding, error_line, finding, fmt, listed, num
from .tracing import DROPOUTS

_STEP_RATIO = 1.0  # a first step longer than the weights' own norm explodes
# Overfitting one batch stops as soon as the loss has fallen by _OVERFIT_DROP; at fit's default
# lr (Adam, 1e-3) small healthy models get there in 20-120 steps, a double softmax does not.
_OVERFIT_STEPS = 150
_OVERFIT_DROP = 0.1  # the loss must fall by at least 10 % of its start


def _layers_of(names: Sequence[str]) -> str:
    by_layer: dict[str, list[str]] = {}
    for n in names:
        layer, _, leaf = n.rpartition(".")
        by_layer.setdefault(layer or "(model)", []).append(leaf)
    return listed([f"'{layer}' ({', '.join(p)})" for layer, p in by_layer.items()], 6)


def deep_findings(model: nn.Module, x: Any, y: torch.Tensor, loss_fn: Callable,
                  make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> list[Finding]:
    found: list[Finding] = []
    net = copy.deepcopy(model)
    net.train()
    try:
        loss = loss_fn(call_model(net, x), y)
        loss.backward()
    except Exception as exc:  # noqa: BLE001 - reported with the batch's shapes
        return [finding("NW507", f"a training-mode forward and backward on the first batch (inputs "
                         f"{fmt(x)}, targets {fmt(y)}) failed: {error_line(exc)}",
                         "fix the error above; the model works in eval mode but not in train mode",
                         "model")]
    none, zero, nonfinite, norms = [], [], [], {}
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        if p.grad is None:
            none.append(name)
        elif not bool(torch.isfinite(p.grad).all()):
            nonfinite.append(name)
        else:
            norm = float(p.grad.detach().float().norm())
            norms[name] = norm
            if norm == 0.0:
                zero.append(name)
    if none:
        found.append(finding(
            "NW501", f"{len(none)} parameter(s) get no gradient from the loss, so they never train: "
            f"{_layers_of(none)}; they are not used to compute the output (a layer defined in "
            f"__init__ but skipped in forward, or a tensor detached on the way).",
            "use the layer in forward, remove it, or freeze it on purpose (requires_grad_(False))",
            none[0].rpartition(".")[0] or "model"))
    if zero:
        found.append(finding(
            "NW502", f"{len(zero)} parameter(s) get an all-zero gradient on the first batch: "
            f"{_layers_of(zero)} (dead ReLUs, a zero-initialised layer feeding them, or an input "
            f"that is always 0 there).",
            "check the initialisation and activations before these layers (e.g. LeakyReLU, a lower "
            "lr, no zero init)", zero[0].rpartition(".")[0] or "model"))
    if nonfinite:
        found.append(finding(
            "NW503", f"{len(nonfinite)} parameter(s) get NaN/Inf gradients on the first batch: "
            f"{_layers_of(nonfinite)}.",
            "look for sqrt/log/division at 0 in forward, and clean NaN/Inf inputs",
            nonfinite[0].rpartition(".")[0] or "model"))
    if norms and not nonfinite:
        found += _first_step_findings(net, norms, make_optimizer)
    del net
    if not nonfinite:  # NaN/Inf gradients would make every numerical comparison fail
        try:
            found += gradcheck_findings(model, x)
        except Exception:  # noqa: BLE001 - a check that cannot run says nothing
            pass
    if not nonfinite:
        found += _overfit_findings(model, x, y, loss_fn, make_optimizer)
    return found


def _first_step_findings(net: nn.Module, norms: dict[str, float],
                         make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> list[Finding]:
    """Take the user's optimizer's first step on the copy and compare how far it moves the
    weights with their norm. A raw gradient norm says little on its own: Adam's step does not
    grow with it, plain SGD's does; the step itself is what explodes or not."""
    params = [p for p in net.parameters() if p.grad is not None]
    before = [p.detach().clone() for p in params]
    try:
        opt = make_optimizer(net)
        opt.step()
    except Exception:  # noqa: BLE001 - the overfit check reports optimizer failures
        return []
    with torch.no_grad():
        moved = math.sqrt(sum(float(((p - b) ** 2).sum()) for p, b in zip(params, before)))
        size = math.sqrt(sum(float((b ** 2).sum()) for b in before))
    if not size or moved <= _STEP_RATIO * size:
        return []
    total = math.sqrt(sum(v * v for v in norms.values()))
    worst = max(norms, key=norms.get)
    lr = opt.param_groups[0].get("lr", float("nan"))
    return [finding(
        "NW504", f"the gradient norm on the first batch is {num(total)} (the largest is {worst!r}, "
        f"{num(norms[worst])}) against a weight norm of {num(size)}: the first {type(opt).__name__} "
        f"step at lr={float(lr):g} moves the weights by {moved / size:.1f}x their own norm, so "
        f"training starts by throwing them away.",
        "standardise inputs and targets, lower the lr, clip gradients (clip_grad=1.0), or use an "
        "adaptive optimizer such as adam", worst.rpartition(".")[0] or "model")]


def _overfit(model: nn.Module, x: Any, y: torch.Tensor, loss_fn: Callable,
             make_optimizer: Callable[[nn.Module], torch.optim.Optimizer], factor: float
             ) -> tuple[float, float, float]:
    """(first loss, last loss, lr) after training a copy on one batch for a few steps."""
    net = copy.deepcopy(model)
    net.train()
    for m in net.modules():
        if isinstance(m, DROPOUTS):
            m.eval()  # dropout noise would hide whether the loss falls; BatchNorm stays in train
    opt = make_optimizer(net)
    for group in opt.param_groups:
        group["lr"] = group["lr"] * factor
    lr = float(opt.param_groups[0]["lr"])
    first = math.nan
    for step in range(_OVERFIT_STEPS):
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(call_model(net, x), y)
        value = float(loss.detach())
        if step == 0:
            first = value
        if not math.isfinite(value) or (step and _fell(first, value)):
            return first, value, lr
        loss.backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_fn(call_model(net, x), y))
    return first, last, lr


def _fell(first: float, last: float) -> bool:
    return math.isfinite(last) and (last <= first - _OVERFIT_DROP * abs(first) or abs(first) < 1e-6)


def _overfit_findings(model: nn.Module, x: Any, y: torch.Tensor, loss_fn: Callable,
                      make_optimizer: Callable[[nn.Module], torch.optim.Optimizer]) -> list[Finding]:
    try:
        first, last, lr = _overfit(model, x, y, loss_fn, make_optimizer, 1.0)
    except Exception:  # noqa: BLE001
        # Forward and backward already worked on this batch (the gradient check): what fails here
        # is the optimizer used without fit's loop (LBFGS needs a closure), so there is no hint.
        return []
    if _fell(first, last):
        return []
    diverged = not math.isfinite(last)
    tries = []
    for factor in ((0.1, 0.01) if diverged else (10.0, 0.1)):
        try:
            f2, l2, lr2 = _overfit(model, x, y, loss_fn, make_optimizer, factor)
        except Exception:  # noqa: BLE001 - only a hint
            continue
        tries.append((factor, f2, l2, lr2))
    good = [t for t in tries if _fell(t[1], t[2])]
    if good:
        factor, f2, l2, lr2 = good[0]
        how = {10.0: "10x higher", 0.1: "10x lower", 0.01: "100x lower"}[factor]
        hint = f"try lr={lr2:g} ({how}): there the loss fell from {num(f2)} to {num(l2)}"
    elif diverged:
        hint = ("it diverged at 10x and 100x lower lr too: look for NaN/Inf inputs, a log of 0 in the "
                "loss, or clip gradients (clip_grad=1.0)")
    else:
        hint = ("it did not fall at 10x higher or 10x lower lr either: the model may be unable to fit "
                "(a final softmax/sigmoid before the loss, dead units, a too small or frozen network)")
    if diverged:
        return [finding(
            "NW506", f"training a copy of the model on the first batch at lr={lr:g}: the loss went "
            f"from {num(first)} to {last} within {_OVERFIT_STEPS} steps.", hint, "optimizer")]
    return [finding(
        "NW505", f"training a copy of the model on the first batch for {_OVERFIT_STEPS} steps at "
        f"lr={lr:g}, the loss went from {num(first)} to {num(last)}: a network that cannot overfit one "
        f"batch will not learn the data.", hint, "optimizer")]


def optimizer_factory(optimizer: Any, lr: float | None, *, weight_decay: float = 0.0,
                      decay_norm_and_bias: bool = True,
                      ) -> Callable[[nn.Module], torch.optim.Optimizer]:
    """Builds the user's optimizer (same class and settings, fit's ``weight_decay`` too) on a
    copy of the model."""
    if isinstance(optimizer, torch.optim.Optimizer):
        cls = type(optimizer)
        settings = dict(optimizer.defaults)
        if optimizer.param_groups:
            settings["lr"] = optimizer.param_groups[0]["lr"]

        def make(net: nn.Module) -> torch.optim.Optimizer:
            params = [p for p in net.parameters() if p.requires_grad]
            try:
                return cls(params, **settings)
            except Exception:  # noqa: BLE001 - an optimizer class with unusual arguments
                return torch.optim.Adam(params, lr=float(settings.get("lr", 1e-3)))
        return make
    spec = optimizer if optimizer is not None else "adam"
    decay_nb, spec_lr = decay_norm_and_bias, None
    if isinstance(spec, Mapping):
        spec = dict(spec)
        decay_nb = bool(spec.pop("decay_norm_and_bias", decay_nb))
        spec_lr = spec.pop("lr", None)
    base_lr = float(spec_lr or lr or 1e-3)
    return lambda net: build_optimizer(spec, net, lr=base_lr, weight_decay=weight_decay,
                                       decay_norm_and_bias=decay_nb)
