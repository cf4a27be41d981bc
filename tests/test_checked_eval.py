"""nw.evaluate and nw.predict run fit's cheap checks on their first batch: the same finding codes
and error kinds, named by layer or by the targets, with expected, received and the fix; a
diverged model is still scored; check=False turns the checks off; predict pays nothing for them
while its forwards succeed."""

import pytest
import torch
import torch.nn as nn

import netwright as nw


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(16, 3))


def _codes(exc_info):
    return exc_info.value.report.codes


def test_evaluate_refuses_float_and_column_class_targets_like_fit():
    X = torch.rand(40, 20)
    labels = torch.randint(0, 3, (40,))
    with pytest.raises(nw.LossTargetError) as float_col:
        nw.evaluate(_net(), (X, labels.float()[:, None]), loss="cross_entropy")
    assert _codes(float_col) == ["NW104"]
    text = str(float_col.value)
    assert "float32 of shape (40, 1)" in text and "y = y.squeeze(1).long()" in text
    assert "evaluate(..., check=False)" in text and "before training" not in text
    with pytest.raises(nw.LossTargetError) as int_col:
        nw.evaluate(_net(), (X, labels[:, None]), loss="cross_entropy", metrics=["accuracy"])
    assert _codes(int_col) == ["NW105"]
    # fit raises the same code for the same mistake.
    with pytest.raises(nw.LossTargetError) as in_fit:
        nw.fit(_net(), (X, labels[:, None]), loss="cross_entropy", epochs=1, verbose=0)
    assert "NW105" in _codes(in_fit)


def test_evaluate_catches_a_silent_broadcast_that_would_give_a_wrong_score():
    X, y = torch.rand(30, 20), torch.rand(30)
    net = nn.Linear(20, 1)
    with pytest.warns(UserWarning, match="broadcasting"):
        wrong = nw.evaluate(net, (X, y), loss="mse", check=False)["loss"]  # (30, 1) vs (30,): 30x30
    with torch.no_grad():
        assert wrong == pytest.approx(float(((net(X) - y) ** 2).mean()))
    with pytest.raises(nw.LossTargetError) as exc:
        nw.evaluate(net, (X, y), loss="mse")
    assert _codes(exc) == ["NW131"]


def test_predict_names_the_layer_expected_and_received_features():
    with pytest.raises(nw.ModelSpecError) as exc:
        nw.predict(_net(), torch.rand(5, 19))
    assert _codes(exc) == ["NW201"]
    finding = exc.value.report.errors[0]
    assert finding.where == "0"
    assert "in_features=20" in finding.message and "its input has 19" in finding.message
    assert "predict(..., check=False)" in str(exc.value)
    # A layer further in, as evaluate reports it too.
    deep = nn.Sequential(nn.Linear(20, 16), nn.ReLU(), nn.Linear(15, 3))
    with pytest.raises(nw.ModelSpecError) as inner:
        nw.evaluate(deep, (torch.rand(5, 20), torch.zeros(5, dtype=torch.long)), loss="cross_entropy")
    assert _codes(inner) == ["NW203"] and inner.value.report.errors[0].where == "2"


def test_check_false_leaves_torch_errors_as_they_were():
    with pytest.raises(RuntimeError, match="mat1 and mat2"):
        nw.predict(_net(), torch.rand(5, 19), check=False)
    with pytest.raises(RuntimeError, match="multi-target|0D or 1D target"):
        nw.evaluate(_net(), (torch.rand(8, 20), torch.zeros(8, 1)), loss="cross_entropy", check=False)


def test_nan_inputs_and_targets_are_refused_with_the_row():
    X = torch.rand(10, 20)
    X[3, 7] = float("nan")
    with pytest.raises(nw.DataError) as exc:
        nw.predict(_net(), X)
    assert _codes(exc) == ["NW301"] and "the first at row 3" in str(exc.value)
    y = torch.rand(10, 3)
    y[4, 0] = float("inf")
    with pytest.raises(nw.DataError) as bad_y:
        nw.evaluate(_net(), (torch.rand(10, 20), y), loss="mse")
    assert _codes(bad_y) == ["NW302"]


def test_a_diverged_model_is_scored_not_refused():
    net = _net()
    with torch.no_grad():
        net[2].weight.fill_(float("nan"))  # fit's doctor would say NW209; evaluate must report nan
    res = nw.evaluate(net, (torch.rand(8, 20), torch.zeros(8, dtype=torch.long)), loss="cross_entropy")
    assert res["loss"] != res["loss"]
    assert torch.isnan(nw.predict(net, torch.rand(4, 20))).all()


class _Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(20, 3)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.lin(x)


def test_checks_cost_no_forward_in_predict_and_one_in_evaluate():
    X, y = torch.rand(50, 20), torch.randint(0, 3, (50,))
    net = _Counting()
    nw.predict(net, X, batch_size=10)
    assert net.calls == 5
    net.calls = 0
    nw.evaluate(net, (X, y), loss="cross_entropy", metrics=["accuracy"], batch_size=10)
    assert net.calls == 6  # the checked first batch also gives the metrics their task


def test_trainer_evaluate_and_predict_follow_its_check_setting():
    X, y = torch.rand(8, 20), torch.zeros(8, 1)
    checked = nw.Trainer(_net(), loss="cross_entropy", verbose=0)
    with pytest.raises(nw.LossTargetError):
        checked.evaluate((X, y))
    unchecked = nw.Trainer(_net(), loss="cross_entropy", verbose=0, check=False)
    with pytest.raises(RuntimeError, match="multi-target|0D or 1D target"):
        unchecked.evaluate((X, y))
