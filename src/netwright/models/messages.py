"""How the builder writes shapes, places and fixes in its messages.

>>> import torch
>>> fmt_shape(torch.zeros(2, 20)), attr_path("model", "fc"), attr_path("model", "0")
('(N, 20)', 'model.fc', "model['0']")
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Mapping
from typing import Any

import torch

from .layers import LAYERS, LayerInfo

__all__ = ["fmt_shape", "attr_path", "looks_like_arguments", "ndim_fix", "signature_text"]


def fmt_shape(x: Any) -> str:
    """``(N, 20)`` for a dummy batch: N is the batch dimension the user did not choose."""
    if isinstance(x, torch.Tensor):
        dims = ", ".join(["N", *map(str, x.shape[1:])]) if x.ndim else ""
        dims = f"({dims},)" if x.ndim == 1 else f"({dims})"
        return dims if x.is_floating_point() else f"{dims} {str(x.dtype).replace('torch.', '')}"
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{k!r}: {fmt_shape(v)}" for k, v in x.items()) + "}"
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of " + ", ".join(fmt_shape(v) for v in x)
    return type(x).__name__


def attr_path(path: str, name: str) -> str:
    """A child's place as Python would write it: ``model.fc`` or ``model['0']``."""
    return f"{path}.{name}" if name.isidentifier() else f"{path}[{name!r}]"


def _square(n: int) -> int | None:
    root = math.isqrt(n)
    return root if root * root == n else None


def looks_like_arguments(value: Any) -> bool:
    """Could ``value`` be a layer's arguments rather than a block? (For "did you mean" only.)"""
    if isinstance(value, Mapping):
        return all(looks_like_arguments(v) and not isinstance(v, Mapping) for v in value.values())
    if isinstance(value, list):
        return all(looks_like_arguments(v) and not isinstance(v, Mapping) for v in value)
    return not (isinstance(value, str) and value in LAYERS)


def ndim_fix(info: LayerInfo, x: torch.Tensor) -> str:
    """The likely fix when a layer gets an input of the wrong rank."""
    name, feats = info.name, x.shape[1:].numel()
    if x.ndim > max(info.ndim or (0,)) and name in ("linear",):
        return f"add 'flatten' before it (it would give (N, {feats}))"
    if name == "batchnorm1d" and x.ndim == 4:
        return "use 'batchnorm2d' for (N, C, H, W)"
    if name == "batchnorm2d" and x.ndim in (2, 3):
        return "use 'batchnorm1d' for (N, C) or (N, C, L)"
    if info.ndim == (4,):
        if x.ndim == 2:
            side = _square(feats)
            shape = f"[1, {side}, {side}]" if side else "[C, H, W]"
            return f"add {{'reshape': {shape}}} before it to read each sample as an image"
        if x.ndim == 3 and name.endswith("2d"):
            return f"use {name[:-2] + '1d'!r} for (N, C, L), or add {{'unflatten': [2, [H, W]]}} before it"
    if info.ndim == (3,):
        if name in ("rnn", "lstm", "gru"):
            if x.ndim == 2:
                return (f"feed sequences (N, T, F), or add {{'reshape': [{feats}, 1]}} before it to "
                        f"read the {feats} features as {feats} steps of 1 feature")
            return "add {'flatten': {'start_dim': 2}} before it, giving (N, C, H*W) (C steps)"
        if x.ndim == 2:
            return f"add {{'reshape': [1, {feats}]}} before it (one channel of length {feats})"
        if x.ndim == 4 and name.endswith("1d"):
            return f"use {name[:-2] + '2d'!r} for (N, C, H, W)"
    return f"reshape the input to {info.form} before it"


def signature_text(obj: Any) -> str:
    """``(in_features, out_features, bias=True)``, or ``(...)`` where Python cannot tell."""
    try:
        text = str(inspect.signature(obj))
    except (TypeError, ValueError):
        return "(...)"
    return text if len(text) <= 160 else text[:150] + "...)"
