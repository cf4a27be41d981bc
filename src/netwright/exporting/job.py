"""The job: the model on the CPU in eval mode, its example inputs in forward's order, and its
eager outputs in the documented order, which every exported artifact must reproduce. A model that
cannot run on the example is refused here, with the failing layer named."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, ExportError, describe
from ..util import eval_mode, first_line
from .report import SEED


@dataclass
class Job:
    net: Any  # nn.Module, CPU, eval mode
    inputs: list  # example tensors, in input_names order
    keywords: bool  # passed as forward(**dict) rather than forward(*tuple)
    input_names: list[str]
    output_names: list[str]
    expected: list  # eager outputs on the example, flattened
    batch: int
    dynamic: bool
    int_ranges: list  # per input: (low, high) for integer inputs, else None
    float_stats: list  # per input: (mean, std) for float inputs, else None
    other: list = field(default_factory=list)  # random inputs of another batch size
    other_expected: list = field(default_factory=list)  # eager outputs on them, flattened
    sequence: int | None = None  # token-id models: the longest sequence (dim 1 is dynamic too)

    def call(self, inputs: Sequence) -> Any:
        if self.keywords:
            return self.net(**dict(zip(self.input_names, inputs)))
        return self.net(*inputs)

    def trace_inputs(self) -> list:
        """Inputs to trace with: torch.export specializes a dimension of size 1 to a constant,
        so a batch of 1 is doubled (the model sees the same sample twice)."""
        import torch

        if self.dynamic and self.batch == 1:
            return [torch.cat([t, t]) for t in self.inputs]
        return list(self.inputs)

    def trace_args(self) -> tuple[tuple, dict]:
        xs = self.trace_inputs()
        if self.keywords:
            return (), dict(zip(self.input_names, xs))
        return tuple(xs), {}

    def dynamic_shapes(self) -> Any:
        if not self.dynamic:
            return None
        import torch

        batch = torch.export.Dim("batch", min=1)
        dims = {0: batch}
        if self.sequence is not None:  # padded token ids: any length up to the model's longest
            dims[1] = torch.export.Dim("sequence", min=1, max=self.sequence)
        if self.keywords:
            return {n: dict(dims) for n in self.input_names}
        return tuple(dict(dims) for _ in self.inputs)


def flatten_outputs(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Outputs in the documented order: dicts by key order, tuples/lists by position."""
    if hasattr(obj, "shape") and hasattr(obj, "dtype"):
        return [(prefix or "output", obj)]
    if isinstance(obj, Mapping):
        out = []
        for key, value in obj.items():
            out += flatten_outputs(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    if isinstance(obj, (list, tuple)):
        out = []
        for i, value in enumerate(obj):
            out += flatten_outputs(value, f"{prefix}.{i}" if prefix else f"output.{i}")
        return out
    raise ExportError(
        f"export: the model returns {describe(obj)}{' at ' + repr(prefix) if prefix else ''}; "
        f"exports hold tensors only (alone, or in dicts, tuples and lists). Fix: return tensors "
        f"from forward, and compute other values outside the model."
    )


def _forward_names(net: Any, count: int) -> list[str]:
    try:
        params = list(inspect.signature(net.forward).parameters.values())
    except (TypeError, ValueError):
        params = []
    names: list[str] = []
    for p in params:
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) or len(names) == count:
            break
        names.append(p.name)
    while len(names) < count:
        names.append(f"input_{len(names)}")
    return names


def _cpu_eval_copy(model: Any) -> Any:
    """The model to export: itself if it lives on the CPU (modes restored afterwards), else a
    CPU copy. Artifacts are made on the CPU so that they load anywhere."""
    import torch

    tensors = list(model.parameters()) + list(model.buffers())
    if all(t.device.type == "cpu" for t in tensors):
        return model
    return copy.deepcopy(model).to(torch.device("cpu"))


