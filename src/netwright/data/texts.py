"""Texts as training data: a table (CSV, Parquet, JSON lines) with a text and a label column,
a folder of class sub-folders of ``.txt`` files, the built-in ``languages`` set, or strings
from Python (:func:`texts`).

Files are read as bytes and decoded here, so a byte that is not UTF-8 is named with its file and
line (or replaced and counted with ``encoding_errors="replace"``). Empty and whitespace-only
texts are named (or left out with ``skip_bad``). Labels become class ids; the class names are
kept, so predictions come back as the user's labels. The tokenizer is trained on the training
split only. A :class:`TokenIds` dataset holds the ids of its texts flat and pads each batch to
its own longest text; its :meth:`TokenIds.bucket_sampler` makes training batches of similar
lengths. The models read the padding mask from the ids (padding is id 0).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils.rnn import pad_sequence
from torch.utils.data import Dataset, Sampler

from ..errors import ConfigError, DataError
from .tokenize import (PAD, Encoded, decode_bytes, encode_texts, read_text_table, refuse_empty,
                       row_names, table_column, train_tokenizer)

__all__ = ["TextList", "TokenIds", "BucketBatches", "pad_batch", "read_texts", "texts",
           "prepare_texts", "is_text_source", "folder_kind", "sample_tokens", "TEXT_SUFFIXES"]

TEXT_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")  # tables of texts and labels
# Training batches are drawn from pools of this many batches, sorted by length within a pool.
BUCKET_POOL = 50


@dataclass
class TextList:
    """Texts read and checked: the strings, class ids, class names, and where each came from."""

    texts: list[str]
    labels: np.ndarray | None  # int64 class ids, or None (prediction)
    classes: list | None
    where: list[str]  # "reviews.csv row 3" or a file path, for messages
    notes: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)


def folder_kind(root: Path) -> str | None:
    """"text" when the class sub-folders of ``root`` hold ``.txt`` files only, "audio" when
    they hold sound files only, "images" when they hold images, None when it cannot be told
    (no files)."""
    from .audio import AUDIO_SUFFIXES
    from .images import IMAGE_SUFFIXES

    seen = 0
    kinds = set()
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for p in sub.rglob("*"):
            suffix = p.suffix.lower()
            if suffix == ".txt":
                kinds.add("text")
            elif suffix in IMAGE_SUFFIXES:
                kinds.add("images")
            elif suffix in AUDIO_SUFFIXES:
                kinds.add("audio")
            seen += 1
            if seen >= 200:
                break
        if seen >= 200:
            break
    if kinds == {"text"}:
        return "text"
    if "audio" in kinds and "images" not in kinds:
        return "audio"  # sound files, perhaps with their transcripts (.txt) beside them
    return "images" if kinds else None


def is_text_source(cfg: Any) -> bool:
    """Whether a config's data is texts: ``data.text`` is set, the source is the built-in
    ``languages`` set, or a folder of class folders of ``.txt`` files."""
    from .builtin import BUILTIN

    if cfg.text is not None:
        return True
    key = cfg.source.strip().lower()
    if key in BUILTIN:
        return BUILTIN[key].kind == "text"
    if cfg.streaming or cfg.image is not None:
        return False
    path = Path(cfg.source)
    return path.is_dir() and folder_kind(path) == "text"


def _read_table_texts(path: Path, text: str, target: str | None,
                      errors: str) -> tuple[list[Any], list[Any] | None, list[str], list[str]]:
    """(texts, labels, where, notes) from a CSV/Parquet/JSON-lines file."""
    if not path.is_file():
        raise DataError(f"data.source {str(path)!r}: no such file.")
    df, replaced = read_text_table(path, errors)
    notes = ([f"{path.name}: {replaced} byte sequence(s) that are not UTF-8 became U+FFFD"]
             if replaced else [])
    values = table_column(df, text, "data.text", path)
    labels = table_column(df, target, "data.target", path) if target is not None else None
    return values, labels, row_names(path, len(values)), notes


def _read_folder_texts(root: Path, errors: str) -> tuple[list[str], list[str], list[str], list[str], list[str]]:
    """(texts, labels, where, classes, notes) of a folder of class folders of ``.txt`` files."""
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not subs:
        raise DataError(f"data.source {str(root)!r}: expected one sub-folder per class holding "
                        f"its .txt files (root/positive/1.txt); found no sub-folders.")
    texts, labels, where, empty, replaced = [], [], [], [], 0
    for sub in subs:
        files = sorted(p for p in sub.rglob("*") if p.is_file() and p.suffix.lower() == ".txt")
        if not files:
            empty.append(sub.name)
        for f in files:
            text, n = decode_bytes(f.read_bytes(), f"text file {str(f)!r}", errors)
            replaced += n
            texts.append(text)
            labels.append(sub.name)
            where.append(str(f))
    if empty:
        raise DataError(f"data.source {str(root)!r}: class folder(s) {empty[:5]} hold no .txt "
                        f"files. Fix: add texts, or remove the empty folder(s).")
    notes = [f"{replaced} byte sequence(s) that are not UTF-8 became U+FFFD"] if replaced else []
    return texts, labels, where, [s.name for s in subs], notes


def _encode_labels(names: list[Any], where: list[str], classes: Sequence[Any] | None,
                   what: str) -> tuple[np.ndarray, list]:
    if not names:
        raise DataError(f"{what}: no texts to read (none in the file, or every one left out as "
                        f"empty). Fix: give texts with their labels.")
    # Labels read from a CSV are strings: "10" and "2" are the numbers 10 and 2 (sorted so).
    if all(isinstance(v, str) and v.lstrip("-").isdigit() and str(int(v)) == v for v in names):
        names = [int(v) for v in names]
    missing = [i for i, v in enumerate(names) if v is None or (isinstance(v, float) and v != v)
               or (isinstance(v, str) and not v.strip())]
    if missing:
        raise DataError(f"{where[missing[0]]}: the text has no label ({len(missing)} such). "
                        f"Fix: label it, or remove the row.")
    if classes is None:
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in names):
            classes = sorted({int(v) for v in names})
        else:
            names = [str(v) for v in names]
            classes = sorted(set(names))
        if len(classes) < 2:
            raise DataError(f"{what}: every text has the label {classes[0]!r}; a classifier needs "
                            f"at least two classes. Fix: add texts of another class.")
    lookup = {c: i for i, c in enumerate(classes)}
    lookup.update({str(c): i for i, c in enumerate(classes)})
    ids = np.empty(len(names), dtype=np.int64)
    for i, v in enumerate(names):
        key = v if v in lookup else str(v)
        if key not in lookup:
            raise DataError(f"{where[i]}: label {v!r} was not seen in training (the run's classes: "
                            f"{list(classes)[:20]}). Fix: leave such texts out of the evaluation.")
        ids[i] = lookup[key]
    return ids, list(classes)


def read_texts(source: str | os.PathLike, *, text: str | None = None, target: str | None = None,
               encoding_errors: str = "strict", skip_bad: bool = False,
               classes: Sequence[Any] | None = None, need_labels: bool = True) -> TextList:
    """Read and check the texts (and labels) of a table, a folder or the ``languages`` set."""
    from .builtin import BUILTIN, load_languages

    key = str(source).strip().lower()
    path = Path(source)
    notes: list[str] = []
    found = None
    if key in BUILTIN and BUILTIN[key].kind == "text":
        values, names = load_languages()
        where = [f"{key} word {i}" for i in range(len(values))]
    elif path.is_dir():
        if text is not None:
            raise ConfigError(f"data.text: {str(path)!r} is a folder of class folders; data.text "
                              f"names the text column of a table. Fix: leave it out.")
        values, names, where, found, notes = _read_folder_texts(path, encoding_errors)
    elif path.suffix.lower() in TEXT_SUFFIXES:
        if text is None:
            raise ConfigError(f"data.text: required to read texts from {path.name} (the column "
                              f"that holds them).")
        values, names, where, notes = _read_table_texts(path, text, target, encoding_errors)
        if names is None and need_labels:
            raise ConfigError(f"data.target: required with data.text (the column of class labels "
                              f"in {path.name}).")
    else:
        raise DataError(f"data.source {str(path)!r}: expected a folder of class folders of .txt "
                        f"files, or a .csv/.parquet/.jsonl table with data.text.")
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    skipped = []
    if bad:
        reason = lambda v: "empty text" if isinstance(v, str) or v is None else f"not a text: {v!r}"  # noqa: E731
        if not skip_bad:
            first = values[bad[0]]
            raise DataError(
                f"{where[bad[0]]}: {reason(first)} ({'whitespace only' if isinstance(first, str) and first else 'nothing'}"
                f"; {len(bad)} such text(s)). Fix: remove or fill them, or set data.skip_bad: true "
                f"to leave them out (counted).")
        skipped = [(where[i], reason(values[i])) for i in bad]
        keep = sorted(set(range(len(values))) - set(bad))
        values, where = [values[i] for i in keep], [where[i] for i in keep]
        names = [names[i] for i in keep] if names is not None else None
        notes.append(f"skipped {len(bad)} empty text(s): " + "; ".join(w for w, _ in skipped[:10])
                     + (" ..." if len(skipped) > 10 else ""))
    labels = None
    if names is not None and (need_labels or classes is not None):
        labels, classes = _encode_labels(names, where, classes if classes is not None else found,
                                         f"data.source {str(source)!r}")
    return TextList(values, labels, list(classes) if classes is not None else None, where,
                    notes, skipped)


def pad_batch(items: list[Any]) -> Any:
    """A list of ``ids`` or ``(ids, target)`` → ``(N, longest)`` int64 ids padded with 0
    (and the stacked targets).

    >>> pad_batch([(torch.tensor([5, 6, 7]), torch.tensor(1)), (torch.tensor([8]), torch.tensor(0))])
    (tensor([[5, 6, 7],
            [8, 0, 0]]), tensor([1, 0]))
    """
    if isinstance(items[0], (tuple, list)):
        ids, ys = zip(*items)
        return pad_sequence(list(ids), batch_first=True, padding_value=PAD), torch.stack(ys)
    return pad_sequence(list(items), batch_first=True, padding_value=PAD)


class BucketBatches(Sampler):
    """Shuffled batches of similar lengths: a seeded permutation per epoch, cut into pools of
    ``BUCKET_POOL`` batches, each pool sorted by length and cut into batches; the batches are
    shuffled and a short last batch stays last (so the sizes are known in order)."""

    def __init__(self, lengths: np.ndarray, batch_size: int, generator: torch.Generator | None,
                 drop_last: bool = False):
        self.lengths = np.asarray(lengths)
        self.batch_size = int(batch_size)
        self.generator = generator
        self.drop_last = drop_last

    def __len__(self) -> int:
        full, rest = divmod(len(self.lengths), self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)

    def sizes(self) -> list[int]:
        full, rest = divmod(len(self.lengths), self.batch_size)
        return [self.batch_size] * full + ([rest] if rest and not self.drop_last else [])

    def __iter__(self):
        # One draw from the run's generator per epoch, as torch's RandomSampler does, so a
        # resumed run continues with the same order.
        seed = int(torch.empty((), dtype=torch.int64).random_(generator=self.generator).item())
        g = torch.Generator().manual_seed(seed)
        n, bs = len(self.lengths), self.batch_size
        perm = torch.randperm(n, generator=g).numpy()
        # The short last batch is drawn at random before sorting, so drop_last does not drop
        # the longest texts every epoch.
        short, perm = perm[n - n % bs:], perm[:n - n % bs]
        pool = bs * BUCKET_POOL
        full = []
        for start in range(0, len(perm), pool):
            part = perm[start:start + pool]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            full += [part[i:i + bs] for i in range(0, len(part), bs)]
        for i in torch.randperm(len(full), generator=g).tolist():
            yield full[i].tolist()
        if len(short) and not self.drop_last:
            yield short.tolist()


class TokenIds(Dataset):
    """``(token ids, class id)`` pairs of encoded texts (``ids`` alone without labels).
    ``tokenizer``, ``classes`` and ``texts`` travel with it; ``vocab_size`` sizes a model."""

    def __init__(self, encoded: Encoded, labels: np.ndarray | None = None, *, binary: bool = False,
                 tokenizer: Any = None, classes: list | None = None, texts: list[str] | None = None,
                 bucket: bool = True):
        self.encoded = encoded
        self.tokenizer = tokenizer
        self.classes = classes
        self.texts = texts
        self.bucket = bucket
        self.ids = torch.from_numpy(encoded.ids)
        self.offsets = encoded.offsets.tolist()
        self.targets = None
        if labels is not None:
            t = torch.from_numpy(np.asarray(labels, dtype=np.int64))
            self.targets = t.float()[:, None] if binary else t

    @property
    def vocab_size(self) -> int:
        return int(self.tokenizer.get_vocab_size()) if self.tokenizer is not None else \
            int(self.encoded.ids.max(initial=PAD)) + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Any:
        row = self.ids[self.offsets[i]:self.offsets[i + 1]]
        return row if self.targets is None else (row, self.targets[i])

    def __getitems__(self, indices: list[int]) -> list[Any]:
        return [self[i] for i in indices]

    @staticmethod
    def collate(items: list[Any]) -> Any:
        return pad_batch(items)

    def bucket_sampler(self, batch_size: int, generator: torch.Generator | None,
                       drop_last: bool) -> BucketBatches | None:
        """Training batches of similar lengths, or None when bucketing is off."""
        if not self.bucket:
            return None
        return BucketBatches(self.encoded.lengths, batch_size, generator, drop_last)


def texts(values: Sequence[str] | str | os.PathLike, labels: Sequence[Any] | None = None, *,
          tokenizer: Any = None, max_length: int = 256, bucket: bool = True,
          classes: Sequence[Any] | None = None, text: str | None = None,
          target: str | None = None) -> TokenIds:
    """The Python entry (``nw.texts``): strings (with labels), or a table/folder/``"languages"``,
    as a :class:`TokenIds` dataset for ``nw.fit``. ``tokenizer``: the training set (a
    :class:`TokenIds`: its tokenizer and its classes, what validation data needs), a trained
    tokenizer, a dict such as ``{"kind": "char"}``, or None (BPE).

    >>> ds = texts(["good film", "bad film", "great", "awful"], ["pos", "neg", "pos", "neg"],
    ...            tokenizer={"kind": "word", "min_frequency": 1})
    >>> len(ds), ds.classes, ds[0][0].tolist() != ds[1][0].tolist()
    (4, ['neg', 'pos'], True)
    """
    if isinstance(tokenizer, TokenIds):  # the training set: the same tokenizer and class ids
        classes = classes if classes is not None else tokenizer.classes
        tokenizer = tokenizer.tokenizer
    if isinstance(values, (str, os.PathLike)):
        listed = read_texts(values, text=text, target=target, classes=classes)
    else:
        values = list(values)
        where = [f"texts: text {i}" for i in range(len(values))]
        refuse_empty(values, where, "a classifier learns nothing from it. Fix: remove such texts")
        ids, found = (None, classes)
        if labels is not None:
            labels = list(labels)
            if len(labels) != len(values):
                raise DataError(f"texts: {len(values)} texts but {len(labels)} labels. Fix: one "
                                f"label per text.")
            ids, found = _encode_labels(labels, where, classes, "texts")
        listed = TextList(values, ids, list(found) if found is not None else None, where)
    if tokenizer is None or isinstance(tokenizer, dict):
        options = {"kind": "bpe", "vocab_size": 8000, "lowercase": True, "min_frequency": 2,
                   **(tokenizer or {})}
        tokenizer = train_tokenizer(listed.texts, **options)
    encoded = encode_texts(tokenizer, listed.texts, max_length)
    return TokenIds(encoded, listed.labels, tokenizer=tokenizer, classes=listed.classes,
                    texts=listed.texts, bucket=bucket)


def sample_tokens(data: Any, count: int, seed: int = 0) -> list[dict]:
    """``count`` training texts (a seeded draw) with their label and the tokens the run's
    tokenizer makes of them (cut to max_length as in training), for ``netwright datasets show``."""
    train = data.train
    pick = np.random.default_rng(seed).permutation(len(train))[:count]
    limit = int((data.text or {}).get("max_length") or 10**9)
    rows = []
    for i in pick.tolist():
        text = train.texts[i]
        tokens = data.tokenizer.encode(text, add_special_tokens=False).tokens[:limit]
        label = int(train.targets[i].reshape(-1)[0])
        rows.append({"text": " ".join(text.split())[:120], "label": (data.classes or [])[label]
                     if data.classes else label, "tokens": tokens})
    return rows


def prepare_texts(cfg: Any, loss_task: str, loss_name: str | None = None,
                  tokenizer: Any = None) -> Any:
    """A config's texts → :class:`~netwright.data.prepare.Prepared` whose splits are
    :class:`TokenIds` (stratified by class, seeded), with the tokenizer trained on the
    training split and what tokenizing found (truncations, unknown tokens) in ``text``."""
    from ..dataconfig import TokenizerConfig
    from .prepare import Prepared, class_splits

    if loss_task == "regression":
        raise ConfigError(f"loss {loss_name or ''!r}: texts are read with class labels, and this "
                          f"is a regression loss. Fix: loss: cross_entropy (bce_with_logits for "
                          f"two classes).")
    for name in ("window", "shape", "features", "image_size", "channels", "augment", "mean", "std"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"data.{name}: not used for texts. Fix: leave it out.")
    if cfg.cache != "none":
        raise ConfigError("data.cache: texts are always held in memory (as token ids). Fix: leave "
                          "it out.")
    listed = read_texts(cfg.source, text=cfg.text, target=cfg.target,
                        encoding_errors=cfg.encoding_errors, skip_bad=cfg.skip_bad)
    if loss_task == "binary" and len(listed.classes) != 2:
        raise DataError(f"data: a binary loss needs exactly 2 classes; the texts have "
                        f"{len(listed.classes)}: {listed.classes[:10]}. Fix: loss: cross_entropy.")
    labels = listed.labels
    train_idx, val_idx, test_idx = class_splits(labels, cfg)
    options = (cfg.tokenizer or TokenizerConfig()).model_dump()
    if tokenizer is None:
        tokenizer = train_tokenizer([listed.texts[i] for i in train_idx], **options)
    binary = loss_task == "binary"
    found: dict[str, dict] = {"truncated": {}, "unknown_share": {}}
    longest = 1

    def part(idx: np.ndarray, name: str, bucket: bool = False) -> TokenIds | None:
        nonlocal longest
        if not len(idx):
            return None
        chosen = [listed.texts[i] for i in idx]
        encoded = encode_texts(tokenizer, chosen, cfg.max_length)
        found["truncated"][name] = encoded.truncated
        found["unknown_share"][name] = round(encoded.unknown_share(), 4)
        longest = max(longest, int(encoded.lengths.max(initial=1)))
        return TokenIds(encoded, labels[idx], binary=binary, tokenizer=tokenizer,
                        classes=listed.classes, texts=chosen, bucket=bucket)

    train = part(train_idx, "train", bucket=cfg.bucket)
    val, test = part(val_idx, "val"), part(test_idx, "test")
    notes = list(listed.notes)
    cut = sum(found["truncated"].values())
    if cut:
        notes.append(f"{cut} text(s) longer than data.max_length={cfg.max_length} tokens were cut "
                     f"to it ({', '.join(f'{k}: {v}' for k, v in found['truncated'].items() if v)})")
    vocab = int(tokenizer.get_vocab_size())
    notes.append(f"tokenizer: {options['kind']}, {vocab} tokens (trained on the {len(train_idx)} "
                 f"training texts)")
    if cfg.bucket and len(train_idx):
        notes.append("training batches are bucketed by length (except when the run is split "
                     "among processes: then each process pads its own shuffled batches)")
    return Prepared(
        train=train, val=val, test=test,
        task=loss_task if loss_task != "custom" else "multiclass",
        input_shape=(longest,), classes=listed.classes,
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
        notes=notes, skipped=list(listed.skipped), workers=0, tokenizer=tokenizer,
        text={"tokenizer": options, "vocab_size": vocab, "max_length": int(cfg.max_length),
              "longest": longest, **found},
    )
