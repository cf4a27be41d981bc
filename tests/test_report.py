"""report.html and `netwright report`: the right sections per task kind, numbers that match
results.json and `evaluate`, a self-contained page (inline PNGs, no network, no script), and a
real headless Chromium that loads it without console errors and decodes every image."""

from __future__ import annotations

import base64
import io
import json
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

import netwright as nw

pytest.importorskip("matplotlib", reason="matplotlib comes with the report extra")
pytest.importorskip("jinja2", reason="Jinja2 comes with the report extra")
ROOT = Path(__file__).resolve().parents[1]


class Page(HTMLParser):
    """The bits of a report a test reads: images, links, scripts, table cells by id."""

    def __init__(self, text: str):
        super().__init__()
        self.images, self.links, self.scripts, self.ids = [], [], 0, set()
        self.cells: dict[tuple[str, str], str] = {}
        self.tables: dict[str, list[list[str]]] = {}
        self._table, self._cell, self._attrs = None, None, {}
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "img":
            self.images.append(a.get("src", ""))
        if tag in ("a", "link") and a.get("href"):
            self.links.append(a["href"])
        if tag == "script":
            self.scripts += 1
        if tag == "table" and a.get("id"):
            self._table = a["id"]
            self.tables[self._table] = []
        if tag == "tr" and self._table:
            self.tables[self._table].append([])
        if tag in ("td", "th"):
            self._cell, self._attrs = "", a

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None:
            text = self._cell.strip()
            if self._table:
                self.tables[self._table][-1].append(text)
            if "data-split" in self._attrs:
                self.cells[(self._attrs["data-split"], self._attrs["data-metric"])] = text
            self._cell = None
        if tag == "table":
            self._table = None


def _check_self_contained(page: Page) -> None:
    from PIL import Image

    assert page.scripts == 0 and not [u for u in page.links if u.startswith(("http", "//"))]
    assert page.images
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            im.load()
            assert im.size[0] > 100 and im.size[1] > 100


def _run(tmp_path, source, loss, metrics, epochs=3, **extra):
    cfg = {"name": source, "run_dir": str(tmp_path), "model": {"zoo": "mlp", "hidden": [16]},
           "data": {"source": source}, "loss": loss, "metrics": metrics,
           "train": {"epochs": epochs}, **extra}
    return nw.run(cfg, verbose=0)


def _scores_match(page: Page, run_dir: Path) -> dict:
    results = json.loads((run_dir / "results.json").read_text())
    for split, values in results["scores"].items():
        for metric, value in values.items():
            assert page.cells[(split, metric)] == f"{value:.4f}", (split, metric)
    return results


def test_multiclass_report(tmp_path):
    result = _run(tmp_path, "iris", "cross_entropy", ["accuracy", "f1_macro"])
    page = Page((result.run_dir / "report.html").read_text())
    _check_self_contained(page)
    results = _scores_match(page, result.run_dir)
    assert {"headline", "curves", "predictions", "model", "doctor", "config"} <= page.ids
    rows = page.tables["per-class"]
    assert rows[0] == ["class", "precision", "recall", "F1", "support"]
    assert [r[0] for r in rows[1:]] == [str(c) for c in range(3)]
    assert sum(int(r[4]) for r in rows[1:]) == results["sizes"]["test"]
    f1s = [float(r[3]) for r in rows[1:]]
    assert sum(f1s) / 3 == pytest.approx(results["scores"]["test"]["f1_macro"], abs=2e-4)
    html = (result.run_dir / "report.html").read_text()
    assert f"accuracy {results['scores']['test']['accuracy']:.4f}" in html


def test_binary_report_has_roc_and_pr_matching_auroc(tmp_path):
    result = _run(tmp_path, "breast_cancer", "bce_with_logits", ["accuracy", "auroc"])
    html = (result.run_dir / "report.html").read_text()
    page = Page(html)
    _check_self_contained(page)
    results = _scores_match(page, result.run_dir)
    assert "ROC (AUROC" not in html  # a title inside the picture, not the page
    assert 'alt="ROC and precision-recall curves"' in html
    part = result.data.test
    ev = nw.evaluate(result.model, part, loss="bce_with_logits", metrics=["auroc"])
    assert ev["auroc"] == pytest.approx(results["scores"]["test"]["auroc"], abs=1e-6)
    assert [r[0] for r in page.tables["per-class"][1:]] == ["0", "1"]


