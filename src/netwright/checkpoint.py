"""Writing and reading weights safely: atomic writes, safetensors, and state_dict repair.

Every file is written to a temporary name in the same folder, flushed, fsynced and renamed into
place, so a crash at any moment leaves the previous good file loadable.

Reading never runs code from a file: safetensors holds only tensors, and ``torch.load`` is only
called with ``weights_only=True`` unless the caller passes ``allow_pickle=True``. Files are
checked against their own size before anything they claim is allocated, and the checksums they
carry (netwright's CRC-32 in safetensors metadata, the zip CRC-32 of ``torch.save`` files) are
verified, so a truncated or damaged file is an error that names it, never wrong weights.

:func:`load_weights` fits a checkpoint to a model: ``strict`` needs the keys and shapes to match
exactly, ``repair`` also undoes wrapper prefixes (``module.``, ``_orig_mod.``, ``model.``,
``net.``) and renamed layers, and ``partial`` loads what fits and reports the rest.
"""

from __future__ import annotations

import json
import math
import os
import pickle
import re
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from .errors import CheckpointError, ConfigError, describe, did_you_mean

__all__ = [
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "state_to_cpu",
    "save_weights",
    "load_weights_file",
    "load_weights",
    "LoadReport",
    "LOAD_MODES",
    "WRAPPER_PREFIXES",
]

LOAD_MODES = ("strict", "repair", "partial")
#: Prefixes that wrappers add to every key: DataParallel/DDP, torch.compile, and the attribute
#: name common wrappers (Lightning modules among them) keep the network under.
WRAPPER_PREFIXES = ("module.", "_orig_mod.", "model.", "net.")
#: Keys of a torch.save'd dict under which the state_dict is commonly kept, in the order tried.
WRAPPER_KEYS = ("state_dict", "model_state_dict", "model", "net", "weights")
WEIGHTS_FILE = "weights.safetensors"

# netwright's own entries in safetensors metadata (metadata values must be strings).
_META_ALIASES = "netwright.aliases"  # JSON {alias key: stored key} for tied tensors stored once
_META_ORDER = "netwright.order"  # JSON list of the state_dict's keys in module order
_META_CRC = "netwright.crc32"  # CRC-32 of names, dtypes, shapes and bytes of the stored tensors

# The safetensors library refuses headers above 100 MB; so does netwright, before reading one.
_MAX_HEADER = 100_000_000
_ST_ITEMSIZE = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
                "I16": 2, "U16": 2, "F16": 2, "BF16": 2, "I32": 4, "U32": 4, "F32": 4,
                "I64": 8, "U64": 8, "F64": 8, "C64": 8}
