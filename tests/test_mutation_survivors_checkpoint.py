"""Tests that kill mutmut survivors in checkpoint.py (docs/testing.md, mutation testing).

They pin the exact reports and error messages of weights loading: the texts users read when a
file is damaged or a checkpoint does not fit, and the JSON form of a load report.
"""

import json
import struct

import pytest

from netwright import checkpoint as ck
from netwright.checkpoint import loading, repair, sources, torch_file, weights_file
from netwright.errors import CheckpointError


def _st_file(tmp_path, header, data=b"", raw=None):
    p = tmp_path / "w.safetensors"
    body = raw if raw is not None else json.dumps(header).encode("utf-8")
    p.write_bytes(struct.pack("<Q", len(body)) + body + data)
    return p


def _what(path, what, cause=""):
    return (f"weights file {str(path)!r} is corrupt or incomplete: {what}{cause}. It was probably "
            f"cut short by a crash or a full disk, or damaged in a copy. Fix: load an earlier "
            f"checkpoint (e.g. checkpoints/best/ or checkpoints/last/ of the run), copy the file "
            f"again, or save the weights again.")


def test_report_to_dict_is_complete():
    r = ck.LoadReport(source="s", mode="repair", location="'state_dict'", matched=["a"],
                      missing=["b"], unexpected=["c"], shape_mismatched={"d": ((1, 2), (3,))},
                      renamed={"x.a": "a"}, tied={"e": "a"})
    assert r.to_dict() == {"source": "s", "mode": "repair", "location": "'state_dict'",
                           "matched": ["a"], "missing": ["b"], "unexpected": ["c"],
                           "shape_mismatched": {"d": [[1, 2], [3]]},
                           "renamed": {"x.a": "a"}, "tied": {"e": "a"}}
    assert not r.ok
    assert ck.LoadReport(source="s", mode="strict").to_dict()["location"] == "the top level"


def test_report_text():
    r = ck.LoadReport(source="s", mode="partial", matched=["a", "b"], missing=["m"],
                      unexpected=[f"u{i}" for i in range(10)],
                      shape_mismatched={"d": ((1,), (2,))}, renamed={"x": "a"},
                      tied={"e": "a"})
    assert str(r) == "\n".join([
        "loaded 2 tensors from 's' (weights at the top level; mode='partial')",
        "  renamed (1): 'x' -> 'a'",
        "  tied (1): 'e' shares 'a'",
        "  shape mismatched, kept as initialized (1): 'd' checkpoint (1,) vs model (2,)",
        "  missing from the checkpoint, kept as initialized (1): 'm'",
        "  in the checkpoint but not the model, ignored (10): "
        + ", ".join(repr(f"u{i}") for i in range(8)) + ", ... and 2 more",
    ])


def test_listing():
    assert repair.listing([]) == ""
    assert repair.listing(["a", "b"]) == "a, b"
    assert repair.listing([str(i) for i in range(8)]) == "0, 1, 2, 3, 4, 5, 6, 7"
    assert repair.listing([str(i) for i in range(9)]) == "0, 1, 2, 3, 4, 5, 6, 7, ... and 1 more"
    assert repair.listing(["a", "b", "c"], limit=2) == "a, b, ... and 1 more"


def test_natural_order():
    assert repair._natural("layers.10.weight") == ((1, 0, "layers"), (0, 10, ""), (1, 0, "weight"))
    keys = ["l.10.w", "l.2.w", "l.1.b", "a"]
    assert sorted(keys, key=repair._natural) == ["a", "l.1.b", "l.2.w", "l.10.w"]
    assert sorted(["m.x", "m.3"], key=repair._natural) == ["m.3", "m.x"]


def test_corrupt_messages(tmp_path):
    p = tmp_path / "f"
    assert str(weights_file.corrupt_error(p, "bad")) == _what(p, "bad")
    assert str(weights_file.corrupt_error(p, "bad", ValueError(" first\nsecond "))) == \
        _what(p, "bad", " (ValueError: first)")
    assert str(weights_file.corrupt_error(p, "bad", ValueError(""))) == _what(p, "bad", " (ValueError)")
    assert str(weights_file.corrupt_error(p, "bad", ValueError("x" * 400))) == \
        _what(p, "bad", f" (ValueError: {'x' * 300})")


