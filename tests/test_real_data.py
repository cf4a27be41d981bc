"""Real data, held-out test scores (the data sets ship inside scikit-learn)."""

import numpy as np
import pytest
import torch
import torch.nn as nn

import netwright as nw
from netwright.data.splits import stratified_indices

pytest.importorskip("sklearn")


def _split(X, y, stratify, seed=0):
    if stratify:
        keep, held = stratified_indices(torch.as_tensor(y).long(), 0.25, seed)
    else:
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
        held, keep = perm[: len(y) // 4], perm[len(y) // 4:]
    keep, held = keep.numpy(), held.numpy()
    mean, std = X[keep].mean(0), X[keep].std(0) + 1e-6  # fitted on the training part only
    return (X[keep] - mean) / std, y[keep], (X[held] - mean) / std, y[held]


def test_digits_mlp_test_accuracy_at_least_96_percent():
    X, y = nw.load_builtin("digits")
    Xtr, ytr, Xte, yte = _split(X, y, stratify=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    nw.fit(model, (Xtr, ytr), loss="cross_entropy", lr=1e-3, epochs=30, batch_size=32,
           val=0.1, early_stopping={"patience": 6}, verbose=0)
    acc = nw.evaluate(model, (Xte, yte), metrics=["accuracy"])["accuracy"]
    print(f"digits MLP test accuracy {acc:.4f}")
    assert acc >= 0.96


def test_breast_cancer_bce_with_logits_test_accuracy_at_least_94_percent():
    X, y = nw.load_builtin("breast_cancer")
    Xtr, ytr, Xte, yte = _split(X, y, stratify=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 1))
    ytr_f, yte_f = ytr.astype(np.float32)[:, None], yte.astype(np.float32)[:, None]
    result = nw.fit(model, (Xtr, ytr_f), loss="bce_with_logits", lr=1e-3, epochs=40,
                    batch_size=32, metrics=["accuracy", "f1", "auroc"], verbose=0)
    assert result.task.kind == "binary"
    scores = nw.evaluate(model, (Xte, yte_f), metrics=["accuracy", "f1", "auroc"])
    print(f"breast_cancer test {scores}")
    assert scores["accuracy"] >= 0.94


def test_diabetes_mse_test_r2_at_least_040():
    X, y = nw.load_builtin("diabetes")
    Xtr, ytr, Xte, yte = _split(X, y, stratify=False)
    mu, sd = ytr.mean(), ytr.std()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    nw.fit(model, (Xtr, ((ytr - mu) / sd)[:, None]), loss="mse", optimizer="adamw", lr=3e-3,
           weight_decay=1e-2, epochs=60, batch_size=32, val=0.15, early_stopping=10, verbose=0)
    r2 = nw.evaluate(model, (Xte, ((yte - mu) / sd)[:, None]), metrics=["r2", "rmse"])
    print(f"diabetes test {r2}")
    assert r2["r2"] >= 0.40
