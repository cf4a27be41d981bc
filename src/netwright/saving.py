"""``nw.save`` / ``nw.load``: a model as ``model.json`` (how to rebuild it) + ``weights.safetensors``.

``model.json`` holds what :func:`netwright.models.spec_of` says about a model netwright built (a
layer spec or a zoo name with arguments, and the input shape), or for any other ``nn.Module``
its import path and constructor arguments. The weights are safetensors: loading never runs code
from the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .checkpoint import atomic_write_json, load_weights, save_weights
from .errors import CheckpointError, ModelSpecError, describe
from .models.builder import rebuild, spec_of
from .models.scaling import Scaled

__all__ = ["MODEL_FORMAT", "describe_model", "rebuild_model", "save", "load"]

MODEL_FORMAT = "netwright.model/1"


def describe_model(model: nn.Module, *, init_args: dict | None = None) -> dict:
    """The ``model.json`` content for ``model``.

    For a model netwright did not build, its class must be importable (not defined in
    ``__main__``) and rebuildable from ``init_args``; this is checked now, not at load time.

    >>> from netwright.models import build
    >>> describe_model(build([{"linear": 2}], (3,)))["model"]["spec"]
    [{'linear': 2}]
    """
    if not isinstance(model, nn.Module):
        raise ModelSpecError(f"save: expected an nn.Module, received {describe(model)}.")
    scaled = None
    net = model
    if isinstance(model, Scaled):
        scaled = {"x_shape": list(model.x_mean.shape) if model.scale_inputs else None,
                  "y_shape": list(model.y_mean.shape) if model.scale_outputs else None}
        net = model.net
    desc = spec_of(net)
    if desc is None:
        cls = type(net)
        if cls.__module__ == "__main__":
            raise ModelSpecError(
                f"save: the model class {cls.__qualname__} is defined in the script being run "
                f"(__main__), so model.json could not name it for loading later. Fix: move the "
                f"class into a module (e.g. models.py) and import it from there."
            )
        args = json.loads(json.dumps(init_args or {}))
        desc = {"spec": {"class": f"{cls.__module__}:{cls.__qualname__}", "args": args},
                "input_shape": None, "input_dtype": None}
        _check_rebuilds(net, desc, init_args)
    return {"format": MODEL_FORMAT, "model": desc, "scaled": scaled}


def _check_rebuilds(net: nn.Module, desc: dict, init_args: dict | None) -> None:
    try:
        fresh = rebuild(desc)
    except Exception as exc:  # noqa: BLE001 - any constructor failure means it cannot be reloaded
        raise ModelSpecError(
            f"save: {desc['spec']['class']}(**{desc['spec']['args']}) could not be built again "
            f"({type(exc).__name__}: {exc}). Fix: pass init_args= with the constructor arguments."
        ) from exc
    ours = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in fresh.state_dict().items()}
    if ours != theirs:
        diff = sorted(set(ours.items()) ^ set(theirs.items()))[:3]
        raise ModelSpecError(
            f"save: {desc['spec']['class']}(**{desc['spec']['args'] or {}}) builds a model of another "
            f"shape than the one being saved (first differences: {diff}). Fix: pass init_args= "
            f"with the arguments the model was created with, e.g. init_args={{'in_features': 20}}."
        )


def rebuild_model(description: dict) -> nn.Module:
    """A fresh (untrained) model from ``model.json``'s content."""
    if not isinstance(description, dict) or description.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"model.json: expected format {MODEL_FORMAT!r}; received "
            f"{description.get('format') if isinstance(description, dict) else type(description).__name__!r}."
        )
    net = rebuild(description["model"])
    scaled = description.get("scaled")
    if scaled:
        return Scaled(net, scaled.get("x_shape"), scaled.get("y_shape"))
    return net


def save(model: nn.Module, path: str | os.PathLike, *, init_args: dict | None = None,
         overwrite: bool = False) -> Path:
    """Write ``path/model.json`` and ``path/weights.safetensors``; returns the folder.

    >>> import tempfile
    >>> from netwright.models import build
    >>> folder = save(build([{"linear": 2}], (3,)), Path(tempfile.mkdtemp()) / "m")
    >>> sorted(p.name for p in folder.iterdir())
    ['model.json', 'weights.safetensors']
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise CheckpointError(f"save: {str(folder)!r} is a file; expected a folder to write into.")
    taken = [n for n in ("model.json", "weights.safetensors") if (folder / n).exists()]
    if taken and not overwrite:
        raise CheckpointError(
            f"save: {str(folder)!r} already holds {', '.join(taken)}; netwright does not overwrite "
            f"them. Fix: choose another folder, or overwrite=True."
        )
    desc = describe_model(model, init_args=init_args)
    save_weights(model.state_dict(), folder / "weights.safetensors")
    atomic_write_json(folder / "model.json", desc)
    return folder


def load(path: str | os.PathLike, *, mode: str = "strict", device: Any = "cpu") -> nn.Module:
    """Rebuild the model in a folder written by :func:`save` (or a run directory) and load its
    weights; ``mode`` is :func:`~netwright.checkpoint.load_weights`'s.

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
    meta = folder / "model.json"
    if not meta.is_file():
        held = sorted(p.name for p in folder.iterdir())[:10]
        raise CheckpointError(
            f"load: {str(folder)!r} has no model.json (it holds {held}), so netwright cannot tell "
            f"how to rebuild the model. Fix: build the model yourself and call "
            f"nw.load_weights(model, {str(folder)!r})."
        )
    try:
        description = json.loads(meta.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"load: {str(meta)!r} is not valid JSON ({exc}); it is corrupt.") from exc
    model = rebuild_model(description)
    load_weights(model, folder, mode=mode)
    model.eval()
    return model.to(device) if device is not None else model
