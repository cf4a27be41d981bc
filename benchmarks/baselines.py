"""Each example config against classical models on exactly the same split.

For every ``examples/*.yaml``, the split is made by netwright's own code with the config's own
settings (``load_config`` → ``resolve_loss`` → ``prepare_data``, the three calls ``nw.run``
makes), so the baselines see the very rows the example trains and is tested on. On the
training split (not val, not test) it fits scikit-learn's classical models:

- classification: logistic regression and an RBF SVC, each after a ``StandardScaler`` in a
  ``Pipeline``, with scikit-learn's default hyperparameters (SVC with ``break_ties=True`` so
  that its prediction is the argmax of the scores the metrics see);
- regression: ridge (alpha 1) after a ``StandardScaler``;
- a time series (``data.window``): the persistence forecast (next value = last value of the
  window) and ridge on the lag window.

The baselines' test predictions are scored by netwright's own ``evaluate`` with the example's
own metrics (class scores or log-probabilities as the model output, so accuracy is the
argmax), and the example is trained with ``nw.run(path, [f"run_dir={tmp}"], verbose=0)``; the
script checks that the run's test rows are the baselines' test rows before it compares.

    python benchmarks/baselines.py                  # every example: train it, print the table
    python benchmarks/baselines.py --only iris      # one example (the config's stem)
    python benchmarks/baselines.py --epochs 2       # override train.epochs (a quick smoke run)
    python benchmarks/baselines.py --no-train       # baselines only (seconds)
    python benchmarks/baselines.py --all-metrics    # a row for every metric, not only the main one

The main metric is accuracy for classification and the config's first metric for regression
(diabetes: r2, sunspots: mae). "matches/beats" means the example's test score is at least as
good as the best baseline's; ties count as matches. It prints; nothing here is timed or
asserted (tests/test_baselines.py checks the split and the table's shape).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
# Metrics where a smaller value is better; every other metric is better when larger.
LOWER_IS_BETTER = {"loss", "mse", "mae", "rmse"}


def example_configs(folder: Path = EXAMPLES) -> list[Path]:
    """The example configs on built-in data and files, sorted by name. The image-folder
    examples (``source: mnist_png``) read the same 5,000 digits as mnist_cnn, written as PNG
    files: mnist_cnn's row is their baseline (docs/vision.md has their figures)."""
    return sorted(p for p in Path(folder).glob("*.yaml") if not is_image_example(p))


def is_image_example(path: Path) -> bool:
    return "source: mnist_png" in Path(path).read_text()


def split_of(path: str | Path, overrides: list[str] | tuple = ()) -> tuple[Any, Any]:
    """(config, Prepared): the config and its split, made by the calls ``nw.run`` makes."""
    from netwright.config import load_config
    from netwright.data.prepare import prepare_data
    from netwright.losses import resolve_loss

    cfg = load_config(path, list(overrides))
    _, info = resolve_loss(cfg.loss)
    return cfg, prepare_data(cfg.data, info.task, info.name)


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def test_targets(data: Any) -> np.ndarray:
    """The test split's targets (arrays, or a text dataset's)."""
    targets = getattr(data.test, "targets", None)
    return np.asarray(targets) if targets is not None else data.test[1]


def text_baseline_outputs(data: Any) -> dict[str, np.ndarray]:
    """Texts: scikit-learn's character n-gram TF-IDF + logistic regression, fitted on the
    training texts (benchmarks/languages.py shows it with the validation texts too)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)
    ytr = np.asarray(data.train.targets).reshape(-1).astype(np.int64)
    clf = LogisticRegression(C=10, max_iter=2000).fit(vec.fit_transform(data.train.texts), ytr)
    logp = np.log(np.clip(clf.predict_proba(vec.transform(data.test.texts)), 1e-12, 1.0))
    return {"TF-IDF char 1-4 + logistic regression": logp[:, 1:] - logp[:, :1]
            if data.task == "binary" else logp}


def mfcc_summary(clips: Any, sample_rate: int) -> np.ndarray:
    """Per clip, the mean and standard deviation over time of 20 MFCCs and of their frame-to-
    frame differences (80 numbers): the classical fixed-length description of a sound."""
    import torch

    from netwright.models.audio import MFCC

    mfcc = MFCC(sample_rate, n_mfcc=20, n_mels=40, hop_length=sample_rate // 100)
    rows = []
    with torch.no_grad():
        for start in range(0, len(clips), 256):
            x = torch.stack([clips[i][0] for i in range(start, min(len(clips), start + 256))])
            c = mfcc(x[:, 0])  # (N, 20, T)
            d = c[..., 1:] - c[..., :-1]
            rows.append(torch.cat([c.mean(-1), c.std(-1), d.mean(-1), d.std(-1)], 1).numpy())
    return np.concatenate(rows)


def audio_baseline_outputs(data: Any) -> dict[str, np.ndarray]:
    """Sounds: MFCC statistics + logistic regression and SVC, fitted on the training clips read
    as the evaluation reads them (the centre, not augmented)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    rate = int(data.audio["sample_rate"])
    plain = data.train.subset(np.arange(len(data.train)))  # centre crops, no augmentation
    Xtr, Xte = mfcc_summary(plain, rate), mfcc_summary(data.test, rate)
    ytr = np.asarray(data.train.targets).reshape(-1).astype(np.int64)
    logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(Xtr, ytr)
    svc = make_pipeline(StandardScaler(), SVC(break_ties=True)).fit(Xtr, ytr)
    return {"MFCC statistics + logistic regression":
            np.log(np.clip(logreg.predict_proba(Xte), 1e-12, 1.0)),
            "MFCC statistics + SVC (RBF)": svc.decision_function(Xte)}


