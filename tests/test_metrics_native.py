"""The plain metrics netwright computes itself (so that a one-off `netwright evaluate` does not
import torchmetrics) against the torchmetrics classes it used before, value for value.

Each case feeds the same prepared batches (MetricSet.prepare) to netwright's metric and to the
torchmetrics object built with the arguments netwright used to give it, and requires the same
float (==, not approx), the same confusion matrix, and for bad input the same exception type
and message."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest
import torch

from netwright.metrics import MetricSet, Task

tm = pytest.importorskip("torchmetrics")
from torchmetrics import classification as tc  # noqa: E402

BATCHES = (slice(0, 7), slice(7, 30), slice(30, None))  # uneven, so states are summed


def _reference(display: str, task: Task):
    """The torchmetrics object netwright built for ``display`` before it computed these itself."""
    base, average = display, None
    for avg in ("macro", "micro", "weighted"):
        if display.endswith("_" + avg):
            base, average = display[: -len(avg) - 1], avg
    if task.kind == "regression":
        return {"mse": tm.MeanSquaredError(), "rmse": tm.MeanSquaredError(squared=False),
                "mae": tm.MeanAbsoluteError(), "r2": tm.R2Score()}[base]
    if task.kind == "binary" and average is not None and base != "confusion_matrix":
        cls = {"accuracy": tc.MulticlassAccuracy, "precision": tc.MulticlassPrecision,
               "recall": tc.MulticlassRecall, "f1": tc.MulticlassF1Score}[base]
        metric = cls(num_classes=2, average=average)
        plain_update = metric.update

        def update(preds, target):
            preds = preds.reshape(-1)
            plain_update(torch.stack([1 - preds, preds], dim=1), target.reshape(-1))
        metric.update = update
        return metric
    kw = {"task": task.kind}
    if task.kind == "multiclass":
        kw["num_classes"] = task.classes
    elif task.kind == "multilabel":
        kw["num_labels"] = task.classes
    if base == "accuracy" and task.kind != "binary":
        kw["average"] = "micro"
    if base in ("precision", "recall", "f1") and task.kind != "binary":
        kw["average"] = "macro"
    if average is not None and task.kind != "binary":
        kw["average"] = average
    classes = {"accuracy": tm.Accuracy, "precision": tm.Precision, "recall": tm.Recall,
               "f1": tm.F1Score, "confusion_matrix": tm.ConfusionMatrix}
    return classes[base](**kw)


def _value(t: torch.Tensor):
    return float(t) if t.numel() == 1 else t.tolist()


def _compare(names, task, output, target, batches=BATCHES, device="cpu"):
    ms = MetricSet(names, task).to(torch.device(device))
    assert not any(type(m).__module__.startswith("torchmetrics") for m in ms.metrics.values())
    refs = {name: _reference(name, task).to(device) for name in names}
    output, target = output.to(device), target.to(device)
    for sl in batches:
        out, y = ms.prepare(output[sl], target[sl])
        for name in names:
            ms.metrics[name].update(out, y)
            refs[name].update(out, y)
    ours = {name: _value(ms.metrics[name].compute()) for name in names}
    theirs = {name: _value(refs[name].compute()) for name in names}
    assert ours == theirs
    return ours


STATS = ["accuracy", "precision", "recall", "f1"]
AVERAGED = [f"{m}_{a}" for m in STATS for a in ("macro", "micro", "weighted")]


def test_binary_logits_and_probabilities():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(50, 1, generator=g) * 2
    y = (torch.rand(50, 1, generator=g) > 0.4).float()
    names = STATS + AVERAGED + ["confusion_matrix"]
    got = _compare(names, Task("binary", 2, "logits"), logits, y)
    assert got["f1"] != got["f1_macro"]
    # probabilities that stray outside [0, 1] are taken as logits by torchmetrics: so here
    probs = torch.sigmoid(logits)
    probs[3] = 1.2
    _compare(names, Task("binary", 2, "probs"), probs, y)
    # integer targets, one-dimensional output
    _compare(names, Task("binary", 2, "probs"), torch.sigmoid(logits).reshape(-1), y.reshape(-1).long())


@pytest.mark.parametrize("deterministic", [False, True])
def test_multiclass_with_an_absent_class(deterministic):
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(60, 5, generator=g)
    logits[:, 4] = -10  # class 4 is never predicted and never the target: macro skips it
    y = torch.randint(0, 4, (60,), generator=g)
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(deterministic)
    try:
        got = _compare(STATS + AVERAGED + ["confusion_matrix"], Task("multiclass", 5, "logits"), logits, y)
    finally:
        torch.use_deterministic_algorithms(previous)
    assert len({got["f1"], got["f1_micro"], got["f1_weighted"]}) == 3


def test_multiclass_log_probs_soft_labels_and_extra_dims():
    g = torch.Generator().manual_seed(2)
    logp = torch.log_softmax(torch.randn(40, 3, generator=g), 1)
    soft = torch.softmax(torch.randn(40, 3, generator=g), 1)
    _compare(STATS + AVERAGED + ["confusion_matrix"], Task("multiclass", 3, "log_probs"), logp, soft)
    # (N, C, L) outputs with (N, L) targets: every position is a sample
    logits = torch.randn(40, 3, 4, generator=g)
    y = torch.randint(0, 3, (40, 4), generator=g)
    _compare(STATS + AVERAGED + ["confusion_matrix"], Task("multiclass", 3, "logits"), logits, y)


def test_multilabel():
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(45, 3, generator=g)
    y = (torch.rand(45, 3, generator=g) > 0.5).float()
    y[:, 2] = 0  # a label that is never on
    _compare(STATS + AVERAGED + ["confusion_matrix"], Task("multilabel", 3, "logits"), logits, y)


@pytest.mark.parametrize("width", [1, 2])
def test_regression(width):
    g = torch.Generator().manual_seed(4)
    pred = torch.randn(50, width, generator=g)
    y = pred * 0.7 + torch.randn(50, width, generator=g) * 0.5
    _compare(["mse", "rmse", "mae", "r2"], Task("regression"), pred, y)
    y[:, 0] = 3.0  # a constant target: torchmetrics' R² special cases
    _compare(["mse", "rmse", "mae", "r2"], Task("regression"), pred, y)
    _compare(["r2"], Task("regression"), y, y)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda():
    g = torch.Generator().manual_seed(5)
    every = STATS + AVERAGED + ["confusion_matrix"]
    logits = torch.randn(50, 1, generator=g) * 2
    y = (torch.rand(50, 1, generator=g) > 0.4).float()
    probs = torch.sigmoid(logits)
    probs[3] = 1.2  # outside [0, 1]: torchmetrics' device branch of the logits check
    _compare(every, Task("binary", 2, "probs"), probs, y, device="cuda")
    _compare(every, Task("multiclass", 5, "logits"), torch.randn(60, 5, generator=g),
             torch.randint(0, 4, (60,), generator=g), device="cuda")
    _compare(every, Task("multilabel", 3, "logits"), torch.randn(45, 3, generator=g),
             (torch.rand(45, 3, generator=g) > 0.5).float(), device="cuda")
    pred = torch.randn(50, 2, generator=g)
    _compare(["mse", "rmse", "mae", "r2"], Task("regression"), pred,
             pred + torch.randn(50, 2, generator=g), device="cuda")


def _error(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), info.value.args


@pytest.mark.parametrize("name, task, out, y", [
    ("accuracy", Task("binary", 2, "probs"), torch.rand(6), torch.tensor([0, 1, 2, 1, 0, 1])),
    ("confusion_matrix", Task("binary", 2, "probs"), torch.rand(6), torch.tensor([0, 1, 2, 1, 0, 1])),
    ("f1", Task("binary", 2, "probs"), torch.rand(6), torch.tensor([0, 1, 1])),
    ("accuracy", Task("multiclass", 3, "probs"), torch.rand(6, 4), torch.zeros(6, dtype=torch.long)),
    ("f1", Task("multiclass", 3, "probs"), torch.rand(6, 3, 2), torch.zeros(6, 3, dtype=torch.long)),
    ("confusion_matrix", Task("multiclass", 3, "probs"), torch.rand(6, 3), torch.zeros(5, 2, 2, dtype=torch.long)),
    ("precision", Task("multilabel", 3, "probs"), torch.rand(6, 3), torch.full((6, 3), 2)),
    ("mse", Task("regression"), torch.rand(6, 2), torch.rand(6, 3)),
    ("r2", Task("regression"), torch.rand(6, 2, 2), torch.rand(6, 2, 2)),
])
def test_bad_input_raises_what_torchmetrics_raised(name, task, out, y):
    ours, theirs = MetricSet([name], task).metrics[name], _reference(name, task)
    assert _error(lambda: ours.update(out, y)) == _error(lambda: theirs.update(out, y))


def test_r2_of_one_sample_and_compute_before_update():
    ours, theirs = MetricSet(["r2"], Task("regression")).metrics["r2"], tm.R2Score()
    ours.update(torch.ones(1), torch.zeros(1))
    theirs.update(torch.ones(1), torch.zeros(1))
    assert _error(ours.compute) == _error(theirs.compute)
    fresh = MetricSet(["accuracy"], Task("multiclass", 3, "logits")).metrics["accuracy"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert float(fresh.compute()) == 0.0
    assert any("MulticlassAccuracy was called before the ``update``" in str(w.message) for w in caught)


def test_options_beyond_average_and_auroc_stay_with_torchmetrics():
    ms = MetricSet(["auroc", {"name": "accuracy", "top_k": 2}, {"name": "precision", "average": "none"},
                    "f1"], Task("multiclass", 3, "logits"))
    kinds = {k: type(m).__module__.split(".")[0] for k, m in ms.metrics.items()}
    assert kinds == {"auroc": "torchmetrics", "accuracy": "torchmetrics",
                     "precision_none": "torchmetrics", "f1": "netwright"}


def test_plain_metrics_do_not_import_torchmetrics():
    code = ("import sys, torch\n"
            "from netwright.metrics import MetricSet, Task\n"
            "ms = MetricSet(['accuracy', 'f1_macro', 'confusion_matrix'], Task('multiclass', 3, 'logits'))\n"
            "ms.update(torch.randn(8, 3), torch.randint(0, 3, (8,)))\n"
            "ms.compute()\n"
            "ms = MetricSet(['mse', 'rmse', 'mae', 'r2'], Task('regression'))\n"
            "ms.update(torch.randn(8, 1), torch.randn(8, 1)); ms.compute()\n"
            "print(sorted(m for m in ('torchmetrics', 'scipy', 'matplotlib') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def _two_processes(rank: int, init: str, out: str) -> None:
    import json

    torch.distributed.init_process_group("gloo", init_method=init, rank=rank, world_size=2)
    try:
        g = torch.Generator().manual_seed(10 + rank)  # each process scores its own share
        logits, y = torch.randn(20 + 7 * rank, 4, generator=g), torch.randint(0, 4, (20 + 7 * rank,), generator=g)
        pred = torch.randn(15, 1, generator=g)
        results = {}
        for names, task, output, target in (
                (STATS + AVERAGED + ["confusion_matrix"], Task("multiclass", 4, "logits"), logits, y),
                (["mse", "rmse", "mae", "r2"], Task("regression"), pred, pred + torch.randn(15, 1, generator=g))):
            ms = MetricSet(names, task)
            for name in names:
                ref = _reference(name, task)
                out_, y_ = ms.prepare(output, target)
                ms.metrics[name].update(out_, y_)
                ref.update(out_, y_)
                results[name] = [_value(ms.metrics[name].compute()), _value(ref.compute())]
        with open(f"{out}.{rank}", "w") as f:
            json.dump(results, f)
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_states_are_summed_over_processes_as_torchmetrics_does(tmp_path):
    import json

    if not torch.distributed.is_available():
        pytest.skip("torch.distributed is not available")
    torch.multiprocessing.spawn(_two_processes, args=(f"file://{tmp_path / 'rendezvous'}",
                                                      str(tmp_path / "out")), nprocs=2)
    for rank in (0, 1):
        results = json.loads((tmp_path / f"out.{rank}").read_text())
        for name, (ours, theirs) in results.items():
            assert ours == theirs, name
    # the processes saw different data, yet report the same global value
    a, b = (json.loads((tmp_path / f"out.{r}").read_text()) for r in (0, 1))
    assert a == b
