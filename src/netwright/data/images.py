"""Image files as training data: a folder of class sub-folders, or a table of paths and labels.

Every file is checked before training starts (its header, its size and channels, and the end
of the file, so a truncated or non-image file is named here and never fails later inside a
worker process). Images are decoded by ``torchvision.io.decode_image`` (PIL for BMP and TIFF,
which it does not read), converted to the run's channels, resized (shorter side) and
centre-cropped to ``image_size``, and handed to the model as float tensors in [0, 1]; the
per-channel normalisation lives in the model (:class:`netwright.models.scaling.Scaled`), so an
exported model takes the same [0, 1] images. ``cache="memory"`` keeps the decoded, resized
images as one uint8 tensor, decoded once by the loader's workers.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .files import IMAGE_SUFFIXES, IMAGES, FileKind, files_from, image_files_in

__all__ = ["IMAGE_SUFFIXES", "FileKind", "IMAGES", "encode_labels", "ImageList", "ImageFiles",
           "scan_folder", "scan_table", "files_from",
           "list_images", "check_images", "decode", "fit_stats", "images", "prepare_images",
           "export_images", "decode_all"]

_PIL_ONLY = (".bmp", ".tif", ".tiff")
# Per-channel statistics are fitted on at most this many training images (seeded sample)
# when the images are not cached; a cached set is measured whole.
STATS_SAMPLE = 2000
# A cached set without augmentation up to this size (as float32) is handed over as arrays.
FLOAT_ARRAYS_BYTES = 1 << 30


@dataclass
class ImageList:
    """Checked image files: paths, class ids, class names, and what the check found."""

    paths: list[Path]
    labels: np.ndarray  # int64 class ids (index into classes)
    classes: list[str]
    size: tuple[int, int]  # (height, width) the model takes
    channels: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    notes: list[str] = field(default_factory=list)  # stated conversions, for the run's log




def scan_folder(root: Path, need_two: bool = True, kind: FileKind = IMAGES,
                ) -> tuple[list[Path], list[str], list[str]]:
    """(paths, label per path, class names) of an ImageFolder layout: one sub-folder per class
    (of images, or of the files ``kind`` names)."""
    if not root.is_dir():
        raise DataError(f"data.source {str(root)!r}: no such folder.")
    noun, suffixes = kind.noun, kind.suffixes
    subs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    loose = [p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in suffixes]
    if not subs:
        hint = (f" It holds {len(loose)} {noun} file(s) directly ({loose[0]!r}, ...), but no "
                f"class folders." if loose else "")
        raise DataError(
            f"data.source {str(root)!r}: expected one sub-folder per class holding its {noun}s "
            f"({kind.example}); found no sub-folders.{hint} Fix: sort the {noun}s into class "
            f"folders, or list them in a CSV with {kind.column} and data.target.")
    paths, labels, empty = [], [], []
    for sub in subs:
        files = image_files_in(sub, suffixes)
        if not files:
            empty.append(sub.name)
        paths += files
        labels += [sub.name] * len(files)
    if empty:
        raise DataError(
            f"data.source {str(root)!r}: class folder(s) {empty[:5]} hold no {noun}s (files "
            f"ending in {', '.join(suffixes)}). Fix: add {noun}s, or remove the empty folder(s).")
    classes = [s.name for s in subs]
    if len(classes) < 2 and need_two:
        raise DataError(
            f"data.source {str(root)!r}: found only one class folder ({classes[0]!r}, "
            f"{len(paths)} {noun}s); a classifier needs at least two. Fix: add a folder per class.")
    return paths, labels, classes


def scan_table(path: Path, image: str, target: str | None, kind: FileKind = IMAGES,
               ) -> tuple[list[Path], list[Any] | None]:
    """(paths, labels or None) from a CSV/Parquet file's path and label columns (images, or the
    files ``kind`` names); relative paths resolve against the file's folder."""
    from .prepare import read_table

    if not path.is_file():
        raise DataError(f"data.source {str(path)!r}: no such file.")
    df = read_table(path)
    columns = [str(c) for c in df.columns]
    df.columns = columns
    noun = kind.noun
    for what, col in ((kind.column, image), ("data.target", target)):
        if col is not None and col not in columns:
            raise DataError(f"{what}: column {col!r} is not in {str(path)!r}; its columns are "
                            f"{columns[:20]}. Fix: set {what} to one of them.")
    base = path.parent
    paths, missing = [], []
    for row, value in enumerate(df[image].tolist()):
        if not isinstance(value, str) or not value.strip():
            raise DataError(f"data file {str(path)!r}, row {row + 2} (counting the header as row "
                            f"1): column {image!r} holds {value!r}, not a path to a file.")
        p = Path(value)
        p = p if p.is_absolute() else base / p
        if not p.is_file():
            missing.append((row + 2, value))
        paths.append(p)
    if missing:
        row, value = missing[0]
        raise DataError(
            f"data file {str(path)!r}, row {row}: {noun} {value!r} does not exist (looked for "
            f"{str(paths[row - 2])!r}; {len(missing)} missing in all). Fix: correct the paths "
            f"(relative ones are read from the CSV's folder), or remove those rows.")
    labels = None
    if target is not None:
        labels = df[target].tolist()
        bad = [i for i, v in enumerate(labels) if v is None or (isinstance(v, float) and v != v)]
        if bad:
            raise DataError(f"data file {str(path)!r}, row {bad[0] + 2}: {noun} "
                            f"{str(df[image].iloc[bad[0]])!r} has no label (column {target!r} is "
                            f"empty; {len(bad)} such rows). Fix: label it, or remove the row.")
    return paths, labels


