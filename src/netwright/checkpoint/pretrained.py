""":func:`load_pretrained`: published weights (torchvision's ImageNet ``.pth``, a safetensors
file) into a model made for another task: another number of classes, grey or RGBA images.

The file is read through the same safe path as :func:`~netwright.checkpoint.load_weights`
(safetensors, or ``torch.load`` with ``weights_only=True``; no code from the file runs), and
netwright never downloads anything: a weights name such as ``'IMAGENET1K_V1'`` is an error that
says how to fetch the file once.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError, describe
from ..models.scaling import unwrap
from ..models.vision import first_conv, head_module_names
from .repair import listing, plan_keys
from .sources import open_source

__all__ = ["load_pretrained"]

_MATCH_AT_LEAST = 0.5  # of the model's tensors; fewer is a file for another architecture
# What torchvision takes for weights= and what it downloads: names, not files on this machine.
_WEIGHTS_NAME = re.compile(
    r"^(?:[A-Za-z0-9_]+_Weights\.)?(?:DEFAULT|[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+)$")
_HUB_FILE = re.compile(r"^[a-z0-9_]+-[0-9a-f]{8,}\.(?:pth|pt)$")  # e.g. resnet18-f37072fd.pth


def load_pretrained(model: nn.Module, path: Any) -> dict[str, Any]:
    """Load a file of pretrained weights into ``model`` as far as they fit, and report it.

    - tensors that match by name and shape are loaded (BatchNorm's running statistics too);
      wrapper prefixes (``module.``, ``_orig_mod.``, ...) are undone as in ``load_weights``;
    - the classifier head, whose shape differs (1000 ImageNet classes, the data has N), is kept
      as initialised and reported, as is anything else of another shape or not in the file;
    - the first convolution's filters of shape ``(O, 3, k, k)`` are adapted to a model that
      reads other channels: summed over the colour channels for 1 (the grey model's output on
      ``x`` is then the RGB model's on ``x`` repeated three times), copied with zero filters for
      the extra channels for more (RGBA: the alpha channel starts with no effect).

    A model wrapped in :class:`~netwright.models.scaling.Scaled` is loaded into its network.
    A file that fits fewer than half of the model's tensors is a ``CheckpointError`` (it holds
    another architecture). Returns ``{"source", "loaded", "left", "adapted", "renamed",
    "unused"}``: the number of tensors loaded, ``{key: why it kept its initial value}``,
    ``{key: how it was adapted}``, ``{file's key: model's key}`` where they differ, and the
    file's keys the model has no place for.

    >>> import torchvision.models as tvm, tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "resnet18.pth")
    >>> torch.save(tvm.resnet18().state_dict(), path)  # the 1000-class ImageNet model
    >>> from netwright.models.vision import adapt_input_channels
    >>> grey = adapt_input_channels(tvm.resnet18(num_classes=10), 1)
    >>> report = load_pretrained(grey, path)
    >>> report["loaded"], sorted(report["left"]), list(report["adapted"])
    (120, ['fc.bias', 'fc.weight'], ['conv1.weight'])
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"load_pretrained expects an nn.Module as model; got {describe(model)}.")
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"load_pretrained: expected the path of a weights file (.pth, .pt, "
                          f".safetensors); got {describe(path)}.")
    _refuse_download_names(path)
    net = unwrap(model)
    prefix = "" if net is model else "net."
    src = open_source(path, allow_pickle=False, map_location="cpu")
    state = net.state_dict()
    dst_shapes = {k: tuple(v.shape) for k, v in state.items()}
    src_shapes = {k: tuple(v.shape) for k, v in src.state.items()}
    plan = plan_keys(src_shapes, dst_shapes, repair=True, src_ordered=src.ordered)

    to_load = {d: src.state[s] for d, s in plan.pairs.items()}
    adapted: dict[str, str] = {}
    left: dict[str, str] = {}
    heads = head_module_names(net)
    stem = first_conv(net)
    stem_key = f"{stem[0]}.weight" if stem is not None and stem[0] else None
    for key, src_key in plan.mismatched.items():
        theirs, ours = src_shapes[src_key], dst_shapes[key]
        if key == stem_key:
            weight, how = _adapt_stem(src.state[src_key], ours)
            if weight is not None:
                to_load[key], adapted[prefix + key] = weight, how
                continue
        head = any(key.startswith(h + ".") for h in heads)
        left[prefix + key] = (f"the file's {theirs} does not fit the model's {ours}"
                              + (": a new classifier head, kept as initialised" if head else
                                 "; kept as initialised"))
    for key in plan.missing:
        left[prefix + key] = "not in the file; kept as initialised"

    if len(to_load) < _MATCH_AT_LEAST * len(dst_shapes):
        raise _too_few(src.name, net, len(to_load), src_shapes, dst_shapes)
    try:
        net.load_state_dict(to_load, strict=False)
    except RuntimeError as exc:
        raise CheckpointError(f"copying the weights of {src.name} into {type(net).__name__} "
                              f"failed: {exc}. Fix: check the file's dtypes.") from None
    renamed = {s: prefix + d for d, s in plan.pairs.items() if s != d}
    return {"source": src.name, "loaded": len(to_load), "left": left, "adapted": adapted,
            "renamed": renamed, "unused": list(plan.unexpected)}