_SHOWN = 8  # keys shown per list in errors and reports


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def state_to_cpu(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Detached, contiguous CPU copies of a state_dict's tensors (safe to keep as a snapshot).

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


# --------------------------------------------------------------------------------------------
# Reading files
# --------------------------------------------------------------------------------------------

def _corrupt(path: Path, what: str, exc: BaseException | None = None) -> CheckpointError:
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


def _read_safetensors_header(path: Path) -> dict:
    """Read and check a safetensors header against the file's real size, reading at most the
    header itself, so a crafted length or offset never makes netwright allocate what it claims.
    """
    size = path.stat().st_size
    if size < 8:
        raise _corrupt(path, f"it holds {size} bytes; a safetensors file starts with an 8-byte "
                             f"header length")
    with path.open("rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        if n > size - 8:
            raise _corrupt(path, f"its header claims {n:,} bytes but the whole file after the "
                                 f"length field holds {size - 8:,}")
        if n > _MAX_HEADER:
            raise _corrupt(path, f"its header claims {n:,} bytes, over the {_MAX_HEADER:,} that "
                                 f"safetensors allows")
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(path, "its header is not valid JSON", exc) from None
    except RecursionError:
        raise CheckpointError(
            f"weights file {str(path)!r} is not a valid safetensors file: its JSON header is "
            f"nested too deeply to read (a safetensors header is one flat mapping of tensor "
            f"names to dtype, shape and offsets), so it is damaged or was crafted. Nothing was "
            f"loaded. Fix: load the weights from a file you trust, or save them again."
        ) from None
    if not isinstance(header, dict):
        raise _corrupt(path, f"its header is a JSON {type(header).__name__}, not an object")
    data_len = size - 8 - n
    spans = []
    for name, entry in header.items():
        if name == "__metadata__":
            if not isinstance(entry, dict) or not all(isinstance(v, str) for v in entry.values()):
                raise _corrupt(path, "its __metadata__ is not a mapping of strings")
            continue
        if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str)
                and isinstance(entry.get("shape"), list)
                and all(type(d) is int and d >= 0 for d in entry["shape"])
                and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
                and all(type(o) is int for o in entry["data_offsets"])):
            raise _corrupt(path, f"the header entry for tensor {name!r} is malformed: expected "
                                 f"dtype, shape and data_offsets [begin, end]; got {entry!r:.200}")
        begin, end = entry["data_offsets"]
        if not 0 <= begin <= end <= data_len:
            raise _corrupt(path, f"tensor {name!r} claims bytes [{begin:,}, {end:,}) but the "
                                 f"data section holds {data_len:,} bytes")
        itemsize = _ST_ITEMSIZE.get(entry["dtype"])
        if itemsize is not None:  # other dtypes (sub-byte floats) are left to safetensors
            expected = math.prod(entry["shape"]) * itemsize
            if expected != end - begin:
                raise _corrupt(path, f"tensor {name!r} is {entry['dtype']} of shape "
                                     f"{tuple(entry['shape'])}, which is {expected:,} bytes, but "
                                     f"its byte range [{begin:,}, {end:,}) holds {end - begin:,}")
        spans.append((begin, end, name))
    spans.sort()
    for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
        if b1 < e0:
            raise _corrupt(path, f"tensors {n0!r} [{b0:,}, {e0:,}) and {n1!r} [{b1:,}, {e1:,}) "
                                 f"overlap")
    return header


def _read_safetensors(path: Path, device: str = "cpu"
                      ) -> tuple[dict[str, torch.Tensor], list | None]:
    """Tensors of a safetensors file (tied names restored) and the recorded key order, if any."""
    from safetensors.torch import load_file

    header = _read_safetensors_header(path)
    meta = header.get("__metadata__") or {}
    try:
        tensors = load_file(str(path), device=device)
    except Exception as exc:  # SafetensorError, or torch failing on a dtype it cannot hold
        raise _corrupt(path, "safetensors could not read it", exc) from None
    ours = [k for k in meta if k.startswith("netwright.")]
    if ours:
        # Files netwright writes always carry all of these; a damaged name must not be able to
        # switch the checksum off.
        if set(ours) - {_META_CRC, _META_ORDER, _META_ALIASES} \
                or not {_META_CRC, _META_ORDER} <= set(ours):
            raise _corrupt(path, f"its netwright metadata entries are damaged "
                                 f"(found {sorted(ours)})")
        found = _checksum(tensors)
        if found != meta[_META_CRC]:
            raise _corrupt(path, f"its contents do not match the checksum recorded when it was "
                                 f"saved (crc32 {found}, recorded {meta[_META_CRC]})")
    try:
        aliases = json.loads(meta.get(_META_ALIASES, "{}"))
        order = json.loads(meta[_META_ORDER]) if _META_ORDER in meta else None
    except (ValueError, RecursionError) as exc:
        raise _corrupt(path, "netwright's metadata in its header is not valid JSON", exc) from None
    if not (isinstance(aliases, dict) and all(isinstance(v, str) for v in aliases.values())):
        raise _corrupt(path, "its record of tied tensors is not a mapping of names")
    for alias, stored in aliases.items():
        if stored not in tensors:
            raise _corrupt(path, f"tied name {alias!r} refers to {stored!r}, which the file lacks")
        tensors[alias] = tensors[stored]  # one tensor under both names, as it was saved
    if order is not None:
        if not isinstance(order, list) or sorted(order) != sorted(tensors):
            raise _corrupt(path, "the key order recorded when it was saved does not list its "
                                 "tensors")
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
    return _read_safetensors(path)[0]


