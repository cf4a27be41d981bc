"""Resume bundles (netwright.resume) checked directly, without training: what the module
docstring promises about the four files, the manifest's checksums, the two generations of
``checkpoints/``, links, and the messages that name the file or field. Written for the
mutation-testing measurement (issue 21, docs/testing.md); every test asserts documented
behaviour, not how it is implemented."""

from __future__ import annotations

import hashlib
import json
import os
import random
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from netwright.errors import CheckpointError, ConfigError
from netwright.resume import (BUNDLE_FORMAT, Bundle, check_config, config_changes, flatten,
                              latest_bundle, load_bundle, refuse_links, remove_bundles,
                              rng_state, rotate_into, save_bundle, set_rng_state, unflatten)

DATA_FILES = ("weights.safetensors", "state.safetensors", "state.json")


def _state(epoch=1, batch=0, **extra):
    """A state with every key a bundle must hold (what fit writes, in small)."""
    state = {"epoch": epoch, "batch": batch, "history": [{"epoch": 1, "train_loss": 0.5}],
             "optimizer": {"state": {0: {"step": torch.tensor(3.0),
                                         "exp_avg": torch.arange(4.0)}},
                           "param_groups": [{"lr": 0.01, "betas": (0.9, 0.999), "params": [0]}]},
             "schedule": {"last_epoch": epoch}, "rng": {"seed": 3}, "epoch_rng": None}
    state.update(extra)
    return state


def _weights(value=1.0):
    return {"w": torch.full((2, 3), value), "b": torch.zeros(3)}


def _save(folder: Path, epoch=1, batch=0, value=1.0, **extra) -> Path:
    save_bundle(folder, _weights(value), _state(epoch, batch, **extra))
    return folder


def _digest(manifest: dict) -> str:
    """The manifest's own checksum as the module docstring defines it: SHA-256 of the canonical
    JSON of ``format`` and ``files`` (key-sorted, no spaces)."""
    body = {"format": manifest.get("format"), "files": manifest.get("files")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _rewrite_manifest(folder: Path, change) -> None:
    manifest = json.loads((folder / "manifest.json").read_text())
    change(manifest)
    manifest["sha256"] = _digest(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest))


def _replace_state_json(folder: Path, meta) -> None:
    """Write another state.json and a manifest that matches it (a crafted but consistent
    bundle): only the checks after the checksums can refuse it."""
    raw = (meta if isinstance(meta, str) else json.dumps(meta)).encode()
    (folder / "state.json").write_bytes(raw)

    def change(manifest):
        manifest["files"]["state.json"] = {"sha256": hashlib.sha256(raw).hexdigest(),
                                           "bytes": len(raw)}
    _rewrite_manifest(folder, change)


# --- flatten / unflatten: a state_dict through JSON and safetensors ---------------------------


def test_flatten_round_trips_every_kind_of_value_a_state_dict_holds():
    state = {"a": torch.tensor([1.0, 2.0]), "nested": {"b": torch.ones(2, 2), "c": [torch.zeros(1)]},
             "ints": {0: "zero", 7: torch.tensor(7)}, "tuple": (1, (2.5, "x")), "none": None,
             "tensor_tuple": (torch.tensor([5.0]), [torch.tensor([6.0])]),
             "flag": True, "text": "s", "np_int": np.int64(4), "np_float": np.float32(0.5),
             "array": np.arange(6, dtype=np.int16).reshape(2, 3)}
    tensors: dict = {}
    body = flatten(state, tensors)
    assert len(tensors) == 6 and len(set(tensors)) == 6  # every tensor kept, under its own key
    text = json.loads(json.dumps(body))  # what state.json holds is plain JSON
    back = unflatten(text, tensors)
    assert torch.equal(back["a"], state["a"]) and torch.equal(back["nested"]["b"], torch.ones(2, 2))
    assert torch.equal(back["nested"]["c"][0], torch.zeros(1))
    assert back["ints"][0] == "zero" and torch.equal(back["ints"][7], torch.tensor(7))
    assert set(back["ints"]) == {0, 7}  # int keys come back as ints (optimizer state)
    assert back["tuple"] == (1, (2.5, "x")) and isinstance(back["tuple"][1], tuple)
    first, rest = back["tensor_tuple"]
    assert torch.equal(first, torch.tensor([5.0])) and torch.equal(rest[0], torch.tensor([6.0]))
    assert back["none"] is None and back["flag"] is True and back["text"] == "s"
    assert back["np_int"] == 4 and type(back["np_int"]) is int
    assert back["np_float"] == 0.5 and type(back["np_float"]) is float
    assert back["array"].dtype == np.int16 and back["array"].tolist() == [[0, 1, 2], [3, 4, 5]]


def test_flatten_keeps_string_keys_as_strings_and_mixed_keys_apart():
    tensors: dict = {}
    back = unflatten(json.loads(json.dumps(flatten({"1": "s", 2: "i"}, tensors))), tensors)
    assert back == {"1": "s", 2: "i"}
    plain = flatten({"x": 1}, {})
    assert plain == {"x": 1}  # no int keys: a plain JSON object


def test_flatten_stores_tensors_detached():
    w = torch.ones(2, requires_grad=True)
    tensors: dict = {}
    flatten({"w": w * 2}, tensors)
    (t,) = tensors.values()
    assert not t.requires_grad and torch.equal(t, torch.full((2,), 2.0))


def test_flatten_names_a_value_it_cannot_store():
    class Thing:
        def __repr__(self):
            return "Thing()"

    with pytest.raises(CheckpointError) as err:
        flatten({"cb": [Thing()]}, {})
    message = str(err.value)
    assert "cannot store a value of type Thing (Thing())" in message
    assert "state_dict() must return numbers, strings, lists, dicts and tensors only" in message


# --- RNG states -------------------------------------------------------------------------------


def _draws(generator=None):
    return (random.random(), float(np.random.rand()), torch.rand(3).tolist(),
            torch.rand(2, generator=generator).tolist() if generator is not None else None)


