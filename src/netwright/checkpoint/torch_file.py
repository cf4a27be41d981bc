"""``torch.save`` files, read without running their code.

``torch.load`` runs with ``weights_only=True``. Before it, the zip CRC-32 of every record is
verified (torch does not, so a flipped bit would load as a wrong weight) and a compressed record
that would inflate far beyond the file (a zip bomb; torch never compresses) is refused. A file
whose pickle needs more than tensors is refused, naming what it holds, unless the caller passes
``allow_pickle=True``; one naming a blocked module (os, sys) is refused as unsafe.
"""

from __future__ import annotations

import pickle
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from .weights_file import SHOWN, corrupt_error


def _check_torch_zip(path: Path) -> None:
    """Verify the zip CRC-32 of every record of a torch.save file: torch itself does not, so a
    flipped bit would otherwise load as a wrong weight. Also refuses compressed records that
    would inflate far beyond the file (torch never compresses; a zip bomb would)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED and info.file_size > 20 * size + 2**20:
                    raise corrupt_error(path, f"record {info.filename!r} would inflate to "
                                              f"{info.file_size:,} bytes from a {size:,}-byte "
                                              f"file")
                if info.CRC == 0 and info.file_size:
                    continue  # written with torch.serialization.set_crc32_options(False)
                with zf.open(info) as fh:
                    while fh.read(1 << 22):
                        pass
    except CheckpointError:
        raise  # the zip-bomb refusal above (a ValueError too): already says what is wrong
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, zlib.error) as exc:
        raise corrupt_error(path, "it is not a complete, intact zip archive (torch.save writes "
                                  "one)", exc) from None


def _needs_pickle_error(path: Path, found: list[str]) -> CheckpointError:
    kinds = ", ".join(found[:SHOWN]) + (f" and {len(found) - SHOWN} more" if len(found) > SHOWN
                                         else "")
    return CheckpointError(
        f"{str(path)!r} is a pickle that holds Python objects, not only tensors "
        f"({kinds or 'objects torch will not load safely'}). Loading it would run code from the "
        f"file, which can do anything your user account can, so netwright did not load it. "
        f"Fix: if you trust where the file came from, pass allow_pickle=True (this runs the "
        f"file's code); better, convert it once to safetensors in a trusted session and load "
        f"that: netwright.checkpoint.save_weights(model.state_dict(), 'weights.safetensors')."
    )


def _blocked_error(path: Path, name: str, module: str) -> CheckpointError:
    return CheckpointError(
        f"{str(path)!r} was refused as unsafe, not damaged: its pickle names {name!r}, from "
        f"the module {module!r}, which torch's safe loader (weights_only=True) never allows "
        f"(sys, os, posix and nt reach the operating system). Unpickling it could call "
        f"{name} with arguments from the file, which can do anything your user account can, "
        f"so netwright did not load it. "
        f"Fix: get the weights from a source you trust, ideally as safetensors; "
        f"allow_pickle=True would run the file's code, so pass it only if you wrote the file "
        f"yourself."
    )


def read_torch(path: Path, allow_pickle: bool, map_location: Any) -> Any:
    """Load a torch.save file with weights_only=True; with allow_pickle, fall back to a full
    unpickle only when the file really holds objects that need it."""
    with path.open("rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if is_zip:
        _check_torch_zip(path)
    try:
        # A file object, not the path: torch.load reads any path ending in .safetensors as a
        # safetensors file (torch 2.14), whatever it holds; the first bytes said it is torch's.
        with path.open("rb") as fh:
            return torch.load(fh, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        blocked = re.search(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked", message)
        if blocked and not allow_pickle:
            raise _blocked_error(path, blocked.group(1), blocked.group(2)) from None
        if not blocked and "Unsupported global" not in message \
                and "not an allowed global" not in message:
            raise corrupt_error(path, "it could not be unpickled as tensors", exc) from None
        if not allow_pickle:
            try:
                found = sorted(set(torch.serialization.get_unsafe_globals_in_checkpoint(path)))
            except Exception:  # only used to name the objects in the message
                found = re.findall(r"GLOBAL (\S+) was not", message)
            raise _needs_pickle_error(path, found) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, zipfile.BadZipFile) as exc:
        if "torch.cuda.is_available() is False" in str(exc):
            raise CheckpointError(
                f"{str(path)!r} holds CUDA tensors and this machine has no CUDA device. Fix: "
                f"pass map_location='cpu' (the default).") from None
        raise corrupt_error(path, "torch.load could not read it", exc) from None
    try:
        with path.open("rb") as fh:
            return torch.load(fh, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{str(path)!r} could not be unpickled even with allow_pickle=True "
                              f"({type(exc).__name__}: {exc}). Fix: load it in the environment "
                              f"that saved it (same packages) and save the state_dict alone.") \
            from None
