"""Behaviour the rest of the suite did not pin down, found by mutation testing (docs/testing.md).

Each test asserts what losses.py / metrics.py promise: the exact wording of an error and its
Fix, a boundary of a range check, which task is inferred. Fast: no training, no data sets.
"""

import pytest
import torch
import torch.nn as nn

from netwright.errors import ConfigError, LossTargetError
from netwright.losses import LOSSES, check_output_target, resolve_loss
from netwright.metrics import (CLASSIFICATION_METRICS, REGRESSION_METRICS, MetricSet, Task,
                               infer_task)

_, CE = resolve_loss("cross_entropy")
_, NLL = resolve_loss("nll")
_, BCE = resolve_loss("bce")
_, BCEL = resolve_loss("bce_with_logits")
_, MSE = resolve_loss("mse")


def _err(info, out, y, **kw) -> str:
    with pytest.raises(LossTargetError) as exc:
        check_output_target(info, out, y, **kw)
    return str(exc.value)


def _cfg(fn, *args) -> str:
    with pytest.raises(ConfigError) as exc:
        fn(*args)
    return str(exc.value)


# ---- losses.check_output_target -------------------------------------------------------------

def test_unchecked_cases_pass_anything():
    custom = resolve_loss(lambda o, t: o.sum())[1]
    check_output_target(custom, torch.zeros(3), torch.zeros(5, 2))       # unnamed loss
    check_output_target(MSE, [1.0, 2.0], torch.zeros(5, 2))              # output not a tensor
    check_output_target(MSE, torch.zeros(3), [1.0])                      # target not a tensor


def test_named_losses_are_checked_when_both_are_tensors():
    assert "element by element" in _err(MSE, torch.zeros(3), torch.zeros(5))
    assert "[0, 3)" in _err(CE, torch.zeros(2, 3), torch.tensor([0, 3]))


def test_multiclass_needs_a_score_per_class():
    msg = _err(CE, torch.zeros(4), torch.zeros(4, dtype=torch.long))
    assert msg == ("loss 'cross_entropy' expects the model to output one score per class, shape "
                   "(N, C); the model output float32 of shape (4,). Fix: end the model with a "
                   "layer of C outputs.")


def test_soft_labels_only_for_cross_entropy():
    check_output_target(CE, torch.zeros(4, 3), torch.full((4, 3), 1 / 3))  # accepted
    msg = _err(NLL, torch.zeros(4, 3), torch.full((4, 3), 1 / 3))
    assert msg == ("loss 'nll' expects targets as class indices: an integer tensor of shape (N,) "
                   "with values in [0, C); received float32 of shape (4, 3) while the model "
                   "outputs float32 of shape (4, 3). Fix: pass class indices, y = y.long().")


def test_float_class_targets_get_the_right_fix():
    msg = _err(CE, torch.zeros(4, 3), torch.zeros(4, 1))
    assert msg.endswith("received float32 of shape (4, 1) while the model outputs float32 of "
                        "shape (4, 3). Fix: pass class indices, y = y.squeeze(1).long().")
    assert _err(CE, torch.zeros(4, 3), torch.zeros(4)).endswith("Fix: pass class indices, y = y.long().")
    assert _err(CE, torch.zeros(4, 3), torch.zeros(4, 2)).endswith("y = y.long().")
    assert _err(CE, torch.zeros(4, 3, 5), torch.zeros(4, 1, 5)).endswith("y = y.long().")


def test_integer_column_targets():
    msg = _err(CE, torch.zeros(4, 3), torch.zeros(4, 1, dtype=torch.long))
    assert msg == ("loss 'cross_entropy' expects targets as class indices: an integer tensor of "
                   "shape (N,) with values in [0, C); or class probabilities of the output's "
                   "shape (N, C); received int64 of shape (4, 1): a column, not a vector. "
                   "Fix: y = y.squeeze(1).")
    # (N, C, d) with integer (N, d) targets, and a one-output model, are not the column case
    check_output_target(CE, torch.zeros(4, 3, 1), torch.zeros(4, 1, dtype=torch.long))
    with pytest.raises(LossTargetError, match="must lie in"):
        check_output_target(CE, torch.zeros(4, 1), torch.ones(4, 1, dtype=torch.long))
    check_output_target(CE, torch.zeros(4, 2, 5), torch.ones(4, 2, dtype=torch.long))


