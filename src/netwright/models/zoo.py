"""Named architectures: ``build_zoo("cnn", (1, 28, 28), num_classes=10)`` or, inside any spec,
``{"zoo": "cnn", "num_classes": 10}``.

Most zoo models are layer specs (so they print with readable names and rebuild exactly from
``{"zoo": name, **args}``); ``resnet`` is a small class because its shortcuts change shape, and
the text models are classes of :mod:`netwright.models.text` (they derive a padding mask), the
audio models (``audio_cnn``, ``m5``) classes of :mod:`netwright.models.audio`. Every
one is an ordinary ``nn.Module`` that carries ``{"zoo": name, **args}`` (see
:func:`netwright.models.builder.spec_of`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelSpecError, did_you_mean
from .audio import M5, AudioCNN, m5_min_samples
from .builder import build
from .text import TextCNN, TextRNN, TextTransformer

__all__ = ["ZOO", "ZooEntry", "build_zoo", "make", "resolve_args", "ResNet", "BasicBlock",
           "simplenet", "mlp", "cnn", "resnet", "rnn", "lstm", "gru", "text_classifier",
           "text_cnn", "text_transformer", "audio_cnn", "m5"]


class _ArgError(Exception):
    """A zoo argument problem; :func:`make` adds where and which model."""


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise _ArgError(f"{name} must be a positive integer; received {value!r}.")
    return value


def _int_list(name: str, value: Any, *, allow_empty: bool = False) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)) or (not value and not allow_empty):
        raise _ArgError(f"{name} must be a list of positive integers, e.g. [64, 64]; received {value!r}.")
    return [_positive_int(name, v) for v in value]


def _head_size(num_classes: Any, outputs: Any) -> int:
    if (num_classes is None) == (outputs is None):
        raise _ArgError(
            f"give exactly one of num_classes (classification: one logit per class) or outputs "
            f"(regression: that many values); received num_classes={num_classes!r}, "
            f"outputs={outputs!r}."
        )
    return _positive_int("num_classes" if outputs is None else "outputs",
                         num_classes if outputs is None else outputs)


# --- the models ---------------------------------------------------------------------------------


def simplenet(input_shape: Sequence[int] | None = None, *, in_features: int | None = None,
              out_features: int = 2, softmax: bool = False) -> dict:
    """The article's SimpleNet: Linear(in, 13) → ReLU → Linear(13, 8) → Sigmoid → Linear(8, out).

    It returns logits by default: ``CrossEntropyLoss`` applies log-softmax itself, so a softmax
    layer in front of it squashes the gradients (and a second softmax makes the loss stop
    learning early). ``softmax=True`` appends ``Softmax(dim=1)`` and reproduces the article
    exactly. The child names (``linear1``, ``linear2``, ``output``) match the article's class,
    so its state_dict loads as is.

    >>> build_zoo("simplenet", (20,), out_features=3).output
    Linear(in_features=8, out_features=3, bias=True)
    """
    first: dict[str, Any] = {"out_features": 13}
    if in_features is not None:
        first["in_features"] = _positive_int("in_features", in_features)
    spec: dict[str, Any] = {
        "linear1": {"linear": first},
        "relu": "relu",
        "linear2": {"linear": {"in_features": 13, "out_features": 8}},
        "sigmoid": "sigmoid",
        "output": {"linear": {"in_features": 8, "out_features": _positive_int("out_features", out_features)}},
    }
    if softmax:
        spec["softmax"] = {"softmax": {"dim": 1}}
    return spec


def mlp(input_shape: Sequence[int] | None = None, *, hidden: Sequence[int] = (64, 64),
        num_classes: int | None = None, outputs: int | None = None, activation: Any = "relu",
        dropout: float = 0.0, batchnorm: bool = False, in_features: int | None = None) -> dict:
    """A multilayer perceptron: per hidden size, Linear → (BatchNorm1d) → activation → (Dropout);
    then a Linear to ``num_classes`` logits or ``outputs`` values. Inputs with more than one
    dimension per sample (images) are flattened first.

    >>> build_zoo("mlp", (1, 28, 28), hidden=[32], num_classes=10, dropout=0.1)
    Sequential(
      (flatten): Flatten(start_dim=1, end_dim=-1)
      (linear1): Linear(in_features=784, out_features=32, bias=True)
      (act1): ReLU()
      (dropout1): Dropout(p=0.1, inplace=False)
      (output): Linear(in_features=32, out_features=10, bias=True)
    )
    """
    sizes = _int_list("hidden", hidden, allow_empty=True)
    out = _head_size(num_classes, outputs)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise _ArgError(f"dropout must be a probability in [0, 1); received {dropout!r}.")
    spec: dict[str, Any] = {}
    if input_shape is not None and len(input_shape) > 1:
        spec["flatten"] = "flatten"
    prev = None if in_features is None else _positive_int("in_features", in_features)
    for i, size in enumerate(sizes, 1):
        spec[f"linear{i}"] = {"linear": {"out_features": size, **({"in_features": prev} if prev else {})}}
        if batchnorm:
            spec[f"bn{i}"] = {"batchnorm1d": {"num_features": size}}
        spec[f"act{i}"] = activation
        if dropout:
            spec[f"dropout{i}"] = {"dropout": dropout}
        prev = size
    spec["output"] = {"linear": {"out_features": out, **({"in_features": prev} if prev else {})}}
    return spec


def cnn(input_shape: Sequence[int] | None = None, *, num_classes: int = 10,
        channels: Sequence[int] = (32, 64), kernel_size: int = 3, hidden: int = 128,
        dropout: float = 0.25, fc_dropout: float = 0.5, batchnorm: bool = False) -> dict:
    """A LeNet-style image classifier: per entry of ``channels``, a 'same'-padded conv → (BatchNorm)
    → ReLU → 2×2 max-pool; then dropout, flatten, Linear(``hidden``) → ReLU → dropout → Linear
    to ``num_classes`` logits. The defaults (32 → 64 channels, 128 hidden) follow PyTorch's MNIST
    example; trained on 4,000 of the built-in MNIST-5k digits (Adam, lr 1e-3, batch 64) they
    score about 97 % on the other 1,000 after 10–15 epochs. The flatten size comes from
    ``input_shape`` (C, H, W), which is required.

    >>> m = build_zoo("cnn", (1, 28, 28))
    >>> m.fc1, m(torch.zeros(2, 1, 28, 28)).shape
    (Linear(in_features=3136, out_features=128, bias=True), torch.Size([2, 10]))
    """
    if input_shape is None or len(input_shape) != 3:
        raise _ArgError(
            f"cnn needs input_shape (C, H, W) to size its classifier; received {input_shape!r}. "
            f"Fix: e.g. input_shape=(1, 28, 28) for grayscale 28×28 images."
        )
    chans = _int_list("channels", channels)
    k = _positive_int("kernel_size", kernel_size)
    if k % 2 == 0:
        raise _ArgError(f"kernel_size must be odd so that padding keeps the image size; received {k}.")
    height, width = input_shape[1], input_shape[2]
    spec: dict[str, Any] = {}
    for i, c in enumerate(chans, 1):
        spec[f"conv{i}"] = {"conv2d": {"out_channels": c, "kernel_size": k, "padding": k // 2}}
        if batchnorm:
            spec[f"bn{i}"] = "batchnorm2d"
        spec[f"relu{i}"] = "relu"
        # Stop pooling once the map is 1 pixel thin: more blocks than the image allows still build.
        if height >= 2 and width >= 2:
            spec[f"pool{i}"] = {"maxpool2d": 2}
            height, width = height // 2, width // 2
    if dropout:
        spec["dropout1"] = {"dropout": dropout}
    spec["flatten"] = "flatten"
    spec["fc1"] = {"linear": _positive_int("hidden", hidden)}
    spec[f"relu{len(chans) + 1}"] = "relu"
    if fc_dropout:
        spec["dropout2"] = {"dropout": fc_dropout}
    spec["fc2"] = {"linear": {"in_features": hidden, "out_features": _positive_int("num_classes", num_classes)}}
    return spec


class BasicBlock(nn.Module):
    """ResNet's basic block: conv3×3 → BN → ReLU → conv3×3 → BN, plus a shortcut (a strided 1×1
    conv + BN where the shape changes, else the identity), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        # bias=False before BatchNorm: BN's own shift makes a conv bias redundant.
        if stride != 1 or in_channels != out_channels:
            self.shortcut: nn.Module = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    """A small CIFAR-style ResNet: a 3×3 stem, stages of :class:`BasicBlock` (``stages`` gives
    the blocks per stage; the width doubles and the map halves from one stage to the next),
    global average pooling, and a linear classifier. Any image size works: the pooling is
    adaptive."""

    def __init__(self, in_channels: int = 3, num_classes: int = 10,
                 stages: Sequence[int] = (2, 2, 2), width: int = 16):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(),
        )
        layers, channels = [], width
        for i, blocks in enumerate(stages):
            out = width * 2**i
            stage = [BasicBlock(channels, out, stride=1 if i == 0 else 2)]
            stage += [BasicBlock(out, out) for _ in range(blocks - 1)]
            layers.append(nn.Sequential(*stage))
            channels = out
        self.stages = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.stages(self.stem(x)))))  # (N, C, H, W) → (N, classes)


