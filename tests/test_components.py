"""Losses, optimizers, schedulers and metrics by name."""

import pytest
import torch
import torch.nn as nn

import netwright as nw
from netwright.losses import LOSSES, check_output_target, resolve_loss
from netwright.metrics import MetricSet, Task, infer_task
from netwright.optim import SCHEDULERS, build_optimizer, build_scheduler, param_groups


@pytest.mark.parametrize("name", LOSSES)
def test_every_named_loss_builds_and_computes(name):
    fn, info = resolve_loss(name)
    out = torch.randn(8, 3)
    if info.task == "multiclass":
        y = torch.randint(0, 3, (8,))
        if name == "nll":
            out = out.log_softmax(1)
    elif name == "bce":
        out, y = out.sigmoid(), torch.randint(0, 2, (8, 3)).float()
    elif info.task == "binary":
        y = torch.randint(0, 2, (8, 3)).float()
    else:
        y = torch.randn(8, 3)
    check_output_target(info, out, y)
    assert fn(out, y).ndim == 0


def test_loss_options_class_weights_and_label_smoothing():
    fn, _ = resolve_loss({"name": "cross_entropy", "weight": [1.0, 2.0, 3.0], "label_smoothing": 0.1})
    assert torch.equal(fn.weight, torch.tensor([1.0, 2.0, 3.0])) and fn.label_smoothing == 0.1
    fn, _ = resolve_loss({"name": "bce_with_logits", "pos_weight": [4.0]})
    assert float(fn.pos_weight) == 4.0


def test_loss_objects_and_callables():
    fn, info = resolve_loss(nn.CrossEntropyLoss(label_smoothing=0.2))
    assert info.name == "cross_entropy" and fn.label_smoothing == 0.2
    fn, info = resolve_loss(lambda o, t: ((o - t) ** 2).mean())
    assert info.task == "custom"


def test_class_weighted_cross_entropy_runs_three_epochs(blobs):
    X, y = blobs
    result = nw.fit(nn.Linear(2, 3), (X, y), loss={"name": "cross_entropy", "weight": [1, 1, 2]},
                    lr=0.05, epochs=3, verbose=0)
    assert len(result.history) == 3


def test_sgd_momentum_nesterov_and_other_optimizers():
    model = nn.Linear(3, 2)
    opt = build_optimizer({"name": "sgd", "momentum": 0.9, "nesterov": True}, model, lr=0.1)
    assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9
    for name, cls in [("adam", torch.optim.Adam), ("adamw", torch.optim.AdamW),
                      ("rmsprop", torch.optim.RMSprop)]:
        assert type(build_optimizer(name, model, lr=0.01)) is cls
    assert type(build_optimizer(torch.optim.Adagrad, model, lr=0.01)) is torch.optim.Adagrad
    given = torch.optim.SGD(model.parameters(), lr=0.3)
    assert build_optimizer(given, model, lr=0.01) is given


def test_weight_decay_exempts_biases_and_norm_weights():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    opt = build_optimizer("adamw", model, lr=0.01, weight_decay=0.1, decay_norm_and_bias=False)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model[0].weight), id(model[2].weight)}
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(model.parameters()))
    assert len(param_groups(model, 0.1, True)) == 1


def _lrs(spec, epochs=4, steps=5):
    model = nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    sched = build_scheduler(spec, opt, epochs=epochs, steps_per_epoch=steps)
    seen = []
    for _ in range(epochs):
        for _ in range(steps):
            seen.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step_batch() if sched.per_batch else None
        sched.step_epoch({"val_loss": 1.0})
    return sched, seen


def test_each_scheduler_steps_at_its_moment():
    s, lrs = _lrs({"name": "step", "step_size": 1, "gamma": 0.5})
    assert s.interval == "epoch" and lrs[0] == lrs[4] == 1.0 and lrs[5] == 0.5
    s, lrs = _lrs({"name": "multistep", "milestones": [2], "gamma": 0.1})
    assert lrs[9] == 1.0 and lrs[10] == pytest.approx(0.1)
    s, lrs = _lrs({"name": "exponential", "gamma": 0.9})
    assert lrs[5] == pytest.approx(0.9) and lrs[10] == pytest.approx(0.81)
    s, lrs = _lrs("cosine")
    assert lrs[0] == 1.0 and lrs[-1] < 0.2
    s, lrs = _lrs("onecycle")
    assert s.interval == "step" and len(set(lrs[:5])) == 5  # changes within the first epoch
    assert max(lrs) == pytest.approx(1.0, rel=1e-3)
    s, lrs = _lrs({"name": "reduce_on_plateau", "patience": 0})
    assert s.interval == "plateau" and lrs[-1] < 1.0


