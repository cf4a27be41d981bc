"""Small helpers that several layers need: one home each.

The lowest layer: it imports only the standard library (torch inside the one function that
needs it), so that anything may use it, :mod:`netwright.exporting`'s torch-free ONNX serving
included.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import torch
    from torch import nn

__all__ = ["eval_mode", "model_device", "call_model", "first_line", "strip_ansi", "plain_module"]

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` for the duration of the block; afterwards every submodule gets back its
    own ``training`` flag (a frozen BatchNorm inside a training model stays in eval mode).

    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(2, 2), nn.Dropout())
    >>> net[1].eval()
    Dropout(p=0.5, inplace=False)
    >>> with eval_mode(net):
    ...     net.training
    False
    >>> net.training, net[0].training, net[1].training
    (True, True, False)
    """
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, mode in modes:
            module.training = mode


def plain_module(model: Any) -> Any:
    """The module ``torch.compile`` wrapped (its keys carry no ``_orig_mod.``), else ``model``."""
    from torch import nn

    inner = getattr(model, "_orig_mod", None)
    return inner if isinstance(model, nn.Module) and isinstance(inner, nn.Module) else model


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (else first buffer); the CPU for a model
    without either."""
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    import torch

    return torch.device("cpu")


def call_model(model: nn.Module, x: Any) -> Any:
    """``model(x)``; a tuple of inputs is spread as ``model(*x)`` and a dict as ``model(**x)``."""
    if isinstance(x, tuple):
        return model(*x)
    if isinstance(x, Mapping):
        return model(**x)
    return model(x)


def strip_ansi(text: str) -> str:
    """``text`` without terminal colour codes (torch's compiler colours its errors)."""
    return _ANSI.sub("", text)


def first_line(exc: BaseException | str, limit: int | None = 300, *, typed: bool = False,
               cut: str = "") -> str:
    """The first non-blank line of an error's message, colour codes removed, for quoting it
    inside another message: at most ``limit`` characters (then ``cut`` is appended; None: no
    limit). An empty message gives the error's type name; ``typed`` puts the type name first.

    >>> first_line(ValueError("  bad shape\\n  details..."))
    'bad shape'
    >>> first_line(KeyError(), typed=True), first_line(KeyError())
    ('KeyError: ', 'KeyError')
    >>> first_line(RuntimeError("x" * 9), limit=4, cut="…", typed=True)
    'RuntimeError: xxxx…'
    """
    lines = (ln.strip() for ln in strip_ansi(str(exc)).splitlines())
    text = next((ln for ln in lines if ln), "")
    if limit is not None and len(text) > limit:
        text = text[:limit] + cut
    if typed:
        return f"{type(exc).__name__}: {text}"
    return text or type(exc).__name__
