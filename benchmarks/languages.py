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


def bag_alone(config: Path, epochs: int = 15, seed: int = 0) -> tuple[float, float]:
    """(test accuracy, seconds) of the examples' bag of hashed character n-grams on its own
    (``NgramBag``, 1- to 4-grams, 65,536 rows, learned n-gram weights: a linear model,
    fastText's), trained by a plain
    torch loop on the training words (AdamW 0.01, one-cycle, label smoothing 0.1, batches of 64)
    and scored on the test words at its best validation epoch: how much of an example's accuracy
    the bag alone gives."""
    import torch
    import torch.nn.functional as F

    import netwright as nw
    from netwright.data.prepare import prepare_data
    from netwright.models.text import NgramBag, padding_mask

    data = prepare_data(nw.load_config(config).data, "multiclass", "cross_entropy")
    chars = {c: i + 2 for i, c in enumerate(sorted({c for w in data.train.texts for c in w}))}

    def ids(words: list[str]) -> torch.Tensor:
        out = torch.zeros(len(words), max(map(len, words)), dtype=torch.long)
        for i, word in enumerate(words):
            out[i, :len(word)] = torch.tensor([chars.get(c, 1) for c in word])
        return out

    (x, y), (xv, yv), (xt, yt) = ((ids(part.texts), part.targets)
                                  for part in (data.train, data.val, data.test))
    torch.manual_seed(seed)
    bag = NgramBag(len(chars) + 2, int(y.max()) + 1, max_n=4, buckets=1 << 16, scale=1.0)
    optimizer = torch.optim.AdamW(bag.parameters(), lr=0.01, weight_decay=0.0)
    steps = (len(x) + 63) // 64
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 0.01, total_steps=epochs * steps)
    best, start = (-1.0, 0.0), time.perf_counter()
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(64):
            loss = F.cross_entropy(bag(x[batch], padding_mask(x[batch], 0)), y[batch],
                                   label_smoothing=0.1)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        with torch.no_grad():
            val = (bag(xv, padding_mask(xv, 0)).argmax(1) == yv).float().mean().item()
            test = (bag(xt, padding_mask(xt, 0)).argmax(1) == yt).float().mean().item()
        if val > best[0]:  # the first epoch of the best validation accuracy
            best = (val, test)
    return best[1], time.perf_counter() - start


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
    bag, bag_seconds = bag_alone(configs[0])
    print(f"the bag of character 1-4-grams alone (NgramBag, a plain torch loop): test accuracy "
          f"{bag:.4f} ({bag_seconds:.1f} s)")
    for config in configs:
        with tempfile.TemporaryDirectory() as tmp:
            result = nw.run(config, [f"run_dir={tmp}"], verbose=0)
        test = result.scores["test"]["accuracy"]
        print(f"{config.stem:28s}: test accuracy {test:.4f} in {result.fit.seconds:.1f} s of "
              f"training ({len(result.fit.history)} epochs); {test - alone:+.4f} vs the baseline "
              f"on the training words, {test - acc:+.4f} vs the one on training + validation words")


if __name__ == "__main__":
    main()