def resnet(input_shape: Sequence[int] | None = None, *, num_classes: int = 10,
           stages: Sequence[int] = (2, 2, 2), width: int = 16, in_channels: int | None = None) -> ResNet:
    """A small ResNet (:class:`ResNet`; the defaults are ResNet-14 with widths 16/32/64, ~0.17 M
    parameters) for (C, H, W) images such as 1×28×28 or 3×32×32. ``in_channels`` comes from
    ``input_shape`` when given.

    >>> build_zoo("resnet", (3, 32, 32), stages=[1, 1])(torch.zeros(2, 3, 32, 32)).shape
    torch.Size([2, 10])
    """
    if input_shape is not None:
        if len(input_shape) != 3:
            raise _ArgError(f"resnet needs images (C, H, W); received input_shape {tuple(input_shape)}. "
                            f"Fix: e.g. (1, 28, 28) or (3, 32, 32).")
        if in_channels is not None and in_channels != input_shape[0]:
            raise _ArgError(f"in_channels={in_channels} does not match input_shape {tuple(input_shape)} "
                            f"({input_shape[0]} channels). Fix: leave in_channels out.")
        in_channels = input_shape[0]
    return ResNet(_positive_int("in_channels", 3 if in_channels is None else in_channels),
                  _positive_int("num_classes", num_classes), _int_list("stages", stages),
                  _positive_int("width", width))