def _check_one(path: Path) -> tuple[int, int, int] | str:
    """(height, width, channels) of an intact image file, or the reason it is not one."""
    from PIL import Image, UnidentifiedImageError

    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
            fh.seek(0, os.SEEK_END)
            length = fh.tell()
            fh.seek(max(0, length - 2))
            tail = fh.read(2)
        if length == 0:
            return "the file is empty"
        if head[:2] == b"\xff\xd8" and tail != b"\xff\xd9":
            return "a JPEG file without its end marker (truncated)"
        with Image.open(path) as im:
            size, mode = im.size, im.mode
            im.verify()  # PNG: every chunk's checksum, so a cut or damaged file fails here
    except UnidentifiedImageError:
        return f"not an image file (it starts with {head[:8]!r})"
    except Image.DecompressionBombError as exc:  # a small file whose header claims gigapixels
        return f"too large to decode safely ({exc})"
    except (OSError, SyntaxError, ValueError) as exc:
        return f"damaged or truncated ({type(exc).__name__}: {exc})"
    channels = {"1": 1, "L": 1, "P": 3, "LA": 2, "I": 1, "I;16": 1, "F": 1, "RGB": 3, "RGBA": 4,
                "CMYK": 3, "YCbCr": 3, "PA": 4}.get(mode, 3)
    return size[1], size[0], channels


def check_images(paths: Sequence[Path], *, skip_bad: bool) -> tuple[list[int], list[tuple[int, int, int]], list[tuple[str, str]]]:
    """Check every file; (kept indices, their (h, w, channels), skipped (file, reason))."""
    kept, shapes, skipped = [], [], []
    for i, p in enumerate(paths):
        found = _check_one(p)
        if isinstance(found, str):
            if not skip_bad:
                raise DataError(
                    f"image {str(p)!r}: {found}. Fix: replace or delete the file, or set "
                    f"data.skip_bad: true to leave unreadable files out (they are counted and "
                    f"listed in the run's log).")
            skipped.append((str(p), found))
            continue
        kept.append(i)
        shapes.append(found)
    return kept, shapes, skipped


