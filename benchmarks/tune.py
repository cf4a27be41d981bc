"""netwright tune on the digits MLP: 20 trials with pruning vs the same 20 without (same seed).

Prints each search's wall time, its best validation accuracy and that config's test accuracy,
the shipped example's own validation/test accuracy (trained once), and the search overhead:
the tune's wall time minus the trials' own training seconds (each run's fit seconds, without the
time its epochs spend reporting to the study), as a % of the latter (target < 5 %). The
overhead is split into what a run does besides training (data, model, scoring, the run
directory, and the fit's own set-up and saving: "training" is the training loop, from the
fit's start to its end as callbacks see them), drawing tune.html (once per search; the first
drawing in a process imports scikit-learn for Optuna's fANOVA importances) and what the search
itself adds: once per search (reading the config, opening the study: importing Optuna and
SQLAlchemy, Alembic's schema check of the database; best.yaml) and the worker's loop over the
trials less the runs themselves (loading the study with its sampler and pruner once, then per
trial: scheduling, i.e. the sampler and the pruner, and storage, i.e. the database writes and
reads, the epochs' reports and the heartbeat included).

``--data mnist`` searches the same space on the 5,000 MNIST digits (784 features), where a
trial trains for seconds instead of a fraction of one.

    python benchmarks/tune.py [--trials 20] [--epochs 12] [--data digits|mnist]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import yaml

import netwright as nw
import netwright.tuning.search as search_module
from netwright.runner import run

ROOT = Path(__file__).resolve().parents[1]
SPACE = {
    "optimizer.lr": {"log_uniform": [3e-4, 3e-2]},
    "model.hidden": {"choice": [[64], [128], [256, 128]]},
    "train.batch_size": {"int": [16, 128], "log": True},
    "metric": "accuracy",
    "seed": 0,
}


def search(base: dict, folder: Path, pruner: str, trials: int) -> dict:
    cfg = copy.deepcopy(base)
    cfg["run_dir"] = str(folder)
    cfg["tune"] = {**SPACE, "pruner": pruner}
    path = folder / "digits_mlp_tune.yaml"
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    timed = {}

    def timing(key, function):  # a part of the search, timed apart from the rest
        def wrapper(*args, **kwargs):
            t = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                timed[key] = timed.get(key, 0.0) + time.perf_counter() - t
        return wrapper

    draw, work = search_module.write_html, search_module.work
    search_module.write_html = timing("html", draw)
    search_module.work = timing("work", work)  # the worker's loop over the trials
    t0 = time.perf_counter()
    try:
        result = nw.tune(path, trials=trials, verbose=0)
    finally:
        search_module.write_html, search_module.work = draw, work
    wall = time.perf_counter() - t0
    fit = sum(t["fit_seconds"] or 0.0 for t in result.trials)
    runs = sum(t["run_seconds"] or 0.0 for t in result.trials)
    best = run(result.tune_dir / "best.yaml", [f"run_dir={folder / 'best'}"], verbose=0)
    return {"result": result, "wall": wall, "fit": fit, "runs": runs, "html": timed["html"],
            "work": timed["work"], "test": best.scores["test"]["accuracy"]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--data", choices=["digits", "mnist"], default="digits")
    args = parser.parse_args()
    base = yaml.safe_load((ROOT / "examples" / "digits_mlp.yaml").read_text())
    base["train"]["epochs"] = args.epochs
    if args.data == "mnist":
        base["data"]["source"] = "mnist"
        base["name"] = "mnist_mlp"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shipped = run(ROOT / "examples" / "digits_mlp.yaml", [f"run_dir={tmp / 'shipped'}",
                                                               f"data.source={args.data}"],
                      verbose=0)
        print(f"shipped examples/digits_mlp.yaml on {args.data} ({len(shipped.fit.history)} epochs, "
              f"{shipped.fit.seconds:.1f}s): val accuracy {shipped.scores['val']['accuracy']:.4f}, "
              f"test accuracy {shipped.scores['test']['accuracy']:.4f}")
        print(f"search: {args.trials} trials, {args.epochs} epochs at most, TPE seed 0; space "
              f"{', '.join(k for k in SPACE if '.' in k)}")
        rows = {}
        for pruner in ("median", "none"):
            rows[pruner] = r = search(base, tmp / pruner, pruner, args.trials)
            counts = r["result"].counts()
            over = r["wall"] - r["fit"]
            search_only = r["wall"] - r["runs"] - r["html"]
            per_trial = r["work"] - r["runs"]  # the worker's loop, less the runs themselves
            once = search_only - per_trial
            n = len(r["result"].trials)
            print(f"pruner {pruner:>6}: wall {r['wall']:6.1f}s, {counts}, best val accuracy "
                  f"{r['result'].best_value:.4f} (its config's test accuracy {r['test']:.4f}); "
                  f"training {r['fit']:.2f}s; overhead {over:.2f}s = {100 * over / r['fit']:.1f} % "
                  f"of training: runs' own extras {r['runs'] - r['fit']:.2f}s, tune.html "
                  f"{r['html']:.2f}s, the search itself {search_only:.2f}s = "
                  f"{100 * search_only / r['fit']:.1f} % of training: once per search "
                  f"{once:.2f}s (the config, opening the study: imports, the database schema "
                  f"check; best.yaml), the worker's loop {per_trial:.2f}s = "
                  f"{1000 * per_trial / n:.1f} ms a trial = {100 * per_trial / r['fit']:.1f} % "
                  f"of training")
        saved = 1 - rows["median"]["wall"] / rows["none"]["wall"]
        print(f"pruning saved {100 * saved:.0f} % of the wall time; best val accuracy "
              f"{rows['median']['result'].best_value:.4f} (pruned) vs "
              f"{rows['none']['result'].best_value:.4f} (not)")


if __name__ == "__main__":
    main()
