"""Sound files end to end (issue 15): folders and tables of real WAV/FLAC/OGG files, decoding,
mixing down, resampling, cutting and padding (stated), bad files (named or skipped),
augmentation of training clips only, splits by speaker, the doctor's sound checks, and a run
that trains, predicts on files and exports with its spectrogram inside."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import netwright as nw
from netwright.config import DataConfig
from netwright.data.audio import AudioFiles, fit_length, group_split, level_counts, list_audio
from netwright.data.prepare import prepare_data
from netwright.data.sound_augment import build_sound_augment
from netwright.errors import ConfigError, DataError

sf = pytest.importorskip("soundfile", reason="soundfile comes with the audio extra")


def _tone(freq: float, seconds: float, rate: int, *, amp: float = 0.5, seed: int = 0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    noise = np.random.default_rng(seed).normal(0, 0.02, len(t))
    return (amp * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


def _folder(root: Path, per_class: int = 8, *, rate: int = 16000, mixed: bool = False) -> Path:
    """Two classes of real sound files: low (300 Hz) and high (2 kHz) tones with noise. With
    ``mixed``: some at 22.05 kHz, some stereo, some FLAC/OGG, lengths 0.4-0.8 s."""
    for label, freq in (("high", 2000.0), ("low", 300.0)):
        (root / label).mkdir(parents=True)
        for i in range(per_class):
            r = 22050 if mixed and i % 3 == 0 else rate
            secs = 0.4 + 0.1 * (i % 5) if mixed else 0.5
            x = _tone(freq * (1 + 0.03 * (i % 4)), secs, r, seed=i)
            if mixed and i % 4 == 1:
                x = np.stack([x, 0.5 * x], axis=1)
            suffix = ".flac" if mixed and i % 5 == 2 else ".ogg" if mixed and i % 5 == 4 else ".wav"
            sf.write(root / label / f"{i:02d}{suffix}", x, r)
    return root


def test_a_mixed_folder_is_read_with_every_conversion_stated(tmp_path):
    root = _folder(tmp_path / "sounds", mixed=True)
    listed = list_audio(root, sample_rate=16000, duration=0.6)
    assert listed.classes == ["high", "low"] and len(listed.paths) == 16
    assert {p.suffix for p in listed.paths} == {".wav", ".flac", ".ogg"}
    assert listed.num_samples == 9600
    notes = " | ".join(listed.notes)
    assert "6 file(s) (6 at 22050 Hz) are resampled to 16000 Hz" in notes
    assert "4 multi-channel file(s) (4 with 2 channels) are mixed down to mono" in notes
    assert "clip(s) are shorter than 0.6 s and are padded" in notes
    assert "clip(s) are longer than 0.6 s and are cropped" in notes
    # Resampling keeps the tone's frequency: the 22.05 kHz high tone peaks at 2 kHz at 16 kHz.
    data = AudioFiles(listed)
    i = [k for k, p in enumerate(listed.paths) if p.name == "00.wav" and p.parent.name == "high"][0]
    x, y = data[i]
    assert x.shape == (1, 9600) and x.dtype == torch.float32 and int(y) == 0
    spectrum = torch.fft.rfft(x[0, 2000:6000]).abs()
    assert abs(float(spectrum.argmax()) * 16000 / 4000 - 2000) <= 8
    # Defaults: the files' rate when they share one; the longest clip.
    same = list_audio(_folder(tmp_path / "plain"))
    assert same.sample_rate == 16000 and same.num_samples == 8000
    assert any("data.duration not set" in n for n in same.notes)


def test_training_crops_at_random_evaluation_takes_the_centre(tmp_path):
    root = tmp_path / "s"
    for label in ("a", "b"):
        (root / label).mkdir(parents=True)
        sf.write(root / label / "x.wav", np.linspace(-1, 1, 16000, dtype=np.float32), 16000)
    listed = list_audio(root, duration=0.25)
    evaluation = AudioFiles(listed)
    first = evaluation[0][0]
    assert torch.equal(first, evaluation[0][0])
    ramp = torch.from_numpy(np.linspace(-1, 1, 16000, dtype=np.float32))
    assert torch.allclose(first[0], ramp[6000:10000], atol=1e-4)  # 16-bit WAV
    train = AudioFiles(listed, train=True)
    torch.manual_seed(0)
    starts = {round(float(train[0][0][0, 0]), 4) for _ in range(20)}
    assert len(starts) > 10  # twenty random crops, (almost) all different
    torch.manual_seed(0)
    again = {round(float(train[0][0][0, 0]), 4) for _ in range(20)}
    assert again == starts  # seeded: the same crops
    assert fit_length(torch.ones(3), 7).tolist() == [0, 0, 1, 1, 1, 0, 0]


@pytest.mark.parametrize("damage", ["empty", "text", "truncated_header"])
def test_a_bad_file_is_named_before_training_or_skipped(tmp_path, damage):
    root = _folder(tmp_path / "s", per_class=3)
    bad = root / "low" / "bad.wav"
    if damage == "empty":
        bad.write_bytes(b"")
    elif damage == "text":
        bad.write_text("this is not a sound")
    else:
        good = (root / "low" / "00.wav").read_bytes()
        bad.write_bytes(good[:20])
    with pytest.raises(DataError, match=r"sound file '.*bad\.wav': .*Fix: replace or delete"):
        list_audio(root)
    listed = list_audio(root, skip_bad=True)
    assert len(listed.paths) == 6 and listed.skipped[0][0].endswith("bad.wav")
    assert any("skipped 1 unreadable file(s)" in n for n in listed.notes)
    cfg = DataConfig(source=str(root), skip_bad=True, val=0, test=0.34)
    assert prepare_data(cfg, "multiclass").skipped[0][0].endswith("bad.wav")


def test_folder_and_table_errors_name_the_fix(tmp_path):
    root = tmp_path / "one"
    (root / "only").mkdir(parents=True)
    sf.write(root / "only" / "a.wav", _tone(440, 0.1, 8000), 8000)
    with pytest.raises(DataError, match=r"only one class folder .*1 sounds"):
        list_audio(root)
    table = tmp_path / "t.csv"
    table.write_text("file,label\nmissing.wav,a\n")
    with pytest.raises(ConfigError, match=r"data.audio: required"):
        list_audio(table)
    with pytest.raises(DataError, match=r"data.audio: column 'path' is not in"):
        list_audio(table, audio="path", target="label")
    with pytest.raises(DataError, match=r"row 2: sound 'missing.wav' does not exist"):
        list_audio(table, audio="file", target="label")
    with pytest.raises(ConfigError, match=r"data.duration: .* less than one sample"):
        list_audio(root.parent / "one", duration=1e-6, classes=["only"])


def _speakers_table(tmp_path: Path, speakers: int = 6) -> Path:
    rows = []
    for s in range(speakers):
        for label, freq in (("high", 2000.0), ("low", 300.0)):
            for k in range(2):
                name = f"clips/{label}_{s}_{k}.wav"
                (tmp_path / "clips").mkdir(exist_ok=True)
                sf.write(tmp_path / name, _tone(freq * (1 + 0.05 * s), 0.3, 8000, seed=s * 7 + k), 8000)
                rows.append((name, label, f"speaker{s}"))
    path = tmp_path / "index.csv"
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([("path", "label", "speaker"), *rows])
    return path


def test_a_table_split_by_speaker_never_shares_one(tmp_path):
    table = _speakers_table(tmp_path)
    cfg = DataConfig(source=str(table), audio="path", target="label", group="speaker",
                     val=0.17, test=0.33)
    data = prepare_data(cfg, "multiclass")
    speakers = {name: {data.split(name).audio.groups[i] for i in data.split(name).index}
                for name in ("train", "val", "test")}
    assert speakers["train"] and speakers["val"] and speakers["test"]
    assert not (speakers["train"] & speakers["test"]) and not (speakers["train"] & speakers["val"])
    assert not (speakers["val"] & speakers["test"])
    assert sum(data.sizes.values()) == 24
    assert any("split by data.group 'speaker': 6 groups" in n for n in data.notes)
    tr, va, te = group_split(["a"] * 3 + ["b"] * 3, 0.5, 0.0, 1)
    assert len(tr) == len(te) == 3 and len(va) == 0
    with pytest.raises(DataError, match=r"data.group: 1 group\(s\) cannot fill"):
        group_split(["a"] * 4, 0.5, 0.0, 0)


def test_sound_augmentation_is_checked_and_reaches_training_clips_only(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown sound augmentation 'time_shfit'.*time_shift"):
        build_sound_augment([{"time_shfit": 0.1}], 16000)
    with pytest.raises(ConfigError, match=r"data.augment\[0\].fraction: expected a number from 0 to 0.5"):
        build_sound_augment([{"time_shift": 2}], 16000)
    with pytest.raises(ConfigError, match=r"spec_augment"):
        build_sound_augment(["freq_mask"], 16000)
    with pytest.raises(ConfigError, match=r"noise takes snr, p and source; received \['level'\]"):
        build_sound_augment([{"noise": {"snr": 10, "level": 3}}], 16000)
    # The config reader checks sound names too, before any file is read.
    from netwright.config import load_config

    with pytest.raises(ConfigError, match=r"unknown sound augmentation 'gian'"):
        load_config({"model": {"zoo": "m5"}, "loss": "cross_entropy",
                     "data": {"source": "spoken_digits", "augment": [{"time_shift": 0.1}, {"gian": 3}]}})
    # White noise at 20 dB SNR: the added power is 1 % of the clip's.
    noise = build_sound_augment([{"noise": 20}], 16000)
    clip = torch.from_numpy(_tone(440, 1.0, 16000, seed=1))[None]
    torch.manual_seed(0)
    added = noise(clip.clone()) - clip
    ratio = float(clip.pow(2).mean() / added.pow(2).mean())
    assert 90 < ratio < 110
    gain = build_sound_augment([{"gain": 6}], 16000)
    for _ in range(10):
        factor = float(gain(clip.clone()).abs().max() / clip.abs().max())
        assert 10 ** (-6 / 20) - 1e-6 <= factor <= 10 ** (6 / 20) + 1e-6
    shift = build_sound_augment([{"time_shift": 0.25}], 16000)
    ramp = torch.arange(1, 101, dtype=torch.float32)[None]
    torch.manual_seed(3)
    moved = shift(ramp.clone())
    zeros = int((moved == 0).sum())
    assert zeros <= 25 and torch.equal(moved[moved != 0], ramp[0, :100 - zeros] if moved[0, 0] == 0
                                       else ramp[0, zeros:])
    # Background noise from real files, at its SNR.
    (tmp_path / "noises").mkdir()
    sf.write(tmp_path / "noises" / "hum.wav", _tone(50, 0.3, 16000, seed=9), 16000)
    background = build_sound_augment([{"noise": {"snr": [10, 10], "source": str(tmp_path / "noises")}}], 16000)
    torch.manual_seed(0)
    added = background(clip.clone()) - clip
    assert 9 < float(clip.pow(2).mean() / added.pow(2).mean()) < 11
    # In a config run: the training split is augmented, the evaluation splits are not.
    root = _folder(tmp_path / "s", per_class=6)
    data = prepare_data(DataConfig(source=str(root), augment=[{"gain": 6}, {"noise": 30}], val=0.17,
                                   test=0.17), "multiclass")
    assert data.train.augment is not None and data.train.train
    assert data.val.augment is None and not data.val.train and data.test.augment is None
    assert torch.equal(data.val[0][0], data.val[0][0])


def test_the_memory_cache_gives_the_same_clips(tmp_path):
    root = _folder(tmp_path / "s", per_class=4, mixed=True)
    plain = prepare_data(DataConfig(source=str(root), duration=0.5, val=0, test=0.25), "multiclass")
    cached = prepare_data(DataConfig(source=str(root), duration=0.5, val=0, test=0.25,
                                     cache="memory"), "multiclass")
    assert cached.test.cache is not None and plain.test.cache is None
    for i in range(len(plain.test)):
        assert torch.equal(plain.test[i][0], cached.test[i][0])
    assert cached.workers == 0 and plain.workers >= 1


def test_levels_clipping_and_silence_become_doctor_warnings(tmp_path):
    root = _folder(tmp_path / "s", per_class=4)
    sf.write(root / "low" / "loud.wav", np.clip(_tone(300, 0.5, 16000, amp=3.0), -1, 1), 16000)
    sf.write(root / "high" / "quiet.wav", np.zeros(8000, dtype=np.float32), 16000)
    counts = level_counts([torch.ones(10), torch.zeros(10)], ["a", "b"])
    assert counts["clipped"] == 1 and counts["silent"] == 1
    data = nw.audio(root)
    assert data.audio.levels["clipped"] == 1 and data.audio.levels["silent"] == 1
    model = nw.build_zoo("m5", (1, data.audio.num_samples), num_classes=2, channels=8)
    report = nw.doctor(model, data, loss="cross_entropy")
    by_code = {f.code: f for f in report}
    assert by_code["NW308"].severity == "warning" and "loud.wav" in by_code["NW308"].message
    assert by_code["NW309"].severity == "warning" and "quiet.wav" in by_code["NW309"].message
    assert "1 of 10 clips checked" in by_code["NW309"].message


def test_the_doctor_names_a_model_built_for_another_rate_or_length(tmp_path):
    root = _folder(tmp_path / "s", per_class=4)
    data = nw.audio(root)  # 16 kHz, 0.5 s: 8000 samples
    wrong_rate = nw.build_zoo("audio_cnn", (1, 8000), num_classes=2, sample_rate=8000,
                              channels=[8, 8])
    report = nw.doctor(wrong_rate, data, loss="cross_entropy")
    nw214 = next(f for f in report if f.code == "NW214")
    assert nw214.severity == "error" and "8000 Hz" in nw214.message and "16000 Hz" in nw214.message
    assert "data.sample_rate: 8000" in nw214.fix
    wrong_length = nw.build_zoo("audio_cnn", (1, 16000), num_classes=2, channels=[8, 8])
    with pytest.raises(nw.DoctorError, match=r"NW215") as info:
        nw.fit(wrong_length, data, loss="cross_entropy", epochs=1, verbose=0)
    assert "16000 samples" in str(info.value) and "8000 samples" in str(info.value)
    assert "data.duration: 1" in str(info.value)
    right = nw.build_zoo("audio_cnn", (1, 8000), num_classes=2, channels=[8, 8])
    assert not [f for f in nw.doctor(right, data, loss="cross_entropy") if f.code in ("NW214", "NW215")]


def test_sound_keys_are_refused_for_other_data_and_folders_are_told_apart(tmp_path):
    with pytest.raises(ConfigError, match=r"data.sample_rate: only for sounds"):
        prepare_data(DataConfig(source="iris", sample_rate=16000), "multiclass")
    root = _folder(tmp_path / "s", per_class=2)
    data = prepare_data(DataConfig(source=str(root), val=0, test=0), "multiclass")
    assert data.input_shape == (1, 8000) and data.audio["sample_rate"] == 16000
    with pytest.raises(ConfigError, match=r"data.image_size: not used for sounds"):
        prepare_data(DataConfig(source=str(root), image_size=8), "multiclass")
    with pytest.raises(ConfigError, match=r"regression loss"):
        prepare_data(DataConfig(source=str(root)), "regression")


def test_spoken_digits_is_made_once_and_split_by_voice():
    data = prepare_data(DataConfig(source="spoken_digits", sample_rate=16000, duration=0.8),
                        "multiclass")
    assert data.classes == ["eight", "five", "four", "nine", "one", "seven", "six", "three",
                            "two", "zero"]
    assert sum(data.sizes.values()) == 2400 and data.input_shape == (1, 12800)
    voices = {name: {data.split(name).audio.groups[i] for i in data.split(name).index}
              for name in ("train", "val", "test")}
    assert len(voices["train"] | voices["val"] | voices["test"]) == 120
    assert len(voices["test"]) == 24 and len(voices["val"]) == 12
    assert not voices["test"] & voices["train"] and not voices["val"] & voices["train"]
    assert "2400 file(s) (2400 at 22050 Hz) are resampled to 16000 Hz" in " ".join(data.notes)
    x, y = data.test[0]
    assert x.shape == (1, 12800) and 0.05 < float(x.abs().max()) <= 1.0  # real speech, not silence
    assert data.audio["levels"]["silent"] == 0 and data.audio["levels"]["clipped"] == 0


@pytest.mark.slow
def test_a_run_on_a_sound_folder_predicts_files_and_exports_the_spectrogram(tmp_path):
    from typer.testing import CliRunner

    from netwright.cli import app

    root = _folder(tmp_path / "sounds", per_class=16, mixed=True)
    result = nw.run({
        "name": "tones", "run_dir": str(tmp_path / "runs"),
        "model": {"zoo": "audio_cnn", "channels": [8, 16], "n_mels": 32},
        "data": {"source": str(root), "sample_rate": 16000, "duration": 0.5, "cache": "memory",
                 "val": 0.125, "test": 0.25, "augment": [{"gain": 3}]},
        "loss": "cross_entropy", "optimizer": {"name": "adam", "lr": 0.003},
        "train": {"epochs": 6, "batch_size": 8}, "metrics": ["accuracy"],
        "export": {"formats": ["onnx"]},
    }, verbose=0)
    assert result.scores["test"]["accuracy"] >= 0.875
    meta = json.loads((result.run_dir / "model.json").read_text())
    assert meta["audio"] == {"sample_rate": 16000, "duration": 0.5, "num_samples": 8000}
    assert meta["classes"] == ["high", "low"]
    assert meta["model"]["spec"]["sample_rate"] == 16000  # filled in from the data
    files = [root / "high" / "01.wav", root / "low" / "03.wav"]
    rows = nw.predict(result.run_dir, [str(f) for f in files])
    assert [r["path"] for r in rows] == [str(f) for f in files]
    assert list(rows[0]) == ["path", "label", "p_high", "p_low"]
    assert [r["label"] for r in rows] == ["high", "low"]
    # The CLI writes one row per file; --onnx runs the exported graph (spectrogram inside) on
    # waveforms and gives the same probabilities.
    runner = CliRunner()
    out = tmp_path / "predictions.csv"
    done = runner.invoke(app, ["predict", str(result.run_dir), str(root / "low"), "--out", str(out)])
    assert done.exit_code == 0, done.output
    table = list(csv.DictReader(out.open()))
    assert len(table) == 16 and {r["label"] for r in table} <= {"high", "low"}
    assert sum(r["label"] == "low" for r in table) >= 14
    onnx_out = tmp_path / "onnx.csv"
    done = runner.invoke(app, ["predict", str(result.run_dir), str(root / "low"), "--onnx",
                               "--out", str(onnx_out)])
    assert done.exit_code == 0, done.output
    onnx_table = list(csv.DictReader(onnx_out.open()))
    assert [r["path"] for r in onnx_table] == [r["path"] for r in table]
    for a, b in zip(table, onnx_table):
        assert abs(float(a["p_low"]) - float(b["p_low"])) < 1e-4
    # evaluate on a labelled folder with the run's classes
    done = runner.invoke(app, ["evaluate", str(result.run_dir), "--data", str(root)])
    assert done.exit_code == 0 and "32 samples" in done.output, done.output
