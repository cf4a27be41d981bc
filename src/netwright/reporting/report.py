"""``report.html``: one self-contained page per run — headline, curves, the test split's
confusion matrix and per-class scores (or predicted vs actual), the most confident mistakes,
the model summary, the doctor's findings and the config.

Every picture is an inline PNG (matplotlib, Agg), the page is rendered from a Jinja2 template
with autoescaping, and it needs no network and no JavaScript. It reads the run directory's own
files (``config.yaml``, ``model.json``, ``results.json``, ``metrics.csv``: an interrupted or
running run has no ``results.json`` yet, and its report says so) and, for the prediction
sections, the trained model and the run's split, which the caller passes in (the runner at the
end of training; ``netwright report`` after reopening the run).
"""

from __future__ import annotations

import csv
import datetime
import io
import platform
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_write_text, read_json
from ..errors import ConfigError
from . import plots

__all__ = ["write_report", "render_report", "class_scores", "read_metrics_csv", "MISTAKES"]

MISTAKES = 8  # the most confident mistakes shown


def read_metrics_csv(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    rows = []
    for row in csv.DictReader(io.StringIO(path.read_text())):
        parsed = {}
        for k, v in row.items():
            try:
                parsed[k] = int(v) if k in ("epoch", "step") and str(v).isdigit() else float(v)
            except (TypeError, ValueError):
                parsed[k] = v
        rows.append(parsed)
    return rows


def class_scores(matrix: np.ndarray) -> dict[str, np.ndarray]:
    """Per-class precision, recall, F1 and support from a confusion matrix (rows: true).

    >>> s = class_scores(np.array([[3, 1], [0, 4]]))
    >>> s["precision"].round(3).tolist(), s["recall"].tolist(), s["support"].tolist()
    ([1.0, 0.8], [0.75, 1.0], [4, 4])
    """
    tp = np.diag(matrix).astype(np.float64)
    predicted, support = matrix.sum(axis=0), matrix.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {"precision": precision, "recall": recall, "f1": f1, "support": support.astype(int)}


def _targets(part: Any) -> np.ndarray:
    if isinstance(part, tuple):
        return np.asarray(part[1])
    targets = getattr(part, "targets", None)
    if targets is not None:
        return np.asarray(targets)
    return np.stack([np.asarray(part[i][1]) for i in range(len(part))])


def _inputs(part: Any, index: int) -> Any:
    if isinstance(part, tuple):
        return np.asarray(part[0][index])
    return np.asarray(part[index][0])


def _predictions(model: Any, part: Any, task: str, classes: list | None, split: str,
                 feature_names: list | None, images: bool) -> dict:
    """The prediction sections for one split: confusion, per-class table, ROC/PR, mistakes, or
    predicted vs actual."""
    import torch

    from ..training.inference import predict

    out = predict(model, part)
    if not isinstance(out, torch.Tensor):
        return {}
    out = out.float().numpy()
    y = _targets(part)
    section: dict[str, Any] = {"split": split, "n": int(len(y))}
    if task == "regression":
        actual = y.reshape(len(y), -1)[:, 0].astype(np.float64)
        pred = out.reshape(len(out), -1)[:, 0].astype(np.float64)
        section["regression"] = plots.regression(actual, pred)
        section["rmse"] = float(np.sqrt(np.mean((pred - actual) ** 2)))
        section["mae"] = float(np.mean(np.abs(pred - actual)))
        return section
    if task == "binary":
        p1 = 1 / (1 + np.exp(-out.reshape(len(out), -1)[:, 0]))
        probs = np.stack([1 - p1, p1], axis=1)
        truth = y.reshape(len(y), -1)[:, 0].astype(int)
    else:
        z = out - out.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        truth = y.reshape(-1).astype(int)
    k = probs.shape[1]
    names = [str(c) for c in (classes or range(k))]
    pred = probs.argmax(axis=1)
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (truth, pred), 1)
    scores = class_scores(matrix)
    section.update({
        "confusion": plots.confusion(matrix, names, normalised=False),
        "confusion_normalised": plots.confusion(matrix, names, normalised=True),
        "classes": [{"name": names[i], "precision": float(scores["precision"][i]),
                     "recall": float(scores["recall"][i]), "f1": float(scores["f1"][i]),
                     "support": int(scores["support"][i])} for i in range(k)],
        "accuracy": float(np.trace(matrix) / max(1, matrix.sum())),
        "f1_macro": float(scores["f1"][scores["support"] > 0].mean()),
    })
    if task == "binary":
        import torchmetrics.functional as tmf

        p, t = torch.from_numpy(probs[:, 1]), torch.from_numpy(truth)
        fpr, tpr, _ = tmf.roc(p, t, task="binary")
        precision, recall, _ = tmf.precision_recall_curve(p, t, task="binary")
        auroc = float(tmf.auroc(p, t, task="binary"))
        ap = float(tmf.average_precision(p, t, task="binary"))
        section["roc_pr"] = plots.roc_pr(fpr.numpy(), tpr.numpy(), recall.numpy(), precision.numpy(),
                                         auroc, ap)
        section["auroc"], section["average_precision"] = auroc, ap
    wrong = np.nonzero(pred != truth)[0]
    worst = wrong[np.argsort(-probs[wrong, pred[wrong]])][:MISTAKES]
    mistakes = [{"index": int(i), "true": names[truth[i]], "predicted": names[pred[i]],
                 "confidence": float(probs[i, pred[i]])} for i in worst]
    texts = getattr(part, "texts", None)
    if texts is not None and len(worst):  # text data: the mistaken texts themselves
        for m in mistakes:
            text = " ".join(str(texts[m["index"]]).split())
            m["text"] = text if len(text) <= 200 else text[:199] + "…"
    elif images and len(worst):
        section["mistake_images"] = plots.thumbnails(
            [_inputs(part, int(i)) for i in worst],
            [f"{m['true']}→{m['predicted']} {m['confidence']:.2f}" for m in mistakes])
    elif len(worst):
        cols = list(feature_names or [])[:8]
        for m in mistakes:
            x = np.asarray(_inputs(part, m["index"])).reshape(-1)
            m["features"] = ", ".join(f"{(cols[j] if j < len(cols) else j)}={x[j]:.4g}"
                                      for j in range(min(8, len(x))))
    section["mistakes"] = mistakes
    return section