def test_rng_state_restores_python_numpy_torch_and_the_data_order():
    gen = torch.Generator().manual_seed(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    torch.rand(1, generator=gen)
    saved = rng_state(gen)
    assert {"python", "numpy", "torch", "cuda", "data"} <= set(saved)
    expected = _draws(gen)
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    gen.manual_seed(9)
    set_rng_state(saved, gen)
    assert _draws(gen) == expected


def test_rng_state_survives_a_bundle_on_disk(tmp_path):
    gen = torch.Generator().manual_seed(11)
    random.seed(4), np.random.seed(4), torch.manual_seed(4)
    save_bundle(tmp_path / "b", _weights(), _state(rng=rng_state(gen)))
    expected = _draws(gen)
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    gen.manual_seed(0)
    set_rng_state(load_bundle(tmp_path / "b").state["rng"], gen)
    assert _draws(gen) == expected


def test_rng_state_without_a_generator_leaves_the_data_order_alone():
    saved = rng_state()
    assert "data" not in saved
    gen = torch.Generator().manual_seed(1)
    before = gen.get_state()
    other = torch.Generator().manual_seed(2)
    with_data = dict(saved, data=other.get_state())
    set_rng_state(saved, gen)  # no "data": the generator is untouched
    assert torch.equal(gen.get_state(), before)
    set_rng_state(with_data)  # no generator given: nothing to set
    assert torch.equal(gen.get_state(), before)


# --- the files of a bundle and the manifest -----------------------------------------------------


def test_a_bundle_is_four_files_and_the_manifest_holds_their_sizes_and_checksums(tmp_path):
    folder = _save(tmp_path / "b")
    assert sorted(p.name for p in folder.iterdir()) == sorted((*DATA_FILES, "manifest.json"))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format"] == BUNDLE_FORMAT == "netwright.bundle/2"
    assert set(manifest["files"]) == set(DATA_FILES)
    for name in DATA_FILES:
        raw = (folder / name).read_bytes()
        assert manifest["files"][name] == {"sha256": hashlib.sha256(raw).hexdigest(),
                                           "bytes": len(raw)}
    assert manifest["sha256"] == _digest(manifest)
    meta = json.loads((folder / "state.json").read_text())
    assert meta["format"] == BUNDLE_FORMAT and meta["state"]["epoch"] == 1


def test_a_bundle_reads_back_what_was_saved(tmp_path):
    state = _state(3, 4, best=0.25, callbacks={"EarlyStopping#0": {"wait": 2}})
    save_bundle(tmp_path / "b", _weights(2.0), state)
    bundle = load_bundle(tmp_path / "b")
    assert isinstance(bundle, Bundle) and bundle.folder == tmp_path / "b"
    assert bundle.position == (3, 4)
    assert set(bundle.model_state) == {"w", "b"} and torch.equal(bundle.model_state["w"],
                                                                 torch.full((2, 3), 2.0))
    opt = bundle.state["optimizer"]
    assert torch.equal(opt["state"][0]["exp_avg"], torch.arange(4.0))
    assert opt["param_groups"][0]["betas"] == (0.9, 0.999)
    assert bundle.state["best"] == 0.25 and bundle.state["callbacks"] == {"EarlyStopping#0": {"wait": 2}}


def test_save_bundle_replaces_a_leftover_bundle_folder(tmp_path):
    folder = _save(tmp_path / "b", value=1.0)
    (folder / ".weights.safetensors.1.tmp").write_bytes(b"half")  # a crash's temporary file
    _save(folder, epoch=2, value=3.0)
    bundle = load_bundle(folder)
    assert bundle.position == (2, 0) and torch.equal(bundle.model_state["w"], torch.full((2, 3), 3.0))
    assert not list(folder.glob(".*.tmp"))


def test_save_bundle_creates_missing_parent_folders(tmp_path):
    folder = _save(tmp_path / "run" / "checkpoints" / "last")
    assert load_bundle(folder).position == (1, 0)


# --- what load_bundle refuses, naming the file ------------------------------------------------


def test_a_missing_manifest_makes_the_bundle_incomplete(tmp_path):
    folder = _save(tmp_path / "b")
    (folder / "manifest.json").unlink()
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (f"resume bundle {str(folder)!r} is incomplete: manifest.json is "
                              f"missing (the write was interrupted before it finished).")


def test_a_manifest_that_is_a_folder_or_a_link_is_not_used(tmp_path):
    folder = _save(tmp_path / "b")
    real = tmp_path / "elsewhere.json"
    (folder / "manifest.json").rename(real)
    (folder / "manifest.json").symlink_to(real)
    with pytest.raises(CheckpointError, match="incomplete: manifest.json is missing"):
        load_bundle(folder)
    (folder / "manifest.json").unlink()
    (folder / "manifest.json").mkdir()
    with pytest.raises(CheckpointError, match="incomplete: manifest.json is missing"):
        load_bundle(folder)


def test_an_older_format_without_manifest_is_refused_naming_both_formats(tmp_path):
    folder = _save(tmp_path / "b")
    (folder / "manifest.json").unlink()
    (folder / "state.json").write_text(json.dumps({"format": "netwright.bundle/1", "state": {}}))
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    message = str(err.value)
    assert f"resume bundle {str(folder)!r} has the older format 'netwright.bundle/1'" in message
    assert f"(expected {BUNDLE_FORMAT!r}, whose manifest.json holds checksums" in message
    assert "train again without resume (--resume) into a new run directory" in message


@pytest.mark.parametrize("meta", ['{"format": 1, "state": {}}', '{"state": {}}', "[1, 2]", "{",
                                  '{"format": "netwright.bundle/2"}'])
def test_without_a_manifest_anything_but_an_older_format_is_just_incomplete(tmp_path, meta):
    """Only a state.json that names another format is reported as one; a current-format,
    unreadable or formatless one is a bundle whose manifest was never written."""
    folder = _save(tmp_path / "b")
    (folder / "manifest.json").unlink()
    (folder / "state.json").write_text(meta)
    with pytest.raises(CheckpointError, match="is incomplete: manifest.json is missing"):
        load_bundle(folder)


def test_an_older_state_json_that_is_a_link_or_huge_is_not_read(tmp_path):
    folder = _save(tmp_path / "b")
    (folder / "manifest.json").unlink()
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"format": "netwright.bundle/1"}))
    (folder / "state.json").unlink()
    (folder / "state.json").symlink_to(old)
    with pytest.raises(CheckpointError, match="is incomplete: manifest.json is missing"):
        load_bundle(folder)
    (folder / "state.json").unlink()
    head = json.dumps({"format": "netwright.bundle/1", "pad": ""})
    pad = (1 << 20) - len(head)  # exactly 1 MiB: too large to be read
    (folder / "state.json").write_text(json.dumps({"format": "netwright.bundle/1", "pad": "x" * pad}))
    assert (folder / "state.json").stat().st_size == 1 << 20
    with pytest.raises(CheckpointError, match="is incomplete: manifest.json is missing"):
        load_bundle(folder)


