"""The layer names a model spec may use, and the few small modules the builder needs.

Each name maps to a :class:`LayerInfo`: the torch class, its *main* arguments (what a bare
value such as ``{"linear": 64}`` fills in), the argument that can be inferred from the incoming
shape, and the input form the layer needs. The modules defined here (``Reshape``, ``RNN``,
``LSTM``, ``GRU``, ``Repeat``, ``Branches``, ``Heads``, ``Residual``) are ordinary
``nn.Module`` s: a built model has no dependency on the builder once it exists. The audio
feature layers (``mel_spectrogram``, ``log_mel``, ``mfcc``, ``amplitude_to_db``,
``spec_augment``) are those of :mod:`netwright.models.audio`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .audio import MFCC, AmplitudeToDB, LogMel, MelSpectrogram, SpecAugment

__all__ = [
    "LayerInfo", "LAYERS", "CONTAINERS", "RNN_OUTPUTS", "accepted_args",
    "Reshape", "RNN", "LSTM", "GRU", "Repeat", "Branches", "Heads", "Residual",
]

RNN_OUTPUTS = ("last", "mean", "max", "sequence")
MERGES = ("concat", "sum", "stack")
# Spec keywords that are not layers; a layer or a user's block can never be called this.
CONTAINERS = ("repeat", "branches", "heads", "residual", "module_list", "module_dict", "zoo",
              "class", "torchvision")


# --- modules ------------------------------------------------------------------------------------


class Reshape(nn.Module):
    """Reshape each sample, keeping the batch dimension: ``Reshape(1, 28, 28)`` turns
    ``(N, 784)`` into ``(N, 1, 28, 28)``; one size may be ``-1``.

    >>> Reshape(1, 28, 28)(torch.zeros(2, 784)).shape
    torch.Size([2, 1, 28, 28])
    """

    def __init__(self, shape: int | Sequence[int], *more: int):
        super().__init__()
        # Reshape([1, 28, 28]) (the spec's form, shape=[...]) and Reshape(1, 28, 28) both work.
        shape = (shape, *more) if isinstance(shape, int) else tuple(shape) + more
        if not shape or not all(isinstance(s, int) and not isinstance(s, bool) and (s > 0 or s == -1)
                                for s in shape) or list(shape).count(-1) > 1:
            raise ValueError(
                f"expected the per-sample shape as positive sizes (at most one -1), e.g. "
                f"[1, 28, 28]; received {list(shape)}"
            )
        self.shape = tuple(shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], *self.shape)

    def extra_repr(self) -> str:
        return ", ".join(str(s) for s in self.shape)


def _check_rnn_output(output: str) -> str:
    if output not in RNN_OUTPUTS:
        raise ValueError(
            f"output: expected one of {', '.join(map(repr, RNN_OUTPUTS))}; received {output!r}"
        )
    return output


def _pick(rnn: nn.RNNBase, seq: torch.Tensor, h_n: torch.Tensor) -> torch.Tensor:
    """Select what the next layer gets from a recurrent layer's ``(sequence, h_n)``."""
    if rnn.output == "sequence":
        return seq
    time_dim = 1 if rnn.batch_first else 0
    if rnn.output == "mean":
        return seq.mean(dim=time_dim)
    if rnn.output == "max":
        return seq.amax(dim=time_dim)
    # "last" reads the final hidden state, not seq[:, -1]: for a bidirectional layer the backward
    # direction's final state sits at t=0 of the sequence. h_n is (layers*D, N, H); keep the last
    # layer's D directions and lay them side by side → (N, D*H), the same width as seq's features.
    d = 2 if rnn.bidirectional else 1
    return h_n[-d:].transpose(0, 1).reshape(h_n.shape[1], -1)


class _OneOutput:
    """What RNN, LSTM and GRU share: ``batch_first=True`` by default, and ``output``, the one
    tensor their forward returns (see :func:`_pick`)."""

    def __init__(self, *args: Any, output: str = "last", **kwargs: Any):
        kwargs.setdefault("batch_first", True)
        super().__init__(*args, **kwargs)
        self.output = _check_rnn_output(output)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, output={self.output!r}"


class RNN(_OneOutput, nn.RNN):
    """``torch.nn.RNN`` with ``batch_first=True`` by default, returning one tensor chosen by
    ``output``: ``"last"`` (final hidden state, ``(N, D*H)``), ``"mean"``/``"max"`` over time,
    or the whole ``"sequence"`` ``(N, T, D*H)``. Its state_dict is torch's.

    >>> RNN(4, 8)(torch.zeros(2, 5, 4)).shape
    torch.Size([2, 8])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, h_n = super().forward(x)
        return _pick(self, seq, h_n)


class LSTM(_OneOutput, nn.LSTM):
    """``torch.nn.LSTM`` with ``batch_first=True`` by default, returning one tensor chosen by
    ``output`` (see :class:`RNN`). Its state_dict is torch's.

    >>> LSTM(4, 8, output="sequence")(torch.zeros(2, 5, 4)).shape
    torch.Size([2, 5, 8])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, (h_n, _) = super().forward(x)
        return _pick(self, seq, h_n)


