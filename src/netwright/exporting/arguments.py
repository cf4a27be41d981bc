"""The checks of :func:`~netwright.exporting.export`'s arguments, made before anything is exported:
the format (by name or by the file's suffix), tolerances, the opset, and the target paths (an
existing folder that can be written to, no file replaced without ``overwrite``)."""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ExportError, did_you_mean
from .report import FILE_NAMES, FORMATS

_ALIASES = {"ts": "torchscript", "torch.jit": "torchscript", "torch.export": "pt2"}
_SUFFIXES = {".onnx": "onnx", ".ts": "torchscript", ".torchscript": "torchscript", ".pt2": "pt2"}


def check_format(fmt: Any, path: Path | None = None) -> str:
    """The canonical format name; ``None`` takes it from ``path``'s suffix (else ONNX)."""
    by_suffix = _SUFFIXES.get(path.suffix.lower()) if path is not None else None
    if fmt is None:
        if by_suffix is None and path is not None and path.suffix:
            raise ConfigError(
                f"export cannot tell the format from the suffix {path.suffix!r} of "
                f"{str(path)!r}. Fix: name the file *.onnx, *.ts or *.pt2, or pass format= "
                f"({', '.join(map(repr, FORMATS))}).")
        return by_suffix or "onnx"
    name = str(fmt).strip().lower()
    name = _ALIASES.get(name, name)
    if name not in FORMATS:
        raise ConfigError(
            f"export format must be one of {', '.join(map(repr, FORMATS))}; got {fmt!r}."
            f"{did_you_mean(str(fmt), FORMATS + tuple(_ALIASES))} Fix: e.g. format='onnx', or "
            f"--format onnx,torchscript,pt2 on the command line."
        )
    if by_suffix is not None and by_suffix != name:
        raise ConfigError(
            f"export: the path {str(path)!r} ends in {path.suffix!r}, the suffix of {by_suffix!r} "
            f"files, but format={fmt!r}. Fix: name the file *{_suffix_of(name)} or pass "
            f"format={by_suffix!r}."
        )
    return name


def _suffix_of(fmt: str) -> str:
    return Path(FILE_NAMES[fmt]).suffix


def check_formats(formats: Any) -> list[str]:
    if isinstance(formats, str):
        formats = [f for f in formats.split(",") if f.strip()]
    if not isinstance(formats, (list, tuple)) or not formats:
        raise ConfigError(f"export formats: expected a list such as ['onnx', 'torchscript', "
                          f"'pt2'] (or 'onnx,pt2'); got {formats!r}.")
    out: list[str] = []
    for f in formats:
        name = check_format(f)
        if name not in out:
            out.append(name)
    return out


def check_tolerance(rtol: Any, atol: Any) -> None:
    for name, value in (("rtol", rtol), ("atol", atol)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not value >= 0 or math.isinf(value)):
            raise ConfigError(f"export {name} must be a finite number >= 0 (or None for the "
                              f"default by dtype); got {value!r}.")


def check_target_file(path: Path) -> None:
    """The file's folder must exist and be writable; the path must not be a folder."""
    if path.is_dir():
        raise ExportError(
            f"export: {str(path)!r} is a folder; expected a file path such as "
            f"{str(path / 'model.onnx')!r}. Fix: name the file, or call export_all(model, "
            f"{str(path)!r}) to write every format into that folder."
        )
    check_writable_folder(path.parent, path)


def check_not_replacing(paths: Sequence[Path], overwrite: bool, who: str) -> None:
    """Refuse (naming every one) paths that already exist, links included, unless overwrite."""
    if overwrite:
        return
    taken = [p for p in paths if os.path.lexists(p)]
    if taken:
        names = ", ".join(repr(str(p)) for p in taken)
        raise ExportError(
            f"{who}: {names} already exist{'s' if len(taken) == 1 else ''}; netwright does not "
            f"replace existing files, and nothing was written. Fix: pass overwrite=True "
            f"(netwright export RUN_DIR --overwrite) to replace "
            f"{'it' if len(taken) == 1 else 'them'}, or export to another path."
        )


def check_writable_folder(folder: Path, target: Path) -> None:
    if not folder.exists():
        missing = folder
        while not missing.parent.exists() and missing.parent != missing:
            missing = missing.parent
        raise ExportError(
            f"export: cannot write {str(target)!r}: the folder {str(folder)!r} does not exist"
            f"{f' ({str(missing)!r} is missing)' if missing != folder else ''}. Fix: create "
            f"it first (mkdir -p {folder}) or write into an existing folder."
        )
    if not folder.is_dir():
        raise ExportError(f"export: cannot write {str(target)!r}: {str(folder)!r} is a file, not "
                          f"a folder. Fix: choose a path inside a folder.")
    # os.access says yes to root on a read-only folder; only a real write tells.
    try:
        fd, probe = tempfile.mkstemp(prefix=".netwright-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ExportError(
            f"export: cannot write {str(target)!r}: the folder {str(folder)!r} is not writable "
            f"({exc.strerror or type(exc).__name__}). Fix: write into a folder you can write to, "
            f"or change its permissions."
        ) from None


def check_opset(opset: Any) -> None:
    if opset is not None and (isinstance(opset, bool) or not isinstance(opset, int) or opset < 7):
        raise ConfigError(f"export opset must be an ONNX opset number such as 18 (or None for "
                          f"torch's default); got {opset!r}.")