def list_images(source: str | os.PathLike, *, image: str | None = None, target: str | None = None,
                image_size: Any = None, channels: int | None = None, skip_bad: bool = False,
                classes: Sequence[str] | None = None) -> ImageList:
    """Find, check and describe the images of a folder or table (nothing is decoded)."""
    path = Path(source)
    if path.is_dir():
        if image is not None:
            raise ConfigError(f"data.image: {str(path)!r} is a folder of class folders; data.image "
                              f"names the path column of a CSV/Parquet file. Fix: leave it out.")
        paths, names, found = scan_folder(path, need_two=classes is None)
    elif path.suffix.lower() in (".csv", ".parquet"):
        if image is None:
            raise ConfigError(f"data.image: required to read images from {path.name} (the column "
                              f"that holds their paths).")
        paths, names = scan_table(path, image, target)
        found = None
    else:
        raise DataError(f"data.source {str(path)!r}: expected a folder of class folders, or a "
                        f"CSV/Parquet file with data.image; no such folder or table.")
    kept, shapes, skipped = check_images(paths, skip_bad=skip_bad)
    if not kept:
        raise DataError(f"data.source {str(path)!r}: none of the {len(paths)} files is a readable "
                        f"image (the first: {skipped[0][0]!r}, {skipped[0][1]}).")
    paths = [paths[i] for i in kept]
    if names is not None:
        names = [names[i] for i in kept]
    notes = []
    counts = Counter(c for _, _, c in shapes)
    if channels is None:
        channels = 1 if set(counts) == {1} else 3
    if len(counts) > 1 or set(counts) != {channels}:
        what = ", ".join(f"{n} with {c} channel{'s' if c > 1 else ''}" for c, n in sorted(counts.items()))
        notes.append(f"images have mixed channel counts ({what}): each is converted to "
                     f"{channels} channel{'s' if channels > 1 else ''}")
    sizes = Counter((h, w) for h, w, _ in shapes)
    if image_size is None:
        if len(sizes) > 1:
            (h1, w1), (h2, w2) = min(sizes), max(sizes)
            raise ConfigError(
                f"data.image_size: the images have {len(sizes)} different sizes ({h1}x{w1} to "
                f"{h2}x{w2}, height x width); the model takes one. Fix: set data.image_size, e.g. "
                f"{min(min(h for h, _ in sizes), 224)}.")
        size = next(iter(sizes))
    else:
        size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
        if len(size) == 1:
            size = (size[0], size[0])
        if len(size) != 2 or any(int(s) <= 0 for s in size):
            raise ConfigError(f"data.image_size: expected a size or [height, width]; received "
                              f"{image_size!r}.")
        small = sum(n for (h, w), n in sizes.items() if min(h, w) < min(size))
        if small:
            notes.append(f"{small} image(s) are smaller than {size[0]}x{size[1]} and are enlarged")
    if names is None:  # a table without labels: prediction only
        labels = np.zeros(len(paths), dtype=np.int64)
        classes = list(classes or [])
    else:  # a folder's classes are its sub-folders, sorted (as torchvision's ImageFolder)
        labels, classes = encode_labels(names, classes if classes is not None else found, path)
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable file(s): " + "; ".join(
            f"{f} ({why})" for f, why in skipped[:20]) + (" ..." if len(skipped) > 20 else ""))
    return ImageList(paths, labels, classes, (int(size[0]), int(size[1])), int(channels),
                     skipped, notes)


def encode_labels(names: list[Any], classes: Sequence[str] | None, where: Path,
                  noun: str = "image") -> tuple[np.ndarray, list]:
    """Class ids of ``names`` and the class list (sorted names when ``classes`` is None; a name
    outside a given list is an error naming it)."""
    if classes is None:
        found = sorted(set(names), key=lambda v: (str(type(v)), v))
        if len(found) < 2:
            raise DataError(f"data.source {str(where)!r}: every {noun} has the label {found[0]!r}; "
                            f"a classifier needs at least two classes.")
        classes = found
    lookup = {c: i for i, c in enumerate(classes)}
    lookup.update({str(c): i for i, c in enumerate(classes)})
    try:
        ids = [lookup[v] if v in lookup else lookup[str(v)] for v in names]
    except KeyError as exc:
        raise DataError(f"{str(where)!r}: label {exc.args[0]!r} was not seen in training "
                        f"(classes: {list(classes)[:20]}).") from None
    return np.asarray(ids, dtype=np.int64), list(classes)


def _quiet_torchvision_io() -> None:
    """torchvision 0.29 warns on every decode that TorchCodec will replace its image codecs;
    the codecs work, and the warning per image would bury a run's log (once per file)."""
    import warnings

    warnings.filterwarnings("ignore", message="The image decoding and encoding capabilities of "
                            "TorchVision are deprecated", category=DeprecationWarning)


