"""Resume bundles: everything needed to continue a run exactly where it stopped.

A bundle is a folder of four files: ``weights.safetensors`` (the model), ``state.safetensors``
(every other tensor: optimizer moments, RNG states, early-stopping's best weights, the epoch's
losses so far), ``state.json`` (everything else, with ``{"__tensor__": key}`` where a tensor
was) and ``manifest.json``, written last. Any object with ``state_dict``/``load_state_dict`` can
be part of it — a protocol, not a base class.

Integrity: ``manifest.json`` records the size and SHA-256 of the exact bytes of each of the
three other files, and its own SHA-256 over its canonical JSON (``format`` and ``files``,
key-sorted, no spaces) under ``"sha256"``. A bundle is used only when the manifest is intact and
every file matches it, so a torn write (no manifest yet) or any changed bit — a weight, an
optimizer moment, or ``0.9`` becoming ``0.8`` in ``state.json`` — makes the bundle be skipped
with a warning naming the file, and the previous complete bundle is used. (The safetensors
files also carry netwright's per-tensor CRC-32.) Bundles of an older format (``state.json``
without a manifest) cannot be verified and are refused with a message saying so.

``checkpoints/`` keeps two generations, ``last`` and ``prev``: a new bundle is written to
``last.new``, then ``last`` becomes ``prev`` and ``last.new`` becomes ``last``. A crash at any
moment leaves at least one complete bundle.

Nothing here follows a symbolic link: a linked ``checkpoints/`` or bundle folder is refused
(writing or removing there would touch someone else's files), and a bundle folder is removed
only file by file, and only when it holds nothing but bundle files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import atomic_write_json, load_weights_file, save_weights
from .errors import CheckpointError, ConfigError, short_repr

__all__ = ["save_bundle", "load_bundle", "latest_bundle", "rng_state", "set_rng_state",
           "flatten", "unflatten", "config_changes", "check_config", "Bundle", "rotate_into",
           "refuse_links", "remove_bundles", "BUNDLE_FORMAT"]

BUNDLE_FORMAT = "netwright.bundle/2"
MANIFEST = "manifest.json"
DATA_FILES = ("weights.safetensors", "state.safetensors", "state.json")
BUNDLE_FILES = DATA_FILES + (MANIFEST,)
#: Bundle folders in checkpoints/, newest generation first.
BUNDLE_NAMES = ("last", "prev", "last.new", "best", "best.prev", "best.new")
_STATE_KEYS = ("epoch", "batch", "history", "optimizer", "schedule", "rng", "epoch_rng")
_MAX_MANIFEST = 1 << 20


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


def _sha256(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
            size += len(block)
    return digest.hexdigest(), size


def _manifest_digest(manifest: Mapping) -> str:
    body = {"format": manifest.get("format"), "files": manifest.get("files")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _link_error(link: Path) -> CheckpointError:
    try:
        target = os.readlink(link)
    except OSError:
        target = "?"
    return CheckpointError(
        f"{str(link)!r} is a symbolic link (to {target!r}); netwright does not follow links "
        f"inside a run directory, since writing or removing checkpoints there would change "
        f"files outside the run. Expected a real folder. Fix: remove the link (rm "
        f"{str(link)!r}; the files it points to are kept), or move the run to where its "
        f"checkpoints should live and pass that run directory."
    )


def refuse_links(run_dir: Path) -> None:
    """Raise CheckpointError if ``run_dir/checkpoints`` or one of its bundle folders is a
    symbolic link (a link that would send writes and removals outside the run)."""
    ckpt = Path(run_dir) / "checkpoints"
    if ckpt.is_symlink():
        raise _link_error(ckpt)
    if ckpt.is_dir():
        for name in BUNDLE_NAMES:
            if (ckpt / name).is_symlink():
                raise _link_error(ckpt / name)


def _is_stray(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")  # atomic_write's temporary files


def _remove_bundle_folder(folder: Path) -> None:
    """Remove a bundle folder file by file; a link or anything netwright did not write there is
    refused, never followed or deleted."""
    if folder.is_symlink():
        raise _link_error(folder)
    if not folder.exists():
        return
    entries = list(folder.iterdir()) if folder.is_dir() else None
    foreign = None if entries is None else sorted(
        p.name for p in entries
        if (p.name not in BUNDLE_FILES and not _is_stray(p.name)) or p.is_dir())
    if entries is None or foreign:
        held = "it is not a folder" if entries is None else f"it holds {', '.join(foreign[:5])}"
        raise CheckpointError(
            f"resume: {str(folder)!r} is where netwright keeps a checkpoint, but {held}, which "
            f"netwright did not write; it does not delete it. Fix: move it out of "
            f"{str(folder.parent)!r}, or pass another run directory."
        )
    for p in entries:
        p.unlink()  # a link among them: only the link goes
    folder.rmdir()


def remove_bundles(run_dir: Path) -> None:
    """Remove the bundles of an earlier run in ``run_dir/checkpoints`` (for overwrite=True);
    the folder and anything else in it are kept."""
    ckpt = Path(run_dir) / "checkpoints"
    refuse_links(run_dir)
    if ckpt.is_dir():
        for name in BUNDLE_NAMES:
            _remove_bundle_folder(ckpt / name)


def save_bundle(folder: Path, model_state: Mapping[str, torch.Tensor], state: dict) -> None:
    """Write one bundle into ``folder`` (which must not exist yet, or be a leftover to replace);
    ``manifest.json`` (the checksums of the other three files) is written last."""
    _remove_bundle_folder(folder)
    folder.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    body = flatten(state, tensors)
    save_weights(model_state, folder / "weights.safetensors")
    save_weights(tensors, folder / "state.safetensors")
    atomic_write_json(folder / "state.json", {"format": BUNDLE_FORMAT, "state": body})
    files = {}
    for name in DATA_FILES:
        digest, size = _sha256(folder / name)
        files[name] = {"sha256": digest, "bytes": size}
    manifest = {"format": BUNDLE_FORMAT, "files": files}
    manifest["sha256"] = _manifest_digest(manifest)
    atomic_write_json(folder / MANIFEST, manifest)


def rotate_into(checkpoints: Path, name: str, model_state: Mapping[str, torch.Tensor], state: dict) -> Path:
    """Write a bundle as ``checkpoints/name`` keeping the previous one as ``name``'s ``prev``
    until the new one is complete (``last`` → ``prev``; ``best`` → ``best.prev``)."""
    if checkpoints.is_symlink():
        raise _link_error(checkpoints)
    prev = checkpoints / ("prev" if name == "last" else f"{name}.prev")
    new = checkpoints / f"{name}.new"
    current = checkpoints / name
    save_bundle(new, model_state, state)
    if current.is_symlink():
        raise _link_error(current)
    if current.exists():
        _remove_bundle_folder(prev)
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


def _parse_json(raw: bytes, path: Path) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"resume bundle file {str(path)!r} is corrupt: it is not valid "
                              f"JSON ({type(exc).__name__}: {str(exc)[:200]}).") from None
    except RecursionError:
        raise CheckpointError(f"resume bundle file {str(path)!r} is corrupt or crafted: its JSON "
                              f"is nested too deeply to be a file netwright wrote.") from None


def _read_manifest(folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file() or path.is_symlink():
        meta = folder / "state.json"
        old = None
        if meta.is_file() and not meta.is_symlink() and meta.stat().st_size < _MAX_MANIFEST:
            with contextlib.suppress(CheckpointError):
                old = _parse_json(meta.read_bytes(), meta)
        if isinstance(old, dict) and isinstance(old.get("format"), str) \
                and old["format"] != BUNDLE_FORMAT:
            raise CheckpointError(
                f"resume bundle {str(folder)!r} has the older format {old['format']!r} (expected "
                f"{BUNDLE_FORMAT!r}, whose manifest.json holds checksums of every file); its "
                f"state.json cannot be verified, so netwright does not resume from it. Fix: train "
                f"again without resume (--resume) into a new run directory.")
        raise CheckpointError(f"resume bundle {str(folder)!r} is incomplete: {MANIFEST} is "
                              f"missing (the write was interrupted before it finished).")
    if path.stat().st_size > _MAX_MANIFEST:
        raise CheckpointError(f"resume bundle file {str(path)!r} is corrupt: "
                              f"{path.stat().st_size:,} bytes, far more than a manifest holds.")
    manifest = _parse_json(path.read_bytes(), path)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or set(files) != set(DATA_FILES) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str)
            and type(v.get("bytes")) is int for v in files.values()):
        raise CheckpointError(f"resume bundle file {str(path)!r} is corrupt: expected a "
                              f"checksum and size for each of {', '.join(DATA_FILES)}.")
    if manifest.get("format") != BUNDLE_FORMAT:
        raise CheckpointError(f"resume bundle {str(folder)!r} has format "
                              f"{str(manifest.get('format'))[:80]!r}; this netwright reads "
                              f"{BUNDLE_FORMAT!r}. Fix: resume it with the netwright version that "
                              f"wrote it, or train again without resume (--resume).")
    if manifest.get("sha256") != _manifest_digest(manifest):
        raise CheckpointError(f"resume bundle file {str(path)!r} is corrupt: its contents do "
                              f"not match its own checksum.")
    return files


def _check_file(folder: Path, name: str, expected: Mapping) -> bytes:
    """Verify one bundle file against the manifest; returns its bytes for state.json (read
    once, so what is parsed is what was checked), else empty bytes."""
    path = folder / name
    if not path.is_file() or path.is_symlink():
        raise CheckpointError(f"resume bundle {str(folder)!r} is incomplete: {name} is missing.")
    raw = b""
    if name == "state.json" and path.stat().st_size == expected["bytes"]:
        raw = path.read_bytes()
        digest, size = hashlib.sha256(raw).hexdigest(), len(raw)
    else:
        digest, size = _sha256(path)
    if size != expected["bytes"] or digest != expected["sha256"]:
        raise CheckpointError(
            f"resume bundle file {str(path)!r} is corrupt or incomplete: it does not match the "
            f"checksum recorded in {MANIFEST} when the bundle was written ({size:,} bytes, recorded "
            f"{expected['bytes']:,}; sha256 {digest[:12]}..., recorded "
            f"{expected['sha256'][:12]}...). It was changed or damaged after it was written.")
    return raw


def load_bundle(folder: Path) -> Bundle:
    """Read and check one bundle; a torn, corrupted or changed one raises CheckpointError naming
    the file."""
    folder = Path(folder)
    if folder.is_symlink():
        raise _link_error(folder)
    files = _read_manifest(folder)
    raw = b""
    for name in DATA_FILES:
        raw = _check_file(folder, name, files[name]) or raw
    meta_path = folder / "state.json"
    meta = _parse_json(raw, meta_path)
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT or "state" not in meta:
        raise CheckpointError(f"resume bundle file {str(meta_path)!r} is corrupt: expected "
                              f"format {BUNDLE_FORMAT!r} and a state.")
    model_state = load_weights_file(folder / "weights.safetensors")
    tensors = load_weights_file(folder / "state.safetensors")
    try:
        state = unflatten(meta["state"], tensors)
    except KeyError as exc:
        raise CheckpointError(f"resume bundle {str(folder)!r} is inconsistent: tensor {exc} is "
                              f"missing from state.safetensors.") from None
    except (RecursionError, TypeError, ValueError, AttributeError) as exc:
        raise CheckpointError(f"resume bundle file {str(meta_path)!r} is corrupt: its state "
                              f"cannot be read back ({type(exc).__name__}).") from None
    if not isinstance(state, dict) or not all(k in state for k in _STATE_KEYS):
        raise CheckpointError(f"resume bundle file {str(meta_path)!r} is corrupt: its state "
                              f"lacks {', '.join(k for k in _STATE_KEYS if k not in state) if isinstance(state, dict) else 'everything'}.")
    return Bundle(folder, model_state, state)


def latest_bundle(run_dir: Path, *, say=None) -> Bundle | None:
    """The newest complete bundle in ``run_dir/checkpoints``; corrupt ones are skipped (and
    reported through ``say``), leftovers of an interrupted write are removed. A symbolic link
    for ``checkpoints/`` or a bundle folder raises CheckpointError: it is never followed."""
    ckpt = Path(run_dir) / "checkpoints"
    refuse_links(run_dir)
    if not ckpt.is_dir():
        return None
    for folder in [ckpt] + [ckpt / n for n in BUNDLE_NAMES]:
        if folder.is_dir() and not folder.is_symlink():
            for stray in folder.iterdir():
                if _is_stray(stray.name) and not stray.is_dir():
                    stray.unlink(missing_ok=True)  # a link: only the link goes
    found: list[Bundle] = []
    for name in BUNDLE_NAMES:
        folder = ckpt / name
        if not folder.is_dir():
            continue
        try:
            found.append(load_bundle(folder))
        except CheckpointError as exc:
            if name.endswith(".new"):
                with contextlib.suppress(CheckpointError, OSError):
                    _remove_bundle_folder(folder)  # a write that never finished
                continue
            (say or warnings.warn)(f"skipping a damaged checkpoint: {exc}")
    if not found:
        return None
    best = max(found, key=lambda b: b.position)
    if best.folder.name.endswith(".new"):  # complete but not yet renamed: finish the rotation
        target = ckpt / best.folder.name[: -len(".new")]
        if target.exists():
            prev = ckpt / ("prev" if target.name == "last" else f"{target.name}.prev")
            _remove_bundle_folder(prev)
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
    for key in sorted(set(saved) | set(current), key=str):
        a, b = saved.get(key), current.get(key)
        path = f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            changes += config_changes(a, b, path + ".")
        elif a != b:
            changes.append(f"{path}: {short_repr(a, 80)} -> {short_repr(b, 80)}")
    return changes


def check_config(saved: Any, current: Mapping, *, force: bool, where: Path,
                 source: str = "its checkpoint") -> None:
    """Refuse to resume the run in ``where`` with a configuration other than the one ``source``
    records, unless ``force``."""
    if force:
        return
    if not isinstance(saved, Mapping):
        changes = [f"the saved configuration is {type(saved).__name__}, not a mapping"]
    else:
        try:
            changes = config_changes(saved, current)
        except RecursionError:
            changes = ["the saved configuration is nested too deeply to compare"]
    if changes:
        raise ConfigError(
            f"resume: the run in {str(where)!r} was started with another configuration (as "
            f"{source} records); changed: {'; '.join(changes[:8])}"
            f"{f' and {len(changes) - 8} more' if len(changes) > 8 else ''}. Fix: resume with "
            f"the same settings, pass force=True (--force) to continue with the new ones anyway, "
            f"or train without resume (--resume) into a new run directory."
        )