def _check_torch_zip(path: Path) -> None:
    """Verify the zip CRC-32 of every record of a torch.save file: torch itself does not, so a
    flipped bit would otherwise load as a wrong weight. Also refuses compressed records that
    would inflate far beyond the file (torch never compresses; a zip bomb would)."""
    size = path.stat().st_size
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED and info.file_size > 20 * size + 2**20:
                    raise _corrupt(path, f"record {info.filename!r} would inflate to "
                                         f"{info.file_size:,} bytes from a {size:,}-byte file")
                if info.CRC == 0 and info.file_size:
                    continue  # written with torch.serialization.set_crc32_options(False)
                with zf.open(info) as fh:
                    while fh.read(1 << 22):
                        pass
    except CheckpointError:
        raise  # the zip-bomb refusal above (a ValueError too): already says what is wrong
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, ValueError,
            NotImplementedError, zlib.error) as exc:
        raise _corrupt(path, "it is not a complete, intact zip archive (torch.save writes one)",
                       exc) from None


def _needs_pickle_error(path: Path, found: list[str]) -> CheckpointError:
    kinds = ", ".join(found[:_SHOWN]) + (f" and {len(found) - _SHOWN} more" if len(found) > _SHOWN
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


def _read_torch(path: Path, allow_pickle: bool, map_location: Any) -> Any:
    """Load a torch.save file with weights_only=True; with allow_pickle, fall back to a full
    unpickle only when the file really holds objects that need it."""
    with path.open("rb") as fh:
        is_zip = fh.read(4) == b"PK\x03\x04"
    if is_zip:
        _check_torch_zip(path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        message = str(exc)
        blocked = re.search(r"unsupported GLOBAL (\S+) whose module (\S+) is blocked", message)
        if blocked and not allow_pickle:
            raise _blocked_error(path, blocked.group(1), blocked.group(2)) from None
        if not blocked and "Unsupported global" not in message \
                and "not an allowed global" not in message:
            raise _corrupt(path, "it could not be unpickled as tensors", exc) from None
        if not allow_pickle:
            try:
                found = list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
            except Exception:  # only used to name the objects in the message
                found = re.findall(r"GLOBAL (\S+) was not", message)
            raise _needs_pickle_error(path, found) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError, TypeError,
            AttributeError, zipfile.BadZipFile) as exc:
        if "torch.cuda.is_available() is False" in str(exc):
            raise CheckpointError(
                f"{str(path)!r} holds CUDA tensors and this machine has no CUDA device. Fix: "
                f"pass map_location='cpu' (the default).") from None
        raise _corrupt(path, "torch.load could not read it", exc) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{str(path)!r} could not be unpickled even with allow_pickle=True "
                              f"({type(exc).__name__}: {exc}). Fix: load it in the environment "
                              f"that saved it (same packages) and save the state_dict alone.") \
            from None


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
        items = list(obj.items())[:_SHOWN]
        inner = ", ".join(f"{k!r}: {describe(v)}" for k, v in items)
        more = f", ... ({len(obj)} keys)" if len(obj) > _SHOWN else ""
        return f"a dict {{{inner}{more}}}"
    return describe(obj)


@dataclass
class _Source:
    state: dict[str, torch.Tensor]
    name: str
    location: str
    ordered: bool  # whether the key order is the order of the modules that saved it


