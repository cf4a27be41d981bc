"""The run directory of a fit: what may be written where, and what a resume continues from.

Nothing a user has is lost: ``fit`` writes only into a new or empty folder unless
``overwrite=True`` (which replaces netwright's own files there and keeps every other file), and
a resume with no usable checkpoint refuses rather than training over an earlier run. Symbolic
links for ``checkpoints/`` or a bundle folder are refused (see ``netwright.resume``).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import CheckpointError, ConfigError

__all__ = ["prepare_run_dir", "resume_bundle", "own_files"]



def own_files(run_files: Mapping[str, str]) -> list[str]:
    """The names netwright writes in a run directory (``overwrite=True`` replaces these).

    >>> own_files({"model.json": "{}"})
    ['config.yaml', 'model.json', 'metrics.csv', 'lr_steps.csv', 'weights.safetensors', 'checkpoints/']
    """
    return list(dict.fromkeys(["config.yaml", *run_files, "metrics.csv", "lr_steps.csv",
                               "weights.safetensors", "checkpoints/"]))


def prepare_run_dir(run_dir: Path | None, *, overwrite: bool, resume: bool,
                    run_files: Mapping[str, str]) -> None:
    """Refuse a ``run_dir`` that holds anything (unless it is resumed, or ``overwrite``) and
    links inside it that would send checkpoints elsewhere; then create it."""
    from ..resume import refuse_links, remove_bundles

    if run_dir is None:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"run_dir: {str(run_dir)!r} exists and is not a folder. Fix: pass the "
                          f"path of a new folder.")
    refuse_links(run_dir)
    for name in own_files(run_files):
        path, folder = run_dir / name.rstrip("/"), name.endswith("/")
        if path.exists() and not path.is_symlink() and path.is_dir() != folder:
            raise ConfigError(
                f"run_dir: {str(path)!r} is a {'file' if folder else 'folder'} where netwright "
                f"writes its {name.rstrip('/')} {'folder' if folder else 'file'}; netwright does "
                f"not replace it. Fix: move it out of {str(run_dir)!r}, or pass another run_dir."
            )
    if run_dir.is_dir() and not resume:
        entries = sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir())
        if entries and not overwrite:
            raise ConfigError(
                f"run_dir: {str(run_dir)!r} is not empty; it holds {_few(entries)}. netwright "
                f"writes a run only into a new or empty folder, so that nothing already there is "
                f"replaced. Fix: pass a new run_dir; or overwrite=True to replace netwright's "
                f"files there ({', '.join(own_files(run_files))}; every other file is kept); or "
                f"resume=True to continue the run it holds."
            )
        if entries:
            remove_bundles(run_dir)  # an earlier run's checkpoints must not be resumed from
            # nor its per-step learning rates shown (this run may not write them)
            (run_dir / "lr_steps.csv").unlink(missing_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)


def resume_bundle(run_dir: Path, config: Mapping, *, force: bool,
                  run_files: Mapping[str, str]) -> Any:
    """The bundle to resume ``run_dir`` from, once the run directory's config.yaml and the
    bundle's config are checked against ``config``; None to start from the beginning, which is
    allowed only when nothing of an earlier run would be replaced (the folder is new, or holds
    only what a run writes before its first checkpoint)."""
    from ..resume import check_config, latest_bundle

    notes: list[str] = []
    bundle = latest_bundle(run_dir, say=notes.append)
    if bundle is None:
        done = _earlier_results(run_dir, run_files)
        if done or notes:
            skipped = f" ({'; '.join(notes)})" if notes else ""
            held = f"; it holds {_few(done)} of an earlier run" if done else ""
            raise CheckpointError(
                f"resume: {str(run_dir)!r} holds no usable checkpoint to continue from{skipped}"
                f"{held}. Training it again from the start would replace its files, so "
                f"netwright did not start. Fix: train without resume=True (--resume) into a new "
                f"run directory; or, to start this run over, pass overwrite=True without resume."
            )
    saved = run_dir / "config.yaml"
    if os.path.lexists(saved):
        check_config(_read_yaml(saved), config, force=force, where=run_dir,
                     source="its config.yaml")
    if bundle is not None:
        check_config(bundle.state.get("config"), config, force=force, where=run_dir)
        for note in notes:
            warnings.warn(f"resume: {note} Falling back to the previous complete checkpoint.",
                          stacklevel=3)
    return bundle


def _earlier_results(run_dir: Path, run_files: Mapping[str, str]) -> list[str]:
    """What ``run_dir`` holds besides the files a run writes before its first checkpoint
    (config.yaml, the run files, temporary files) and an empty checkpoints/ folder."""
    if not run_dir.is_dir():
        return []
    start = {"config.yaml", *run_files}
    out = []
    for p in sorted(run_dir.iterdir()):
        if p.name in start or (p.name.startswith(".") and p.name.endswith(".tmp")):
            continue
        if p.name == "checkpoints" and p.is_dir() and not p.is_symlink() and not any(p.iterdir()):
            continue
        out.append(p.name + ("/" if p.is_dir() else ""))
    return out


def _few(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _read_yaml(path: Path) -> Any:
    """A run directory's config.yaml as data; anything unreadable is a ConfigError naming it."""
    from ..config import read_yaml_file

    return read_yaml_file(path, f"resume: {str(path)!r}", "Fix: restore it, or train without "
                          "resume (--resume) into a new run directory.", allow_link=False)
