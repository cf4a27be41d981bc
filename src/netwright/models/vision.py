"""Vision models: torchvision classifiers for images that are not RGB, and where their head is.

torchvision's classifiers read 3-channel images. :func:`adapt_input_channels` gives a model
another number of input channels (1 for grey scans, 4 for RGBA) by replacing its first
convolution with one of the same shape in every other respect; the spec form
``{"torchvision": "resnet18", "args": {...}, "in_channels": 1}`` does it when the model is built,
so model.json rebuilds the same module. :func:`head_module_names` finds the classifier head, the
part of a pretrained model that fine-tuning trains first (``netwright.training.finetune``) and
that a file of ImageNet weights does not fit (1000 classes).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ModelSpecError, short_repr

__all__ = ["adapt_input_channels", "check_in_channels", "first_conv", "head_module_names"]


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d] | None:
    """The name and module of the first ``nn.Conv2d`` in ``model.named_modules()`` order (the
    stem that reads the image), or None.

    >>> first_conv(nn.Sequential(nn.Flatten(), nn.Conv2d(3, 8, 3)))[0]
    '1'
    """
    return next(((name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)), None)


def check_in_channels(in_channels: Any, path: str = "model") -> None:
    """A ModelSpecError unless ``in_channels`` is a positive whole number."""
    if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
        raise ModelSpecError(
            f"{path} 'in_channels': expected a positive whole number of image channels (1 for "
            f"grey, 3 for RGB, 4 for RGBA); received {short_repr(in_channels)}. Fix: e.g. "
            f"'in_channels': 1."
        )


def adapt_input_channels(model: nn.Module, in_channels: Any, path: str = "model") -> nn.Module:
    """``model`` with its first ``nn.Conv2d`` replaced by one that reads ``in_channels`` channels
    (same out_channels, kernel, stride, padding, dilation, bias and padding mode; freshly
    initialised). The model is changed in place and returned; a first convolution that already
    reads ``in_channels`` channels is left as it is.

    Pretrained RGB weights still fit such a model: :func:`netwright.checkpoint.pretrained.
    load_pretrained` sums the stem's filters over the colour channels for a grey model.

    >>> import torchvision.models as tvm
    >>> grey = adapt_input_channels(tvm.resnet18(num_classes=2), 1)
    >>> grey.conv1
    Conv2d(1, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), bias=False)
    """
    check_in_channels(in_channels, path)
    found = first_conv(model)
    if found is None:
        raise ModelSpecError(
            f"{path}: 'in_channels': {in_channels} needs a model whose input goes through a "
            f"Conv2d first; {type(model).__name__} has no Conv2d. Fix: drop 'in_channels', or "
            f"convert the images to the channels the model reads."
        )
    name, conv = found
    if conv.in_channels == in_channels:
        return model
    if conv.groups != 1:
        raise ModelSpecError(
            f"{path}: the first convolution {name!r} of {type(model).__name__} is grouped "
            f"(groups={conv.groups}), so it cannot simply read {in_channels} channels instead of "
            f"{conv.in_channels}. Fix: drop 'in_channels' and convert the images to "
            f"{conv.in_channels} channels."
        )
    weight = conv.weight
    new = nn.Conv2d(in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                    padding=conv.padding, dilation=conv.dilation, groups=1,
                    bias=conv.bias is not None, padding_mode=conv.padding_mode,
                    device=weight.device, dtype=weight.dtype)
    if not name:  # the model is itself a Conv2d
        return new
    parent_name, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, leaf, new)
    return model


def head_module_names(model: nn.Module) -> list[str]:
    """The names of the classifier head's modules with parameters: the last module (in
    ``named_modules()`` order) that holds parameters of its own; for a netwright ``heads`` block,
    the last such module of each head.

    resnet: ``['fc']``; vgg, alexnet, mobilenet, efficientnet: ``['classifier.N']``; vit:
    ``['heads.head']``; a layer spec: its last ``linear``. A model wrapped in
    :class:`~netwright.models.scaling.Scaled` gives names under ``net.``.

    >>> head_module_names(nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2), nn.Softmax(1)))
    ['2']
    """
    from .layers import Heads

    owners = [name for name, m in model.named_modules()
              if next(m.parameters(recurse=False), None) is not None]
    if not owners:
        return []
    last = owners[-1]
    multi = [name for name, m in model.named_modules() if isinstance(m, Heads)
             and (not name or last.startswith(name + "."))]
    if not multi:
        return [last]
    outer = multi[-1]  # the innermost heads block around the last head
    heads = []
    for child, _ in model.get_submodule(outer).named_children():
        prefix = f"{outer}.{child}" if outer else child
        inside = [n for n in owners if n == prefix or n.startswith(prefix + ".")]
        if inside:
            heads.append(inside[-1])
    return heads
