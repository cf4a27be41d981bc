"""A leaf layer's arguments: the keyword arguments its spec value gives it, which of them it
cannot do without, and the sizes read off the dummy batch it receives (``in_features``,
``in_channels``, ``num_features``, ``input_size``, ``normalized_shape``), each mistake a
ModelSpecError naming the layer. Used by :mod:`netwright.models.builder`."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch

from ..errors import ModelSpecError, did_you_mean, short_repr
from .layers import LayerInfo, accepted_args
from .messages import fmt_shape, ndim_fix

__all__ = ["layer_arguments", "required_arguments", "check_ndim", "infer_sizes"]

_WHAT = {
    "in_features": "input features",
    "in_channels": "input channels",
    "num_features": "features (channels)",
    "input_size": "features per step",
    "normalized_shape": "trailing sizes",
}


def layer_arguments(info: LayerInfo, value: Any, label: str) -> dict[str, Any]:
    """The keyword arguments a spec value gives a layer: a mapping (checked against what the
    layer accepts, with a did-you-mean), one main argument, or a list of main arguments in
    order; ``label`` names the layer in errors."""
    accepted = accepted_args(info)
    if value is None:
        return {}
    if isinstance(value, Mapping):
        for key in value:
            if key not in accepted:
                listed = ", ".join(accepted) if accepted else "none"
                raise ModelSpecError(
                    f"{label} ({info.torch_name}) has no argument {key!r}."
                    f"{did_you_mean(str(key), accepted)} Accepted arguments: {listed}."
                )
        return dict(value)
    if not info.main:
        raise ModelSpecError(
            f"{label} takes no main argument; received {short_repr(value)}. Fix: write it as {info.name!r}"
            + (f" or with keyword arguments ({', '.join(accepted)})." if accepted else ".")
        )
    if len(info.main) == 1:
        return {info.main[0]: value}
    values = value if isinstance(value, list) else [value]
    if len(values) > len(info.main):
        raise ModelSpecError(
            f"{label}: a list gives the main arguments {', '.join(info.main)} in order; received "
            f"{len(values)} values {short_repr(value)}. Fix: give the others by keyword, e.g. "
            f"{{{info.name!r}: {{{', '.join(f'{a!r}: ...' for a in info.main)}, ...}}}}."
        )
    return dict(zip(info.main, values))


def check_ndim(info: LayerInfo, x: torch.Tensor, label: str) -> None:
    """The dummy batch has as many dimensions as the layer takes."""
    if info.ndim and x.ndim not in info.ndim:
        raise ModelSpecError(
            f"{label} expects input of shape {info.form}; it receives {fmt_shape(x)}. "
            f"Fix: {ndim_fix(info, x)}."
        )


def infer_sizes(info: LayerInfo, kwargs: dict, x: torch.Tensor, label: str) -> torch.Tensor:
    """Check the incoming dummy batch of floats against the layer and fill in the size the
    layer can infer (into ``kwargs``)."""
    if info.infer and not x.is_floating_point():
        raise ModelSpecError(
            f"{label} expects floats; it receives integers {fmt_shape(x)}. Fix: start with "
            f"'embedding' for token ids, or pass input_dtype='float32'."
        )
    if info.infer is None:
        return x
    if info.infer == "normalized_shape":
        given = kwargs.get("normalized_shape")
        inferred = x.shape[-1]
        if given is not None:
            sizes = [given] if isinstance(given, int) else list(given)
            if list(x.shape[x.ndim - len(sizes):]) != sizes or len(sizes) >= x.ndim:
                raise ModelSpecError(
                    f"{label} normalizes the trailing sizes {sizes}; it receives {fmt_shape(x)}. "
                    f"Fix: leave normalized_shape out (it becomes {inferred}) or match the "
                    f"input's last sizes."
                )
            return x
        kwargs["normalized_shape"] = inferred
        return x
    inferred = x.shape[-1] if info.infer in ("in_features", "input_size") else x.shape[1]
    given = kwargs.get(info.infer)
    if given is None:
        kwargs[info.infer] = int(inferred)
    elif given != inferred:
        raise ModelSpecError(
            f"{label} expects {given} {_WHAT[info.infer]} ({info.infer}={given}); it receives "
            f"{fmt_shape(x)}, which has {inferred}. Fix: leave {info.infer} out to infer it, or set "
            f"{info.infer}={inferred}."
        )
    return x


def required_arguments(info: LayerInfo) -> list[str]:
    """The arguments a layer cannot be made without."""
    if info.args is not None:
        return [a for a in (*info.main[:1], info.infer) if a and info.main]
    return [p.name for p in inspect.signature(info.cls.__init__).parameters.values()
            if p.name != "self" and p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
