"""metrics.py behaviour that mutation testing (docs/testing.md) found unchecked.

The plain metrics netwright computes itself promise torchmetrics' values, input checks and
messages for the inputs torchmetrics' classes accept (label predictions as well as scores,
extra dimensions, narrow integer targets), states summed over processes, ``to``/``reset`` on a
device, and the confusion matrix as ints. Each case here is checked against torchmetrics or
scikit-learn on small fixed inputs, or against numbers worked out by hand. Fast: no training.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from netwright.errors import ConfigError
from netwright.metrics import MetricSet, Task

tm = pytest.importorskip("torchmetrics")
skm = pytest.importorskip("sklearn.metrics")
from torchmetrics import classification as tc  # noqa: E402


def _native(ms: MetricSet) -> set[bool]:
    """Whether each metric is netwright's own (True) or a torchmetrics object (False)."""
    return {not isinstance(m, tm.Metric) for m in ms.metrics.values()}


def _error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), info.value.args


def _value(t: torch.Tensor):
    return float(t) if t.numel() == 1 else t.tolist()


# ---- which implementation is built, and for which options --------------------------------------

def test_binary_task_without_a_class_count_is_computed_natively():
    # Task("binary") leaves classes at 0: a binary run still has two classes.
    probs = torch.tensor([0.9, 0.2, 0.6, 0.4, 0.8, 0.1])
    y = torch.tensor([1, 0, 0, 1, 1, 0])
    names = ["accuracy", "precision", "recall", "f1", "confusion_matrix"]
    ms = MetricSet(names, Task("binary", output="probs"))
    assert _native(ms) == {True}
    ms.update(probs, y)
    got = ms.compute()
    labels = (probs > 0.5).long().numpy()
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y, labels))
    assert got["precision"] == pytest.approx(skm.precision_score(y, labels))
    assert got["recall"] == pytest.approx(skm.recall_score(y, labels))
    assert got["f1"] == pytest.approx(skm.f1_score(y, labels))
    assert got["confusion_matrix"] == skm.confusion_matrix(y, labels).tolist()


def test_averaged_metrics_of_a_binary_run_are_native_two_class_scores():
    probs = torch.tensor([0.9, 0.2, 0.6, 0.4, 0.8, 0.1, 0.7])
    y = torch.tensor([1, 0, 0, 1, 1, 0, 0])
    names = [f"{m}_{a}" for m in ("accuracy", "precision", "recall", "f1")
             for a in ("micro", "macro", "weighted")]
    ms = MetricSet(names, Task("binary", 2, "probs"))
    assert _native(ms) == {True}
    ms.update(probs, y)
    got = ms.compute()
    labels = (probs > 0.5).long().numpy()
    for a in ("micro", "macro", "weighted"):
        assert got[f"precision_{a}"] == pytest.approx(skm.precision_score(y, labels, average=a))
        assert got[f"recall_{a}"] == pytest.approx(skm.recall_score(y, labels, average=a))
        assert got[f"f1_{a}"] == pytest.approx(skm.f1_score(y, labels, average=a))
    # torchmetrics' multiclass accuracy: micro is the accuracy, macro the mean per-class recall
    assert got["accuracy_micro"] == pytest.approx(skm.accuracy_score(y, labels))
    assert got["accuracy_macro"] == pytest.approx(skm.balanced_accuracy_score(y, labels))


def test_per_class_scores_of_a_binary_run():
    # average 'none' on a binary run: one score per class, class 0 first
    probs = torch.tensor([0.9, 0.2, 0.6, 0.4, 0.8, 0.1, 0.7])
    y = torch.tensor([1, 0, 0, 1, 1, 0, 0])
    names = [{"name": m, "average": "none"} for m in ("accuracy", "precision", "recall", "f1")]
    ms = MetricSet(names, Task("binary", 2, "probs"))
    ms.update(probs, y)
    got = ms.compute()
    labels = (probs > 0.5).long().numpy()
    assert got["precision_none"] == pytest.approx(skm.precision_score(y, labels, average=None).tolist())
    assert got["recall_none"] == pytest.approx(skm.recall_score(y, labels, average=None).tolist())
    assert got["f1_none"] == pytest.approx(skm.f1_score(y, labels, average=None).tolist())
    assert got["accuracy_none"] == pytest.approx(skm.recall_score(y, labels, average=None).tolist())