def _recurrent(kind: str, input_shape: Sequence[int] | None, num_classes: int | None,
               outputs: int | None, hidden_size: int, num_layers: int, bidirectional: bool,
               dropout: float, pool: str, input_size: int | None) -> dict:
    out = _head_size(num_classes, outputs)
    if input_shape is not None and len(input_shape) != 2:
        raise _ArgError(
            f"{kind} reads sequences (T, F) per sample: T steps of F features; received input_shape "
            f"{tuple(input_shape)}. Fix: e.g. input_shape=(50, 1) for 50 steps of one value."
        )
    layer: dict[str, Any] = {"hidden_size": _positive_int("hidden_size", hidden_size),
                             "num_layers": _positive_int("num_layers", num_layers),
                             "bidirectional": bool(bidirectional), "output": pool}
    if dropout:
        layer["dropout"] = dropout  # between stacked layers only: torch warns for num_layers=1
    if input_size is not None:
        layer["input_size"] = _positive_int("input_size", input_size)
    width = hidden_size * (2 if bidirectional else 1)
    head = "classifier" if outputs is None else "regressor"
    return {kind: {kind: layer}, head: {"linear": {"in_features": width, "out_features": out}}}


def rnn(input_shape: Sequence[int] | None = None, *, num_classes: int | None = None,
        outputs: int | None = None, hidden_size: int = 64, num_layers: int = 1,
        bidirectional: bool = False, dropout: float = 0.0, pool: str = "last",
        input_size: int | None = None) -> dict:
    """An Elman RNN over (N, T, F) sequences, then a Linear: ``num_classes`` logits or
    ``outputs`` regression values. ``pool``: ``"last"`` (final hidden state), ``"mean"``, ``"max"``.

    >>> build_zoo("rnn", (30, 2), outputs=1)(torch.zeros(4, 30, 2)).shape
    torch.Size([4, 1])
    """
    return _recurrent("rnn", input_shape, num_classes, outputs, hidden_size, num_layers,
                      bidirectional, dropout, pool, input_size)