def _open_source(source: Any, allow_pickle: bool, map_location: Any) -> _Source:
    if isinstance(source, (nn.Module, Mapping)):
        name = f"the given {type(source).__name__}"
        try:
            state, location = _find_state(source)
        except LookupError:
            raise CheckpointError(
                f"{name} holds no state_dict: expected a mapping of names to tensors, or one "
                f"under {', '.join(map(repr, WRAPPER_KEYS))}; got {_describe_container(source)}. "
                f"Fix: pass the inner mapping of tensors.") from None
        return _Source(state, name, location, ordered=True)
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(f"load_weights expects a path, a run or checkpoint folder, or a dict of "
                          f"tensors as source; got {describe(source)}.")
    path = Path(source).expanduser()
    if path.is_dir():
        path = _weights_in_folder(path)
    elif not path.exists():
        parent = path.parent if str(path.parent) else Path(".")
        near = did_you_mean(path.name, [p.name for p in parent.iterdir()]) \
            if parent.is_dir() else ""
        raise CheckpointError(f"weights file {str(path)!r} does not exist.{near} Fix: check the "
                              f"path.")
    with path.open("rb") as fh:
        head = fh.read(9)
    if not head:
        raise _corrupt(path, "it is empty")
    if head[:4] != b"PK\x03\x04" and (head[8:9] == b"{" or path.suffix == ".safetensors"):
        state, order = _read_safetensors(path, _safetensors_device(map_location))
        location = "the top level"
        if not state:
            raise CheckpointError(f"weights file {str(path)!r} holds no tensors. Fix: check that "
                                  f"it was saved from a model with parameters.")
        return _Source(state, str(path), location, ordered=order is not None)
    obj = _read_torch(path, allow_pickle, map_location)
    try:
        state, location = _find_state(obj)
    except LookupError:
        raise CheckpointError(
            f"found no state_dict in {str(path)!r}: expected a mapping of names to tensors, or "
            f"one under {', '.join(map(repr, WRAPPER_KEYS))}; the file holds "
            f"{_describe_container(obj)}. Fix: pick the entry yourself: "
            f"load_weights(model, torch.load(path, weights_only=True)['<key>'])."
        ) from None
    return _Source(state, str(path), location, ordered=True)


def _safetensors_device(map_location: Any) -> str:
    if isinstance(map_location, (str, torch.device)):
        return str(map_location)
    return "cpu"  # callables and dicts are torch.load's; copying into the model moves tensors


def _weights_in_folder(folder: Path) -> Path:
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


# --------------------------------------------------------------------------------------------
# Fitting a state_dict to a model
# --------------------------------------------------------------------------------------------

Shape = tuple[int, ...]


@dataclass
class LoadReport:
    """What :func:`load_weights` did: which model keys were loaded, renamed, left out.

    ``shape_mismatched`` maps a model key to (checkpoint shape, model shape); ``renamed`` maps
    each checkpoint key that was loaded (or paired) under another name to the model key;
    ``tied`` maps a model key to the key it shares its tensor with, when it was filled that way.

    >>> r = LoadReport(source="w.safetensors", mode="strict", matched=["weight", "bias"])
    >>> r.ok, r.to_dict()["matched"]
    (True, ['weight', 'bias'])
    """

    source: str
    mode: str
    location: str = "the top level"
    matched: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    shape_mismatched: dict[str, tuple[Shape, Shape]] = field(default_factory=dict)
    renamed: dict[str, str] = field(default_factory=dict)
    tied: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """Whether every model key was loaded and every checkpoint key used."""
        return not (self.missing or self.unexpected or self.shape_mismatched)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (shapes as lists)."""
        return {"source": self.source, "mode": self.mode, "location": self.location,
                "matched": list(self.matched), "missing": list(self.missing),
                "unexpected": list(self.unexpected),
                "shape_mismatched": {k: [list(a), list(b)]
                                     for k, (a, b) in self.shape_mismatched.items()},
                "renamed": dict(self.renamed), "tied": dict(self.tied)}

    def __str__(self) -> str:
        lines = [f"loaded {len(self.matched)} tensors from {self.source!r} "
                 f"(weights at {self.location}; mode={self.mode!r})"]
        if self.renamed:
            lines.append(f"  renamed ({len(self.renamed)}): "
                         + _listing(f"{s!r} -> {d!r}" for s, d in self.renamed.items()))
        if self.tied:
            lines.append(f"  tied ({len(self.tied)}): "
                         + _listing(f"{k!r} shares {v!r}" for k, v in self.tied.items()))
        if self.shape_mismatched:
            lines.append(f"  shape mismatched, kept as initialized ({len(self.shape_mismatched)}): "
                         + _listing(f"{k!r} checkpoint {a} vs model {b}"
                                    for k, (a, b) in self.shape_mismatched.items()))
        if self.missing:
            lines.append(f"  missing from the checkpoint, kept as initialized "
                         f"({len(self.missing)}): " + _listing(map(repr, self.missing)))
        if self.unexpected:
            lines.append(f"  in the checkpoint but not the model, ignored "
                         f"({len(self.unexpected)}): " + _listing(map(repr, self.unexpected)))
        return "\n".join(lines)


def _listing(items: Iterable[str], limit: int = _SHOWN) -> str:
    items = list(items)
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _canonical(key: str) -> str:
    """A key without wrapper prefixes: what it would be on the bare network."""
    key = key.replace("._orig_mod.", ".")  # a torch.compile'd submodule
    stripped = True
    while stripped:
        stripped = False
        for prefix in WRAPPER_PREFIXES:
            if key.startswith(prefix) and len(key) > len(prefix):
                key, stripped = key[len(prefix):], True
    return key


def _natural(key: str) -> tuple:
    """Sort key under which 'layers.10' follows 'layers.2', as modules were registered."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in key.split("."))


