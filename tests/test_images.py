"""Image files as data: folders and tables of real image files written here, every format and
colour mode, bad files named before training, augmentation by name, the cache, prediction and
export on images, and the whole run on the exported built-in digits."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import netwright as nw
from netwright.config import DataConfig, load_config
from netwright.data.augment import build_augment
from netwright.data.images import (ImageFiles, decode, export_images, fit_stats, list_images,
                                   prepare_images)
from netwright.data.prepare import prepare_data
from netwright.errors import ConfigError, DataError

PIL = pytest.importorskip("PIL", reason="Pillow comes with the vision extra")
from PIL import Image  # noqa: E402


def _pattern(h: int, w: int, seed: int, mode: str) -> Image.Image:
    rng = np.random.default_rng(seed)
    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    arr = rng.integers(0, 256, size=(h, w, channels), dtype=np.uint8)
    return Image.fromarray(arr[:, :, 0] if channels == 1 else arr, mode)


def _folder(root: Path, per_class: int = 6, size: tuple[int, int] = (12, 12)) -> Path:
    """Two classes, every format and colour mode netwright reads."""
    formats = [("png", "L"), ("jpg", "RGB"), ("bmp", "RGB"), ("webp", "RGB"), ("tiff", "RGBA"),
               ("png", "RGBA")]
    for c, name in enumerate(["cat", "dog"]):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            ext, mode = formats[i % len(formats)]
            img = _pattern(*size, seed=100 * c + i, mode=mode)
            if ext == "jpg":
                img.save(root / name / f"{i}.{ext}", quality=95)
            else:
                img.save(root / name / f"{i}.{ext}")
    return root


def test_every_format_and_mode_is_read_and_converted(tmp_path):
    root = _folder(tmp_path / "imgs")
    listed = list_images(root)
    assert listed.classes == ["cat", "dog"]
    assert len(listed.paths) == 12 and listed.labels.tolist() == [0] * 6 + [1] * 6
    assert listed.channels == 3  # mixed: grey, RGB and RGBA -> RGB (stated)
    assert any("mixed channel counts" in n for n in listed.notes)
    suffixes = {p.suffix for p in listed.paths}
    assert suffixes == {".png", ".jpg", ".bmp", ".webp", ".tiff"}
    for p in listed.paths:
        img = decode(p, 3, (12, 12))
        assert img.shape == (3, 12, 12) and img.dtype == torch.uint8
        with Image.open(p) as im:  # the pixels are the file's, converted by the usual rules
            ref = np.asarray(im.convert("RGB"))
        if p.suffix != ".jpg":  # lossless formats: exactly the file's pixels
            assert np.array_equal(img.permute(1, 2, 0).numpy(), ref), p.name
        else:
            assert np.abs(img.permute(1, 2, 0).numpy().astype(int) - ref).mean() < 3


def test_resize_then_centre_crop_and_enlarging_is_stated(tmp_path):
    root = tmp_path / "imgs"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir()
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 255  # a bright band in the middle third
    Image.fromarray(wide).save(root / "a" / "wide.png")
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(root / "b" / "tiny.png")
    listed = list_images(root, image_size=10)
    assert listed.size == (10, 10) and listed.channels == 1
    assert any("smaller than 10x10" in n and "enlarged" in n for n in listed.notes)
    out = decode(root / "a" / "wide.png", 1, (10, 10))  # shorter side 10: the centre 10x10
    assert out.shape == (1, 10, 10) and int(out.min()) == 255
    tiny = decode(root / "b" / "tiny.png", 1, (10, 10))
    assert tiny.shape == (1, 10, 10) and int(tiny.float().mean().round()) == 7
    with pytest.raises(ConfigError, match=r"data.image_size: the images have 2 different sizes"):
        list_images(root)


@pytest.mark.parametrize("damage", ["truncated_png", "truncated_jpeg", "text", "empty"])
def test_a_bad_file_is_named_before_training_or_skipped(tmp_path, damage):
    root = _folder(tmp_path / "imgs", per_class=4)
    bad = root / "dog" / ("bad.jpg" if damage == "truncated_jpeg" else "bad.png")
    if damage == "truncated_png":
        data = (root / "cat" / "0.png").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    elif damage == "truncated_jpeg":
        data = (root / "cat" / "1.jpg").read_bytes()
        bad.write_bytes(data[: len(data) - 40])
    elif damage == "text":
        bad.write_text("this is not an image\n")
    else:
        bad.write_bytes(b"")
    with pytest.raises(DataError) as err:
        list_images(root)
    assert str(bad) in str(err.value) and "skip_bad" in str(err.value)
    listed = list_images(root, skip_bad=True)
    assert [f for f, _ in listed.skipped] == [str(bad)]
    assert len(listed.paths) == 8 and bad not in listed.paths
    assert any("skipped 1 unreadable" in n for n in listed.notes)


def test_folder_layout_errors(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    _pattern(8, 8, 0, "L").save(flat / "x.png")
    with pytest.raises(DataError, match=r"found no sub-folders. It holds 1 image file"):
        list_images(flat)
    one = tmp_path / "one"
    (one / "only").mkdir(parents=True)
    _pattern(8, 8, 0, "L").save(one / "only" / "x.png")
    with pytest.raises(DataError, match=r"only one class folder \('only', 1 images\)"):
        list_images(one)
    empty = _folder(tmp_path / "empty", per_class=2)
    (empty / "bird").mkdir()
    with pytest.raises(DataError, match=r"class folder\(s\) \['bird'\] hold no images"):
        list_images(empty)


def _table(tmp_path: Path, rows: list[tuple[str, str]]) -> Path:
    path = tmp_path / "labels.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label"])
        w.writerows(rows)
    return path


def test_a_table_of_paths_resolves_against_its_folder_and_names_bad_rows(tmp_path):
    (tmp_path / "pics").mkdir()
    rows = []
    for i in range(6):
        _pattern(8, 8, i, "L").save(tmp_path / "pics" / f"{i}.png")
        rows.append((f"pics/{i}.png", "even" if i % 2 == 0 else "odd"))
    table = _table(tmp_path, rows)
    listed = list_images(table, image="file", target="label")
    assert listed.classes == ["even", "odd"] and listed.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert listed.paths[0] == tmp_path / "pics" / "0.png"
    missing = _table(tmp_path, rows[:3] + [("pics/nope.png", "odd")])
    with pytest.raises(DataError, match=r"row 5: image 'pics/nope.png' does not exist"):
        list_images(missing, image="file", target="label")
    unlabelled = _table(tmp_path, rows[:2] + [("pics/2.png", "")])
    with pytest.raises(DataError, match=r"row 4: image 'pics/2.png' has no label"):
        list_images(unlabelled, image="file", target="label")
    with pytest.raises(DataError, match=r"data.image: column 'path' is not in"):
        list_images(table, image="path", target="label")


def test_augment_names_are_checked_when_the_config_is_read(tmp_path):
    base = {"model": [{"linear": 2}], "data": {"source": str(_folder(tmp_path / "i", 2))},
            "loss": "cross_entropy"}
    with pytest.raises(ConfigError, match=r"unknown transform 'horizontl_flip'. Did you mean 'horizontal_flip'"):
        load_config({**base, "data": {**base["data"], "augment": ["horizontl_flip"]}})
    with pytest.raises(ConfigError, match=r"ColorJitter\(\{'bright': 0.2\}\) cannot be made"):
        load_config({**base, "data": {**base["data"], "augment": [{"color_jitter": {"bright": 0.2}}]}})
    with pytest.raises(ConfigError, match=r"Grayscale turns a \(3, 12, 12\) image into \(1, 12, 12\)"):
        build_augment(["grayscale"], (12, 12), channels=3)
    with pytest.raises(ConfigError, match=r"RandomResizedCrop to \[28, 28\] would change"):
        build_augment([{"random_resized_crop": {"size": 28}}], (12, 12))
    chain = build_augment(["horizontal_flip", {"random_resized_crop": {"size": 12, "scale": [0.8, 1]}},
                           {"color_jitter": {"brightness": 0.2}}], (12, 12), channels=3)
    assert [type(t).__name__ for t in chain.transforms] == ["RandomHorizontalFlip",
                                                             "RandomResizedCrop", "ColorJitter"]


def test_augmentation_reaches_training_images_only_and_stats_come_from_training(tmp_path):
    root = _folder(tmp_path / "imgs", per_class=10)
    cfg = DataConfig(source=str(root), image_size=12, augment=[{"vertical_flip": {"p": 1.0}}],
                     val=0.2, test=0.2)
    data = prepare_images(cfg, "multiclass")
    assert isinstance(data.train, ImageFiles) and data.train.augment is not None
    assert data.val.augment is None and data.test.augment is None
    x, _ = data.train[0]
    raw = data.train.raw(0).float() / 255
    assert torch.equal(x, raw.flip(-2))  # the flip was applied, to the [0, 1] image
    xv, _ = data.val[0]
    assert torch.equal(xv, data.val.raw(0).float() / 255)
    # statistics: the training split's, not the whole folder's
    train_pixels = torch.stack([data.train.raw(i) for i in range(len(data.train))]).double() / 255
    mean = train_pixels.transpose(0, 1).reshape(3, -1).mean(1)
    assert np.allclose(data.x_stats[0].reshape(-1), mean.numpy(), atol=1e-6)
    split = set(map(int, data.train.index)) | set(map(int, data.val.index)) | set(map(int, data.test.index))
    assert len(split) == 20 and data.sizes == {"train": 12, "val": 4, "test": 4}
    assert sorted(data.train.targets.tolist()).count(0) == 6  # stratified: 6 of each class


def test_the_memory_cache_gives_the_same_images(tmp_path):
    root = _folder(tmp_path / "imgs", per_class=5)
    files = prepare_images(DataConfig(source=str(root), image_size=12), "multiclass")
    cached = prepare_images(DataConfig(source=str(root), image_size=12, cache="memory"), "multiclass")
    augmented = prepare_images(DataConfig(source=str(root), image_size=12, cache="memory",
                                          augment=["horizontal_flip"]), "multiclass")
    # cached and not augmented: [0, 1] float arrays for the in-memory batches, no loader
    X, y = cached.train
    assert isinstance(X, np.ndarray) and X.dtype == np.float32 and X.shape == (6, 3, 12, 12)
    assert files.train.cache is None and cached.workers == 0 and files.workers >= 1
    for i in range(len(files.train)):
        a, ya = files.train[i]
        assert np.array_equal(a.numpy(), X[i]) and int(ya) == int(y[i])
    # cached and augmented: the uint8 cache, read by the loader's workers
    aug = augmented.train
    assert isinstance(aug, ImageFiles) and aug.cache.dtype == torch.uint8 and augmented.workers >= 1
    assert all(torch.equal(aug.raw(i), files.train.raw(i)) for i in range(len(aug)))
    val = augmented.val
    batch = val.__getitems__([1, 0])
    assert torch.equal(batch[0][0], val[1][0]) and torch.equal(batch[1][0], val[0][0])
    assert np.allclose(files.x_stats[0], cached.x_stats[0], atol=1e-6)  # all 6 train images either way
    assert np.allclose(fit_stats(aug)[1], cached.x_stats[1], atol=1e-6)


def test_given_mean_and_std_and_their_errors(tmp_path):
    root = _folder(tmp_path / "imgs", per_class=3)
    data = prepare_images(DataConfig(source=str(root), image_size=12, mean=[0.5] * 3,
                                     std=[0.25] * 3, val=0, test=0), "multiclass")
    assert data.x_stats[0].shape == (3, 1, 1) and float(data.x_stats[1][2, 0, 0]) == 0.25
    with pytest.raises(ConfigError, match=r"data.mean: 1 value\(s\) for 3-channel images"):
        prepare_images(DataConfig(source=str(root), image_size=12, mean=[0.5], std=[0.2],
                                  val=0, test=0), "multiclass")
    with pytest.raises(ConfigError, match=r"regression loss"):
        prepare_images(DataConfig(source=str(root), image_size=12), "regression", "mse")


def test_binary_loss_gets_float_targets(tmp_path):
    root = _folder(tmp_path / "imgs", per_class=4)
    data = prepare_images(DataConfig(source=str(root), image_size=12, val=0, test=0), "binary")
    x, y = data.train[0]
    assert y.dtype == torch.float32 and y.shape == (1,)


def test_export_refuses_a_folder_that_holds_files(tmp_path):
    target = tmp_path / "digits"
    target.mkdir()
    (target / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="nothing was written"):
        export_images("digits", target)
    assert (target / "mine.txt").read_text() == "keep me"
    with pytest.raises(ConfigError, match=r"Did you mean 'digits'"):
        export_images("digitz", tmp_path / "x")


@pytest.fixture(scope="module")
def digits_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits") / "digits"
    counts = export_images("digits", root)
    assert sum(counts.values()) == 1797 and len(counts) == 10
    return root


def test_exported_digits_are_the_builtin_pixels(digits_folder):
    X, y = nw.load_builtin("digits")
    first = sorted((digits_folder / str(int(y[0]))).iterdir())[0]
    assert first.name == "00000.png"
    img = decode(first, 1, (8, 8))[0].numpy().astype(np.float32)
    assert np.allclose(img, np.rint(X[0].reshape(8, 8) * 255 / 16), atol=0)


@pytest.mark.slow
def test_a_run_on_an_image_folder_predicts_files_and_exports_images(digits_folder, tmp_path):
    result = nw.run({
        "name": "digits_png", "run_dir": str(tmp_path / "runs"),
        "model": {"zoo": "cnn", "channels": [16, 32], "hidden": 64},
        "data": {"source": str(digits_folder), "cache": "memory", "test": 0.2, "val": 0.1},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 6, "batch_size": 64}, "metrics": ["accuracy"],
        "export": {"formats": ["onnx"]},
    }, verbose=0)
    assert result.scores["test"]["accuracy"] > 0.9
    meta = json.loads((result.run_dir / "model.json").read_text())
    assert meta["images"] == {"size": [8, 8], "channels": 1, "range": [0.0, 1.0]}
    assert meta["classes"] == [str(i) for i in range(10)]
    files = [sorted((digits_folder / d).iterdir())[0] for d in ("3", "7")]
    rows = nw.predict(result.run_dir, [str(f) for f in files])
    assert [r["path"] for r in rows] == [str(f) for f in files]
    assert list(rows[0])[:3] == ["path", "label", "p_0"] and len(rows[0]) == 12
    assert abs(sum(v for k, v in rows[0].items() if k.startswith("p_")) - 1) < 1e-4
    # the ONNX graph takes [0, 1] images and normalises inside: same probabilities
    ort = pytest.importorskip("onnxruntime", reason="onnxruntime comes with the export extra")
    session = ort.InferenceSession(str(result.run_dir / "exports" / "model.onnx"))
    x = torch.stack([decode(f, 1, (8, 8)) for f in files]).float().numpy() / 255
    logits = session.run(None, {session.get_inputs()[0].name: x})[0]
    probs = np.exp(logits - logits.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    assert np.allclose(probs[1], [rows[1][f"p_{i}"] for i in range(10)], atol=1e-4)
    assert rows[1]["label"] == str(int(probs[1].argmax()))


def test_prepare_data_dispatches_folders_and_refuses_image_keys_elsewhere(tmp_path):
    root = _folder(tmp_path / "imgs", per_class=3)
    data = prepare_data(DataConfig(source=str(root), image_size=12, val=0, test=0), "multiclass")
    assert data.input_shape == (3, 12, 12) and data.classes == ["cat", "dog"]
    with pytest.raises(ConfigError, match=r"data.augment: only for images"):
        prepare_data(DataConfig(source="iris", augment=["horizontal_flip"]), "multiclass")


def test_fit_on_nw_images_holds_out_unaugmented_images(tmp_path):
    from netwright.data.sources import DatasetSource
    from netwright.data.splits import split_fraction

    root = _folder(tmp_path / "imgs", per_class=10)
    data = nw.images(root, image_size=12, augment=[{"vertical_flip": {"p": 1.0}}])
    assert data.images.classes == ["cat", "dog"]
    train, val = split_fraction(DatasetSource(data), 0.2, seed=0, stratify=True)
    assert train.dataset.augment is not None and val.dataset.augment is None
    assert sorted(val.dataset.targets.tolist()) == [0, 0, 1, 1]  # stratified
    assert not set(train.dataset.index) & set(val.dataset.index)
    model = nw.build([{"flatten": None}, {"linear": 2}], (3, 12, 12))
    result = nw.fit(model, data, val=0.2, loss="cross_entropy", epochs=2, verbose=0,
                    metrics=["accuracy"])
    assert len(result.history) == 2 and "val_accuracy" in result.history[-1]


def test_a_builtin_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    _folder(tmp_path / "iris", per_class=2)  # e.g. a run directory named like the data set
    monkeypatch.chdir(tmp_path)
    data = prepare_data(DataConfig(source="iris"), "multiclass")
    assert data.input_shape == (4,) and data.images is None


def test_sixteen_bit_png_becomes_eight_bit_and_class_order_is_the_folders(tmp_path):
    root = tmp_path / "imgs"
    for name in ("10", "9"):  # sorted as text, as torchvision's ImageFolder sorts them
        (root / name).mkdir(parents=True)
    deep = (np.arange(16 * 16).reshape(16, 16) * 256).astype(np.uint16)
    Image.fromarray(deep).save(root / "10" / "a.png")
    Image.fromarray((deep >> 8).astype(np.uint8)).save(root / "9" / "b.png")
    listed = list_images(root)
    assert listed.classes == ["10", "9"] and listed.labels.tolist() == [0, 1]
    a = decode(root / "10" / "a.png", 1, (16, 16))
    b = decode(root / "9" / "b.png", 1, (16, 16))
    assert a.dtype == torch.uint8 and torch.equal(a, b)