def _raises(p, what, cause=""):
    with pytest.raises(CheckpointError) as e:
        weights_file.read_safetensors_header(p)
    assert str(e.value) == _what(p, what, cause)


def test_header_too_short(tmp_path):
    p = tmp_path / "w.safetensors"
    p.write_bytes(b"abc")
    _raises(p, "it holds 3 bytes; a safetensors file starts with an 8-byte header length")
    p.write_bytes(b"")
    _raises(p, "it holds 0 bytes; a safetensors file starts with an 8-byte header length")


def test_header_length_checks(tmp_path, monkeypatch):
    p = tmp_path / "w.safetensors"
    p.write_bytes(struct.pack("<Q", 5000) + b"{}")
    _raises(p, "its header claims 5,000 bytes but the whole file after the length field holds 2")
    # exactly the rest of the file is allowed
    p.write_bytes(struct.pack("<Q", 2) + b"{}")
    assert weights_file.read_safetensors_header(p) == {}
    monkeypatch.setattr(weights_file, "_MAX_HEADER", 1)
    _raises(p, "its header claims 2 bytes, over the 1 that safetensors allows")
    monkeypatch.setattr(weights_file, "_MAX_HEADER", 2)
    assert weights_file.read_safetensors_header(p) == {}


def test_header_content_errors(tmp_path):
    p = _st_file(tmp_path, None, raw=b"{nope")
    with pytest.raises(CheckpointError) as e:
        weights_file.read_safetensors_header(p)
    try:
        json.loads("{nope")
    except ValueError as exc:
        first = str(exc)
    _raises(p, "its header is not valid JSON", f" (JSONDecodeError: {first})")
    p = _st_file(tmp_path, None, raw=b"\xff\xfe")
    with pytest.raises(CheckpointError, match=r"not valid JSON \(UnicodeDecodeError: "):
        weights_file.read_safetensors_header(p)
    _raises(_st_file(tmp_path, [1, 2]), "its header is a JSON list, not an object")
    _raises(_st_file(tmp_path, {"__metadata__": {"a": 1}}),
            "its __metadata__ is not a mapping of strings")
    _raises(_st_file(tmp_path, {"__metadata__": ["a"]}),
            "its __metadata__ is not a mapping of strings")
    assert weights_file.read_safetensors_header(_st_file(tmp_path, {"__metadata__": {"a": "b"}})) == \
        {"__metadata__": {"a": "b"}}


GOOD = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}


@pytest.mark.parametrize("entry", [
    None,
    {"shape": [2], "data_offsets": [0, 8]},
    {"dtype": 1, "shape": [2], "data_offsets": [0, 8]},
    {"dtype": "F32", "data_offsets": [0, 8]},
    {"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]},
    {"dtype": "F32", "shape": [True], "data_offsets": [0, 8]},
    {"dtype": "F32", "shape": [-1], "data_offsets": [0, 8]},
    {"dtype": "F32", "shape": [2]},
    {"dtype": "F32", "shape": [2], "data_offsets": [0]},
    {"dtype": "F32", "shape": [2], "data_offsets": [0, 8, 8]},
    {"dtype": "F32", "shape": [2], "data_offsets": [0, 8.0]},
    {"dtype": "F32", "shape": [2], "data_offsets": "08"},
])
def test_header_malformed_entry(tmp_path, entry):
    p = _st_file(tmp_path, {"t": entry}, data=b"\0" * 8)
    _raises(p, f"the header entry for tensor 't' is malformed: expected dtype, shape and "
               f"data_offsets [begin, end]; got {entry!r:.200}")


def test_header_good_entries(tmp_path):
    h = {"t": GOOD, "z": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]},
         "s": {"dtype": "F4", "shape": [3], "data_offsets": [8, 10]}}
    assert weights_file.read_safetensors_header(_st_file(tmp_path, h, data=b"\0" * 10)) == h