def lstm(input_shape: Sequence[int] | None = None, *, num_classes: int | None = None,
         outputs: int | None = None, hidden_size: int = 64, num_layers: int = 1,
         bidirectional: bool = False, dropout: float = 0.0, pool: str = "last",
         input_size: int | None = None) -> dict:
    """An LSTM over (N, T, F) sequences, then a Linear (see :func:`rnn`).

    >>> build_zoo("lstm", (30, 2), num_classes=3, bidirectional=True).classifier
    Linear(in_features=128, out_features=3, bias=True)
    """
    return _recurrent("lstm", input_shape, num_classes, outputs, hidden_size, num_layers,
                      bidirectional, dropout, pool, input_size)


def gru(input_shape: Sequence[int] | None = None, *, num_classes: int | None = None,
        outputs: int | None = None, hidden_size: int = 64, num_layers: int = 1,
        bidirectional: bool = False, dropout: float = 0.0, pool: str = "last",
        input_size: int | None = None) -> dict:
    """A GRU over (N, T, F) sequences, then a Linear (see :func:`rnn`).

    >>> build_zoo("gru", input_size=2, num_classes=2)(torch.zeros(4, 30, 2)).shape
    torch.Size([4, 2])
    """
    return _recurrent("gru", input_shape, num_classes, outputs, hidden_size, num_layers,
                      bidirectional, dropout, pool, input_size)


def _text(kind: str, cls: type, input_shape: Sequence[int] | None, vocab_size: int,
          num_classes: int, **args: Any) -> nn.Module:
    if input_shape is not None and len(input_shape) != 1:
        raise _ArgError(f"{kind} reads token ids (T,) per sample; received input_shape "
                        f"{tuple(input_shape)}. Fix: e.g. input_shape=(128,).")
    sizes = {k: _positive_int(k, v) for k, v in args.items()
             if k in ("embed_dim", "hidden_size", "num_layers", "channels", "d_model", "nhead",
                      "dim_feedforward", "max_length")}
    try:
        return cls(_positive_int("vocab_size", vocab_size), _positive_int("num_classes", num_classes),
                   **{**args, **sizes})
    except (ValueError, TypeError, AssertionError) as exc:
        raise _ArgError(str(exc)) from None


def text_classifier(input_shape: Sequence[int] | None = None, *, vocab_size: int,
                    num_classes: int = 2, cell: str = "lstm", embed_dim: int = 64,
                    hidden_size: int = 64, num_layers: int = 1, bidirectional: bool = False,
                    dropout: float = 0.0, pool: str = "mean", conv_kernel: int = 0,
                    ngrams: int = 0, ngram_buckets: int = 1 << 16,
                    padding_idx: int = 0) -> nn.Module:
    """Embedding → LSTM/GRU/RNN (``cell``) → (Dropout) → Linear over right-padded int64 token
    ids (N, T) (:class:`~netwright.models.text.TextRNN`): packed eagerly, so padding never
    changes a result. ``pool``: ``"mean"`` (default), ``"max"`` or ``"last"``.
    ``conv_kernel``: an odd width adds a residual Conv1d (GELU) over the embeddings, local
    n-gram features before the recurrent layer (0, the default: none).
    ``ngrams``: n > 0 adds a bag of hashed n-grams of 1 to n tokens (fastText's), a linear
    score per class beside the network (:class:`~netwright.models.text.NgramBag`;
    ``ngram_buckets`` rows; 0, the default: none).

    >>> m = build_zoo("text_classifier", (12,), vocab_size=100, num_classes=4)
    >>> m(torch.randint(1, 100, (3, 12))).shape
    torch.Size([3, 4])
    """
    return _text("text_classifier", TextRNN, input_shape, vocab_size, num_classes, cell=cell,
                 embed_dim=embed_dim, hidden_size=hidden_size, num_layers=num_layers,
                 bidirectional=bool(bidirectional), dropout=dropout, pool=pool,
                 conv_kernel=conv_kernel, ngrams=ngrams, ngram_buckets=ngram_buckets,
                 padding_idx=padding_idx)