def test_an_older_state_json_just_under_the_limit_is_read(tmp_path):
    folder = _save(tmp_path / "b")
    (folder / "manifest.json").unlink()
    head = json.dumps({"format": "netwright.bundle/1", "pad": ""})
    pad = (1 << 20) - 1 - len(head)
    (folder / "state.json").write_text(json.dumps({"format": "netwright.bundle/1", "pad": "x" * pad}))
    assert (folder / "state.json").stat().st_size == (1 << 20) - 1
    with pytest.raises(CheckpointError, match="older format 'netwright.bundle/1'"):
        load_bundle(folder)


def test_a_manifest_larger_than_a_manifest_can_be_is_corrupt(tmp_path):
    folder = _save(tmp_path / "b")
    path = folder / "manifest.json"
    path.write_bytes(b" " * ((1 << 20) + 1))
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (f"resume bundle file {str(path)!r} is corrupt: 1,048,577 bytes, far "
                              f"more than a manifest holds.")


def test_a_manifest_of_exactly_the_limit_is_parsed(tmp_path):
    folder = _save(tmp_path / "b")
    path = folder / "manifest.json"
    text = path.read_text()
    path.write_text(text + " " * ((1 << 20) - len(text.encode())))
    assert path.stat().st_size == 1 << 20
    assert load_bundle(folder).position == (1, 0)  # trailing spaces: still the same JSON


@pytest.mark.parametrize("raw, words", [(b"{not json", "it is not valid JSON (JSONDecodeError"),
                                        (b"\xff\xfe", "it is not valid JSON (UnicodeDecodeError"),
                                        (b"[" * 100_000, "nested too deeply")])
def test_an_unreadable_manifest_is_corrupt_naming_it(tmp_path, raw, words):
    folder = _save(tmp_path / "b")
    path = folder / "manifest.json"
    path.write_bytes(raw)
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert f"resume bundle file {str(path)!r} is corrupt" in str(err.value)
    assert words in str(err.value)


@pytest.mark.parametrize("change", [
    lambda m: m.pop("files"),
    lambda m: m.update(files=[1, 2, 3]),
    lambda m: m["files"].pop("state.json"),
    lambda m: m["files"].update(extra={"sha256": "0", "bytes": 1}),
    lambda m: m["files"].update({"state.json": "abc"}),
    lambda m: m["files"]["weights.safetensors"].pop("sha256"),
    lambda m: m["files"]["weights.safetensors"].update(sha256=5),
    lambda m: m["files"]["state.safetensors"].update(bytes="12"),
    lambda m: m["files"]["state.safetensors"].update(bytes=12.0),
    lambda m: m["files"]["state.safetensors"].update(bytes=True),
    lambda m: m["files"]["state.safetensors"].pop("bytes"),
], ids=["no-files", "files-list", "one-missing", "one-more", "entry-string", "no-sha",
        "sha-number", "bytes-string", "bytes-float", "bytes-bool", "no-bytes"])
def test_a_manifest_without_a_checksum_and_size_for_each_file_is_corrupt(tmp_path, change):
    folder = _save(tmp_path / "b")
    _rewrite_manifest(folder, change)
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (
        f"resume bundle file {str(folder / 'manifest.json')!r} is corrupt: expected a checksum "
        f"and size for each of weights.safetensors, state.safetensors, state.json.")


def test_a_manifest_that_is_not_an_object_is_corrupt(tmp_path):
    folder = _save(tmp_path / "b")
    (folder / "manifest.json").write_text("[1, 2, 3]")
    with pytest.raises(CheckpointError, match="expected a checksum and size for each of"):
        load_bundle(folder)


def test_a_manifest_of_another_format_is_refused_naming_both(tmp_path):
    folder = _save(tmp_path / "b")
    _rewrite_manifest(folder, lambda m: m.update(format="netwright.bundle/3"))
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (
        f"resume bundle {str(folder)!r} has format 'netwright.bundle/3'; this netwright reads "
        f"{BUNDLE_FORMAT!r}. Fix: resume it with the netwright version that wrote it, or train "
        f"again without resume (--resume).")


def test_a_manifest_with_a_long_format_is_refused_quoting_80_characters(tmp_path):
    folder = _save(tmp_path / "b")
    _rewrite_manifest(folder, lambda m: m.update(format="f" * 100))
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert f"has format {'f' * 80!r}; this netwright reads" in str(err.value)


