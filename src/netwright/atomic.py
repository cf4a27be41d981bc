"""Atomic file writes and bounded reads (no torch): a crash at any moment leaves the previous
file intact, and a hostile file cannot exhaust memory or the stack while it is read.

Each file is written to a temporary name in the same folder, flushed, fsynced and renamed into
place; the folder is fsynced so the rename itself survives a power loss. The new file gets the
permissions an ordinary ``open()`` would give it (0644 under the usual umask 022), or keeps
those of the file it replaces: a temporary file is created 0600, and a run directory shared
with colleagues must stay readable to them.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "read_json", "fsync_dir",
           "MAX_JSON_BYTES"]

MAX_JSON_BYTES = 64 * 2**20  # model.json, state.json, results.json: kilobytes in practice


def _umask() -> int:
    """The process umask, read without changing it where /proc allows (os.umask both sets and
    returns, which briefly changes it for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename, fsync the folder).

    >>> import tempfile
    >>> atomic_write_bytes(Path(tempfile.mkdtemp()) / "a" / "b.bin", b"xyz").read_bytes()
    b'xyz'
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, mode)
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
    fsync_dir(path.parent)  # make the rename itself durable
    return path


def fsync_dir(folder: str | os.PathLike) -> None:
    """fsync a folder so that renames into it survive a power loss (a no-op where the platform
    cannot open folders)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically (see :func:`atomic_write_bytes`).

    >>> import tempfile
    >>> atomic_write_text(Path(tempfile.mkdtemp()) / "n.txt", "héllo").read_text("utf-8")
    'héllo'
    """
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented, key-sorted JSON atomically (other objects via ``str``).

    >>> import tempfile
    >>> atomic_write_json(Path(tempfile.mkdtemp()) / "s.json", {"b": 1, "a": [2]}).read_text()
    '{\\n  "a": [\\n    2\\n  ],\\n  "b": 1\\n}\\n'
    """
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str | os.PathLike, *, what: str = "file", max_bytes: int = MAX_JSON_BYTES,
              error: type[Exception] = ValueError) -> Any:
    """Parse a JSON file, turning every way it can be bad into one ``error`` naming the file:
    missing, unreadable, too large, not UTF-8, not JSON, or nested too deeply for Python's stack.

    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "a.json"; _ = p.write_text("[" * 100_000)
    >>> try:
    ...     read_json(p, what="model.json")
    ... except ValueError as exc:
    ...     print("nested too deeply" in str(exc))
    True
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise error(f"{what} {str(path)!r} is {size:,} bytes; netwright's {what} files are far "
                        f"smaller (at most {max_bytes:,} bytes are read). It is not one of ours, or "
                        f"it is corrupt.")
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {str(path)!r} is not UTF-8 text ({exc.reason} at byte {exc.start}); "
                    f"it is corrupt.") from None
    except OSError as exc:
        raise error(f"{what} {str(path)!r} cannot be read ({exc.strerror or exc}).") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise error(f"{what} {str(path)!r} is not valid JSON (line {exc.lineno}, column "
                    f"{exc.colno}: {exc.msg}); it is corrupt.") from None
    except RecursionError:
        raise error(f"{what} {str(path)!r} is nested too deeply (more than ~900 levels) to be a "
                    f"file netwright wrote; it is corrupt or crafted.") from None