def test_batch_size_mismatch():
    msg = _err(CE, torch.zeros(4, 3), torch.zeros(5, dtype=torch.long))
    assert msg == ("loss 'cross_entropy': the batch has 4 outputs but 5 targets. "
                   "Fix: give one target per sample.")


def test_label_range_and_ignore_index():
    ok = torch.zeros(3, 4)
    check_output_target(CE, ok, torch.tensor([0, 3, -100]))
    check_output_target(CE, ok, torch.tensor([-100, -100, -100]))
    check_output_target(CE, ok, torch.tensor([0, 1, 7]), ignore_index=7)
    assert "from -1 to 2" in _err(CE, ok, torch.tensor([-1, 2, 2]))
    msg = _err(CE, ok, torch.tensor([0, 1, 4]))
    assert msg == ("loss 'cross_entropy': class targets must lie in [0, 4) for a model with 4 "
                   "outputs; the batch has labels from 0 to 4. Fix: map labels to 0..C-1, or "
                   "give the last layer 5 outputs.")


@pytest.mark.parametrize("out_shape, y_shape, hint", [
    ((4, 1), (4,), " Fix: give targets of shape (N, 1), y = y.unsqueeze(1), or flatten the output."),
    ((4,), (4, 1), " Fix: flatten the targets, y = y.squeeze(-1)."),
    ((4, 2), (4,), " Fix: make the last layer output one value per target."),
    ((4, 3, 1), (4, 2), " Fix: give targets of shape (N, 1), y = y.unsqueeze(1), or flatten the output."),
    ((4, 1, 2), (4, 2), " Fix: make the last layer output one value per target."),
    ((4, 2), (4, 1, 2), " Fix: make the last layer output one value per target."),
    ((4, 2), (4, 2, 2), " Fix: make the last layer output one value per target."),
    ((4, 2), (4, 1, 1), " Fix: flatten the targets, y = y.squeeze(-1)."),
    ((4, 1, 2), (4,), " Fix: make the last layer output one value per target."),
    ((4, 1), (4, 1, 1), " Fix: flatten the targets, y = y.squeeze(-1)."),
])
def test_elementwise_shape_hints(out_shape, y_shape, hint):
    msg = _err(MSE, torch.zeros(out_shape), torch.zeros(y_shape))
    assert msg == ("loss 'mse' compares output and target element by element, so their shapes "
                   f"must be equal; the model output float32 of shape {out_shape} and the targets "
                   f"are float32 of shape {y_shape}.{hint}")


def test_elementwise_integer_targets():
    msg = _err(MSE, torch.zeros(4), torch.zeros(4, dtype=torch.long))
    assert msg == ("loss 'mse' expects floats of the output's shape; received int64 of shape "
                   "(4,). Fix: y = y.float().")


def test_binary_target_and_output_ranges():
    check_output_target(BCE, torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]))   # edges are fine
    check_output_target(BCEL, torch.tensor([-5.0, 5.0]), torch.tensor([0.0, 1.0]))
    check_output_target(MSE, torch.tensor([-5.0, 5.0]), torch.tensor([-2.0, 2.0]))  # not binary
    msg = _err(BCEL, torch.zeros(2), torch.tensor([0.0, 2.0]))
    assert msg == ("loss 'bce_with_logits' expects targets in [0, 1]; the batch has values from "
                   "0 to 2. Fix: binary labels must be 0 or 1.")
    assert "from -1 to 1." in _err(BCEL, torch.zeros(2), torch.tensor([-1.0, 1.0]))
    assert "from 0 to 1.5." in _err(BCEL, torch.zeros(2), torch.tensor([0.0, 1.5]))
    msg = _err(BCE, torch.tensor([0.5, 1.5]), torch.tensor([0.0, 1.0]))
    assert msg == ("loss 'bce' expects probabilities in [0, 1]; the model output values from "
                   "0.5 to 1.5. Fix: use loss 'bce_with_logits' on the raw outputs (more stable "
                   "than adding a sigmoid).")
    assert "values from -0.5 to 0.5." in _err(BCE, torch.tensor([-0.5, 0.5]), torch.tensor([0.0, 1.0]))


# ---- losses.resolve_loss --------------------------------------------------------------------

