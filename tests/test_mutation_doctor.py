"""The doctor's core (netwright.diagnosis.report and .api) checked for what docs/doctor.md and
the docstrings promise: the report's counts, text, JSON and table, the error it raises and the
kind it is, and which findings check_batch, preflight and doctor return for the arguments they
are given. Written for the mutation-testing measurement (issue 21, docs/testing.md)."""

from __future__ import annotations

import json
import pickle
import random

import numpy as np
import pytest
import torch
import torch.nn as nn

import netwright as nw
from netwright.diagnosis import CODES, DoctorError, Finding, Report, check_batch, doctor, preflight
from netwright.diagnosis.report import error_line, finding, listed, num
from netwright.errors import ConfigError, DataError, LossTargetError, ModelSpecError, NetwrightError
from netwright.losses import resolve_loss

# --- Finding ---------------------------------------------------------------------------------


def test_a_finding_reads_as_severity_code_where_message_and_fix():
    assert str(Finding("NW105", "error", "a column", "squeeze it", "targets")) == \
        "error NW105 [targets]: a column Fix: squeeze it"
    assert str(Finding("NW303", "info", "constant")) == "info NW303: constant"
    assert str(Finding("NW303", "info", "constant", where="inputs")) == "info NW303 [inputs]: constant"
    assert str(Finding("NW303", "info", "constant", "drop it")) == "info NW303: constant Fix: drop it"


def test_a_finding_as_a_dict_holds_every_field():
    f = Finding("NW105", "error", "m", "f", "targets")
    assert f.to_dict() == {"code": "NW105", "severity": "error", "message": "m", "fix": "f",
                           "where": "targets"}
    assert Finding("NW303", "info", "m").to_dict() == {"code": "NW303", "severity": "info",
                                                       "message": "m", "fix": "", "where": None}


def test_finding_takes_the_severity_of_its_code():
    for code in ("NW101", "NW104", "NW192", "NW206", "NW301", "NW505"):
        f = finding(code, "msg", "fix", "here")
        assert (f.code, f.severity, f.message, f.fix, f.where) == (code, CODES[code][0], "msg",
                                                                   "fix", "here")
    assert finding("NW303", "m") == Finding("NW303", "info", "m", "", None)


# --- Report: counts, JSON, text ---------------------------------------------------------------


E1 = Finding("NW104", "error", "float class targets", "y.long()", "targets")
E2 = Finding("NW201", "error", "Linear wants 20", "", "fc")
W1 = Finding("NW101", "warning", "double softmax", "return logits", "output")
W2 = Finding("NW305", "warning", "inputs far from unit scale", "standardise", None)
I1 = Finding("NW303", "info", "column 3 is constant", "drop it", "inputs")


def test_report_sorts_its_findings_into_errors_warnings_and_infos():
    r = Report([I1, W1, E1, W2, E2])
    assert r.errors == [E1, E2] and r.warnings == [W1, W2] and r.infos == [I1]
    assert r.codes == ["NW303", "NW101", "NW104", "NW305", "NW201"]
    assert not r.ok and Report([W1, I1]).ok and Report().ok


def test_sorted_puts_errors_first_then_warnings_then_infos_keeping_their_order():
    odd = Finding("NW999", "note", "unknown severity")
    r = Report([I1, odd, W1, E1, W2, E2]).sorted()
    assert isinstance(r, Report)
    assert list(r) == [E1, E2, W1, W2, I1, odd]


def test_report_to_dict_and_json_count_each_severity():
    r = Report([E1, W1, W2, I1])
    d = r.to_dict()
    assert d == {"ok": False, "errors": 1, "warnings": 2, "infos": 1,
                 "findings": [f.to_dict() for f in r]}
    assert json.loads(r.to_json()) == d
    assert r.to_json() == json.dumps(d, indent=2)
    assert r.to_json(indent=None) == json.dumps(d)
    assert json.loads(Report().to_json()) == {"ok": True, "errors": 0, "warnings": 0, "infos": 0,
                                              "findings": []}


def test_summary_counts_in_words():
    assert Report([E1, W1, I1]).summary() == "1 error, 1 warning, 1 info"
    assert Report([E1, E2, W1, W2, I1, I1]).summary() == "2 errors, 2 warnings, 2 info"
    assert Report().summary() == "0 errors, 0 warnings, 0 info"


def test_repr_names_the_counts_and_the_codes():
    assert repr(Report([E1, I1])) == "Report(1 error, 0 warnings, 1 info: NW104, NW303)"
    assert repr(Report()) == "Report(0 errors, 0 warnings, 0 info: no findings)"


def test_str_is_a_plain_table_with_a_header_and_one_row_per_finding():
    r = Report([E1, W2, I1])
    lines = str(r).splitlines()
    assert lines[0] == "netwright doctor: 1 error, 1 warning, 1 info"
    assert lines[1] == "severity  code   where    finding"  # where: as wide as "targets"
    assert lines[2] == "-" * (len(lines[1]) + 40)
    assert lines[3] == "error     NW104  targets  float class targets"
    assert lines[4] == " " * 26 + "Fix: y.long()"
    assert lines[5] == "warning   NW305           inputs far from unit scale"
    assert lines[6] == " " * 26 + "Fix: standardise"
    assert lines[7] == "info      NW303  inputs   column 3 is constant"
    assert lines[8] == " " * 26 + "Fix: drop it"
    assert len(lines) == 9
    assert str(Report()) == "netwright doctor: no findings."