def baseline_outputs(cfg: Any, data: Any) -> dict[str, np.ndarray]:
    """Each baseline's test-split outputs, shaped like the example model's output."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    if getattr(data, "text", None) is not None:
        return text_baseline_outputs(data)
    if getattr(data, "audio", None) is not None:
        return audio_baseline_outputs(data)
    (Xtr, ytr), (Xte, _) = data.train, data.test
    Xtr, Xte = _flat(Xtr), _flat(Xte)
    outs: dict[str, np.ndarray] = {}
    if data.task in ("binary", "multiclass"):
        ytr = ytr.reshape(-1).astype(np.int64)
        logreg = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)).fit(Xtr, ytr)
        # Log-probabilities are logits (softmax/sigmoid of them gives the probabilities back).
        logp = np.log(np.clip(logreg.predict_proba(Xte), 1e-12, 1.0))
        outs["logistic regression"] = logp[:, 1:] - logp[:, :1] if data.task == "binary" else logp
        svc = make_pipeline(StandardScaler(), SVC(break_ties=True)).fit(Xtr, ytr)
        score = svc.decision_function(Xte)  # binary: (N,), > 0 is class 1; multiclass: (N, C) ovr
        outs["SVC (RBF)"] = score[:, None] if data.task == "binary" else score
        return outs
    if cfg.data.window:
        outs["persistence (last value)"] = Xte[:, -1:]
    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(Xtr, ytr)
    name = "ridge on the lag window" if cfg.data.window else "ridge"
    outs[name] = ridge.predict(Xte).reshape(len(Xte), -1)
    return outs


def score_outputs(cfg: Any, outputs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """The example's own metrics (netwright's ``evaluate``) for precomputed outputs."""
    import torch
    from torch import nn

    from netwright.training.trainer import evaluate

    res = evaluate(nn.Identity(), (torch.as_tensor(outputs, dtype=torch.float32), torch.as_tensor(targets)),
                   loss=cfg.loss, metrics=list(cfg.metrics) or None, check=False)
    # The loss of an SVC's scores or a forecast means nothing next to the model's: left out.
    return {k: float(v) for k, v in res.items() if k != "loss" and isinstance(v, (int, float))}


def main_metric(task: str, scores: dict[str, float]) -> str:
    """Accuracy for classification, else the config's first (scalar) metric."""
    if task in ("binary", "multiclass") and "accuracy" in scores:
        return "accuracy"
    return next(iter(scores))


def _better_or_equal(metric: str, a: float, b: float) -> bool:
    return a <= b if metric in LOWER_IS_BETTER else a >= b


def train_example(path: Path, overrides: list[str]) -> tuple[dict[str, float], Any, float]:
    """(test scores, the run's Prepared data, seconds) of one training run of the example."""
    import netwright as nw

    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        result = nw.run(path, [f"run_dir={tmp}", *overrides], verbose=0)
    seconds = time.perf_counter() - start
    scores = {k: float(v) for k, v in result.scores["test"].items()
              if k != "loss" and isinstance(v, (int, float))}
    return scores, result.data, seconds


