"""Counting a model's values before they are allocated: the bound on what a model described by
a file (model.json) may take (see :func:`netwright.models.build`'s ``max_values``).

Each module is made twice: first on the meta device, where it takes no memory, to count its
parameters and buffers, and then for real if the count stays within the budget. Sizes are
inferred on the real modules (a forward pass on meta tensors would import torch._dynamo, over
a second, through torch's Python meta kernels), so nothing past the budget is ever allocated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from ..errors import ModelSpecError

__all__ = ["Budget", "BudgetExceeded", "BudgetUnknown", "on_meta"]


class BudgetExceeded(ModelSpecError):
    """Building the spec would allocate more values than ``build(max_values=...)`` allows."""


class BudgetUnknown(ModelSpecError):
    """The spec has a lazy layer: its size is known only after a forward pass, so it cannot be
    counted before it is allocated."""


class Budget:
    """At most ``max_values`` parameter and buffer values, spent module by module.

    >>> budget = Budget(10)
    >>> budget.make(lambda: nn.Linear(2, 3), "model[0]")  # 9 values
    Linear(in_features=2, out_features=3, bias=True)
    >>> budget.make(lambda: nn.Linear(2, 3), "model[1]")
    Traceback (most recent call last):
    netwright.models.budget.BudgetExceeded: model[1]: the model holds more than 10 values (at least 18 up to here).
    """

    def __init__(self, max_values: int):
        self.max_values, self.values = max_values, 0

    def make(self, factory: Callable[[], Any], path: str) -> Any:
        """``factory()`` (a module's constructor), once its meta twin has been counted."""
        ghost = on_meta(factory)
        if not isinstance(ghost, nn.Module):
            return ghost  # a zoo model's layer spec: its layers are counted as they are made
        from torch.nn.parameter import is_lazy

        if any(is_lazy(t) for t in (*ghost.parameters(), *ghost.buffers())):
            raise BudgetUnknown(f"{path}: {type(ghost).__name__} has lazy parameters, whose size "
                                f"only a forward pass tells.")
        values = self.values + sum(t.numel() for t in ghost.state_dict().values())
        del ghost
        if values > self.max_values:
            raise BudgetExceeded(f"{path}: the model holds more than {self.max_values:,} values "
                                 f"(at least {values:,} up to here).")
        module = factory()
        self.values = values
        return module


def on_meta(factory: Callable[[], Any]) -> Any:
    """``factory()`` made on the meta device: its tensors have shapes and dtypes but no memory,
    and no initialisation runs (so no random numbers are drawn).

    >>> on_meta(lambda: nn.Linear(10**5, 10**5)).weight.is_meta
    True
    """
    with torch.device("meta"), _WithoutInit():
        return factory()


# In-place initialisation a module's constructor may run: on meta tensors there are no values to
# fill, and some of them (normal_, used by nn.Embedding) have Python meta kernels that import
# torch._dynamo, over a second, just to count a layer's parameters.
_INIT_METHODS = frozenset(("normal_", "uniform_", "fill_", "zero_", "random_", "exponential_",
                           "bernoulli_", "log_normal_", "cauchy_", "geometric_", "copy_"))


class _WithoutInit(torch.overrides.TorchFunctionMode):
    """Skip ``torch.nn.init`` functions and in-place filling on meta tensors (shapes and dtypes
    stay as they are)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")
        if isinstance(target, torch.Tensor) and target.is_meta and (
                getattr(func, "__module__", None) == "torch.nn.init"
                or getattr(func, "__name__", None) in _INIT_METHODS):
            return target
        return func(*args, **kwargs)
