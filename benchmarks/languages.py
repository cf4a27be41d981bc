"""The ``languages`` examples against scikit-learn's character n-gram baseline, on one split.

The baseline: ``TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)``
and ``LogisticRegression(C=10)`` (the best of C in {1, 10} and n-grams up to 3, 4 or 5 on this
set), fitted on the training words of the examples' own split (``netwright.data.prepare``
with the config's seed: 10,500 training, 1,500 validation, 3,000 test words, stratified; the
baseline trains on training + validation words, as it has nothing to tune on them; it is also
fitted on the training words alone) and scored on the same 3,000 test words. Then each example config is trained (``nw.run``) and its test
accuracy and training time printed beside the baseline's.

    python -m compileall -q src && python benchmarks/languages.py [--examples gru transformer]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def baseline(config: Path, with_val: bool = True) -> tuple[float, float]:
    """(test accuracy, seconds) of TF-IDF + logistic regression on the config's split, fitted on
    the training words (and the validation words with ``with_val``)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    import netwright as nw
    from netwright.data.prepare import prepare_data

    cfg = nw.load_config(config)
    data = prepare_data(cfg.data, "multiclass", "cross_entropy")
    extra = data.val is not None and with_val
    train_texts = data.train.texts + (data.val.texts if extra else [])
    train_y = data.train.targets.tolist() + (data.val.targets.tolist() if extra else [])
    start = time.perf_counter()
    vec = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 4), sublinear_tf=True)
    clf = LogisticRegression(C=10, max_iter=2000).fit(vec.fit_transform(train_texts), train_y)
    seconds = time.perf_counter() - start
    predicted = clf.predict(vec.transform(data.test.texts))
    accuracy = float((predicted == data.test.targets.numpy()).mean())
    return accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", nargs="*", default=["gru", "transformer"])
    args = parser.parse_args()
    import tempfile

    import netwright as nw

    configs = [ROOT / "examples" / f"languages_{name}.yaml" for name in args.examples]
    acc, seconds = baseline(configs[0])
    alone, _ = baseline(configs[0], with_val=False)
    print(f"baseline  TF-IDF char 1-4 + logistic regression: test accuracy {acc:.4f} "
          f"({seconds:.1f} s to fit on training + validation words); {alone:.4f} on the training "
          f"words alone (what the examples train on)")
    for config in configs:
        with tempfile.TemporaryDirectory() as tmp:
            result = nw.run(config, [f"run_dir={tmp}"], verbose=0)
        test = result.scores["test"]["accuracy"]
        print(f"{config.stem:28s}: test accuracy {test:.4f} in {result.fit.seconds:.1f} s of "
              f"training ({len(result.fit.history)} epochs); {test - acc:+.4f} vs the baseline")


if __name__ == "__main__":
    main()