def test_regression_metrics_with_options_are_torchmetrics_with_those_options():
    pred = torch.tensor([[1.0, 2.0], [2.0, 0.0], [4.0, 1.0], [3.0, 3.0]])
    y = torch.tensor([[1.5, 2.0], [1.0, 1.0], [4.0, 2.5], [2.0, 3.5]])
    ms = MetricSet([{"name": "mse", "num_outputs": 2}, {"name": "rmse", "num_outputs": 2},
                    {"name": "mae", "num_outputs": 2}, {"name": "r2", "multioutput": "raw_values"}],
                   Task("regression"))
    ms.update(pred, y)
    got = ms.compute()
    mse = skm.mean_squared_error(y, pred, multioutput="raw_values")
    assert got["mse"] == pytest.approx(mse.tolist())
    assert got["rmse"] == pytest.approx((mse ** 0.5).tolist())
    assert got["mae"] == pytest.approx(skm.mean_absolute_error(y, pred, multioutput="raw_values").tolist())
    assert got["r2"] == pytest.approx(skm.r2_score(y, pred, multioutput="raw_values").tolist())


def test_recall_and_confusion_matrix_with_options():
    probs = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6], [0.5, 0.4, 0.1],
                          [0.1, 0.3, 0.6], [0.3, 0.3, 0.4]])
    y = torch.tensor([0, 1, 2, 1, 2, 0])
    ms = MetricSet([{"name": "recall", "average": "none"},
                    {"name": "confusion_matrix", "normalize": "true"}], Task("multiclass", 3, "probs"))
    ms.update(probs, y)
    got = ms.compute()
    labels = probs.argmax(1).numpy()
    assert got["recall_none"] == pytest.approx(skm.recall_score(y, labels, average=None).tolist())
    expected = skm.confusion_matrix(y, labels, normalize="true")
    assert got["confusion_matrix"] == [pytest.approx(row) for row in expected.tolist()]


def test_an_average_on_the_confusion_matrix_is_refused():
    with pytest.raises(ConfigError) as info:
        MetricSet(["confusion_matrix_macro"], Task("multiclass", 3, "logits"))
    assert str(info.value).startswith("metrics: 'confusion_matrix_macro' with options {'average': 'macro'}: ")


# ---- values at the boundaries -------------------------------------------------------------------

def test_probabilities_at_zero_one_and_the_threshold():
    # 0.0 and 1.0 are probabilities (not logits); exactly 0.5 is not above the threshold
    probs = torch.tensor([0.0, 0.7, 0.3, 0.5, 1.0, 0.55])
    y = torch.tensor([0, 1, 0, 0, 1, 1])
    names = ["accuracy", "f1", "confusion_matrix"]
    ms = MetricSet(names, Task("binary", 2, "probs"))
    ms.update(probs, y)
    assert ms.compute() == {"accuracy": 1.0, "f1": 1.0, "confusion_matrix": [[3, 0], [0, 3]]}
    ref = tc.BinaryAccuracy()
    ref.update(probs, y)
    assert float(ref.compute()) == 1.0


def test_a_nan_score_makes_every_score_a_logit_as_in_torchmetrics():
    # On the CPU torchmetrics applies the sigmoid unless every score lies in [0, 1]; a NaN
    # (a diverged model) fails that test, so 0.2 becomes sigmoid(0.2) > 0.5.
    probs = torch.tensor([0.2, float("nan"), 0.9])
    y = torch.tensor([0, 0, 1])
    ms = MetricSet(["accuracy", "confusion_matrix"], Task("binary", 2, "probs"))
    ms.update(probs, y)
    got = ms.compute()
    ref = tc.BinaryAccuracy()
    ref.update(probs, y)
    assert got["accuracy"] == float(ref.compute()) == pytest.approx(2 / 3)
    assert got["confusion_matrix"] == [[1, 1], [0, 1]]


def test_binary_accuracy_of_only_true_negatives_is_one():
    ms = MetricSet(["accuracy", "precision", "f1"], Task("binary", 2, "probs"))
    ms.update(torch.tensor([0.1, 0.2, 0.3]), torch.tensor([0, 0, 0]))
    assert ms.compute() == {"accuracy": 1.0, "precision": 0.0, "f1": 0.0}


def test_confusion_matrix_entries_are_ints():
    cases = [(Task("binary", 2, "probs"), torch.tensor([0.9, 0.2, 0.6]), torch.tensor([1, 0, 0])),
             (Task("multiclass", 3, "logits"), torch.eye(3), torch.tensor([0, 2, 2])),
             (Task("multilabel", 2, "probs"), torch.tensor([[0.9, 0.1], [0.2, 0.7]]),
              torch.tensor([[1, 0], [1, 1]]))]
    for task, out, y in cases:
        ms = MetricSet(["confusion_matrix"], task)
        ms.update(out, y)
        matrix = ms.compute()["confusion_matrix"]
        flat = torch.tensor(matrix).flatten().tolist()
        assert all(type(v) is int for v in flat), (task, matrix)
        assert sum(flat) == y.numel()