def test_str_where_column_is_at_least_5_and_at_most_24_wide():
    short = str(Report([Finding("NW303", "info", "m", "", "x")])).splitlines()
    assert short[1] == "severity  code   where  finding" and short[3] == "info      NW303  x      m"
    none = str(Report([Finding("NW303", "info", "m")])).splitlines()
    assert none[1] == "severity  code   where  finding" and none[3] == "info      NW303         m"
    where = "layers.block.0.conv.weight_and_more"  # 35 characters
    long = str(Report([Finding("NW201", "error", "m", "", where)])).splitlines()
    assert long[1] == "severity  code   " + "where".ljust(24) + "  finding"
    assert long[3] == "error     NW201  " + where[:23] + "…  m"
    exact = "x" * 24
    assert str(Report([Finding("NW201", "error", "m", "", exact)])).splitlines()[3] == \
        "error     NW201  " + exact + "  m"


def test_str_wraps_long_messages_under_the_finding_column():
    message = " ".join(["word"] * 40)  # 199 characters
    r = Report([Finding("NW201", "error", message, "do this", "fc")])
    lines = str(r).splitlines()
    indent = 8 + 2 + 5 + 2 + 5 + 2
    assert lines[2] == "-" * min(100, len(lines[1]) + 40)
    body = lines[3:]
    assert body[0].startswith("error     NW201  fc     word")
    assert all(line.startswith(" " * indent) for line in body[1:])
    assert all(len(line) <= 100 for line in lines)
    assert max(len(line) for line in body) > 90  # filled to the width, not wrapped early
    text = " ".join(line[indent:].strip() for line in body)
    assert text == message + " Fix: do this"


def test_str_of_a_finding_with_an_empty_message():
    lines = str(Report([Finding("NW303", "info", "", "", "x")])).splitlines()
    assert lines[3] == "info      NW303  x      " and len(lines) == 4


def test_to_table_has_the_five_columns_and_a_row_per_finding():
    table = Report([E1, W2, I1]).to_table()
    assert table.title == "netwright doctor: 1 error, 1 warning, 1 info"
    assert [c.header for c in table.columns] == ["severity", "code", "where", "finding", "fix"]
    cells = [list(c._cells) for c in table.columns]
    assert cells[0] == ["[bold red]error[/]", "[yellow]warning[/]", "[cyan]info[/]"]
    assert cells[1] == ["NW104", "NW305", "NW303"]
    assert cells[2] == ["targets", "", "inputs"]
    assert cells[3] == [E1.message, W2.message, I1.message]
    assert cells[4] == ["y.long()", "standardise", "drop it"]
    assert table.show_lines and all(c.overflow == "fold" for c in table.columns)


# --- the error: its text and its kind ----------------------------------------------------------


def test_error_text_lists_errors_then_warnings_and_says_how_to_skip():
    r = Report([I1, W2, E1, E2])
    assert r.error_text() == "\n".join([
        "netwright doctor found 2 errors, 1 warning, 1 info before training:",
        "  NW104 error [targets]: float class targets Fix: y.long()",
        "  NW201 error [fc]: Linear wants 20",
        "  NW305 warning [-]: inputs far from unit scale Fix: standardise",
        "(Each code is explained in docs/doctor.md; fit(..., check=False) skips these checks.)"])
    r.stage = "evaluate"
    assert r.error_text().splitlines()[0] == \
        "netwright doctor found 2 errors, 1 warning, 1 info in evaluate's first batch:"
    assert r.error_text().splitlines()[-1] == \
        "(Each code is explained in docs/doctor.md; evaluate(..., check=False) skips these checks.)"


@pytest.mark.parametrize("code, kind", [("NW104", LossTargetError), ("NW301", DataError),
                                        ("NW201", ModelSpecError), ("NW402", ConfigError),
                                        ("NW403", ModelSpecError), ("NW415", ConfigError)])
def test_raise_for_errors_raises_the_kind_of_the_first_error(code, kind):
    first = Finding(code, "error", "first", "", None)
    r = Report([W1, first, Finding("NW104", "error", "second")])
    with pytest.raises(DoctorError) as info:
        r.raise_for_errors()
    err = info.value
    assert isinstance(err, kind) and isinstance(err, NetwrightError) and isinstance(err, ValueError)
    assert err.report is r and str(err) == r.error_text()
    others = {LossTargetError, DataError, ModelSpecError, ConfigError} - {kind}
    assert not any(isinstance(err, o) for o in others)


def test_raise_for_errors_with_an_unknown_code_raises_a_plain_doctor_error():
    r = Report([Finding("NW999", "error", "custom check")])
    with pytest.raises(DoctorError) as info:
        r.raise_for_errors()
    assert type(info.value) is DoctorError


