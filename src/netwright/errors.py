"""The errors netwright raises.

Every error a user can cause is a :class:`NetwrightError` whose message says what was expected,
what was received and the fix, naming the argument, layer, key, column or file involved. The
kinds also subclass the built-in error a user would otherwise have caught (``ValueError``,
``TypeError``) so existing ``except`` clauses keep working.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "NetwrightError",
    "ConfigError",
    "DataError",
    "ModelSpecError",
    "LossTargetError",
    "CheckpointError",
    "ExportError",
    "UntrustedCodeError",
    "did_you_mean",
    "short_repr",
    "describe",
    "describe_tensors",
    "NonFiniteLossError",
]


class NetwrightError(Exception):
    """Base of every error netwright raises on purpose."""


class ConfigError(NetwrightError, ValueError):
    """An argument or config field has a value netwright cannot use."""


class DataError(NetwrightError, ValueError):
    """Training/evaluation data has the wrong type, shape, dtype or content."""


class ModelSpecError(NetwrightError, ValueError):
    """A model (or a model description) cannot be built or called as given."""


class LossTargetError(NetwrightError, ValueError):
    """The model's output and the targets do not fit the loss."""


class CheckpointError(NetwrightError, ValueError):
    """A checkpoint or weights file is missing, corrupt, unsafe or does not fit the model."""


class ExportError(NetwrightError, RuntimeError):
    """A model could not be exported, or the export does not compute what the model computes."""


class NonFiniteLossError(NetwrightError, FloatingPointError):
    """The training loss (or the weights) became NaN or infinite; nothing non-finite was
    written, and the run directory keeps its last good checkpoint."""


class UntrustedCodeError(NetwrightError, PermissionError):
    """A file names code (a class to import) that netwright will not run without an explicit
    ``trust_code=True`` / ``--trust-code`` from the caller."""


def short_repr(value: object, limit: int = 160) -> str:
    """``repr(value)`` for a message, bounded in length and in the work done to make it.

    Values from files can be huge or deeply nested (a YAML alias bomb expands to billions of
    items): :mod:`reprlib` stops at a few items per level and a few levels, so the cost is
    bounded whatever the value.

    >>> short_repr(list(range(10_000)))
    '[0, 1, 2, 3, 4, 5, ...]'
    >>> len(short_repr("x" * 10_000)) <= 160
    True
    """
    import reprlib

    r = reprlib.Repr()
    r.maxlevel, r.maxlist, r.maxtuple, r.maxdict, r.maxset = 3, 6, 6, 6, 6
    r.maxstring, r.maxother, r.maxlong = limit, limit, 40
    try:
        text = r.repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not replace the real error
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return `` Did you mean 'x'?`` for the closest choice, or an empty string.

    >>> did_you_mean("adma", ["adam", "sgd"])
    " Did you mean 'adam'?"
    """
    close = difflib.get_close_matches(str(name).lower(), list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def describe(value: object) -> str:
    """A short description of a value for error messages: its type, and shape/dtype if it has them.

    >>> describe([1, 2])
    'list of length 2'
    """
    shape = getattr(value, "shape", None)
    dtype = getattr(value, "dtype", None)
    kind = type(value).__module__.split(".")[0] + "." + type(value).__name__
    kind = kind.replace("builtins.", "")
    if shape is not None and dtype is not None:
        return f"{kind} of shape {tuple(shape)} and dtype {dtype}"
    if isinstance(value, (list, tuple, dict)):
        return f"{kind} of length {len(value)}"
    if isinstance(value, (int, float, str, bool)) or value is None:
        return f"{kind} {value!r}"
    return kind


def describe_tensors(value: object) -> str:
    """``float32 of shape (32, 1)`` for a tensor; dicts, tuples and lists part by part.

    >>> import torch
    >>> describe_tensors({"a": torch.zeros(2, 3), "b": (torch.ones(2, dtype=torch.long),)})
    '{a: float32 of shape (2, 3), b: (int64 of shape (2,))}'
    """
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape is not None and dtype is not None and hasattr(value, "is_floating_point"):
        return f"{str(dtype).replace('torch.', '')} of shape {tuple(shape)}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {describe_tensors(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(describe_tensors(v) for v in value) + ")"
    return describe(value)