def _groups(keys: Iterable[str]) -> dict[str, dict[str, str]]:
    """Keys grouped by module path: {module path: {leaf name: key}}, in the given order."""
    groups: dict[str, dict[str, str]] = {}
    for key in keys:
        module, _, leaf = key.rpartition(".")
        groups.setdefault(module, {})[leaf] = key
    return groups


def _structural(src: list[str], dst: list[str], src_shapes: Mapping[str, Shape],
                dst_shapes: Mapping[str, Shape], src_ordered: bool) -> dict[str, str]:
    """Pair renamed modules: same leaf names and shapes; among modules alike in that, by order.

    A module is matched only to one with the very same parameters and buffers (names like
    ``weight``/``bias`` and shapes). When several modules look alike (a stack of equal layers)
    their order decides, which is trusted only when it is known: a torch.save'd dict keeps the
    modules' order, netwright records it in safetensors; without it, only names that differ in
    indices alone ('0', '2', '4') are ordered, by their numbers. Returns {model key: source key}.
    """
    def signature(group: dict[str, str], shapes: Mapping[str, Shape]) -> tuple:
        return tuple(sorted((leaf, shapes[key]) for leaf, key in group.items()))

    src_groups = _groups(src if src_ordered else sorted(src, key=_natural))
    dst_groups = _groups(dst)
    src_by_sig: dict[tuple, list[str]] = {}
    for module, group in src_groups.items():
        src_by_sig.setdefault(signature(group, src_shapes), []).append(module)
    dst_by_sig: dict[tuple, list[str]] = {}
    for module, group in dst_groups.items():
        dst_by_sig.setdefault(signature(group, dst_shapes), []).append(module)
    pairs: dict[str, str] = {}
    for sig, dst_modules in dst_by_sig.items():
        src_modules = src_by_sig.get(sig, [])
        if len(src_modules) != len(dst_modules):
            continue  # some of them are new or gone: which is which cannot be told
        if len(src_modules) > 1 and not src_ordered and \
                len({re.sub(r"\d+", "#", m) for m in src_modules}) > 1:
            continue
        for s_mod, d_mod in zip(src_modules, dst_modules):
            for leaf, d_key in dst_groups[d_mod].items():
                pairs[d_key] = src_groups[s_mod][leaf]
    return pairs


@dataclass
class _Plan:
    pairs: dict[str, str]  # model key → source key, shapes equal
    mismatched: dict[str, str]  # model key → source key, shapes differ
    missing: list[str]
    unexpected: list[str]