def test_raise_for_errors_without_errors_does_nothing():
    Report([W1, W2, I1]).raise_for_errors()
    Report().raise_for_errors()


def test_a_doctor_error_survives_pickling_with_its_report():
    """DoctorError crosses process boundaries (DataLoader workers, multiprocessing) whole."""
    r = Report([E1, W1])
    with pytest.raises(DoctorError) as info:
        r.raise_for_errors()
    back = pickle.loads(pickle.dumps(info.value))
    assert type(back) is type(info.value) and isinstance(back, LossTargetError)
    assert list(back.report) == [E1, W1] and str(back) == str(info.value)
    plain = pickle.loads(pickle.dumps(DoctorError(Report([I1]))))
    assert type(plain) is DoctorError and list(plain.report) == [I1]


# --- the words findings are written in ---------------------------------------------------------


def test_num_listed_and_error_line():
    assert num(1234.5678) == "1235" and num(0.000123456) == "0.0001235" and num(3.0) == "3"
    assert listed([1, 2, 3]) == "1, 2, 3"
    assert listed(range(6)) == "0, 1, 2, 3, 4, 5"
    assert listed(range(8)) == "0, 1, 2, 3, 4, 5 and 2 more"
    assert listed(range(5), limit=2) == "0, 1 and 3 more"
    assert listed([]) == ""
    assert error_line(ValueError("bad\nmore")) == "ValueError: bad"
    assert error_line(RuntimeError("x" * 400)) == "RuntimeError: " + "x" * 300 + "…"
    assert error_line(RuntimeError("x" * 300)) == "RuntimeError: " + "x" * 300


# --- check_batch (evaluate and predict) -----------------------------------------------------------


def _ce():
    return resolve_loss("cross_entropy")


def test_check_batch_finds_nan_inputs_and_skips_the_forward():
    x = torch.rand(4, 20)
    x[2, 5] = float("nan")
    calls = []
    net = nn.Linear(20, 3)
    net.register_forward_hook(lambda *a: calls.append(1))
    fn, info = _ce()
    r = check_batch(net, x, torch.zeros(4, dtype=torch.long), loss_fn=fn, loss_info=info)
    assert r.codes == ["NW301"] and r.output is None and calls == []
    assert r.stage == "evaluate"
    f = r[0]
    assert f.severity == "error" and "row 2" in f.message and "in the first batch" in f.message
    assert "the model's outputs for those rows are NaN, and so is every score they enter" in f.message
    assert f.where == "inputs" and f.fix.startswith("drop or fill those rows before evaluate")
    r = check_batch(net, x, stage="predict")
    assert r.codes == ["NW301"] and r[0].fix.startswith("drop or fill those rows before predict")


def test_check_batch_finds_nan_targets_and_names_the_effect():
    fn, info = _ce()
    y = torch.tensor([0.0, float("inf"), 1.0, 2.0])
    r = check_batch(nn.Linear(20, 3), torch.rand(4, 20), y, loss_fn=fn, loss_info=info,
                    stage="evaluate")
    assert "NW302" in r.codes
    f = r[r.codes.index("NW302")]
    assert "the loss and every score they enter are NaN" in f.message
    assert f.where == "targets" and f.fix.startswith("drop or fill those rows before evaluate")
    assert r.output is not None and r.output.shape == (4, 3)  # the forward still ran


def test_check_batch_keeps_only_errors_and_not_the_state_of_the_weights():
    fn, info = _ce()
    # A double softmax is a warning in fit: evaluate does not refuse it.
    soft = nn.Sequential(nn.Linear(20, 3), nn.Softmax(dim=1))
    r = check_batch(soft, torch.rand(8, 20), torch.arange(8) % 3, loss_fn=fn, loss_info=info)
    assert r.codes == [] and r.output.shape == (8, 3)

    class Diverged(nn.Module):  # NaN outputs on finite inputs: scored, not refused
        def forward(self, x):
            return x[:, :3] * float("nan")

    r = check_batch(Diverged(), torch.rand(8, 20), torch.arange(8) % 3, loss_fn=fn, loss_info=info)
    assert r.codes == []


def test_check_batch_forward_failure_and_stage():
    r = check_batch(nn.Linear(20, 3), torch.rand(5, 19), stage="predict")
    assert r.codes == ["NW201"] and r.stage == "predict" and r.output is None
    assert "predict's first batch" in r.error_text()


def test_check_batch_without_forward_checks_only_the_tensors():
    x = torch.rand(5, 19)  # would fail the forward
    r = check_batch(nn.Linear(20, 3), x, forward=False)
    assert r.codes == [] and r.output is None
    x[0, 0] = float("nan")
    assert check_batch(nn.Linear(20, 3), x, forward=False).codes == ["NW301"]


def test_check_batch_checks_the_loss_only_with_targets_and_a_loss():
    fn, info = _ce()
    net = nn.Linear(20, 3)
    y = torch.zeros(5, 1)  # float column targets: NW104 with the loss
    assert check_batch(net, torch.rand(5, 20), y, loss_fn=fn, loss_info=info).codes == ["NW104"]
    assert check_batch(net, torch.rand(5, 20), y).codes == []  # no loss: nothing to check
    assert check_batch(net, torch.rand(5, 20), None, loss_fn=fn, loss_info=info).codes == []


