"""NW509: custom layers (classes defined outside torch and netwright) and the custom autograd
Functions in their forwards, checked numerically. Each custom layer gets its real input from one
forward of the first batch (two samples of it); then the check of ``torch.autograd.gradcheck``'s
fast mode runs on a float64 copy of the layer, with respect to its floating inputs and its
parameters: v·J·u by one backward against central differences along u, one tensor at a time
(gradcheck itself is not called: on a failure it computes the whole Jacobian for its message). A
failure is only reported once it is confirmed at a slightly moved point: a kink (a ReLU at an
exact 0, tied maxima) makes a numerical gradient ambiguous without any bug, and straight-through
or gradient-reversal Functions disagree with their forward on purpose; both stay silent.
Everything runs on copies; the global RNG is put back."""

from __future__ import annotations

import contextlib
import copy
import inspect
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.utils._pytree import tree_flatten, tree_unflatten

from ..util import call_model
from .report import Finding, finding, listed
from .tracing import tensors

_TRUSTED = ("torch", "netwright", "torchvision", "torchaudio")
_MAX_LAYERS = 20  # innermost first; the rest are not checked and nothing is said about them
_SAMPLES = 2
_MAX_TENSORS = 64  # parameters compared one by one to name the worst
_MAX_FINDINGS = 3
# A report needs a confirmed, large mismatch: a wrong backward is off by tens of percent,
# rounding and near-kinks by far less.
_REPORT = {torch.float64: (1e-6, 1e-7, 0.05), torch.float32: (1e-3, 1e-4, 0.15)}  # eps, atol, rtol


def _trusted(cls: type) -> bool:
    return (getattr(cls, "__module__", "") or "").split(".")[0] in _TRUSTED


def _where(cls: type) -> str:
    try:
        path = inspect.getsourcefile(cls) or ""
        line = inspect.getsourcelines(cls)[1]
    except (OSError, TypeError):
        return cls.__name__
    rel = os.path.relpath(path)
    return f"{cls.__name__}, {path if rel.startswith('..') else rel}:{line}"


def _clone(value: Any) -> Any:
    leaves, spec = tree_flatten(value)
    return tree_unflatten([v.detach().clone() if isinstance(v, torch.Tensor) else v for v in leaves],
                          spec)


def _capture(net: nn.Module, x: Any, names: list[str]) -> dict[str, tuple[tuple, dict]]:
    """Each layer's (args, kwargs) at its first call during one no-grad forward of ``net``."""
    seen: dict[str, tuple[tuple, dict]] = {}
    handles = []
    modules = dict(net.named_modules())

    def hook_for(name: str) -> Callable:
        def pre(module: nn.Module, args: tuple, kwargs: dict) -> None:
            if name not in seen:
                seen[name] = (_clone(args), _clone(kwargs))
        return pre

    try:
        for name in names:
            handles.append(modules[name].register_forward_pre_hook(hook_for(name), with_kwargs=True))
        with torch.no_grad():
            call_model(net, x)
    except Exception:  # noqa: BLE001 - a failing forward is reported by the other checks
        pass
    finally:
        for h in handles:
            h.remove()
    return seen


def _sliced(leaves: list[Any], batch: int | None) -> list[Any]:
    """The first samples of every tensor leaf, when they all share the batch's first dimension."""
    ts = [v for v in leaves if isinstance(v, torch.Tensor) and v.dim() >= 1]
    if batch is None or batch <= _SAMPLES or not ts or any(t.shape[0] != batch for t in ts):
        return leaves
    return [v[:_SAMPLES] if isinstance(v, torch.Tensor) and v.dim() >= 1 else v for v in leaves]


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype) -> Iterator[None]:
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype if dtype in (torch.float32, torch.float64) else old)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


class _Case:
    """One layer called as a function of (its floating inputs..., its parameters...)."""

    def __init__(self, layer: nn.Module, leaves: list[Any], spec: Any, dtype: torch.dtype):
        self.layer = copy.deepcopy(layer).to(dtype)
        self.dtype = dtype
        self.leaves = [v.detach().to(dtype) if _differentiable(v) else v for v in leaves]
        self.spec = spec
        self.slots = [i for i, v in enumerate(self.leaves) if _differentiable(v)]
        self.pnames = [n for n, p in self.layer.named_parameters()
                       if p.requires_grad and p.is_floating_point()]
        params = dict(self.layer.named_parameters())
        self.tensors = [self.leaves[i] for i in self.slots] + [params[n].detach() for n in self.pnames]
        self.labels = [(f"input {k}", "x") for k in range(len(self.slots))] + \
            [(f"parameter {n!r}", n) for n in self.pnames]
        self.outs: list[int] | None = None
        dev = next((t.device for t in self.tensors if t.is_cuda), None)
        self.cuda = [dev] if dev is not None else []

    def raw(self, *ts: torch.Tensor) -> Any:
        vals = list(self.leaves)
        k = len(self.slots)
        for i, t in zip(self.slots, ts[:k]):
            vals[i] = t
        args, kwargs = tree_unflatten(vals, self.spec)
        params = dict(zip(self.pnames, ts[k:]))
        with torch.random.fork_rng(devices=self.cuda), _default_dtype(self.dtype):
            torch.random.default_generator.manual_seed(0)  # the same dropout mask at every call
            if self.cuda:
                torch.cuda.manual_seed(0)
            return torch.func.functional_call(self.layer, params, tuple(args), kwargs)

    def __call__(self, *ts: torch.Tensor) -> tuple[torch.Tensor, ...]:
        flat = [t for _, t in tensors(self.raw(*ts), "out")]
        return tuple(flat[i] for i in self.outs or [])