def decode(path: Path, channels: int, size: tuple[int, int]) -> torch.Tensor:
    """One image as a uint8 (channels, height, width) tensor at ``size`` (shorter side resized,
    then centre-cropped)."""
    from torchvision.io import ImageReadMode, decode_image, read_file
    from torchvision.transforms.v2 import functional as F

    if not _QUIET[0]:
        _quiet_torchvision_io()
        _QUIET[0] = True

    mode = {1: ImageReadMode.GRAY, 3: ImageReadMode.RGB, 4: ImageReadMode.RGB_ALPHA}[channels]
    try:
        if path.suffix.lower() in _PIL_ONLY:
            img = _decode_pil(path, channels)
        else:
            # Photos carry their orientation in EXIF: upright as a viewer shows them.
            img = decode_image(read_file(str(path)), mode=mode, apply_exif_orientation=True)
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(f"image {str(path)!r} cannot be decoded: {exc}. Fix: replace or delete "
                        f"it, or set data.skip_bad: true.") from None
    if img.dtype != torch.uint8:  # 16-bit PNGs: the high byte, as 8-bit viewers show them
        img = (img.to(torch.int32) >> 8).clamp_(0, 255).to(torch.uint8)
    h, w = img.shape[-2:]
    if (h, w) != tuple(size):
        th, tw = size
        scale = max(th / h, tw / w)  # the shorter side (relative to the target) fits exactly
        img = F.resize(img, [max(th, round(h * scale)), max(tw, round(w * scale))], antialias=True)
        img = F.center_crop(img, [th, tw])
    return img.contiguous()


def _decode_pil(path: Path, channels: int) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        im = im.convert({1: "L", 3: "RGB", 4: "RGBA"}[channels])
        arr = np.asarray(im, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).contiguous()


_QUIET = [False]


class ImageFiles(Dataset):
    """``(image, class id)`` pairs: float32 (C, H, W) in [0, 1], augmented when ``augment`` is
    given (training), from the files or from ``cache`` (uint8, (N, C, H, W))."""

    def __init__(self, images: ImageList, index: np.ndarray | None = None, *, augment: Any = None,
                 cache: torch.Tensor | None = None, binary: bool = False):
        self.images = images
        self.index = np.arange(len(images.paths)) if index is None else np.asarray(index)
        self.augment = augment
        self.cache = cache  # rows follow images.paths, not self.index
        self.binary = binary  # targets as (1,) floats, what BCE losses take
        labels = torch.from_numpy(images.labels[self.index].copy())
        self.targets = labels.float()[:, None] if binary else labels

    def __len__(self) -> int:
        return len(self.index)

    def raw(self, i: int) -> torch.Tensor:
        """Image ``i`` as decoded and resized uint8, before augmentation."""
        j = int(self.index[i])
        if self.cache is not None:
            return self.cache[j]
        return decode(self.images.paths[j], self.images.channels, self.images.size)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img = self.raw(i)
        if self.augment is not None:
            img = self.augment(img)
        return img.float().div_(255), self.targets[i]

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        if self.cache is None or self.augment is not None:
            return [self[i] for i in indices]
        # Cached and not augmented: one gather and one conversion for the whole batch.
        rows = torch.from_numpy(self.index[np.asarray(indices)])
        x = self.cache[rows].float().div_(255)
        return list(zip(x.unbind(0), self.targets[torch.as_tensor(indices)].unbind(0)))

    def subset(self, positions: np.ndarray, *, augment: Any = None) -> ImageFiles:
        return ImageFiles(self.images, self.index[positions], augment=augment, cache=self.cache,
                          binary=self.binary)

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The cached images as float32 [0, 1] (N, C, H, W) and their targets (NumPy)."""
        rows = torch.from_numpy(self.index)
        return self.cache[rows].float().div_(255).numpy(), self.targets.numpy()

    def path(self, i: int) -> Path:
        return self.images.paths[int(self.index[i])]


class _Raw(Dataset):
    def __init__(self, images: ImageList):
        self.images = images

    def __len__(self) -> int:
        return len(self.images.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return decode(self.images.paths[i], self.images.channels, self.images.size)


def decode_all(images: ImageList, num_workers: int = 0) -> torch.Tensor:
    """Every image decoded once into one uint8 (N, C, H, W) tensor, by ``num_workers`` loader
    processes."""
    from torch.utils.data import DataLoader

    n, (h, w), c = len(images.paths), images.size, images.channels
    out = torch.empty((n, c, h, w), dtype=torch.uint8)
    loader = DataLoader(_Raw(images), batch_size=64, num_workers=num_workers)
    start = 0
    for batch in loader:
        out[start:start + len(batch)] = batch
        start += len(batch)
    return out


def fit_stats(images: ImageFiles, seed: int = 0, limit: int = STATS_SAMPLE) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (mean, std) shaped (C, 1, 1), of [0, 1] pixels: over every image when they
    are cached, else over a seeded sample of at most ``limit``."""
    n = len(images)
    if images.cache is not None:
        rows = torch.from_numpy(images.index)
        pixels = images.cache[rows]
    else:
        pick = np.sort(np.random.default_rng(seed).permutation(n)[:limit])
        pixels = torch.stack([images.raw(int(i)) for i in pick])
    c = pixels.shape[1]
    flat = pixels.transpose(0, 1).reshape(c, -1).double() / 255
    mean, std = flat.mean(dim=1), flat.std(dim=1)
    std = torch.where(std > 1e-8, std, torch.ones_like(std))
    return (mean.float().numpy().reshape(c, 1, 1), std.float().numpy().reshape(c, 1, 1))