def test_check_batch_with_a_custom_loss_and_no_info():
    def loss(out, y):
        return ((out - y) ** 2).mean()
    r = check_batch(nn.Linear(20, 3), torch.rand(5, 20), torch.rand(5, 3), loss_fn=loss)
    assert r.codes == [] and r.output.shape == (5, 3)


def test_check_batch_ignores_empty_and_scalar_tensors():
    net = nn.Linear(20, 3)
    empty = torch.full((0, 20), float("nan"))
    r = check_batch(net, empty, forward=False)
    assert r.codes == []
    r = check_batch(net, torch.rand(4, 20), torch.tensor(float("nan")), forward=False)
    assert r.codes == []


def test_check_batch_leaves_modes_and_rng_as_they_were():
    net = nn.Sequential(nn.Linear(20, 8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    x = torch.rand(4, 20)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    check_batch(net, x)
    assert net.training and all(m.training for m in net.modules())
    assert torch.equal(torch.get_rng_state(), state)


# --- preflight (fit) --------------------------------------------------------------------------


def test_preflight_reports_errors_first_and_keeps_the_output():
    fn, info = _ce()
    net = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    r = preflight(net, torch.randn(8, 4), torch.zeros(8, 1), loss_fn=fn, loss_info=info)
    assert r.codes == ["NW104", "NW101"]
    assert r.output.shape == (8, 3) and torch.allclose(r.output.sum(1), torch.ones(8))


def test_preflight_with_the_whole_data_finds_what_one_batch_cannot():
    fn, info = _ce()
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 4, generator=g)
    y = torch.zeros(200, dtype=torch.long)
    y[:5] = 1  # class 2 never occurs, class 1 is rare
    net = nn.Linear(4, 3)
    r = preflight(net, X[:32], y[:32], loss_fn=fn, loss_info=info, data=(X, y))
    assert "NW109" in r.codes and "NW110" in r.codes
    r = preflight(net, X[:32], y[:32], loss_fn=fn, loss_info=info)
    assert "NW109" not in r.codes and "NW110" not in r.codes


def test_preflight_class_checks_are_skipped_after_an_output_error():
    fn, info = _ce()
    X = torch.randn(64, 4)
    y = torch.zeros(64, 1)  # float column: NW104 (an NW1xx error)
    r = preflight(nn.Linear(4, 3), X[:32], y[:32], loss_fn=fn, loss_info=info, data=(X, y))
    assert "NW104" in r.codes and "NW109" not in r.codes and "NW110" not in r.codes


def test_preflight_finds_a_forward_failure():
    fn, info = _ce()
    r = preflight(nn.Linear(4, 3), torch.randn(8, 5), torch.zeros(8, dtype=torch.long),
                  loss_fn=fn, loss_info=info)
    assert r.codes == ["NW201"] and r.output is None


def test_preflight_nonfinite_outputs_only_for_finite_inputs():
    fn, info = _ce()

    class NanOut(nn.Module):
        def forward(self, x):
            return x[:, :3] * float("nan")
    y = torch.zeros(8, dtype=torch.long)
    r = preflight(NanOut(), torch.randn(8, 4), y, loss_fn=fn, loss_info=info)
    assert "NW209" in r.codes and "NW191" not in r.codes  # the loss check is not repeated
    x = torch.randn(8, 4)
    x[0, 0] = float("nan")
    r = preflight(NanOut(), x, y, loss_fn=fn, loss_info=info)
    assert "NW301" in r.codes and "NW209" not in r.codes


def test_preflight_batchnorm_last_batch_of_one():
    fn, info = _ce()
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    y = torch.arange(8) % 3
    ok = preflight(net, torch.randn(8, 4), y, loss_fn=fn, loss_info=info, batch_sizes=[8, 8])
    assert "NW208" not in ok.codes
    bad = preflight(net, torch.randn(8, 4), y, loss_fn=fn, loss_info=info, batch_sizes=[8, 1])
    assert "NW208" in bad.codes


def test_preflight_finds_randomness_in_eval_mode():
    fn, info = _ce()

    class FunctionalDropout(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(torch.nn.functional.dropout(x, 0.5))
    r = preflight(FunctionalDropout(), torch.randn(8, 4), torch.arange(8) % 3, loss_fn=fn,
                  loss_info=info)
    assert "NW207" in r.codes
    r = preflight(nn.Sequential(nn.Linear(4, 3), nn.Dropout(0.5)), torch.randn(8, 4),
                  torch.arange(8) % 3, loss_fn=fn, loss_info=info)
    assert "NW207" not in r.codes  # a Dropout module is off in eval mode


def test_preflight_optimizer_and_schedule_findings():
    fn, info = _ce()
    net = nn.Linear(4, 3)
    other = torch.optim.SGD(nn.Linear(2, 2).parameters(), lr=0.1)
    r = preflight(net, torch.randn(8, 4), torch.arange(8) % 3, loss_fn=fn, loss_info=info,
                  optimizer=other)
    assert r.codes == ["NW402"]


# --- doctor (nw.doctor, netwright doctor) ----------------------------------------------------------


def _cls(n=64, features=4, classes=3):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(n, features, generator=g)
    return X, torch.arange(n) % classes


def _net(features=4, out=3):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(features, 8), nn.ReLU(), nn.Linear(8, out))


def test_doctor_refuses_what_is_not_a_module():
    with pytest.raises(ModelSpecError) as err:
        doctor(nn.Linear, _cls(), loss="cross_entropy")
    assert str(err.value).startswith("model: expected a torch.nn.Module, received ")
    assert "Fix: pass an instance, e.g. SimpleNet() rather than SimpleNet." in str(err.value)


def test_doctor_of_a_healthy_setup_has_no_findings():
    r = doctor(_net(), _cls(), loss="cross_entropy", optimizer="adam", metrics=["accuracy"],
               val=0.2, monitor="val_accuracy", epochs=3)
    assert r.codes == [] and r.ok


def test_doctor_monitor_must_be_logged_naming_what_is():
    X, y = _cls()
    r = doctor(_net(), (X, y), loss="cross_entropy", metrics=["f1"], monitor="val_f1")
    assert r.codes == ["NW414"]
    f = r[0]
    assert f.severity == "error" and f.where == "monitor"
    assert f.message == ("monitor 'val_f1' (early stopping and the best checkpoint) is never "
                         "logged; each epoch logs ['epoch', 'train_loss', 'train_f1', 'lr'].")
    assert f.fix == ("monitor one of those (val_* values need val data; a metric needs "
                     "metrics=[...])")
    r = doctor(_net(), (X, y), loss="cross_entropy", metrics=["f1", "confusion_matrix"],
               val=0.25, monitor="train_f1")
    assert r.codes == ["NW414"]
    assert "each epoch logs ['epoch', 'train_loss', 'val_loss', 'val_f1', 'lr']" in r[0].message
    Xv, yv = _cls(24)
    assert doctor(_net(), (X, y), loss="cross_entropy", metrics=["f1"], val=(Xv + 0.5, yv),
                  monitor="val_f1").codes == []
    # validation rows copied from the training rows are named (NW310), not only the monitor
    assert doctor(_net(), (X, y), loss="cross_entropy", metrics=["f1"], val=(X, y),
                  monitor="val_f1").codes == ["NW310"]
    assert doctor(_net(), (X, y), loss="cross_entropy", monitor="train_loss").codes == []
    assert doctor(_net(), (X, y), loss="cross_entropy", monitor="lr").codes == []
    assert doctor(_net(), (X, y), loss="cross_entropy", monitor="epoch").codes == []


def test_doctor_default_monitor_follows_val_for_reduce_on_plateau():
    """reduce_on_plateau monitors val_loss with val data, train_loss without (as in fit): both
    are logged, so neither setup has a finding; naming val_loss without val data is NW411."""
    X, y = _cls()
    plateau = {"name": "reduce_on_plateau"}
    assert doctor(_net(), (X, y), loss="cross_entropy", scheduler=plateau).codes == []
    assert doctor(_net(), (X, y), loss="cross_entropy", scheduler=plateau, val=0.2).codes == []
    r = doctor(_net(), (X, y), loss="cross_entropy",
               scheduler={"name": "reduce_on_plateau", "monitor": "val_loss"})
    assert r.codes == ["NW411"]
    r = doctor(_net(), (X, y), loss="cross_entropy", scheduler=plateau, monitor="val_loss")
    assert "NW411" in r.codes


def test_doctor_epochs_default_to_ten_for_onecycle():
    X, y = _cls(64)  # 2 batches of 32 an epoch
    short = {"name": "onecycle", "total_steps": 19}
    assert "NW412" in doctor(_net(), (X, y), loss="cross_entropy", scheduler=short).codes
    exact = {"name": "onecycle", "total_steps": 20}
    assert doctor(_net(), (X, y), loss="cross_entropy", scheduler=exact).codes == []
    assert doctor(_net(), (X, y), loss="cross_entropy", scheduler=exact, epochs=10).codes == []
    assert "NW412" in doctor(_net(), (X, y), loss="cross_entropy", scheduler=exact,
                             epochs=11).codes
    assert "NW413" in doctor(_net(), (X, y), loss="cross_entropy", scheduler=exact,
                             epochs=9).codes


def test_doctor_counts_the_steps_after_the_validation_split():
    """With val=0.25 of 128 samples fit trains on 96: 3 batches of 32 an epoch."""
    X, y = _cls(128)
    cycle = {"name": "onecycle", "total_steps": 6}
    assert doctor(_net(), (X, y), loss="cross_entropy", scheduler=cycle, epochs=2,
                  val=0.25).codes == []
    assert "NW412" in doctor(_net(), (X, y), loss="cross_entropy", scheduler=cycle, epochs=2,
                             val=0.2).codes  # 102 samples: 4 batches
    assert "NW412" in doctor(_net(), (X, y), loss="cross_entropy", scheduler=cycle, epochs=2).codes
    assert "NW413" not in doctor(_net(), (X, y), loss="cross_entropy", epochs=2, val=(X, y),
                                 scheduler={"name": "onecycle", "total_steps": 8}).codes


def test_doctor_last_batch_of_one_sample_with_batchnorm():
    X, y = _cls(65)  # 32 + 32 + 1
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    assert "NW208" in doctor(net, (X, y), loss="cross_entropy").codes
    assert "NW208" not in doctor(net, (X, y), loss="cross_entropy", batch_size=13).codes
    # The doctor holds val out exactly as fit does (stratified, 5 of each class's 26-27 rows):
    # 80 samples, val=0.2: 15 held out, 65 trained on -> a last batch of 1 again; 81 samples
    # train on 66 (32 + 32 + 2), so nothing to report.
    X, y = _cls(80)
    assert "NW208" in doctor(net, (X, y), loss="cross_entropy", val=0.2).codes
    assert "NW208" not in doctor(net, (X, y), loss="cross_entropy").codes  # 80 = 32 + 32 + 16
    X, y = _cls(81)
    assert "NW208" not in doctor(net, (X, y), loss="cross_entropy", val=0.2).codes


def test_doctor_val_fraction_only_between_0_and_1_holds_data_out():
    X, y = _cls(65)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    for val in (0.0, 1.0, (X[:10], y[:10])):
        assert "NW208" in doctor(net, (X, y), loss="cross_entropy", val=val).codes


def test_doctor_reports_a_model_left_in_eval_mode_as_info():
    net = _net().eval()
    r = doctor(net, _cls(), loss="cross_entropy")
    assert r.codes == ["NW206"] and r.ok
    f = r[0]
    assert f.severity == "info" and f.where == "model"
    assert f.message.startswith("the model Sequential is in eval mode (model.eval() was called)")
    assert f.fix == "nothing for fit; in your own loop call model.train() before training"
    assert not net.training  # the doctor never changes the model


def test_doctor_metric_that_does_not_fit_the_task():
    X, y = _cls()
    assert "NW415" in doctor(_net(), (X, y), loss="cross_entropy", metrics=["r2"]).codes


def test_doctor_deep_checks_run_only_when_asked_and_without_errors():
    X, y = _cls()

    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.unused = nn.Linear(4, 3), nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(x)
    assert "NW501" not in doctor(Unused(), (X, y), loss="cross_entropy").codes
    assert "NW501" in doctor(Unused(), (X, y), loss="cross_entropy", deep=True).codes
    # With an error among the cheap checks the deep ones are skipped.
    r = doctor(Unused(), (X, y[:, None].float()), loss="cross_entropy", deep=True)
    assert "NW104" in r.codes and "NW501" not in r.codes


def test_doctor_deep_checks_leave_the_model_and_the_rng_alone():
    X, y = _cls()
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    torch.manual_seed(1)
    random.seed(1)
    np.random.seed(1)
    states = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    doctor(net, (X, y), loss="cross_entropy", deep=True, optimizer="adam", lr=0.01)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])


