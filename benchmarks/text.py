"""Tokens per second of netwright's text pipeline against a tutorial-style loop.

Both pipelines tokenize the same 8,000 texts, batch them (64 per batch, shuffled) and run a
training step of the same GRU classifier (embedding 64, hidden 128) on every batch, for one
epoch. The texts are sentences of real words (wordfreq's 5,000 most frequent words of 4
languages, drawn by frequency; the label is the language), with lengths drawn from a
log-normal distribution (median 24 words, a long tail up to 400), as reviews and posts have.

- tutorial: ``text.lower().split()`` and a vocabulary dict, every text padded to the longest
  of the whole set, ``TensorDataset`` + ``DataLoader``, the GRU run over the padded batch and
  its output at each text's last real step picked out;
- netwright: the ``word`` tokenizer of ``tokenizers`` (trained and run in Rust), ``TokenIds``
  with per-batch padding and length buckets, ``make_batches``, and the zoo's
  ``text_classifier`` (packed sequences); also without length buckets (per-batch padding
  alone), to show what each part buys.

Tokens are the real (unpadded) tokens of the epoch; the rate counts tokenizing, batching and
the steps. The pipelines alternate over three rounds; medians and their ratio are printed.

    python -m compileall -q src && python benchmarks/text.py [--rounds 3] [--texts 8000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from torch import nn

LANGS = ("en", "fr", "de", "es")


def make_texts(n: int, seed: int = 0) -> tuple[list[str], list[int]]:
    from wordfreq import top_n_list, word_frequency

    rng = np.random.default_rng(seed)
    vocab = {}
    for lang in LANGS:
        words = [w for w in top_n_list(lang, 5000) if w.isalpha()]
        freq = np.array([word_frequency(w, lang) for w in words])
        vocab[lang] = (words, freq / freq.sum())
    lengths = np.clip(rng.lognormal(np.log(24), 0.9, size=n).astype(int), 3, 400)
    texts, labels = [], []
    for i, length in enumerate(lengths):
        label = i % len(LANGS)
        words, p = vocab[LANGS[label]]
        texts.append(" ".join(rng.choice(words, size=length, p=p)))
        labels.append(label)
    return texts, labels


class TutorialGRU(nn.Module):
    def __init__(self, vocab: int, classes: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 64, padding_idx=0)
        self.gru = nn.GRU(64, 128, batch_first=True)
        self.fc = nn.Linear(128, classes)

    def forward(self, ids, lengths):
        seq, _ = self.gru(self.embedding(ids))
        last = seq[torch.arange(len(ids)), lengths - 1]
        return self.fc(last)


def tutorial_epoch(texts: list[str], labels: list[int]) -> tuple[int, float]:
    torch.manual_seed(0)
    start = time.perf_counter()
    vocab = {"<pad>": 0, "<unk>": 1}
    tokens = [t.lower().split() for t in texts]
    for row in tokens:
        for w in row:
            vocab.setdefault(w, len(vocab))
    longest = max(len(r) for r in tokens)
    ids = torch.zeros(len(tokens), longest, dtype=torch.long)
    for i, row in enumerate(tokens):
        ids[i, :len(row)] = torch.tensor([vocab.get(w, 1) for w in row])
    lengths = torch.tensor([len(r) for r in tokens])
    data = torch.utils.data.TensorDataset(ids, lengths, torch.tensor(labels))
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True)
    model = TutorialGRU(len(vocab), len(LANGS))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    count = 0
    for x, n, y in loader:
        opt.zero_grad()
        loss_fn(model(x, n), y).backward()
        opt.step()
        count += int(n.sum())
    return count, time.perf_counter() - start


def netwright_epoch(texts: list[str], labels: list[int], bucket: bool = True) -> tuple[int, float]:
    from netwright.data.batches import make_batches
    from netwright.data.sources import DatasetSource
    from netwright.data.texts import texts as nw_texts
    from netwright.models.zoo import build_zoo

    torch.manual_seed(0)
    start = time.perf_counter()
    data = nw_texts(texts, labels, tokenizer={"kind": "word", "vocab_size": 30000,
                                               "min_frequency": 1}, max_length=512,
                    bucket=bucket)
    batches = make_batches(DatasetSource(data), batch_size=64, shuffle=True,
                           device=torch.device("cpu"), generator=torch.Generator().manual_seed(0))
    model = build_zoo("text_classifier", vocab_size=data.vocab_size, num_classes=len(LANGS),
                      cell="gru", embed_dim=64, hidden_size=128, pool="last")
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    loss_fn = nn.CrossEntropyLoss()
    count = 0
    for x, y in batches:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        count += int((x != 0).sum())
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--texts", type=int, default=8000)
    args = parser.parse_args()
    texts, labels = make_texts(args.texts)
    lengths = [len(t.split()) for t in texts]
    print(f"{len(texts)} texts, {sum(lengths)} words (median {int(np.median(lengths))}, longest "
          f"{max(lengths)}); torch {torch.__version__}, {torch.get_num_threads()} threads")
    rates = {"tutorial": [], "netwright": [], "no buckets": []}
    runs = (("tutorial", tutorial_epoch), ("netwright", netwright_epoch),
            ("no buckets", lambda t, y: netwright_epoch(t, y, bucket=False)))
    for r in range(args.rounds):
        for name, fn in runs:
            count, seconds = fn(texts, labels)
            rates[name].append(count / seconds)
            print(f"round {r + 1}: {name:10s} {count} tokens in {seconds:.2f} s = "
                  f"{count / seconds:,.0f} tokens/s")
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"median tokens/s: tutorial {med['tutorial']:,.0f}, netwright {med['netwright']:,.0f} "
          f"({med['no buckets']:,.0f} without length buckets); netwright / tutorial = "
          f"{med['netwright'] / med['tutorial']:.2f}x (per-batch padding alone: "
          f"{med['no buckets'] / med['tutorial']:.2f}x)")


if __name__ == "__main__":
    main()