def _example_inputs(model: Any, example: Any, gen: Any) -> tuple[list, bool, list[str] | None,
                                                                 bool]:
    """(tensors, keywords?, names for keywords, made from a shape?)."""
    import torch

    from ..models.builder import spec_of
    from ..models.scaling import unwrap

    spec = spec_of(unwrap(model)) or {}
    if example is None:
        if not spec.get("input_shape"):
            raise ConfigError(
                "export needs an example input: the model was not built by netwright with an "
                "input_shape, so its input cannot be guessed. Fix: pass example=a batch of real "
                "inputs (a tensor, a tuple of tensors or a dict of tensors), or the shape of one "
                "sample, e.g. example=(20,)."
            )
        example = tuple(spec["input_shape"])
    if isinstance(example, np.ndarray):
        example = torch.from_numpy(example)
    is_shape = isinstance(example, torch.Size) or (
        isinstance(example, (tuple, list)) and example
        and all(isinstance(s, int) and not isinstance(s, bool) for s in example))
    if is_shape:
        shape = tuple(int(s) for s in example)
        if any(s < 1 for s in shape):
            raise ConfigError(f"export example shape {shape}: sizes must be positive.")
        if token_ids_model(model) and len(shape) == 1:
            return [padded_ids(gen, 2, max(2, shape[0]), _vocab_size(model) or 3)], False, None, True
        if spec.get("input_dtype") == "int64" or _first_layer_is_embedding(model):
            vocab = _vocab_size(model) or 2
            return [torch.randint(0, vocab, (2, *shape), generator=gen)], False, None, True
        return [torch.randn((2, *shape), generator=gen)], False, None, True
    if isinstance(example, torch.Tensor):
        return [example], False, None, False
    if isinstance(example, (tuple, list)) and example and all(
            isinstance(t, (torch.Tensor, np.ndarray)) for t in example):
        return [torch.as_tensor(t) for t in example], False, None, False
    if isinstance(example, Mapping) and example and all(
            isinstance(k, str) and isinstance(v, (torch.Tensor, np.ndarray))
            for k, v in example.items()):
        return [torch.as_tensor(v) for v in example.values()], True, list(example), False
    raise ConfigError(
        f"export example: expected a batch of inputs (a tensor, a tuple of tensors for a model "
        f"with several inputs, or a dict of tensors passed as forward's keyword arguments) or "
        f"the shape of one sample such as (20,); got {describe(example)}."
    )


def token_ids_model(model: Any) -> bool:
    """A model that reads right-padded token ids and finds the padding itself (netwright's
    text models mark themselves with ``reads_token_ids = True``)."""
    return any(getattr(m, "reads_token_ids", False) for m in model.modules())


def longest_sequence(model: Any, default: int = 4096) -> int:
    """The longest token sequence a text model takes (a Transformer's positions), else ``default``."""
    found = [int(m.max_length) for m in model.modules()
             if getattr(m, "reads_token_ids", False) and getattr(m, "max_length", None)]
    return min(found) if found else default


def padded_ids(gen: Any, batch: int, length: int, vocab: int) -> Any:
    """Right-padded token ids of mixed lengths: the first row ``length`` long, the others
    shorter (down to 1); real ids in [2, vocab), padding 0."""
    import torch

    ids = torch.randint(min(2, vocab - 1), max(3, vocab), (batch, length), generator=gen)
    lengths = [length] + [int(v) for v in torch.randint(1, length + 1, (batch - 1,), generator=gen)]
    for row, n in enumerate(lengths):
        ids[row, n:] = 0
    return ids


def _first_layer_is_embedding(model: Any) -> bool:
    from torch import nn

    for m in model.modules():
        if next(m.parameters(recurse=False), None) is not None:
            return isinstance(m, nn.Embedding)
    return False


def _vocab_size(model: Any) -> int | None:
    from torch import nn

    for m in model.modules():
        if isinstance(m, nn.Embedding):
            return int(m.num_embeddings)
    return None


