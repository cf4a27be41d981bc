"""Weights files: safetensors written atomically with a checksum, and read back checked.

:func:`save_weights` stores tied tensors once (safetensors refuses shared memory) and records
their other names, the key order and a CRC-32 in the file's metadata. Reading checks the header
against the file's real size before anything it claims is allocated, then the checksum, so a
truncated or damaged file is an error that names it (:func:`corrupt_error`), never wrong weights.
"""

from __future__ import annotations

import json
import math
import os
import zlib
from collections.abc import Mapping
from pathlib import Path

import torch

from ..atomic import atomic_write_bytes
from ..errors import CheckpointError, ConfigError

WEIGHTS_FILE = "weights.safetensors"
SHOWN = 8  # keys shown per list in errors and reports (this package's messages)

# netwright's own entries in safetensors metadata (metadata values must be strings).
_META_ALIASES = "netwright.aliases"  # JSON {alias key: stored key} for tied tensors stored once
_META_ORDER = "netwright.order"  # JSON list of the state_dict's keys in module order
_META_CRC = "netwright.crc32"  # CRC-32 of names, dtypes, shapes and bytes of the stored tensors

# The safetensors library refuses headers above 100 MB; so does netwright, before reading one.
_MAX_HEADER = 100_000_000
_ST_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
                "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
                "I64": 8, "U64": 8, "F64": 8, "C64": 8}


