"""Checks of how a model holds its parts (NW216-NW219, NW405): the article's containers lesson.

Layers kept in a plain Python ``list``, ``tuple`` or ``dict`` are not registered: they are not in
``model.parameters()`` (so the optimizer never trains them), not moved by ``model.to(device)``
and not in the ``state_dict`` (so they are not saved). A tensor kept as a plain attribute is the
same for a weight (``nn.Parameter``) or a constant (``register_buffer``). Constant initial
weights in several layers keep their units identical forever; frozen parameters are reported
so that a freeze by mistake is seen. Every check reads attributes and parameters only: no
forward, cheap enough for ``fit``'s pre-flight.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .report import Finding, finding, listed

# nn.Module's own bookkeeping attributes (_parameters, _buffers, hooks, training ...).
_INTERNAL = frozenset(vars(nn.Module()))
_WEIGHTED = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd, nn.Embedding, nn.RNNBase)
_DEPTH = 3  # nesting of lists and dicts searched for modules and tensors


def _own_class(module: nn.Module) -> bool:
    """A class the user wrote: torch's and netwright's own keep their attributes right."""
    return not type(module).__module__.startswith(("torch.", "netwright."))


def _inside(value: Any, depth: int = 0) -> Iterator[Any]:
    """Modules and tensors inside lists, tuples, sets and dicts (not inside modules)."""
    if depth > _DEPTH:
        return
    if isinstance(value, Mapping):
        for v in value.values():
            yield from _inside(v, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for v in value:
            yield from _inside(v, depth + 1)
    elif depth and isinstance(value, (nn.Module, torch.Tensor)):
        yield value


def attribute_findings(model: nn.Module) -> list[Finding]:
    """NW216 (modules in plain containers, not registered anywhere in the model), NW217 (a leaf
    tensor with ``requires_grad`` that is not a Parameter), NW218 (a floating tensor that is not
    a buffer), for the user's own classes."""
    registered = {id(m) for m in model.modules()}
    registered_tensors = {id(t) for t in model.parameters()} | {id(t) for t in model.buffers()}
    unregistered, trainable, plain = [], [], []
    for path, module in model.named_modules():
        if not _own_class(module):
            continue
        owner = f"{type(module).__name__}" + (f" '{path}'" if path else "")
        for attr, value in vars(module).items():
            if attr in _INTERNAL:
                continue
            name = f"{path}.{attr}" if path else attr
            if isinstance(value, torch.Tensor):
                if isinstance(value, nn.Parameter) or id(value) in registered_tensors:
                    continue
                if value.requires_grad and value.grad_fn is None:
                    trainable.append((owner, name, value))
                elif value.is_floating_point() and value.numel() > 1:
                    plain.append((owner, name, value))
                continue
            found = list(_inside(value))
            # Parameter-free modules (activations) in a list change nothing: only layers whose
            # weights or buffers would be lost are reported.
            mods = [m for m in found if isinstance(m, nn.Module) and id(m) not in registered
                    and any(True for _ in m.parameters()) | any(True for _ in m.buffers())]
            if mods:
                kind = "dict" if isinstance(value, Mapping) else type(value).__name__
                params = sum(p.numel() for m in mods for p in m.parameters() if not _lazy(p))
                unregistered.append((owner, name, kind, mods, params))
            leaves = [t for t in found if isinstance(t, torch.Tensor) and t.requires_grad
                      and t.grad_fn is None and id(t) not in registered_tensors]
            if leaves:
                trainable.append((owner, name, leaves[0]))
    found_: list[Finding] = []
    for owner, name, kind, mods, params in unregistered:
        fix = (f"self.{name.rpartition('.')[2]} = nn.ModuleDict({{...}})" if kind == "dict"
               else f"self.{name.rpartition('.')[2]} = nn.ModuleList([...])")
        found_.append(finding(
            "NW216", f"{owner} keeps {len(mods)} layer(s) ({', '.join(sorted({type(m).__name__ for m in mods}))}, "
            f"{params:,} parameters) in a plain Python {kind}, {name!r}: they are not registered, "
            f"so model.parameters() leaves them out (the optimizer never trains them), "
            f"model.to(device) does not move them and the state_dict does not save them.",
            f"{fix} (torch's containers register what they hold)", name))
    for owner, name, t in trainable:
        found_.append(finding(
            "NW217", f"{owner} keeps a tensor with requires_grad=True, {name!r} "
            f"{tuple(t.shape)}, as a plain attribute: it is not a parameter, so the optimizer "
            f"never updates it, and it is neither moved to the device nor saved.",
            f"self.{name.rpartition('.')[2]} = nn.Parameter(...)", name))
    for owner, name, t in plain:
        found_.append(finding(
            "NW218", f"{owner} keeps a tensor, {name!r} {tuple(t.shape)}, as a plain attribute: "
            f"model.to(device) leaves it behind (a device mismatch on GPU) and the state_dict "
            f"does not save it.",
            f"self.register_buffer({name.rpartition('.')[2]!r}, tensor) in __init__ "
            f"(persistent=False if it need not be saved)", name))
    return found_


