"""Checks of the model and its input (NW2xx): a layer that does not fit its input (sizes,
channels-last images, dtypes, token ids), a failing forward named by layer, channels-last images a
convolution reads as channels, a recurrent layer reading the batch as time, BatchNorm on batches
of one sample."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..util import call_model
from .report import Finding, error_line, finding, fmt
from .tracing import BATCHNORMS, CONVS, Trace, tensors


def _layer(path: str, module: nn.Module) -> str:
    name = type(module).__name__
    return f"{name} (the model itself)" if not path else f"{name} '{path}'"


def _layer_repr(module: nn.Module) -> str:
    extra = module.extra_repr()
    return f"{type(module).__name__}({extra})" if extra else type(module).__name__


def _permute_for(dims: int) -> str:
    return {1: "x.permute(0, 2, 1)", 2: "x.permute(0, 3, 1, 2)", 3: "x.permute(0, 4, 1, 2, 3)"}[dims]


def _fit_problem(path: str, module: nn.Module, args: tuple) -> tuple[str, str, str] | None:
    """(code, message, fix) when ``module`` cannot take ``args[0]``, else None."""
    if not args or not isinstance(args[0], torch.Tensor):
        return None
    t = args[0]
    name = _layer(path, module)
    weight = getattr(module, "weight", None)
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        if t.is_floating_point():
            return ("NW204", f"{name} looks up integer token ids; its input is {fmt(t)}.",
                    "pass the ids as integers, x = x.long(); for continuous features use a Linear "
                    "layer instead of an Embedding")
        if t.numel():
            low, high = int(t.min()), int(t.max())
            if low < 0 or high >= module.num_embeddings:
                return ("NW205", f"{name} holds {module.num_embeddings} rows (ids 0 to "
                        f"{module.num_embeddings - 1}); its input has ids from {low} to {high}.",
                        f"set num_embeddings (vocab_size) to at least {high + 1}, or map "
                        f"unknown tokens to an id below {module.num_embeddings}")
        return None
    if isinstance(module, (nn.Linear, *CONVS, nn.RNNBase)) and not t.is_floating_point():
        pixels = " (0-255 pixels: x = x.float() / 255)" if t.dtype in (torch.uint8, torch.int64) else ""
        return ("NW204", f"{name} computes in floating point; its input is {fmt(t)}.",
                f"convert the inputs to float, x = x.float(){pixels}")
    if (isinstance(weight, torch.Tensor) and t.is_floating_point() and weight.is_floating_point()
            and t.dtype != weight.dtype):
        return ("NW204", f"{name} has {str(weight.dtype).replace('torch.', '')} weights; its input "
                f"is {fmt(t)}.", f"x = x.to({str(weight.dtype)}) (or model.to(the input's dtype))")
    if isinstance(module, nn.Linear):
        if t.ndim >= 1 and t.shape[-1] != module.in_features:
            per_row = math.prod(t.shape[1:]) if t.ndim > 1 else t.shape[-1]
            if t.ndim > 2 and per_row == module.in_features:
                fix = (f"flatten each sample first: add nn.Flatten() before '{path or 'it'}' "
                       f"(or x = x.reshape(len(x), -1))")
            else:
                fix = (f"set in_features={t.shape[-1]} on {name}, or give it inputs with "
                       f"{module.in_features} features")
            return ("NW201", f"{name} expects in_features={module.in_features} input features; "
                    f"its input has {t.shape[-1]} ({fmt(t)}).", fix)
        return None
    if isinstance(module, CONVS):
        dims = len(module.kernel_size)
        cin = module.in_channels
        if t.ndim == dims + 2:
            if t.shape[1] != cin:
                if t.shape[-1] == cin:
                    return ("NW202", f"{name} expects channels first, (N, C={cin}, ...); its input "
                            f"{fmt(t)} has the {cin} channel(s) last.",
                            f"move the channels to dim 1: x = {_permute_for(dims)}")
                return ("NW201", f"{name} expects in_channels={cin}; its input {fmt(t)} has "
                        f"{t.shape[1]} channels in dim 1.",
                        f"set in_channels={t.shape[1]}, or give images of {cin} channel(s)")
            return None
        if t.ndim == dims + 1 and t.shape[0] != cin:
            return ("NW201", f"{name} expects batches of shape (N, C={cin}, {dims} spatial dims); "
                    f"its input {fmt(t)} has no channel dimension.",
                    "add the channel dimension: x = x.unsqueeze(1)" if cin == 1 else
                    f"give inputs of shape (N, {cin}, ...)")
        if t.ndim == 2 and dims == 2:
            side = math.isqrt(max(t.shape[1] // max(cin, 1), 0))
            guess = (f"x = x.reshape(-1, {cin}, {side}, {side})" if cin * side * side == t.shape[1]
                     else f"x = x.reshape(-1, {cin}, H, W)")
            return ("NW201", f"{name} expects images (N, C={cin}, H, W); its input is flat, {fmt(t)}.",
                    f"reshape each row into an image, {guess} (a run config: data.shape)")
        if t.ndim not in (dims + 1, dims + 2):
            return ("NW201", f"{name} expects inputs with {dims + 2} dims (N, C, ...); its input "
                    f"is {fmt(t)}.", f"reshape the inputs to (N, {cin}, ...)")
        return None
    if isinstance(module, nn.RNNBase):
        if t.ndim >= 1 and t.shape[-1] != module.input_size:
            if t.ndim == 2 and module.input_size == 1:
                fix = "add the feature dimension: x = x.unsqueeze(-1), giving (N, T, 1)"
            else:
                fix = (f"set input_size={t.shape[-1]}, or give sequences of {module.input_size} "
                       f"features per step")
            return ("NW201", f"{name} expects input_size={module.input_size} features per step; its "
                    f"input {fmt(t)} has {t.shape[-1]}.", fix)
        return None
    if isinstance(module, BATCHNORMS):
        if t.ndim >= 2 and t.shape[1] != module.num_features:
            return ("NW201", f"{name} expects num_features={module.num_features} channels in dim 1; "
                    f"its input {fmt(t)} has {t.shape[1]}.",
                    f"set num_features={t.shape[1]}")
        return None
    if isinstance(module, nn.LayerNorm):
        shape = tuple(module.normalized_shape)
        if tuple(t.shape[-len(shape):]) != shape:
            return ("NW201", f"{name} normalises the last dims of shape {shape}; its input is {fmt(t)}.",
                    f"set normalized_shape={tuple(t.shape[-len(shape):])}")
    return None


def forward_failure(model: nn.Module, x: Any, trace: Trace, exc: BaseException) -> Finding:
    """A finding that names the layer where the forward failed, its input, and a fix."""
    lead = f"forward failed on the first batch, inputs {fmt(x)}"
    if not trace.stack:  # no hook fired (a scripted model): only the exception to go by
        return finding("NW203", f"{lead}: {error_line(exc)}",
                       f"make {type(model).__name__}.forward accept these inputs", "model")
    path, module, args = trace.stack[-1]
    problem = _fit_problem(path, module, args)
    if problem is not None:
        code, message, fix = problem
        if code == "NW201" and trace.first is not None and trace.first[1] is not module:
            code = "NW203"  # a layer further in: its size does not fit what the layer before returns
            message += " (it is not the first layer: check what the layer before it returns)"
        return finding(code, f"{lead}: {message}", fix, path or "model")
    if module is model or not path:
        after = ""
        if trace.last_done is not None:
            after = (f", after layer '{trace.last_done[0]}' returned {fmt(trace.last_done[2])}")
        return finding(
            "NW203", f"{lead}, in {type(model).__name__}.forward itself{after}: {error_line(exc)}",
            f"check the tensor operations in {type(model).__name__}.forward"
            + (f" after '{trace.last_done[0]}'" if trace.last_done else "")
            + " against these shapes", "model")
    return finding(
        "NW203", f"{lead}, in layer '{path}' ({_layer_repr(module)}) whose input was "
        f"{fmt(args)}: {error_line(exc)}",
        f"make '{path}' accept {fmt(args[0] if len(args) == 1 else args)} (change its sizes) or "
        f"change what the layers before it return", path)


def success_layer_findings(trace: Trace, rows: int | None) -> list[Finding]:
    found = []
    if trace.first is not None:
        path, module, args = trace.first
        t = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if (isinstance(module, nn.Conv2d) and t is not None and t.ndim == 4
                and t.shape[3] in (1, 3, 4) and t.shape[1] > 4 and t.shape[2] > 4):
            found.append(finding(
                "NW210", f"{_layer(path, module)} reads dim 1 of {fmt(t)} as {t.shape[1]} channels, "
                f"but the images look channels-last (N, H, W, C={t.shape[3]}): the convolution then "
                f"slides over width and channels.",
                f"x = x.permute(0, 3, 1, 2) and in_channels={t.shape[3]}", path or "model"))
    if rows:
        for path, module, shape in trace.recurrent:
            if (not module.batch_first and len(shape) == 3 and shape[0] == rows and shape[1] != rows):
                found.append(finding(
                    "NW211", f"{_layer(path, module)} has batch_first=False, so it reads its input "
                    f"of shape {shape} as (T={shape[0]}, N={shape[1]}, F): the {rows} samples of the "
                    f"batch become time steps and the {shape[1]} time steps become samples.",
                    "create it with batch_first=True (netwright's rnn/lstm/gru layers do), or pass "
                    "x.transpose(0, 1)", path or "model"))
    return found


def batchnorm_findings(trace: Trace, rows: int, batch_sizes: Sequence[int] | None) -> list[Finding]:
    if not trace.norms or not rows:
        return []
    sizes = [b for b in (batch_sizes or []) if b > 0]
    smallest = min(sizes) if sizes else rows
    found = []
    for path, module, shape in trace.norms:
        if len(shape) < 2 or shape[1] == 0:
            continue
        per_channel = math.prod(shape) // shape[1]  # values per channel in this batch
        at_smallest = per_channel * smallest / rows
        if at_smallest <= 1:
            which = ("every batch has 1 sample (batch_size=1)" if smallest == rows
                     else f"a batch of {smallest} sample (the last one: the data does not divide "
                     f"into batches of {max(sizes or [rows])})")
            found.append(finding(
                "NW208", f"{_layer(path, module)} normalises each channel over the batch and in "
                f"training needs more than 1 value per channel; {which}, so it gets input of shape "
                f"({smallest}, {', '.join(str(s) for s in shape[1:])}) and torch raises "
                f"'Expected more than 1 value per channel when training'.",
                "use drop_last=True or a batch size that leaves no batch of 1 sample; or nn.LayerNorm/"
                "nn.GroupNorm, which do not depend on the batch", path or "model"))
            break
    return found


def nonfinite_output_findings(out: Any) -> list[Finding]:
    """NaN/Inf in the output of a forward on finite inputs."""
    found = []
    for name, t in tensors(out, "output"):
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            found.append(finding(
                "NW209", f"the model's {name} ({fmt(t)}) has "
                f"{int((~torch.isfinite(t)).sum())} NaN/Inf values although the inputs are "
                f"finite.", "look for log/sqrt/division of values that can be 0 or "
                "negative in forward, or weights that were loaded NaN", "output"))
    return found


def eval_randomness_findings(target: nn.Module, x: Any, out: Any) -> list[Finding]:
    """Run when the eval-mode forward drew random numbers: compare a second one to be sure."""
    with torch.no_grad():
        try:
            again = call_model(target, x)
        except Exception:  # noqa: BLE001
            again = out
    first_t = tensors(out, "o")
    second_t = tensors(again, "o")
    differs = any(a[1].shape != b[1].shape or not torch.equal(a[1], b[1])
                  for a, b in zip(first_t, second_t))
    if not differs:
        return []
    return [finding(
        "NW207", "two eval-mode forwards of the same batch give different outputs: "
        "something random stays active in evaluation, typically F.dropout(x, p) whose "
        "training argument defaults to True, so validation scores and predictions are "
        "noisy.", "use nn.Dropout modules, or F.dropout(x, p, training=self.training)",
        "model")]
