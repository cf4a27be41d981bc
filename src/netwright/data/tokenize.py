"""Texts → token ids, with the Hugging Face ``tokenizers`` library (trained on the training split).

Four kinds: ``bpe`` (byte-pair merges), ``wordpiece`` (BERT's), ``word`` (whole words and
punctuation) and ``char`` (one token per character). Every tokenizer has the padding token at
id 0 and the unknown token at id 1; texts are NFC-normalised (and lowercased unless told not
to). A run saves its tokenizer as ``tokenizer.json`` and prediction reloads it from there.
Encoded texts are kept as one flat int64 array and the offsets of each text (:class:`Encoded`),
not as a padded matrix: a batch is padded to its own longest text when it is made.
"""

from __future__ import annotations

from dataclasses import dataclass
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import ConfigError, DataError

__all__ = ["PAD", "UNK", "SPECIAL_TOKENS", "Encoded", "train_tokenizer", "load_tokenizer",
           "encode_texts", "require_tokenizers", "decode_bytes", "texts_to_predict", "TEXT_FILES",
           "read_text_table", "table_column", "row_names", "refuse_empty"]

# Files that hold texts to predict on: one text per line (.txt), or a table's text column.
TEXT_FILES = (".txt", ".csv", ".parquet", ".jsonl", ".json")

PAD, UNK = 0, 1
SPECIAL_TOKENS = ["[PAD]", "[UNK]"]


def require_tokenizers() -> Any:
    """The ``tokenizers`` package, or an error that says how to install it."""
    try:
        import tokenizers
    except ImportError as exc:
        raise ConfigError("data: texts are tokenized by the package 'tokenizers', which is not "
                          "installed. Fix: pip install 'netwright[text]'.") from exc
    return tokenizers


