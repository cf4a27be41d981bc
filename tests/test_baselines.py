"""benchmarks/baselines.py: the baselines see exactly the run's rows, and the table is whole."""

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.fixture(scope="module")
def baselines():
    spec = importlib.util.spec_from_file_location("baselines", ROOT / "benchmarks" / "baselines.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _row_indices(X: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """Each row's position in the raw data set (breast_cancer's 569 rows are all distinct)."""
    where = {row.tobytes(): i for i, row in enumerate(raw)}
    return np.array([where[row.tobytes()] for row in X], dtype=np.int64)


def _digest(*arrays: np.ndarray) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def test_the_baselines_split_holds_the_same_rows_as_the_run(baselines, tmp_path):
    import netwright as nw
    from netwright.data.builtin import load_builtin

    path = ROOT / "examples" / "breast_cancer.yaml"
    _, mine = baselines.split_of(path)
    run = nw.run(path, [f"run_dir={tmp_path}", "train.epochs=1"], verbose=0).data
    raw_X, raw_y = load_builtin("breast_cancer")
    assert len(np.unique(raw_X, axis=0)) == len(raw_X)  # rows identify themselves
    parts = {}
    for name in ("train", "val", "test"):
        (Xa, ya), (Xb, yb) = getattr(mine, name), getattr(run, name)
        ia, ib = _row_indices(Xa, raw_X), _row_indices(Xb, raw_X)
        assert len(ia) == len(ib) == mine.sizes[name] == run.sizes[name]
        assert _digest(ia, ya) == _digest(ib, yb)
        np.testing.assert_array_equal(raw_y[ia].astype(np.float32)[:, None], ya)
        parts[name] = ia
    # The three parts cover the data set once, and the test part is the config's 20 %.
    together = np.concatenate(list(parts.values()))
    assert sorted(together.tolist()) == list(range(len(raw_X)))
    assert abs(len(parts["test"]) - 0.2 * len(raw_X)) <= 2
    assert baselines.same_rows(mine, run)


def test_the_table_has_a_row_per_example_config_and_verdicts_go_the_right_way(baselines, monkeypatch):
    trained = []

    def fake_train(path, overrides):
        # Score the example as its own first baseline, a little better or worse by its name.
        cfg, data = baselines.split_of(path, overrides)
        first = next(iter(baselines.baseline_outputs(cfg, data).values()))
        scores = baselines.score_outputs(cfg, first, baselines.test_targets(data))
        metric = baselines.main_metric(data.task, scores)
        sign = -1 if metric in baselines.LOWER_IS_BETTER else 1
        scores[metric] += sign * (1.0 if path.stem == "diabetes" else -1.0)
        trained.append(path.stem)
        return scores, data, 0.0

    monkeypatch.setattr(baselines, "train_example", fake_train)
    # mnist and the languages words: seconds more each (test_a_text_example_gets_the_tfidf_baseline)
    paths = [p for p in baselines.example_configs()
             if p.stem != "mnist_cnn" and not p.stem.startswith("languages")]
    assert {p.stem for p in CONFIGS} - {p.stem for p in baselines.example_configs()} == {
        "mnist_folder", "mnist_resnet18"}  # the image-folder examples: mnist_cnn's data as PNGs
    rows = baselines.table(paths)
    assert [r["example"] for r in rows] == [p.stem for p in paths] == trained
    by_name = {r["example"]: r for r in rows}
    assert {"iris", "wine", "breast_cancer", "diabetes", "sunspots_lstm"} <= set(by_name)
    assert by_name["diabetes"]["verdict"] == "matches/beats"
    assert by_name["diabetes"]["metric"] == "r2"
    assert by_name["iris"]["verdict"] == "falls short"
    assert by_name["iris"]["metric"] == "accuracy"
    sun = by_name["sunspots_lstm"]  # mae: lower is better, and the best baseline is the smaller
    assert sun["metric"] == "mae" and sun["verdict"] == "falls short"
    assert sun["baselines"][sun["best_baseline"]] == min(sun["baselines"].values())
    assert set(sun["baselines"]) == {"persistence (last value)", "ridge on the lag window"}
    for row in rows:
        assert all(0 <= v for v in row["baselines"].values())
    text = baselines.format_table(rows)
    assert all(f"| {p.stem} |" in text for p in paths)


def test_a_classifier_baseline_is_scored_by_the_example_metrics(baselines):
    cfg, data = baselines.split_of(ROOT / "examples" / "iris.yaml")
    outs = baselines.baseline_outputs(cfg, data)
    y = data.test[1]
    for out in outs.values():
        scores = baselines.score_outputs(cfg, out, y)
        assert scores["accuracy"] == pytest.approx(float(np.mean(out.argmax(1) == y)))
        assert 0.8 < scores["accuracy"] <= 1.0


def test_only_refuses_an_unknown_example(baselines, capsys):
    with pytest.raises(SystemExit):
        baselines.main(["--only", "no_such_example", "--no-train"])
    assert "no example 'no_such_example'" in capsys.readouterr().err


def test_a_text_example_gets_the_tfidf_baseline_on_its_own_split(baselines, tmp_path):
    """Text examples are scored against character n-gram TF-IDF + logistic regression, fitted
    on the run's training texts and scored on its test texts (here a small CSV of real words)."""
    import csv

    import yaml

    from netwright.data.builtin import load_languages

    words, labels = load_languages()
    rows = [(w, lab) for w, lab in zip(words, labels) if lab in ("german", "spanish")][::10]
    with open(tmp_path / "words.csv", "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("word", "lang"), *rows])
    config = tmp_path / "words.yaml"
    config.write_text(yaml.safe_dump({
        "model": {"zoo": "text_classifier", "cell": "gru"}, "loss": "cross_entropy",
        "metrics": ["accuracy"],
        "data": {"source": str(tmp_path / "words.csv"), "text": "word", "target": "lang",
                 "tokenizer": {"kind": "char", "min_frequency": 1}}}))
    cfg, data = baselines.split_of(config)
    outs = baselines.baseline_outputs(cfg, data)
    assert list(outs) == ["TF-IDF char 1-4 + logistic regression"]
    out = outs["TF-IDF char 1-4 + logistic regression"]
    assert out.shape == (len(data.test), 2)
    scores = baselines.score_outputs(cfg, out, baselines.test_targets(data))
    assert scores["accuracy"] > 0.8  # German against Spanish words: an easy pair
    assert baselines.same_rows(data, baselines.split_of(config)[1])
