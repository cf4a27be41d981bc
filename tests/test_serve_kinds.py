"""The service for the other data kinds (issue 19): image and sound runs take uploaded files,
text runs take texts (JSON or an uploaded .txt), and each answers what `nw.predict` answers
on the same inputs; a file of the wrong kind or a broken one is refused with its own name."""

from __future__ import annotations

import asyncio
import csv
import io

import numpy as np
import pytest

import netwright as nw

httpx = pytest.importorskip("httpx", reason="httpx comes with the dev extra")
pytest.importorskip("fastapi", reason="FastAPI comes with the serve extra")
pytest.importorskip("onnxruntime", reason="onnxruntime comes with the export extra")


def _asgi(app, method: str, url: str, **kwargs):
    async def go():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test", timeout=60) as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(go())


def _agree(answer: dict, want: list[dict]) -> None:
    assert answer["labels"] == [w["label"] for w in want]
    got = np.array(answer["probabilities"])
    ref = np.array([[w[f"p_{c}"] for c in answer["classes"]] for w in want])
    np.testing.assert_allclose(got, ref, atol=1e-4)


def test_an_image_run_takes_uploads_and_pixel_rows(tmp_path):
    from netwright.data.images import export_images

    root = tmp_path / "digits"
    export_images("digits", root)
    result = nw.run({
        "name": "digits_png", "run_dir": str(tmp_path / "runs"),
        "model": {"zoo": "cnn", "channels": [8, 16], "hidden": 32},
        "data": {"source": str(root), "cache": "memory", "test": 0.2, "val": 0.1},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 1, "batch_size": 128}, "metrics": ["accuracy"],
    }, verbose=0)
    files = [sorted((root / d).iterdir())[0] for d in ("3", "7", "9")]
    want = nw.predict(result.run_dir, [str(f) for f in files])
    app = nw.serve(result.run_dir)  # ONNX, exported now
    upload = [("files", (f.name, f.read_bytes(), "image/png")) for f in files]
    r = _asgi(app, "POST", "/predict", files=upload)
    assert r.status_code == 200, r.text
    assert r.json()["files"] == [f.name for f in files]
    _agree(r.json(), want)
    # The same images as rows of [0, 1] pixels (channels, height, width).
    from netwright.serving.onnx import read_images

    _, pixels = read_images(files, {"size": [8, 8], "channels": 1})
    rows = _asgi(app, "POST", "/predict", json={"rows": pixels.tolist()})
    _agree(rows.json(), want)
    wrong_kind = _asgi(app, "POST", "/predict", files=[("files", ("a.wav", b"RIFF....", "audio/wav"))])
    assert wrong_kind.status_code == 415 and wrong_kind.json()["field"] == "files[0]"
    broken = _asgi(app, "POST", "/predict", files=[("files", ("ok.png", files[0].read_bytes())),
                                                   ("files", ("cat.png", b"\x89PNG broken"))])
    assert broken.status_code == 422, broken.text
    assert broken.json()["field"] == "files[1]" and "'cat.png'" in broken.json()["detail"]
    assert "netwright-serve-" not in broken.json()["detail"]  # the upload's name, not a temp path
    field = _asgi(app, "POST", "/predict", files=[("image", ("a.png", files[0].read_bytes()))])
    assert field.status_code == 422 and "'files'" in field.json()["detail"]
    # Images whose decoded size is out of proportion to their bytes are refused from the header.
    from PIL import Image

    large = io.BytesIO()
    Image.new("L", (5000, 5000)).save(large, format="PNG")  # 25 M pixels in ~25 KB
    r = _asgi(app, "POST", "/predict", files=[("files", ("large.png", large.getvalue()))])
    assert r.status_code == 413 and r.json()["field"] == "files[0]", r.text
    r = _asgi(app, "POST", "/predict", files=[("files", ("bomb.png", _png_claiming(40000, 40000)))])
    assert r.status_code == 422 and "too large to decode safely" in r.json()["detail"], r.text


def _png_claiming(width: int, height: int) -> bytes:
    """A 1 x 1 PNG whose header says ``width`` x ``height`` (checksums valid)."""
    import struct
    import zlib

    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.index(b"IHDR")
    data[ihdr + 4:ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17:ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr:ihdr + 17])))
    return bytes(data)