def train_tokenizer(texts: Sequence[str], *, kind: str = "bpe", vocab_size: int = 8000,
                    lowercase: bool = True, min_frequency: int = 2) -> Any:
    """A ``tokenizers.Tokenizer`` of ``kind`` trained on ``texts``.

    >>> tok = train_tokenizer(["abc abd", "abe"], kind="char", min_frequency=1)
    >>> tok.token_to_id("[PAD]"), tok.token_to_id("[UNK]"), tok.get_vocab_size()
    (0, 1, 8)
    """
    tk = require_tokenizers()
    from tokenizers import Regex, models, normalizers, pre_tokenizers, trainers

    options = {"vocab_size": int(vocab_size), "min_frequency": int(min_frequency),
               "special_tokens": SPECIAL_TOKENS, "show_progress": False}
    if kind == "char":
        tok = tk.Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Split(Regex("(?m:.)"), behavior="isolated")
        trainer = trainers.WordLevelTrainer(**options)
    elif kind == "word":
        tok = tk.Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.WordLevelTrainer(**options)
    elif kind == "bpe":
        tok = tk.Tokenizer(models.BPE(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        trainer = trainers.BpeTrainer(**options)
    elif kind == "wordpiece":
        tok = tk.Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        trainer = trainers.WordPieceTrainer(**options)
    else:
        raise ConfigError(f"data.tokenizer.kind: expected bpe, wordpiece, word or char; received "
                          f"{kind!r}.")
    steps = [normalizers.NFC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok.normalizer = normalizers.Sequence(steps)
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    if (tok.token_to_id("[PAD]"), tok.token_to_id("[UNK]")) != (PAD, UNK):  # pragma: no cover
        raise ConfigError("data.tokenizer: the trained tokenizer does not have [PAD]=0, [UNK]=1.")
    return _plain_specials(tok)


def _plain_specials(tok: Any) -> Any:
    """A literal "[PAD]" or "[UNK]" inside a text is text, never id 0 (padding) or 1: the
    models read id 0 as the end of a text. (Not kept in tokenizer.json: set on every load.)"""
    if hasattr(tok, "encode_special_tokens"):
        tok.encode_special_tokens = True
    return tok


def load_tokenizer(text: str, where: str) -> Any:
    """A tokenizer from the JSON that ``Tokenizer.to_str()`` wrote (a run's tokenizer.json)."""
    tk = require_tokenizers()
    try:
        tok = tk.Tokenizer.from_str(text)
    except Exception as exc:  # noqa: BLE001 - the library's error type is not exported
        raise ConfigError(f"{where}: not a tokenizer the 'tokenizers' library can read ({exc}). "
                          f"Fix: train the run again; never edit tokenizer.json by hand.") from None
    if (tok.token_to_id("[PAD]"), tok.token_to_id("[UNK]")) != (PAD, UNK):
        raise ConfigError(f"{where}: the tokenizer must have [PAD] at id 0 and [UNK] at id 1; "
                          f"received {tok.token_to_id('[PAD]')} and {tok.token_to_id('[UNK]')}.")
    return _plain_specials(tok)


def decode_bytes(raw: bytes, where: str, errors: str = "strict") -> tuple[str, int]:
    """(text, replaced byte sequences) of a file's bytes as UTF-8 (a BOM is dropped).

    >>> decode_bytes(b"ok\\nbad \\xff", "f.txt", "replace")
    ('ok\\nbad \\ufffd', 1)
    """
    try:
        return raw.decode("utf-8-sig"), 0
    except UnicodeDecodeError as exc:
        if errors != "replace":
            line = raw[:exc.start].count(b"\n") + 1
            raise DataError(
                f"{where}, line {line}: bytes that are not UTF-8 ({raw[exc.start:exc.start + 4]!r} "
                f"at byte {exc.start}). Fix: save the file as UTF-8, or set "
                f"data.encoding_errors: replace (each such byte sequence becomes U+FFFD, counted)."
            ) from None
    text = raw.decode("utf-8-sig", errors="replace")
    return text, text.count("\ufffd") - raw.count("\ufffd".encode())


def texts_to_predict(data: Any, *, column: str | None = None,
                     errors: str = "strict") -> tuple[list[str], list[str]]:
    """(texts, where each came from) to predict on: a list of strings, one string, a ``.txt``
    file (one text per line) or a table's ``column`` (default ``text``). A string is a file when
    one exists at that path, or when it ends in a text-file suffix and holds no space (then a
    missing file is an error); any other string is one text. Empty texts are named.
    Only NumPy and pandas are used (no torch: ``predict --onnx`` reads texts too)."""
    if isinstance(data, os.PathLike) or (isinstance(data, str) and (
            Path(data).is_file() or (Path(data).suffix.lower() in TEXT_FILES and not any(
                c.isspace() for c in data)))):
        path = Path(data)
        if not path.is_file():
            raise DataError(f"texts file {str(path)!r} does not exist.")
        if path.suffix.lower() not in TEXT_FILES:
            raise DataError(f"texts file {str(path)!r}: expected one of {', '.join(TEXT_FILES)}.")
        if path.suffix.lower() == ".txt":
            text, _ = decode_bytes(path.read_bytes(), f"texts file {str(path)!r}", errors)
            # Lines end at "\n" (and "\r\n") only: a form feed or U+2028 inside a text stays.
            values = [line.removesuffix("\r") for line in text.split("\n")]
            if values and values[-1] == "":
                values.pop()
            where = [f"{path.name} line {i + 1}" for i in range(len(values))]
        else:
            df, _ = read_text_table(path, errors)
            values = table_column(df, column or "text", "data.text", path)
            where = row_names(path, len(values))
    elif isinstance(data, str):
        values, where = [data], ["text 0"]
    else:
        values = list(data)
        where = [f"text {i}" for i in range(len(values))]
    refuse_empty(values, where, "there is nothing to predict from. Fix: remove it (a .txt file "
                                "holds one text per line, no blank lines)")
    return values, where


def refuse_empty(values: Sequence[Any], where: Sequence[str], why_and_fix: str) -> None:
    """An error naming the first of ``values`` that is empty, whitespace only or not a string."""
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v.strip()]
    if bad:
        raise DataError(f"{where[bad[0]]}: {values[bad[0]]!r} is empty or not a text ({len(bad)} "
                        f"such); {why_and_fix}.")


def read_text_table(path: Path, errors: str = "strict") -> tuple[Any, int]:
    """(DataFrame, replaced byte sequences) of a CSV/Parquet/JSON(-lines) file; CSV and JSON
    are decoded here so that a byte that is not UTF-8 is named with its line."""
    import io

    import pandas as pd

    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return pd.read_parquet(path), 0
    decoded, replaced = decode_bytes(path.read_bytes(), f"data file {str(path)!r}", errors)
    try:
        if suffix == ".csv":
            df = pd.read_csv(io.StringIO(decoded), dtype=str, keep_default_na=False)
        else:
            df = pd.read_json(io.StringIO(decoded), lines=suffix == ".jsonl", dtype=False)
    except ValueError as exc:
        hint = {".csv": "a header row naming the columns, then one row per text",
                ".json": "a list of records [{\"text\": ..., \"label\": ...}, ...]; one record "
                         "per line is JSON lines: name the file .jsonl",
                ".jsonl": "one JSON record per line, {\"text\": ..., \"label\": ...}"}[suffix]
        raise DataError(f"data file {str(path)!r}: not a readable {suffix[1:].upper()} table "
                        f"({exc}). Fix: {hint}.") from None
    df.columns = [str(c) for c in df.columns]
    return df, replaced


def table_column(df: Any, column: str, what: str, path: Path) -> list[Any]:
    """A column's values, or an error that lists the columns there are."""
    from ..errors import did_you_mean

    columns = list(df.columns)
    if column not in columns:
        raise DataError(f"{what}: column {column!r} is not in {str(path)!r}."
                        f"{did_you_mean(column, columns)} Its columns are {columns[:20]}. Fix: "
                        f"set {what} to one of them.")
    return df[column].tolist()


def row_names(path: Path, n: int) -> list[str]:
    """"reviews.csv row 2" ... for messages (a CSV's header is row 1)."""
    first = 2 if path.suffix.lower() == ".csv" else 1
    return [f"{path.name} row {i + first}" for i in range(n)]


@dataclass
class Encoded:
    """Token ids of many texts: ``ids[offsets[i]:offsets[i + 1]]`` is text ``i``."""

    ids: np.ndarray  # int64, flat
    offsets: np.ndarray  # int64, len(texts) + 1
    truncated: int  # texts cut to max_length
    unknown: int  # [UNK] tokens among the ids

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> np.ndarray:
        return self.ids[self.offsets[i]:self.offsets[i + 1]]

    def unknown_share(self) -> float:
        return self.unknown / max(1, len(self.ids))

    def padded(self) -> np.ndarray:
        """(N, longest) int64 ids, right-padded with PAD."""
        out = np.full((len(self), int(self.lengths.max(initial=1))), PAD, dtype=np.int64)
        for i in range(len(self)):
            row = self.row(i)
            out[i, :len(row)] = row
        return out


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> Encoded:
    """Every text's ids (no special tokens added), each cut to ``max_length`` (counted).

    >>> tok = train_tokenizer(["abc abd", "abe"], kind="char", min_frequency=1)
    >>> e = encode_texts(tok, ["abcx", "ab"], max_length=3)
    >>> e.lengths.tolist(), e.truncated, int(e.row(1)[0]) > UNK
    ([3, 2], 1, True)
    """
    rows = [enc.ids for enc in tokenizer.encode_batch(list(texts), add_special_tokens=False)]
    lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
    truncated = int((lengths > max_length).sum())
    if truncated:
        rows = [r[:max_length] for r in rows]
        lengths = np.minimum(lengths, max_length)
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.fromiter((t for r in rows for t in r), dtype=np.int64, count=int(offsets[-1]))
    return Encoded(ids, offsets, truncated, int((ids == UNK).sum()))