def same_rows(a: Any, b: Any) -> bool:
    """Whether two Prepared splits hold the same train and test rows, in the same order."""
    if getattr(a, "text", None) is not None:  # texts: the same strings and labels
        return all(pa.texts == pb.texts and np.array_equal(pa.targets, pb.targets)
                   for pa, pb in ((a.train, b.train), (a.test, b.test)))
    if getattr(a, "audio", None) is not None:  # sounds: the same files and labels
        return all([str(pa.path(i)) for i in range(len(pa))] == [str(pb.path(i)) for i in range(len(pb))]
                   and np.array_equal(pa.targets, pb.targets)
                   for pa, pb in ((a.train, b.train), (a.test, b.test)))
    return all(np.array_equal(x, y) for pa, pb in ((a.train, b.train), (a.test, b.test))
               for x, y in zip(pa, pb))


def table(paths: list[Path] | None = None, *, epochs: int | None = None, train: bool = True,
          all_metrics: bool = False) -> list[dict]:
    """One row per example (per example and metric with ``all_metrics``): the example's test
    score (None without ``train``), every baseline's score, the best baseline and the verdict."""
    rows = []
    overrides = [f"train.epochs={epochs}"] if epochs else []
    for path in paths if paths is not None else example_configs():
        cfg, data = split_of(path, overrides)
        if data.test is None:
            raise SystemExit(f"{path.name}: the config has no test split (data.test is 0).")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # sklearn's and torchmetrics' chatter
            base = {name: score_outputs(cfg, out, test_targets(data))
                    for name, out in baseline_outputs(cfg, data).items()}
        ours, seconds = None, None
        if train:
            ours, run_data, seconds = train_example(path, overrides)
            if not same_rows(data, run_data):
                raise SystemExit(f"{path.name}: the run's split differs from the baselines' split.")
        first = next(iter(base.values()))
        main = main_metric(data.task, first)
        for metric in list(first) if all_metrics else [main]:
            scores = {name: s[metric] for name, s in base.items()}
            pick = min if metric in LOWER_IS_BETTER else max
            best = pick(scores, key=scores.get)
            value = ours[metric] if ours is not None else None
            verdict = None if value is None else (
                "matches/beats" if _better_or_equal(metric, value, scores[best]) else "falls short")
            rows.append({"example": path.stem, "metric": metric, "main": metric == main,
                         "example_score": value,
                         "baselines": scores, "best_baseline": best, "verdict": verdict,
                         "seconds": seconds, "sizes": dict(data.sizes)})
    return rows


def format_table(rows: list[dict]) -> str:
    """The rows as a Markdown table (one line per example and baseline)."""
    lines = ["| example | metric | example's test score | baseline | baseline's test score | verdict |",
             "|---|---|---|---|---|---|"]
    fmt = lambda v: "—" if v is None else f"{v:.4f}"  # noqa: E731
    for row in rows:
        for i, (name, value) in enumerate(row["baselines"].items()):
            first = i == 0
            best = name == row["best_baseline"]
            lines.append("| " + " | ".join([
                row["example"] if first else "", row["metric"] if first else "",
                fmt(row["example_score"]) if first else "",
                name + (" (best)" if best and len(row["baselines"]) > 1 else ""), fmt(value),
                (row["verdict"] or "—") if best else "",
            ]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", metavar="NAME",
                        help="an example's name (the config's stem, e.g. iris); repeatable")
    parser.add_argument("--epochs", type=int, help="override train.epochs (quick runs)")
    parser.add_argument("--no-train", action="store_true", help="baselines only")
    parser.add_argument("--all-metrics", action="store_true", help="a row for every metric")
    args = parser.parse_args(argv)
    paths = example_configs()
    if args.only:
        known = {p.stem: p for p in paths}
        missing = [n for n in args.only if n not in known]
        if missing:
            parser.error(f"--only: no example {missing[0]!r}; the examples are {', '.join(known)}.")
        paths = [known[n] for n in args.only]
    rows = table(paths, epochs=args.epochs, train=not args.no_train, all_metrics=args.all_metrics)
    print(format_table(rows))
    if not args.no_train:
        print()
        seen = {}
        for row in rows:
            seen.setdefault(row["example"], row)
        for name, row in seen.items():
            print(f"{name}: {row['seconds']:.1f} s to train; split sizes {row['sizes']}")
        short = [r["example"] for r in rows if r["main"] and r["verdict"] == "falls short"]
        print(f"\n{len(seen) - len(short)} of {len(seen)} examples match or beat their best "
              f"baseline on their main metric" + (f"; short: {', '.join(short)}" if short else "."))
    return 0


if __name__ == "__main__":
    sys.exit(main())