def text_cnn(input_shape: Sequence[int] | None = None, *, vocab_size: int, num_classes: int = 2,
             embed_dim: int = 64, channels: int = 100, kernel_sizes: Sequence[int] = (3, 4, 5),
             dropout: float = 0.0, ngrams: int = 0, ngram_buckets: int = 1 << 16,
             padding_idx: int = 0) -> nn.Module:
    """Embedding → Conv1d per kernel size → ReLU → max over real positions → Linear over
    right-padded int64 token ids (N, T) (:class:`~netwright.models.text.TextCNN`).
    ``ngrams``: n > 0 adds a bag of hashed n-grams of 1 to n tokens (fastText's), a linear
    score per class beside the network (:class:`~netwright.models.text.NgramBag`;
    ``ngram_buckets`` rows; 0, the default: none).

    >>> build_zoo("text_cnn", (12,), vocab_size=100, channels=8)(torch.randint(1, 100, (3, 12))).shape
    torch.Size([3, 2])
    """
    return _text("text_cnn", TextCNN, input_shape, vocab_size, num_classes, embed_dim=embed_dim,
                 channels=channels, kernel_sizes=tuple(_int_list("kernel_sizes", kernel_sizes)),
                 dropout=dropout, ngrams=ngrams, ngram_buckets=ngram_buckets,
                 padding_idx=padding_idx)


def text_transformer(input_shape: Sequence[int] | None = None, *, vocab_size: int,
                     num_classes: int = 2, d_model: int = 64, nhead: int = 4, num_layers: int = 2,
                     dim_feedforward: int = 128, dropout: float = 0.1, max_length: int = 512,
                     conv_kernel: int = 0, ngrams: int = 0, ngram_buckets: int = 1 << 16,
                     padding_idx: int = 0) -> nn.Module:
    """A Transformer encoder (sinusoidal positions, padding masked) → masked mean → Linear over
    right-padded int64 token ids (N, T ≤ ``max_length``) (:class:`~netwright.models.text.TextTransformer`).
    ``conv_kernel``: an odd width adds a residual Conv1d (GELU) over the embeddings, local n-gram
    features before the attention (0, the default: none).
    ``ngrams``: n > 0 adds a bag of hashed n-grams of 1 to n tokens (fastText's), a linear
    score per class beside the network (:class:`~netwright.models.text.NgramBag`;
    ``ngram_buckets`` rows; 0, the default: none).

    >>> build_zoo("text_transformer", (12,), vocab_size=100, d_model=16)(torch.randint(1, 100, (3, 12))).shape
    torch.Size([3, 2])
    """
    if input_shape is not None and len(input_shape) == 1 and input_shape[0] > max_length:
        raise _ArgError(f"input_shape {tuple(input_shape)} is longer than max_length={max_length}. "
                        f"Fix: raise max_length, or truncate the texts.")
    return _text("text_transformer", TextTransformer, input_shape, vocab_size, num_classes,
                 d_model=d_model, nhead=nhead, num_layers=num_layers,
                 dim_feedforward=dim_feedforward, dropout=dropout, max_length=max_length,
                 conv_kernel=conv_kernel, ngrams=ngrams, ngram_buckets=ngram_buckets,
                 padding_idx=padding_idx)


