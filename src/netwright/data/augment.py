"""Augmentation declared by name: ``torchvision.transforms.v2`` transforms from a config.

``[horizontal_flip, {random_resized_crop: {size: 28, scale: [0.8, 1]}}, {color_jitter:
{brightness: 0.2}}]`` becomes ``v2.Compose([RandomHorizontalFlip(), RandomResizedCrop(...),
ColorJitter(...)])``. A name is any v2 transform class in snake_case (``random_rotation``), or
the same without its ``random_`` prefix (``horizontal_flip``). Everything is checked when the
config is read: an unknown name gets a "did you mean", bad arguments name the transform and
torch's reason, and a crop larger than the images is refused before any image is decoded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..errors import ConfigError, did_you_mean, short_repr

__all__ = ["build_augment", "augment_names"]

# Transforms that are not augmentations of one image (dtype and container conversions, batch
# mixing, box and key-point bookkeeping): refused by name, with the reason.
_NOT_AUGMENTATIONS = {
    "compose", "transform", "lambda", "to_tensor", "to_image", "to_pil_image", "pil_to_tensor",
    "to_dtype", "convert_image_dtype", "to_pure_tensor", "normalize", "cut_mix", "mix_up",
    "five_crop", "ten_crop", "sanitize_bounding_boxes", "clamp_bounding_boxes",
    "convert_bounding_box_format", "sanitize_key_points", "clamp_key_points", "set_clamping_mode",
    "linear_transformation", "uniform_temporal_subsample", "random_io_u_crop", "identity",
    "auto_augment_policy", "interpolation_mode", "random_apply", "random_choice", "random_order",
}


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()


def augment_names() -> dict[str, str]:
    """snake_case name (and the name without ``random_``) → v2 class name.

    >>> names = augment_names()
    >>> names["horizontal_flip"], names["random_resized_crop"], names["color_jitter"]
    ('RandomHorizontalFlip', 'RandomResizedCrop', 'ColorJitter')
    """
    import torchvision.transforms.v2 as v2

    names: dict[str, str] = {}
    for cls_name in dir(v2):
        cls = getattr(v2, cls_name)
        if not (isinstance(cls, type) and cls_name[:1].isupper()):
            continue
        key = _snake(cls_name)
        if key in _NOT_AUGMENTATIONS or not issubclass(cls, v2.Transform):
            continue
        names[key] = cls_name
        if key.startswith("random_"):
            names.setdefault(key[len("random_"):], cls_name)
    return names


def _entry(item: Any, where: str) -> tuple[str, Any]:
    if isinstance(item, str):
        return item, None
    if isinstance(item, Mapping) and len(item) == 1:
        (name, args), = item.items()
        return str(name), args
    raise ConfigError(
        f"{where}: expected a transform name ('horizontal_flip') or a one-key mapping "
        f"({{random_rotation: 10}}, {{color_jitter: {{brightness: 0.2}}}}); received "
        f"{short_repr(item)}.")


def build_augment(spec: Sequence[Any] | None, image_size: tuple[int, int] | None = None,
                  where: str = "data.augment", channels: int | None = None) -> Any:
    """A ``v2.Compose`` for ``spec``, or None for none. ``image_size`` (H, W): a crop or resize
    to another size would change the model's input, so it is refused here; with ``channels``
    too, the whole chain is tried on one blank image, which must keep its shape and dtype.

    >>> chain = build_augment(["horizontal_flip", {"random_rotation": 10}])
    >>> [type(t).__name__ for t in chain.transforms], chain.transforms[1].degrees
    (['RandomHorizontalFlip', 'RandomRotation'], [-10.0, 10.0])
    """
    if not spec:
        return None
    if isinstance(spec, (str, Mapping)):
        spec = [spec]
    try:
        import torchvision.transforms.v2 as v2
    except ImportError as exc:  # pragma: no cover - torchvision comes with the vision extra
        raise ConfigError(f"{where}: augmentation needs torchvision. Fix: pip install "
                          f"'netwright[vision]'.") from exc
    names = augment_names()
    made = []
    for i, item in enumerate(spec):
        here = f"{where}[{i}]"
        name, args = _entry(item, here)
        key = name.strip().lower()
        if key in _NOT_AUGMENTATIONS:
            why = ("images are normalised inside the model with the training split's statistics "
                   "(data.mean / data.std to give your own)" if key == "normalize" else
                   "netwright converts the images itself" if key.startswith("to_") or "dtype" in key
                   else "it is not a per-image augmentation")
            raise ConfigError(f"{here}: {name!r} cannot be used here: {why}.")
        if key not in names:
            raise ConfigError(
                f"{here}: unknown transform {name!r}.{did_you_mean(key, names)} Expected a "
                f"torchvision.transforms.v2 transform in snake_case, e.g. horizontal_flip, "
                f"random_resized_crop, color_jitter, random_rotation, random_erasing.")
        cls = getattr(v2, names[key])
        try:
            if args is None:
                t = cls()
            elif isinstance(args, Mapping):
                t = cls(**dict(args))
            elif isinstance(args, list):
                t = cls(*args)
            else:
                t = cls(args)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{here}: {cls.__name__}({short_repr(args)}) cannot be made: {exc}. "
                              f"Fix: use the arguments of torchvision.transforms.v2."
                              f"{cls.__name__}.") from None
        size = getattr(t, "size", None)
        if image_size is not None and size is not None and cls.__name__ in (
                "RandomResizedCrop", "RandomCrop", "CenterCrop", "Resize"):
            hw = (size, size) if isinstance(size, int) else tuple(size) * (2 if len(size) == 1 else 1)
            if tuple(hw) != tuple(image_size):
                raise ConfigError(
                    f"{here}: {cls.__name__} to {list(hw)} would change the images' size, but the "
                    f"model takes data.image_size {list(image_size)} (images are resized to it "
                    f"first, and predictions see that size). Fix: size: {list(image_size)} here, "
                    f"or change data.image_size.")
        made.append(t)
    chain = v2.Compose(made)
    if image_size is not None and channels is not None:
        import torch

        blank = torch.zeros((channels, *image_size), dtype=torch.uint8)
        for i, t in enumerate(made):
            try:
                out = t(blank)
            except Exception as exc:  # noqa: BLE001 - torch's reason, with the transform named
                raise ConfigError(f"{where}[{i}]: {type(t).__name__} fails on a {channels}-channel "
                                  f"{image_size[0]}x{image_size[1]} uint8 image: {exc}") from None
            if not isinstance(out, torch.Tensor) or out.shape != blank.shape or out.dtype != blank.dtype:
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ConfigError(
                    f"{where}[{i}]: {type(t).__name__} turns a {tuple(blank.shape)} image into "
                    f"{got}; the model takes every image at (channels, height, width) = "
                    f"{tuple(blank.shape)}. Fix: leave it out, or give it size {list(image_size)} "
                    f"(and keep the channels).")
    return chain
