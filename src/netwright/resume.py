"""Resume bundles: everything needed to continue a run exactly where it stopped.

A bundle is a folder of three files: ``weights.safetensors`` (the model), ``state.safetensors``
(every other tensor: optimizer moments, RNG states, early-stopping's best weights, the epoch's
losses so far) and ``state.json`` (everything else, with ``{"__tensor__": key}`` where a tensor
was). Any object with ``state_dict``/``load_state_dict`` can be part of it — a protocol, not a
base class. ``state.json`` is written last and says ``"complete": true``; weights and state carry
checksums, so a torn or corrupted bundle is recognised and skipped.

``checkpoints/`` keeps two generations, ``last`` and ``prev``: a new bundle is written to
``last.new``, then ``last`` becomes ``prev`` and ``last.new`` becomes ``last``. A crash at any
moment leaves at least one complete bundle.
"""

from __future__ import annotations

import json
import random
import shutil
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import atomic_write_json, load_weights_file, save_weights
from .errors import CheckpointError, ConfigError

__all__ = ["save_bundle", "load_bundle", "latest_bundle", "rng_state", "set_rng_state",
           "flatten", "unflatten", "config_changes", "Bundle", "rotate_into"]

BUNDLE_FORMAT = "netwright.bundle/1"


def flatten(obj: Any, tensors: dict[str, torch.Tensor], prefix: str = "t") -> Any:
    """Replace every tensor in a nested structure by ``{"__tensor__": key}``, collecting them."""
    if isinstance(obj, torch.Tensor):
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = obj.detach()
        return {"__tensor__": key}
    if isinstance(obj, Mapping):
        # JSON keys are strings: remember int keys (optimizer state is keyed by param index).
        items = {str(k): flatten(v, tensors, prefix) for k, v in obj.items()}
        ints = [str(k) for k in obj if isinstance(k, int)]
        return {"__dict__": items, "__int_keys__": ints} if ints else items
    if isinstance(obj, tuple):
        return {"__tuple__": [flatten(v, tensors, prefix) for v in obj]}
    if isinstance(obj, list):
        return [flatten(v, tensors, prefix) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": obj.tolist(), "dtype": str(obj.dtype)}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    raise CheckpointError(
        f"resume bundle: cannot store a value of type {type(obj).__name__} ({obj!r:.80}) from a "
        f"state_dict. Fix: a callback's state_dict() must return numbers, strings, lists, dicts "
        f"and tensors only."
    )


def unflatten(obj: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [unflatten(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__tensor__" in obj:
        return tensors[obj["__tensor__"]]
    if "__tuple__" in obj:
        return tuple(unflatten(v, tensors) for v in obj["__tuple__"])
    if "__ndarray__" in obj:
        return np.array(obj["__ndarray__"], dtype=obj["dtype"])
    if "__dict__" in obj:
        ints = set(obj["__int_keys__"])
        return {(int(k) if k in ints else k): unflatten(v, tensors) for k, v in obj["__dict__"].items()}
    return {k: unflatten(v, tensors) for k, v in obj.items()}


def rng_state(generator: torch.Generator | None = None) -> dict:
    """Python's, NumPy's, torch's (CPU and every CUDA device) and the data order's RNG states."""
    np_state = np.random.get_state()
    state = {
        "python": _to_lists(random.getstate()),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "torch": torch.get_rng_state(),
        "cuda": [s for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_available() else [],
    }
    if generator is not None:
        state["data"] = generator.get_state()
    return state


def _to_lists(obj: Any) -> Any:
    return [_to_lists(v) for v in obj] if isinstance(obj, (tuple, list)) else obj


def _to_tuples(obj: Any) -> Any:
    return tuple(_to_tuples(v) for v in obj) if isinstance(obj, (tuple, list)) else obj


def set_rng_state(state: Mapping, generator: torch.Generator | None = None) -> None:
    random.setstate(_to_tuples(state["python"]))
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), *rest))
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(state["cuda"])[: torch.cuda.device_count()])
    if generator is not None and "data" in state:
        generator.set_state(state["data"])


