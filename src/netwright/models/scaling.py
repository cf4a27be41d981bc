"""Standardisation that travels with the model.

A run fits the input (and, for regression, the target) statistics on its training split and
wraps the model in :class:`Scaled`, which holds them as buffers. The saved weights therefore
carry the transform, and prediction, evaluation and exports map raw inputs to outputs in the
data's own units without a separate preprocessing step that could be forgotten or mismatched.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["Scaled", "unwrap"]


class Scaled(nn.Module):
    """``out = net((x - x_mean) / x_std) * y_std + y_mean``; either side may be absent.

    >>> m = Scaled(nn.Identity(), x_shape=(2,), y_shape=None)
    >>> m.set_stats(x=(torch.tensor([1.0, 2.0]), torch.tensor([2.0, 2.0])))
    >>> m(torch.tensor([[3.0, 4.0]]))
    tensor([[1., 1.]])
    """

    # Constants: TorchScript compiles only the branches they select, so a Scaled without output
    # statistics (no y_std buffer) scripts instead of falling back to tracing.
    __constants__ = ["scale_inputs", "scale_outputs"]

    def __init__(self, net: nn.Module, x_shape: Sequence[int] | None, y_shape: Sequence[int] | None):
        super().__init__()
        self.net = net
        self.scale_inputs = x_shape is not None
        self.scale_outputs = y_shape is not None
        if self.scale_inputs:
            self.register_buffer("x_mean", torch.zeros(tuple(x_shape)))
            self.register_buffer("x_std", torch.ones(tuple(x_shape)))
        if self.scale_outputs:
            self.register_buffer("y_mean", torch.zeros(tuple(y_shape)))
            self.register_buffer("y_std", torch.ones(tuple(y_shape)))

    def set_stats(self, x=None, y=None) -> None:
        """Copy (mean, std) pairs into the buffers."""
        for pair, names in ((x, ("x_mean", "x_std")), (y, ("y_mean", "y_std"))):
            if pair is not None:
                for value, name in zip(pair, names):
                    getattr(self, name).copy_(torch.as_tensor(value, dtype=torch.float32))

    def forward(self, x):
        if self.scale_inputs:
            x = (x - self.x_mean) / self.x_std
        out = self.net(x)
        if self.scale_outputs:
            out = out * self.y_std + self.y_mean
        return out

    def extra_repr(self) -> str:
        return f"inputs standardised: {self.scale_inputs}, outputs rescaled: {self.scale_outputs}"


def unwrap(model: nn.Module) -> nn.Module:
    """The user's network inside a :class:`Scaled` wrapper (the model itself otherwise)."""
    return model.net if isinstance(model, Scaled) else model
