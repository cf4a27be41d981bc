"""What a search leaves: :class:`TuneResult` (with its terminal table) and ``tune.html`` —
Optuna's matplotlib plots (optimisation history, intermediate values, parameter importances)
and the best trial's learning curves, as inline PNGs in one self-contained file."""

from __future__ import annotations

import html
import json
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..atomic import atomic_write_text
from .space import Space

__all__ = ["TuneResult", "trial_info", "trial_rows", "write_html", "trials_table"]


@dataclass
class TuneResult:
    """The outcome of :func:`netwright.tune`: the best parameters and value, the best config
    (a mapping, also written to ``tune_dir/best.yaml``), every trial as a dict, and where the
    study lives (``study_name`` in ``storage``)."""

    tune_dir: Path
    study_name: str
    storage: str
    metric: str
    direction: str
    best_params: dict
    best_value: float | None
    best_config: dict | None
    best_trial: int | None
    trials: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    html: Path | None = None

    @property
    def best_yaml(self) -> Path | None:
        path = self.tune_dir / "best.yaml"
        return path if self.best_config is not None and path.is_file() else None

    @property
    def study(self) -> dict:
        return {"name": self.study_name, "storage": self.storage}

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in self.trials:
            out[t["state"]] = out.get(t["state"], 0) + 1
        return out

    def summary(self, width: int = 120) -> str:
        """The trials table and the files written, as text for a terminal."""
        import io

        from rich.console import Console

        buf = io.StringIO()
        console = Console(file=buf, width=width, force_terminal=False, color_system=None)
        console.print(trials_table(self))
        counts = ", ".join(f"{n} {s.lower()}" for s, n in sorted(self.counts().items()))
        lines = [f"study {self.study_name!r}: {len(self.trials)} trials ({counts}) in "
                 f"{self.seconds:.1f}s; storage {self.storage}"]
        if self.best_trial is not None:
            params = ", ".join(f"{k}={_fmt(v)}" for k, v in self.best_params.items())
            lines.append(f"best: trial {self.best_trial}, {self.metric} {self.best_value:.4g} "
                         f"({'lowest' if self.direction == 'minimize' else 'highest'}); {params}")
            lines.append(f"best config: {self.tune_dir / 'best.yaml'}  (netwright train it)")
        else:
            lines.append("best: no trial completed, so no best.yaml")
        if self.html is not None:
            lines.append(f"report: {self.html}")
        lines.append("continue or extend the search: the same command (with a larger --trials)")
        return buf.getvalue() + "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(value) if isinstance(value, (list, dict)) else str(value)


def trials_table(result: TuneResult) -> Any:
    from rich.table import Table

    table = Table(title=f"{result.study_name}: trials by {result.metric} "
                        f"({result.direction})")
    for name, justify in (("#", "right"), ("state", "left"), ("params", "left"),
                          (result.metric, "right"), ("seconds", "right"), ("reason", "left")):
        table.add_column(name, justify=justify, overflow="fold")
    for t in result.trials:
        mark = " *" if t["number"] == result.best_trial else ""
        table.add_row(f"{t['number']}{mark}", t["state"],
                      ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items()),
                      "" if t["value"] is None else f"{t['value']:.4g}",
                      "" if t["seconds"] is None else f"{t['seconds']:.1f}",
                      (t["reason"] or "").splitlines()[0][:80] if t["reason"] else "")
    return table


def trial_info(attrs: Mapping, key: str) -> Any:
    """``key`` of what netwright records of a trial (the user attribute ``netwright``: one
    write instead of one a key), or of the separate attribute that older studies hold."""
    info = attrs.get("netwright")
    return info[key] if isinstance(info, dict) and key in info else attrs.get(key)