class GRU(_OneOutput, nn.GRU):
    """``torch.nn.GRU`` with ``batch_first=True`` by default, returning one tensor chosen by
    ``output`` (see :class:`RNN`). Its state_dict is torch's.

    >>> GRU(4, 8, bidirectional=True)(torch.zeros(2, 5, 4)).shape
    torch.Size([2, 16])
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq, h_n = super().forward(x)
        return _pick(self, seq, h_n)


class Repeat(nn.ModuleList):
    """A ``ModuleList`` whose blocks are applied one after another.

    >>> Repeat([nn.Linear(4, 4), nn.Linear(4, 4)])(torch.zeros(2, 4)).shape
    torch.Size([2, 4])
    """

    # Tensor-typed (not Any) so that torch.jit.script can compile the containers.
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self:
            x = block(x)
        return x


class Branches(nn.ModuleDict):
    """A ``ModuleDict`` of branches that all get the same input; their outputs are merged by
    ``"concat"`` (along ``dim``, 1 by default: the feature/channel dimension), ``"sum"``, or
    ``"stack"`` (a new dimension ``dim``).

    >>> Branches({"a": nn.Linear(4, 3), "b": nn.Linear(4, 5)})(torch.zeros(2, 4)).shape
    torch.Size([2, 8])
    """

    def __init__(self, branches: Mapping[str, nn.Module], merge: str = "concat", dim: int = 1):
        super().__init__(branches)
        if merge not in MERGES:
            raise ValueError(f"merge: expected one of {', '.join(map(repr, MERGES))}; received {merge!r}")
        self.merge, self.dim = merge, int(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for branch in self.values():
            outs.append(branch(x))
        return self.merge_outputs(outs)

    def merge_outputs(self, outs: list[torch.Tensor]) -> torch.Tensor:
        if self.merge == "concat":
            return torch.cat(outs, dim=self.dim)
        if self.merge == "stack":
            return torch.stack(outs, dim=self.dim)
        total = outs[0]
        for out in outs[1:]:
            total = total + out
        return total

    def extra_repr(self) -> str:
        return f"merge={self.merge!r}" + (f", dim={self.dim}" if self.merge != "sum" else "")


class Heads(nn.ModuleDict):
    """A ``ModuleDict`` of heads that all get the same input; returns ``{name: output}``.

    >>> out = Heads({"cls": nn.Linear(4, 3), "reg": nn.Linear(4, 1)})(torch.zeros(2, 4))
    >>> {k: tuple(v.shape) for k, v in out.items()}
    {'cls': (2, 3), 'reg': (2, 1)}
    """

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name, head in self.items():
            out[name] = head(x)
        return out


class Residual(nn.Module):
    """``x + block(x)``; the block must keep the shape.

    >>> Residual(nn.Linear(4, 4))(torch.zeros(2, 4)).shape
    torch.Size([2, 4])
    """

    def __init__(self, block: nn.Module):
        super().__init__()
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerInfo:
    """What the builder knows about a layer name.

    ``main``: the arguments a bare value fills in (``{"conv2d": [32, 3]}`` → ``out_channels=32,
    kernel_size=3``). ``infer``: the argument read from the incoming shape when left out.
    ``ndim``: the input ranks (batch included) the layer is built for, ``form`` says it in words.
    ``args``: the accepted keyword arguments where torch's signature does not list them.
    """

    name: str
    cls: Callable[..., nn.Module]
    main: tuple[str, ...] = ()
    infer: str | None = None
    ndim: tuple[int, ...] | None = None
    form: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    args: tuple[str, ...] | None = None

    @property
    def torch_name(self) -> str:
        module = "torch.nn" if self.cls.__module__.startswith("torch.") else self.cls.__module__
        return f"{module}.{self.cls.__name__}"


def accepted_args(info: LayerInfo) -> tuple[str, ...]:
    """The keyword arguments a spec may give the layer ``info`` (torch's, in torch's order).

    >>> accepted_args(LAYERS["linear"])
    ('in_features', 'out_features', 'bias')
    """
    if info.args is not None:
        return info.args
    names = []
    for p in inspect.signature(info.cls.__init__).parameters.values():
        if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        # device/dtype are not JSON and belong to the whole model (model.to(...)); _private
        # arguments are torch internals.
        if p.name in ("device", "dtype") or p.name.startswith("_"):
            continue
        names.append(p.name)
    return tuple(names)


_RNN_ARGS = ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
             "bidirectional", "output")
_SEQ = "(N, T, F): a batch of sequences of T steps with F features"
_WAVE = "(N, L) or (N, C, L): float waveforms of L samples"
_SPEC = "(N, F, T) or (N, C, F, T): spectrograms of F bands and T frames"

LAYERS: dict[str, LayerInfo] = {info.name: info for info in [
    LayerInfo("linear", nn.Linear, ("out_features",), "in_features", (2, 3), "(N, F) or (N, T, F)"),
    LayerInfo("conv1d", nn.Conv1d, ("out_channels", "kernel_size"), "in_channels", (3,), "(N, C, L)"),
    LayerInfo("conv2d", nn.Conv2d, ("out_channels", "kernel_size"), "in_channels", (4,), "(N, C, H, W)"),
    LayerInfo("maxpool1d", nn.MaxPool1d, ("kernel_size",), None, (3,), "(N, C, L)"),
    LayerInfo("maxpool2d", nn.MaxPool2d, ("kernel_size",), None, (4,), "(N, C, H, W)"),
    LayerInfo("avgpool1d", nn.AvgPool1d, ("kernel_size",), None, (3,), "(N, C, L)"),
    LayerInfo("avgpool2d", nn.AvgPool2d, ("kernel_size",), None, (4,), "(N, C, H, W)"),
    LayerInfo("adaptive_avgpool1d", nn.AdaptiveAvgPool1d, ("output_size",), None, (3,), "(N, C, L)"),
    LayerInfo("adaptive_avgpool2d", nn.AdaptiveAvgPool2d, ("output_size",), None, (4,), "(N, C, H, W)"),
    LayerInfo("batchnorm1d", nn.BatchNorm1d, ("num_features",), "num_features", (2, 3), "(N, C) or (N, C, L)"),
    LayerInfo("batchnorm2d", nn.BatchNorm2d, ("num_features",), "num_features", (4,), "(N, C, H, W)"),
    LayerInfo("layernorm", nn.LayerNorm, ("normalized_shape",), "normalized_shape"),
    LayerInfo("dropout", nn.Dropout, ("p",)),
    LayerInfo("flatten", nn.Flatten, ("start_dim", "end_dim")),
    LayerInfo("unflatten", nn.Unflatten, ("dim", "unflattened_size")),
    LayerInfo("reshape", Reshape, ("shape",), args=("shape",)),
    LayerInfo("embedding", nn.Embedding, ("num_embeddings", "embedding_dim")),
    LayerInfo("rnn", RNN, ("hidden_size",), "input_size", (3,), _SEQ,
              args=_RNN_ARGS[:-1] + ("nonlinearity", "output")),
    LayerInfo("lstm", LSTM, ("hidden_size",), "input_size", (3,), _SEQ,
              args=_RNN_ARGS[:-1] + ("proj_size", "output")),
    LayerInfo("gru", GRU, ("hidden_size",), "input_size", (3,), _SEQ, args=_RNN_ARGS),
    LayerInfo("identity", nn.Identity, args=()),
    LayerInfo("relu", nn.ReLU),
    LayerInfo("leaky_relu", nn.LeakyReLU, ("negative_slope",)),
    LayerInfo("gelu", nn.GELU, ("approximate",)),
    LayerInfo("silu", nn.SiLU),
    LayerInfo("sigmoid", nn.Sigmoid, args=()),
    LayerInfo("tanh", nn.Tanh, args=()),
    # dim=1 is the class dimension of (N, C) and (N, C, H, W), as in F.softmax(z, dim=1);
    # torch's own default (dim=None) is deprecated and warns.
    LayerInfo("softmax", nn.Softmax, ("dim",), defaults={"dim": 1}),
    LayerInfo("log_softmax", nn.LogSoftmax, ("dim",), defaults={"dim": 1}),
    # audio features (netwright.models.audio): (N, L) → (N, n_mels, T) for conv1d,
    # (N, 1, L) → (N, 1, n_mels, T) for conv2d
    LayerInfo("mel_spectrogram", MelSpectrogram, ("n_mels",), None, (2, 3), _WAVE),
    LayerInfo("log_mel", LogMel, ("n_mels",), None, (2, 3), _WAVE),
    LayerInfo("mfcc", MFCC, ("n_mfcc",), None, (2, 3), _WAVE),
    LayerInfo("amplitude_to_db", AmplitudeToDB, ("stype",), None, (3, 4), _SPEC),
    LayerInfo("spec_augment", SpecAugment, ("freq_masks", "freq_width", "time_masks", "time_width"),
              None, (3, 4), _SPEC),
]}