def test_doctor_deep_checks_use_the_given_lr():
    """NW506 (the loss diverges when overfitting one batch) comes from the lr given."""
    X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    y = X[:, :1] * 3
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))
    fine = doctor(net, (X, y), loss="mse", optimizer="sgd", lr=0.01, deep=True)
    wild = doctor(net, (X, y), loss="mse", optimizer="sgd", lr=1000.0, deep=True)
    assert "NW506" not in fine.codes and "NW506" in wild.codes


def test_doctor_skips_the_deep_checks_of_a_scripted_model():
    X, y = _cls()
    scripted = torch.jit.script(_net())
    r = doctor(scripted, (X, y), loss="cross_entropy", deep=True)
    assert r.ok


def test_doctor_leaves_a_loss_module_where_it_is():
    X, y = _cls()
    loss = nn.CrossEntropyLoss()
    r = doctor(_net(), (X, y), loss=loss)
    assert r.codes == []


def test_doctor_of_data_without_a_readable_batch_is_a_data_error():
    class Endless(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(())
    with pytest.raises(DataError, match=r"data: no batch could be read for the checks"):
        doctor(_net(), Endless(), loss="cross_entropy")


def test_doctor_returns_errors_first():
    X, y = _cls()
    soft = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1)).eval()
    r = doctor(soft, (X, y[:, None].float()), loss="cross_entropy")
    assert r.codes == ["NW104", "NW101", "NW206"]
    assert [f.severity for f in r] == ["error", "warning", "info"]


