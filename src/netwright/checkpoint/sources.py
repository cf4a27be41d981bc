"""What :func:`~netwright.checkpoint.load_weights` reads from, opened into one state_dict.

A ``.safetensors`` file, a ``torch.save`` file (the state_dict at the top level, under one of
:data:`WRAPPER_KEYS`, or a pickled module), a run or checkpoint folder (its
``weights.safetensors``), or an in-memory dict or module; each becomes a
:class:`CheckpointSource` that says where in it the weights were found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, describe, did_you_mean
from .torch_file import read_torch
from .weights_file import SHOWN, WEIGHTS_FILE, corrupt_error, read_safetensors

#: Keys of a torch.save'd dict under which the state_dict is commonly kept, in the order tried.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")


def _is_state(obj: Mapping) -> bool:
    tensors = sum(isinstance(v, torch.Tensor) for v in obj.values())
    others = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    return tensors > 0 and all(isinstance(k, str) for k in obj) \
        and all(str(k).endswith("_extra_state") for k in others)


def _find_state(obj: Any, where: str = "", depth: int = 0) -> tuple[dict[str, torch.Tensor], str]:
    """The state_dict inside what a file held, and where in it the weights were found."""
    if isinstance(obj, nn.Module):
        return dict(obj.state_dict()), (where + " (a pickled nn.Module)" if where
                                        else "a pickled nn.Module")
    if isinstance(obj, Mapping):
        if _is_state(obj):
            return ({k: v for k, v in obj.items() if isinstance(v, torch.Tensor)},
                    where or "the top level")
        if depth < 3:
            for key in WRAPPER_KEYS:
                if key in obj and isinstance(obj[key], (Mapping, nn.Module)):
                    try:
                        return _find_state(obj[key], f"{where}[{key!r}]", depth + 1)
                    except LookupError:
                        continue
    raise LookupError(where)


def _describe_container(obj: Any) -> str:
    if isinstance(obj, Mapping):
        items = list(obj.items())[:SHOWN]
        inner = ", ".join(f"{k!r}: {describe(v)}" for k, v in items)
        more = f", ... ({len(obj)} keys)" if len(obj) > SHOWN else ""
        return f"a dict {{{inner}{more}}}"
    return describe(obj)


@dataclass
class CheckpointSource:
    state: dict[str, torch.Tensor]
    name: str
    location: str
    ordered: bool  # whether the key order is the order of the modules that saved it


def open_source(source: Any, allow_pickle: bool, map_location: Any) -> CheckpointSource:
    if isinstance(source, (nn.Module, Mapping)):
        name = f"the given {type(source).__name__}"
        try:
            state, location = _find_state(source)
        except LookupError:
            raise CheckpointError(
                f"{name} holds no state_dict: expected a mapping of names to tensors, or one "
                f"under {', '.join(map(repr, WRAPPER_KEYS))}; got {_describe_container(source)}. "
                f"Fix: pass the inner mapping of tensors.") from None
        return CheckpointSource(state, name, location, ordered=True)
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"load_weights expects a path, a run or checkpoint folder, or a dict of "
                          f"tensors as source; got {describe(source)}.")
    path = Path(source).expanduser()
    if path.is_dir():
        path = weights_in_folder(path)
    elif not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        near = did_you_mean(path.name, [p.name for p in parent.iterdir()]) \
            if parent.is_dir() else ""
        raise CheckpointError(f"weights file {str(path)!r} does not exist.{near} Fix: check the "
                              f"path.")
    with path.open("rb") as fh:
        head = fh.read(9)
    if not head:
        raise corrupt_error(path, "it is empty")
    if head[:4] != b"PK\x03\x04" and (head[8:9] == b"{" or path.suffix == ".safetensors"):
        state, order = read_safetensors(path, _safetensors_device(map_location))
        location = "the top level"
        if not state:
            raise CheckpointError(f"weights file {str(path)!r} holds no tensors. Fix: check that "
                                  f"it was saved from a model with parameters.")
        return CheckpointSource(state, str(path), location, ordered=order is not None)
    obj = read_torch(path, allow_pickle, map_location)
    try:
        state, location = _find_state(obj)
    except LookupError:
        raise CheckpointError(
            f"found no state_dict in {str(path)!r}: expected a mapping of names to tensors, or "
            f"one under {', '.join(map(repr, WRAPPER_KEYS))}; the file holds "
            f"{_describe_container(obj)}. Fix: pick the entry yourself: "
            f"load_weights(model, torch.load(path, weights_only=True)['<key>'])."
        ) from None
    return CheckpointSource(state, str(path), location, ordered=True)


def _safetensors_device(map_location: Any) -> str:
    if isinstance(map_location, (str, torch.device)):
        return str(map_location)
    return "cpu"  # callables and dicts are torch.load's; copying into the model moves tensors


def weights_in_folder(folder: Path) -> Path:
    weights = folder / WEIGHTS_FILE
    if weights.is_file():
        return weights
    entries = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    shown = ", ".join(entries[:20]) + (f", ... ({len(entries)} entries)" if len(entries) > 20
                                       else "")
    hints = [str(folder / sub / WEIGHTS_FILE) for sub in ("checkpoints/best", "checkpoints/last")
             if (folder / sub / WEIGHTS_FILE).is_file()]
    hints += [str(p) for p in sorted(folder.iterdir())
              if p.suffix in (".safetensors", ".pt", ".pth", ".bin", ".ckpt") and p.is_file()]
    fix = f"pass one of these: {', '.join(map(repr, hints[:4]))}" if hints else \
        "pass the weights file itself, or a run or checkpoint folder"
    raise CheckpointError(
        f"folder {str(folder)!r} holds no {WEIGHTS_FILE} (a run folder and a checkpoint folder "
        f"have one at the top); it holds: {shown or 'nothing'}. Fix: {fix}.")
