"""``nw.save`` / ``nw.load``: a model as ``model.json`` (how to rebuild it) + ``weights.safetensors``.

``model.json`` holds what :func:`netwright.models.spec_of` says about a model netwright built (a
layer spec or a zoo name with arguments, and the input shape); for any other ``nn.Module``, the
spec :mod:`netwright.models.description` reads off it (torch's containers, nested; a torchvision
builder and its arguments; a class's import path and the arguments read back from its
attributes), or the class and the ``init_args`` the caller gives. A model that cannot be
described still has its weights saved, with ``"model": null`` and the reason. The weights are
safetensors.

A folder may come from someone else, so loading it never runs its code and never allocates more
than its weights justify: a class outside :data:`~netwright.models.trust.TRUSTED_MODULES`
needs ``trust_code=True``, checked on the string before any import; each module is first made on
the meta device (no memory) and counted against what the weights file's header holds before it is
made for real.

Saving replaces the pair of files as one unit: both are written into a staging folder
``.nw-save-<random>/``, which is renamed to ``.nw-save-pending/`` (the commit point) and then
emptied into place. A crash before the commit leaves the previous pair; a crash after it leaves
a pending folder whose files :func:`load` prefers and the next :func:`save` moves into place.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_write_text, fsync_dir, read_json
from .checkpoint import load_weights, read_safetensors_header, save_weights, weights_in_folder
from .errors import CheckpointError, ModelSpecError, NetwrightError, describe, short_repr
from .util import plain_module
from .models.budget import BudgetExceeded, BudgetUnknown
from .models.builder import rebuild, spec_of
from .models.description import (NotDescribable, build_ghost, class_target, describe_module,
                                 differences, float_dtype)
from .models.scaling import Scaled, unwrap

__all__ = ["MODEL_FORMAT", "describe_model", "rebuild_model", "save", "load", "MAX_EXTRA_VALUES"]

MODEL_FORMAT = "netwright.model/1"
FILES = ("model.json", "weights.safetensors")
PENDING = ".nw-save-pending"
# How many more values than its weights file holds a described model may have (non-strict modes
# load models that are partly new): 2**24 values are 64 MB of float32.
MAX_EXTRA_VALUES = 2**24
# The floating dtypes a model.json may ask the rebuilt model to be cast to.
_DTYPES = ("float16", "bfloat16", "float32", "float64")


def describe_model(model: nn.Module, *, init_args: dict | None = None) -> dict:
    """The ``model.json`` content for ``model``: a model netwright built by its spec; torch's
    containers (nested), torchvision classification models and any importable class as the spec
    that rebuilds them (see :mod:`netwright.models.description`); with ``init_args``, the model's
    class called with those arguments. Each is checked now, not at load time: a
    :class:`~netwright.models.description.NotDescribable` error says why a model cannot be.

    >>> from netwright.models import build
    >>> describe_model(build([{"linear": 2}], (3,)))["model"]["spec"]
    [{'linear': 2}]
    >>> describe_model(nn.Sequential(nn.Linear(3, 2)))["model"]["spec"]
    [{'class': 'torch.nn:Linear', 'args': {'in_features': 3, 'out_features': 2, 'bias': True}}]
    """
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"save: expected an nn.Module, received {describe(model)}.")
    scaled = _scaled_shapes(model)
    net = unwrap(model)
    desc = spec_of(net)
    if desc is None:
        spec = describe_module(net) if init_args is None else _given_arguments(net, init_args)
        desc = {"spec": spec, "input_shape": None, "input_dtype": None}
    dtype = float_dtype(model)
    if dtype is not None and dtype != torch.float32:
        desc["dtype"] = str(dtype).removeprefix("torch.")  # rebuilt in float32, then cast to it
    return {"format": MODEL_FORMAT, "model": desc, "scaled": scaled}


def _given_arguments(net: nn.Module, init_args: Any) -> dict:
    """``{"class": ..., "args": init_args}``, checked by building it on the meta device: the same
    state_dict keys and shapes as ``net``."""
    if type(net) in (nn.Sequential, nn.ModuleList, nn.ModuleDict):
        raise ModelSpecError(
            f"save: init_args= gives a class's constructor arguments, but this is torch's "
            f"nn.{type(net).__name__}, described from its children. Fix: leave init_args out."
        )
    try:
        args = json.loads(json.dumps(init_args, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ModelSpecError(f"save: init_args must be JSON data (numbers, strings, lists, "
                             f"mappings) to go into model.json; received {short_repr(init_args)} "
                             f"({exc}).") from None
    if not isinstance(args, dict):
        raise ModelSpecError(f"save: init_args must be a dict of keyword arguments; received "
                             f"{describe(init_args)}.")
    spec = {"class": class_target(type(net), "save"), "args": args}
    try:
        ghost = build_ghost(spec, "save")
    except NotDescribable as exc:
        raise ModelSpecError(f"{exc} Fix: pass init_args= with the constructor arguments.") from None
    diff = differences(net, ghost, shapes_only=True)
    if diff:
        raise ModelSpecError(
            f"save: {spec['class']}(**{args}) builds a model of another shape than the one being "
            f"saved ({diff}). Fix: pass init_args= with the arguments the model was created "
            f"with, e.g. init_args={{'in_features': 20}}."
        )
    return spec


def _scaled_shapes(model: nn.Module) -> dict | None:
    if not isinstance(model, Scaled):
        return None
    return {"x_shape": list(model.x_mean.shape) if model.scale_inputs else None,
            "y_shape": list(model.y_mean.shape) if model.scale_outputs else None}


def rebuild_model(description: dict, *, trust_code: bool = False,
                  max_values: int | None = None) -> nn.Module:
    """A fresh (untrained) model from ``model.json``'s content; classes outside the trusted
    packages need ``trust_code=True``. ``max_values`` bounds the values of its parameters and
    buffers (see :func:`netwright.models.build`)."""
    _check_description(description, "model.json")
    scaled = description.get("scaled")
    if scaled and max_values is not None:
        with torch.device("meta"):
            stats = Scaled(nn.Identity(), scaled.get("x_shape"), scaled.get("y_shape"))
        max_values -= sum(t.numel() for t in stats.state_dict().values())
        if max_values < 0:
            raise BudgetExceeded("model.json 'scaled': the standardisation statistics alone pass "
                                 "the budget.")
    net = rebuild(description["model"], trust_code=trust_code, max_values=max_values)
    if scaled:
        net = Scaled(net, scaled.get("x_shape"), scaled.get("y_shape"))
    dtype = description["model"].get("dtype")
    return net if dtype is None else net.to(getattr(torch, dtype))


def _check_description(description: Any, where: str) -> None:
    """The shape of model.json's content, checked before anything is built from it."""
    def fail(what: str) -> CheckpointError:
        return CheckpointError(f"{where}: {what}. It is not a file netwright wrote, or it was edited "
                               f"by hand. Fix: save the model again with nw.save.")

    if not isinstance(description, dict):
        raise fail(f"expected a JSON object, received {type(description).__name__}")
    if description.get("format") != MODEL_FORMAT:
        raise fail(f"expected format {MODEL_FORMAT!r}, received {short_repr(description.get('format'))}")
    model = description.get("model")
    if not isinstance(model, dict) or "spec" not in model:
        raise fail(f"expected \"model\": {{\"spec\": ..., \"input_shape\": ...}}, received "
                   f"{short_repr(model)}")
    if model.get("dtype", "float32") not in _DTYPES:
        raise fail(f"\"model.dtype\" must be one of {', '.join(_DTYPES)}; received "
                   f"{short_repr(model.get('dtype'))}")
    scaled = description.get("scaled")
    if scaled is None:
        return
    if not isinstance(scaled, dict) or set(scaled) - {"x_shape", "y_shape"}:
        raise fail(f"\"scaled\" must be {{\"x_shape\": [...] or null, \"y_shape\": [...] or null}}; "
                   f"received {short_repr(scaled)}")
    for key in ("x_shape", "y_shape"):
        shape = scaled.get(key)
        if shape is not None and not (
                isinstance(shape, list) and len(shape) <= 16
                and all(type(d) is int and 0 < d <= 2**31 for d in shape)
                and math.prod(shape) <= 2**31):
            raise fail(f"\"scaled.{key}\" must be a list of at most 16 positive sizes, at most "
                       f"{2**31:,} values in all; received {short_repr(shape)}")


