"""The doctor against its corpus of real mistakes (issue 20): benchmarks/doctor_corpus.py holds
47 mistakes as people write them, each with the code that names it and where it is reported,
and 16 correct setups. The doctor must name >= 90 % of the mistakes with deep=True, >= 70 % in
fit's own pre-flight, and raise no error on a correct setup."""

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus():
    spec = importlib.util.spec_from_file_location("doctor_corpus", ROOT / "benchmarks" / "doctor_corpus.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["doctor_corpus"] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def rows(corpus):
    return [corpus.run_case(case) for case in corpus.CASES]


def test_the_corpus_is_what_the_issue_asks_for(corpus):
    mistakes = [c for c in corpus.CASES if c.kind == "mistake"]
    correct = [c for c in corpus.CASES if c.kind == "correct"]
    assert len(mistakes) >= 30 and len(correct) >= 10
    assert len({c.id for c in corpus.CASES}) == len(corpus.CASES)
    for case in mistakes:
        assert case.expected and case.source, case.id
        from netwright.diagnosis import CODES

        assert all(code in CODES for code in case.expected), case.id


def test_the_doctor_names_the_mistakes_and_spares_the_correct_setups(corpus, rows):
    totals = corpus.totals(rows)
    missed_deep = [r["id"] for r in rows if r["kind"] == "mistake" and not r["named_deep"]]
    missed_pre = [r["id"] for r in rows if r["kind"] == "mistake" and not r["named_preflight"]]
    assert totals["named_deep_pct"] >= 90, missed_deep
    assert totals["named_preflight_pct"] >= 70, missed_pre
    assert totals["false_errors"] == 0, totals["cases_with_false_errors"]
    crashes = [r["id"] for r in rows if r["deep"]["status"].startswith("crash")]
    assert not crashes  # the doctor itself never fails on a case


def test_each_new_mistake_is_named_by_its_own_code(rows):
    by_id = {r["id"]: r for r in rows}
    for case_id, code in [("layers_in_list", "NW216"), ("layers_in_dict", "NW216"),
                          ("softmax_module_dim0", "NW113"), ("val_is_train", "NW310"),
                          ("target_column_leak", "NW311"), ("sorted_no_shuffle", "NW404"),
                          ("half_frozen_by_mistake", "NW405"), ("zero_init", "NW219"),
                          ("tensor_attr_requires_grad", "NW217"), ("normalisation_not_buffer", "NW218")]:
        assert code in by_id[case_id]["preflight"]["codes"], (case_id, by_id[case_id]["preflight"])
    assert "NW509" in by_id["autograd_wrong_backward"]["deep"]["codes"]
    assert "NW509" not in by_id["autograd_wrong_backward"]["preflight"]["codes"]