def test_resolve_loss_errors_name_the_choices():
    names = ", ".join(LOSSES)
    msg = _cfg(resolve_loss, {"weight": [1.0]})
    assert msg == (f"loss: a mapping needs a 'name' key; received keys ['weight']. "
                   f"Fix: {{'name': 'cross_entropy', ...}}; names: {names}.")
    msg = _cfg(resolve_loss, "cross_entrop")
    assert msg == (f"loss: unknown name 'cross_entrop'. Did you mean 'cross_entropy'? "
                   f"Expected one of: {names}; or pass any callable(output, target).")
    msg = _cfg(resolve_loss, 3)
    assert msg == (f"loss: expected a name ({names}), a mapping with 'name', an nn.Module or a "
                   f"callable(output, target); received int.")
    assert "option 'pos_weight'" in _cfg(resolve_loss, {"name": "bce_with_logits", "pos_weight": "x"})
    assert "loss 'bce_with_logits' option" in _cfg(resolve_loss, {"name": "bce-with-logits", "weight": "x"})


def test_resolve_loss_spellings_and_objects():
    assert resolve_loss("Smooth-L1")[1].name == "smooth_l1"
    fn, info = resolve_loss(nn.MSELoss)               # a class is instantiated
    assert isinstance(fn, nn.MSELoss) and info.name == "mse"

    class MyLoss(nn.Module):
        def forward(self, o, t):
            return o.sum()

    fn, info = resolve_loss(MyLoss)                   # an unknown module class: custom
    assert isinstance(fn, MyLoss) and info.task == "custom" and info.name == "MyLoss"

    def my_loss(o, t):
        return o.sum()

    fn, info = resolve_loss(my_loss)
    assert fn is my_loss
    assert (info.name, info.task, info.output, info.target) == (
        "my_loss", "custom", "values", "whatever the callable expects")


# ---- metrics --------------------------------------------------------------------------------

def test_infer_task_error_and_regression():
    msg = _cfg(infer_task, CE, torch.zeros(2, 3), None, "multiclas")
    assert msg == ("task: expected one of binary, multiclass, multilabel, regression, received "
                   "'multiclas'. Did you mean 'multiclass'?")
    assert infer_task(MSE, torch.zeros(4, 1), torch.zeros(4, 1)) == Task("regression", 0, "values")
    assert infer_task(BCEL, torch.zeros(4), torch.zeros(4)) == Task("binary", 2, "logits")
    assert infer_task(BCEL, torch.zeros(4, 1), torch.zeros(4, 1)) == Task("binary", 2, "logits")
    assert infer_task(BCEL, torch.zeros(4, 3), torch.zeros(4, 3)) == Task("multilabel", 3, "logits")


def test_infer_task_for_an_unnamed_loss():
    custom = resolve_loss(lambda o, t: o.sum())[1]
    probs = torch.tensor([[0.0, 1.0], [0.5, 0.5]])
    labels = torch.tensor([1, 0])
    assert infer_task(custom, probs, labels) == Task("multiclass", 2, "probs")
    assert infer_task(custom, torch.tensor([[0.2, 0.2], [0.5, 0.5]]), labels) == \
        Task("multiclass", 2, "logits")                       # in [0, 1] but rows do not sum to 1
    assert infer_task(custom, torch.tensor([[2.0, -1.0], [0.5, 0.5]]), labels).output == "logits"
    assert infer_task(custom, torch.tensor([[1.0, 0.0, 0.0]]), torch.tensor([0])) == \
        Task("multiclass", 3, "probs")
    # one output column with integer targets is not multiclass
    assert infer_task(custom, torch.zeros(4, 1), torch.zeros(4, 1, dtype=torch.long)).kind != "multiclass"
    ones = torch.tensor([0.0, 1.0, 1.0])
    assert infer_task(custom, torch.tensor([0.0, 1.0, 1.0]), ones) == Task("binary", 2, "probs")
    assert infer_task(custom, torch.tensor([0.0, 1.5, 1.0]), ones) == Task("binary", 2, "logits")
    assert infer_task(custom, torch.tensor([-0.5, 1.0, 1.0]), ones) == Task("binary", 2, "logits")
    assert infer_task(custom, torch.zeros(3, 1), ones.reshape(3, 1)).kind == "binary"
    assert infer_task(custom, torch.zeros(3, 2), torch.ones(3, 2)) == Task("multilabel", 2, "probs")
    assert infer_task(custom, torch.zeros(3), torch.tensor([0.0, 0.5, 1.0])).kind == "regression"