def trial_rows(study: Any, space: Space) -> list[dict]:
    """Every trial of the study as plain data: number, state, params (as the config holds
    them), value, seconds (wall), fit_seconds (training), run_seconds (the whole run, training
    included; both without the search's own reporting), reason, run_dir, worker_pid."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        reason = attrs.get("error") or trial_info(attrs, "pruned") or ""
        if t.state.name == "FAIL" and not reason:
            reason = "interrupted: no heartbeat from its worker (killed?)"
        rows.append({
            "number": t.number, "state": t.state.name, "params": space.decode(t.params),
            "value": t.value if t.state.name == "COMPLETE" else None,
            "seconds": t.duration.total_seconds() if t.duration else None,
            "fit_seconds": trial_info(attrs, "fit_seconds"),
            "run_seconds": trial_info(attrs, "run_seconds"), "epoch": trial_info(attrs, "epoch"),
            "reason": reason, "run_dir": trial_info(attrs, "run_dir"),
            "worker_pid": trial_info(attrs, "worker_pid"),
        })
    return rows


def _figure_of(axes: Any) -> Any:
    if hasattr(axes, "figure"):
        return axes.figure
    first = axes.flat[0] if hasattr(axes, "flat") else axes[0]
    return first.figure


def _plots(study: Any, space: Space, result: TuneResult) -> tuple[list[tuple[str, str]], list[str]]:
    """(title, PNG data URI) pairs, and notes on the plots left out."""
    from optuna.trial import TrialState

    from ..reporting import plots
    from ..reporting.report import read_metrics_csv

    import matplotlib

    matplotlib.use("Agg", force=False)  # before Optuna's plots import pyplot
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    plt.close("all")
    images, notes = [], []
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    wanted = [("optimisation history", ovm.plot_optimization_history, bool(complete),
               "no trial completed"),
              ("each trial's metric per epoch (pruned trials stop early)",
               ovm.plot_intermediate_values, any(t.intermediate_values for t in study.trials),
               "no trial reported an epoch"),
              ("parameter importances", ovm.plot_param_importances,
               len(complete) >= 2 and len(space.params) >= 2,
               "parameter importances need at least 2 completed trials and 2 parameters")]
    for title, plot, possible, why in wanted:
        if not possible:
            notes.append(f"{title}: left out ({why})")
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fig = _figure_of(plot(study))
            fig.set_size_inches(7, 4)
            images.append((title, plots.png_uri(fig)))
        except Exception as exc:  # noqa: BLE001 - one plot failing leaves the others
            plt.close("all")
            notes.append(f"{title}: left out ({type(exc).__name__}: {exc})")
    best = next((t for t in result.trials if t["number"] == result.best_trial), None)
    if best is not None and best.get("run_dir"):
        rows = read_metrics_csv(Path(best["run_dir"]) / "metrics.csv")
        keys = ["loss"]
        metric_key = result.metric.removeprefix("val_")
        if metric_key != "loss":
            keys.append(metric_key)
        for key in keys:
            uri = plots.curves(rows, key, best.get("epoch"),
                               title=f"best trial {best['number']}: {key}")
            if uri:
                images.append((f"best trial {best['number']}: {key} per epoch", uri))
    return images, notes


def write_html(study: Any, space: Space, result: TuneResult) -> Path | None:
    """``tune_dir/tune.html``; None (with nothing written) when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # pragma: no cover - the report extra is part of 'all'
        return None
    images, notes = _plots(study, space, result)
    esc = html.escape
    head = ["#", "state", "params", esc(result.metric), "seconds", "reason"]
    body = []
    for t in result.trials:
        cells = [str(t["number"]) + (" *" if t["number"] == result.best_trial else ""), t["state"],
                 ", ".join(f"{k}={_fmt(v)}" for k, v in t["params"].items()),
                 "" if t["value"] is None else f"{t['value']:.4g}",
                 "" if t["seconds"] is None else f"{t['seconds']:.1f}", t["reason"] or ""]
        body.append("<tr>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>")
    best = ("<p>No trial completed.</p>" if result.best_trial is None else
            f"<p>Best: trial {result.best_trial}, {esc(result.metric)} = {result.best_value:.6g}; "
            + esc(", ".join(f"{k}={_fmt(v)}" for k, v in result.best_params.items()))
            + ". Its config: <code>best.yaml</code>.</p>")
    figures = "".join(f"<figure><img alt=\"{esc(t)}\" src=\"{uri}\"><figcaption>{esc(t)}"
                      f"</figcaption></figure>" for t, uri in images)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{esc(result.study_name)}: tune</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:1100px}}
table{{border-collapse:collapse;font-size:13px}}td,th{{border:1px solid #ccc;padding:3px 8px;
text-align:left}}figure{{display:inline-block;margin:1em}}img{{max-width:640px}}
.note{{color:#777}}</style></head><body>
<h1>{esc(result.study_name)}: hyperparameter search</h1>
<p>{len(result.trials)} trials, {esc(result.direction)} {esc(result.metric)}; storage
<code>{esc(result.storage)}</code>.</p>
{best}
{figures}
{''.join(f'<p class="note">{esc(n)}</p>' for n in notes)}
<h2>Trials</h2>
<table><tr>{''.join(f'<th>{h}</th>' for h in head)}</tr>
{''.join(body)}</table>
</body></html>
"""
    return atomic_write_text(result.tune_dir / "tune.html", page)