def state_to_cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies of a state_dict's tensors (safe to keep as a snapshot).

    >>> from torch import nn
    >>> s = state_to_cpu(nn.Linear(2, 1).state_dict())
    >>> sorted(s), s["weight"].device.type, s["weight"].requires_grad
    (['bias', 'weight'], 'cpu', False)
    """
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in state.items()
            if isinstance(v, torch.Tensor)}


def _storage_key(t: torch.Tensor) -> tuple | None:
    """Identity of the exact memory a tensor views; equal keys mean tied (aliased) tensors."""
    if t.numel() == 0 or t.device.type == "meta":
        return None
    try:
        ptr = t.untyped_storage().data_ptr()
    except (RuntimeError, NotImplementedError):  # tensor subclasses without plain storage
        return None
    return (t.device, ptr, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


def _checksum(tensors: Mapping[str, torch.Tensor]) -> str:
    """CRC-32 over every tensor's name, dtype, shape and bytes, in sorted-key order, so it does
    not depend on where safetensors placed each tensor in the file."""
    crc = 0
    for key in sorted(tensors):
        t = tensors[key].detach().to("cpu").contiguous()
        crc = zlib.crc32(f"{key}\0{t.dtype}\0{tuple(t.shape)}\0".encode("utf-8"), crc)
        if t.numel():
            # Viewed as bytes: numpy has no bfloat16/float8, but every dtype reinterprets as uint8.
            crc = zlib.crc32(t.reshape(-1).view(torch.uint8).numpy(), crc)
    return f"{crc:08x}"


def save_weights(state: Mapping[str, torch.Tensor], path: str | os.PathLike,
                 metadata: Mapping[str, str] | None = None) -> Path:
    """Save a state_dict as safetensors, atomically, with a checksum.

    safetensors refuses tensors that share memory, so tied tensors (an embedding and an output
    layer sharing one weight) are stored once and their other names recorded in the metadata;
    :func:`load_weights_file` gives every name back, all pointing at one tensor. The key order is
    recorded too, which lets ``load_weights(mode="repair")`` map renamed layers safely.

    >>> import tempfile
    >>> from torch import nn
    >>> p = save_weights(nn.Linear(2, 1).state_dict(), Path(tempfile.mkdtemp()) / "w.safetensors")
    >>> sorted(load_weights_file(p))
    ['bias', 'weight']
    """
    from safetensors.torch import save

    kept: dict[str, str] = {}  # storage identity → first key holding it
    aliases: dict[str, str] = {}
    originals: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            continue
        ident = _storage_key(value)
        if ident is not None and ident in kept:
            aliases[key] = kept[ident]
            continue
        if ident is not None:
            kept[ident] = key
        originals[key] = value
    tensors = state_to_cpu(originals)  # fresh, contiguous copies: no two share memory
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    reserved = [k for k in meta if k.startswith("netwright.")]
    if reserved:
        raise ConfigError(f"save_weights metadata keys starting with 'netwright.' are reserved for "
                          f"netwright's own records; got {reserved}. Fix: use another prefix.")
    meta.setdefault("format", "pt")  # what Hugging Face loaders check for
    meta[_META_ORDER] = json.dumps([k for k, v in state.items() if isinstance(v, torch.Tensor)])
    meta[_META_CRC] = _checksum(tensors)
    if aliases:
        meta[_META_ALIASES] = json.dumps(aliases)
    return atomic_write_bytes(path, save(tensors, metadata=meta))



def corrupt_error(path: Path, what: str, exc: BaseException | None = None) -> CheckpointError:
    cause = ""
    if exc is not None:
        first = (str(exc).strip().splitlines() or [""])[0][:300]
        cause = f" ({type(exc).__name__}: {first})" if first else f" ({type(exc).__name__})"
    return CheckpointError(
        f"weights file {str(path)!r} is corrupt or incomplete: {what}{cause}. It was probably "
        f"cut short by a crash or a full disk, or damaged in a copy. Fix: load an earlier "
        f"checkpoint (e.g. checkpoints/best/ or checkpoints/last/ of the run), copy the file "
        f"again, or save the weights again."
    )


def read_safetensors_header(path: Path) -> dict:
    """Read and check a safetensors header against the file's real size, reading at most the
    header itself, so a crafted length or offset never makes netwright allocate what it claims.
    """
    size = path.stat().st_size
    if size < 8:
        raise corrupt_error(path, f"it holds {size} bytes; a safetensors file starts with an "
                                  f"8-byte header length")
    with path.open("rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > size - 8:
            raise corrupt_error(path, f"its header claims {n:,} bytes but the whole file after "
                                      f"the length field holds {size - 8:,}")
        if n > _MAX_HEADER:
            raise corrupt_error(path, f"its header claims {n:,} bytes, over the {_MAX_HEADER:,} "
                                      f"that safetensors allows")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise corrupt_error(path, "its header is not valid JSON", exc) from None
    except RecursionError:
        raise CheckpointError(
            f"weights file {str(path)!r} is not a valid safetensors file: its JSON header is "
            f"nested too deeply to read (a safetensors header is one flat mapping of tensor "
            f"names to dtype, shape and offsets), so it is damaged or was crafted. Nothing was "
            f"loaded. Fix: load the weights from a file you trust, or save them again."
        ) from None
    if not isinstance(header, dict):
        raise corrupt_error(path, f"its header is a JSON {type(header).__name__}, not an object")
    data_len = size - 8 - n
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise corrupt_error(path, "its __metadata__ is not a mapping of strings")
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
                and isinstance(entry.get("shape"), list)
                and all(type(d) is int and d >= 0 for d in entry["shape"])
                and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
                and all(type(o) is int for o in entry["data_offsets"])):
            raise corrupt_error(path, f"the header entry for tensor {name!r} is malformed: "
                                      f"expected dtype, shape and data_offsets [begin, end]; "
                                      f"got {entry!r:.200}")
        begin, end = entry["data_offsets"]
        if not 0 <= begin <= end <= data_len:
            raise corrupt_error(path, f"tensor {name!r} claims bytes [{begin:,}, {end:,}) but the "
                                      f"data section holds {data_len:,} bytes")
        itemsize = _ST_ITEMSIZE.get(entry["dtype"])
        if itemsize is not None:  # other dtypes (sub-byte floats) are left to safetensors
            expected = math.prod(entry["shape"]) * itemsize
            if expected != end - begin:
                raise corrupt_error(path, f"tensor {name!r} is {entry['dtype']} of shape "
                                          f"{tuple(entry['shape'])}, which is {expected:,} bytes, "
                                          f"but its byte range [{begin:,}, {end:,}) holds "
                                          f"{end - begin:,}")
        spans.append((begin, end, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise corrupt_error(path, f"tensors {n0!r} [{b0:,}, {e0:,}) and {n1!r} "
                                      f"[{b1:,}, {e1:,}) overlap")
    return header


def read_safetensors(path: Path, device: str = "cpu"
                      ) -> tuple[dict[str, torch.Tensor], list | None]:
    """Tensors of a safetensors file (tied names restored) and the recorded key order, if any."""
    from safetensors.torch import load_file

    header = read_safetensors_header(path)
    meta = header.get("__metadata__") or {}
    try:
        tensors = load_file(str(path), device=device)
    except Exception as exc:  # SafetensorError, or torch failing on a dtype it cannot hold
        raise corrupt_error(path, "safetensors could not read it", exc) from None
    ours = [k for k in meta if k.startswith("netwright.")]
    if ours:
        # Files netwright writes always carry all of these; a damaged name must not be able to
        # switch the checksum off.
        if set(ours) - {_META_CRC, _META_ORDER, _META_ALIASES} \
                or not {_META_CRC, _META_ORDER} <= set(ours):
            raise corrupt_error(path, f"its netwright metadata entries are damaged "
                                      f"(found {sorted(ours)})")
        found = _checksum(tensors)
        if found != meta[_META_CRC]:
            raise corrupt_error(path, f"its contents do not match the checksum recorded when it "
                                      f"was saved (crc32 {found}, recorded {meta[_META_CRC]})")
    try:
        aliases = json.loads(meta.get(_META_ALIASES, "{}"))
        order = json.loads(meta[_META_ORDER]) if _META_ORDER in meta else None
    except (ValueError, RecursionError) as exc:
        raise corrupt_error(path, "netwright's metadata in its header is not valid JSON",
                            exc) from None
    if not (isinstance(aliases, dict) and all(isinstance(v, str) for v in aliases.values())):
        raise corrupt_error(path, "its record of tied tensors is not a mapping of names")
    for alias, stored in aliases.items():
        if stored not in tensors:
            raise corrupt_error(path, f"tied name {alias!r} refers to {stored!r}, which the file "
                                      f"lacks")
        tensors[alias] = tensors[stored]  # one tensor under both names, as it was saved
    if order is not None:
        if not isinstance(order, list) or sorted(order) != sorted(tensors):
            raise corrupt_error(path, "the key order recorded when it was saved does not list "
                                      "its tensors")
        tensors = {k: tensors[k] for k in order}
    return tensors, order


def load_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a safetensors file into CPU tensors, with a clear error if it is missing or corrupt.

    The header is checked against the file size first, the checksum netwright records is
    verified, and tied tensors saved once come back under every name.

    >>> import tempfile
    >>> p = save_weights({"a": torch.ones(2)}, Path(tempfile.mkdtemp()) / "w.safetensors")
    >>> load_weights_file(p)["a"]
    tensor([1., 1.])
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file {str(path)!r} does not exist. Fix: check the path.")
    return read_safetensors(path)[0]