def test_a_crafted_manifest_with_non_ascii_text_is_corrupt_not_a_crash(tmp_path):
    folder = _save(tmp_path / "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["state.json"]["sha256"] = "\u00e9t\u00e9"
    manifest["files"]["weights.safetensors"]["note"] = "\u2603"
    (folder / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(CheckpointError, match="its contents do not match its own checksum"):
        load_bundle(folder)


def test_a_manifest_whose_own_checksum_does_not_match_is_corrupt(tmp_path):
    folder = _save(tmp_path / "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["state.json"]["bytes"] += 1  # changed, own checksum not updated
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (f"resume bundle file {str(folder / 'manifest.json')!r} is corrupt: "
                              f"its contents do not match its own checksum.")


def test_the_manifest_checksum_covers_format_and_files_only(tmp_path):
    """The checksum is over format and files (the docstring's canonical JSON): other keys may be
    added without breaking it, and the way the file is laid out does not matter."""
    folder = _save(tmp_path / "b")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["note"] = "added by a tool"
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=None))
    assert load_bundle(folder).position == (1, 0)


@pytest.mark.parametrize("name", DATA_FILES)
def test_a_missing_data_file_makes_the_bundle_incomplete(tmp_path, name):
    folder = _save(tmp_path / "b")
    (folder / name).unlink()
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == f"resume bundle {str(folder)!r} is incomplete: {name} is missing."


@pytest.mark.parametrize("name", DATA_FILES)
def test_a_data_file_replaced_by_a_link_to_the_same_bytes_is_refused(tmp_path, name):
    folder = _save(tmp_path / "b")
    copy = tmp_path / name
    copy.write_bytes((folder / name).read_bytes())
    (folder / name).unlink()
    (folder / name).symlink_to(copy)
    with pytest.raises(CheckpointError, match=f"incomplete: {name} is missing"):
        load_bundle(folder)


@pytest.mark.parametrize("name", DATA_FILES)
def test_a_changed_data_file_is_named_with_both_sizes_and_checksums(tmp_path, name):
    folder = _save(tmp_path / "b")
    path = folder / name
    raw = path.read_bytes()
    recorded = hashlib.sha256(raw).hexdigest()
    changed = raw + b" "  # one byte more
    path.write_bytes(changed)
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (
        f"resume bundle file {str(path)!r} is corrupt or incomplete: it does not match the "
        f"checksum recorded in manifest.json when the bundle was written ({len(changed):,} bytes, "
        f"recorded {len(raw):,}; sha256 {hashlib.sha256(changed).hexdigest()[:12]}..., recorded "
        f"{recorded[:12]}...). It was changed or damaged after it was written.")


@pytest.mark.parametrize("name", DATA_FILES)
def test_a_data_file_changed_in_place_with_the_same_size_is_detected(tmp_path, name):
    folder = _save(tmp_path / "b")
    path = folder / name
    raw = bytearray(path.read_bytes())
    raw[-2] ^= 0x01
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert f"resume bundle file {str(path)!r} is corrupt or incomplete" in str(err.value)
    assert f"({len(raw):,} bytes, recorded {len(raw):,};" in str(err.value)


def test_a_large_data_file_is_checked_over_all_its_bytes(tmp_path):
    """Files larger than one read block (4 MiB) are hashed to the end: a change in the last
    byte is found."""
    folder = tmp_path / "b"
    save_bundle(folder, {"w": torch.zeros(9 << 20, dtype=torch.uint8)}, _state())
    assert load_bundle(folder).model_state["w"].numel() == 9 << 20
    path = folder / "weights.safetensors"
    size = path.stat().st_size
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["files"]["weights.safetensors"] == {
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "bytes": size}
    with path.open("r+b") as fh:
        fh.seek(size - 1)
        last = fh.read(1)
        fh.seek(size - 1)
        fh.write(bytes([last[0] ^ 1]))
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert f"({size:,} bytes, recorded {size:,};" in str(err.value)


def test_a_bundle_folder_that_is_a_link_is_refused_naming_its_target(tmp_path):
    real = _save(tmp_path / "real")
    link = tmp_path / "last"
    link.symlink_to(real)
    with pytest.raises(CheckpointError) as err:
        load_bundle(link)
    message = str(err.value)
    assert message.startswith(f"{str(link)!r} is a symbolic link (to {str(real)!r}); netwright "
                              f"does not follow links")
    assert f"Fix: remove the link (rm {str(link)!r}; the files it points to are kept)" in message


@pytest.mark.parametrize("meta", [{"format": "netwright.bundle/1", "state": {}},
                                  {"format": BUNDLE_FORMAT}, [1], '"text"'])
def test_a_consistent_state_json_without_the_format_and_a_state_is_corrupt(tmp_path, meta):
    folder = _save(tmp_path / "b")
    _replace_state_json(folder, meta)
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (f"resume bundle file {str(folder / 'state.json')!r} is corrupt: "
                              f"expected format {BUNDLE_FORMAT!r} and a state.")


def test_a_consistent_state_json_that_is_not_json_is_corrupt(tmp_path):
    folder = _save(tmp_path / "b")
    _replace_state_json(folder, "{oops")
    with pytest.raises(CheckpointError, match=r"state\.json' is corrupt: it is not valid JSON"):
        load_bundle(folder)


def test_an_empty_state_json_matching_its_manifest_is_corrupt(tmp_path):
    folder = _save(tmp_path / "b")
    _replace_state_json(folder, "")
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (f"resume bundle file {str(folder / 'state.json')!r} is corrupt: it is "
                              f"not valid JSON (JSONDecodeError: Expecting value: line 1 column 1 "
                              f"(char 0)).")


def test_a_state_lacking_keys_is_corrupt_naming_them(tmp_path):
    folder = _save(tmp_path / "b")
    meta = json.loads((folder / "state.json").read_text())
    for key in ("history", "rng"):
        del meta["state"][key]
    _replace_state_json(folder, meta)
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (f"resume bundle file {str(folder / 'state.json')!r} is corrupt: its "
                              f"state lacks history, rng.")


def test_a_state_that_is_not_a_mapping_is_corrupt(tmp_path):
    folder = _save(tmp_path / "b")
    _replace_state_json(folder, {"format": BUNDLE_FORMAT, "state": [1, 2]})
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value).endswith("is corrupt: its state lacks everything.")


def test_a_state_naming_a_tensor_the_tensor_file_lacks_is_inconsistent(tmp_path):
    folder = _save(tmp_path / "b")
    meta = json.loads((folder / "state.json").read_text())
    meta["state"]["extra"] = {"__tensor__": "t.99"}
    _replace_state_json(folder, meta)
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (f"resume bundle {str(folder)!r} is inconsistent: tensor 't.99' is "
                              f"missing from state.safetensors.")