def test_nw_doctor_is_this_doctor():
    assert nw.doctor is doctor


# --- survivors of the second measurement (docs/mutation/resume-export-doctor.md) ---------------


def test_check_batch_names_the_effect_and_scope_of_nan_in_full():
    """The whole sentence, not a fragment of it: inputs and targets each name their effect."""
    x = torch.rand(4, 20)
    x[1, 0] = float("nan")
    r = check_batch(nn.Linear(20, 3), x, forward=False)
    assert r[0].message == ("inputs have 1 row(s) with NaN/Inf values (1 values) in the first "
                            "batch, the first at row 1: the model's outputs for those rows are "
                            "NaN, and so is every score they enter.")
    y = torch.tensor([0.0, float("inf"), 1.0, 2.0])
    r = check_batch(nn.Linear(20, 3), torch.rand(4, 20), y, forward=False)
    assert r[0].message == ("targets have 1 row(s) with NaN/Inf values (1 values) in the first "
                            "batch, the first at row 1: the loss and every score they enter are NaN.")


def test_a_custom_loss_without_info_gets_no_task_checks():
    """A callable without a LossInfo decides itself what the shapes mean: class indices (N,)
    against (N, C) outputs are not an element-wise shape mismatch (NW131) for it."""
    def loss(out, y):
        return nn.functional.cross_entropy(out, y)
    r = check_batch(nn.Linear(20, 3), torch.rand(5, 20), torch.arange(5) % 3, loss_fn=loss)
    assert r.codes == [] and r.output.shape == (5, 3)


