"""Serving without the training stack: predictions from an exported ONNX model.

``netwright predict RUN_DIR INPUT --onnx`` reads the run's ``config.yaml``/``model.json``,
the input file and ``exports/model.onnx``, and runs onnxruntime: numpy, pandas and
onnxruntime only — for features files torch is never imported on this path. The run's standardisation is inside
the exported graph (the ``Scaled`` wrapper), so raw features go in and data-unit outputs come
out, exactly as with the torch model.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import read_json
from ..config import read_yaml_file
from ..errors import ConfigError, DataError

__all__ = ["prediction_rows", "read_inputs", "read_images", "read_texts", "read_sounds",
           "predict_table_onnx", "read_run_files"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def prediction_rows(out: np.ndarray, task: str, classes: list | None) -> tuple[list[str], list[list[Any]]]:
    """Rows of predictions from raw outputs: the class label and one probability per class
    (multiclass), the label and the positive-class probability (binary), or the values.

    >>> prediction_rows(np.array([[2.0, 0.0]]), "multiclass", ["cat", "dog"])[1][0][0]
    'cat'
    """
    out = np.asarray(out, dtype=np.float64)
    if task == "multiclass":
        probs = _softmax(out)
        names = [str(c) for c in (classes or range(out.shape[1]))]
        labels = probs.argmax(axis=1)
        return (["label"] + [f"p_{n}" for n in names],
                [[names[i]] + [round(float(p), 6) for p in row] for i, row in zip(labels, probs)])
    if task == "binary":
        p = 1.0 / (1.0 + np.exp(-out.reshape(len(out), -1)[:, 0]))
        names = [str(c) for c in (classes or [0, 1])]
        return ["label", f"p_{names[1]}"], [[names[int(v > 0.5)], round(float(v), 6)] for v in p]
    values = out.reshape(len(out), -1)
    header = ["prediction"] if values.shape[1] == 1 else [f"prediction_{i}" for i in range(values.shape[1])]
    return header, [[round(float(v), 6) for v in row] for row in values]


def read_inputs(path: str | os.PathLike, data_config: dict, meta: dict) -> np.ndarray:
    """Features from a .csv/.parquet/.npz/.npy file, shaped like the model's training inputs."""
    from ..config import DataConfig
    from ..data.prepare import features_from_file

    path = Path(path)
    if not path.is_file():
        raise DataError(f"input file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        from ..data.prepare import read_npy

        X = read_npy(path)
    elif suffix in (".csv", ".parquet", ".npz"):
        cfg = DataConfig(**data_config)
        if suffix != ".npz" and not cfg.features and meta.get("feature_names"):
            cfg = cfg.model_copy(update={"features": meta["feature_names"]})
        X, _, _ = features_from_file(path, cfg, need_target=False)
    else:
        raise DataError(f"input file {str(path)!r}: expected .csv, .parquet, .npz or .npy.")
    shape = tuple((meta.get("model") or {}).get("input_shape") or ())
    if shape and X.shape[1:] != shape:
        if int(np.prod(X.shape[1:])) != int(np.prod(shape)):
            raise DataError(f"input file {str(path)!r}: each sample has shape {X.shape[1:]}, the "
                            f"model was trained on {shape}. Fix: give the same features as in training.")
        X = X.reshape(len(X), *shape)
    return X


def predict_table_onnx(run_dir: str | os.PathLike, inputs: str | os.PathLike,
                       notes: list | None = None) -> tuple[list[str], list[list[Any]]]:
    """Predictions of ``RUN_DIR/exports/model.onnx`` for a features file (image files, texts);
    what reading the inputs stated (texts cut to max_length) is appended to ``notes``."""
    from ..exporting import predict_onnx

    folder = Path(run_dir)
    onnx_path = folder / "exports" / "model.onnx"
    if not onnx_path.is_file():
        raise ConfigError(f"{str(onnx_path)!r} does not exist. Fix: `netwright export {folder} "
                          f"--format onnx` first.")
    meta, config = read_run_files(folder)
    images = meta.get("images")
    texts = None
    if isinstance(meta.get("text"), dict):
        texts, X, cut = read_texts(folder, inputs, config["data"], meta["text"])
        if cut and notes is not None:
            notes.append(f"{cut} text(s) longer than {meta['text'].get('max_length')} tokens were "
                         f"cut to it")
    elif isinstance(meta.get("audio"), dict):
        paths, X = read_sounds(inputs, meta["audio"], notes)
    elif isinstance(images, dict):
        paths, X = read_images(inputs, images)
    else:
        X = read_inputs(inputs, config["data"], meta)
    out = predict_onnx(onnx_path, X)
    if isinstance(out, dict) or isinstance(out, (list, tuple)):
        raise ConfigError("predict --onnx: models with several outputs are not supported by the CLI yet.")
    header, rows = prediction_rows(out, meta.get("task", "regression"), meta.get("classes"))
    if texts is not None:
        return ["text"] + header, [[t] + row for t, row in zip(texts, rows)]
    if isinstance(images, dict) or isinstance(meta.get("audio"), dict):
        return ["path"] + header, [[str(p)] + row for p, row in zip(paths, rows)]
    return header, rows


def read_run_files(folder: Path) -> tuple[dict, dict]:
    """(model.json, config.yaml) of a run directory, each checked to be the mapping `netwright
    train` writes (config.yaml with a data section); read without torch."""
    meta = read_json(folder / "model.json", what="model.json", error=ConfigError)
    config = read_yaml_file(folder / "config.yaml", fix="Fix: pass a folder made by `netwright train`.")
    if not isinstance(meta, dict) or not isinstance(config, dict) or not isinstance(config.get("data"), dict):
        raise ConfigError(f"run directory {str(folder)!r}: model.json and config.yaml must be the "
                          f"mappings `netwright train` writes (config.yaml with a data section). Fix: "
                          f"pass a folder made by `netwright train`.")
    return meta, config


def read_texts(run_dir: Path, inputs: Any, data_config: dict,
               text: dict) -> tuple[list[str], np.ndarray, int]:
    """Texts (a .txt file, one per line, or a table's text column) tokenized by the run's
    tokenizer.json into right-padded int64 ids (the exported model finds the padding itself),
    and how many were cut to max_length."""
    from ..data.tokenize import encode_texts, load_tokenizer, texts_to_predict

    path = run_dir / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"run directory {str(run_dir)!r}: tokenizer.json is missing; a text "
                          f"run cannot read new texts without it. Fix: copy the whole run directory.")
    tokenizer = load_tokenizer(path.read_text(encoding="utf-8"), str(path))
    values, _ = texts_to_predict(Path(inputs), column=data_config.get("text"),
                                 errors=data_config.get("encoding_errors") or "strict")
    encoded = encode_texts(tokenizer, values, int(text.get("max_length") or 256))
    return values, encoded.padded(), encoded.truncated


