""":func:`load_weights`: a checkpoint into a model, in one of :data:`LOAD_MODES`.

The source is opened (:mod:`.sources`), its keys planned against the model's (:mod:`.repair`),
tied model tensors filled from any key for them, and only when the mode's check passes are the
tensors copied into the model; otherwise the error lists what did not fit and which mode would
load it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, describe, did_you_mean
from .repair import LoadReport, Shape, listing, plan_keys
from .sources import CheckpointSource, open_source
from .weights_file import SHOWN

LOAD_MODES = ("strict", "repair", "partial")


def _tie_groups(model_state: Mapping[str, torch.Tensor]) -> list[list[str]]:
    by_tensor: dict[int, list[str]] = {}
    for key, value in model_state.items():
        by_tensor.setdefault(id(value), []).append(key)
    return [keys for keys in by_tensor.values() if len(keys) > 1]


def _shape_str(shape: Shape) -> str:
    return str(tuple(shape))


def _mismatch_error(report: LoadReport, model: nn.Module, src_shapes: Mapping[str, Shape],
                    dst_shapes: Mapping[str, Shape], fix: str) -> CheckpointError:
    model_name = type(model).__name__
    total = len(dst_shapes)
    parts = []
    if report.missing:
        parts.append(f"{len(report.missing)} missing")
    if report.unexpected:
        parts.append(f"{len(report.unexpected)} unexpected")
    if report.shape_mismatched:
        parts.append(f"{len(report.shape_mismatched)} with another shape")
    lines = [f"the weights in {report.source} do not fit {model_name} "
             f"(mode={report.mode!r}): {', '.join(parts)}; {len(report.matched)} of the model's "
             f"{total} tensors matched."]
    if report.shape_mismatched:
        lines.append("  shape differs: " + listing(
            f"{k!r} checkpoint {_shape_str(a)} vs model {_shape_str(b)}"
            for k, (a, b) in report.shape_mismatched.items()))
    if report.missing:
        lines.append("  in the model, not in the checkpoint: " + listing(
            f"{k!r} {_shape_str(dst_shapes[k])}" for k in report.missing))
    if report.unexpected:
        lines.append("  in the checkpoint, not in the model: " + listing(
            f"{k!r} {_shape_str(src_shapes[k])}" for k in report.unexpected))
    if report.renamed:
        lines.append("  renamed: " + listing(f"{s!r} -> {d!r}" for s, d in report.renamed.items()))
    lines.append(f"Nothing was loaded. Fix: {fix}")
    return CheckpointError("\n".join(lines))


def _nothing_fits(source: CheckpointSource, model: nn.Module, src_shapes: Mapping[str, Shape],
                  dst_shapes: Mapping[str, Shape], mode: str) -> CheckpointError:
    def few(shapes: Mapping[str, Shape]) -> str:
        return listing((f"{k!r} {_shape_str(s)}" for k, s in shapes.items()), 5) or "(none)"
    return CheckpointError(
        f"nothing in {source.name} fits model {type(model).__name__} (mode={mode!r}): none of its "
        f"{len(src_shapes)} tensors matches one of the model's {len(dst_shapes)} by name and "
        f"shape, even after removing wrapper prefixes and pairing renamed layers.\n"
        f"  checkpoint (weights at {source.location}): {few(src_shapes)}\n"
        f"  model: {few(dst_shapes)}\n"
        f"Fix: check that the checkpoint was saved from this architecture (same layer sizes), "
        f"or pass the entry of the file that holds this model's weights."
    )


def load_weights(model: nn.Module, source: Any, mode: str = "strict", *,
                 allow_pickle: bool = False, map_location: Any = "cpu") -> LoadReport:
    """Load weights into ``model`` from a file, a folder or a dict, and report what was done.

    ``source`` is a ``.safetensors`` file, a ``torch.save`` file (``.pt``/``.pth``/``.bin``, a
    Lightning ``.ckpt``, or a dict holding the state_dict under ``state_dict``,
    ``model_state_dict``, ``model``, ``net`` or ``weights``), a run folder or checkpoint folder
    (holding ``weights.safetensors``), or an in-memory dict of tensors.

    ``mode``:

    - ``"strict"``: keys and shapes must match exactly.
    - ``"repair"``: also strips or adds the wrapper prefixes ``module.`` (DataParallel/DDP),
      ``_orig_mod.`` (torch.compile), ``model.``/``net.`` (wrappers, Lightning), and maps layers
      that were renamed when their parameters agree in names and shapes (and order among alike
      layers). Every mapping is listed in ``report.renamed``. Anything still unfit is an error.
    - ``"partial"``: like repair, then loads every tensor that fits and reports the rest
      (``missing``, ``unexpected``, ``shape_mismatched``): fine-tuning with a new head.

    Nothing is loaded when a mode's check fails, and no mode loads zero tensors silently.
    Tensors are copied into the model's own parameters and buffers, keeping their device and
    dtype. ``torch.load`` runs with ``weights_only=True``; a file that needs a full unpickle is
    refused unless ``allow_pickle=True``, which runs code from the file: only for files you trust.

    >>> net = nn.Sequential(nn.Linear(3, 2))
    >>> saved = {"module." + k: v for k, v in nn.Sequential(nn.Linear(3, 2)).state_dict().items()}
    >>> report = load_weights(net, saved, mode="repair")
    >>> report.renamed
    {'module.0.weight': '0.weight', 'module.0.bias': '0.bias'}
    >>> torch.equal(net[0].weight, saved["module.0.weight"])
    True
    """
    if mode not in LOAD_MODES:
        raise ConfigError(f"load_weights mode must be one of {', '.join(map(repr, LOAD_MODES))}; "
                          f"got {mode!r}.{did_you_mean(str(mode), LOAD_MODES)}")
    if not isinstance(model, nn.Module):
        raise ConfigError(f"load_weights expects an nn.Module as model; got {describe(model)}. "
                          f"Fix: build the model first, then load its weights into it.")
    src = open_source(source, allow_pickle, map_location)
    model_state = model.state_dict(keep_vars=True)
    dst_shapes = {k: tuple(v.shape) for k, v in model_state.items() if isinstance(v, torch.Tensor)}
    src_shapes = {k: tuple(v.shape) for k, v in src.state.items()}
    plan = plan_keys(src_shapes, dst_shapes, repair=mode != "strict", src_ordered=src.ordered)

    # A tied model key is filled by any checkpoint key for its tensor; checkpoints often store
    # the shared weight once (Hugging Face, netwright).
    tied: dict[str, str] = {}
    for keys in _tie_groups(model_state):
        loaded = [k for k in keys if k in plan.pairs]
        values = [src.state[plan.pairs[k]] for k in loaded]
        dtype = model_state[keys[0]].dtype  # compared as they would be loaded: in the model's dtype
        if any(not torch.equal(values[0].to(dtype), v.to(dtype)) for v in values[1:]):
            raise CheckpointError(
                f"{type(model).__name__} ties {', '.join(map(repr, loaded))} (one shared "
                f"tensor), but {src.name} holds different values for them: loading would keep "
                f"one and silently drop the other. Fix: untie them in the model to load both, or "
                f"drop one of them from the checkpoint to choose.")
        if loaded:
            for k in keys:
                if k not in plan.pairs:
                    tied[k] = loaded[0]
                    plan.missing = [m for m in plan.missing if m != k]
                    if k in plan.mismatched:
                        plan.unexpected.append(plan.mismatched.pop(k))

    report = LoadReport(
        source=src.name, mode=mode, location=src.location,
        matched=[k for k in dst_shapes if k in plan.pairs or k in tied],
        missing=list(plan.missing), unexpected=list(plan.unexpected),
        shape_mismatched={d: (src_shapes[s], dst_shapes[d]) for d, s in plan.mismatched.items()},
        renamed={s: d for d, s in list(plan.pairs.items()) + list(plan.mismatched.items())
                 if s != d},
        tied=tied,
    )
    repaired = plan if mode != "strict" or report.ok else \
        plan_keys(src_shapes, dst_shapes, repair=True, src_ordered=src.ordered)
    if not repaired.pairs:
        raise _nothing_fits(src, model, src_shapes, dst_shapes, mode)
    if mode != "partial" and not report.ok:
        if mode == "strict":
            fixable = not (repaired.missing or repaired.unexpected or repaired.mismatched)
            example = next(((s, d) for d, s in repaired.pairs.items() if s != d), None)
            if fixable and example:
                fix = (f"use mode='repair', which maps every key (e.g. {example[0]!r} -> "
                       f"{example[1]!r}) and lists each mapping in the report.")
            elif example:
                left = listing([repr(k) for k in repaired.mismatched] + [repr(k) for k in
                                repaired.missing] + [repr(k) for k in repaired.unexpected], 4)
                fix = (f"mode='repair' maps {len(repaired.pairs) - len(plan.pairs)} more keys "
                       f"(e.g. {example[0]!r} -> {example[1]!r}), but {left} would still not "
                       f"fit; if that is intended (a new head with another number of classes), "
                       f"use mode='partial' to load what fits and keep the rest as initialized.")
            else:
                fix = ("if the differences are intended (a new head with another number of "
                       "classes, an added layer), use mode='partial' to load what fits and keep "
                       "the rest as initialized; otherwise check that the checkpoint was saved "
                       "from this architecture (same layer sizes).")
        else:
            fix = ("if the differences are intended (a new head with another number of classes, "
                   "an added layer), use mode='partial' to load the tensors that fit and keep the "
                   "rest as initialized; otherwise check that the checkpoint was saved from this "
                   "architecture (same layer sizes).")
        raise _mismatch_error(report, model, src_shapes, dst_shapes, fix)

    to_load = {d: src.state[s] for d, s in plan.pairs.items()}
    try:
        result = model.load_state_dict(to_load, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"copying the weights of {src.name} into {type(model).__name__} "
                              f"failed: {exc}. Fix: check the checkpoint's dtypes.") from None
    if result.unexpected_keys:  # cannot happen with keys taken from the model's own state_dict
        raise CheckpointError(f"{type(model).__name__} refused keys "
                              f"{result.unexpected_keys[:SHOWN]} of its own state_dict.")
    return report
