"""Request bodies checked and turned into model inputs. Every refusal is a :class:`BadRequest`
with an HTTP status, the field it is about (``rows[3][17]``, ``texts[0]``, ``files[1]``) and a
message saying what was expected, what came, and the fix; nothing a client sends reaches the
model unchecked, and nothing it sends can make the service fail."""

from __future__ import annotations

import json
import math
import tempfile
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import NetwrightError
from .model import InputSchema

__all__ = ["BadRequest", "rows_from_json", "texts_from_json", "texts_from_files", "parse_json",
           "files_to_inputs"]

_SHOWN = 60  # characters of a received value quoted back
FLOAT32_MAX = float(np.finfo(np.float32).max)
# Uploads are decoded into memory: at most this many samples (values) per sound file after
# resampling, and pixels per image, so that a small file claiming hours of audio at 1 Hz or a
# 20000 x 20000 image cannot take the service's memory.
MAX_SOUND_SAMPLES = 2 ** 24  # 17 minutes at 16 kHz
MAX_IMAGE_PIXELS = 4096 * 4096


class BadRequest(Exception):
    """A request the service refuses: ``status`` (400, 413, 415, 422), ``field``, message."""

    def __init__(self, status: int, field: str, message: str) -> None:
        super().__init__(message)
        self.status, self.field, self.message = status, field, message

    def body(self) -> dict:
        return {"detail": self.message, "field": self.field}


