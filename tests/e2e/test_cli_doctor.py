"""`netwright doctor CONFIG`, run as a user runs it: the installed console script in a fresh
process. Exit status 0 without error findings, 1 with one, 2 for a bad config; ``--json`` prints
only the report as JSON; ``--quick`` leaves out the deep checks.

Each command costs a few seconds of imports, so all of them are started at once (a module
fixture) and each test reads the result of its own.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXE = Path(sys.executable).parent / "netwright"

ONECYCLE_TOO_SHORT = """\
name: short_cycle
model: {zoo: mlp, hidden: [16]}
data: {source: iris}
loss: cross_entropy
scheduler: {name: onecycle, total_steps: 2}
train: {epochs: 3, batch_size: 32}
"""

# SGD at lr=1000 on a standardised regression: fine for the cheap checks, but overfitting one
# batch diverges (NW506, an error) in the deep checks.
DIVERGES = """\
name: diverges
model: {zoo: mlp, hidden: [16]}
data: {source: diabetes}
loss: mse
optimizer: {name: sgd, lr: 1000.0}
train: {epochs: 2, batch_size: 32}
"""

TYPO = """\
name: typo
model: {zoo: mlp, hidden: [16]}
data: {source: iris}
loss: cross_entropy
optimzer: {name: sgd, lr: 0.1}
"""

COMMANDS = {
    "good_json": [str(ROOT / "examples" / "breast_cancer.yaml"), "--quick", "--json"],
    "onecycle_json": ["short_cycle.yaml", "--quick", "--json"],
    "diverges_deep": ["diverges.yaml"],
    "diverges_quick_json": ["diverges.yaml", "--quick", "--json"],
    "typo": ["typo.yaml", "--quick"],
}


@pytest.fixture(scope="module")
def doctor_runs(tmp_path_factory):
    if not EXE.exists():
        pytest.skip("netwright is not installed as a console script in this environment")
    cwd = tmp_path_factory.mktemp("doctor")
    (cwd / "short_cycle.yaml").write_text(ONECYCLE_TOO_SHORT)
    (cwd / "diverges.yaml").write_text(DIVERGES)
    (cwd / "typo.yaml").write_text(TYPO)
    procs = {name: subprocess.Popen([str(EXE), "doctor", *args], cwd=cwd, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for name, args in COMMANDS.items()}
    results = {}
    try:
        for name, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            results[name] = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
    results["cwd"] = cwd
    return results


def _report(res):
    report = json.loads(res.stdout)  # the whole of stdout is the JSON report
    for f in report["findings"]:
        assert set(f) >= {"code", "severity", "message", "fix"}
    severities = [f["severity"] for f in report["findings"]]
    assert report["errors"] == severities.count("error")
    assert report["warnings"] == severities.count("warning")
    assert report["ok"] == (report["errors"] == 0)
    return report


def test_a_good_config_exits_0_with_a_clean_json_report(doctor_runs):
    res = doctor_runs["good_json"]
    assert res.returncode == 0, res.stderr
    report = _report(res)
    assert report["ok"] is True and report["errors"] == 0
    assert not [f for f in report["findings"] if f["severity"] != "info"]


def test_an_error_finding_exits_1_and_json_names_its_code(doctor_runs):
    res = doctor_runs["onecycle_json"]
    assert res.returncode == 1, res.stderr
    report = _report(res)
    assert report["ok"] is False and report["errors"] >= 1
    nw412 = [f for f in report["findings"] if f["code"] == "NW412"]
    assert len(nw412) == 1 and nw412[0]["severity"] == "error"
    assert "total_steps=2" in nw412[0]["message"]
    assert "Traceback" not in res.stderr


def test_deep_checks_run_without_quick_and_the_table_shows_their_error(doctor_runs):
    res = doctor_runs["diverges_deep"]
    assert res.returncode == 1, res.stderr
    assert "NW506" in res.stdout  # the human-readable table
    assert "1 error(s)" in res.stdout and "docs/doctor.md" in res.stdout
    assert not res.stdout.lstrip().startswith("{")


def test_quick_leaves_out_the_deep_checks(doctor_runs):
    res = doctor_runs["diverges_quick_json"]
    assert res.returncode == 0, res.stderr  # the same config: its only error is a deep one
    codes = [f["code"] for f in _report(res)["findings"]]
    assert not [c for c in codes if c.startswith("NW5")]


def test_an_unknown_key_is_a_bad_config_exit_2_with_a_suggestion(doctor_runs):
    res = doctor_runs["typo"]
    assert res.returncode == 2
    assert "optimzer: unknown key. Did you mean 'optimizer'?" in res.stderr
    assert "Traceback" not in res.stderr
    assert "NW" not in res.stdout  # no report: the config never got that far


def test_doctor_writes_nothing_into_the_working_directory(doctor_runs):
    files = sorted(p.name for p in doctor_runs["cwd"].iterdir())
    assert files == ["diverges.yaml", "short_cycle.yaml", "typo.yaml"]
