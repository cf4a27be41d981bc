"""Checks of sound data against a sound model (NW214, NW215) and of the clips themselves
(NW308, NW309): a model whose spectrogram was built for another sample rate reads every sound
at the wrong frequencies and trains anyway; a clip length the model was not built for fails
deep inside it or, with global pooling, trains on padding; clipped or silent recordings teach
the model the recording, not the sound."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .report import Finding, finding


def expected(model: nn.Module, attr: str) -> tuple[str, int] | None:
    """(module name, value) of the first of netwright's sound modules in ``model`` (its audio
    models and feature layers) that states ``attr`` (``sample_rate`` or ``num_samples``). A
    user's own module with such an attribute (a Monte-Carlo model's ``num_samples``) is not
    one."""
    for name, module in model.named_modules():
        if type(module).__module__ != "netwright.models.audio":
            continue
        value = getattr(module, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return (name or type(module).__name__), value
    return None


def data_audio(data: Any) -> dict | None:
    """What sound data says of itself: ``{"sample_rate", "levels"}`` of netwright's
    :class:`~netwright.data.audio.AudioFiles` (also inside a ``Subset``, a ``DataLoader`` or
    fit's data source), else None."""
    for _ in range(8):  # a fit source, a DataLoader, a Subset: each holds the next
        if data is None or hasattr(data, "audio"):
            break
        data = getattr(data, "dataset", None) if hasattr(data, "dataset") else getattr(data, "loader", None)
    listed = getattr(data, "audio", None)
    rate = getattr(listed, "sample_rate", None)
    if not isinstance(rate, int):
        return None
    return {"sample_rate": rate, "levels": getattr(listed, "levels", None) or {}}


def audio_findings(model: nn.Module, x: Any, audio: dict | None) -> list[Finding]:
    """Sample rate and clip length of the data against what the model states; clipping and
    silence counts from the data's own check. [] for models and data that state nothing."""
    found: list[Finding] = []
    rate = expected(model, "sample_rate")
    if rate is not None and audio is not None and audio["sample_rate"] != rate[1]:
        found.append(finding(
            "NW214", f"{rate[0]} computes its features for sounds at {rate[1]} Hz; the clips are "
            f"at {audio['sample_rate']} Hz, so every frequency it sees is off by a factor of "
            f"{audio['sample_rate'] / rate[1]:.3g} (a 1 kHz tone lands at "
            f"{1000 * rate[1] / audio['sample_rate']:.0f} Hz).",
            f"read the clips at {rate[1]} Hz (data.sample_rate: {rate[1]}, or "
            f"nw.audio(..., sample_rate={rate[1]})), or build the model with "
            f"sample_rate={audio['sample_rate']}", rate[0]))
    length = expected(model, "num_samples")
    if length is not None and audio is not None and isinstance(x, torch.Tensor) and x.ndim >= 2 \
            and x.shape[-1] != length[1]:
        sr = (audio or {}).get("sample_rate") or (rate[1] if rate else None)
        secs = f" ({length[1] / sr:g} s at {sr} Hz)" if sr else ""
        found.append(finding(
            "NW215", f"{length[0]} was built for clips of {length[1]} samples{secs}; the batch "
            f"holds clips of {x.shape[-1]} samples (input {tuple(x.shape)}).",
            (f"cut the clips to the model's length: data.duration: {length[1] / sr:g}" if sr
             else f"cut or pad the clips to {length[1]} samples") +
            f", or build the model for {x.shape[-1]} samples", length[0]))
    levels = (audio or {}).get("levels") or {}
    checked = levels.get("checked") or 0
    for code, key, what, fix in (
            ("NW308", "clipped", "are clipped (at least 0.1 % of their samples at full scale): "
             "the distortion is part of what the model learns", "record or export them at a lower "
             "level, or leave them out; check the files named"),
            ("NW309", "silent", "are silent (their loudest sample is below -60 dBFS): their "
             "labels cannot be learnt from them", "check the files named (a failed recording or "
             "export), and leave them out")):
        count = levels.get(key) or 0
        if count:
            files = ", ".join(levels.get(f"{key}_files") or [])
            found.append(finding(code, f"{count} of {checked} clips checked {what}. E.g. {files}.",
                                 fix, "inputs"))
    return found
