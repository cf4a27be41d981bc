"""Sharded checkpoints (torch.distributed.checkpoint) read without running code from the files.

Under FSDP every process writes its own shards with ``torch.distributed.checkpoint`` (DCP):
``__<rank>_0.distcp`` (tensors, read by DCP with ``torch.load(weights_only=True)``) and one
``.metadata`` file, which DCP writes and reads with plain ``pickle``: loading a crafted one would
run its code. :class:`SafeReader` reads it with an unpickler that makes only DCP's own metadata
classes, ``torch.Size``, dtypes and paths; anything else is refused with a CheckpointError
naming the file, before DCP sees it. :func:`folder_digests` and :func:`check_digests` tie a
shard folder to the bundle that refers to it (see :mod:`netwright.training.bundles`).
"""

from __future__ import annotations

import hashlib
import pickle
import re
from pathlib import Path
from typing import Any

from ..errors import CheckpointError

__all__ = ["SafeReader", "read_metadata_safely", "folder_digests", "check_digests", "SHARD_FILE"]

# The files DCP's FileSystemWriter makes: the metadata and one data file per rank (and thread).
SHARD_FILE = re.compile(r"^(\.metadata|__\d+_\d+\.distcp)$")
_PATHS = {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"}


class _MetadataUnpickler(pickle.Unpickler):
    def __init__(self, fh: Any, where: str):
        super().__init__(fh)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        import torch

        allowed = (
            module in ("torch.distributed.checkpoint.metadata",
                       "torch.distributed.checkpoint.filesystem",
                       "torch.distributed.checkpoint.planner")
            or (module == "torch" and (name == "Size" or isinstance(getattr(torch, name, None), torch.dtype)))
            or (module == "torch.serialization" and name == "_get_layout")
            or (module == "pathlib" and name in _PATHS)
        )
        if not allowed:
            raise CheckpointError(
                f"sharded checkpoint file {self.where!r} asks to import {module}.{name}, which a "
                f"torch.distributed.checkpoint metadata file never holds; reading it would run "
                f"code from the file, so netwright does not. Fix: resume only from run "
                f"directories you wrote, or train again without resume.")
        return super().find_class(module, name)


def read_metadata_safely(path: Path) -> Any:
    """DCP's ``.metadata`` file, unpickled with only DCP's own classes allowed."""
    try:
        with open(path, "rb") as fh:
            return _MetadataUnpickler(fh, str(path)).load()
    except CheckpointError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file is named, not raw
        raise CheckpointError(f"sharded checkpoint file {str(path)!r} cannot be read "
                              f"({type(exc).__name__}: {exc}); it is damaged.") from None


def SafeReader(folder: Path) -> Any:  # noqa: N802 - a class made on first use (torch import)
    """A DCP ``FileSystemReader`` for ``folder`` whose metadata is read by
    :func:`read_metadata_safely`."""
    from torch.distributed.checkpoint import FileSystemReader
    from torch.distributed.checkpoint.metadata import StorageMeta

    class _Reader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            rank = kwargs.get("rank")
            name = ".metadata" if rank is None else f"__{rank}.metadata"
            metadata = read_metadata_safely(Path(self.path) / name)
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return _Reader(str(folder))


def folder_digests(folder: Path) -> dict[str, dict]:
    """``{file: {"sha256", "bytes"}}`` of a shard folder's files."""
    out = {}
    for path in sorted(Path(folder).iterdir()):
        if SHARD_FILE.match(path.name) and path.is_file() and not path.is_symlink():
            h = hashlib.sha256()
            with open(path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    h.update(block)
            out[path.name] = {"sha256": h.hexdigest(), "bytes": path.stat().st_size}
    return out


def check_digests(folder: Path, expected: Any) -> None:
    """The shard folder holds exactly the files, with the checksums, its bundle recorded."""
    if not isinstance(expected, dict) or not expected or not all(
            isinstance(k, str) and SHARD_FILE.match(k) and isinstance(v, dict) for k, v in expected.items()):
        raise CheckpointError(f"resume: the bundle's record of the shard folder {str(folder)!r} is "
                              f"corrupt (expected file names with checksums).")
    if folder.is_symlink() or not folder.is_dir():
        raise CheckpointError(f"resume: the shard folder {str(folder)!r} that the checkpoint refers "
                              f"to is missing (or is a link). Fix: resume from another bundle, or "
                              f"train again.")
    found = folder_digests(folder)
    for name, want in expected.items():
        got = found.get(name)
        if got != {"sha256": want.get("sha256"), "bytes": want.get("bytes")}:
            raise CheckpointError(
                f"resume: shard file {str(folder / name)!r} is "
                f"{'missing' if got is None else 'changed or damaged'}: it does not match the "
                f"checksum its bundle recorded when it was written.")