def _differentiable(v: Any) -> bool:
    return (isinstance(v, torch.Tensor) and v.is_floating_point() and v.numel() > 0
            and bool(torch.isfinite(v).all()))


def _functions(outs: tuple[torch.Tensor, ...]) -> list[Any]:
    """The nodes of custom autograd Functions (defined outside torch) in the outputs' graph."""
    found, seen = [], set()
    stack = [o.grad_fn for o in outs if o.grad_fn is not None]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        cls = getattr(type(node), "_forward_cls", None)
        if cls is not None and not _trusted(cls):
            found.append(node)
        stack.extend(n for n, _ in node.next_functions)
    return found


def _pass_through(grad_in: tuple, grad_out: tuple) -> bool:
    """Whether a backward only passes grad_output on, scaled or masked (straight-through,
    gradient reversal, gradient scaling): a surrogate gradient, meant to differ from forward's."""
    outs = [g for g in grad_out if isinstance(g, torch.Tensor)]
    for gi in grad_in:
        if not isinstance(gi, torch.Tensor):
            continue
        match = next((go for go in outs if go.shape == gi.shape), None)
        if match is None:
            return False
        nz = match != 0
        ratio = (gi[nz] / match[nz]).flatten()
        ratio = ratio[ratio != 0]
        if ratio.numel() and float((ratio - ratio[0]).abs().max()) > 1e-9 * (1 + abs(float(ratio[0]))):
            return False
        if bool((gi[~nz] != 0).any()):
            return False
    return any(isinstance(g, torch.Tensor) for g in grad_in)


def _directions(case: _Case, outs: tuple[torch.Tensor, ...], gen: torch.Generator
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    def rand(t: torch.Tensor) -> torch.Tensor:
        return torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.device, t.dtype)
    return [rand(o) for o in outs], [rand(t) for t in case.tensors]


def _project(outs: tuple[torch.Tensor, ...], vs: list[torch.Tensor]) -> float:
    return math.fsum(float((o.double() * v.double()).sum()) for o, v in zip(outs, vs))


def _compare(case: _Case, point: list[torch.Tensor], gen: torch.Generator
             ) -> tuple[list[tuple[int, float, float, float]], bool]:
    """(mismatches as (tensor index, by backward, numerically, relative error), whether a custom
    Function's backward is a pass-through) at ``point``, along random directions: gradcheck's
    fast mode, v·J·u by one backward against central differences, per tensor."""
    eps, atol, rtol = _REPORT[case.dtype]
    ins = [t.detach().clone().requires_grad_() for t in point]
    flat = [t for _, t in tensors(case.raw(*ins), "out")]
    if case.outs is None:
        case.outs = [k for k, t in enumerate(flat) if t.is_floating_point() and t.requires_grad]
    outs = tuple(flat[k] for k in case.outs)
    if not outs or not all(bool(torch.isfinite(o).all()) for o in outs):
        return [], False
    nodes = _functions(outs)
    passing: list[bool] = []
    handles = [n.register_hook(lambda gi, go: passing.append(_pass_through(gi, go))) for n in nodes]
    vs, us = _directions(case, outs, gen)
    try:
        grads = torch.autograd.grad(outs, ins, vs, allow_unused=True)
    finally:
        for h in handles:
            h.remove()
    live = [i for i, g in enumerate(grads) if g is not None]  # None: not connected (a mask)
    k = len(case.slots)
    groups = [g for g in ([i for i in live if i < k], [i for i in live if i >= k]) if g]
    bad = []
    with torch.no_grad():
        base = _project(case(*point), vs)

        def off(idxs: list[int]) -> tuple[float, float, float] | None:
            """(by backward, numerically, relative error) when they disagree along u on idxs."""
            a = math.fsum(float((grads[i].double() * us[i].double()).sum()) for i in idxs)

            def at(step: float) -> float:
                moved = list(point)
                for i in idxs:
                    moved[i] = point[i] + step * us[i]
                return _project(case(*moved), vs)
            plus, minus = at(eps), at(-eps)
            central, right, left = (plus - minus) / (2 * eps), (plus - base) / eps, (base - minus) / eps
            if not all(map(math.isfinite, (a, central, right, left))):
                return None
            if abs(central) <= 1e-3 * abs(a):
                return None  # a flat forward (rounding, sign): backward gives a surrogate on purpose
            lo, hi = min(central, right, left), max(central, right, left)  # a kink: any in between
            if max(0.0, lo - a, a - hi) <= atol + rtol * max(abs(a), abs(central)):
                return None
            return a, central, abs(a - central) / abs(central)

        # All inputs together, all parameters together (O(1) forwards), then one by one the
        # tensors of a group that disagrees, to name the worst.
        for idxs in groups:
            whole = off(idxs)
            if whole is None:
                continue
            parts = [(i, *r) for i in idxs[:_MAX_TENSORS] if (r := off([i])) is not None] \
                if len(idxs) > 1 else []
            bad += parts or [(idxs[0], *whole)]
    return bad, any(passing)