def render_report(run_dir: str | Path, *, model: Any = None, data: Any = None,
                  findings: Any = None) -> str:
    """The HTML of ``run_dir``'s report (see the module docstring)."""
    import jinja2
    import torch

    from .. import __version__

    folder = Path(run_dir)
    if not (folder / "config.yaml").is_file():
        raise ConfigError(f"report: {str(folder)!r} is not a run directory (no config.yaml). Fix: "
                          f"pass a folder made by `netwright train`.")
    meta = read_json(folder / "model.json", what="model.json", error=ConfigError) \
        if (folder / "model.json").is_file() else {}
    results = read_json(folder / "results.json", what="results.json", error=ConfigError) \
        if (folder / "results.json").is_file() else None
    rows = read_metrics_csv(folder / "metrics.csv")
    task = meta.get("task", "regression")
    classes = meta.get("classes")
    best = (results or {}).get("best") or {}
    best_epoch = best.get("epoch") if isinstance(best.get("epoch"), int) else None
    keys = [k[len("val_"):] for k in (rows[0] if rows else {}) if k.startswith("val_")] or \
        [k[len("train_"):] for k in (rows[0] if rows else {}) if k.startswith("train_")]
    charts = []
    for key in dict.fromkeys(["loss", *keys]):
        uri = plots.curves(rows, key, best_epoch)
        if uri:
            charts.append({"title": key, "uri": uri})
    steps = read_metrics_csv(folder / "lr_steps.csv")  # a schedule stepped per batch
    if steps:
        charts.append({"title": "learning rate", "alt": "learning rate per optimizer step",
                       "uri": plots.curves(steps, "lr", best_epoch, title="lr per optimizer step")})
    elif rows and any(isinstance(r.get("lr"), float) for r in rows):
        charts.append({"title": "learning rate", "uri": plots.curves(rows, "lr", best_epoch)})
    prediction = None
    if model is not None and data is not None:
        split = "test" if getattr(data, "test", None) is not None else "val"
        part = getattr(data, split, None)
        from torch.utils.data import IterableDataset

        if isinstance(part, IterableDataset):  # a stream: drawn without the whole split in memory
            part = None
        if part is not None:
            prediction = _predictions(model, part, task, classes, split,
                                      getattr(data, "feature_names", None),
                                      getattr(data, "images", None) is not None)
    summary_text = None
    if model is not None:
        from ..models.summary import summary

        shape = (meta.get("model") or {}).get("input_shape")
        try:
            summary_text = str(summary(model, tuple(shape) if shape else None))
        except Exception as exc:  # noqa: BLE001 - a summary is a courtesy: say why there is none
            summary_text = f"(no summary: {type(exc).__name__}: {str(exc)[:200]})"
    doctor = [{"code": f.code, "severity": f.severity, "where": f.where or "", "message": f.message,
               "fix": f.fix} for f in (findings or [])]
    if not doctor and results:
        doctor = list(results.get("doctor") or [])
    sizes = (results or {}).get("sizes") or {}
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")),
                             autoescape=True)
    return env.get_template("report.html.j2").render(
        name=folder.name, task=task, classes=classes, sizes=sizes, results=results, rows=rows,
        best=best, charts=charts, prediction=prediction, summary=summary_text, doctor=doctor,
        doctor_ran=findings is not None or bool(results and "doctor" in results),
        config=(folder / "config.yaml").read_text(), images=meta.get("images"),
        versions={"netwright": __version__, "torch": torch.__version__,
                  "python": platform.python_version()},
        device=(results or {}).get("device"),
        written=datetime.datetime.now().isoformat(timespec="seconds"),
    )


def write_report(run_dir: str | Path, **parts: Any) -> Path:
    """Render and write ``run_dir/report.html`` atomically; returns its path."""
    path = Path(run_dir) / "report.html"
    atomic_write_text(path, render_report(run_dir, **parts))
    return path
