"""The same GridSearchCV through netwright.sklearn.Classifier and through skorch.

Breast cancer (569 rows, 30 features), ``Pipeline(StandardScaler(), net)``, a grid over the
learning rate and the hidden size, 5 folds. Both nets are Linear-ReLU-Linear with two logits,
trained with Adam and cross-entropy for the same epochs and batch size, on one torch thread
(the networks are tiny: more threads only wait on each other). Prints both wall times, the
ratio (netwright's target: at most 0.5x skorch's time) and both best mean scores.

    python benchmarks/sklearn_grid.py [--epochs 20] [--seeds 3]

skorch is needed only here (``pip install skorch``); netwright never imports it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from torch import nn

from netwright.sklearn import Classifier

LRS = [1e-3, 3e-3, 1e-2]
HIDDEN = [16, 64]


class TwoLayer(nn.Module):
    """Linear-ReLU-Linear, for skorch (netwright builds the same with its zoo's 'mlp')."""

    def __init__(self, hidden: int = 16, n_features: int = 30, n_outputs: int = 2):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_outputs))

    def forward(self, x):
        return self.net(x)


def search(estimator, grid, X, y):
    cv = StratifiedKFold(5, shuffle=True, random_state=0)
    gs = GridSearchCV(Pipeline([("scale", StandardScaler()), ("net", estimator)]), grid, cv=cv)
    t = time.perf_counter()
    gs.fit(X, y)
    return time.perf_counter() - t, gs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, default=1,
                        help="repeat the searches with N seeds: the fastest time, the mean score")
    parser.add_argument("--nw-random-state", choices=["global", "fixed"], default="global",
                        help="global (default): netwright's fits draw their weights from torch's "
                             "global generator, seeded before the search, as skorch's do; "
                             "fixed: random_state=seed, every fit of a grid point starts from "
                             "the same weights")
    args = parser.parse_args()
    torch.set_num_threads(1)
    X, y = load_breast_cancer(return_X_y=True)
    X = X.astype(np.float32)

    nw_est = Classifier(module="mlp", module__hidden=[HIDDEN[0]], optimizer="adam",
                        epochs=args.epochs, batch_size=args.batch_size, random_state=0)
    nw_grid = {"net__lr": LRS, "net__module__hidden": [[h] for h in HIDDEN]}

    from skorch import NeuralNetClassifier

    sk_est = NeuralNetClassifier(TwoLayer, criterion=nn.CrossEntropyLoss,
                                 optimizer=torch.optim.Adam, max_epochs=args.epochs,
                                 batch_size=args.batch_size, train_split=None, verbose=0,
                                 iterator_train__shuffle=True)
    sk_grid = {"net__lr": LRS, "net__module__hidden": HIDDEN}

    search(nw_est, {"net__lr": LRS[:1]}, X[:100], y[:100])  # warm up both: imports, first calls
    search(sk_est, {"net__lr": LRS[:1]}, X[:100], y[:100])
    times: dict[str, list[float]] = {"nw": [], "sk": []}
    scores: dict[str, list[float]] = {"nw": [], "sk": []}
    for seed in range(args.seeds):
        if args.nw_random_state == "fixed":
            nw_est.set_params(random_state=seed)
        else:
            nw_est.set_params(random_state=None)
            torch.manual_seed(seed)  # netwright's initial weights and data orders, as skorch's
        t, nw_gs = search(nw_est, nw_grid, X, y)
        times["nw"].append(t)
        scores["nw"].append(nw_gs.best_score_)
        torch.manual_seed(seed)  # skorch's initial weights and data order
        t, sk_gs = search(sk_est, sk_grid, X, y)
        times["sk"].append(t)
        scores["sk"].append(sk_gs.best_score_)
        print(f"seed {seed}: netwright {times['nw'][-1]:.2f} s score {scores['nw'][-1]:.4f} "
              f"{nw_gs.best_params_} | skorch {times['sk'][-1]:.2f} s score "
              f"{scores['sk'][-1]:.4f} {sk_gs.best_params_}")
    nw_t, sk_t = min(times["nw"]), min(times["sk"])
    fits = len(LRS) * len(HIDDEN) * 5 + 1
    print(f"breast_cancer, {fits} fits of {args.epochs} epochs, batch {args.batch_size}, "
          f"1 torch thread, {args.seeds} seed(s) (fastest time, mean best score); netwright's "
          f"random state: {args.nw_random_state}")
    print(f"netwright.sklearn.Classifier  {nw_t:7.2f} s  best mean score "
          f"{np.mean(scores['nw']):.4f}")
    print(f"skorch NeuralNetClassifier    {sk_t:7.2f} s  best mean score "
          f"{np.mean(scores['sk']):.4f}")
    print(f"time ratio netwright/skorch   {nw_t / sk_t:.2f}x (target <= 0.5x)")
    if args.seeds > 1:  # paired by seed: the same folds, each library's own draws of weights
        from scipy import stats

        diff = np.asarray(scores["nw"]) - np.asarray(scores["sk"])
        half = stats.t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff))
        ahead = int((diff > 0).sum()), int((diff < 0).sum()), int((diff == 0).sum())
        print(f"score netwright - skorch      {diff.mean():+.4f} mean over {len(diff)} seeds, "
              f"95 % interval [{diff.mean() - half:+.4f}, {diff.mean() + half:+.4f}]; netwright "
              f"ahead on {ahead[0]}, skorch on {ahead[1]}, {ahead[2]} ties")


if __name__ == "__main__":
    main()
