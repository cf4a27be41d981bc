"""Audio features as layers, and the audio zoo's models: waveforms ``(..., L)`` in, features out.

:class:`MelSpectrogram`, :class:`LogMel`, :class:`MFCC`, :class:`AmplitudeToDB` and
:class:`SpecAugment` are ordinary ``nn.Module`` s built on ``torch.stft``, so the features are
computed inside the model, move with ``model.to(...)``, and are part of an exported model (ONNX,
``torch.export``/``.pt2`` and TorchScript all express ``torch.stft`` in torch 2.14). Their constant
tensors (the Hann window, the mel filter bank of :func:`mel_filters`, the DCT matrix) are made once
by this module's own code, without librosa, and kept as non-persistent buffers: they are not in
the ``state_dict``, since the arguments rebuild them exactly.

They agree with librosa 0.11 (``librosa.feature.melspectrogram``, ``power_to_db``, ``mfcc``,
``filters.mel``) at 16 kHz and 22.05 kHz, both mel scales, checked by
tests/models/test_audio_layers.py: the filter bank within 1e-6 (absolute, float32), the mel
power within a relative error of 1e-4 wherever it is above 1e-6 of the largest value, log-mel
within 0.01 dB, MFCCs within 0.01 (absolute) — float32 rounding, where librosa computes in float64.

``stft_path = "dft"`` (an attribute; ``"stft"`` by default) computes the same spectrogram as a
``conv1d`` with a windowed-DFT kernel instead of ``torch.stft`` (equal within ~1e-5 relative), for a
runtime that has no STFT operator (ONNX opsets before 17).

>>> LogMel(16000, n_mels=40, hop_length=160)(torch.randn(2, 1, 16000)).shape  # (N, C, n_mels, frames) for Conv2d
torch.Size([2, 1, 40, 101])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["mel_filters", "dct_matrix", "MelSpectrogram", "AmplitudeToDB", "LogMel", "MFCC",
           "SpecAugment", "AudioCNN", "M5", "m5_min_samples"]

PAD_MODES = ("reflect", "constant", "replicate", "circular")
STFT_PATHS = ("stft", "dft")

# Slaney's mel scale (librosa's default, htk=False): linear below 1 kHz, logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel(f: torch.Tensor, htk: bool) -> torch.Tensor:
    if htk:
        return 2595.0 * torch.log10(1.0 + f / 700.0)
    logs = _MIN_LOG_MEL + torch.log(torch.clamp(f, min=_MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOGSTEP
    return torch.where(f >= _MIN_LOG_HZ, logs, f / _F_SP)


def _mel_to_hz(m: torch.Tensor, htk: bool) -> torch.Tensor:
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    return torch.where(m >= _MIN_LOG_MEL, _MIN_LOG_HZ * torch.exp(_LOGSTEP * (m - _MIN_LOG_MEL)),
                       _F_SP * m)


def _fail(owner: str, name: str, expected: str, value: object, fix: str = "") -> None:
    # no final full stop: the builder quotes the message and goes on with a sentence of its own
    raise ValueError(f"{owner}: {name} must be {expected}; received {name}={value!r}"
                     + (f". Fix: {fix}" if fix else ""))


def _positive_int(owner: str, name: str, value: object, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        _fail(owner, name, f"an integer >= {minimum}", value)
    return int(value)  # type: ignore[arg-type]


def _number(owner: str, name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(owner, name, "a finite number", value)
    return float(value)  # type: ignore[arg-type]


def _rate(sample_rate: float) -> float:
    """16000.0 → 16000: a whole number of samples per second compares equal to a data set's int."""
    rate = _number("sample_rate", "sample_rate", sample_rate)
    if rate <= 0:
        _fail("sample_rate", "sample_rate", "positive (samples per second, e.g. 16000)", sample_rate)
    return int(rate) if rate.is_integer() else rate