def _adapt_stem(weight: torch.Tensor, shape: tuple[int, ...]) -> tuple[torch.Tensor | None, str]:
    """The file's first-convolution filters ``(O, C, k, k)`` for a model that reads another
    number of channels, and how; None where that cannot be done."""
    if weight.ndim != 4 or len(shape) != 4 or weight.shape[0] != shape[0] \
            or tuple(weight.shape[2:]) != tuple(shape[2:]):
        return None, ""
    have, want = weight.shape[1], shape[1]
    if want == 1:
        # conv(grey repeated C times, W) = conv(grey, sum of W over its C input channels)
        return weight.sum(dim=1, keepdim=True), f"summed over the file's {have} input channels"
    if want > have:
        extra = weight.new_zeros((weight.shape[0], want - have, *weight.shape[2:]))
        return torch.cat([weight, extra], dim=1), (f"the file's {have} input channels copied; "
                                                   f"the other {want - have} start at zero")
    return None, ""


def _refuse_download_names(path: Any) -> None:
    text = os.fspath(path)
    if Path(text).expanduser().exists():
        return
    name = Path(text).name
    if not (text.startswith(("http://", "https://")) or _WEIGHTS_NAME.match(text)
            or _HUB_FILE.match(name)):
        return
    cache = ""
    if _HUB_FILE.match(name):
        cache = (f" (a file torch has downloaded before is in "
                 f"{Path(torch.hub.get_dir()) / 'checkpoints' / name})")
    raise ConfigError(
        f"weights: {text!r} is not a file on this machine but a name of weights to download"
        f"{cache}; netwright never downloads weights. Fix: download them once with torchvision "
        f"on a machine with internet, e.g. torch.save(torchvision.models.resnet18("
        f"weights='IMAGENET1K_V1').state_dict(), 'resnet18.pth') (or safetensors' save_file), "
        f"then give that file: weights: path/to/resnet18.pth."
    )


def _too_few(name: str, net: nn.Module, matched: int, src_shapes: dict, dst_shapes: dict
             ) -> CheckpointError:
    def few(shapes: dict) -> str:
        return listing((f"{k!r} {v}" for k, v in shapes.items()), 4) or "(none)"
    return CheckpointError(
        f"the weights in {name} hardly fit {type(net).__name__}: {matched} of the model's "
        f"{len(dst_shapes)} tensors match one of the file's {len(src_shapes)} by name and shape "
        f"(at least half must), so it holds another architecture. Nothing was loaded.\n"
        f"  file: {few(src_shapes)}\n"
        f"  model: {few(dst_shapes)}\n"
        f"Fix: use the weights published for this very architecture (e.g. resnet18's for "
        f"{{'torchvision': 'resnet18'}}), or build the model the file was saved from."
    )