def _waveform_length(kind: str, input_shape: Sequence[int] | None) -> int | None:
    """L of a mono waveform input_shape (1, L) or (L,); None when no shape is given."""
    if input_shape is None:
        return None
    shape = tuple(input_shape)
    if len(shape) == 1 or (len(shape) == 2 and shape[0] == 1):
        return shape[-1]
    raise _ArgError(f"{kind} reads mono waveforms (1, L) or (L,) per sample; received input_shape "
                    f"{shape}. Fix: e.g. input_shape=(1, 16000) for one second at 16 kHz, with the "
                    f"channels mixed down to one.")


def audio_cnn(input_shape: Sequence[int] | None = None, *, num_classes: int = 2,
              sample_rate: int = 16000, n_mels: int = 40, n_fft: int = 512, hop_length: int = 160,
              channels: Sequence[int] = (32, 64, 128), dropout: float = 0.1,
              spec_augment: bool = True) -> nn.Module:
    """A log-mel CNN over mono waveforms (1, L) or (L,) of any length ``L >= n_fft``
    (:class:`~netwright.models.audio.AudioCNN`): log-mel spectrogram → SpecAugment (training
    only) → per-clip standardisation (InstanceNorm) → Conv2d 3×3/BatchNorm/ReLU/MaxPool 2 per entry of
    ``channels`` → global average pool → Dropout → Linear. The spectrogram is inside the model
    (and its exports); ``model.sample_rate`` and ``model.num_samples`` say what data it expects.

    >>> m = build_zoo("audio_cnn", (1, 8000), num_classes=3, channels=[8, 16])
    >>> m(torch.randn(2, 1, 8000)).shape, m.sample_rate, m.num_samples
    (torch.Size([2, 3]), 16000, 8000)
    """
    length = _waveform_length("audio_cnn", input_shape)
    n_fft = _positive_int("n_fft", n_fft)
    if length is not None and length < n_fft:
        raise _ArgError(f"input_shape {tuple(input_shape or ())} holds {length} samples, fewer than "
                        f"n_fft={n_fft}. Fix: longer clips, or a smaller n_fft.")
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise _ArgError(f"dropout must be a probability in [0, 1); received {dropout!r}.")
    try:
        return AudioCNN(_positive_int("num_classes", num_classes), sample_rate,
                        _positive_int("n_mels", n_mels), n_fft, _positive_int("hop_length", hop_length),
                        _int_list("channels", channels), float(dropout), bool(spec_augment),
                        num_samples=length)
    except ValueError as exc:
        raise _ArgError(str(exc)) from None


def m5(input_shape: Sequence[int] | None = None, *, num_classes: int = 2, sample_rate: int = 16000,
       channels: int = 32, stride: int = 16) -> nn.Module:
    """M5, the raw-waveform 1-D CNN of Dai et al. 2017 as in PyTorch's speech-command tutorial
    (:class:`~netwright.models.audio.M5`), over mono waveforms (1, L) or (L,) of at least
    :func:`~netwright.models.audio.m5_min_samples` samples (6848 at stride 16).
    ``model.sample_rate`` and ``model.num_samples`` say what data it expects.

    >>> m = build_zoo("m5", (1, 8000), num_classes=35, sample_rate=8000)
    >>> m(torch.randn(2, 1, 8000)).shape, m.num_samples
    (torch.Size([2, 35]), 8000)
    """
    length = _waveform_length("m5", input_shape)
    stride = _positive_int("stride", stride)
    if length is not None and length < m5_min_samples(stride):
        raise _ArgError(f"input_shape {tuple(input_shape or ())} holds {length} samples; M5 at "
                        f"stride {stride} needs at least {m5_min_samples(stride)}. Fix: longer "
                        f"clips, or a smaller stride.")
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, float)) or sample_rate <= 0:
        raise _ArgError(f"sample_rate must be a positive number of samples per second; received "
                        f"{sample_rate!r}.")
    return M5(_positive_int("num_classes", num_classes), sample_rate,
              _positive_int("channels", channels), stride, num_samples=length)


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZooEntry:
    """A zoo model: ``fn(input_shape, **args)`` returns a layer spec or an ``nn.Module``."""

    name: str
    fn: Callable[..., Any]
    input: str  # the per-sample input it reads, for docs and errors

    @property
    def params(self) -> dict[str, inspect.Parameter]:
        params = dict(inspect.signature(self.fn).parameters)
        params.pop("input_shape")
        return params