def test_linear_warmup_then_step_decay():
    _, lrs = _lrs({"name": "step", "step_size": 2, "gamma": 0.5, "warmup_steps": 4}, epochs=4)
    assert lrs[0] == pytest.approx(0.2) and lrs[3] == pytest.approx(0.8)
    assert lrs[4] == pytest.approx(1.0) and lrs[9] == pytest.approx(1.0)
    assert lrs[10] == pytest.approx(0.5)


def test_onecycle_total_steps_follow_accumulation(blobs):
    X, y = blobs  # 300 rows, batch 32 -> 10 batches, accumulate 3 -> 4 optimizer steps/epoch
    result = nw.fit(nn.Linear(2, 3), (X, y), loss="cross_entropy", epochs=2, accumulate=3,
                    scheduler="onecycle", lr=0.1, verbose=0)
    assert len(result.history) == 2  # torch raises if onecycle steps past total_steps


def test_metric_task_inference():
    _, ce = resolve_loss("cross_entropy")
    _, bce = resolve_loss("bce_with_logits")
    _, mse = resolve_loss("mse")
    assert infer_task(ce, torch.zeros(4, 5), torch.zeros(4)).kind == "multiclass"
    assert infer_task(bce, torch.zeros(4, 1), torch.zeros(4, 1)).kind == "binary"
    assert infer_task(bce, torch.zeros(4, 3), torch.zeros(4, 3)) == Task("multilabel", 3, "logits")
    assert infer_task(mse, torch.zeros(4, 1), torch.zeros(4, 1)).kind == "regression"
    assert infer_task(mse, torch.zeros(4, 1), torch.zeros(4, 1), task="binary").kind == "binary"
    custom, _ = resolve_loss(lambda o, t: (o - t).abs().mean())[1], None
    logits = torch.tensor([[2.0], [-1.0]])
    assert infer_task(custom, logits, torch.tensor([[1.0], [0.0]])) == Task("binary", 2, "logits")
    assert infer_task(custom, logits.sigmoid(), torch.tensor([[1.0], [0.0]])).output == "probs"
    assert infer_task(custom, torch.randn(2, 3), torch.tensor([0, 2])) == Task("multiclass", 3, "logits")
    assert infer_task(custom, torch.randn(2, 1), torch.randn(2, 1)).kind == "regression"


def test_all_classification_metrics_and_averages():
    ms = MetricSet(["accuracy", "precision", "recall", "f1", "f1_micro", "f1_weighted", "auroc",
                    "confusion_matrix", {"name": "recall", "average": "weighted"}],
                   Task("multiclass", 3, "logits"))
    logits = torch.tensor([[3.0, 0, 0], [0, 3.0, 0], [0, 0, 3.0], [3.0, 0, 0]])
    ms.update(logits, torch.tensor([0, 1, 2, 1]))
    res = ms.compute()
    assert res["accuracy"] == pytest.approx(0.75)
    assert res["confusion_matrix"] == [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    assert res["recall"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert res["recall_weighted"] == pytest.approx(0.75)
    assert 0 <= res["auroc"] <= 1


def test_binary_metrics_apply_sigmoid_to_logits_in_unit_range():
    # Logits that happen to lie in [0, 1] must still go through a sigmoid: 0.4 -> p=0.6 -> class 1.
    ms = MetricSet(["accuracy"], Task("binary", 2, "logits"))
    ms.update(torch.tensor([[0.4], [0.6], [-2.0]]), torch.tensor([[1.0], [1.0], [0.0]]))
    assert ms.compute()["accuracy"] == 1.0


def test_regression_metrics():
    ms = MetricSet(["mse", "mae", "rmse", "r2"], Task("regression"))
    ms.update(torch.tensor([[1.0], [2.0], [4.0]]), torch.tensor([[1.0], [3.0], [3.0]]))
    res = ms.compute()
    assert res["mse"] == pytest.approx(2 / 3) and res["mae"] == pytest.approx(2 / 3)
    assert res["rmse"] == pytest.approx((2 / 3) ** 0.5)
    assert res["r2"] == pytest.approx(1 - 2 / (24 / 9), abs=1e-5)  # SS_res = 2, SS_tot = 24/9


def test_all_named_schedulers_listed():
    assert set(SCHEDULERS) == {"step", "multistep", "exponential", "cosine", "onecycle", "reduce_on_plateau"}