def save(model: nn.Module, path: str | os.PathLike, *, init_args: dict | None = None,
         overwrite: bool = False) -> Path:
    """Write ``path/model.json`` and ``path/weights.safetensors``; returns the folder.

    The two files are replaced as one unit (see the module's docstring): a crash at any moment
    leaves either the old pair or the new one loadable, never new weights with an old model.json.

    >>> import tempfile
    >>> from netwright.models import build
    >>> folder = save(build([{"linear": 2}], (3,)), Path(tempfile.mkdtemp()) / "m")
    >>> sorted(p.name for p in folder.iterdir())
    ['model.json', 'weights.safetensors']
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"save: {str(folder)!r} is a file; expected a folder to write into.")
    _finish_pending(folder)
    taken = [n for n in FILES if (folder / n).exists() or (folder / n).is_symlink()]
    if taken and not overwrite:
        raise CheckpointError(
            f"save: {str(folder)!r} already holds {', '.join(taken)}; netwright does not overwrite "
            f"them. Fix: choose another folder, or overwrite=True."
        )
    links = [n for n in FILES if (folder / n).is_symlink()]
    if links:
        raise CheckpointError(
            f"save: {str(folder / links[0])!r} is a symbolic link (to {os.readlink(folder / links[0])!r}); "
            f"netwright does not write through links. Fix: remove the link, or save elsewhere."
        )
    model = plain_module(model)  # a compiled model is saved as the module it compiles
    if isinstance(model, nn.Module) and any(type(p).__name__ == "DTensor" for p in model.parameters()):
        raise CheckpointError(
            "save: the model's parameters are sharded among processes (FSDP), and this process "
            "holds only its part. Fix: the run directory's weights.safetensors holds the whole "
            "model (gathered when training ended): nw.load(run_dir) in one process, then nw.save.")
    try:
        desc = describe_model(model, init_args=init_args)
    except ModelSpecError as exc:
        if not isinstance(model, nn.Module) or init_args is not None:
            raise  # not a model at all, or arguments that do not rebuild it: the caller's to fix
        # Nothing is lost: the weights are written all the same, and model.json says why it
        # cannot rebuild the model and how to load them.
        reason = str(exc).removeprefix("save: ")
        desc = {"format": MODEL_FORMAT, "model": None, "scaled": _scaled_shapes(model),
                "class": f"{type(unwrap(model)).__module__}:{type(unwrap(model)).__qualname__}",
                "not_rebuildable": reason}
        warnings.warn(
            f"save: the weights are saved, but model.json cannot say how to rebuild this "
            f"{type(unwrap(model)).__name__} ({reason}) Load them with nw.load({str(folder)!r}, "
            f"model={type(unwrap(model)).__name__}(...)).", stacklevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".nw-save-{secrets.token_hex(4)}"
    try:
        save_weights(model.state_dict(), staging / "weights.safetensors")
        # Not key-sorted: a named spec's key order is the order of its layers.
        atomic_write_text(staging / "model.json", json.dumps(desc, indent=2) + "\n")
        os.replace(staging, folder / PENDING)  # the commit point: one rename of a folder
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _finish_pending(folder)
    return folder


def _finish_pending(folder: Path) -> None:
    """Move a committed save's files into place (after a crash, or as the last step of save)
    and remove staging folders that never committed."""
    pending = folder / PENDING
    if pending.is_dir() and not pending.is_symlink():
        for name in FILES:
            if (pending / name).is_file():
                os.replace(pending / name, folder / name)
        fsync_dir(folder)
        shutil.rmtree(pending, ignore_errors=True)
    if folder.is_dir():
        for stale in folder.glob(".nw-save-*"):
            if stale.name != PENDING and stale.is_dir() and not stale.is_symlink():
                shutil.rmtree(stale, ignore_errors=True)


def _current(folder: Path, name: str) -> Path:
    """``name`` in a committed-but-unfinished save if there is one (it is newer), else in folder."""
    pending = folder / PENDING / name
    if pending.is_file() and not (folder / PENDING).is_symlink():
        return pending
    return folder / name


def load(path: str | os.PathLike, *, mode: str = "strict", device: Any = "cpu",
         trust_code: bool = False, max_extra_values: int = MAX_EXTRA_VALUES,
         model: nn.Module | None = None) -> nn.Module:
    """Rebuild the model in a folder written by :func:`save` (or a run directory) and load its
    weights; ``mode`` is :func:`~netwright.checkpoint.load_weights`'s. With ``model=``, the
    weights are loaded into that model instead (nothing is rebuilt or imported); a model saved
    inside netwright's standardisation wrapper is wrapped the same way.

    The folder may come from someone else: a ``"class"`` outside torch.nn, torchvision.models
    and netwright is refused unless ``trust_code=True`` (importing a module runs its code), and a
    model.json describing more than ``max_extra_values`` values beyond what the weights file
    holds is refused: each module is counted on the meta device before it is made, and the load
    stops before the module that would pass that bound.

    >>> import tempfile
    >>> from netwright.models import build
    >>> m = build([{"linear": 2}], (3,))
    >>> r = load(save(m, Path(tempfile.mkdtemp()) / "m"))
    >>> torch.equal(r(torch.ones(1, 3)), m(torch.ones(1, 3)))
    True
    """
    folder = Path(path)
    if not folder.is_dir():
        raise CheckpointError(f"load: {str(folder)!r} is not a folder. Fix: pass the folder that "
                              f"holds model.json and weights.safetensors (e.g. a run directory).")
    meta = _current(folder, "model.json")
    if not meta.is_file():
        held = sorted(p.name for p in folder.iterdir())[:10]
        raise CheckpointError(
            f"load: {str(folder)!r} has no model.json (it holds {held}), so netwright cannot tell "
            f"how to rebuild the model. Fix: build the model yourself and call "
            f"nw.load_weights(model, {str(folder)!r})."
        )
    description = read_json(meta, what="model.json", error=CheckpointError)
    weights = _current(folder, "weights.safetensors")
    if not weights.is_file():
        weights_in_folder(folder)  # raises: names what the folder holds, before anything is built
    if model is not None:
        model = _given_model(model, description, meta)
    else:
        if isinstance(description, dict) and description.get("model") is None \
                and "not_rebuildable" in description:
            cls = str(description.get("class", "the model class")).split(":")[-1]
            raise CheckpointError(
                f"load: {str(meta)!r} says the model could not be described when it was saved: "
                f"{short_repr(description['not_rebuildable'], 300)} Fix: build it yourself and pass "
                f"it: nw.load({str(folder)!r}, model={cls}(...))."
            )
        model = build_within_budget(description, meta, weights, trust_code=trust_code,
                                    max_extra_values=max_extra_values)
    if model.state_dict() or _tensors_in(weights):
        load_weights(model, weights if weights.parent != folder else folder, mode=mode)
    # else: a model without parameters or buffers (pooling, reshaping) saved an empty file
    model.eval()
    return model.to(device) if device is not None else model


def _given_model(model: Any, description: Any, meta: Path) -> nn.Module:
    """The caller's model for ``load(model=...)``, wrapped in Scaled when the weights were saved
    with the standardisation statistics and the caller passed the bare network."""
    if not isinstance(model, nn.Module):
        raise CheckpointError(f"load: model= must be an nn.Module; received {describe(model)}.")
    scaled = description.get("scaled") if isinstance(description, dict) else None
    if scaled and not isinstance(model, Scaled):
        _check_description({**description, "model": {"spec": None}}, f"model.json {str(meta)!r}")
        return Scaled(model, scaled.get("x_shape"), scaled.get("y_shape"))
    return model


def build_within_budget(description: Any, meta: Path, weights: Path, *, trust_code: bool = False,
                        max_extra_values: int = MAX_EXTRA_VALUES) -> nn.Module:
    """Build the model ``description`` (model.json's content) describes, allocating no more
    values than the weights file's header declares plus ``max_extra_values``.

    Each module is made on the meta device and counted before it is made for real. Only when
    that stops (the budget is passed, a lazy layer, or a trusted class that cannot be made on
    meta) is the whole model built on meta first, as a ghost, for the exact count the error
    names; that path runs forwards on meta tensors, which import torch._dynamo (slow)."""
    _check_description(description, f"model.json {str(meta)!r}")
    try:
        held = _values_in(weights)
    except CheckpointError:
        held = None  # the ghost path reports the spec's own errors first, then this file's
    if held is not None:
        try:
            return rebuild_model(description, trust_code=trust_code,
                                 max_values=held + max_extra_values)
        except (BudgetExceeded, BudgetUnknown):
            pass  # the ghost below counts the whole model for the message, or measures it
        except NetwrightError as exc:
            raise type(exc)(f"model.json {str(meta)!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - as for the ghost below
            if not trust_code:
                raise _not_countable(meta, exc) from None
    return _build_after_ghost(description, meta, weights, trust_code=trust_code,
                              max_extra_values=max_extra_values)


def _build_after_ghost(description: Any, meta: Path, weights: Path, *, trust_code: bool,
                       max_extra_values: int) -> nn.Module:
    """The model built on the meta device first (a ghost, no memory), its size checked against
    the weights file's header, then built for real (from the sizes the ghost inferred, so with
    no forward pass; a lazy layer still needs one, which the ghost's peak activation bounds)."""
    model = description["model"]
    try:
        with torch.device("meta"):  # without saved sizes: the ghost infers them on meta
            ghost = rebuild_model({**description, "model": {**model, "sizes": None}},
                                  trust_code=trust_code)
    except NetwrightError as exc:
        raise type(exc)(f"model.json {str(meta)!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - a trusted class whose constructor fails on meta
        if not trust_code:
            raise _not_countable(meta, exc) from None
        ghost = None  # trusted code: its constructor decides; the weights check still follows
    if ghost is not None:
        wanted = sum(t.numel() for t in ghost.state_dict().values())
        held = _values_in(weights)
        if held is not None and wanted > held + max_extra_values:
            raise CheckpointError(
                f"model.json {str(meta)!r} describes a model of {wanted:,} values, but "
                f"{weights.name} holds {held:,}; netwright refuses to allocate more than "
                f"{max_extra_values:,} values beyond the weights file. Either file is wrong or "
                f"crafted. Fix: use the model.json saved with these weights, or pass "
                f"max_extra_values= if the model really is mostly new."
            )
        inner = ghost.net if isinstance(ghost, Scaled) else ghost
        peak = _peak_activation_on_meta(inner, model.get("input_shape"), model.get("input_dtype"))
        if peak > (held or 0) + max_extra_values:
            raise CheckpointError(
                f"model.json {str(meta)!r}: one layer of the model it describes outputs {peak:,} "
                f"values for a batch of 2 of input_shape {short_repr(model.get('input_shape'))}, "
                f"more than the {(held or 0) + max_extra_values:,} netwright allocates for a "
                f"model of this weights file. The file is wrong or crafted. Fix: use the "
                f"model.json saved with these weights.")
        found = spec_of(inner)
        if found is not None:  # the real build takes the ghost's sizes: no forward pass
            description = {**description, "model": {**model, "sizes": found["sizes"]}}
        del ghost, inner
    try:
        return rebuild_model(description, trust_code=trust_code)
    except NetwrightError as exc:
        raise type(exc)(f"model.json {str(meta)!r}: {exc}") from None


def _peak_activation_on_meta(model: nn.Module, shape: Any, dtype: Any) -> int:
    """The most values any module of ``model`` (on meta) outputs for a batch of 2 samples of
    ``shape``: what a forward pass to size a lazy layer would allocate at once, at the least."""
    if not (isinstance(shape, list) and shape):
        return 0
    peak = 0

    def measure(module: nn.Module, args: Any, out: Any) -> None:
        nonlocal peak
        tensors = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else [out]
        peak = max(peak, sum(t.numel() for t in tensors if isinstance(t, torch.Tensor)))

    dtype = getattr(torch, dtype) if isinstance(dtype, str) and hasattr(torch, dtype) else torch.float32
    handles = [m.register_forward_hook(measure) for m in model.modules()]
    try:
        with torch.no_grad():
            model(torch.zeros((2, *shape), dtype=dtype, device="meta"))
    except Exception:  # noqa: BLE001 - the builder's own pass on meta succeeded; nothing to bound
        pass
    finally:
        for handle in handles:
            handle.remove()
    return peak


def _not_countable(meta: Path, exc: Exception) -> CheckpointError:
    return CheckpointError(
        f"model.json {str(meta)!r}: the model it describes cannot be built on the meta device, "
        f"where netwright counts a model's values before allocating them "
        f"({type(exc).__name__}: {short_repr(str(exc), 300)}). If the file is right, its "
        f"constructor computes with values (as torchvision's regnet models do). Fix: only if you "
        f"trust this folder, load it with trust_code=True, which builds it without that count."
    )


def _tensors_in(weights: Path) -> int:
    """How many tensors the safetensors file's header lists (0 for an empty save)."""
    if not weights.is_file():
        return 0
    return sum(1 for key in read_safetensors_header(weights) if key != "__metadata__")


def _values_in(weights: Path) -> int | None:
    """How many values the safetensors file's header declares (0 when there is no such file)."""
    if not weights.is_file():
        return 0
    header = read_safetensors_header(weights)
    # A value takes at least half a byte (4-bit types): an entry is credited no more values than
    # its bytes can hold, whatever its shape says, so a forged shape of 10**12 over 0 bytes
    # (a dtype the header check cannot size) buys no budget.
    total = 0
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        total += min(math.prod(entry["shape"]), 2 * max(0, end - begin))
    return total