@pytest.mark.parametrize("value, kind", [({"__ndarray__": [1], "dtype": "no-such-dtype"}, "TypeError"),
                                         ({"__dict__": {"0": 1}, "__int_keys__": 5}, "TypeError"),
                                         ({"__tuple__": 3}, "TypeError"),
                                         ({"__ndarray__": ["a"], "dtype": "int64"}, "ValueError"),
                                         ({"__dict__": [1], "__int_keys__": []}, "AttributeError")])
def test_a_state_that_cannot_be_read_back_is_corrupt_naming_the_error(tmp_path, value, kind):
    folder = _save(tmp_path / "b")
    meta = json.loads((folder / "state.json").read_text())
    meta["state"]["extra"] = value
    _replace_state_json(folder, meta)
    with pytest.raises(CheckpointError) as err:
        load_bundle(folder)
    assert str(err.value) == (f"resume bundle file {str(folder / 'state.json')!r} is corrupt: its "
                              f"state cannot be read back ({kind}).")


# --- checkpoints/: two generations, links, leftovers ------------------------------------------


def test_rotate_into_keeps_the_previous_bundle_as_prev(tmp_path):
    ckpt = tmp_path / "checkpoints"
    assert rotate_into(ckpt, "last", _weights(1.0), _state(1)) == ckpt / "last"
    assert sorted(p.name for p in ckpt.iterdir()) == ["last"]
    rotate_into(ckpt, "last", _weights(2.0), _state(2))
    rotate_into(ckpt, "last", _weights(3.0), _state(3))
    assert sorted(p.name for p in ckpt.iterdir()) == ["last", "prev"]
    assert load_bundle(ckpt / "last").position == (3, 0)
    assert load_bundle(ckpt / "prev").position == (2, 0)


def test_rotate_into_best_keeps_best_prev(tmp_path):
    ckpt = tmp_path / "checkpoints"
    rotate_into(ckpt, "best", _weights(), _state(1))
    rotate_into(ckpt, "best", _weights(), _state(2))
    assert sorted(p.name for p in ckpt.iterdir()) == ["best", "best.prev"]
    assert load_bundle(ckpt / "best.prev").position == (1, 0)


def test_rotate_into_refuses_a_linked_checkpoints_folder_or_bundle(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "checkpoints").symlink_to(elsewhere)
    with pytest.raises(CheckpointError) as err:
        rotate_into(tmp_path / "checkpoints", "last", _weights(), _state())
    assert str(err.value).startswith(f"{str(tmp_path / 'checkpoints')!r} is a symbolic link")
    assert list(elsewhere.iterdir()) == []
    ckpt = tmp_path / "run" / "checkpoints"
    ckpt.mkdir(parents=True)
    target = _save(tmp_path / "theirs")
    (ckpt / "last").symlink_to(target)
    with pytest.raises(CheckpointError) as err:
        rotate_into(ckpt, "last", _weights(), _state(5))
    assert str(err.value).startswith(f"{str(ckpt / 'last')!r} is a symbolic link")
    assert load_bundle(target).position == (1, 0)  # what the link points to is untouched


@pytest.mark.parametrize("name", ["last.new", "prev"])
def test_rotate_into_never_writes_or_removes_through_a_linked_generation(tmp_path, name):
    ckpt = tmp_path / "checkpoints"
    rotate_into(ckpt, "last", _weights(), _state(1))
    target = _save(tmp_path / "theirs", 7, 0)
    (ckpt / name).symlink_to(target)
    with pytest.raises(CheckpointError) as err:
        rotate_into(ckpt, "last", _weights(), _state(2))
    assert str(err.value).startswith(f"{str(ckpt / name)!r} is a symbolic link (to {str(target)!r})")
    assert load_bundle(target).position == (7, 0)


def test_refuse_links_names_the_linked_bundle_folder(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    refuse_links(tmp_path)  # no link: nothing
    for name in ("last", "prev", "last.new", "best", "best.prev", "best.new"):
        (ckpt / name).symlink_to(tmp_path)
        with pytest.raises(CheckpointError) as err:
            refuse_links(tmp_path)
        assert str(err.value).startswith(f"{str(ckpt / name)!r} is a symbolic link")
        (ckpt / name).unlink()
    refuse_links(tmp_path / "nothing-here")  # no checkpoints/ folder: nothing


def test_refuse_links_names_a_linked_checkpoints_folder(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "checkpoints").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CheckpointError) as err:
        refuse_links(tmp_path)
    assert str(err.value).startswith(f"{str(tmp_path / 'checkpoints')!r} is a symbolic link "
                                     f"(to {str(tmp_path / 'elsewhere')!r})")


def test_remove_bundles_removes_every_generation_and_keeps_everything_else(tmp_path):
    ckpt = tmp_path / "checkpoints"
    for name in ("last", "prev", "last.new", "best", "best.prev", "best.new"):
        _save(ckpt / name)
    (ckpt / "last" / ".state.json.7.tmp").write_text("{")  # a stray temporary file inside
    (ckpt / "notes.txt").write_text("mine")
    (ckpt / "mine").mkdir()
    remove_bundles(tmp_path)
    assert sorted(p.name for p in ckpt.iterdir()) == ["mine", "notes.txt"]
    remove_bundles(tmp_path / "no-run-here")  # nothing there: nothing to do


def test_remove_bundles_refuses_links(tmp_path):
    ckpt = tmp_path / "checkpoints"
    target = _save(tmp_path / "theirs")
    ckpt.mkdir()
    (ckpt / "prev").symlink_to(target)
    with pytest.raises(CheckpointError, match="is a symbolic link"):
        remove_bundles(tmp_path)
    assert load_bundle(target).position == (1, 0)


@pytest.mark.parametrize("extra", ["notes.txt", "sub/", ".mine", "a.tmp"])
def test_a_bundle_folder_holding_foreign_files_is_not_deleted(tmp_path, extra):
    ckpt = tmp_path / "checkpoints"
    folder = _save(ckpt / "prev")
    if extra.endswith("/"):
        (folder / extra.rstrip("/")).mkdir()
    else:
        (folder / extra).write_text("mine")
    with pytest.raises(CheckpointError) as err:
        remove_bundles(tmp_path)
    name = extra.rstrip("/")
    assert str(err.value) == (
        f"resume: {str(folder)!r} is where netwright keeps a checkpoint, but it holds {name}, "
        f"which netwright did not write; it does not delete it. Fix: move it out of "
        f"{str(ckpt)!r}, or pass another run directory.")
    assert (folder / name).exists() and (folder / "manifest.json").is_file()