def _check_mel_args(owner: str, n_freqs: int, n_mels: int, sample_rate: float, f_min: float,
                    f_max: Optional[float], norm: Optional[str], mel_scale: str) -> float:
    """The checked ``f_max`` (``sample_rate / 2`` when ``None``)."""
    sample_rate = _number(owner, "sample_rate", sample_rate)
    if sample_rate <= 0:
        _fail(owner, "sample_rate", "positive (samples per second, e.g. 16000)", sample_rate)
    nyquist = sample_rate / 2
    f_max = nyquist if f_max is None else _number(owner, "f_max", f_max)
    f_min = _number(owner, "f_min", f_min)
    if f_max > nyquist:
        _fail(owner, "f_max", f"at most sample_rate / 2 = {nyquist:g} Hz (the highest frequency "
              f"a signal sampled at {sample_rate:g} Hz holds)", f_max, "lower f_max, or leave it out")
    if not 0 <= f_min < f_max:
        _fail(owner, "f_min", f"in [0, f_max={f_max:g}) Hz", f_min)
    if not 1 <= _positive_int(owner, "n_mels", n_mels) <= n_freqs:
        _fail(owner, "n_mels", f"at most n_fft // 2 + 1 = {n_freqs} (the number of frequency "
              f"bins)", n_mels, "fewer mel bands, or a larger n_fft")
    if norm not in ("slaney", None):
        _fail(owner, "norm", "'slaney' or None", norm)
    if mel_scale not in ("slaney", "htk"):
        _fail(owner, "mel_scale", "'slaney' or 'htk'", mel_scale)
    return f_max


def mel_filters(n_freqs: int, n_mels: int, sample_rate: float, f_min: float = 0.0,
                f_max: Optional[float] = None, norm: Optional[str] = "slaney",
                mel_scale: str = "slaney") -> torch.Tensor:
    """The triangular mel filter bank ``(n_freqs, n_mels)`` (float32) that maps the
    ``n_freqs = n_fft // 2 + 1`` bins of a one-sided STFT to ``n_mels`` mel bands: librosa's
    ``filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max,
    htk=mel_scale == "htk", norm=norm)`` transposed. Computed in float64, then rounded.

    ``norm="slaney"`` divides each triangle by its width in Hz (constant energy per band);
    ``None`` leaves the peaks at 1. ``mel_scale``: ``"slaney"`` (linear below 1 kHz) or ``"htk"``.

    >>> fb = mel_filters(257, 40, 16000)
    >>> fb.shape, bool((fb >= 0).all())
    (torch.Size([257, 40]), True)
    """
    n_freqs = _positive_int("mel_filters", "n_freqs", n_freqs, 2)
    f_max = _check_mel_args("mel_filters", n_freqs, n_mels, sample_rate, f_min, f_max, norm,
                            mel_scale)
    htk, f64 = mel_scale == "htk", torch.float64
    fft_freqs = torch.linspace(0.0, float(sample_rate) / 2, n_freqs, dtype=f64)
    lo, hi = (_hz_to_mel(torch.tensor(float(f), dtype=f64), htk) for f in (f_min, f_max))
    mel_f = _mel_to_hz(lo + (hi - lo) * torch.linspace(0.0, 1.0, n_mels + 2, dtype=f64), htk)
    fdiff = mel_f[1:] - mel_f[:-1]  # (n_mels + 1,)
    ramps = mel_f[:, None] - fft_freqs[None, :]  # (n_mels + 2, n_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = torch.clamp(torch.minimum(lower, upper), min=0.0)  # (n_mels, n_freqs)
    if norm == "slaney":
        weights = weights * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]
    return weights.T.to(torch.float32).contiguous()


def dct_matrix(n_out: int, n_in: int) -> torch.Tensor:
    """The orthonormal DCT-II matrix ``(n_out, n_in)``: ``dct_matrix(k, n) @ x`` is
    ``scipy.fft.dct(x, type=2, norm="ortho", axis=0)[:k]`` for ``x`` of ``n`` rows.

    >>> d = dct_matrix(4, 4); torch.allclose(d @ d.T, torch.eye(4), atol=1e-6)
    True
    """
    n = torch.arange(n_in, dtype=torch.float64)
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    basis = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)
    basis[0] = basis[0] / math.sqrt(2.0)
    return basis.to(torch.float32)


