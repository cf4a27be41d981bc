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

The package, one module per part: ``weights_file`` (safetensors written and read, checked),
``torch_file`` (``torch.save`` files: zip checks, no code run), ``sources`` (a file, a folder or
a dict → one state_dict), ``repair`` (pairing keys; :class:`LoadReport`) and ``loading``
(:func:`load_weights`).
"""

from __future__ import annotations

from ..atomic import atomic_write_bytes, atomic_write_json, atomic_write_text
from .loading import LOAD_MODES, load_weights
from .repair import WRAPPER_PREFIXES, LoadReport, Shape
from .sources import WRAPPER_KEYS, weights_in_folder
from .weights_file import (WEIGHTS_FILE, load_weights_file, read_safetensors_header, save_weights,
                           state_to_cpu)

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