def images(source: str | os.PathLike, *, image_size: Any = None, channels: int | None = None,
                augment: Any = None, cache: bool = False, skip_bad: bool = False,
                num_workers: int = 0) -> ImageFiles:
    """The Python entry (``nw.images``): a checked folder of class folders as a Dataset of
    ``(float image in [0, 1], class id)``; ``.images.classes`` holds the class names."""
    from .augment import build_augment

    listed = list_images(source, image_size=image_size, channels=channels, skip_bad=skip_bad)
    aug = build_augment(augment, listed.size, "augment", listed.channels) if augment else None
    data = ImageFiles(listed, augment=aug)
    if cache:
        data.cache = decode_all(listed, num_workers)
    return data


def default_workers(cached: bool, augmented: bool) -> int:
    """Loader processes for image files when the config does not say: decoding wants every
    core (up to 4); a cache without augmentation is a tensor gather, fastest in-process."""
    if cached and not augmented:
        return 0
    return max(1, min(4, (os.cpu_count() or 1)))


def prepare_images(cfg: Any, loss_task: str, loss_name: str | None = None) -> Any:
    """A config's image data → :class:`~netwright.data.prepare.Prepared` whose splits are
    :class:`ImageFiles` datasets (stratified by class, seeded) and whose ``x_stats`` are the
    per-channel statistics of the training split (or ``data.mean`` / ``data.std``)."""
    from .augment import build_augment
    from .prepare import Prepared, class_splits

    if loss_task == "regression":
        raise ConfigError(
            f"loss {loss_name or ''!r}: image folders and tables hold class labels, and this is "
            f"a regression loss. Fix: loss: cross_entropy (bce_with_logits for two classes).")
    for name in ("window", "shape", "features"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"data.{name}: not used for images (they are resized to "
                              f"data.image_size). Fix: leave it out.")
    listed = list_images(cfg.source, image=cfg.image, target=cfg.target, image_size=cfg.image_size,
                         channels=cfg.channels, skip_bad=cfg.skip_bad)
    if cfg.target is None and cfg.image is not None:
        raise ConfigError(f"data.target: required with data.image (the column of class labels "
                          f"in {Path(cfg.source).name}).")
    if loss_task == "binary" and len(listed.classes) != 2:
        raise DataError(f"data: a binary loss needs exactly 2 classes; the images have "
                        f"{len(listed.classes)}: {listed.classes[:10]}. Fix: loss: cross_entropy.")
    augment = build_augment(cfg.augment, listed.size, "data.augment", listed.channels)
    labels = listed.labels
    train_idx, val_idx, test_idx = class_splits(labels, cfg)
    whole = ImageFiles(listed, binary=loss_task == "binary")
    if cfg.cache == "memory":
        whole.cache = decode_all(listed, default_workers(False, False))
    train = whole.subset(train_idx, augment=augment)
    x_stats = None
    if cfg.mean is not None or cfg.std is not None:
        if cfg.mean is None or cfg.std is None:
            raise ConfigError("data.mean / data.std: give both, one value per channel.")
        for name, values in (("mean", cfg.mean), ("std", cfg.std)):
            if len(values) != listed.channels:
                raise ConfigError(f"data.{name}: {len(values)} value(s) for {listed.channels}-channel "
                                  f"images. Fix: one per channel, e.g. {[0.5] * listed.channels}.")
        if any(s <= 0 for s in cfg.std):
            raise ConfigError(f"data.std: every value must be > 0; received {cfg.std}.")
        shape = (listed.channels, 1, 1)
        x_stats = (np.asarray(cfg.mean, np.float32).reshape(shape),
                   np.asarray(cfg.std, np.float32).reshape(shape))
    elif cfg.standardize != "none":
        x_stats = fit_stats(whole.subset(train_idx), cfg.seed)
        if cfg.standardize == "global":
            mean, std = float(x_stats[0].mean()), float(np.sqrt((x_stats[1] ** 2).mean()))
            x_stats = (np.full_like(x_stats[0], mean), np.full_like(x_stats[1], std))
    part = lambda idx: whole.subset(idx) if len(idx) else None  # noqa: E731
    if whole.cache is not None and augment is None and whole.cache.numel() * 4 <= FLOAT_ARRAYS_BYTES:
        # Cached and never augmented: the splits become [0, 1] float arrays, batched by the
        # in-memory path (one gather per batch, no loader, no per-batch conversion).
        part = lambda idx: whole.subset(idx).arrays() if len(idx) else None  # noqa: E731
        train = part(train_idx)
    return Prepared(
        train=train, val=part(val_idx), test=part(test_idx),
        task=loss_task if loss_task != "custom" else "multiclass",
        input_shape=(listed.channels, *listed.size), classes=listed.classes, x_stats=x_stats,
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
        notes=list(listed.notes), skipped=list(listed.skipped),
        images={"size": list(listed.size), "channels": listed.channels, "range": [0.0, 1.0]},
        workers=default_workers(cfg.cache == "memory", augment is not None),
    )