def test_a_task_set_by_hand_over_values_reads_the_output_range():
    assert infer_task(MSE, torch.tensor([0.0, 1.0]), None, "binary") == Task("binary", 2, "probs")
    assert infer_task(MSE, torch.tensor([0.5, 1.5]), None, "binary") == Task("binary", 2, "logits")
    assert infer_task(MSE, torch.tensor([-0.5, 0.5]), None, "binary") == Task("binary", 2, "logits")
    assert infer_task(CE, torch.zeros(2, 3), None, "multilabel") == Task("multilabel", 3, "logits")


def test_metric_name_errors():
    multi = Task("multiclass", 3, "logits")
    reg = Task("regression", 0, "values")
    assert _cfg(MetricSet, ["mse"], multi) == (
        f"metrics: 'mse' is a regression metric but this run's task is multiclass. "
        f"Fix: use {', '.join(CLASSIFICATION_METRICS)}; or set task='regression'.")
    assert _cfg(MetricSet, ["f1"], reg) == (
        f"metrics: 'f1' is a classification metric but this run's task is regression (a "
        f"regression loss, or float targets). Fix: use {', '.join(REGRESSION_METRICS)}; or set "
        f"task='binary'/'multiclass' with a classification loss.")
    known = ", ".join(CLASSIFICATION_METRICS + REGRESSION_METRICS)
    assert _cfg(MetricSet, ["acuracy"], multi) == (
        f"metrics: unknown name 'acuracy'. Did you mean 'accuracy'? Expected one of: {known} "
        f"(precision/recall/f1 take _macro, _micro or _weighted).")
    assert _cfg(MetricSet, [{"name": "f1", "average": "mean"}], multi) == (
        "metrics: 'f1_mean': average must be one of macro, micro, weighted; received 'mean'.")
    assert _cfg(MetricSet, [{"average": "macro"}], multi) == (
        "metrics: a mapping needs a 'name' key; received ['average'].")
    assert _cfg(MetricSet, ["auroc_micro"], multi) == (
        "metrics: auroc has no 'micro' average for multiclass. Fix: macro or weighted.")
    assert _cfg(MetricSet, ["auroc_micro"], Task("binary", 2, "logits")) == (
        "metrics: 'auroc_micro': auroc has no 'micro' average. Fix: macro or weighted.")
    assert "metrics: 'f1_macro' with options" in _cfg(
        MetricSet, [{"name": "f1", "average": "macro", "bogus": 1}], Task("binary", 2, "logits"))
    assert "metrics: 'f1_macro' with options" in _cfg(
        MetricSet, [{"name": "f1", "average": "macro", "bogus": 1}], multi)
    MetricSet([{"name": "precision", "average": "none"}], multi)          # 'none' is allowed
    MetricSet(["auroc_micro"], Task("multilabel", 3, "logits"))           # micro is fine there


def test_averages_are_the_documented_ones():
    multi = Task("multiclass", 3, "probs")
    out = torch.eye(3)[[0, 0, 0, 0, 1, 2]]
    y = torch.tensor([0, 0, 0, 0, 2, 1])
    ms = MetricSet(["accuracy", "f1", "precision", "recall"], multi)
    ms.update(out, y)
    r = ms.compute()
    assert r["accuracy"] == pytest.approx(4 / 6)                          # micro, not macro (1/3)
    assert r["f1"] == pytest.approx(1 / 3)                                # macro
    # a named average on a binary run: averaged over both classes
    p = torch.tensor([0.9, 0.9, 0.9, 0.1])
    t = torch.tensor([1, 1, 0, 0])
    ms = MetricSet(["accuracy_macro", "recall_macro", "auroc_macro", "confusion_matrix",
                    "precision"], Task("binary", 2, "probs"))
    assert list(ms.metrics) == ["accuracy_macro", "recall_macro", "auroc_macro",
                                "confusion_matrix", "precision"]
    ms.update(p, t)
    r = ms.compute()
    assert r["accuracy_macro"] == pytest.approx(0.75) and r["recall_macro"] == pytest.approx(0.75)
    assert r["auroc_macro"] == pytest.approx(0.75)
    assert r["confusion_matrix"] == [[1, 1], [0, 2]] and r["precision"] == pytest.approx(2 / 3)
    ms = MetricSet([{"name": "confusion_matrix", "average": "macro"}], Task("binary", 2, "probs"))
    ms.update(p, t)
    assert ms.compute() == {"confusion_matrix_macro": [[1, 1], [0, 2]]}


