"""Checks on the arguments of :func:`netwright.models.builder.build`: the spec (JSON-able), the
input shape, the input dtype and the names of a container's children."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import ModelSpecError, short_repr

__all__ = ["json_copy", "check_input_shape", "check_dtype", "check_names", "check_sizes",
           "sizes_digest", "MAX_SAMPLE"]

MAX_SAMPLE = 2**31  # values in one sample: far beyond any real input, and below int64 overflow


def json_copy(spec: Any) -> Any:
    # A spec is stored in model.json, so it must survive JSON; the copy also means the model never
    # shares mutable state with the caller's dict, and tuples become lists (built the same way).
    try:
        return json.loads(json.dumps(spec, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ModelSpecError(
            f"model spec: expected JSON-serialisable values (names, numbers, lists, mappings) so "
            f"that the model can be rebuilt from model.json; received a spec with {exc}. Fix: "
            f"describe layers by name, and wrap custom modules as "
            f"{{'class': 'pkg.module:ClassName', 'args': {{...}}}}."
        ) from None


def check_input_shape(input_shape: Any) -> tuple[int, ...] | None:
    if input_shape is None:
        return None
    if isinstance(input_shape, int) and not isinstance(input_shape, bool):
        input_shape = (input_shape,)
    if isinstance(input_shape, torch.Size):
        input_shape = tuple(input_shape)
    if (not isinstance(input_shape, (list, tuple)) or not input_shape or len(input_shape) > 16
            or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in input_shape)
            or math.prod(input_shape) > MAX_SAMPLE):
        raise ModelSpecError(
            f"input_shape: expected the shape of one sample, without the batch dimension, as "
            f"positive sizes (at most 16 of them, {MAX_SAMPLE:,} values in all), e.g. (20,) or "
            f"(1, 28, 28); received {short_repr(input_shape)}."
        )
    return tuple(int(s) for s in input_shape)


def sizes_digest(spec: Any, shape: Sequence[int] | None) -> str:
    """What recorded sizes belong to: a spec and an input shape (a hand-edited spec in model.json
    makes the sizes saved with it stale, and a build then infers them again)."""
    text = json.dumps([spec, None if shape is None else list(shape)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def check_sizes(sizes: Any) -> dict[str, Any] | None:
    """The sizes a build inferred, as model.json stores them: ``{"of": digest, "layers": {path:
    {argument: size}}}`` (a size is a positive int, or a list of them for ``normalized_shape``
    and a zoo model's ``input_shape``). They may come from someone else's file, so their form is
    checked here; the modules they make are counted by the load budget like any other."""
    if sizes is None:
        return None

    def size(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_SAMPLE

    layers = sizes.get("layers") if isinstance(sizes, dict) else None
    if (isinstance(sizes, dict) and set(sizes) == {"of", "layers"} and isinstance(sizes["of"], str)
            and isinstance(layers, dict) and all(
                isinstance(path, str) and isinstance(entry, dict) and all(
                    isinstance(arg, str) and (size(v) or (isinstance(v, list) and 0 < len(v) <= 16
                                                          and all(size(d) for d in v)))
                    for arg, v in entry.items())
                for path, entry in layers.items())):
        return sizes
    raise ModelSpecError(
        f"sizes: expected {{'of': digest, 'layers': {{layer path: {{argument: positive size or "
        f"list of sizes}}}}}} as the builder records them (e.g. {{'of': '...', 'layers': "
        f"{{'model.fc': {{'in_features': 20}}}}}}); received {short_repr(sizes)}. Fix: save the "
        f"model again with nw.save."
    )


def check_dtype(dtype: Any) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).replace("torch.", "")
    value = getattr(torch, name, None)
    if isinstance(value, torch.dtype):
        return value
    raise ModelSpecError(
        f"input_dtype: expected a torch dtype or its name ('float32', 'int64', ...); received "
        f"{dtype!r}."
    )


def check_names(names: Sequence[Any], container: nn.Module, path: str, what: str) -> None:
    for name in names:
        # add_module refuses these with a bare KeyError, far from the spec.
        if not isinstance(name, str) or not name or "." in name or (
                hasattr(container, name) and name not in container._modules):
            raise ModelSpecError(
                f"{path}: {what} names must be non-empty strings without '.' that are not "
                f"attributes of torch's {type(container).__name__}; received {short_repr(name)}. Fix: "
                f"rename it, e.g. {str(name).replace('.', '_') + '_' if name else 'block'!r}."
            )
