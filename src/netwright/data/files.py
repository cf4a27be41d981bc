"""Which files a folder holds for a data kind: the suffixes and the words of images and sounds,
and the files to predict on (a file, a folder, or a list of either)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

__all__ = ["IMAGE_SUFFIXES", "FileKind", "IMAGES", "image_files_in", "files_from"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")


def image_files_in(folder: Path, suffixes: Sequence[str] = IMAGE_SUFFIXES) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)


@dataclass(frozen=True)
class FileKind:
    """The words the folder and table scanners use for one kind of file."""

    noun: str  # "image", "sound"
    suffixes: tuple[str, ...]
    column: str  # the config field naming a table's path column
    example: str  # a folder layout, for messages


IMAGES = FileKind("image", IMAGE_SUFFIXES, "data.image", "root/cat/1.png, root/dog/2.jpg")


def files_from(items: Any, kind: FileKind = IMAGES) -> list[Path]:
    """The files to predict on: a file, a folder (searched recursively for ``kind``'s files),
    or a list of either; a missing file or an empty folder is an error naming it."""
    items = [items] if isinstance(items, (str, os.PathLike)) else list(items)
    paths: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = image_files_in(p, kind.suffixes)
            if not found:
                raise DataError(f"folder {str(p)!r} holds no {kind.noun} files "
                                f"({', '.join(kind.suffixes)}).")
            paths += found
        elif not p.is_file():
            raise DataError(f"{kind.noun} {str(p)!r} does not exist.")
        else:
            paths.append(p)
    if not paths:
        raise DataError(f"predict: no {kind.noun} files given.")
    return paths