def prepare_job(model: Any, example: Any, dynamic_batch: bool) -> Job:
    import torch
    from torch import nn

    if not isinstance(model, nn.Module):
        raise ConfigError(f"export expects an nn.Module; got {describe(model)}. Fix: pass the "
                          f"model (e.g. nw.load(run_dir)).")
    gen = torch.Generator().manual_seed(SEED)
    inputs, keywords, names, from_shape = _example_inputs(model, example, gen)
    net = _cpu_eval_copy(model)
    inputs = [t.detach().to("cpu") for t in inputs]
    for name, t in zip(names or [None] * len(inputs), inputs):
        if t.ndim == 0:
            raise ExportError(f"export example{' ' + repr(name) if name else ''} is a scalar "
                              f"tensor; expected a batch with the batch dimension first. Fix: "
                              f"e.g. example=x.reshape(1, -1).")
    if keywords:
        order = _forward_names(net, 10_000)
        unknown = [n for n in names if n not in order]
        if unknown:
            raise ConfigError(
                f"export example dict: its keys are passed as forward's keyword arguments, but "
                f"{type(net).__name__}.forward has no parameter {', '.join(map(repr, unknown))} "
                f"(it takes {', '.join(order) or 'none'}). Fix: use forward's parameter names as "
                f"keys, or pass a tuple in forward's order."
            )
        # forward's order: torch.export lays keyword inputs out in the signature's order.
        pairs = sorted(zip(names, inputs), key=lambda p: order.index(p[0]))
        names, inputs = [p[0] for p in pairs], [p[1] for p in pairs]
    else:
        names = _forward_names(net, len(inputs))
    batches = {int(t.shape[0]) for t in inputs}
    if dynamic_batch and len(batches) > 1:
        raise ExportError(
            f"export example: with dynamic_batch=True the first dimension of every input is the "
            f"batch, but the inputs have first sizes "
            f"{', '.join(f'{n}={int(t.shape[0])}' for n, t in zip(names, inputs))}. Fix: give "
            f"every input the same batch size, or dynamic_batch=False."
        )
    with eval_mode(net):
        _check_batch_dimension(model, inputs)
        outputs = _run_eager(net, inputs, keywords, names)
    flat = flatten_outputs(outputs)
    out_names = [n for n, _ in flat]
    if len(set(out_names)) != len(out_names):
        raise ExportError(f"export: the model's outputs would get the same name twice "
                          f"({out_names}). Fix: use distinct dict keys.")
    int_ranges, float_stats = [], []
    for t in inputs:
        if t.is_floating_point():
            f = t.double()
            std = float(f.std()) if t.numel() > 1 else 0.0
            float_stats.append((float(f.mean()), std if std > 0 and math.isfinite(std) else 1.0))
            int_ranges.append(None)
        else:
            float_stats.append(None)
            if t.dtype == torch.bool:
                int_ranges.append((0, 1))
            elif from_shape:
                int_ranges.append((0, (_vocab_size(net) or 2) - 1))
            else:
                int_ranges.append((int(t.min()), int(t.max())) if t.numel() else (0, 0))
    job = Job(net=net, inputs=inputs, keywords=keywords, input_names=list(names),
              output_names=out_names, expected=[t.detach() for _, t in flat],
              batch=int(inputs[0].shape[0]), dynamic=bool(dynamic_batch),
              int_ranges=int_ranges, float_stats=float_stats)
    if job.dynamic and len(inputs) == 1 and inputs[0].ndim == 2 and not inputs[0].is_floating_point() \
            and token_ids_model(net):
        job.sequence = longest_sequence(net)
    if job.dynamic:
        job.other = random_inputs(job, _other_batch(job.batch),
                                  torch.Generator().manual_seed(SEED + 1))
        job.other_expected = [t for _, t in flatten_outputs(eager_on(job, job.other))]
    return job


def eager_on(job: Job, inputs: list) -> Any:
    """The eager model on inputs of another batch size: a model that cannot take them has its
    batch size written into forward, which a dynamic-batch export cannot hold."""
    import torch

    try:
        with eval_mode(job.net), torch.inference_mode():
            return job.call(inputs)
    except Exception as exc:  # noqa: BLE001 - the model's own failure, explained
        raise ExportError(
            f"export: with dynamic_batch=True the model must run on any batch size, but it "
            f"runs on the example (batch {job.batch}) and fails on a batch of "
            f"{int(inputs[0].shape[0])}: {type(exc).__name__}: {first_line(exc)}. Nothing was "
            f"exported. Fix: use the input's own batch size in forward (x.reshape(x.shape[0], "
            f"-1), not x.reshape({job.batch}, -1)), or dynamic_batch=False to export for batch "
            f"{job.batch} only."
        ) from None


def _check_batch_dimension(model: Any, inputs: list) -> None:
    from ..models.builder import spec_of
    from ..models.scaling import unwrap

    shape = (spec_of(unwrap(model)) or {}).get("input_shape")
    if shape and len(inputs) == 1 and tuple(inputs[0].shape) == tuple(shape):
        raise ExportError(
            f"export example has shape {tuple(inputs[0].shape)}: one sample without the batch "
            f"dimension; the model takes batches (N, {', '.join(map(str, shape))}). Fix: "
            f"example=x.unsqueeze(0), or example={tuple(shape)} to let netwright make a batch."
        )