def test_rmse_is_the_root():
    ms = MetricSet(["rmse", "mse"], Task("regression", 0, "values"))
    ms.update(torch.tensor([0.0, 0.0]), torch.tensor([3.0, 3.0]))
    assert ms.compute() == {"rmse": pytest.approx(3.0), "mse": pytest.approx(9.0)}
    assert MetricSet("mae", Task("regression")).metrics.keys() == {"mae"}


def test_prepare_maps_outputs_and_targets():
    reg = MetricSet(None, Task("regression", 0, "values"))
    out, y = reg.prepare(torch.tensor([[1.0], [2.0]]), torch.tensor([1, 2]))
    assert out.shape == (2,) and y.dtype == torch.float32
    out, _ = reg.prepare(torch.zeros(2, 3), torch.zeros(3, 2))
    assert out.shape == (3, 2)
    out, _ = reg.prepare(torch.zeros(2, 2), torch.zeros(2, 2, 1))
    assert out.shape == (2, 2, 1)
    out, _ = reg.prepare(torch.zeros(2, 3), torch.zeros(2, 2))
    assert out.shape == (2, 3)

    lp = MetricSet(None, Task("multiclass", 3, "log_probs"))
    out, y = lp.prepare(torch.log(torch.tensor([[0.2, 0.3, 0.5]])), torch.tensor([[0.1, 0.7, 0.2]]))
    assert torch.allclose(out, torch.tensor([[0.2, 0.3, 0.5]])) and y.tolist() == [1]
    out, y = lp.prepare(torch.zeros(2, 3), torch.tensor([[2], [1]]))
    assert y.tolist() == [2, 1]
    out, y = lp.prepare(torch.zeros(2, 3, 1), torch.tensor([[2], [1]]))
    assert y.tolist() == [[2], [1]]
    out, y = lp.prepare(torch.zeros(2, 1, 4), torch.ones(2, 1, 4, dtype=torch.long))
    assert y.shape == (2, 4)
    out, y = lp.prepare(torch.zeros(2, 3, 4), torch.ones(2, 1, 4, dtype=torch.long))
    assert y.shape == (2, 4)
    out, y = lp.prepare(torch.zeros(2, 3, 4), torch.ones(2, 3, 4) / 3)
    assert y.shape == (2, 4)
    out, y = lp.prepare(torch.zeros(2, 3), torch.tensor([0.0, 2.0]))
    assert y.tolist() == [0, 2]

    b = MetricSet(None, Task("binary", 2, "probs"))
    out, y = b.prepare(torch.tensor([[0.2], [0.8], [0.4]]), torch.tensor([[0.5], [0.51], [1.0]]))
    assert out.tolist() == pytest.approx([0.2, 0.8, 0.4]) and y.tolist() == [0, 1, 1]
    ml = MetricSet(None, Task("multilabel", 2, "logits"))
    out, y = ml.prepare(torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))
    assert out.tolist() == [[0.5, 0.5]] and y.tolist() == [[0, 1]]