def test_a_text_run_takes_texts_and_a_text_file(tmp_path):
    from netwright.data.builtin import load_languages

    words, labels = load_languages()
    path = tmp_path / "words.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["review", "label"])
        for lang in ("french", "german", "spanish"):
            w.writerows([(x, lab) for x, lab in zip(words, labels) if lab == lang][:60])
    result = nw.run({
        "name": "words", "run_dir": str(tmp_path / "runs"),
        "model": {"zoo": "text_classifier", "cell": "gru", "embed_dim": 8, "hidden_size": 16},
        "data": {"source": str(path), "text": "review", "target": "label", "max_length": 12,
                 "tokenizer": {"kind": "char", "min_frequency": 1}},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.01},
        "train": {"epochs": 2, "batch_size": 32}, "metrics": ["accuracy"],
    }, verbose=0)
    texts = ["bonjour", "kindergarten", "una palabra bastante larga de verdad", "x"]
    want = nw.predict(result.run_dir, texts)
    for runtime in ("onnx", "torch"):
        app = nw.serve(result.run_dir, runtime=runtime)
        r = _asgi(app, "POST", "/predict", json={"texts": texts})
        assert r.status_code == 200, r.text
        _agree(r.json(), want)
        assert "cut to it" in r.json()["notes"][0]  # the long text passes max_length
    upload = _asgi(app, "POST", "/predict",  # with a byte-order mark, as some editors save
                   files=[("files", ("t.txt", "\ufeff".encode() + "\n".join(texts).encode(),
                                     "text/plain"))])
    _agree(upload.json(), want)
    assert upload.json()["texts"] == texts
    wrong = _asgi(app, "POST", "/predict", files=[("files", ("t.csv", b"review\nhola\n"))])
    assert wrong.status_code == 415 and wrong.json()["field"] == "files[0]"
    blank = _asgi(app, "POST", "/predict", files=[("files", ("t.txt", b"hola\n\nciao\n"))])
    assert blank.status_code == 422 and "line 2 is empty" in blank.json()["detail"]

    async def together():  # texts of different lengths padded into one batch
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://test") as client:
            return await asyncio.gather(*(client.post("/predict", json={"texts": [t]})
                                          for t in texts))

    calls = app.state.batcher.stats.model_calls
    for text, r in zip(texts, asyncio.run(together())):
        _agree(r.json(), [w for w in want if w["text"] == text])
    assert app.state.batcher.stats.model_calls - calls < len(texts)  # they shared model calls
    for body, field in (({"texts": ["ok", ""]}, "texts[1]"), ({"texts": ["ok", 3]}, "texts[1]"),
                        ({"rows": [[1]]}, "texts"), ({"texts": "ok"}, "texts")):
        bad = _asgi(app, "POST", "/predict", json=body)
        assert bad.status_code == 422 and bad.json()["field"] == field, bad.text
    meta = _asgi(app, "GET", "/metadata").json()
    assert meta["input"]["kind"] == "text" and meta["input"]["request"] == {"texts": ["a text to classify"]}


def test_a_sound_run_takes_uploads_and_states_conversions(tmp_path):
    sf = pytest.importorskip("soundfile", reason="soundfile comes with the audio extra")
    rng = np.random.default_rng(0)
    root = tmp_path / "sounds"
    for label, freq in (("high", 2000.0), ("low", 300.0)):
        (root / label).mkdir(parents=True)
        for i in range(8):
            t = np.arange(8000) / 16000
            x = 0.5 * np.sin(2 * np.pi * freq * (1 + 0.03 * (i % 4)) * t) + rng.normal(0, 0.02, 8000)
            sf.write(root / label / f"{i:02d}.wav", x.astype(np.float32), 16000)
    result = nw.run({
        "name": "tones", "run_dir": str(tmp_path / "runs"),
        "model": {"zoo": "audio_cnn", "channels": [4, 8], "n_mels": 16},
        "data": {"source": str(root), "sample_rate": 16000, "duration": 0.5, "cache": "memory",
                 "val": 0.25, "test": 0.25},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 1, "batch_size": 8}, "metrics": ["accuracy"],
    }, verbose=0)
    t = np.arange(11025) / 22050
    other = io.BytesIO()  # a 22.05 kHz stereo clip: resampled and mixed down, and said so
    sf.write(other, np.stack([np.sin(2 * np.pi * 300 * t)] * 2, axis=1) * 0.4, 22050, format="WAV")
    (tmp_path / "other.wav").write_bytes(other.getvalue())
    files = [root / "high" / "01.wav", root / "low" / "02.wav", tmp_path / "other.wav"]
    want = nw.predict(result.run_dir, [str(f) for f in files])
    app = nw.serve(result.run_dir)
    r = _asgi(app, "POST", "/predict",
              files=[("files", (f.name, f.read_bytes(), "audio/wav")) for f in files])
    assert r.status_code == 200, r.text
    _agree(r.json(), want)
    assert any("22050" in n for n in r.json()["notes"]), r.json()["notes"]
    empty = _asgi(app, "POST", "/predict", files=[("files", ("silence.wav", b""))])
    assert empty.status_code == 422 and "0 bytes" in empty.json()["detail"]
    slow = io.BytesIO()  # 400 KB at 100 Hz: 32 million samples once read at 16 kHz
    sf.write(slow, np.zeros(200_000, np.int16), 100, format="WAV", subtype="PCM_16")
    r = _asgi(app, "POST", "/predict", files=[("files", ("slow.wav", slow.getvalue()))])
    assert r.status_code == 413 and "shorter clip" in r.json()["detail"], r.text