def _run_eager(net: Any, inputs: list, keywords: bool, names: list[str]) -> Any:
    """The eager forward on the example, with the failing layer named if it fails."""
    import torch

    stack: list = []
    handles = []

    def pre(module, args, kwargs):
        stack.append((module, args, kwargs))

    def post(module, args, kwargs, output):
        if stack:
            stack.pop()

    for m in net.modules():
        handles.append(m.register_forward_pre_hook(pre, with_kwargs=True))
        handles.append(m.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.inference_mode():
            if keywords:
                return net(**dict(zip(names, inputs)))
            return net(*inputs)
    except Exception as exc:  # noqa: BLE001 - any failure is an example the model cannot take
        raise _forward_error(net, inputs, stack, exc) from None
    finally:
        for h in handles:
            h.remove()


def _shape(t: Any) -> str:
    return str(tuple(t.shape)) if hasattr(t, "shape") else describe(t)


def _forward_error(net: Any, inputs: list, stack: list, exc: BaseException) -> ExportError:
    """Name the innermost module that was running when the forward failed, and what it
    expected against what it got, e.g. ``Linear 'fc1' expects 20 input features; the example
    has 64 (shape (4, 64))``."""
    from ..models.builder import spec_of
    from ..models.scaling import unwrap

    example = ", ".join(_shape(t) for t in inputs)
    core = (f"{type(net).__name__}.forward fails on the example ({example}): "
            f"{type(exc).__name__}: {first_line(exc)}")
    if stack and stack[-1][0] is not net:
        module, args, kwargs = stack[-1]
        x = args[0] if args else next(iter(kwargs.values()), None)
        label = f"{type(module).__name__} {_module_name(net, module)!r}"
        if any(x is t for t in inputs):
            source = "the example has {} (shape " + _shape(x) + ")"
        else:
            source = "it receives {} (shape " + _shape(x) + ") from the example of shape " + example
        mismatch = _layer_mismatch(module, x) if hasattr(x, "shape") else None
        if mismatch is not None:
            expected, got = mismatch
            core = f"{label} expects {expected}; {source.format(got)}"
        else:
            core = (f"{label} fails on its input of shape {_shape(x)}: {type(exc).__name__}: "
                    f"{first_line(exc)}")
    spec = spec_of(unwrap(net)) or {}
    shape = spec.get("input_shape")
    if shape:
        dtype = " int64 token ids" if spec.get("input_dtype") == "int64" else ""
        fix = (f"give an example batch of shape (N, {', '.join(map(str, shape))}){dtype}, what "
               f"the model was built for, or example={tuple(shape)} to let netwright make one.")
    else:
        fix = ("give an example batch shaped like the data the model was trained on, the batch "
               "dimension first.")
    return ExportError(f"export: {core}. The model cannot run on this example, so nothing was "
                       f"exported. Fix: {fix}")


def _module_name(net: Any, module: Any) -> str:
    return next((n for n, m in net.named_modules() if m is module), "?")


def _layer_mismatch(module: Any, x: Any) -> tuple[str, Any] | None:
    """(what the layer expects, what it got) where a common layer's input does not fit it."""
    from torch import nn

    if isinstance(module, nn.Linear) and x.ndim >= 1 and x.shape[-1] != module.in_features:
        return f"{module.in_features} input features", x.shape[-1]
    if isinstance(module, nn.modules.conv._ConvNd):
        rank = len(module.kernel_size) + 2
        if x.ndim not in (rank - 1, rank):
            return f"{rank}-D input (N, C, ...)", f"{x.ndim} dimensions"
        if x.shape[-rank + 1] != module.in_channels:
            return f"{module.in_channels} input channels", x.shape[-rank + 1]
    if isinstance(module, nn.RNNBase):
        if x.ndim not in (2, 3):
            return "sequences (N, T, F)", f"{x.ndim} dimensions"
        if x.shape[-1] != module.input_size:
            return f"{module.input_size} features per step", x.shape[-1]
    if isinstance(module, nn.Embedding):
        if x.is_floating_point():
            return "int64 token ids", f"{str(x.dtype).replace('torch.', '')} values"
        if x.numel() and (int(x.max()) >= module.num_embeddings or int(x.min()) < 0):
            return (f"token ids in [0, {module.num_embeddings})",
                    f"ids from {int(x.min())} to {int(x.max())}")
    if isinstance(module, nn.modules.batchnorm._BatchNorm) and x.ndim >= 2 \
            and x.shape[1] != module.num_features:
        return f"{module.num_features} features (channels)", x.shape[1]
    if isinstance(module, nn.LayerNorm):
        want = tuple(module.normalized_shape)
        if tuple(x.shape[-len(want):]) != want:
            return f"trailing sizes {want}", tuple(x.shape[-len(want):])
    return None


def random_inputs(job: Job, batch: int, gen: Any) -> list:
    import torch

    if job.sequence is not None:  # padded token ids, of another length than the example's
        t = job.inputs[0]
        length = int(t.shape[1]) + 3 if int(t.shape[1]) + 3 <= job.sequence else max(2, job.sequence - 1)
        return [padded_ids(gen, batch, length, job.int_ranges[0][1] + 1)]
    out = []
    for t, ints, stats in zip(job.inputs, job.int_ranges, job.float_stats):
        shape = (batch, *t.shape[1:])
        if stats is not None:
            mean, std = stats
            x = torch.randn(shape, generator=gen, dtype=torch.float64) * std + mean
            out.append(x.to(t.dtype))
        elif t.dtype == torch.bool:
            out.append(torch.randint(0, 2, shape, generator=gen).bool())
        else:
            low, high = ints
            out.append(torch.randint(low, high + 1, shape, generator=gen).to(t.dtype))
    return out


def _other_batch(batch: int) -> int:
    return 5 if batch != 5 else 7
