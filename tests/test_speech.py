"""eSpeak NG speech and the spoken_digits data set made from it (netwright.data.speech)."""

from __future__ import annotations

import csv
import os
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")
from netwright.data import speech  # noqa: E402
from netwright.errors import ConfigError  # noqa: E402


def _spectrum(audio: np.ndarray) -> np.ndarray:
    """Average magnitude spectrum in 64 bands, normalised to sum 1."""
    frames = audio[: len(audio) // 512 * 512].astype(float).reshape(-1, 512)
    power = np.abs(np.fft.rfft(frames * np.hanning(512), axis=1)).mean(axis=0)[:256]
    bands = power.reshape(64, 4).sum(axis=1)
    return bands / bands.sum()


def test_synthesize_gives_speech_whose_length_follows_the_rate():
    slow, rate = speech.synthesize("seven", "en-us+f3", rate=100)
    fast, _ = speech.synthesize("seven", "en-us+f3", rate=300)
    assert rate == speech.SAMPLE_RATE == 22050
    assert slow.dtype == np.int16 and slow.ndim == 1
    assert np.abs(slow.astype(int)).max() > 3000  # not silence
    assert len(slow) > 1.5 * len(fast)


def test_different_voices_sound_different():
    """Two takes of one voice differ a little (eSpeak's noise); two voices differ much more."""
    one, _ = speech.synthesize("three four five", "en-us+m3")
    again, _ = speech.synthesize("three four five", "en-us+m3")
    other, _ = speech.synthesize("three four five", "en-us+f4")
    same = np.abs(_spectrum(one) - _spectrum(again)).sum()
    different = np.abs(_spectrum(one) - _spectrum(other)).sum()
    assert different > 3 * same
    high, _ = speech.synthesize("three", "en-us+m3", pitch=90)
    low, _ = speech.synthesize("three", "en-us+m3", pitch=10)
    assert not np.array_equal(high[:4000], low[:4000])


@pytest.mark.parametrize(("voice", "named"), [("xx-nothing", "'xx-nothing'"), ("en-uss", "en-us"),
                                              ("en+nosuch", "'nosuch'")])
def test_an_unknown_voice_is_named_with_valid_ones(voice, named):
    with pytest.raises(ValueError) as info:
        speech.synthesize("one", voice)
    message = str(info.value)
    assert isinstance(info.value, ConfigError)
    assert voice in message and named in message and "en-us" in message and "m1" in message


def test_rate_and_pitch_are_checked():
    with pytest.raises(ConfigError, match="rate"):
        speech.synthesize("one", rate=10)
    with pytest.raises(ConfigError, match="pitch"):
        speech.synthesize("one", pitch=101)


def test_every_voice_of_the_data_set_speaks():
    assert 100 <= len(speech.VOICES) <= 130 and len(set(speech.VOICES)) == len(speech.VOICES)
    for voice in speech.VOICES:  # about 1 ms each
        audio, _ = speech.synthesize("four", voice)
        assert np.abs(audio.astype(int)).max() > 2000, voice
        assert 0.2 < len(speech.trim_silence(audio, 22050)) / 22050 < 1.0, voice


VOICES = ["en-us+f3", "en-gb-scotland+m2", "en-029+croak"]


def _rows(folder: Path) -> list[dict]:
    with open(folder / "index.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_generate_writes_a_complete_indexed_set(tmp_path):
    sf = pytest.importorskip("soundfile")
    folder = speech.generate_spoken_digits(tmp_path / "digits", voices=VOICES, per_voice=1,
                                           progress=False)
    assert folder == tmp_path / "digits"
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(speech.WORDS)
    rows = _rows(folder)
    assert len(rows) == 30 and list(rows[0]) == ["path", "label", "voice", "rate", "pitch", "seconds"]
    assert {r["path"] for r in rows} == {p.relative_to(folder).as_posix() for p in folder.rglob("*.wav")}
    assert {r["voice"] for r in rows} == set(VOICES)
    for row in rows:
        audio, rate = sf.read(folder / row["path"], dtype="int16")
        assert rate == 22050 and audio.ndim == 1
        assert row["path"].startswith(row["label"] + "/")
        assert abs(len(audio) / rate - float(row["seconds"])) < 1e-3
        assert 120 <= int(row["rate"]) <= 220 and 20 <= int(row["pitch"]) <= 80
        assert np.abs(audio[:50].astype(int)).max() < np.abs(audio.astype(int)).max()  # trimmed
    assert "en-us_f3_0.wav" in {p.name for p in (folder / "seven").iterdir()}
    assert "eSpeak NG" in (folder / "README.txt").read_text()
    assert not list(tmp_path.glob(".*"))  # no .partial or .old left


def test_rerun_reuses_and_changed_arguments_regenerate(tmp_path):
    folder = speech.generate_spoken_digits(tmp_path / "d", voices=VOICES[:2], per_voice=1,
                                           progress=False)
    clip = folder / "five" / "en-us_f3_0.wav"
    stamp = clip.stat().st_mtime_ns
    speech.generate_spoken_digits(tmp_path / "d", voices=VOICES[:2], per_voice=1, progress=False)
    assert clip.stat().st_mtime_ns == stamp
    speech.generate_spoken_digits(tmp_path / "d", voices=VOICES[:2], per_voice=2, progress=False)
    assert len(_rows(folder)) == 40 and (folder / "five" / "en-us_f3_1.wav").exists()
    # the seeded speeds and pitches of a clip do not depend on the other clips
    first = {r["path"]: (r["rate"], r["pitch"]) for r in _rows(folder)}
    assert first["five/en-us_f3_0.wav"] == (str(speech._clip_plan(("en-us+f3",), 1, 0)[5][3]),
                                            str(speech._clip_plan(("en-us+f3",), 1, 0)[5][4]))
    # a damaged index is not reused
    (folder / "index.csv").write_text("path,label\n")
    speech.generate_spoken_digits(tmp_path / "d", voices=VOICES[:2], per_voice=2, progress=False)
    assert len(_rows(folder)) == 40


def test_a_foreign_folder_is_refused_and_untouched(tmp_path):
    mine = tmp_path / "data"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match=str(mine)):
        speech.generate_spoken_digits(mine, voices=VOICES[:1], per_voice=1, progress=False)
    assert [p.name for p in mine.iterdir()] == ["notes.txt"]
    assert (mine / "notes.txt").read_text() == "keep me"
    assert not list(tmp_path.glob(".data.*"))


def test_a_leftover_partial_folder_is_cleaned(tmp_path):
    leftover = tmp_path / ".d.partial"
    (leftover / "zero").mkdir(parents=True)
    (leftover / "zero" / "half.wav").write_bytes(b"RIFF")
    folder = speech.generate_spoken_digits(tmp_path / "d", voices=VOICES[:1], per_voice=1,
                                           progress=False)
    assert not leftover.exists() and not (folder / "zero" / "half.wav").exists()
    assert len(_rows(folder)) == 10


def test_a_stopped_run_leaves_no_finished_looking_set(tmp_path, monkeypatch):
    def fail(*_args):
        raise KeyboardInterrupt

    monkeypatch.setattr(speech, "_write_wav", fail)
    with pytest.raises(KeyboardInterrupt):
        speech.generate_spoken_digits(tmp_path / "d", voices=VOICES[:1], per_voice=1, progress=False)
    assert not (tmp_path / "d").exists() and not (tmp_path / ".d.partial").exists()


def test_progress_lines_go_to_stderr(tmp_path, capsys):
    speech.generate_spoken_digits(tmp_path / "d", voices=VOICES[:1], per_voice=1, progress=True)
    err = capsys.readouterr().err
    assert "10/10 clips (100%" in err and len(err.splitlines()) <= 6


def test_the_default_folder_respects_the_cache_variables(tmp_path, monkeypatch):
    made = []
    monkeypatch.setattr(speech, "generate_spoken_digits", lambda folder, **kw: made.append(folder) or folder)
    monkeypatch.delenv("NETWRIGHT_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert speech.spoken_digits_folder() == tmp_path / "xdg" / "netwright" / "spoken_digits"
    monkeypatch.setenv("NETWRIGHT_CACHE", str(tmp_path / "nw"))
    assert speech.spoken_digits_folder() == tmp_path / "nw" / "spoken_digits"
    assert speech.spoken_digits_folder(tmp_path / "c") == tmp_path / "c" / "spoken_digits"


def test_without_any_synthesizer_the_error_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)  # import fails
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(speech, "_BACKEND", None)
    with pytest.raises(ConfigError) as info:
        speech.synthesize("one")
    assert "pip install 'netwright[audio]'" in str(info.value) and "espeakng-loader" in str(info.value)
    assert "apt-get install espeak-ng" in str(info.value)


def test_the_espeak_ng_program_is_used_without_the_package(tmp_path, monkeypatch):
    """A stand-in for the espeak-ng program (answering as the real one does, with a WAV header
    written for a pipe) is found on PATH when espeakng-loader cannot be imported."""
    program = tmp_path / "espeak-ng"
    program.write_text(textwrap.dedent(f"""\
        #!{sys.executable}
        import struct, sys
        args = sys.argv[1:]
        if args == ["--version"]:
            print("eSpeak NG text-to-speech: 1.51  Data at: /usr/share/espeak-ng-data")
        elif args == ["--voices"]:
            print("Pty Language       Age/Gender VoiceName          File                 Other Languages")
            print(" 2  en-gb           --/M      English_(Great_Britain) gmw/en             (en 2)")
            print(" 5  en-us           --/M      English_(America)  gmw/en-US            (en 3)")
        elif args == ["--voices=variant"]:
            print("Pty Language       Age/Gender VoiceName          File                 Other Languages")
            print(" 0  variant         --/M      Mr serious         !v/Mr serious")
            print(" 0  variant         --/F      f3                 !v/f3")
        else:
            sys.path[:0] = {[p for p in sys.path if p]!r}
            from netwright.data import speech
            voice, rate, pitch = args[1], int(args[3]), int(args[5])
            audio, sr = speech.synthesize(sys.stdin.read(), voice, rate, pitch)
            head = b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVEfmt " + struct.pack(
                "<IHHIIHH", 16, 1, 1, sr, 2 * sr, 2, 16) + b"data" + struct.pack("<I", 0x7FFFFFFF)
            sys.stdout.buffer.write(head + audio.tobytes())
        """))
    program.chmod(0o755)
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    monkeypatch.setenv("PATH", str(tmp_path) + os.pathsep + os.environ.get("PATH", ""))
    monkeypatch.setattr(speech, "_BACKEND", None)
    audio, rate = speech.synthesize("seven", "en-us+f3", rate=150)
    assert rate == 22050 and audio.dtype == np.int16 and np.abs(audio.astype(int)).max() > 3000
    assert speech.espeak_version() == "1.51"
    speech.synthesize("one", "en+Mr serious")
    with pytest.raises(ConfigError, match="'de'"):
        speech.synthesize("eins", "de")
    with pytest.raises(ConfigError, match="'m9'"):
        speech.synthesize("one", "en+m9")


def test_worker_processes_make_the_same_clips(tmp_path):
    plan = speech._clip_plan(tuple(VOICES), 1, 0)
    rows = speech._make_all(tmp_path, plan, progress=False, workers=2)
    assert sorted(r[0] for r in rows) == sorted(p[0] for p in plan)
    assert len(list(tmp_path.rglob("*.wav"))) == 30
