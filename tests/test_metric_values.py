"""Metric and loss *values* on fixed, deliberately asymmetric inputs, against scikit-learn and
torch.nn.functional.

The inputs are chosen so that every pair of metrics that could be swapped by mistake differs
(precision != recall != f1 != accuracy, macro != micro != weighted, AUROC != accuracy, and
l1 != mse != smooth_l1 != huber with residuals both below and above 1): a test that only checks
ranges or shapes would pass with any of them exchanged; these do not. Everything goes through
the public API: ``nw.evaluate`` on an ``nn.Identity`` model (the data *are* the model's outputs),
with a batch size that leaves a short last batch, so the values must be accumulated over the
whole data set, not averaged per batch.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import netwright as nw
from netwright.losses import LOSSES
from netwright.metrics import CLASSIFICATION_METRICS, REGRESSION_METRICS, Task

skm = pytest.importorskip("sklearn.metrics")  # the 'datasets' extra

APPROX = dict(rel=1e-5, abs=1e-6)


def _distinct(values: dict, gap: float = 0.005) -> None:
    """Guard on the fixture itself: the reference values must differ pairwise, otherwise a
    swapped metric would go unnoticed."""
    items = list(values.items())
    for i, (a, va) in enumerate(items):
        for b, vb in items[i + 1:]:
            assert abs(va - vb) > gap, f"fixture too symmetric: {a}={va} and {b}={vb}"


def _noise(n: int, c: int, phase: float = 0.5) -> torch.Tensor:
    """Small, deterministic and distinct offsets so that no two scores tie (AUROC ranks them)."""
    i = torch.arange(n, dtype=torch.float64)[:, None]
    j = torch.arange(c, dtype=torch.float64)[None, :]
    return (0.3 * torch.sin(1.7 * i + 2.3 * j + phase)).float()


# -- binary ------------------------------------------------------------------------------------
# 12 samples: TP=5, FN=3, FP=1, TN=3  ->  precision 5/6, recall 5/8, f1 10/14, accuracy 8/12.
BIN_TRUE = [1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]
BIN_LOGIT = [2.1, 0.7, 1.3, 0.2, 3.0, -0.4, -1.1, -0.05, 0.9, -2.0, -0.6, -0.3]


def _binary_data():
    logits = torch.tensor(BIN_LOGIT).unsqueeze(1)  # (N, 1)
    y = torch.tensor(BIN_TRUE, dtype=torch.float32).unsqueeze(1)
    return logits, y


def test_binary_metrics_match_sklearn():
    logits, y = _binary_data()
    res = nw.evaluate(nn.Identity(), (logits, y), loss="bce_with_logits", batch_size=5,
                      metrics=list(CLASSIFICATION_METRICS))
    t = np.array(BIN_TRUE)
    prob = torch.sigmoid(logits).squeeze(1).numpy()
    pred = (prob > 0.5).astype(int)
    ref = {
        "accuracy": skm.accuracy_score(t, pred),
        "precision": skm.precision_score(t, pred),
        "recall": skm.recall_score(t, pred),
        "f1": skm.f1_score(t, pred),
        "auroc": skm.roc_auc_score(t, prob),
    }
    _distinct(ref)
    assert ref["precision"] == pytest.approx(5 / 6) and ref["recall"] == pytest.approx(5 / 8)
    for name, value in ref.items():
        assert res[name] == pytest.approx(value, **APPROX), name
    assert res["confusion_matrix"] == skm.confusion_matrix(t, pred).tolist() == [[3, 1], [3, 5]]
    # The loss over uneven batches (5, 5, 2) is the mean over all 12 samples.
    assert res["loss"] == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, y)), **APPROX)


def test_binary_probabilities_are_not_passed_through_a_second_sigmoid():
    # 'bce' says the model outputs probabilities: thresholding them at 0.5 must give the same
    # scores as the logits above (a second sigmoid would make every prediction positive).
    logits, y = _binary_data()
    probs = torch.sigmoid(logits)
    res = nw.evaluate(nn.Identity(), (probs, y), loss="bce", batch_size=5,
                      metrics=["accuracy", "precision", "recall", "f1", "auroc"])
    t = np.array(BIN_TRUE)
    pred = (probs.squeeze(1).numpy() > 0.5).astype(int)
    assert res["accuracy"] == pytest.approx(skm.accuracy_score(t, pred), **APPROX)
    assert res["precision"] == pytest.approx(skm.precision_score(t, pred), **APPROX)
    assert res["recall"] == pytest.approx(skm.recall_score(t, pred), **APPROX)
    assert res["f1"] == pytest.approx(skm.f1_score(t, pred), **APPROX)
    assert res["auroc"] == pytest.approx(skm.roc_auc_score(t, probs.squeeze(1).numpy()), **APPROX)
    assert res["loss"] == pytest.approx(float(F.binary_cross_entropy(probs, y)), **APPROX)


def test_binary_metric_with_an_explicit_average_is_that_average():
    # 'f1_macro' on a binary run is sklearn's average over both classes, not the positive-class
    # score under a macro name.
    logits, y = _binary_data()
    res = nw.evaluate(nn.Identity(), (logits, y), loss="bce_with_logits", batch_size=5,
                      metrics=["f1_macro", "precision_weighted", "recall_macro", "f1"])
    assert res["f1_macro"] != pytest.approx(res["f1"])
    t = np.array(BIN_TRUE)
    pred = (torch.sigmoid(logits).squeeze(1).numpy() > 0.5).astype(int)
    assert res["f1_macro"] == pytest.approx(skm.f1_score(t, pred, average="macro"), **APPROX)
    assert res["precision_weighted"] == pytest.approx(
        skm.precision_score(t, pred, average="weighted"), **APPROX)
    assert res["recall_macro"] == pytest.approx(skm.recall_score(t, pred, average="macro"), **APPROX)


# -- multiclass --------------------------------------------------------------------------------
# Supports 7 / 5 / 3 and a different precision and recall for each class, so macro, micro and
# weighted averages all differ; each class is predicted at least once (no 0/0).
MC_TRUE = [0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2]
MC_PRED = [0, 0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 2, 1, 0, 0]


def _multiclass_logits():
    onehot = F.one_hot(torch.tensor(MC_PRED), 3).float()
    return 2.0 * onehot + _noise(len(MC_PRED), 3)


def test_multiclass_metrics_and_averages_match_sklearn():
    logits = _multiclass_logits()
    y = torch.tensor(MC_TRUE)
    names = ["accuracy", "precision", "recall", "f1", "precision_micro", "recall_micro",
             "f1_micro", "precision_weighted", "recall_weighted", "f1_weighted",
             {"name": "f1", "average": "weighted"}, "auroc", "auroc_weighted", "confusion_matrix"]
    res = nw.evaluate(nn.Identity(), (logits, y), loss="cross_entropy", metrics=names, batch_size=4)
    t = np.array(MC_TRUE)
    prob = torch.softmax(logits, 1).numpy()
    pred = prob.argmax(1)
    assert pred.tolist() == MC_PRED
    ref = {"accuracy": skm.accuracy_score(t, pred)}
    for avg, suffix in (("macro", ""), ("micro", "_micro"), ("weighted", "_weighted")):
        ref["precision" + suffix] = skm.precision_score(t, pred, average=avg)
        ref["recall" + suffix] = skm.recall_score(t, pred, average=avg)
        ref["f1" + suffix] = skm.f1_score(t, pred, average=avg)
    ref["auroc"] = skm.roc_auc_score(t, prob, multi_class="ovr", average="macro")
    ref["auroc_weighted"] = skm.roc_auc_score(t, prob, multi_class="ovr", average="weighted")
    # Single-label micro averages and the support-weighted recall all equal accuracy (by
    # definition); every other pair differs.
    same = ("precision_micro", "recall_micro", "f1_micro", "recall_weighted")
    for k in same:
        assert ref[k] == pytest.approx(ref["accuracy"])
    _distinct({k: v for k, v in ref.items() if k not in same})
    for name, value in ref.items():
        assert res[name] == pytest.approx(value, **APPROX), name
    assert res["confusion_matrix"] == skm.confusion_matrix(t, pred).tolist()
    assert res["loss"] == pytest.approx(float(F.cross_entropy(logits, y)), **APPROX)


def test_multiclass_logits_inside_0_1_still_go_through_softmax():
    # torchmetrics takes scores that happen to lie in [0, 1] as probabilities; netwright must
    # apply the softmax that cross_entropy implies first. AUROC tells (ranks within a column
    # change under softmax); an argmax-based score would not.
    logits = 0.3 * F.one_hot(torch.tensor(MC_PRED), 3).float() + 0.35 + _noise(15, 3, phase=1.0)
    assert float(logits.min()) > 0 and float(logits.max()) < 1
    t = np.array(MC_TRUE)
    res = nw.evaluate(nn.Identity(), (logits, torch.tensor(MC_TRUE)), loss="cross_entropy",
                      metrics=["auroc"], batch_size=4)
    want = skm.roc_auc_score(t, torch.softmax(logits, 1).numpy(), multi_class="ovr")
    as_given = np.mean([skm.roc_auc_score(t == k, logits[:, k].numpy()) for k in range(3)])
    assert abs(want - as_given) > 0.01
    assert res["auroc"] == pytest.approx(want, **APPROX)


def test_multiclass_log_probabilities_with_nll_give_the_same_scores():
    logits = _multiclass_logits()
    y = torch.tensor(MC_TRUE)
    logp = torch.log_softmax(logits, 1)
    res = nw.evaluate(nn.Identity(), (logp, y), loss="nll", batch_size=4,
                      metrics=["accuracy", "f1", "auroc"])
    t, prob = np.array(MC_TRUE), logp.exp().numpy()
    assert res["accuracy"] == pytest.approx(skm.accuracy_score(t, prob.argmax(1)), **APPROX)
    assert res["f1"] == pytest.approx(skm.f1_score(t, prob.argmax(1), average="macro"), **APPROX)
    assert res["auroc"] == pytest.approx(skm.roc_auc_score(t, prob, multi_class="ovr"), **APPROX)
    assert res["loss"] == pytest.approx(float(F.nll_loss(logp, y)), **APPROX)


def test_metricset_accumulates_batches_like_one_pass():
    # The same numbers fed to MetricSet in three uneven updates equal one update of everything.
    logits = _multiclass_logits()
    y = torch.tensor(MC_TRUE)
    names = ["accuracy", "precision", "recall", "f1_weighted", "auroc"]
    whole = nw.MetricSet(names, Task("multiclass", 3, "logits"))
    whole.update(logits, y)
    parts = nw.MetricSet(names, Task("multiclass", 3, "logits"))
    for sl in (slice(0, 2), slice(2, 11), slice(11, None)):
        parts.update(logits[sl], y[sl])
    assert parts.compute() == pytest.approx(whole.compute(), **APPROX)
    parts.reset()
    parts.update(logits[5:], y[5:])  # after reset only these ten count
    assert parts.compute()["accuracy"] == pytest.approx(
        skm.accuracy_score(MC_TRUE[5:], MC_PRED[5:]))
    assert skm.accuracy_score(MC_TRUE[5:], MC_PRED[5:]) != skm.accuracy_score(MC_TRUE, MC_PRED)


# -- multilabel --------------------------------------------------------------------------------
ML_TRUE = [[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0], [0, 1, 1],
           [1, 1, 1], [0, 0, 0], [1, 0, 1], [0, 1, 0], [1, 0, 0]]
ML_PRED = [[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 0, 0], [0, 0, 1],
           [1, 1, 0], [0, 1, 0], [1, 0, 1], [0, 1, 0], [0, 0, 1]]


def test_multilabel_metrics_match_sklearn():
    t = np.array(ML_TRUE)
    logits = (2.0 * torch.tensor(ML_PRED, dtype=torch.float32) - 1.0) + _noise(10, 3, phase=2.0)
    y = torch.tensor(ML_TRUE, dtype=torch.float32)
    res = nw.evaluate(nn.Identity(), (logits, y), loss="bce_with_logits", batch_size=4,
                      metrics=["accuracy", "precision", "recall", "f1", "f1_micro",
                               "precision_weighted", "auroc", "confusion_matrix"])
    prob = torch.sigmoid(logits).numpy()
    pred = (prob > 0.5).astype(int)
    assert pred.tolist() == ML_PRED
    ref = {
        # torchmetrics' multilabel accuracy with average='micro' is the share of correct
        # label decisions (1 - Hamming loss), not sklearn's exact-match subset accuracy.
        "accuracy": 1 - skm.hamming_loss(t, pred),
        "precision": skm.precision_score(t, pred, average="macro"),
        "recall": skm.recall_score(t, pred, average="macro"),
        "f1": skm.f1_score(t, pred, average="macro"),
        "f1_micro": skm.f1_score(t, pred, average="micro"),
        "precision_weighted": skm.precision_score(t, pred, average="weighted"),
        "auroc": skm.roc_auc_score(t, prob, average="macro"),
    }
    _distinct(ref)
    for name, value in ref.items():
        assert res[name] == pytest.approx(value, **APPROX), name
    assert res["confusion_matrix"] == skm.multilabel_confusion_matrix(t, pred).tolist()
    assert res["loss"] == pytest.approx(float(F.binary_cross_entropy_with_logits(logits, y)), **APPROX)


# -- regression --------------------------------------------------------------------------------
REG_PRED = [[1.0], [2.5], [0.2], [4.0], [-1.0], [3.3], [0.0]]
REG_TRUE = [[1.5], [2.0], [2.2], [3.9], [0.5], [0.3], [0.1]]


@pytest.mark.parametrize("shape", ["column", "two_outputs"])
def test_regression_metrics_match_sklearn(shape):
    pred = torch.tensor(REG_PRED)
    y = torch.tensor(REG_TRUE)
    if shape == "two_outputs":  # a second output with other errors: uniform average over outputs
        pred = torch.cat([pred, pred.flip(0) * 0.5], 1)
        y = torch.cat([y, y * 2.0 - 1.0], 1)
    res = nw.evaluate(nn.Identity(), (pred, y), loss="mse", batch_size=3,
                      metrics=list(REGRESSION_METRICS))
    p, t = pred.numpy().astype(np.float64), y.numpy().astype(np.float64)
    ref = {"mse": skm.mean_squared_error(t, p), "mae": skm.mean_absolute_error(t, p),
           "rmse": math.sqrt(skm.mean_squared_error(t, p)), "r2": skm.r2_score(t, p)}
    _distinct(ref)
    for name, value in ref.items():
        assert res[name] == pytest.approx(value, rel=1e-5), name
    assert res["loss"] == pytest.approx(ref["mse"], rel=1e-5)


def test_every_offered_metric_name_has_a_value_test_here():
    # If a metric is added to netwright, this file must learn its value too.
    assert set(CLASSIFICATION_METRICS) == {"accuracy", "precision", "recall", "f1", "auroc",
                                           "confusion_matrix"}
    assert set(REGRESSION_METRICS) == {"mse", "mae", "rmse", "r2"}


# -- losses ------------------------------------------------------------------------------------
# Residuals both below and above 1 (and above 2), so that l1, mse, smooth_l1 and huber differ,
# and smooth_l1's beta and huber's delta change the value.
REG_OUT = torch.tensor([[0.3, -2.5], [1.0, 0.0], [4.0, -0.2], [0.5, 3.0]])
REG_TGT = torch.tensor([[0.0, 0.5], [0.6, -1.7], [0.0, 0.1], [0.4, 0.5]])


def _smooth_l1(r: torch.Tensor, beta: float) -> float:
    a = r.abs()
    return float(torch.where(a < beta, 0.5 * a**2 / beta, a - 0.5 * beta).mean())


def test_regression_losses_match_functional_and_their_closed_forms():
    r = REG_OUT - REG_TGT
    assert bool((r.abs() < 1).any()) and bool((r.abs() > 2).any())
    expected = {
        "mse": (F.mse_loss(REG_OUT, REG_TGT), float((r**2).mean())),
        "l1": (F.l1_loss(REG_OUT, REG_TGT), float(r.abs().mean())),
        "mae": (F.l1_loss(REG_OUT, REG_TGT), float(r.abs().mean())),  # alias of l1
        "smooth_l1": (F.smooth_l1_loss(REG_OUT, REG_TGT), _smooth_l1(r, 1.0)),
        "huber": (F.huber_loss(REG_OUT, REG_TGT), _smooth_l1(r, 1.0)),
        # With beta/delta = 2 huber = delta * smooth_l1: the two names can no longer coincide.
        "smooth_l1 beta=2": (F.smooth_l1_loss(REG_OUT, REG_TGT, beta=2.0), _smooth_l1(r, 2.0)),
        "huber delta=2": (F.huber_loss(REG_OUT, REG_TGT, delta=2.0), 2.0 * _smooth_l1(r, 2.0)),
    }
    specs = {"smooth_l1 beta=2": {"name": "smooth_l1", "beta": 2.0},
             "huber delta=2": {"name": "huber", "delta": 2.0}}
    values = {}
    for key, (functional, closed) in expected.items():
        fn, info = nw.resolve_loss(specs.get(key, key))
        assert info.task == "regression"
        got = float(fn(REG_OUT, REG_TGT))
        assert got == pytest.approx(float(functional), **APPROX), key
        assert got == pytest.approx(closed, **APPROX), key
        values[key] = got
    _distinct({k: values[k] for k in ("mse", "l1", "smooth_l1", "smooth_l1 beta=2", "huber delta=2")})


def test_regression_loss_through_evaluate_is_the_mean_over_all_samples():
    # 4 samples in batches of 3 and 1: an unweighted mean of batch losses would differ.
    for name, functional in (("l1", F.l1_loss), ("smooth_l1", F.smooth_l1_loss),
                             ("mse", F.mse_loss), ("huber", F.huber_loss)):
        res = nw.evaluate(nn.Identity(), (REG_OUT, REG_TGT), loss=name, batch_size=3)
        assert res["loss"] == pytest.approx(float(functional(REG_OUT, REG_TGT)), **APPROX), name


def test_binary_losses_match_functional():
    logits = torch.tensor([[1.2, -0.7], [-2.0, 0.4], [0.3, 3.1], [-0.2, -1.5]])
    y = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    probs = torch.sigmoid(logits)
    fn, info = nw.resolve_loss("bce")
    assert info.output == "probs"
    assert float(fn(probs, y)) == pytest.approx(float(F.binary_cross_entropy(probs, y)), **APPROX)
    fn, info = nw.resolve_loss("bce_with_logits")
    assert info.output == "logits"
    ref = float(F.binary_cross_entropy_with_logits(logits, y))
    assert float(fn(logits, y)) == pytest.approx(ref, **APPROX)
    # bce on probabilities == bce_with_logits on the logits; bce_with_logits on probabilities
    # (a double sigmoid) is a different number.
    assert float(F.binary_cross_entropy(probs, y)) == pytest.approx(ref, rel=1e-5)
    assert abs(float(fn(probs, y)) - ref) > 0.05
    fn, _ = nw.resolve_loss({"name": "bce_with_logits", "pos_weight": [3.0, 0.5]})
    want = F.binary_cross_entropy_with_logits(logits, y, pos_weight=torch.tensor([3.0, 0.5]))
    assert float(fn(logits, y)) == pytest.approx(float(want), **APPROX)
    assert abs(float(want) - ref) > 0.05


def test_multiclass_losses_match_functional():
    logits = torch.tensor([[2.0, -1.0, 0.5], [0.1, 0.2, 3.0], [-1.0, 2.5, 0.0],
                           [1.5, 1.4, -0.3], [0.0, -2.0, 1.0]])
    y = torch.tensor([0, 2, 0, 1, 1])
    w = torch.tensor([1.0, 3.0, 0.5])
    cases = [
        ("cross_entropy", F.cross_entropy(logits, y)),
        ("ce", F.cross_entropy(logits, y)),
        ({"name": "cross_entropy", "label_smoothing": 0.2},
         F.cross_entropy(logits, y, label_smoothing=0.2)),
        ({"name": "cross_entropy", "weight": [1.0, 3.0, 0.5]}, F.cross_entropy(logits, y, weight=w)),
        ({"name": "cross_entropy", "weight": [1.0, 3.0, 0.5], "label_smoothing": 0.1},
         F.cross_entropy(logits, y, weight=w, label_smoothing=0.1)),
    ]
    values = []
    for spec, want in cases:
        fn, info = nw.resolve_loss(spec)
        assert info.task == "multiclass"
        got = float(fn(logits, y))
        assert got == pytest.approx(float(want), **APPROX), spec
        values.append(got)
    assert len({round(v, 4) for v in values[1:]}) == 4  # the options change the value
    # Label smoothing by hand: (1 - eps) * NLL + eps * mean over classes of -log p.
    logp = logits.log_softmax(1)
    by_hand = float((0.8 * -logp[torch.arange(5), y] + 0.2 * -logp.mean(1)).mean())
    assert values[2] == pytest.approx(by_hand, **APPROX)
    fn, info = nw.resolve_loss("nll")
    assert info.output == "log_probs"
    assert float(fn(logp, y)) == pytest.approx(float(F.nll_loss(logp, y)), **APPROX)
    assert float(fn(logp, y)) == pytest.approx(values[0], **APPROX)  # nll(log_softmax) == CE
    # Soft labels (class probabilities of the output's shape) are a valid CE target.
    soft = torch.softmax(torch.randn(5, 3, generator=torch.Generator().manual_seed(1)), 1)
    fn, _ = nw.resolve_loss("cross_entropy")
    assert float(fn(logits, soft)) == pytest.approx(float(F.cross_entropy(logits, soft)), **APPROX)


def test_every_offered_loss_name_has_a_value_test_here():
    assert set(LOSSES) == {"cross_entropy", "nll", "bce", "bce_with_logits", "mse", "l1",
                           "smooth_l1", "huber"}