def test_a_folder_named_like_a_bundle_that_holds_a_bundle_file_name_as_a_folder_is_kept(tmp_path):
    ckpt = tmp_path / "checkpoints"
    (ckpt / "last" / "state.json").mkdir(parents=True)
    with pytest.raises(CheckpointError, match=r"it holds state\.json, which netwright did not write"):
        remove_bundles(tmp_path)
    assert (ckpt / "last" / "state.json").is_dir()


def test_the_foreign_names_listed_are_sorted_and_at_most_five(tmp_path):
    folder = _save(tmp_path / "checkpoints" / "last")
    for name in ["g", "b", "f", "a", "e", "c", "d"]:
        (folder / name).write_text("x")
    with pytest.raises(CheckpointError, match=r"but it holds a, b, c, d, e, which netwright"):
        remove_bundles(tmp_path)


def test_a_file_where_a_bundle_folder_belongs_is_not_deleted(tmp_path):
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    (ckpt / "best").write_text("my file")
    with pytest.raises(CheckpointError) as err:
        remove_bundles(tmp_path)
    assert "but it is not a folder, which netwright did not write" in str(err.value)
    assert (ckpt / "best").read_text() == "my file"


def test_a_link_inside_a_bundle_folder_is_removed_but_not_followed(tmp_path):
    ckpt = tmp_path / "checkpoints"
    folder = _save(ckpt / "last")
    precious = tmp_path / "precious.txt"
    precious.write_text("keep")
    (folder / "state.json").unlink()
    (folder / "state.json").symlink_to(precious)
    remove_bundles(tmp_path)
    assert not (ckpt / "last").exists() and precious.read_text() == "keep"


# --- latest_bundle: the newest complete bundle -------------------------------------------------


def test_latest_bundle_of_a_run_without_checkpoints_is_none(tmp_path):
    assert latest_bundle(tmp_path) is None
    (tmp_path / "checkpoints").mkdir()
    assert latest_bundle(tmp_path) is None


def test_latest_bundle_is_the_newest_position_not_the_folder_name(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 2, 0)
    _save(ckpt / "prev", 1, 6)
    _save(ckpt / "best", 2, 3)  # the rule is the position, whichever folder holds it
    _save(ckpt / "best.prev", 0, 2)
    bundle = latest_bundle(tmp_path)
    assert bundle.position == (2, 3) and bundle.folder == ckpt / "best"
    _save(ckpt / "best", 1, 0)
    assert latest_bundle(tmp_path).folder == ckpt / "last"


def test_latest_bundle_compares_epoch_before_batch(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 3, 0)
    _save(ckpt / "prev", 2, 6)
    assert latest_bundle(tmp_path).position == (3, 0)


def test_a_damaged_bundle_is_skipped_with_a_message_naming_the_file(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 3, 0)
    _save(ckpt / "prev", 2, 0)
    weights = ckpt / "last" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-5])
    said: list[str] = []
    bundle = latest_bundle(tmp_path, say=said.append)
    assert bundle.position == (2, 0) and bundle.folder == ckpt / "prev"
    assert len(said) == 1 and said[0].startswith("skipping a damaged checkpoint: resume bundle file")
    assert str(weights) in said[0]
    assert (ckpt / "last").is_dir()  # a damaged complete bundle is kept (it may be looked at)
    with pytest.warns(UserWarning, match=r"skipping a damaged checkpoint: .*last.*weights"):
        assert latest_bundle(tmp_path).position == (2, 0)


def test_with_every_bundle_damaged_latest_bundle_is_none_and_says_each(tmp_path):
    ckpt = tmp_path / "checkpoints"
    for name in ("last", "prev"):
        _save(ckpt / name)
        (ckpt / name / "manifest.json").unlink()
    said: list[str] = []
    assert latest_bundle(tmp_path, say=said.append) is None
    assert len(said) == 2 and all("manifest.json is missing" in s for s in said)


def test_stray_temporary_files_are_removed_and_other_files_kept(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last")
    strays = [ckpt / ".manifest.json.1.tmp", ckpt / "last" / ".state.json.2.tmp"]
    for p in strays:
        p.write_text("{")
    kept = [ckpt / "notes.tmp", ckpt / ".hidden", ckpt / "last" / "x.tmp.bak"]
    for p in kept:
        p.write_text("mine")
    (ckpt / ".folder.tmp").mkdir()  # a folder is never removed as a stray
    assert latest_bundle(tmp_path).position == (1, 0)
    assert not any(p.exists() for p in strays)
    assert all(p.exists() for p in kept) and (ckpt / ".folder.tmp").is_dir()


def test_stray_files_in_every_bundle_folder_are_removed(tmp_path):
    ckpt = tmp_path / "checkpoints"
    names = ("last", "prev", "last.new", "best", "best.prev", "best.new")
    for name in names:
        _save(ckpt / name)
        (ckpt / name / f".{name}.tmp").write_text("{")
    latest_bundle(tmp_path)
    assert not list(ckpt.glob("*/.*.tmp"))


def test_a_torn_last_new_is_removed_silently(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 1, 4)
    _save(ckpt / "last.new", 1, 6)
    (ckpt / "last.new" / "manifest.json").unlink()  # killed before the manifest was written
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for an unfinished write
        bundle = latest_bundle(tmp_path)
    assert bundle.position == (1, 4) and not (ckpt / "last.new").exists()


def test_a_torn_last_new_does_not_hide_the_bundles_after_it(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 1, 4)
    _save(ckpt / "last.new", 1, 6)
    (ckpt / "last.new" / "manifest.json").unlink()
    _save(ckpt / "best", 2, 0)
    assert latest_bundle(tmp_path).folder == ckpt / "best"


def test_a_torn_new_folder_that_cannot_be_removed_does_not_stop_resume(tmp_path, monkeypatch):
    """Removing the leftovers of an interrupted write is a courtesy: a folder that cannot be
    removed (a read-only mount, say) is left as it is and the complete bundles are used."""
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 1, 4)
    _save(ckpt / "last.new", 1, 6)
    (ckpt / "last.new" / "manifest.json").unlink()

    def read_only(self):
        raise OSError(30, "Read-only file system", str(self))
    monkeypatch.setattr(Path, "rmdir", read_only)
    assert latest_bundle(tmp_path).position == (1, 4)