def save_bundle(folder: Path, model_state: Mapping[str, torch.Tensor], state: dict) -> None:
    """Write one bundle into ``folder`` (which must not exist yet, or be a leftover to replace)."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    body = flatten(state, tensors)
    save_weights(model_state, folder / "weights.safetensors")
    save_weights(tensors, folder / "state.safetensors")
    atomic_write_json(folder / "state.json", {"format": BUNDLE_FORMAT, "complete": True, "state": body})


def rotate_into(checkpoints: Path, name: str, model_state: Mapping[str, torch.Tensor], state: dict) -> Path:
    """Write a bundle as ``checkpoints/name`` keeping the previous one as ``name``'s ``prev``
    until the new one is complete (``last`` → ``prev``; ``best`` → ``best.prev``)."""
    prev = checkpoints / ("prev" if name == "last" else f"{name}.prev")
    new = checkpoints / f"{name}.new"
    current = checkpoints / name
    save_bundle(new, model_state, state)
    if current.exists():
        if prev.exists():
            shutil.rmtree(prev)
        current.rename(prev)
    new.rename(current)
    return current


@dataclass
class Bundle:
    folder: Path
    model_state: dict
    state: dict

    @property
    def position(self) -> tuple[int, int]:
        return int(self.state["epoch"]), int(self.state["batch"])


def load_bundle(folder: Path) -> Bundle:
    """Read and check one bundle; a torn or corrupted one raises CheckpointError naming the file."""
    meta_path = folder / "state.json"
    if not meta_path.is_file():
        raise CheckpointError(f"resume bundle {str(folder)!r} is incomplete: state.json is missing "
                              f"(the write was interrupted).")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"resume bundle file {str(meta_path)!r} is corrupt ({exc}).") from exc
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT or not meta.get("complete"):
        raise CheckpointError(f"resume bundle file {str(meta_path)!r} is corrupt or incomplete.")
    model_state = load_weights_file(folder / "weights.safetensors")
    tensors = load_weights_file(folder / "state.safetensors")
    try:
        state = unflatten(meta["state"], tensors)
    except KeyError as exc:
        raise CheckpointError(f"resume bundle {str(folder)!r} is inconsistent: tensor {exc} is "
                              f"missing from state.safetensors.") from exc
    return Bundle(folder, model_state, state)


def latest_bundle(run_dir: Path, *, say=None) -> Bundle | None:
    """The newest complete bundle in ``run_dir/checkpoints``; corrupt ones are skipped (and
    reported through ``say``), leftovers of an interrupted write are removed."""
    ckpt = Path(run_dir) / "checkpoints"
    if not ckpt.is_dir():
        return None
    for stray in list(ckpt.rglob(".*.tmp")):
        stray.unlink(missing_ok=True)
    found: list[Bundle] = []
    for name in ("last", "prev", "last.new", "best", "best.prev", "best.new"):
        folder = ckpt / name
        if not folder.is_dir():
            continue
        try:
            found.append(load_bundle(folder))
        except CheckpointError as exc:
            if name.endswith(".new"):
                shutil.rmtree(folder, ignore_errors=True)  # a write that never finished
                continue
            (say or warnings.warn)(f"skipping a damaged checkpoint: {exc}")
    if not found:
        return None
    best = max(found, key=lambda b: b.position)
    if best.folder.name.endswith(".new"):  # complete but not yet renamed: finish the rotation
        target = ckpt / best.folder.name[: -len(".new")]
        if target.exists():
            prev = ckpt / ("prev" if target.name == "last" else f"{target.name}.prev")
            if prev.exists():
                shutil.rmtree(prev)
            target.rename(prev)
        best.folder.rename(target)
        best.folder = target
    return best


def config_changes(saved: Mapping, current: Mapping, prefix: str = "") -> list[str]:
    """Dotted paths whose values differ between two config dicts.

    >>> config_changes({"lr": 0.1, "train": {"epochs": 3}}, {"lr": 0.1, "train": {"epochs": 5}})
    ['train.epochs: 3 -> 5']
    """
    changes = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += config_changes(a, b, path + ".")
        elif a != b:
            changes.append(f"{path}: {a!r} -> {b!r}")
    return changes


def check_config(saved: Mapping, current: Mapping, *, force: bool, where: Path) -> None:
    changes = config_changes(saved, current)
    if changes and not force:
        raise ConfigError(
            f"resume: the run in {str(where)!r} was started with another configuration; changed: "
            f"{'; '.join(changes[:8])}. Fix: resume with the same settings, or pass force=True "
            f"(--force) to continue anyway."
        )