def _check(case: _Case, gen: torch.Generator) -> tuple[tuple[str, str], float, float, float] | None | str:
    """None: the layer is fine or cannot be checked; "excused": it disagrees on purpose;
    otherwise ((label, symbol), by backward, numerically, relative error) of the worst tensor."""
    point = [t.detach() for t in case.tensors]
    bad, passing = _compare(case, point, gen)
    if not bad:
        return None
    if passing:
        return "excused"
    # Confirm away from any kink the inputs sit on (exact zeros, tied maxima): move them a little.
    moved = [t + 1e-3 * (float(t.abs().mean()) or 1.0) *
             torch.randn(t.shape, generator=gen, dtype=torch.float64).to(t.device, t.dtype)
             if k < len(case.slots) else t for k, t in enumerate(point)]
    again, _ = _compare(case, moved, gen)
    if not again:
        return None
    i, a, c, rel = max(bad, key=lambda b: round(b[3], 2))  # the first of the worst: inputs first
    return case.labels[i], a, c, rel


def _run(layer: nn.Module, leaves: list[Any], spec: Any, gen: torch.Generator
         ) -> tuple[Any, list[str]]:
    """_check in float64, else in the layer's own float dtype; the custom Functions it uses."""
    own = next((v.dtype for v in leaves if _differentiable(v)),
               next((p.dtype for p in layer.parameters() if p.is_floating_point()), torch.float32))
    for dtype in dict.fromkeys((torch.float64, own if own in _REPORT else torch.float32)):
        try:
            case = _Case(layer, leaves, spec, dtype)
            if not case.tensors:
                return None, []
            result = _check(case, gen)
        except Exception:  # noqa: BLE001 - a layer that cannot run in this dtype: try the next
            continue
        names = []
        if result not in (None, "excused"):
            with contextlib.suppress(Exception):
                ins = [t.detach().clone().requires_grad_() for t in case.tensors]
                nodes = _functions(case(*ins))
                names = list(dict.fromkeys(type(n)._forward_cls.__name__ for n in reversed(nodes)))
        return result, names
    return None, []


def gradcheck_findings(model: nn.Module, x: Any) -> list[Finding]:
    """NW509 for the innermost custom layers whose backward disagrees with their forward."""
    dev = next((t.device for _, t in tensors(x, "x") if t.is_cuda), None)
    with torch.random.fork_rng(devices=[dev] if dev is not None else []):
        return _findings(model, x)


def _findings(model: nn.Module, x: Any) -> list[Finding]:
    net = copy.deepcopy(model).eval()
    custom = [(name, m) for name, m in net.named_modules() if not _trusted(type(m))]
    if not custom:
        return []
    custom.sort(key=lambda nm: -(nm[0].count(".") + 1 if nm[0] else 0))
    custom = custom[:_MAX_LAYERS]
    seen = _capture(net, x, [n for n, _ in custom])
    head = next((t for _, t in tensors(x, "x") if t.dim() >= 1), None)
    batch = int(head.shape[0]) if head is not None else None
    gen = torch.Generator().manual_seed(0)
    done: list[str] = []  # failed or excused: their enclosing layers are not checked
    found: list[Finding] = []
    for name, layer in custom:
        if name not in seen or any(d.startswith(name + ".") or not name for d in done):
            continue
        leaves, spec = tree_flatten(seen[name])
        result, fns = _run(layer, _sliced(leaves, batch), spec, gen)
        if result is None:
            continue
        done.append(name)
        if result == "excused" or len(found) >= _MAX_FINDINGS:
            continue
        (label, sym), a, c, rel = result
        what = f"custom layer {name!r}" if name else "the model"
        used = ""
        if fns:
            used = f"; autograd Function{'s' if len(fns) > 1 else ''} {listed(fns, 4)} " \
                   f"{'are' if len(fns) > 1 else 'is'} used in its forward"
        fix = (f"check {fns[0]}.backward: it must return the gradient of forward's output with "
               f"respect to each input (grad_output times the derivative), one per forward input "
               f"in order; torch.autograd.gradcheck({fns[0]}.apply, inputs) verifies it") if fns else (
            "look in its forward for .detach(), .data, torch.no_grad() or an in-place change of a "
            "tensor autograd saved; torch.autograd.gradcheck(layer, inputs) verifies the fix")
        found.append(finding(
            "NW509", f"{what} ({_where(type(layer))}): its backward disagrees with the numerical "
            f"gradient of its forward: for {label}, d(output·v)/d{sym}·u is {a:.4g} by backward vs "
            f"{c:.4g} numerically (relative error {rel:.0%}){used}.", fix, name or "model"))
    return found