def test_regression_report_has_predicted_vs_actual(tmp_path):
    result = _run(tmp_path, "diabetes", "mse", ["rmse", "mae"], epochs=4)
    html = (result.run_dir / "report.html").read_text()
    page = Page(html)
    _check_self_contained(page)
    results = _scores_match(page, result.run_dir)
    assert 'alt="predicted vs actual, and residuals"' in html and "per-class" not in page.tables
    assert f"RMSE {results['scores']['test']['rmse']:.4g}" in html
    assert f"MAE {results['scores']['test']['mae']:.4g}" in html


def test_sequence_report(tmp_path):
    result = nw.run(ROOT / "examples" / "sunspots_lstm.yaml",
                    [f"run_dir={tmp_path}", "train.epochs=2"], verbose=0)
    page = Page((result.run_dir / "report.html").read_text())
    _check_self_contained(page)
    _scores_match(page, result.run_dir)
    assert "predictions" in page.ids and "LSTM" in (result.run_dir / "report.html").read_text()


def _cli(*args, cwd):
    return subprocess.run([sys.executable, "-m", "netwright", *args], capture_output=True,
                          text=True, timeout=300, cwd=cwd)


def test_report_command_for_a_finished_and_an_unfinished_run(tmp_path):
    result = _run(tmp_path, "wine", "cross_entropy", ["accuracy"], epochs=2)
    (result.run_dir / "report.html").unlink()
    res = _cli("report", str(result.run_dir), cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    page = Page((result.run_dir / "report.html").read_text())
    _scores_match(page, result.run_dir)
    assert "per-class" in page.tables
    # a run still training: no results.json and no final weights yet
    running = tmp_path / "running"
    running.mkdir()
    for name in ("config.yaml", "model.json", "metrics.csv"):
        shutil.copy(result.run_dir / name, running / name)
    res = _cli("report", str(running), cwd=tmp_path)
    assert res.returncode == 0 and "curves and headline only" in res.stdout, res.stderr
    html = (running / "report.html").read_text()
    assert "This run has not finished" in html and 'alt="loss per epoch"' in html
    res = _cli("report", str(tmp_path / "nope"), cwd=tmp_path)
    assert res.returncode == 2 and "not a run directory" in res.stderr


def test_report_of_an_image_run_shows_mistaken_images(tmp_path):
    from netwright.data.images import export_images

    export_images("digits", tmp_path / "digits")
    result = nw.run({"name": "img", "run_dir": str(tmp_path / "runs"),
                     "model": {"zoo": "cnn", "channels": [8, 16], "hidden": 32},
                     "data": {"source": str(tmp_path / "digits"), "cache": "memory"},
                     "loss": "cross_entropy", "train": {"epochs": 1}, "metrics": ["accuracy"]},
                    verbose=0)
    html = (result.run_dir / "report.html").read_text()
    assert 'alt="mistaken images: true → predicted, confidence"' in html
    assert "1 channel(s), 8×8" in html


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _in_chromium(browser: str, pages: list[Path]) -> list[dict]:
    """Each page loaded in a real headless Chromium: console errors, outside requests, whether
    every image decoded, and the text of the h1 and of the cells a test reads."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright drives Chromium")
    seen = []
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=browser, args=["--no-sandbox"])
        try:
            for path in pages:
                page = b.new_page()
                errors, requests = [], []
                page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: errors.append(str(e)))
                page.on("request", lambda r: requests.append(r.url))
                page.goto(path.as_uri())
                seen.append({
                    "errors": errors,
                    "outside": [u for u in requests if not u.startswith(("file:", "data:"))],
                    "decoded": page.evaluate(
                        "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"),
                    "h1": page.inner_text("h1"),
                    "cells": page.evaluate(
                        "Array.from(document.querySelectorAll('td')).map(c => c.innerText)")})
                page.close()
        finally:
            b.close()
    return seen


def test_the_report_and_the_comparison_render_in_headless_chromium(tmp_path):
    """A real browser: report.html and compare.html load with no console error and no request
    outside the file, every image decodes, and the headline metrics are results.json's."""
    browser = _chromium()
    if browser is None:
        pytest.skip("headless Chromium is not installed (Debian package 'chromium'; "
                    "scripts/setup.sh installs it where it can)")
    pytest.importorskip("playwright.sync_api", reason="playwright drives Chromium")
    result = _run(tmp_path, "breast_cancer", "bce_with_logits", ["accuracy"], epochs=2)
    other = _run(tmp_path, "breast_cancer", "bce_with_logits", ["accuracy"], epochs=2,
                 name="onecycle", scheduler="onecycle")
    res = _cli("compare", str(result.run_dir), str(other.run_dir), "--out", "cmp.html", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report, compare = _in_chromium(browser, [result.run_dir / "report.html", tmp_path / "cmp.html"])
    results = json.loads((result.run_dir / "results.json").read_text())
    for seen in (report, compare):
        assert seen["errors"] == [] and seen["outside"] == []
        assert seen["decoded"] and all(seen["decoded"])
    assert report["h1"] == "breast_cancer"
    assert f"{results['scores']['test']['accuracy']:.4f}" in report["cells"]
    for run in (result, other):  # the comparison's score table holds both runs' test accuracy
        assert f"{run.scores['test']['accuracy']:.4f}" in compare["cells"]


def test_a_schedule_stepped_per_batch_is_drawn_per_step(tmp_path):
    """onecycle moves the learning rate every batch: lr_steps.csv holds it (at most 50 points
    an epoch, the last step of each epoch included) and the report draws it per step."""
    from netwright.reporting.report import read_metrics_csv

    result = _run(tmp_path, "digits", "cross_entropy", ["accuracy"], epochs=3,
                  scheduler={"name": "onecycle", "max_lr": 0.01}, train={"epochs": 3, "batch_size": 16})
    steps = read_metrics_csv(result.run_dir / "lr_steps.csv")
    per_epoch = -(-result.data.sizes["train"] // 16)
    assert 3 * 40 <= len(steps) <= 3 * 51
    assert steps[-1]["step"] == 3 * per_epoch and steps[-1]["epoch"] == 3.0
    lrs = [s["lr"] for s in steps]
    peak = lrs.index(max(lrs))
    assert max(lrs) == pytest.approx(0.01, rel=0.05) and 0 < peak < len(lrs) - 1
    assert lrs[0] < 0.01 / 10 and lrs[-1] < 0.01 / 100  # warm-up from max_lr/25, annealed to ~0
    metrics = read_metrics_csv(result.run_dir / "metrics.csv")
    assert metrics[0]["lr"] == pytest.approx(0.01 / 25)  # metrics.csv: the rate an epoch began with
    for row in metrics[1:]:  # ... which the previous epoch's last step set
        last = [s for s in steps if s["epoch"] == float(row["epoch"] - 1)][-1]
        assert last["lr"] == pytest.approx(row["lr"])
    html = (result.run_dir / "report.html").read_text()
    assert 'alt="learning rate per optimizer step"' in html and 'alt="learning rate per epoch"' not in html
    plain = _run(tmp_path, "digits", "cross_entropy", ["accuracy"], epochs=2, name="plain")
    assert not (plain.run_dir / "lr_steps.csv").exists()  # no schedule: the per-epoch curve
    assert 'alt="learning rate per epoch"' in (plain.run_dir / "report.html").read_text()


def test_compare_shows_the_differing_keys_metrics_and_curves(tmp_path):
    a = _run(tmp_path, "wine", "cross_entropy", ["accuracy"], epochs=2, name="slow",
             optimizer={"name": "adam", "lr": 0.001})
    b = _run(tmp_path, "wine", "cross_entropy", ["accuracy"], epochs=3, name="fast",
             optimizer={"name": "adam", "lr": 0.01})
    res = _cli("compare", str(a.run_dir), str(b.run_dir), "--out", "cmp.html", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = " ".join(res.stdout.split())
    assert "config keys that differ" in out and "optimizer.lr" in out and "train.epochs" in out
    html = (tmp_path / "cmp.html").read_text()
    page = Page(html)
    _check_self_contained(page)
    config = {row[0]: row[1:] for row in page.tables["config"][1:]}
    assert config["optimizer.lr"] == ["0.001", "0.01"] and config["train.epochs"] == ["2", "3"]
    assert "name" not in config and "data.source" not in config  # only what differs
    scores = page.tables["scores"]
    col = scores[0].index("test accuracy")
    for i, run in enumerate((a, b), start=1):
        assert scores[i][col] == f"{run.scores['test']['accuracy']:.4f}"
    assert 'alt="val_loss per epoch, every run"' in html
    again = _cli("compare", str(a.run_dir), str(b.run_dir), "--out", "cmp.html", cwd=tmp_path)
    assert again.returncode == 2 and "already exists" in again.stderr
    one = _cli("compare", str(a.run_dir), cwd=tmp_path)
    assert one.returncode == 2 and "at least two run directories" in one.stderr
