"""``netwright compare RUN_DIR RUN_DIR ...``: the runs' differing config keys, their final and
best metrics, and their curves overlaid, in one self-contained HTML file (and as a table)."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text, read_json
from ..errors import ConfigError
from ..yamlfiles import read_yaml_file
from . import plots
from .report import read_metrics_csv

__all__ = ["compare_runs", "write_compare", "flatten"]


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Dotted keys of a nested mapping (lists kept as values).

    >>> flatten({"a": {"b": 1, "c": [1, 2]}, "d": None})
    {'a.b': 1, 'a.c': [1, 2], 'd': None}
    """
    if isinstance(obj, dict):
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


def compare_runs(run_dirs: Sequence[str | Path]) -> dict:
    """What ``netwright compare`` shows: ``runs`` (name, scores, best), ``differences``
    (``{key: [value per run]}``, only keys whose values differ) and ``charts``."""
    if len(run_dirs) < 2:
        raise ConfigError("compare: give at least two run directories.")
    runs = []
    for d in run_dirs:
        folder = Path(d)
        if not (folder / "config.yaml").is_file():
            raise ConfigError(f"compare: {str(folder)!r} is not a run directory (no config.yaml). "
                              f"Fix: pass folders made by `netwright train`.")
        config = read_yaml_file(folder / "config.yaml", fix="Fix: pass a folder made by `netwright train`.")
        results = read_json(folder / "results.json", what="results.json", error=ConfigError) \
            if (folder / "results.json").is_file() else {}
        runs.append({"name": str(folder), "label": folder.name, "config": flatten(config or {}),
                     "scores": results.get("scores") or {}, "best": results.get("best") or {},
                     "epochs": results.get("epochs"), "stop_reason": results.get("stop_reason"),
                     "rows": read_metrics_csv(folder / "metrics.csv")})
    labels = [r["label"] for r in runs]
    if len(set(labels)) < len(labels):  # runs of the same name from different folders
        for r in runs:
            r["label"] = r["name"]
    keys = sorted(set().union(*(r["config"] for r in runs)))
    differences = {k: [r["config"].get(k, "—") for r in runs] for k in keys
                   if k not in ("name", "run_dir") and len({repr(r["config"].get(k, "—")) for r in runs}) > 1}
    metric_keys = []
    for r in runs:
        for split in ("test", "val"):
            for m in (r["scores"].get(split) or {}):
                if (split, m) not in metric_keys:
                    metric_keys.append((split, m))
    columns = list(dict.fromkeys(k for r in runs for row in r["rows"][:1] for k in row if k != "epoch"))
    charts = []
    for key in columns:
        uri = _overlay(runs, key)
        if uri:
            charts.append({"title": key, "uri": uri})
    return {"runs": runs, "differences": differences, "metrics": metric_keys, "charts": charts}


def _overlay(runs: list[dict], key: str) -> str | None:
    series = [(r["label"], [(row["epoch"], row[key]) for row in r["rows"]
                            if isinstance(row.get(key), float)]) for r in runs]
    if sum(1 for _, pts in series if pts) < 2:
        return None
    fig, ax = plots.figure()
    for label, pts in series:
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], label=label)
    ax.set_xlabel("epoch")
    ax.set_title(key)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return plots.png_uri(fig)


def write_compare(run_dirs: Sequence[str | Path], out: str | Path) -> tuple[Path, dict]:
    """Write the comparison page to ``out`` (never over an existing file)."""
    import jinja2

    out = Path(out)
    if out.exists():
        raise ConfigError(f"--out: {str(out)!r} already exists; netwright does not overwrite it. "
                          f"Fix: choose another file name.")
    found = compare_runs(run_dirs)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True)
    html = env.get_template("compare.html.j2").render(
        **found, written=datetime.datetime.now().isoformat(timespec="seconds"))
    atomic_write_text(out, html)
    return out, found