class _Reshaper(nn.Module):
    """Fails in its own forward (not in a layer): NW203 names the class."""

    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(20, 6)

    def forward(self, x):
        return self.lin(x).view(-1, 4)


def test_check_batch_names_a_forward_failure_as_fit_does():
    """Evaluate and predict use fit's codes and words: the same failure gives the same finding
    from check_batch as from preflight, naming the model's class, the inputs and the error."""
    fn, info = _ce()
    x = torch.rand(5, 20)
    mine = check_batch(_Reshaper(), x, stage="predict")
    fits = preflight(_Reshaper(), x, torch.zeros(5, dtype=torch.long), loss_fn=fn, loss_info=info)
    assert mine.codes == ["NW203"] and list(mine) == [f for f in fits if f.code == "NW203"]
    message = mine[0].message
    assert message.startswith("forward failed on the first batch, inputs float32 of shape (5, 20)")
    assert "_Reshaper.forward" in message and "RuntimeError" in message


def test_doctor_names_the_data_argument_and_what_was_not_a_module():
    with pytest.raises(DataError, match=r"^data: expected \(X, y\)"):
        doctor(_net(), "nonsense", loss="cross_entropy")
    from netwright.errors import describe

    with pytest.raises(ModelSpecError) as err:
        doctor(nn.Linear, _cls(), loss="cross_entropy")
    assert str(err.value).startswith(f"model: expected a torch.nn.Module, received "
                                     f"{describe(nn.Linear)}. Fix:")


class _Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        h = self.lin(x)
        if h.sum().item() > 0:  # a graph break for torch.compile
            return h
        return -h


def test_doctor_deep_checks_look_for_graph_breaks_only_with_compile():
    X, y = torch.rand(32, 4), torch.randint(0, 3, (32,))
    assert "NW508" not in doctor(_Branchy(), (X, y), loss="cross_entropy", deep=True).codes


def test_str_wraps_the_finding_column_at_100_characters():
    """With a 5-wide where column the finding column starts at 24 and holds 76 characters, for
    the message and for its fix."""
    message = "a" * 75 + " b"  # 77 characters: one too many
    fix = "c" * 66 + " d"  # "Fix: " + 68 = 73 characters: fits
    lines = str(Report([Finding("NW303", "info", message, fix, "in")])).splitlines()[3:]
    assert lines == [f"info      NW303  in     {'a' * 75}", " " * 24 + "b", " " * 24 + "Fix: " + fix]
    assert max(len(line) for line in lines) <= 100


def test_preflight_reports_no_nan_loss_on_top_of_nan_inputs_or_targets():
    """NaN inputs or targets make the loss NaN: that is no further finding (NW191)."""
    fn, info = _ce()
    x = torch.rand(8, 4)
    x[0, 0] = float("nan")
    y = torch.arange(8) % 3
    assert preflight(nn.Linear(4, 3), x, y, loss_fn=fn, loss_info=info).codes == ["NW301"]
    mse, mse_info = resolve_loss("mse")
    t = torch.rand(8, 3)
    t[2, 1] = float("inf")
    codes = preflight(nn.Linear(4, 3), torch.rand(8, 4), t, loss_fn=mse, loss_info=mse_info).codes
    assert codes == ["NW302"]


def test_preflight_class_checks_skip_only_after_an_nw1_error():
    """Labels outside [0, C) (NW108, an error) stop the class checks over the whole data; an
    NW1 warning (a double softmax, NW101) does not."""
    fn, info = _ce()
    X = torch.randn(64, 4)
    y = torch.zeros(64, dtype=torch.long)
    y[:2], y[2:4] = 1, 3  # 3 is out of range for 3 outputs; class 2 never occurs
    r = preflight(nn.Linear(4, 3), X[:32], y[:32], loss_fn=fn, loss_info=info, data=(X, y))
    assert "NW108" in r.codes and "NW109" not in r.codes and "NW110" not in r.codes
    y[2:4] = 1
    soft = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))
    r = preflight(soft, X[:32], y[:32], loss_fn=fn, loss_info=info, data=(X, y))
    assert "NW101" in r.codes and "NW109" in r.codes and "NW110" in r.codes


