"""Augmentation of training waveforms, declared by name in ``data.augment``.

``[{time_shift: 0.1}, {gain: 6}, {noise: {snr: [10, 30], p: 0.5}}]`` shifts each training clip
by up to 10 % of its length (the vacated part is silence), changes its level by up to ±6 dB,
and adds white noise at a signal-to-noise ratio drawn from 10-30 dB (or a slice of a real
background recording, ``noise: {snr: 15, source: noises/}``). Every transform takes ``p``, the
chance it is applied to a clip (default 1). They draw from torch's random generator, so a
seeded run repeats (each loader worker has its own seeded stream). Spectrogram masks
(SpecAugment) act on features, so they are a model layer, ``spec_augment``, that is the
identity in evaluation and in an exported model. Nothing here runs on validation, test or
prediction data.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from ..errors import ConfigError, did_you_mean, short_repr

__all__ = ["build_sound_augment", "SOUND_AUGMENTS", "SoundAugment"]

SOUND_AUGMENTS = {
    "time_shift": "shift by up to this fraction of the clip's length, e.g. 0.1",
    "gain": "change the level by up to this many dB, e.g. 6",
    "noise": "add noise at a signal-to-noise ratio in dB: a number, [low, high], or "
             "{snr: ..., source: a folder of background sounds}",
}


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


class SoundAugment:
    """The checked transforms of ``data.augment`` for waveforms ``(1, L)``; callable."""

    def __init__(self, steps: list[tuple[str, dict]], noises: list[torch.Tensor] | None = None):
        self.steps = steps
        self.noises = noises or []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for name, args in self.steps:
            if args["p"] < 1 and float(torch.rand(())) >= args["p"]:
                continue
            if name == "time_shift":
                most = int(args["fraction"] * x.shape[-1])
                shift = int(torch.randint(-most, most + 1, ())) if most else 0
                if shift:
                    x = torch.roll(x, shift, dims=-1)
                    if shift > 0:
                        x[..., :shift] = 0
                    else:
                        x[..., shift:] = 0
            elif name == "gain":
                x = x * 10 ** (_uniform(-args["db"], args["db"]) / 20)
            elif name == "noise":
                snr = _uniform(*args["snr"])
                noise = self._noise(x)
                signal = x.pow(2).mean()
                if float(signal) > 0:
                    scale = torch.sqrt(signal / (noise.pow(2).mean() * 10 ** (snr / 10) + 1e-12))
                    x = x + scale * noise
        return x

    def _noise(self, x: torch.Tensor) -> torch.Tensor:
        if not self.noises:
            return torch.randn_like(x)
        clip = self.noises[int(torch.randint(0, len(self.noises), ()))]
        n = x.shape[-1]
        if clip.shape[0] < n:
            clip = clip.repeat(n // clip.shape[0] + 1)
        start = int(torch.randint(0, clip.shape[0] - n + 1, ()))
        return clip[start:start + n].reshape(x.shape).to(x.dtype)

    def __repr__(self) -> str:
        return f"SoundAugment({', '.join(f'{n}={a}' for n, a in self.steps)})"


def _number(value: Any, where: str, low: float, high: float, example: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ConfigError(f"{where}: expected a number from {low} to {high}, e.g. {example}; "
                          f"received {short_repr(value)}.")
    return float(value)


def _snr(value: Any, where: str) -> tuple[float, float]:
    if isinstance(value, (list, tuple)) and len(value) == 2:
        low, high = (_number(v, where, -20, 100, "[10, 30]") for v in value)
        if low > high:
            raise ConfigError(f"{where}: expected [low, high] with low ≤ high; received {list(value)}.")
        return low, high
    v = _number(value, where, -20, 100, "20 or [10, 30]")
    return v, v


def _noise_clips(folder: Any, sample_rate: int, where: str) -> list[torch.Tensor]:
    from .audio import AUDIO_SUFFIXES, audio_files_in, check_audio, decode

    path = Path(str(folder))
    if not path.is_dir():
        raise ConfigError(f"{where}: {str(path)!r} is not a folder. Fix: a folder of background "
                          f"sound files ({', '.join(AUDIO_SUFFIXES)}).")
    files = audio_files_in(path)
    if not files:
        raise ConfigError(f"{where}: {str(path)!r} holds no sound files "
                          f"({', '.join(AUDIO_SUFFIXES)}).")
    check_audio(files, skip_bad=False)
    return [torch.from_numpy(decode(f, sample_rate)) for f in files]


def build_sound_augment(spec: Sequence[Any] | None, sample_rate: int,
                        where: str = "data.augment", *, load: bool = True) -> SoundAugment | None:
    """``data.augment`` for sounds → a :class:`SoundAugment` (None when empty); every name and
    argument checked here, before any clip is read. ``load=False`` checks without reading the
    background-noise files.

    >>> build_sound_augment([{"time_shift": 0.1}, {"gain": 6}], 16000)
    SoundAugment(time_shift={'fraction': 0.1, 'p': 1.0}, gain={'db': 6.0, 'p': 1.0})
    """
    if not spec:
        return None
    if not isinstance(spec, (list, tuple)):
        raise ConfigError(f"{where}: expected a list such as [{{time_shift: 0.1}}, {{gain: 6}}]; "
                          f"received {short_repr(spec)}.")
    steps: list[tuple[str, dict]] = []
    noises: list[torch.Tensor] = []
    for i, item in enumerate(spec):
        at = f"{where}[{i}]"
        if isinstance(item, str):
            name, value = item, None
        elif isinstance(item, dict) and len(item) == 1:
            name, value = next(iter(item.items()))
        else:
            raise ConfigError(f"{at}: expected a name or {{name: arguments}}; received "
                              f"{short_repr(item)}.")
        if name not in SOUND_AUGMENTS:
            raise ConfigError(
                f"{at}: unknown sound augmentation {name!r}.{did_you_mean(str(name), SOUND_AUGMENTS)} "
                f"Expected one of: " + "; ".join(f"{k} ({v})" for k, v in SOUND_AUGMENTS.items())
                + ". Masks of the spectrogram are a model layer: spec_augment.")
        args = dict(value) if isinstance(value, dict) else {}
        main = {"time_shift": "fraction", "gain": "db", "noise": "snr"}[name]
        if not isinstance(value, dict):
            args = {main: value} if value is not None else {}
        p = _number(args.pop("p", 1.0), f"{at}.p", 0, 1, "0.5")
        source = args.pop("source", None) if name == "noise" else None
        extra = sorted(set(args) - {main})
        if extra:
            raise ConfigError(f"{at}: {name} takes {main}, p{' and source' if name == 'noise' else ''}; "
                              f"received {extra}.")
        if main not in args:
            raise ConfigError(f"{at}: {name} needs {main}: {SOUND_AUGMENTS[name]}.")
        if name == "time_shift":
            parsed: dict[str, Any] = {"fraction": _number(args[main], f"{at}.fraction", 0, 0.5, "0.1")}
        elif name == "gain":
            parsed = {"db": _number(args[main], f"{at}.db", 0, 40, "6")}
        else:
            parsed = {"snr": _snr(args[main], f"{at}.snr")}
            if source is not None and load:
                noises += _noise_clips(source, sample_rate, f"{at}.source")
        steps.append((name, {**parsed, "p": p}))
    return SoundAugment(steps, noises)

