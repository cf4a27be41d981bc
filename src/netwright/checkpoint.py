"""Writing run files safely: atomic writes and safetensors weights.

Every file is written to a temporary name in the same folder, flushed, fsynced and renamed into
place, so a crash at any moment leaves the previous good file loadable.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

__all__ = ["atomic_write_bytes", "atomic_write_text", "save_weights", "load_weights_file", "state_to_cpu"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync the folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def state_to_cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies of a state_dict's tensors (safe to keep as a snapshot)."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()
            if isinstance(v, torch.Tensor)}


def save_weights(state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Save a state_dict as safetensors, atomically. Tied (shared) tensors are stored once each
    under every name, since safetensors refuses shared storage.

    >>> import tempfile, torch.nn as nn
    >>> p = save_weights(nn.Linear(2, 1).state_dict(), Path(tempfile.mkdtemp()) / "w.safetensors")
    >>> sorted(load_weights_file(p))
    ['bias', 'weight']
    """
    from safetensors.torch import save

    tensors = {k: v.clone() for k, v in state_to_cpu(state).items()}
    return atomic_write_bytes(path, save(tensors, metadata=dict(metadata or {})))


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file into CPU tensors, with a clear error if it is missing or corrupt."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist. Fix: check the path.")
    try:
        return load(path.read_bytes())
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise CheckpointError(
            f"weights file {str(path)!r} is corrupt or incomplete ({exc}). Fix: load an earlier "
            f"checkpoint, or save the weights again."
        ) from exc