def test_preflight_no_imbalance_finding_for_a_loss_with_class_weights():
    _, info = _ce()
    X = torch.randn(64, 4)
    y = torch.zeros(64, dtype=torch.long)
    y[:3] = 1
    weighted = nn.CrossEntropyLoss(weight=torch.tensor([1.0, 20.0]))
    r = preflight(nn.Linear(4, 2), X[:32], y[:32], loss_fn=weighted, loss_info=info, data=(X, y))
    assert "NW110" not in r.codes
    r = preflight(nn.Linear(4, 2), X[:32], y[:32], loss_fn=nn.CrossEntropyLoss(), loss_info=info,
                  data=(X, y))
    assert "NW110" in r.codes


class _Box:
    """Inputs that are neither a tensor nor a sequence: their row count is unknown."""

    def __init__(self, t):
        self.t = t


class _BoxNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin, self.bn = nn.Linear(4, 3), nn.BatchNorm1d(3)

    def forward(self, box):
        return self.bn(self.lin(box.t))


def test_preflight_with_an_unknown_row_count_assumes_no_batch_of_one():
    fn, info = _ce()
    r = preflight(_BoxNet(), _Box(torch.rand(8, 4)), torch.arange(8) % 3, loss_fn=fn, loss_info=info)
    assert "NW208" not in r.codes and r.output.shape == (8, 3)


class _RandomInEval(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return nn.functional.dropout(self.lin(x), 0.5, training=True)


def test_preflight_randomness_in_eval_is_added_to_the_other_findings():
    fn, info = _ce()
    r = preflight(_RandomInEval(), torch.rand(8, 4), torch.zeros(8, 1), loss_fn=fn, loss_info=info)
    assert "NW104" in r.codes and "NW207" in r.codes


def test_doctor_without_a_readable_batch_says_what_to_pass():
    class Empty(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(())
    with pytest.raises(DataError) as err:
        doctor(_net(), Empty(), loss="cross_entropy")
    assert str(err.value) == ("data: no batch could be read for the checks (an IterableDataset "
                              "without length, or a Dataset that cannot be indexed). Fix: pass "
                              "(X, y) or a Dataset.")


def test_doctor_reads_the_first_batch_without_drawing_from_the_global_rng():
    net, data = _net(), _cls()
    torch.manual_seed(5)
    state = torch.get_rng_state()
    doctor(net, data, loss="cross_entropy")
    assert torch.equal(torch.get_rng_state(), state)


class _Rows(torch.utils.data.Dataset):
    """A map-style dataset (not arrays in memory): its batch sizes come from the loader."""

    def __init__(self, X, y):
        self.X, self.y = X, y

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.X[i], self.y[i]


def test_doctor_finds_a_last_batch_of_one_in_a_dataset():
    X, y = _cls(65)
    net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    assert "NW208" in doctor(net, _Rows(X, y), loss="cross_entropy").codes


def test_doctor_one_batch_an_epoch_is_one_step():
    X, y = _cls(16)  # a single batch of 16
    cycle = {"name": "onecycle", "total_steps": 3}
    assert doctor(_net(), (X, y), loss="cross_entropy", scheduler=cycle, epochs=3).codes == []


def test_doctor_metric_on_float_targets_of_a_custom_loss():
    """A custom loss leaves the task to the targets: float targets are regression, where
    accuracy does not apply."""
    X = torch.rand(32, 4)
    r = doctor(nn.Linear(4, 1), (X, torch.rand(32, 1)), loss=lambda o, t: ((o - t) ** 2).mean(),
               metrics=["accuracy"])
    assert "NW415" in r.codes


def test_doctor_deep_checks_keep_the_findings_made_before_them():
    net = _net().eval()  # NW206, an info: the deep checks still run
    r = doctor(net, _cls(), loss="cross_entropy", deep=True)
    assert "NW206" in r.codes and net.training is False


def test_doctor_graph_breaks_are_added_to_the_other_findings():
    """compile=True: NW508 names the break in the model's own forward, and the findings made
    before the deep checks (NW206 here) stay."""
    X, y = torch.rand(32, 4), torch.randint(0, 3, (32,))
    r = doctor(_Branchy().eval(), (X, y), loss="cross_entropy", deep=True, compile=True)
    assert "NW206" in r.codes and "NW508" in r.codes
    assert "if h.sum().item() > 0:" in r[r.codes.index("NW508")].message


def test_doctor_of_a_loader_with_a_batch_sampler_counts_its_batches():
    """A DataLoader built with a batch_sampler has no batch_size: the steps an epoch are its
    length (3 batches here), as the onecycle check shows."""
    from torch.utils.data import BatchSampler, DataLoader, SequentialSampler, TensorDataset

    X, y = _cls(40)
    loader = DataLoader(TensorDataset(X, y),
                        batch_sampler=BatchSampler(SequentialSampler(range(40)), 16, False))
    cycle = {"name": "onecycle", "total_steps": 6}
    assert doctor(_net(), loader, loss="cross_entropy", scheduler=cycle, epochs=2).codes == []
    assert "NW412" in doctor(_net(), loader, loss="cross_entropy", scheduler=cycle, epochs=3).codes