def _shown(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def parse_json(body: bytes, example: str) -> dict:
    """The body as a JSON object, or a 400/422 naming what it was."""
    if not body.strip():
        raise BadRequest(400, "body", f"the request body is empty; expected JSON such as {example}. "
                                      f"Fix: send the JSON with Content-Type: application/json.")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest(400, "body", f"the request body is not UTF-8 text (byte {exc.start}); "
                                      f"JSON is sent as UTF-8. Fix: encode the JSON as UTF-8.") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise BadRequest(400, "body", f"the request body is not JSON ({str(exc)[:120]}); expected "
                                      f"{example}. Fix: send valid JSON with Content-Type: "
                                      f"application/json.") from None
    if not isinstance(data, dict):
        raise BadRequest(422, "body", f"expected a JSON object such as {example}; received a "
                                      f"{type(data).__name__} ({_shown(data)}).")
    return data


def _only(data: dict, key: str, example: str) -> Any:
    others = [k for k in data if k != key]
    if key not in data:
        hint = get_close_matches(others[0], [key], n=1) if others else []
        raise BadRequest(422, key, f"the request has no {key!r} field (it has "
                                   f"{sorted(map(str, others))[:5]}); expected {example}."
                                   + (f" Did you mean {key!r} instead of {others[0]!r}?" if hint else ""))
    if others:
        raise BadRequest(422, str(others[0]), f"unknown field {others[0]!r}; a request holds only "
                                              f"{key!r}, as in {example}.")
    return data[key]


def _check_count(values: Any, field: str, max_rows: int, what: str) -> None:
    if not isinstance(values, list):
        raise BadRequest(422, field, f"{field}: expected a list of {what}; received "
                                     f"{type(values).__name__} ({_shown(values)}).")
    if not values:
        raise BadRequest(422, field, f"{field}: the list is empty; expected at least one of {what}.")
    if len(values) > max_rows:
        raise BadRequest(413, field, f"{field}: {len(values)} items, more than this service takes "
                                     f"in one request ({max_rows}, its --max-rows). Fix: send them "
                                     f"in several requests.")


def _bad_value(row: Any, where: str) -> BadRequest | None:
    """The first value of ``row`` (nested lists) that is not a finite number, as an error."""
    if isinstance(row, list):
        for j, v in enumerate(row):
            found = _bad_value(v, f"{where}[{j}]")
            if found is not None:
                return found
        return None
    if isinstance(row, bool) or not isinstance(row, (int, float)):
        return BadRequest(422, where, f"{where}: expected a number; received {_shown(row)}.")
    if isinstance(row, float) and not math.isfinite(row):
        return BadRequest(422, where, f"{where}: {row} is not a finite number; the model cannot "
                                      f"use NaN or infinity. Fix: fill or drop the missing value.")
    if abs(row) > FLOAT32_MAX:
        return BadRequest(422, where, f"{where}: {_shown(row)} is beyond float32's range "
                                      f"(±{FLOAT32_MAX:.4g}), the model's input type; it would "
                                      f"become infinity. Fix: send the value in the training "
                                      f"data's units.")
    return None


def _shape_of(row: Any) -> tuple[int, ...] | None:
    """The shape of a rectangular nested list, None when ragged."""
    if not isinstance(row, list):
        return ()
    inner = [_shape_of(v) for v in row]
    if any(s is None or s != inner[0] for s in inner):
        return None
    return (len(row),) + (inner[0] if inner else ())


def _row_by_name(row: dict, i: int, names: tuple[str, ...]) -> list:
    missing = [n for n in names if n not in row]
    extra = [k for k in row if k not in set(names)]
    if extra:
        hint = get_close_matches(str(extra[0]), names, n=1)
        raise BadRequest(422, f"rows[{i}].{extra[0]}", f"rows[{i}]: unknown feature {extra[0]!r}"
                         + (f" (did you mean {hint[0]!r}?)" if hint else "")
                         + f"; the model's features are {list(names[:8])}"
                         + ("..." if len(names) > 8 else "") + ".")
    if missing:
        raise BadRequest(422, f"rows[{i}].{missing[0]}", f"rows[{i}]: feature {missing[0]!r} is "
                         f"missing ({len(missing)} of {len(names)} missing). Fix: give every "
                         f"feature the model was trained on, by name.")
    values = [row[n] for n in names]
    for n, v in zip(names, values):
        bad = _bad_value(v, f"rows[{i}].{n}") if not isinstance(v, list) else BadRequest(
            422, f"rows[{i}].{n}", f"rows[{i}].{n}: expected a number; received a list.")
        if bad is not None:
            raise bad
    return values


def rows_from_json(data: dict, schema: InputSchema, max_rows: int, *,
                   booleans: bool = True) -> np.ndarray:
    """``{"rows": [...]}`` as a float32 array (N, *shape): each row flat (``size`` numbers),
    nested in the model's input shape, or an object keyed by feature name. ``booleans``: the
    body may hold ``true``/``false`` (NumPy would read them as 1 and 0 among numbers); the
    caller knows from the raw bytes, so that the common body is not walked value by value."""
    example = '{"rows": [[...], ...]}'
    rows = _only(data, "rows", example)
    _check_count(rows, "rows", max_rows, "rows")
    if schema.feature_names and any(isinstance(r, dict) for r in rows):
        rows = [_row_by_name(r, i, schema.feature_names) if isinstance(r, dict) else r
                for i, r in enumerate(rows)]
    try:
        return _rows_array(rows, schema, booleans)
    except RecursionError:  # lists nested hundreds deep: walking them exhausts the stack
        raise BadRequest(422, "rows", f"rows are nested far deeper than the model's input "
                                      f"{list(schema.shape)}. Fix: send each row as {schema.size} "
                                      f"numbers, flat or nested in that shape.") from None


def _rows_array(rows: list, schema: InputSchema, booleans: bool) -> np.ndarray:
    try:
        X = np.asarray(rows)
    except (ValueError, TypeError, OverflowError):
        X = None
    if X is not None and X.dtype.kind in "iuf" and X.ndim >= 2 and booleans:
        for i, row in enumerate(rows):
            bad = _bad_value(row, f"rows[{i}]")
            if bad is not None:
                raise bad
    if X is not None and X.dtype.kind in "iuf" and X.ndim >= 2:
        flat = X.reshape(len(X), -1)
        wrong = ~np.isfinite(flat) if X.dtype.kind == "f" else np.zeros(flat.shape, bool)
        if X.dtype.kind == "f":
            wrong |= np.abs(np.where(wrong, 0, flat)) > FLOAT32_MAX
        else:  # int64 from JSON: beyond float32's range (np.abs(-2**63) overflows, so compare)
            wrong |= (flat > FLOAT32_MAX) | (flat < -FLOAT32_MAX)
        if wrong.any():
            i = int(np.flatnonzero(wrong.any(axis=1))[0])
            raise _bad_value(rows[i], f"rows[{i}]") or BadRequest(422, f"rows[{i}]", "out of range")
    else:
        # Not one rectangular block of numbers: find the first row that says why.
        for i, row in enumerate(rows):
            if isinstance(row, dict):
                raise BadRequest(422, f"rows[{i}]", f"rows[{i}]: rows keyed by feature name need "
                                 f"a model trained on named columns; this one takes "
                                 f"{schema.size} values by position. Fix: send a list of numbers.")
            if not isinstance(row, list):
                raise BadRequest(422, f"rows[{i}]", f"rows[{i}]: expected a list of {schema.size} "
                                 f"numbers; received {_shown(row)}.")
            bad = _bad_value(row, f"rows[{i}]")
            if bad is not None:
                raise bad
        shapes = [_shape_of(r) for r in rows]
        i = next((k for k, s in enumerate(shapes) if s is None or s != shapes[0]), 0)
        raise BadRequest(422, f"rows[{i}]", f"rows[{i}] has {_describe(rows[i])}, rows[0] has "
                         f"{_describe(rows[0])}; every row must have {schema.size} values (the "
                         f"model's input {list(schema.shape)}).")
    sample = X.shape[1:]
    if sample == schema.shape or (X.ndim == 2 and X.shape[1] == schema.size):
        return np.ascontiguousarray(X.reshape(len(X), *schema.shape), dtype=np.float32)
    i = 0
    raise BadRequest(422, f"rows[{i}]", f"rows[{i}] has {_describe(rows[i])}; the model takes "
                     f"{schema.size} values per row (flat, or nested as {list(schema.shape)}). "
                     f"Fix: send each sample's {schema.size} features.")


def _describe(row: Any) -> str:
    shape = _shape_of(row)
    if shape is None:
        return "ragged nested lists"
    if len(shape) <= 1:
        return f"{shape[0] if shape else 1} value(s)"
    return f"shape {list(shape)}"


def texts_from_json(data: dict, max_rows: int, max_chars: int) -> list[str]:
    """``{"texts": ["...", ...]}``: non-empty strings, at most ``max_rows`` of them."""
    texts = _only(data, "texts", '{"texts": ["a text", ...]}')
    _check_count(texts, "texts", max_rows, "texts")
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BadRequest(422, f"texts[{i}]", f"texts[{i}]: expected a string; received "
                                                 f"{_shown(t)}.")
        if not t.strip():
            raise BadRequest(422, f"texts[{i}]", f"texts[{i}] is empty; there is nothing to "
                                                 f"predict from. Fix: leave it out.")
        if len(t) > max_chars:
            raise BadRequest(413, f"texts[{i}]", f"texts[{i}] has {len(t)} characters, more than "
                                                 f"{max_chars}. Fix: send a shorter text.")
    return texts


def texts_from_files(uploads: list[tuple[str, bytes]], *, errors: str = "strict") -> list[str]:
    """The texts of uploaded ``.txt`` files, one per line, read as ``netwright predict`` reads a
    .txt file (UTF-8, a BOM dropped, the run's ``data.encoding_errors``); a blank line, a byte
    that is not UTF-8 or another file kind is named with the file and line."""
    from ..data.tokenize import decode_bytes

    texts: list[str] = []
    for i, (name, content) in enumerate(uploads):
        if Path(name).suffix.lower() != ".txt":
            raise BadRequest(415, f"files[{i}]", f"files[{i}] ({name!r}): a text run reads .txt "
                             f"files (one text per line), or JSON {{\"texts\": [...]}}.")
        try:
            text, _ = decode_bytes(content, f"files[{i}] ({name!r})", errors)
        except NetwrightError as exc:
            raise BadRequest(422, f"files[{i}]", str(exc).split(" Fix:")[0]
                             + " Fix: save the file as UTF-8.") from None
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if lines and lines[-1] == "":
            lines.pop()
        for k, line in enumerate(lines):
            if not line.strip():
                raise BadRequest(422, f"files[{i}]", f"files[{i}] ({name!r}), line {k + 1} is "
                                 f"empty; there is nothing to predict from. Fix: remove it.")
        texts += lines
    return texts


def files_to_inputs(uploads: list[tuple[str, bytes]], schema: InputSchema, meta: dict,
                    notes: list) -> tuple[list[str], np.ndarray]:
    """Uploaded image or sound files decoded exactly as ``netwright predict`` reads files
    (they are written to a private temporary folder for the decoders, then deleted); an
    error names the upload, not the temporary file."""
    from ..data.audio import AUDIO_SUFFIXES
    from ..data.files import IMAGE_SUFFIXES
    from .onnx import read_images, read_sounds

    suffixes = IMAGE_SUFFIXES if schema.kind == "images" else AUDIO_SUFFIXES
    names = [name for name, _ in uploads]
    with tempfile.TemporaryDirectory(prefix="netwright-serve-") as tmp:
        paths = []
        for i, (name, content) in enumerate(uploads):
            suffix = Path(name).suffix.lower()
            if suffix not in suffixes:
                raise BadRequest(415, f"files[{i}]", f"files[{i}] ({name!r}): expected a "
                                 f"{'/'.join(s.lstrip('.') for s in suffixes)} file; this run "
                                 f"was trained on {schema.kind}.")
            if not content:
                raise BadRequest(422, f"files[{i}]", f"files[{i}] ({name!r}) is empty (0 bytes).")
            path = Path(tmp) / f"{i}{suffix}"
            path.write_bytes(content)
            paths.append(path)
        try:
            _check_sizes(paths, names, schema, meta)
            if schema.kind == "images":
                _, X = read_images(paths, meta["images"])
            else:
                _, X = read_sounds(paths, meta["audio"], notes)
        except NetwrightError as exc:
            message = str(exc)
            field = "files"
            for i, p in enumerate(paths):
                if str(p) in message:
                    message, field = message.replace(str(p), names[i]), f"files[{i}]"
            message = message.split(" Fix:")[0] + " Fix: send a file that opens in other programs."
            raise BadRequest(422, field, message) from None
    return names, np.ascontiguousarray(X, dtype=np.float32)


def _check_sizes(paths: list[Path], names: list[str], schema: InputSchema, meta: dict) -> None:
    """Refuse (413) a file whose decoded size would be out of proportion to its bytes, from its
    header alone, before anything is decoded."""
    if schema.kind == "images":
        from ..data.images import check_images

        _, shapes, _ = check_images(paths, skip_bad=False)
        _check_total([h * w for h, w, _ in shapes], MAX_IMAGE_PIXELS, "pixels")
        for i, (h, w, _) in enumerate(shapes):
            if h * w > MAX_IMAGE_PIXELS:
                raise BadRequest(413, f"files[{i}]", f"files[{i}] ({names[i]!r}) is {w} x {h} "
                                 f"pixels; the service decodes at most {MAX_IMAGE_PIXELS:,} pixels "
                                 f"per image (the model reads {meta['images'].get('size')}). Fix: "
                                 f"resize it first.")
        return
    from ..data.audio import check_audio

    _, infos, _ = check_audio(paths, skip_bad=False)
    rate = int(meta["audio"]["sample_rate"])
    sizes = [max(f * c, int(f * rate / max(r, 1))) for f, r, c in infos]
    _check_total(sizes, MAX_SOUND_SAMPLES, "samples")
    for i, (frames, file_rate, channels) in enumerate(infos):
        decoded = sizes[i]
        if decoded > MAX_SOUND_SAMPLES:
            raise BadRequest(413, f"files[{i}]", f"files[{i}] ({names[i]!r}) holds {frames:,} frames "
                             f"at {file_rate} Hz ({channels} channel(s)): {decoded:,} samples once "
                             f"read at {rate} Hz; the service reads at most {MAX_SOUND_SAMPLES:,} "
                             f"per file. Fix: send a shorter clip.")


def _check_total(sizes: list[int], limit: int, unit: str) -> None:
    if len(sizes) > 1 and sum(sizes) > 4 * limit and max(sizes) <= limit:
        raise BadRequest(413, "files", f"the {len(sizes)} files decode to {sum(sizes):,} {unit} in "
                                       f"all; one request decodes at most {4 * limit:,}. Fix: send "
                                       f"them in several requests.")