def read_images(inputs: str | os.PathLike, images: dict) -> tuple[list[Path], np.ndarray]:
    """Image files (a file or a folder) decoded as in training: float32 (N, C, H, W) in [0, 1]
    (torchvision decodes them; the ONNX model then runs without torch)."""
    from ..data.images import check_images, decode, files_from

    paths = files_from(inputs)
    check_images(paths, skip_bad=False)
    try:
        channels, size = int(images["channels"]), tuple(int(s) for s in images["size"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"model.json: 'images' must be {{size: [h, w], channels: c}}; received "
                          f"{images!r}.") from None
    X = np.stack([decode(p, channels, size).numpy() for p in paths]).astype(np.float32) / 255
    return paths, X


def read_sounds(inputs: str | os.PathLike, audio: dict,
                notes: list | None = None) -> tuple[list[Path], np.ndarray]:
    """Sound files (a file or a folder) read as in evaluation: float32 waveforms (N, 1, L) at
    the run's sample rate, the centre cut or padded to its length (the ONNX model then computes
    the features itself). What reading them did (resampled, padded...) goes to ``notes``."""
    from ..data.audio import SOUNDS, check_audio, conversion_notes, decode, fit_length
    from ..data.files import files_from

    paths = files_from(inputs, SOUNDS)
    _, infos, _ = check_audio(paths, skip_bad=False)
    try:
        rate, length = int(audio["sample_rate"]), int(audio["num_samples"])
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"model.json: 'audio' must be {{sample_rate: hz, num_samples: n}}; "
                          f"received {audio!r}.") from None
    X = np.stack([fit_length(decode(p, rate), length) for p in paths])
    if notes is not None:
        notes += conversion_notes(infos, rate, length)
    return paths, X[:, None].astype(np.float32)