def test_a_torn_best_new_is_removed_too(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 1, 4)
    _save(ckpt / "best.new", 1, 0)
    (ckpt / "best.new" / "state.json").write_text("torn")
    said: list[str] = []
    latest_bundle(tmp_path, say=said.append)
    assert said == [] and not (ckpt / "best.new").exists()


def test_a_torn_new_folder_that_holds_foreign_files_is_left_alone(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 1, 4)
    (ckpt / "last.new").mkdir()
    (ckpt / "last.new" / "mine.txt").write_text("keep")
    assert latest_bundle(tmp_path).position == (1, 4)
    assert (ckpt / "last.new" / "mine.txt").read_text() == "keep"


def test_a_complete_last_new_finishes_its_rotation(tmp_path):
    """Killed between the renames: last is already prev, last.new complete. The rotation is
    finished: last.new becomes last."""
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "prev", 1, 6)
    _save(ckpt / "last.new", 2, 0)
    bundle = latest_bundle(tmp_path)
    assert bundle.position == (2, 0) and bundle.folder == ckpt / "last"
    assert sorted(p.name for p in ckpt.iterdir()) == ["last", "prev"]
    assert load_bundle(ckpt / "prev").position == (1, 6)


def test_a_complete_last_new_with_last_still_there_moves_last_to_prev(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "prev", 1, 4)
    _save(ckpt / "last", 1, 6)
    _save(ckpt / "last.new", 2, 0)
    bundle = latest_bundle(tmp_path)
    assert bundle.folder == ckpt / "last" and bundle.position == (2, 0)
    assert sorted(p.name for p in ckpt.iterdir()) == ["last", "prev"]
    assert load_bundle(ckpt / "prev").position == (1, 6)  # the old prev is gone
    assert load_bundle(ckpt / "last").position == (2, 0)


def test_a_complete_best_new_becomes_best_and_best_becomes_best_prev(tmp_path):
    ckpt = tmp_path / "checkpoints"
    _save(ckpt / "last", 1, 0)
    _save(ckpt / "best", 1, 0)
    _save(ckpt / "best.new", 2, 0)
    bundle = latest_bundle(tmp_path)
    assert bundle.folder == ckpt / "best" and bundle.position == (2, 0)
    assert sorted(p.name for p in ckpt.iterdir()) == ["best", "best.prev", "last"]
    assert load_bundle(ckpt / "best.prev").position == (1, 0)


def test_latest_bundle_refuses_links(tmp_path):
    ckpt = tmp_path / "checkpoints"
    target = _save(tmp_path / "theirs", 9, 0)
    ckpt.mkdir()
    (ckpt / "last").symlink_to(target)
    with pytest.raises(CheckpointError, match="is a symbolic link"):
        latest_bundle(tmp_path)


# --- the configuration a run is resumed with -----------------------------------------------------


def test_config_changes_lists_dotted_paths_sorted():
    saved = {"lr": 0.1, "train": {"epochs": 3, "batch_size": 32}, "name": "a", "gone": 1}
    current = {"lr": 0.2, "train": {"epochs": 5, "batch_size": 32}, "name": "a", "new": [1]}
    assert config_changes(saved, current) == ["gone: 1 -> None", "lr: 0.1 -> 0.2",
                                              "new: None -> [1]", "train.epochs: 3 -> 5"]
    assert config_changes({"a": {"b": {"c": 1}}}, {"a": {"b": {"c": 2}}}) == ["a.b.c: 1 -> 2"]
    assert config_changes({"a": {"b": 1}}, {"a": 5}) == ["a: {'b': 1} -> 5"]
    assert config_changes({1: "x", "a": 1}, {1: "y", "a": 1}) == ["1: 'x' -> 'y'"]
    assert config_changes({"a": 1}, {"a": 1}) == []


def test_config_changes_shows_each_value_in_at_most_80_characters():
    (change,) = config_changes({"a": "x" * 200}, {"a": "y" * 200})
    old, new = change[len("a: "):].split(" -> ")
    assert len(old) == len(new) == 80
    assert old.startswith("'xxx") and "..." in old and new.startswith("'yyy")
    assert config_changes({"a": "x" * 78}, {"a": 1}) == [f"a: {'x' * 78!r} -> 1"]  # 80: whole


def test_check_config_refuses_another_configuration_naming_the_fields(tmp_path):
    with pytest.raises(ConfigError) as err:
        check_config({"lr": 0.1, "epochs": 3}, {"lr": 0.2, "epochs": 3}, force=False,
                     where=tmp_path, source="its config.yaml")
    assert str(err.value) == (
        f"resume: the run in {str(tmp_path)!r} was started with another configuration (as its "
        f"config.yaml records); changed: lr: 0.1 -> 0.2. Fix: resume with the same settings, "
        f"pass force=True (--force) to continue with the new ones anyway, or train without "
        f"resume (--resume) into a new run directory.")
    with pytest.raises(ConfigError, match=r"\(as its checkpoint records\); changed: lr"):
        check_config({"lr": 0.1}, {"lr": 0.2}, force=False, where=tmp_path)


def test_check_config_accepts_the_same_configuration_and_anything_with_force(tmp_path):
    check_config({"lr": 0.1}, {"lr": 0.1}, force=False, where=tmp_path)
    check_config({"lr": 0.1}, {"lr": 0.2}, force=True, where=tmp_path)
    check_config("not even a mapping", {"lr": 0.2}, force=True, where=tmp_path)