def _plan(src_shapes: Mapping[str, Shape], dst_shapes: Mapping[str, Shape], repair: bool,
          src_ordered: bool) -> _Plan:
    pairs = {k: k for k in dst_shapes if k in src_shapes and src_shapes[k] == dst_shapes[k]}

    def free() -> tuple[list[str], list[str]]:
        used = set(pairs.values())
        return ([k for k in src_shapes if k not in used], [k for k in dst_shapes if k not in pairs])

    def by_canonical(keys: list[str]) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for k in keys:
            out.setdefault(_canonical(k), []).append(k)
        return out

    if repair:
        src_free, dst_free = free()
        src_canon = by_canonical(src_free)
        for canon, dst_keys in by_canonical(dst_free).items():
            src_keys = src_canon.get(canon, [])
            if len(dst_keys) == 1 and len(src_keys) == 1 \
                    and src_shapes[src_keys[0]] == dst_shapes[dst_keys[0]]:
                pairs[dst_keys[0]] = src_keys[0]
        src_free, dst_free = free()
        if src_free and dst_free:
            pairs.update(_structural(src_free, dst_free, src_shapes, dst_shapes, src_ordered))

    # What is left pairs up by name only to be reported with both shapes.
    src_free, dst_free = free()
    mismatched = {k: k for k in dst_free if k in src_shapes and k in src_free}
    if repair:
        taken = set(mismatched.values())
        src_canon = by_canonical([k for k in src_free if k not in taken])
        for canon, dst_keys in by_canonical([k for k in dst_free if k not in mismatched]).items():
            src_keys = src_canon.get(canon, [])
            if len(dst_keys) == 1 and len(src_keys) == 1:
                mismatched[dst_keys[0]] = src_keys[0]
    taken = set(mismatched.values())
    return _Plan(pairs, mismatched, [k for k in dst_free if k not in mismatched],
                 [k for k in src_free if k not in taken])


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
        lines.append("  shape differs: " + _listing(
            f"{k!r} checkpoint {_shape_str(a)} vs model {_shape_str(b)}"
            for k, (a, b) in report.shape_mismatched.items()))
    if report.missing:
        lines.append("  in the model, not in the checkpoint: " + _listing(
            f"{k!r} {_shape_str(dst_shapes[k])}" for k in report.missing))
    if report.unexpected:
        lines.append("  in the checkpoint, not in the model: " + _listing(
            f"{k!r} {_shape_str(src_shapes[k])}" for k in report.unexpected))
    if report.renamed:
        lines.append("  renamed: " + _listing(f"{s!r} -> {d!r}" for s, d in report.renamed.items()))
    lines.append(f"Nothing was loaded. Fix: {fix}")
    return CheckpointError("\n".join(lines))


def _nothing_fits(source: _Source, model: nn.Module, src_shapes: Mapping[str, Shape],
                  dst_shapes: Mapping[str, Shape], mode: str) -> CheckpointError:
    def few(shapes: Mapping[str, Shape]) -> str:
        return _listing((f"{k!r} {_shape_str(s)}" for k, s in shapes.items()), 5) or "(none)"
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
    src = _open_source(source, allow_pickle, map_location)
    model_state = model.state_dict(keep_vars=True)
    dst_shapes = {k: tuple(v.shape) for k, v in model_state.items() if isinstance(v, torch.Tensor)}
    src_shapes = {k: tuple(v.shape) for k, v in src.state.items()}
    plan = _plan(src_shapes, dst_shapes, repair=mode != "strict", src_ordered=src.ordered)

    # A tied model key is filled by any checkpoint key for its tensor; checkpoints often store
    # the shared weight once (Hugging Face, netwright).
    tied: dict[str, str] = {}
    for keys in _tie_groups(model_state):
        loaded = [k for k in keys if k in plan.pairs]
        values = [src.state[plan.pairs[k]] for k in loaded]
        if any(not torch.equal(values[0], v.to(values[0].dtype)) for v in values[1:]):
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
        _plan(src_shapes, dst_shapes, repair=True, src_ordered=src.ordered)
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
                left = _listing([repr(k) for k in repaired.mismatched] + [repr(k) for k in
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
                              f"{result.unexpected_keys[:_SHOWN]} of its own state_dict.")
    return report