@pytest.mark.parametrize("pred, target, expected", [
    ([0.1, 0.8], [0.0, 1.0], 0.9),                       # two samples are enough; tss = 0.5 < 1
    ([0.5, 1.5], [0.0, 2.0], 0.75),                      # rss = 0.5 is not "zero"
    ([0.005, 0.995, 2.0, 3.0], [0.0, 1.0, 2.0, 3.0], 1.0),  # rss = 5e-5 counts as a perfect fit
    ([1.0, -1.0], [0.0, 0.005], 0.0),                     # tss = 1.25e-5 counts as constant
])
def test_r2_edge_cases_match_torchmetrics(pred, target, expected):
    pred, target = torch.tensor(pred), torch.tensor(target)
    ms = MetricSet(["r2"], Task("regression"))
    ms.update(pred, target)
    ref = tm.R2Score()
    ref.update(pred, target)
    assert ms.compute()["r2"] == float(ref.compute()) == pytest.approx(expected, abs=1e-6)


# ---- the inputs torchmetrics' classes accept, given to the metric objects directly ---------------

def _pair(name: str, task: Task):
    """netwright's metric object and the torchmetrics object it stands for."""
    ours = MetricSet([name], task).metrics[name]
    base, _, average = name.partition("_")
    if base == "confusion":
        kind = {"binary": tc.BinaryConfusionMatrix, "multiclass": tc.MulticlassConfusionMatrix,
                "multilabel": tc.MultilabelConfusionMatrix}[task.kind]
        return ours, kind() if task.kind == "binary" else kind(task.classes)
    cls = {"accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "f1": "F1Score"}[base]
    kind = getattr(tc, task.kind.capitalize() + cls)
    if task.kind == "binary":
        return ours, kind()
    default = "micro" if base == "accuracy" else "macro"
    return ours, kind(task.classes, average=average or default)


def _same(name, task, preds, target):
    ours, theirs = _pair(name, task)
    ours_update, theirs_update = (lambda: ours.update(preds, target)), (lambda: theirs.update(preds, target))
    try:
        theirs_update()
    except Exception:
        assert _error(ours_update) == _error(theirs_update), name
        return None
    ours_update()
    assert _value(ours.compute()) == _value(theirs.compute()), name
    return _value(ours.compute())


MC = Task("multiclass", 3, "probs")
MC_NAMES = ["accuracy", "accuracy_macro", "f1", "f1_weighted", "precision_micro", "confusion_matrix"]


@pytest.mark.parametrize("name", MC_NAMES)
def test_multiclass_label_predictions(name):
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    assert _same(name, MC, torch.tensor([0, 2, 2, 1, 1, 0]), y) is not None   # all 3 classes used
    assert _same(name, MC, torch.tensor([0., 2., 2., 1., 1., 0.]), y) is not None  # float labels
    # narrow integer targets whose index into the class-by-class table exceeds their range
    wide = Task("multiclass", 20, "probs")
    assert _same(name, wide, torch.tensor([0, 13, 18, 5, 12]),
                 torch.tensor([0, 13, 19, 5, 13], dtype=torch.uint8)) is not None


@pytest.mark.parametrize("name", MC_NAMES)
@pytest.mark.parametrize("preds, target", [
    (torch.tensor([[0, 1, 0], [1, 0, 0]]), torch.tensor([1, 0])),          # labels with a class axis
    (torch.tensor([0, 1, 2, 1, 0, 1]), torch.tensor([0, 1, 2, 1, 0])),      # same ndim, other shape
    (torch.tensor([0, 1, 2, 1]), torch.tensor([0, 1, 2, 3])),               # 4 target values, 3 classes
    (torch.tensor([0, 1, 3, 2]), torch.tensor([0, 1, 2, 1])),               # 4 predicted values
    (torch.rand(4, 3, 2), torch.zeros(4, 3, dtype=torch.long)),             # (N, C, ...) vs (N, ...)
    (torch.rand(4), torch.zeros(4, 2, 2, dtype=torch.long)),                # no shape fits
    (torch.rand(0, 3), torch.zeros(4, dtype=torch.long)),                   # no scores, 4 targets
    (torch.rand(4, 3), torch.zeros(0, dtype=torch.long)),                   # 4 scores, no targets
])
def test_multiclass_bad_label_input_raises_what_torchmetrics_raises(name, preds, target):
    assert _same(name, MC, preds, target) is None


@pytest.mark.parametrize("kind", ["binary", "multilabel"])
@pytest.mark.parametrize("name", ["accuracy", "f1", "confusion_matrix"])
def test_zero_one_label_predictions(kind, name):
    task = Task(kind, 2, "probs")
    y = torch.tensor([[0, 1], [1, 1], [0, 0], [1, 0]])
    if kind == "binary":
        y = y.flatten()
    preds = 1 - y
    preds.view(-1)[0] = y.view(-1)[0]
    assert _same(name, task, preds, y) is not None                # 0/1 labels are scored
    bad = preds.clone()
    bad.view(-1)[1] = 2
    assert _same(name, task, bad, y) is None                      # a 2 is refused, naming preds


@pytest.mark.parametrize("name", ["accuracy", "f1", "confusion_matrix"])
def test_binary_scores_with_extra_dimensions(name):
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(6, 3, generator=g)
    y = (torch.rand(6, 3, generator=g) > 0.5).long()
    assert _same(name, Task("binary", 2, "probs"), probs, y) is not None
    # float 0/1 targets, as torchmetrics' binary classes accept them
    assert _same(name, Task("binary", 2, "probs"), probs, y.float()) is not None


@pytest.mark.parametrize("name", ["accuracy", "precision_micro", "f1_weighted", "confusion_matrix"])
def test_multilabel_scores_with_extra_dimensions(name):
    g = torch.Generator().manual_seed(1)
    task = Task("multilabel", 3, "probs")
    probs = torch.rand(5, 3, 4, generator=g)
    y = (torch.rand(5, 3, 4, generator=g) > 0.5).long()
    assert _same(name, task, probs, y) is not None
    # a label count other than the task's
    assert _same(name, task, torch.rand(5, 4, generator=g), torch.zeros(5, 4, dtype=torch.long)) is None


# ---- compute before update, devices, processes ------------------------------------------------

@pytest.mark.parametrize("name, task, reference", [
    ("confusion_matrix", Task("binary", 2, "probs"), tc.BinaryConfusionMatrix),
    ("confusion_matrix", Task("multiclass", 3, "probs"), lambda: tc.MulticlassConfusionMatrix(3)),
    ("confusion_matrix", Task("multilabel", 3, "probs"), lambda: tc.MultilabelConfusionMatrix(3)),
    ("mse", Task("regression"), tm.MeanSquaredError),
    ("rmse", Task("regression"), lambda: tm.MeanSquaredError(squared=False)),
    ("mae", Task("regression"), tm.MeanAbsoluteError),
    ("r2", Task("regression"), tm.R2Score),
])
def test_compute_before_update_warns_as_torchmetrics_does(name, task, reference):
    def messages(metric):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                metric.compute()
            except ValueError:  # r2 needs two samples
                pass
        return [(w.category, str(w.message)) for w in caught], caught

    ours, _ = messages(MetricSet([name], task).metrics[name])
    theirs, _ = messages(reference())
    assert ours == theirs and len(ours) == 1


def test_to_and_reset_keep_the_states_on_the_device():
    meta = torch.device("meta")
    sets = [MetricSet(["accuracy", "f1_macro", "confusion_matrix"], Task("multiclass", 3, "logits")),
            MetricSet(["mse", "r2"], Task("regression"))]
    for ms in sets:
        ms.to(meta)
        assert {s.device for m in ms.metrics.values() for s in m.states.values()} == {meta}
        ms.reset()
        assert {s.device for m in ms.metrics.values() for s in m.states.values()} == {meta}


def test_states_are_summed_over_a_process_group(monkeypatch):
    """Under torch.distributed each process reports the value over every process's data. The
    process group is simulated: the other process's states come from a metric fed its share."""
    g = torch.Generator().manual_seed(2)
    cases = [(["accuracy", "f1_macro", "precision_weighted", "confusion_matrix"],
              Task("multiclass", 4, "logits"), torch.randn(30, 4, generator=g),
              torch.randint(0, 4, (30,), generator=g)),
             (["accuracy", "f1_micro"], Task("multilabel", 3, "logits"), torch.randn(30, 3, generator=g),
              (torch.rand(30, 3, generator=g) > 0.5).float()),
             (["mse", "mae", "r2"], Task("regression"), torch.randn(30, 1, generator=g),
              torch.randn(30, 1, generator=g))]
    prepared = []
    for names, task, out, y in cases:
        mine, other, whole = (MetricSet(names, task) for _ in range(3))
        mine.update(out[:12], y[:12])
        other.update(out[12:], y[12:])
        whole.update(out, y)
        prepared.append((mine, other, whole.compute()))

    contributions: list[torch.Tensor] = []

    def all_gather(tensors, tensor):
        assert len(tensors) == 2
        tensors[0].copy_(tensor)
        tensors[1].copy_(contributions.pop(0))

    monkeypatch.setattr(torch.distributed, "is_available", lambda: True)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda group=None: 2)
    monkeypatch.setattr(torch.distributed, "all_gather", all_gather)
    for mine, other, expected in prepared:
        for name in mine.metrics:
            contributions[:] = list(other.metrics[name].states.values())
            local = {k: v.clone() for k, v in mine.metrics[name].states.items()}
            got = _value(mine.metrics[name].compute())
            assert got == (expected[name] if isinstance(got, list) else pytest.approx(expected[name])), name
            assert not contributions
            # the local states are left as they were
            assert all(torch.equal(v, local[k]) for k, v in mine.metrics[name].states.items())
