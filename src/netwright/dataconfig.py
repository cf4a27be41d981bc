"""The ``data:`` section of a run config, and the small validators every section shares.

Split out of :mod:`netwright.config` (which re-exports all of it) to keep each module one
subject: what data a run reads, and how (tables, time series, streams, images, texts).
"""

from __future__ import annotations

import numbers
from typing import Annotated, Any, Literal, Optional, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator

__all__ = ["DataConfig", "TokenizerConfig", "StrictModel", "Whole", "is_bool", "positive_number",
           "whole_number", "verbosity"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def is_bool(v: Any) -> bool:
    return isinstance(v, bool) or type(v).__name__ in ("bool", "bool_")  # NumPy's too


def positive_number(v: Any) -> Any:
    if is_bool(v) or not isinstance(v, numbers.Real) or not v > 0:
        raise ValueError("expected a positive number")
    return float(v)


def whole_number(v: Any) -> Any:
    """Integers only: not True/False (which Python counts as 1/0), not 2.5 or "5"; NumPy
    integers (from a grid search) are accepted."""
    if is_bool(v) or (isinstance(v, float) and not v.is_integer()) or isinstance(v, str):
        raise ValueError("expected an integer")
    if hasattr(v, "__index__") and not isinstance(v, int):
        return int(v.__index__())
    return v


def verbosity(v: Any) -> Any:
    """``verbose``: 0, 1 or 2; ``False``/``True`` (a Keras habit) mean 0 and 1."""
    return int(v) if is_bool(v) else whole_number(v)


Whole = Annotated[int, BeforeValidator(whole_number)]


class TokenizerConfig(StrictModel):
    """How texts become token ids: a Hugging Face ``tokenizers`` model trained on the training
    split only, saved with the run as ``tokenizer.json``."""

    kind: Literal["bpe", "wordpiece", "word", "char"] = Field(
        "bpe", description="'bpe' (byte-pair merges), 'wordpiece' (BERT's), 'word' (whole words "
                           "and punctuation) or 'char' (one token per character)")
    vocab_size: Whole = Field(8000, ge=3, description="the largest vocabulary, the padding and "
                              "unknown tokens included")
    lowercase: StrictBool = Field(True, description="lowercase texts before tokenizing")
    min_frequency: Whole = Field(2, ge=1, description="a token seen fewer times in the training "
                                 "texts is unknown")


class DataConfig(StrictModel):
    """Where the data comes from and how it is split and scaled."""

    source: str = Field(description="a built-in data set (digits, iris, wine, breast_cancer, diabetes, "
                                    "mnist, sunspots, languages), a .csv/.parquet/.npz/.jsonl "
                                    "file, or a folder of images or .txt files in class sub-folders")
    target: Optional[Union[str, list[str]]] = Field(None, description="target column(s) (files) or key (.npz)")
    features: Optional[list[str]] = Field(None, description="feature columns; default: all but the target")
    val: float = Field(0.1, ge=0, lt=1, description="fraction held out for validation (0: none)")
    test: float = Field(0.2, ge=0, lt=1, description="fraction held out for the final test (0: none)")
    split: Literal["auto", "stratified", "random", "ordered"] = Field(
        "auto", description="auto: stratified for classes, ordered for time series, else random")
    seed: int = Field(0, description="seed of the splits")
    task: Optional[Literal["classification", "regression"]] = Field(
        None, description="what the targets are; default: inferred from them (whole numbers with "
                          "few distinct values are classes, other numbers are values). Set it to "
                          "accept a loss the inference disagrees with")
    standardize: Literal["features", "global", "none"] = Field(
        "features", description="inputs: per-feature mean/std, one global mean/std (images), or none; "
                                "fitted on the training split only")
    standardize_target: Optional[bool] = Field(
        None, description="regression targets scaled to mean 0, std 1 for training (default: on for "
                          "regression); the model still outputs original units")
    shape: Optional[list[int]] = Field(None, description="reshape each sample, e.g. [1, 28, 28] for images")
    window: Optional[int] = Field(None, ge=1, description="time series: predict the next value from this "
                                                          "many past values")
    streaming: StrictBool = Field(False, description="read `source` (a glob, folder or file of "
                                  "Parquet or .npy shards) as a stream that never holds the set; "
                                  "the splits are val_source and test_source")
    val_source: Optional[str] = Field(None, description="streaming: the validation shards")
    test_source: Optional[str] = Field(None, description="streaming: the test shards")
    shuffle_buffer: int = Field(10_000, ge=1, description="streaming: rows shuffled together")
    image: Optional[str] = Field(None, description="images: the column of a .csv/.parquet file "
                                 "that holds image paths (relative ones resolve against the file)")
    image_size: Optional[Union[Whole, list[Whole]]] = Field(
        None, description="images: resized (shorter side) and centre-cropped to this size, e.g. 28 "
                          "or [32, 48]; default: the images' own size when they all have one")
    channels: Optional[Literal[1, 3, 4]] = Field(
        None, description="images: 1 (grey), 3 (RGB) or 4 (RGBA); default: 1 when every image is "
                          "grey, else 3")
    cache: Literal["none", "memory"] = Field(
        "none", description="images and sounds: 'memory' keeps the decoded, resized images (uint8) "
                            "or the resampled clips in RAM, so later epochs decode nothing")
    skip_bad: StrictBool = Field(False, description="images, sounds and texts: leave out "
                                 "unreadable files and empty texts (counted and listed in the "
                                 "log) instead of stopping")
    augment: Optional[list[Union[str, dict[str, Any]]]] = Field(
        None, description="training data only. Images: torchvision.transforms.v2 transforms, e.g. "
                          "[horizontal_flip, {random_resized_crop: {size: 28, scale: [0.8, 1]}}]; "
                          "sounds: time_shift, gain, noise, e.g. [{time_shift: 0.1}, {noise: "
                          "{snr: [10, 30]}}]")
    mean: Optional[list[float]] = Field(None, description="images: per-channel mean to normalise "
                                        "with (default: fitted on the training split)")
    std: Optional[list[float]] = Field(None, description="images: per-channel std to normalise "
                                       "with (default: fitted on the training split)")

    text: Optional[str] = Field(None, description="texts: the column of a .csv/.parquet/.jsonl/"
                                ".json file that holds the texts")
    tokenizer: Optional[TokenizerConfig] = Field(
        None, description="texts: {kind: bpe|wordpiece|word|char, vocab_size, lowercase, "
                          "min_frequency}, trained on the training split (default: bpe, 8000, "
                          "lowercase, 2)")
    max_length: Whole = Field(256, ge=1, description="texts: longer token sequences are cut to "
                              "this many tokens (counted and reported)")
    bucket: StrictBool = Field(True, description="texts: training batches hold texts of similar "
                               "length (less padding); each batch is padded to its own longest")
    encoding_errors: Literal["strict", "replace"] = Field(
        "strict", description="texts: bytes that are not UTF-8 stop with the file and line "
                              "('strict') or become U+FFFD, counted ('replace')")

    audio: Optional[str] = Field(None, description="sounds: the column of a .csv/.parquet file "
                                 "that holds sound-file paths (relative ones resolve against the file)")
    sample_rate: Optional[Whole] = Field(
        None, ge=1, description="sounds: clips are resampled to this rate in Hz (soxr); default: "
                                "the files' own rate when they share one, else 16000")
    duration: Optional[float] = Field(
        None, gt=0, description="sounds: every clip is cut (random crop in training, centre "
                                "otherwise) or padded to this many seconds; default: the longest")
    group: Optional[str] = Field(
        None, description="a column of the table (e.g. the speaker) whose groups never share a "
                          "split: each is in train, val or test only; spoken_digits: voice")

    @field_validator("shape")
    @classmethod
    def _positive_dims(cls, v):
        if v is not None and (not v or any(d <= 0 for d in v)):
            raise ValueError("expected a list of positive sizes such as [1, 28, 28]")
        return v



