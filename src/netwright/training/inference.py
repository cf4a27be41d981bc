"""Evaluate and predict with any ``nn.Module``: the same checks, batches and precision as
``fit``, in eval mode under ``inference_mode``; every module's own train/eval mode comes back
afterwards."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..data.batches import Batches, make_batches
from ..data.sources import InMemory, to_source
from ..errors import ConfigError, ModelSpecError, NetwrightError, describe
from ..losses import LossInfo, resolve_loss
from ..metrics import MetricSet, infer_task
from ..util import call_model, eval_mode, model_device
from .devices import resolve_device
from .distributed import SINGLE, World
from .step import autocast_for, eval_step

__all__ = ["evaluate", "predict", "evaluate_batches", "positional_inputs"]


def evaluate_batches(model: nn.Module, batches: Batches, loss_fn, metrics: MetricSet | None,
                      autocast, world: World = SINGLE) -> dict[str, Any]:
    """Loss (weighted by batch size) and metrics over ``batches`` in eval mode under
    ``inference_mode``; every module's previous train/eval mode is restored afterwards. Under
    data-parallel training each rank holds a part of the set, and the loss and the metrics'
    states are summed over the ranks: every rank gets the values of the whole set."""
    total, count = [], 0
    if metrics:
        metrics.reset()
    with eval_mode(model), torch.inference_mode():
            for x, y in batches:
                out, loss = eval_step(model, x, y, loss_fn, autocast)
                if loss is not None:
                    n = y.shape[0]
                    total.append(loss.float() * n)
                    count += n
                if metrics:
                    metrics.update(out, y)
    results: dict[str, Any] = {}
    if world.active and loss_fn is not None:
        summed, count = world.sum([float(torch.stack(total).sum()) if total else 0.0, float(count)])
        total = [torch.tensor(summed)] if count else []
    if total:
        results["loss"] = float(torch.stack(total).sum()) / count
    if metrics:
        results.update(metrics.compute())
    return results


def evaluate(model: nn.Module, data: Any, *, loss: Any = None, metrics: Any = None,
             batch_size: int = 256, device: Any = None, precision: str = "32",
             task: str | None = None, target: Any = None, check: bool = True) -> dict[str, Any]:
    """Loss and metrics of ``model`` on ``data``, in eval mode under ``inference_mode``.

    ``device=None`` uses the device the model's parameters are on. ``check`` runs fit's cheap
    checks on the first batch first (inputs, targets against the output and the loss, a layer
    that does not fit the input: the doctor's codes); ``check=False`` skips them.

    >>> import torch, torch.nn as nn
    >>> res = evaluate(nn.Linear(3, 2), (torch.randn(10, 3), torch.zeros(10, dtype=torch.long)),
    ...                loss="cross_entropy", metrics=["accuracy"])
    >>> sorted(res)
    ['accuracy', 'loss']
    """
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model: expected a torch.nn.Module, received {describe(model)}.")
    if loss is None and not metrics:
        raise ConfigError("evaluate: nothing to compute. Fix: pass loss=..., metrics=[...] or both.")
    dev = model_device(model) if device is None else resolve_device(device)
    model.to(dev)
    loss_fn, info = resolve_loss(loss) if loss is not None else (None, LossInfo("none", "custom", "values", ""))
    if isinstance(loss_fn, nn.Module):
        loss_fn.to(dev)
    autocast = autocast_for(str(precision), dev)
    source = to_source(data, arg="data", target=target)
    batches = make_batches(source, batch_size=batch_size, shuffle=False, device=dev, generator=None)
    head = batches.peek() if (check or metrics) else None
    out = None
    if check and head is not None:
        from ..diagnosis import check_batch

        with autocast():  # the forward the batches will get, also for the metrics' task below
            report = check_batch(model, head[0], head[1], loss_fn=loss_fn, loss_info=info,
                                 stage="evaluate")
        report.raise_for_errors()
        out = report.output
    metric_set = None
    if metrics:
        if head is None:
            raise ConfigError("metrics: the task could not be inferred from this data. Fix: pass task=.")
        if out is None:
            with eval_mode(model), torch.inference_mode(), autocast():
                out = call_model(model, head[0])
        if not isinstance(out, torch.Tensor):
            raise ConfigError(
                f"metrics: the model returns {describe(out)}, not one tensor; metrics need one output. "
                f"Fix: evaluate each head separately."
            )
        metric_set = MetricSet(metrics, infer_task(info, out, head[1], task)).to(dev)
    return evaluate_batches(model, batches, loss_fn, metric_set, autocast)


def positional_inputs(model: nn.Module) -> int:
    """How many positional arguments ``model.forward`` requires (0 if it cannot be told)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters.values()
    except (TypeError, ValueError):
        return 0
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
               for p in params)


def _concat(outputs: list[Any]) -> Any:
    first = outputs[0]
    if isinstance(first, torch.Tensor):
        return torch.cat(outputs)
    if isinstance(first, dict):
        return {k: torch.cat([o[k] for o in outputs]) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(torch.cat([o[i] for o in outputs]) for i in range(len(first)))
    raise NetwrightError(f"predict: cannot join model outputs of type {type(first).__name__}.")


def predict(model: nn.Module, data: Any, *, batch_size: int = 256, device: Any = None,
            precision: str = "32", check: bool = True) -> Any:
    """Raw model outputs for ``data`` (features, ``(X, y)``, a Dataset or a DataLoader), joined
    over batches and returned on the CPU; dict/tuple outputs are joined per part.

    ``check`` refuses NaN/Inf in the first batch's inputs and, when the first forward fails,
    names the layer and what it expected and received (the doctor's codes, as fit); while the
    forwards succeed it costs one reduction over the first batch. ``check=False`` skips it.

    >>> import torch, torch.nn as nn
    >>> predict(nn.Linear(3, 2), torch.randn(10, 3), batch_size=4).shape
    torch.Size([10, 2])
    """
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"model: expected a torch.nn.Module, received {describe(model)}.")
    dev = model_device(model) if device is None else resolve_device(device)
    model.to(dev)
    autocast = autocast_for(str(precision), dev)
    if isinstance(data, tuple) and len(data) == 2 and positional_inputs(model) >= 2:
        data = (data, None)  # a pair of arrays for a two-input model is its inputs, not (X, y)
    source = to_source(data, arg="data", targets=False)
    if isinstance(source, InMemory):
        source = InMemory(source.x, None)
    batches = make_batches(source, batch_size=batch_size, shuffle=False, device=dev,
                           generator=None, targets=False)
    outputs = []
    if check:
        from ..diagnosis import check_batch
    with eval_mode(model), torch.inference_mode():
        for x, _ in batches:
            if check and not outputs:
                check_batch(model, x, stage="predict", forward=False).raise_for_errors()
            try:
                out, _ = eval_step(model, x, None, None, autocast)
            except Exception:
                if check and not outputs:  # the doctor's traced forward names the failing layer
                    with autocast():
                        check_batch(model, x, stage="predict").raise_for_errors()
                raise
            outputs.append(_to_cpu(out))
    if not outputs:
        raise NetwrightError("predict: the data yielded no batches.")
    return _concat(outputs)


def _to_cpu(out: Any) -> Any:
    if isinstance(out, torch.Tensor):
        return out.float().cpu() if out.dtype in (torch.float16, torch.bfloat16) else out.cpu()
    if isinstance(out, dict):
        return {k: _to_cpu(v) for k, v in out.items()}
    if isinstance(out, (tuple, list)):
        return type(out)(_to_cpu(v) for v in out)
    return out