def _to_db(x: torch.Tensor, multiplier: float, amin: float, ref: float,
           top_db: Optional[float]) -> torch.Tensor:
    db = multiplier * torch.log10(torch.clamp(x, min=amin))
    db = db - multiplier * math.log10(max(amin, ref))
    if top_db is not None:
        # per item: the peak of each (F, T) slice, never of the whole batch
        peak = db.amax(dim=[-2, -1], keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def _check_db_args(owner: str, amin: float, ref: float, top_db: Optional[float]) -> None:
    if _number(owner, "amin", amin) <= 0:
        _fail(owner, "amin", "positive (the floor under which values count as silence)", amin)
    if _number(owner, "ref", ref) <= 0:
        _fail(owner, "ref", "positive (the value that becomes 0 dB)", ref)
    if top_db is not None and _number(owner, "top_db", top_db) < 0:
        _fail(owner, "top_db", "a non-negative number of dB, or None", top_db)


class MelSpectrogram(nn.Module):
    """The mel power spectrogram of float waveforms ``(..., L)`` → ``(..., n_mels, frames)``:
    ``(N, L)`` gives ``(N, n_mels, T)`` for Conv1d, ``(N, 1, L)`` gives ``(N, 1, n_mels, T)`` for
    Conv2d. ``T = 1 + L // hop_length`` when ``center`` (the signal is padded by ``n_fft // 2`` at
    both ends with ``pad_mode``), else ``1 + (L - n_fft) // hop_length``.

    ``torch.stft`` with a periodic Hann window of ``win_length`` (default ``n_fft``, centred in
    the ``n_fft`` frame), ``hop_length`` default ``win_length // 4``, then ``|STFT| ** power`` and
    the :func:`mel_filters` bank: librosa's ``feature.melspectrogram`` with the same arguments
    (mind librosa's default ``pad_mode="constant"``; this layer's is ``"reflect"``).
    ``sample_rate`` is kept as a public attribute: the sample rate the model expects.

    >>> MelSpectrogram(16000, n_mels=40, hop_length=160)(torch.randn(2, 16000)).shape
    torch.Size([2, 40, 101])
    """

    def __init__(self, sample_rate: float = 16000, n_fft: int = 512, win_length: Optional[int] = None,
                 hop_length: Optional[int] = None, f_min: float = 0.0, f_max: Optional[float] = None,
                 n_mels: int = 40, power: float = 2.0, center: bool = True,
                 pad_mode: str = "reflect", norm: Optional[str] = "slaney",
                 mel_scale: str = "slaney"):
        super().__init__()
        owner = self.kind = type(self).__name__  # for messages (TorchScript has no type(self))
        self.n_fft = _positive_int(owner, "n_fft", n_fft, 2)
        self.win_length = self.n_fft if win_length is None else _positive_int(owner, "win_length", win_length)
        if self.win_length > self.n_fft:
            _fail(owner, "win_length", f"at most n_fft={self.n_fft}", win_length)
        self.hop_length = (max(1, self.win_length // 4) if hop_length is None
                           else _positive_int(owner, "hop_length", hop_length))
        self.f_max = _check_mel_args(owner, self.n_fft // 2 + 1, n_mels, sample_rate, f_min, f_max,
                                     norm, mel_scale)
        self.sample_rate = _rate(sample_rate)  # public: the rate the model expects of its data
        self.f_min, self.n_mels = float(f_min), int(n_mels)
        if _number(owner, "power", power) <= 0:
            _fail(owner, "power", "positive (2.0: power, 1.0: magnitude)", power)
        if pad_mode not in PAD_MODES:
            _fail(owner, "pad_mode", f"one of {', '.join(map(repr, PAD_MODES))}", pad_mode)
        self.power, self.center, self.pad_mode = float(power), bool(center), pad_mode
        self.norm, self.mel_scale = norm, mel_scale
        self.stft_path = "stft"  # or "dft": a conv1d with a windowed-DFT kernel (see the module)
        self.register_buffer("window", torch.hann_window(self.win_length, periodic=True),
                             persistent=False)
        self.register_buffer("filters", mel_filters(self.n_fft // 2 + 1, n_mels, sample_rate,
                                                    f_min, self.f_max, norm, mel_scale),
                             persistent=False)

    def extra_repr(self) -> str:
        return (f"sample_rate={self.sample_rate}, n_fft={self.n_fft}, win_length={self.win_length}, "
                f"hop_length={self.hop_length}, n_mels={self.n_mels}, f_min={self.f_min:g}, "
                f"f_max={self.f_max:g}, power={self.power:g}, center={self.center}, "
                f"pad_mode={self.pad_mode!r}, norm={self.norm!r}, mel_scale={self.mel_scale!r}")

    def check_input(self, x: torch.Tensor) -> None:
        """A clear error for an input this layer cannot read (rather than torch.stft's)."""
        if x.dim() < 1 or not x.is_floating_point():
            raise ValueError(f"{self.kind} reads float waveforms (..., L); received a "
                             f"tensor of shape {list(x.shape)} and dtype {x.dtype}")
        length = x.shape[-1]
        if self.center and self.pad_mode == "reflect" and length <= self.n_fft // 2:
            raise ValueError(f"{self.kind}: with center=True and pad_mode='reflect' a "
                             f"waveform needs more than n_fft // 2 = {self.n_fft // 2} samples; "
                             f"received {length}. Fix: longer clips, a smaller n_fft, or "
                             f"pad_mode='constant'")
        if not self.center and length < self.n_fft:
            raise ValueError(f"{self.kind}: with center=False a waveform needs at least "
                             f"n_fft = {self.n_fft} samples; received {length}")

    def spectrogram(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., L)`` → the mel spectrogram ``(..., n_mels, frames)`` (power ``self.power``)."""
        self.check_input(x)
        waves = x.reshape(-1, x.shape[-1])  # (B, L)
        if self.stft_path == "dft":
            power2 = self._dft_power(waves)
        else:
            z = torch.stft(waves, self.n_fft, self.hop_length, self.win_length,
                           self.window.to(waves.dtype), center=self.center,
                           pad_mode=self.pad_mode, normalized=False, onesided=True,
                           return_complex=True)
            power2 = torch.view_as_real(z).pow(2).sum(-1)  # |z|², (B, n_freqs, T)
        spec = power2 if self.power == 2.0 else power2.pow(self.power / 2.0)
        mel = torch.matmul(spec.transpose(-1, -2), self.filters.to(spec.dtype)).transpose(-1, -2)
        return mel.reshape(x.shape[:-1] + mel.shape[-2:])

    def _dft_power(self, waves: torch.Tensor) -> torch.Tensor:
        """``|STFT|²`` (B, n_freqs, T) as one strided conv1d: the same frames, window and DFT."""
        n_fft, n_freqs = self.n_fft, self.n_fft // 2 + 1
        left = (n_fft - self.win_length) // 2
        window = F.pad(self.window.to(torch.float64), [left, n_fft - self.win_length - left])
        # k·n mod n_fft keeps the angle exact for long frames
        k = torch.arange(n_freqs, dtype=torch.int64, device=waves.device)[:, None]
        n = torch.arange(n_fft, dtype=torch.int64, device=waves.device)[None, :]
        angle = (2.0 * math.pi / n_fft) * torch.remainder(k * n, n_fft).to(torch.float64)
        kernel = torch.cat([window * torch.cos(angle), -window * torch.sin(angle)])
        kernel = kernel.to(waves.dtype)[:, None, :]  # (2 * n_freqs, 1, n_fft)
        frames = waves[:, None, :]
        if self.center:
            frames = F.pad(frames, [n_fft // 2, n_fft // 2], mode=self.pad_mode)
        out = F.conv1d(frames, kernel, stride=self.hop_length)  # (B, 2 * n_freqs, T)
        return out[:, :n_freqs].pow(2) + out[:, n_freqs:].pow(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.spectrogram(x)


class AmplitudeToDB(nn.Module):
    """Power (``stype="power"``: ``10·log10``) or magnitude (``"magnitude"``: ``20·log10|x|``)
    spectrograms ``(..., F, T)`` to decibels relative to a fixed ``ref``, floored at ``amin``:
    librosa's ``power_to_db(S, ref=ref, amin=amin, top_db=top_db)`` (``amplitude_to_db`` for
    magnitudes). ``top_db`` (``None``: no clamp) clamps each item to at most ``top_db`` below its
    own peak: the maximum over the last two dimensions of each item, not over the whole batch, so
    a sample's features never depend on the other samples of its batch (librosa, given a batch,
    takes the peak of the whole array).

    >>> AmplitudeToDB(top_db=None)(torch.tensor([[[1.0, 10.0, 100.0]]]))
    tensor([[[ 0., 10., 20.]]])
    """

    def __init__(self, stype: str = "power", top_db: Optional[float] = 80.0, amin: float = 1e-10,
                 ref: float = 1.0):
        super().__init__()
        if stype not in ("power", "magnitude"):
            _fail("AmplitudeToDB", "stype", "'power' or 'magnitude'", stype)
        _check_db_args("AmplitudeToDB", amin, ref, top_db)
        self.stype, self.amin, self.ref = stype, float(amin), float(ref)
        self.top_db = None if top_db is None else float(top_db)
        self.multiplier = 10.0 if stype == "power" else 20.0

    def extra_repr(self) -> str:
        return f"stype={self.stype!r}, top_db={self.top_db}, amin={self.amin:g}, ref={self.ref:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() < 2:
            raise ValueError(f"AmplitudeToDB reads spectrograms (..., F, T); received a tensor "
                             f"of shape {list(x.shape)}")
        return _to_db(x.abs() if self.stype == "magnitude" else x, self.multiplier, self.amin,
                      self.ref, self.top_db)


class LogMel(MelSpectrogram):
    """:class:`MelSpectrogram` then :class:`AmplitudeToDB` (power to dB, ``ref`` 0 dB, floored at
    ``amin``, each item clamped to ``top_db`` below its own peak): the log-mel input of an audio
    CNN; librosa's ``power_to_db(feature.melspectrogram(...), ref=ref, amin=amin, top_db=top_db)``
    per waveform. Same arguments as :class:`MelSpectrogram`, plus ``top_db``, ``amin``, ``ref``.

    >>> LogMel(16000, n_mels=64, hop_length=160)(torch.randn(3, 8000)).shape
    torch.Size([3, 64, 51])
    """

    def __init__(self, sample_rate: float = 16000, n_fft: int = 512, win_length: Optional[int] = None,
                 hop_length: Optional[int] = None, f_min: float = 0.0, f_max: Optional[float] = None,
                 n_mels: int = 40, power: float = 2.0, center: bool = True,
                 pad_mode: str = "reflect", norm: Optional[str] = "slaney",
                 mel_scale: str = "slaney", top_db: Optional[float] = 80.0, amin: float = 1e-10,
                 ref: float = 1.0):
        super().__init__(sample_rate, n_fft, win_length, hop_length, f_min, f_max, n_mels, power,
                         center, pad_mode, norm, mel_scale)
        _check_db_args(type(self).__name__, amin, ref, top_db)
        self.top_db = None if top_db is None else float(top_db)
        self.amin, self.ref = float(amin), float(ref)
        # a magnitude (power=1) spectrogram is in amplitude units: 20·log10, as librosa's
        # amplitude_to_db; any other power is treated as power (10·log10)
        self.multiplier = 20.0 if self.power == 1.0 else 10.0

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, top_db={self.top_db}, amin={self.amin:g}, ref={self.ref:g}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _to_db(self.spectrogram(x), self.multiplier, self.amin, self.ref, self.top_db)


class MFCC(LogMel):
    """Mel-frequency cepstral coefficients ``(..., L)`` → ``(..., n_mfcc, frames)``: the
    :class:`LogMel` dB spectrogram (``top_db`` per item) times an orthonormal DCT-II matrix
    (:func:`dct_matrix`), librosa's ``feature.mfcc(y=..., sr=sample_rate, n_mfcc=n_mfcc,
    n_mels=n_mels, ...)`` (``dct_type=2``, ``norm="ortho"``, no liftering) per waveform.

    >>> MFCC(16000, n_mfcc=13)(torch.randn(2, 1, 4000)).shape
    torch.Size([2, 1, 13, 32])
    """

    def __init__(self, sample_rate: float = 16000, n_mfcc: int = 13, n_mels: int = 40,
                 n_fft: int = 512, hop_length: Optional[int] = None, win_length: Optional[int] = None,
                 f_min: float = 0.0, f_max: Optional[float] = None, center: bool = True,
                 pad_mode: str = "reflect", norm: Optional[str] = "slaney",
                 mel_scale: str = "slaney", top_db: Optional[float] = 80.0, amin: float = 1e-10,
                 ref: float = 1.0):
        super().__init__(sample_rate, n_fft, win_length, hop_length, f_min, f_max, n_mels, 2.0,
                         center, pad_mode, norm, mel_scale, top_db, amin, ref)
        if not 1 <= _positive_int("MFCC", "n_mfcc", n_mfcc) <= n_mels:
            _fail("MFCC", "n_mfcc", f"at most n_mels={n_mels}", n_mfcc, "raise n_mels")
        self.n_mfcc = int(n_mfcc)
        self.register_buffer("dct", dct_matrix(self.n_mfcc, self.n_mels), persistent=False)

    def extra_repr(self) -> str:
        return f"n_mfcc={self.n_mfcc}, {super().extra_repr()}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        db = _to_db(self.spectrogram(x), self.multiplier, self.amin, self.ref, self.top_db)
        return torch.matmul(self.dct.to(db.dtype), db)  # (n_mfcc, n_mels) @ (..., n_mels, T)


class SpecAugment(nn.Module):
    """SpecAugment's masking (Park et al. 2019) of features ``(..., F, T)``, in training mode only:
    each item (each ``(F, T)`` slice) gets ``freq_masks`` bands of ``f ~ U{0..freq_width}``
    consecutive frequency rows and ``time_masks`` bands of ``t ~ U{0..time_width}`` consecutive
    frames, at uniformly drawn places, each item its own. Masked values are set to the item's mean
    (not 0: a dB spectrogram's silence is far below 0, and the mean leaves a later normalisation's
    statistics nearly unchanged). In eval mode it is the identity, so an exported model has no
    masks. The draws use torch's random generator: a run seeded with ``torch.manual_seed``
    repeats its masks.

    >>> aug = SpecAugment(freq_masks=1, freq_width=4, time_masks=1, time_width=4).eval()
    >>> x = torch.randn(2, 40, 50); torch.equal(aug(x), x)
    True
    """

    def __init__(self, freq_masks: int = 2, freq_width: int = 8, time_masks: int = 2,
                 time_width: int = 10):
        super().__init__()
        self.freq_masks = _positive_int("SpecAugment", "freq_masks", freq_masks, 0)
        self.freq_width = _positive_int("SpecAugment", "freq_width", freq_width, 0)
        self.time_masks = _positive_int("SpecAugment", "time_masks", time_masks, 0)
        self.time_width = _positive_int("SpecAugment", "time_width", time_width, 0)

    def extra_repr(self) -> str:
        return (f"freq_masks={self.freq_masks}, freq_width={self.freq_width}, "
                f"time_masks={self.time_masks}, time_width={self.time_width}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        if x.dim() < 2:
            raise ValueError(f"SpecAugment reads features (..., F, T); received a tensor of "
                             f"shape {list(x.shape)}")
        flat = x.reshape(-1, x.shape[-2], x.shape[-1])  # (B, F, T)
        rows = _bands(flat.shape[0], flat.shape[1], self.freq_masks, self.freq_width, x.device)
        cols = _bands(flat.shape[0], flat.shape[2], self.time_masks, self.time_width, x.device)
        masked = rows[:, :, None] | cols[:, None, :]
        fill = flat.mean(dim=[1, 2], keepdim=True)
        return torch.where(masked, fill, flat).reshape(x.shape)


def _bands(batch: int, size: int, count: int, width: int, device: torch.device) -> torch.Tensor:
    """(batch, size) booleans: ``count`` random bands of 0..width positions per row."""
    pos = torch.arange(size, device=device)[None, :]
    mask = torch.zeros(batch, size, dtype=torch.bool, device=device)
    for _ in range(count):
        w = torch.randint(0, min(width, size) + 1, (batch, 1), device=device)
        start = (torch.rand(batch, 1, device=device) * (size - w + 1)).floor().long()
        mask = mask | ((pos >= start) & (pos < start + w))
    return mask


# --- the zoo's audio models ---------------------------------------------------------------------


def _as_channel(x: torch.Tensor, owner: str) -> torch.Tensor:
    """``(N, L)`` → ``(N, 1, L)``; ``(N, 1, L)`` as it is."""
    if x.dim() == 2:
        return x.unsqueeze(1)
    if x.dim() != 3 or x.shape[1] != 1:
        raise ValueError(f"{owner} reads mono waveforms (N, 1, L) or (N, L); received a tensor "
                         f"of shape {list(x.shape)}. Fix: mix the channels down to one")
    return x


class AudioCNN(nn.Module):
    """A log-mel CNN over mono waveforms ``(N, 1, L)`` or ``(N, L)``: :class:`LogMel` →
    :class:`SpecAugment` (training only, when ``spec_augment``) → each clip's log-mel standardised
    over all its bands and frames (``InstanceNorm2d(1, affine=True)``) → per entry of
    ``channels``: Conv2d 3×3 → BatchNorm2d → ReLU → MaxPool2d 2 (``ceil_mode``: a map 1 frame
    thin stays 1, so any ``L >= n_fft`` works) → global average pool → Dropout → Linear to
    ``num_classes`` logits.

    Why a per-clip standardisation: dB values sit around -80..+40, far from what a conv layer
    starts from, and a clip's level depends on the microphone more than on the sound. The
    per-clip statistics need no running averages, so training and eval compute the same thing
    from the first step; a ``BatchNorm`` over the mel bands (PANNs' choice) left eval mode
    predicting one class after a few dozen steps on a small data set, its running statistics far
    from the batches'. The price: the clip's absolute loudness is not an input.

    ``sample_rate`` and ``num_samples`` (``L``, or ``None`` for any length) are public
    attributes: what the model expects of its data.
    """

    def __init__(self, num_classes: int = 2, sample_rate: float = 16000, n_mels: int = 40,
                 n_fft: int = 512, hop_length: int = 160, channels: Sequence[int] = (32, 64, 128),
                 dropout: float = 0.1, spec_augment: bool = True,
                 num_samples: Optional[int] = None):
        super().__init__()
        self.features = LogMel(sample_rate, n_fft=n_fft, hop_length=hop_length, n_mels=n_mels)
        self.augment = SpecAugment() if spec_augment else nn.Identity()
        self.sample_rate, self.num_samples = self.features.sample_rate, num_samples
        self.norm = nn.InstanceNorm2d(1, affine=True)  # per clip, over (n_mels, T)
        blocks, width = [], 1
        for c in channels:
            blocks.append(nn.Sequential(nn.Conv2d(width, c, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(c), nn.ReLU(),
                                        nn.MaxPool2d(2, ceil_mode=True)))
            width = c
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(width, num_classes)

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, num_samples={self.num_samples}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(_as_channel(x, "AudioCNN"))  # (N, 1, n_mels, T) dB
        x = self.augment(x)
        x = self.norm(x)
        x = self.pool(self.blocks(x)).flatten(1)  # (N, channels[-1])
        return self.fc(self.dropout(x))


def m5_min_samples(stride: int = 16) -> int:
    """The shortest waveform :class:`M5` reads: each of its four blocks must leave at least one
    step after its 4× max-pool.

    >>> m5_min_samples(16)
    6848
    """
    need = 1
    for _ in range(3):  # blocks 4, 3, 2 backwards: pool (×4), then a kernel-3 conv (+2)
        need = need * 4 + 2
    return 80 + (need * 4 - 1) * stride  # block 1: pool, then conv1d(kernel 80, stride)


class M5(nn.Module):
    """M5 (Dai et al. 2017, "Very deep convolutional neural networks for raw waveforms"), as in
    PyTorch's speech-command tutorial: Conv1d(1, c, 80, stride) → BatchNorm → ReLU → MaxPool(4),
    then conv blocks of kernel 3 with c, 2c, 2c channels (each BatchNorm → ReLU → MaxPool(4)),
    global average pool, Linear to ``num_classes`` logits (the tutorial's log-softmax is left to
    the loss). Reads mono waveforms ``(N, 1, L)`` or ``(N, L)`` of at least
    :func:`m5_min_samples` samples (6848 at stride 16: the tutorial's 8 kHz one-second clips).

    ``sample_rate`` and ``num_samples`` (``L``, or ``None``) are public attributes: what the model
    expects of its data.
    """

    def __init__(self, num_classes: int = 2, sample_rate: float = 16000, channels: int = 32,
                 stride: int = 16, num_samples: Optional[int] = None):
        super().__init__()
        self.sample_rate, self.num_samples = _rate(sample_rate), num_samples
        self.min_samples = m5_min_samples(stride)
        c = channels
        widths = [(1, c, 80, stride), (c, c, 3, 1), (c, 2 * c, 3, 1), (2 * c, 2 * c, 3, 1)]
        self.blocks = nn.Sequential(*[
            nn.Sequential(nn.Conv1d(i, o, k, stride=s), nn.BatchNorm1d(o), nn.ReLU(), nn.MaxPool1d(4))
            for i, o, k, s in widths])
        self.fc = nn.Linear(2 * c, num_classes)

    def extra_repr(self) -> str:
        return f"sample_rate={self.sample_rate}, num_samples={self.num_samples}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_channel(x, "M5")
        if x.shape[-1] < self.min_samples:
            raise ValueError(f"M5 needs waveforms of at least {self.min_samples} samples; "
                             f"received {x.shape[-1]}. Fix: longer clips, or a smaller stride")
        return self.fc(self.blocks(x).mean(-1))  # (N, 2c, steps) → (N, 2c) → (N, classes)