def is_image_source(cfg: Any) -> bool:
    """Whether a config's data is images: a folder, or a table with an image column. A
    built-in data set's name wins over a folder of that name (a run directory called 'wine')."""
    from .builtin import BUILTIN

    if cfg.image is not None:
        return True
    if cfg.streaming or cfg.source.strip().lower() in BUILTIN or cfg.text is not None \
            or cfg.audio is not None:
        return False
    from .texts import folder_kind

    return Path(cfg.source).is_dir() and folder_kind(Path(cfg.source)) not in ("text", "audio")


# Built-in data sets that are images: (height, width, largest pixel value).
IMAGE_SETS = {"mnist": (28, 28, 255.0), "digits": (8, 8, 16.0)}


def export_images(name: str, folder: str | os.PathLike) -> dict[str, int]:
    """Write a built-in image data set as grey PNG files in class folders
    (``folder/<label>/<index>.png``); returns the count per class. An existing non-empty
    folder is refused: nothing there is overwritten.

    >>> import tempfile
    >>> counts = export_images("digits", Path(tempfile.mkdtemp()) / "digits")
    >>> len(counts), sum(counts.values())
    (10, 1797)
    """
    from torchvision.io import write_png

    from .builtin import load_builtin

    _quiet_torchvision_io()

    key = str(name).strip().lower()
    if key not in IMAGE_SETS:
        from ..errors import did_you_mean

        raise ConfigError(f"datasets export: {name!r} is not a built-in image data set."
                          f"{did_you_mean(key, IMAGE_SETS)} Image sets: {', '.join(IMAGE_SETS)}.")
    out = Path(folder)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"datasets export: {str(out)!r} already exists and is not an empty folder; "
                        f"nothing was written (files there are never overwritten). Fix: name a "
                        f"new folder.")
    h, w, top = IMAGE_SETS[key]
    X, y = load_builtin(key)
    pixels = np.clip(np.rint(X.reshape(len(X), 1, h, w) * (255.0 / top)), 0, 255).astype(np.uint8)
    counts: dict[str, int] = {}
    tmp = out.with_name(f".{out.name}.partial")
    if tmp.exists():
        import shutil

        shutil.rmtree(tmp)
    for i, (img, label) in enumerate(zip(pixels, y.tolist())):
        sub = tmp / str(label)
        if str(label) not in counts:
            sub.mkdir(parents=True, exist_ok=True)
            counts[str(label)] = 0
        write_png(torch.from_numpy(img), str(sub / f"{i:05d}.png"))
        counts[str(label)] += 1
    if out.exists():
        out.rmdir()  # empty, checked above
    tmp.rename(out)  # all or nothing: a crash leaves only the hidden .partial folder
    return dict(sorted(counts.items(), key=lambda kv: int(kv[0])))
