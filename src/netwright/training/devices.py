"""Where a run happens and how it is seeded: the two choices every command makes first."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch

from ..errors import ConfigError

__all__ = ["seed_everything", "resolve_device"]


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: Any = "auto") -> torch.device:
    """``"auto"`` picks CUDA, then Apple's MPS, then the CPU; anything else is checked."""
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(
            f"device: expected 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'; received {device!r}."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was asked for but torch sees no CUDA device. Fix: device='auto' or 'cpu'.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(
            f"device: {device!r} does not exist; torch sees {torch.cuda.device_count()} CUDA device(s)."
        )
    return dev
