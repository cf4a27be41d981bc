"""The traced forward: one forward in eval mode with hooks on every layer, so that a failure
names the layer and its input, and what the checks need (the first layer's input, the final
activation, the inputs of BatchNorm and recurrent layers) is recorded on the way. The model's
modes and the global RNG are left as they were."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..util import call_model, eval_mode


def tensors(value: Any, name: str) -> list[tuple[str, torch.Tensor]]:
    """(name, tensor) for every tensor of a tensor / tuple / dict structure."""
    if isinstance(value, torch.Tensor):
        return [(name, value)]
    if isinstance(value, Mapping):
        return [t for k, v in value.items() for t in tensors(v, f"{name}['{k}']")]
    if isinstance(value, (tuple, list)):
        return [t for i, v in enumerate(value) for t in tensors(v, f"{name}[{i}]")]
    return []


class RngGuard:
    """Saves the global CPU (and the data's CUDA device) RNG state; ``changed()`` tells whether
    anything drew from it since, ``restore()`` (or leaving a ``with`` block) puts it back. A
    forward that draws random numbers in eval mode (dropout forced on) would otherwise shift
    every later random draw of the run."""

    def __init__(self, like: Any):
        self.cpu = torch.get_rng_state()
        self.cuda_device = None
        for _, t in tensors(like, "x"):
            if t.is_cuda:
                self.cuda_device = t.device
                break
        self.cuda = torch.cuda.get_rng_state(self.cuda_device) if self.cuda_device is not None else None

    def changed(self) -> bool:
        if not torch.equal(torch.get_rng_state(), self.cpu):
            return True
        return self.cuda is not None and not torch.equal(
            torch.cuda.get_rng_state(self.cuda_device), self.cuda)

    def restore(self) -> None:
        torch.set_rng_state(self.cpu)
        if self.cuda is not None:
            torch.cuda.set_rng_state(self.cuda, self.cuda_device)

    def __enter__(self) -> RngGuard:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.restore()


# Layers whose input the doctor knows how to check against their sizes.
CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
BATCHNORMS = (nn.modules.batchnorm._BatchNorm,)
_CHECKABLE = (nn.Linear, nn.Bilinear, *CONVS, nn.RNNBase, nn.Embedding, nn.EmbeddingBag,
              *BATCHNORMS, nn.LayerNorm)
DROPOUTS = (nn.modules.dropout._DropoutNd, nn.AlphaDropout, nn.FeatureAlphaDropout)


class Trace:
    """Forward hooks that record, during one forward: the first layer the doctor can check (and
    its input), the chain of modules entered but not yet returned (so a failure names the
    innermost layer and its input), the last leaf to return (a final Softmax/Sigmoid) and the
    inputs of BatchNorm and recurrent layers."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.paths: dict[int, str] = {}
        self.stack: list[tuple[str, nn.Module, tuple]] = []
        self.first: tuple[str, nn.Module, tuple] | None = None
        self.last_leaf: tuple[str, nn.Module, Any] | None = None
        self.last_done: tuple[str, nn.Module, Any] | None = None
        self.norms: list[tuple[str, nn.Module, tuple[int, ...]]] = []
        self.recurrent: list[tuple[str, nn.Module, tuple[int, ...]]] = []
        self.handles: list[Any] = []

    def __enter__(self) -> Trace:
        for path, module in self.model.named_modules():
            self.paths[id(module)] = path
            try:
                self.handles.append(module.register_forward_pre_hook(self._pre))
                self.handles.append(module.register_forward_hook(self._post))
            except (RuntimeError, AttributeError, TypeError):
                pass  # scripted modules take no hooks: they are simply not traced
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self.handles:
            handle.remove()
        self.handles.clear()

    def _pre(self, module: nn.Module, args: tuple) -> None:
        path = self.paths.get(id(module), "?")
        self.stack.append((path, module, args))
        if self.first is None and isinstance(module, _CHECKABLE):
            self.first = (path, module, args)
        head = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if head is not None:
            if isinstance(module, BATCHNORMS):
                self.norms.append((path, module, tuple(head.shape)))
            elif isinstance(module, nn.RNNBase):
                self.recurrent.append((path, module, tuple(head.shape)))

    def final_module(self, out: Any) -> nn.Module | None:
        """The leaf module that produced the model's output itself (a final Softmax, Sigmoid)."""
        if self.last_leaf is not None and self.last_leaf[2] is out:
            return self.last_leaf[1]
        return None

    def _post(self, module: nn.Module, args: tuple, output: Any) -> None:
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][1] is module:
                path = self.stack[i][0]
                del self.stack[i]
                break
        else:
            path = self.paths.get(id(module), "?")
        if module is not self.model:
            self.last_done = (path, module, output)
        if not module._modules:
            self.last_leaf = (path, module, output)


def _checked_module(model: nn.Module) -> nn.Module:
    """The module to run the traced forward on."""
    target = model
    if type(model).__name__ == "OptimizedModule" and isinstance(getattr(model, "_orig_mod", None),
                                                                nn.Module):
        # torch.compile'd: check the eager module. Hooks on the compiled one would cost a
        # recompilation now and another when training removes them.
        target = model._orig_mod
    if any(isinstance(p, nn.parameter.UninitializedParameter) for p in target.parameters()):
        target = copy.deepcopy(target)  # a lazy layer would otherwise take its shapes from this call
    return target


@dataclass
class Forward:
    """What :func:`traced_forward` saw: the module it ran (the eager module of a compiled model,
    a copy of one with lazy layers), the trace, the output (None when the forward failed), the
    exception the forward raised (or None) and the guard of the global RNG."""

    target: nn.Module
    trace: Trace
    out: Any
    failure: BaseException | None
    rng: RngGuard


@contextlib.contextmanager
def traced_forward(model: nn.Module, x: Any) -> Iterator[Forward]:
    """One forward of ``model`` on ``x`` in eval mode with every layer traced. The module stays
    in eval mode inside the block (for the checks' own forwards); on leaving it, every submodule
    gets its mode back and the global RNG its state."""
    target = _checked_module(model)
    with eval_mode(target), RngGuard(x) as rng:
        trace, out, failure = Trace(target), None, None
        # no_grad rather than inference_mode: a model that caches a tensor in its forward must
        # not be left holding an inference tensor that training later cannot backpropagate into.
        with trace, torch.no_grad():
            try:
                out = call_model(target, x)
            except Exception as exc:  # noqa: BLE001 - reported as a finding naming the layer
                failure = exc
        yield Forward(target, trace, out, failure, rng)