def test_check_config_lists_eight_changes_then_counts_the_rest(tmp_path):
    saved = {f"k{i:02d}": i for i in range(11)}
    current = {f"k{i:02d}": i + 1 for i in range(11)}
    with pytest.raises(ConfigError) as err:
        check_config(saved, current, force=False, where=tmp_path)
    message = str(err.value)
    shown = "; ".join(f"k{i:02d}: {i} -> {i + 1}" for i in range(8))
    assert f"changed: {shown} and 3 more. Fix:" in message
    saved9 = {f"k{i}": i for i in range(9)}
    with pytest.raises(ConfigError) as err:
        check_config(saved9, {k: -1 for k in saved9}, force=False, where=tmp_path)
    assert "k7: 7 -> -1 and 1 more. Fix:" in str(err.value) and "k8" not in str(err.value)
    saved8 = {f"k{i}": i for i in range(8)}
    with pytest.raises(ConfigError) as err:
        check_config(saved8, {k: -1 for k in saved8}, force=False, where=tmp_path)
    assert "more" not in str(err.value) and "k7: 7 -> -1. Fix:" in str(err.value)


def test_check_config_with_a_saved_configuration_that_is_not_a_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"changed: the saved configuration is list, not a "
                                          r"mapping\. Fix:"):
        check_config([1, 2], {"lr": 0.1}, force=False, where=tmp_path)


def test_check_config_with_a_configuration_nested_too_deeply(tmp_path):
    deep: dict = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(ConfigError, match=r"changed: the saved configuration is nested too deeply "
                                          r"to compare\. Fix:"):
        check_config(deep, deep, force=False, where=tmp_path)


def test_a_stray_is_only_a_hidden_tmp_file_name(tmp_path):
    """atomic_write's temporary files are '.NAME.N.tmp'; 'x.tmp' or '.hidden' are someone's
    files and stay (checked through latest_bundle, which removes strays)."""
    ckpt = tmp_path / "checkpoints"
    ckpt.mkdir()
    for name in (".a.tmp", "x.tmp", ".hidden", ".tmpfile", "tmp"):
        (ckpt / name).write_text("x")
    latest_bundle(tmp_path)
    assert sorted(p.name for p in ckpt.iterdir()) == [".hidden", ".tmpfile", "tmp", "x.tmp"]


def test_os_error_reading_a_link_is_named_with_a_question_mark(tmp_path, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "checkpoints").symlink_to(tmp_path / "elsewhere")

    def fail(path):
        raise OSError("gone")
    monkeypatch.setattr(os, "readlink", fail)
    with pytest.raises(CheckpointError, match=r"is a symbolic link \(to '\?'\)"):
        refuse_links(tmp_path)


# --- survivors of the second measurement (docs/mutation/resume-export-doctor.md) ---------------


def test_flatten_names_every_tensor_with_the_given_prefix_at_any_depth():
    """``prefix`` names the keys of the tensors collected, nested ones included (in a dict, a
    tuple or a list); the keys stay unique across the shared ``tensors`` dict."""
    tensors: dict = {}
    body = flatten({"a": torch.ones(1), "d": {"x": torch.ones(2)}, "t": (torch.ones(3),),
                    "l": [torch.ones(4), [torch.ones(5)]]}, tensors, "opt")
    assert sorted(tensors) == ["opt.0", "opt.1", "opt.2", "opt.3", "opt.4"]
    back = unflatten(json.loads(json.dumps(body)), tensors)
    assert [back["a"].numel(), back["d"]["x"].numel(), back["t"][0].numel(),
            back["l"][0].numel(), back["l"][1][0].numel()] == [1, 2, 3, 4, 5]
    flatten([torch.zeros(1)], tensors, "cb")  # a second prefix into the same dict
    assert "cb.5" in tensors and len(tensors) == 6


class _FakeCuda:
    """Two simulated CUDA devices (this machine has none): each RNG state is a distinct byte
    tensor; what set_rng_state_all receives is recorded."""

    def __init__(self, devices=2):
        self.devices = devices
        self.states = [torch.full((8,), 10 + i, dtype=torch.uint8) for i in range(devices)]
        self.set_calls: list = []

    def install(self, monkeypatch):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: self.devices)
        monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: list(self.states))
        monkeypatch.setattr(torch.cuda, "set_rng_state_all",
                            lambda states: self.set_calls.append([s.clone() for s in states]))


def test_rng_state_records_every_cuda_device_and_set_rng_state_restores_them(monkeypatch):
    """The module docstring: torch's RNG state "CPU and every CUDA device" (simulated here)."""
    cuda = _FakeCuda(devices=2)
    cuda.install(monkeypatch)
    saved = rng_state()
    assert [s.tolist() for s in saved["cuda"]] == [[10] * 8, [11] * 8]
    set_rng_state(saved)
    assert [[s.tolist() for s in call] for call in cuda.set_calls] == [[[10] * 8, [11] * 8]]


def test_cuda_rng_states_from_more_devices_are_cut_to_the_devices_present(monkeypatch, tmp_path):
    """A bundle written with 2 GPUs, resumed (through the files on disk) with 1: the first
    device's state is restored, the other is dropped rather than failing."""
    _FakeCuda(devices=2).install(monkeypatch)
    save_bundle(tmp_path / "b", _weights(), _state(rng=rng_state()))
    one = _FakeCuda(devices=1)
    one.install(monkeypatch)
    set_rng_state(load_bundle(tmp_path / "b").state["rng"])
    assert [[s.tolist() for s in call] for call in one.set_calls] == [[[10] * 8]]


def test_a_stray_that_vanishes_while_it_is_cleaned_is_no_error(tmp_path, monkeypatch):
    """Another process may finish (rename away) its temporary file between latest_bundle listing
    a folder and removing the stray: the stray is gone either way, which is not an error."""
    _save(tmp_path / "checkpoints" / "last", epoch=2)
    real_iterdir = Path.iterdir

    def iterdir(self):
        yield from real_iterdir(self)
        if self.name == "last":
            yield self / ".state.json.9.tmp"  # listed, but already gone

    monkeypatch.setattr(Path, "iterdir", iterdir)
    bundle = latest_bundle(tmp_path)
    assert bundle is not None and bundle.state["epoch"] == 2