def _lazy(p: torch.Tensor) -> bool:
    """A lazy module's parameter before its first forward: no shape, no values yet."""
    return isinstance(p, nn.parameter.UninitializedParameter)


def _weights(model: nn.Module) -> Iterator[tuple[str, torch.Tensor]]:
    for path, module in model.named_modules():
        if isinstance(module, _WEIGHTED):
            for pname, p in module.named_parameters(recurse=False):
                if _lazy(p):
                    continue
                if "weight" in pname and p.dim() >= 2 and p.shape[0] > 1:
                    yield (f"{path}.{pname}" if path else pname), p


def symmetric_findings(model: nn.Module) -> list[Finding]:
    """NW219: every trainable weight layer (two or more) has all its weights one value (zeros or
    a constant): the units of each layer compute the same and get the same gradient, so they
    stay identical. One randomly initialised layer among them breaks the symmetry (LoRA's zero
    B matrix, zero-initialised convolutions), so then nothing is reported."""
    weights = [(n, p) for n, p in _weights(model) if p.requires_grad]
    if len(weights) < 2:
        return []
    constant = []
    with torch.no_grad():
        for name, p in weights:
            flat = p.detach().reshape(-1)
            if flat.numel() and not flat.is_complex() and bool((flat == flat[0]).all()):
                constant.append((name, float(flat[0])))
    if len(constant) < len(weights):
        return []  # one random layer next to them breaks the symmetry (LoRA, zero-convolutions)
    values = sorted({v for _, v in constant})
    return [finding(
        "NW219", f"all {len(weights)} weight layers have every weight equal "
        f"({listed([repr(n) for n, _ in constant])}; value {', '.join(f'{v:g}' for v in values[:3])}): "
        f"the units of each layer compute the same output and get the same gradient, so they "
        f"stay identical (and behind a zero layer the earlier layers get no gradient at all): "
        f"the network acts as if one unit wide.",
        "leave torch's default initialisation, or use a random one (nn.init.kaiming_uniform_, "
        "xavier_uniform_); zero-initialise at most a last layer", constant[0][0].rpartition(".")[0]
        or "model")]


def frozen_findings(model: nn.Module) -> list[Finding]:
    """NW405 (info): some parameters are frozen (``requires_grad=False``) while others train,
    with the layers named, so that a freeze by mistake is seen."""
    frozen: dict[str, int] = {}
    total = trainable = 0
    for name, p in model.named_parameters():
        if _lazy(p):
            continue
        total += p.numel()
        if p.requires_grad:
            trainable += p.numel()
        else:
            layer = name.rpartition(".")[0] or name
            frozen[layer] = frozen.get(layer, 0) + p.numel()
    if not frozen or not trainable:
        return []  # nothing frozen, or everything (NW403 says that)
    count = sum(frozen.values())
    return [finding(
        "NW405", f"{count:,} of {total:,} parameters ({100 * count / total:.0f}%) are frozen "
        f"(requires_grad=False) and will not train: layer(s) {listed([repr(n) for n in frozen])}.",
        "nothing if fine-tuning on purpose; otherwise p.requires_grad_(True) for those layers "
        "(or model.requires_grad_(True))", next(iter(frozen)))]


def structure_findings(model: nn.Module) -> list[Finding]:
    """Every check of this module (no forward; parameters and attributes only)."""
    return attribute_findings(model) + symmetric_findings(model) + frozen_findings(model)