def test_header_offsets_and_sizes(tmp_path):
    p = _st_file(tmp_path, {"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1000]}},
                 data=b"\0" * 8)
    _raises(p, "tensor 't' claims bytes [0, 1,000) but the data section holds 8 bytes")
    p = _st_file(tmp_path, {"t": {"dtype": "F32", "shape": [0], "data_offsets": [4, 2]}},
                 data=b"\0" * 8)
    _raises(p, "tensor 't' claims bytes [4, 2) but the data section holds 8 bytes")
    p = _st_file(tmp_path, {"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}},
                 data=b"\0" * 8)
    _raises(p, "tensor 't' is F32 of shape (3,), which is 12 bytes, but its byte range [0, 8) "
               "holds 8")
    p = _st_file(tmp_path, {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                            "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}},
                 data=b"\0" * 8)
    _raises(p, "tensors 'a' [0, 8) and 'b' [4, 8) overlap")
    ok = {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}
    assert weights_file.read_safetensors_header(_st_file(tmp_path, ok, data=b"\0" * 8)) == ok


def test_weights_in_folder_messages(tmp_path):
    import torch
    with pytest.raises(CheckpointError) as e:
        sources.weights_in_folder(tmp_path)
    assert str(e.value) == (
        f"folder {str(tmp_path)!r} holds no weights.safetensors (a run folder and a checkpoint "
        f"folder have one at the top); it holds: nothing. Fix: pass the weights file itself, or "
        f"a run or checkpoint folder.")
    (tmp_path / "checkpoints" / "best").mkdir(parents=True)
    ck.save_weights({"a": torch.ones(1)}, tmp_path / "checkpoints/best/weights.safetensors")
    for i in range(21):
        (tmp_path / f"f{i:02d}.txt").write_text("")
    (tmp_path / "m.pt").write_bytes(b"")
    with pytest.raises(CheckpointError) as e:
        sources.weights_in_folder(tmp_path)
    names = sorted(["checkpoints/", "m.pt"] + [f"f{i:02d}.txt" for i in range(21)])
    hints = [str(tmp_path / "checkpoints/best/weights.safetensors"), str(tmp_path / "m.pt")]
    assert str(e.value) == (
        f"folder {str(tmp_path)!r} holds no weights.safetensors (a run folder and a checkpoint "
        f"folder have one at the top); it holds: {', '.join(names[:20])}, ... (23 entries). "
        f"Fix: pass one of these: {', '.join(map(repr, hints))}.")
    (tmp_path / "weights.safetensors").write_bytes(b"x")
    assert sources.weights_in_folder(tmp_path) == tmp_path / "weights.safetensors"


def test_needs_pickle_error_text(tmp_path):
    p = tmp_path / "x.pt"
    tail = ("Loading it would run code from the file, which can do anything your user account "
            "can, so netwright did not load it. Fix: if you trust where the file came from, pass "
            "allow_pickle=True (this runs the file's code); better, convert it once to "
            "safetensors in a trusted session and load that: "
            "netwright.checkpoint.save_weights(model.state_dict(), 'weights.safetensors').")
    head = f"{str(p)!r} is a pickle that holds Python objects, not only tensors "
    assert str(torch_file._needs_pickle_error(p, [])) == \
        head + "(objects torch will not load safely). " + tail
    found = [f"m.C{i}" for i in range(10)]
    assert str(torch_file._needs_pickle_error(p, found)) == \
        head + f"({', '.join(found[:8])} and 2 more). " + tail
    assert str(torch_file._needs_pickle_error(p, found[:8])) == head + f"({', '.join(found[:8])}). " + tail


def test_is_state_and_find_state():
    import torch
    from torch import nn
    t = torch.ones(1)
    assert sources._is_state({"a": t})
    assert sources._is_state({"a": t, "b_extra_state": 3})
    assert not sources._is_state({"a": t, "b": 3})
    assert not sources._is_state({"b_extra_state": 3})
    assert not sources._is_state({})
    assert not sources._is_state({1: t})
    assert sources._find_state({"a": t, "x_extra_state": 1}) == ({"a": t}, "the top level")
    m = nn.Linear(1, 1)
    state, where = sources._find_state(m)
    assert sorted(state) == ["bias", "weight"] and where == "a pickled nn.Module"
    state, where = sources._find_state({"model": m})
    assert where == "['model'] (a pickled nn.Module)"
    assert sources._find_state({"state_dict": {"x": 1}, "model": {"a": t}}) == \
        ({"a": t}, "['model']")
    assert sources._find_state({"net": {"weights": {"a": t}}})[1] == "['net']['weights']"
    deep = {"a": t}
    for _ in range(3):
        deep = {"state_dict": deep}
    assert sources._find_state(deep)[1] == "['state_dict']['state_dict']['state_dict']"
    with pytest.raises(LookupError):
        sources._find_state({"state_dict": deep})
    with pytest.raises(LookupError):
        sources._find_state({"state_dict": 3})


def test_describe_container():
    from netwright.errors import describe
    d = {f"k{i}": i for i in range(9)}
    inner = ", ".join(f"{k!r}: {describe(v)}" for k, v in list(d.items())[:8])
    assert sources._describe_container(d) == f"a dict {{{inner}, ... (9 keys)}}"
    d8 = {f"k{i}": i for i in range(8)}
    assert sources._describe_container(d8) == f"a dict {{{inner}}}"
    assert sources._describe_container([1]) == describe([1])


def test_open_source_messages(tmp_path):
    from netwright.errors import ConfigError
    with pytest.raises(CheckpointError) as e:
        sources.open_source({"x": 1}, False, "cpu")
    assert str(e.value) == (
        "the given dict holds no state_dict: expected a mapping of names to tensors, or one "
        "under 'state_dict', 'model_state_dict', 'model', 'net', 'weights'; got "
        f"{sources._describe_container({'x': 1})}. Fix: pass the inner mapping of tensors.")
    with pytest.raises(ConfigError) as e:
        sources.open_source(3, False, "cpu")
    from netwright.errors import describe
    assert str(e.value) == ("load_weights expects a path, a run or checkpoint folder, or a dict "
                            f"of tensors as source; got {describe(3)}.")
    (tmp_path / "weights.safetensor").write_text("")
    missing = tmp_path / "weights.safetensors"
    with pytest.raises(CheckpointError) as e:
        sources.open_source(str(missing), False, "cpu")
    msg = str(e.value)
    assert msg.startswith(f"weights file {str(missing)!r} does not exist.")
    assert "weights.safetensor" in msg[len(f"weights file {str(missing)!r} does not exist."):]
    assert msg.endswith(" Fix: check the path.")
    empty = tmp_path / "e.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as e:
        sources.open_source(empty, False, "cpu")
    assert str(e.value) == _what(empty, "it is empty")
    nothing = ck.save_weights({}, tmp_path / "n.safetensors")
    with pytest.raises(CheckpointError) as e:
        sources.open_source(nothing, False, "cpu")
    assert str(e.value) == (f"weights file {str(nothing)!r} holds no tensors. Fix: check that it "
                            f"was saved from a model with parameters.")


def test_open_source_values(tmp_path):
    import torch
    t = torch.ones(2)
    s = sources.open_source({"a": t}, False, "cpu")
    assert (s.name, s.location, s.ordered, list(s.state)) == \
        ("the given dict", "the top level", True, ["a"])
    p = ck.save_weights({"b": t, "a": t.clone()}, tmp_path / "weights.safetensors")
    s = sources.open_source(p, False, "cpu")
    assert (s.name, s.location, s.ordered, list(s.state)) == (str(p), "the top level", True,
                                                               ["b", "a"])
    s = sources.open_source(tmp_path, False, "cpu")
    assert s.name == str(p)
    q = tmp_path / "w.pt"
    torch.save({"model": {"a": t}}, q)
    s = sources.open_source(q, False, "cpu")
    assert (s.name, s.location, s.ordered, list(s.state)) == (str(q), "['model']", True, ["a"])
    r = tmp_path / "o.pt"
    torch.save({"epoch": 3}, r)
    with pytest.raises(CheckpointError) as e:
        sources.open_source(r, False, "cpu")
    assert str(e.value) == (
        f"found no state_dict in {str(r)!r}: expected a mapping of names to tensors, or one "
        f"under 'state_dict', 'model_state_dict', 'model', 'net', 'weights'; the file holds "
        f"{sources._describe_container({'epoch': 3})}. Fix: pick the entry yourself: "
        f"load_weights(model, torch.load(path, weights_only=True)['<key>']).")


def test_safetensors_device():
    import torch
    assert sources._safetensors_device("cuda:1") == "cuda:1"
    assert sources._safetensors_device(torch.device("meta")) == "meta"
    assert sources._safetensors_device(lambda s, l: s) == "cpu"


def _st_meta(tmp_path, tensors, meta):
    from safetensors.torch import save_file
    p = tmp_path / "m.safetensors"
    save_file(tensors, str(p), metadata=meta)
    return p


def test_read_safetensors_metadata_checks(tmp_path):
    import torch
    t = {"a": torch.ones(2), "b": torch.zeros(1)}
    crc = weights_file._checksum(t)
    order = json.dumps(["b", "a"])
    ok = _st_meta(tmp_path, t, {"netwright.crc32": crc, "netwright.order": order})
    tensors, got = weights_file.read_safetensors(ok)
    assert list(tensors) == ["b", "a"] and got == ["b", "a"]
    for bad in ({"netwright.crc32": crc}, {"netwright.order": order},
                {"netwright.crc32": crc, "netwright.order": order, "netwright.x": "1"}):
        p = _st_meta(tmp_path, t, bad)
        with pytest.raises(CheckpointError) as e:
            weights_file.read_safetensors(p)
        assert str(e.value) == _what(p, f"its netwright metadata entries are damaged "
                                        f"(found {sorted(bad)})")
    p = _st_meta(tmp_path, t, {"netwright.crc32": "00000000", "netwright.order": order})
    with pytest.raises(CheckpointError) as e:
        weights_file.read_safetensors(p)
    assert str(e.value) == _what(p, f"its contents do not match the checksum recorded when it "
                                    f"was saved (crc32 {crc}, recorded 00000000)")
    p = _st_meta(tmp_path, t, {"netwright.crc32": crc, "netwright.order": "[nope"})
    with pytest.raises(CheckpointError, match=r"netwright's metadata in its header is not valid "
                                              r"JSON \(JSONDecodeError: "):
        weights_file.read_safetensors(p)
    p = _st_meta(tmp_path, t, {"netwright.crc32": crc, "netwright.order": order,
                               "netwright.aliases": "[1]"})
    with pytest.raises(CheckpointError) as e:
        weights_file.read_safetensors(p)
    assert str(e.value) == _what(p, "its record of tied tensors is not a mapping of names")
    p = _st_meta(tmp_path, t, {"netwright.crc32": crc, "netwright.order": order,
                               "netwright.aliases": '{"c": 1}'})
    with pytest.raises(CheckpointError, match="not a mapping of names"):
        weights_file.read_safetensors(p)
    p = _st_meta(tmp_path, t, {"netwright.crc32": crc, "netwright.order": order,
                               "netwright.aliases": '{"c": "z"}'})
    with pytest.raises(CheckpointError) as e:
        weights_file.read_safetensors(p)
    assert str(e.value) == _what(p, "tied name 'c' refers to 'z', which the file lacks")
    p = _st_meta(tmp_path, t, {"netwright.crc32": crc, "netwright.order": json.dumps(["a"])})
    with pytest.raises(CheckpointError) as e:
        weights_file.read_safetensors(p)
    assert str(e.value) == _what(p, "the key order recorded when it was saved does not list its "
                                    "tensors")
    p = _st_meta(tmp_path, t, {"netwright.crc32": crc, "netwright.order": '{"a": 1, "b": 2}'})
    with pytest.raises(CheckpointError, match="does not list its tensors"):
        weights_file.read_safetensors(p)
    # aliases restored, order including them; no netwright metadata at all is fine too
    p = _st_meta(tmp_path, t, {"netwright.crc32": crc, "netwright.aliases": '{"c": "a"}',
                               "netwright.order": json.dumps(["c", "b", "a"])})
    tensors, got = weights_file.read_safetensors(p)
    assert list(tensors) == ["c", "b", "a"] and tensors["c"] is tensors["a"]
    tensors, got = weights_file.read_safetensors(_st_meta(tmp_path, t, None))
    assert got is None and sorted(tensors) == ["a", "b"]


def test_read_safetensors_unreadable(tmp_path):
    # A valid header whose dtype safetensors does not know
    p = _st_file(tmp_path, {"t": {"dtype": "Q9", "shape": [1], "data_offsets": [0, 1]}},
                 data=b"\0")
    with pytest.raises(CheckpointError) as e:
        weights_file.read_safetensors(p)
    assert str(e.value).startswith(f"weights file {str(p)!r} is corrupt or incomplete: "
                                   f"safetensors could not read it (")


def test_load_weights_file_missing(tmp_path):
    with pytest.raises(CheckpointError) as e:
        ck.load_weights_file(tmp_path / "no.safetensors")
    assert str(e.value) == (f"weights file {str(tmp_path / 'no.safetensors')!r} does not exist. "
                            f"Fix: check the path.")
    with pytest.raises(CheckpointError, match="does not exist"):
        ck.load_weights_file(tmp_path)


def test_check_torch_zip(tmp_path):
    import zipfile
    import torch
    p = tmp_path / "w.pt"
    torch.save({"a": torch.arange(100.0)}, p)
    torch_file._check_torch_zip(p)  # intact
    raw = bytearray(p.read_bytes())
    i = raw.index(torch.arange(100.0).numpy().tobytes()[:16])
    raw[i + 5] ^= 0xFF
    bad = tmp_path / "bad.pt"
    bad.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError) as e:
        torch_file._check_torch_zip(bad)
    assert str(e.value).startswith(_what(bad, "it is not a complete, intact zip archive "
                                              "(torch.save writes one) (BadZipFile: ")[:-250])
    assert "intact zip archive (torch.save writes one) (BadZipFile: Bad CRC-32" in str(e.value)
    bomb = tmp_path / "bomb.pt"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("big", b"\0" * (3 << 20))
    size = bomb.stat().st_size
    with pytest.raises(CheckpointError) as e:
        torch_file._check_torch_zip(bomb)
    # The zip-bomb refusal says so itself (it used to be re-wrapped as "not an intact zip").
    assert str(e.value) == _what(bomb, f"record 'big' would inflate to {3 << 20:,} bytes from a "
                                       f"{size:,}-byte file")
    small = tmp_path / "small.pt"
    with zipfile.ZipFile(small, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x", b"\0" * 1000)
    torch_file._check_torch_zip(small)  # compressed but within bounds


def _two():
    from torch import nn
    return nn.Sequential(nn.Linear(2, 1), nn.Linear(1, 3))


def _two_src(prefix="", out=4):
    from torch import nn
    return {prefix + k: v for k, v in nn.Sequential(nn.Linear(2, 1), nn.Linear(1, out))
            .state_dict().items()}


def _err(model, source, mode):
    with pytest.raises(CheckpointError) as e:
        ck.load_weights(model, source, mode)
    return str(e.value)


HEAD_FIX = ("if the differences are intended (a new head with another number of classes, an "
            "added layer), use mode='partial' to load {} and keep the rest as initialized; "
            "otherwise check that the checkpoint was saved from this architecture (same layer "
            "sizes).")


def test_strict_error_suggests_repair():
    from torch import nn
    src = {"module." + k: v for k, v in nn.Sequential(nn.Linear(2, 1)).state_dict().items()}
    assert _err(nn.Sequential(nn.Linear(2, 1)), src, "strict") == (
        "the weights in the given dict do not fit Sequential (mode='strict'): 2 missing, 2 "
        "unexpected; 0 of the model's 2 tensors matched.\n"
        "  in the model, not in the checkpoint: '0.weight' (1, 2), '0.bias' (1,)\n"
        "  in the checkpoint, not in the model: 'module.0.weight' (1, 2), 'module.0.bias' (1,)\n"
        "Nothing was loaded. Fix: use mode='repair', which maps every key (e.g. "
        "'module.0.weight' -> '0.weight') and lists each mapping in the report.")


def test_strict_error_repair_would_not_be_enough():
    assert _err(_two(), _two_src("module."), "strict") == (
        "the weights in the given dict do not fit Sequential (mode='strict'): 4 missing, 4 "
        "unexpected; 0 of the model's 4 tensors matched.\n"
        "  in the model, not in the checkpoint: '0.weight' (1, 2), '0.bias' (1,), "
        "'1.weight' (3, 1), '1.bias' (3,)\n"
        "  in the checkpoint, not in the model: 'module.0.weight' (1, 2), 'module.0.bias' (1,), "
        "'module.1.weight' (4, 1), 'module.1.bias' (4,)\n"
        "Nothing was loaded. Fix: mode='repair' maps 2 more keys (e.g. 'module.0.weight' -> "
        "'0.weight'), but '1.weight', '1.bias' would still not fit; if that is intended (a new "
        "head with another number of classes), use mode='partial' to load what fits and keep "
        "the rest as initialized.")


def test_strict_and_repair_head_errors():
    body = ("2 with another shape; 2 of the model's 4 tensors matched.\n"
            "  shape differs: '1.weight' checkpoint (4, 1) vs model (3, 1), '1.bias' checkpoint "
            "(4,) vs model (3,)\nNothing was loaded. Fix: ")
    assert _err(_two(), _two_src(), "strict") == (
        "the weights in the given dict do not fit Sequential (mode='strict'): " + body
        + HEAD_FIX.format("what fits"))
    assert _err(_two(), _two_src(), "repair") == (
        "the weights in the given dict do not fit Sequential (mode='repair'): " + body
        + HEAD_FIX.format("the tensors that fit"))


def test_repair_error_lists_renamed_and_partial_report():
    import torch
    src = _two_src("module.")
    src["module.extra"] = torch.ones(2)
    assert _err(_two(), src, "repair") == (
        "the weights in the given dict do not fit Sequential (mode='repair'): 1 unexpected, 2 "
        "with another shape; 2 of the model's 4 tensors matched.\n"
        "  shape differs: '1.weight' checkpoint (4, 1) vs model (3, 1), '1.bias' checkpoint "
        "(4,) vs model (3,)\n"
        "  in the checkpoint, not in the model: 'module.extra' (2,)\n"
        "  renamed: 'module.0.weight' -> '0.weight', 'module.0.bias' -> '0.bias', "
        "'module.1.weight' -> '1.weight', 'module.1.bias' -> '1.bias'\n"
        "Nothing was loaded. Fix: " + HEAD_FIX.format("the tensors that fit"))
    model = _two()
    before = model[1].weight.detach().clone()
    r = ck.load_weights(model, src, "partial")
    assert r.to_dict() == {
        "source": "the given dict", "mode": "partial", "location": "the top level",
        "matched": ["0.weight", "0.bias"], "missing": [], "unexpected": ["module.extra"],
        "shape_mismatched": {"1.weight": [[4, 1], [3, 1]], "1.bias": [[4], [3]]},
        "renamed": {"module.0.weight": "0.weight", "module.0.bias": "0.bias",
                    "module.1.weight": "1.weight", "module.1.bias": "1.bias"}, "tied": {}}
    assert torch.equal(model[0].weight, src["module.0.weight"])
    assert torch.equal(model[1].weight, before)


def test_nothing_fits_and_argument_errors():
    import torch
    from torch import nn
    from netwright.errors import ConfigError
    assert _err(nn.Sequential(nn.Linear(2, 1)), {"x": torch.ones(7)}, "partial") == (
        "nothing in the given dict fits model Sequential (mode='partial'): none of its 1 "
        "tensors matches one of the model's 2 by name and shape, even after removing wrapper "
        "prefixes and pairing renamed layers.\n"
        "  checkpoint (weights at the top level): 'x' (7,)\n"
        "  model: '0.weight' (1, 2), '0.bias' (1,)\n"
        "Fix: check that the checkpoint was saved from this architecture (same layer sizes), or "
        "pass the entry of the file that holds this model's weights.")
    many = {f"x{i}": torch.ones(7) for i in range(6)}
    msg = _err(nn.Sequential(nn.Linear(2, 1)), many, "partial")
    assert ("  checkpoint (weights at the top level): 'x0' (7,), 'x1' (7,), 'x2' (7,), "
            "'x3' (7,), 'x4' (7,), ... and 1 more\n") in msg
    with pytest.raises(ConfigError) as e:
        ck.load_weights(nn.Linear(1, 1), {}, "nope")
    assert str(e.value) == "load_weights mode must be one of 'strict', 'repair', 'partial'; " \
                           "got 'nope'."
    with pytest.raises(ConfigError) as e:
        ck.load_weights(nn.Linear(1, 1), {}, "Strict")
    assert str(e.value).startswith("load_weights mode must be one of 'strict', 'repair', "
                                   "'partial'; got 'Strict'. ")
    assert "'strict'" in str(e.value).split("got 'Strict'.")[1]
    with pytest.raises(ConfigError) as e:
        ck.load_weights({}, {}, "strict")
    assert str(e.value) == ("load_weights expects an nn.Module as model; got dict of length 0. "
                            "Fix: build the model first, then load its weights into it.")


def test_state_to_cpu_copies():
    import torch
    t = torch.ones(2)
    s = ck.state_to_cpu({"a": t, "n": 3})
    assert list(s) == ["a"] and torch.equal(s["a"], t)
    assert s["a"].data_ptr() != t.data_ptr()  # a snapshot, not a view of the live tensor
    t.add_(1)
    assert torch.equal(s["a"], torch.ones(2))


def test_storage_key():
    import torch
    one = torch.ones(1)
    assert weights_file._storage_key(one) is not None
    assert weights_file._storage_key(one) == weights_file._storage_key(one.view(1))
    assert weights_file._storage_key(torch.ones(0)) is None
    assert weights_file._storage_key(torch.empty(2, device="meta")) is None


def test_checksum_value():
    import zlib
    import torch
    t = {"b": torch.tensor([1.0, 2.0]), "a": torch.zeros(0, dtype=torch.int64)}
    crc = zlib.crc32("a\0torch.int64\0(0,)\0".encode())
    crc = zlib.crc32("b\0torch.float32\0(2,)\0".encode(), crc)
    crc = zlib.crc32(t["b"].numpy().tobytes(), crc)
    assert weights_file._checksum(t) == f"{crc:08x}"


def test_save_weights_keeps_every_tensor(tmp_path):
    import torch
    from netwright.errors import ConfigError
    t = torch.ones(2)
    state = {"x_extra_state": 1, "a": t, "b": t, "c": torch.zeros(3)}
    p = ck.save_weights(state, tmp_path / "w.safetensors")
    back = ck.load_weights_file(p)
    assert list(back) == ["a", "b", "c"]
    assert back["a"] is back["b"] and torch.equal(back["c"], torch.zeros(3))
    with pytest.raises(ConfigError) as e:
        ck.save_weights({"a": t}, tmp_path / "x.safetensors", {"netwright.order": "1", "k": "v"})
    assert str(e.value) == ("save_weights metadata keys starting with 'netwright.' are reserved "
                            "for netwright's own records; got ['netwright.order']. Fix: use "
                            "another prefix.")
    assert not (tmp_path / "x.safetensors").exists()


def test_header_boundaries(tmp_path):
    p = tmp_path / "w.safetensors"
    p.write_bytes(b"\0" * 8)  # length 0, empty header: read as JSON, not refused as too short
    _raises(p, "its header is not valid JSON",
            " (JSONDecodeError: Expecting value: line 1 column 1 (char 0))")
    # __metadata__ first does not end the checks of the entries after it
    p = _st_file(tmp_path, {"__metadata__": {}, "t": {"dtype": "F32"}})
    with pytest.raises(CheckpointError, match="header entry for tensor 't' is malformed"):
        weights_file.read_safetensors_header(p)
    p = _st_file(tmp_path, {"t": {"dtype": "F32", "shape": [1], "data_offsets": [2, 8]}},
                 data=b"\0" * 8)
    _raises(p, "tensor 't' is F32 of shape (1,), which is 4 bytes, but its byte range [2, 8) "
               "holds 6")


def test_metadata_json_error_names_file(tmp_path):
    import torch
    t = {"a": torch.ones(1)}
    p = _st_meta(tmp_path, t, {"netwright.crc32": weights_file._checksum(t), "netwright.order": "[x"})
    try:
        json.loads("[x")
    except ValueError as exc:
        first = str(exc)
    with pytest.raises(CheckpointError) as e:
        weights_file.read_safetensors(p)
    assert str(e.value) == _what(p, "netwright's metadata in its header is not valid JSON",
                                 f" (JSONDecodeError: {first})")


def test_key_helpers():
    from torch import nn
    assert repair._canonical("module.") == "module."
    assert repair._canonical("module.model.0.weight") == "0.weight"
    assert repair._canonical("a._orig_mod.b") == "a.b"
    assert repair._groups(["a.b.c", "a.b.d", "e"]) == {"a.b": {"c": "a.b.c", "d": "a.b.d"},
                                                   "": {"e": "e"}}
    assert loading._tie_groups(nn.Linear(1, 1).state_dict(keep_vars=True)) == []
    m = nn.Linear(1, 1)
    assert loading._tie_groups({"w": m.weight, "v": m.weight, "b": m.bias}) == [["w", "v"]]


def test_nothing_fits_empty_model():
    import torch
    from torch import nn
    msg = _err(nn.ReLU(), {"x": torch.ones(1)}, "partial")
    assert "\n  model: (none)\n" in msg