def test_compute_returns_lists_for_vectors():
    ms = MetricSet([{"name": "precision", "average": "none"}], Task("multiclass", 2, "probs"))
    ms.update(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    assert ms.compute() == {"precision_none": [1.0, 1.0]}
    assert ms.to(torch.device("cpu")) is ms


# ---- second round: survivors of the first re-run --------------------------------------------

def test_bad_loss_keyword_names_the_torch_class():
    msg = _cfg(resolve_loss, {"name": "mse", "bogus": 1})
    assert msg.startswith("loss 'mse': ") and "bogus" in msg
    assert msg.endswith("Fix: use the keyword arguments of torch.nn.MSELoss.")


def test_rmse_passes_its_options_on():
    ms = MetricSet([{"name": "rmse", "num_outputs": 2}], Task("regression", 0, "values"))
    ms.update(torch.zeros(2, 2), torch.tensor([[3.0, 4.0], [3.0, 4.0]]))
    assert ms.compute() == {"rmse": pytest.approx([3.0, 4.0])}


def test_a_mapping_without_average_keeps_its_plain_name():
    ms = MetricSet([{"name": "accuracy"}, {"name": "f1", "average": "weighted"}],
                   Task("multiclass", 3, "logits"))
    assert list(ms.metrics) == ["accuracy", "f1_weighted"]


def test_one_dimensional_output_with_integer_targets_is_not_multiclass():
    custom = resolve_loss(lambda o, t: o.sum())[1]
    assert infer_task(custom, torch.zeros(4), torch.zeros(4, dtype=torch.long)).kind == "regression"
    # a task set by hand over a 1-D output has one "class" column
    assert infer_task(MSE, torch.zeros(4), None, "multilabel") == Task("multilabel", 1, "probs")


def test_probability_rows_are_recognised_when_batch_and_classes_differ():
    custom = resolve_loss(lambda o, t: o.sum())[1]
    probs = torch.tensor([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]])
    assert infer_task(custom, probs, torch.tensor([2, 0])) == Task("multiclass", 3, "probs")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)    # a user's float64 default must not break the check
    try:
        assert infer_task(custom, probs.float(), torch.tensor([2, 0])) == Task("multiclass", 3, "probs")
    finally:
        torch.set_default_dtype(previous)


def test_integer_binary_targets_keep_ignore_index():
    ms = MetricSet([{"name": "accuracy", "ignore_index": -1}], Task("binary", 2, "probs"))
    ms.update(torch.tensor([0.9, 0.1, 0.9]), torch.tensor([1, 0, -1]))
    assert ms.compute()["accuracy"] == pytest.approx(1.0)


def test_to_moves_every_metric():
    ms = MetricSet(["mse", "mae"], Task("regression", 0, "values"))
    ms.to(torch.device("meta"))
    assert {m.device.type for m in ms.metrics.values()} == {"meta"}


# ---- training/step.py -----------------------------------------------------------------------

from netwright.training.step import StepContext, make_clipper, train_step  # noqa: E402


@pytest.mark.parametrize("bad", [0, 0.0, -1.0, {"norm": 0}, {"norm": -1.0}, {"value": 0},
                                 {"value": -0.5}, ["norm"], {"norm": 1.0, "value": 1.0}, {}, True])
def test_clip_grad_must_be_positive_and_one_kind(bad):
    msg = _cfg(make_clipper, bad)
    assert msg == ("clip_grad: expected a positive max norm (1.0), {'norm': 1.0} or "
                   f"{{'value': 0.5}}; received {bad!r}." if not isinstance(bad, (int, float))
                   or isinstance(bad, bool) else
                   "clip_grad: expected a positive max norm (1.0), {'norm': 1.0} or "
                   f"{{'value': 0.5}}; received {{'norm': {float(bad)!r}}}.")


def _clipped(spec):
    p = nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    make_clipper(spec)([p])
    return p.grad.tolist()


def test_clip_grad_norm_type_and_value():
    assert _clipped({"norm": 1.0}) == pytest.approx([0.6, 0.8])                       # 2-norm 5
    assert _clipped({"norm": 1.0, "norm_type": float("inf")}) == pytest.approx([0.75, 1.0])
    assert _clipped({"norm": 1.0, "norm_type": 1}) == pytest.approx([3 / 7, 4 / 7])
    assert _clipped({"value": 3.5}) == pytest.approx([3.0, 3.5])


@pytest.mark.parametrize("scale", [2.0, 0.5])
def test_train_step_scales_the_gradients_but_returns_the_unscaled_loss(scale):
    def grads(s):
        model = nn.Linear(1, 1, bias=False)
        nn.init.constant_(model.weight, 1.0)
        ctx = StepContext(model, nn.MSELoss(), torch.optim.SGD(model.parameters(), lr=0.1))
        loss = train_step(ctx, torch.ones(2, 1), torch.zeros(2, 1), scale=s, step=False)
        return float(loss), float(model.weight.grad)

    (loss1, g1), (loss_s, g_s) = grads(1.0), grads(scale)
    assert loss1 == loss_s == 1.0 and g1 == 2.0 and g_s == pytest.approx(2.0 * scale)