ZOO: dict[str, ZooEntry] = {e.name: e for e in [
    ZooEntry("simplenet", simplenet, "(F,) features"),
    ZooEntry("mlp", mlp, "(F,) features, or any shape (flattened)"),
    ZooEntry("cnn", cnn, "(C, H, W) images"),
    ZooEntry("resnet", resnet, "(C, H, W) images"),
    ZooEntry("rnn", rnn, "(T, F) sequences"),
    ZooEntry("lstm", lstm, "(T, F) sequences"),
    ZooEntry("gru", gru, "(T, F) sequences"),
    ZooEntry("text_classifier", text_classifier, "(T,) int64 token ids"),
    ZooEntry("text_cnn", text_cnn, "(T,) int64 token ids"),
    ZooEntry("text_transformer", text_transformer, "(T,) int64 token ids"),
    ZooEntry("audio_cnn", audio_cnn, "(1, L) or (L,) mono waveforms"),
    ZooEntry("m5", m5, "(1, L) or (L,) mono waveforms"),
]}


def _entry(name: Any, where: str) -> ZooEntry:
    entry = ZOO.get(name) if isinstance(name, str) else None
    if entry is None:
        raise ModelSpecError(
            f"{where}: unknown zoo model {name!r}.{did_you_mean(str(name), ZOO)} Expected one of: "
            f"{', '.join(ZOO)}."
        )
    return entry


def resolve_args(name: str, args: Mapping[str, Any], *, where: str = "model") -> dict[str, Any]:
    """``args`` checked against the zoo model's arguments, with every default filled in.

    >>> resolve_args("simplenet", {"out_features": 3})
    {'in_features': None, 'out_features': 3, 'softmax': False}
    """
    entry = _entry(name, where)
    params = entry.params
    for key in args:
        if key not in params:
            raise ModelSpecError(
                f"{where} zoo {name!r} has no argument {key!r}.{did_you_mean(str(key), params)} "
                f"Accepted arguments: {', '.join(params)}."
            )
    missing = [k for k, p in params.items() if p.default is p.empty and k not in args]
    if missing:
        raise ModelSpecError(
            f"{where} zoo {name!r} needs {', '.join(missing)}. Fix: e.g. "
            f"{{'zoo': {name!r}, {', '.join(f'{k!r}: ...' for k in missing)}}}."
        )
    resolved = {k: (args[k] if k in args else p.default) for k, p in params.items()}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in resolved.items()}


def make(name: Any, input_shape: Sequence[int] | None, args: Mapping[str, Any], *,
         where: str = "model") -> Any:
    """The layer spec (or module) of zoo model ``name`` for inputs of ``input_shape``; used by
    the builder for ``{"zoo": name, **args}``.

    >>> make("simplenet", (4,), {"out_features": 3})["output"]
    {'linear': {'in_features': 8, 'out_features': 3}}
    """
    entry = _entry(name, where)
    resolve_args(name, args, where=where)
    try:
        return entry.fn(input_shape, **args)
    except _ArgError as exc:
        raise ModelSpecError(f"{where} zoo {name!r}: {exc}") from None


def build_zoo(name: str, input_shape: Sequence[int] | None = None, **args: Any) -> nn.Module:
    """Build zoo model ``name`` for inputs of ``input_shape`` (per sample, no batch dimension).

    The model remembers ``{"zoo": name, **args}`` with every default filled in, so it rebuilds
    the same even if a default changes later.

    >>> from netwright.models.builder import spec_of
    >>> spec_of(build_zoo("mlp", (4,), hidden=[8], outputs=1))["spec"]["hidden"]
    [8]
    """
    ids = "int64" in _entry(name, "build_zoo").input  # token ids: the builder cannot tell
    return build({"zoo": name, **resolve_args(name, args)}, input_shape,
                 input_dtype=torch.int64 if ids else None)
