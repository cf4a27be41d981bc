"""Speech made on this machine by eSpeak NG, and the built-in ``spoken_digits`` data set.

:func:`synthesize` turns text into 16-bit mono audio with the eSpeak NG formant synthesizer.
:func:`generate_spoken_digits` makes a small, real audio classification data set from it: the
words "zero" to "nine", each said by every voice in :data:`VOICES` (eight English accents
crossed with fifteen voice variants: 120 voices) ``per_voice`` times, each time at a seeded
random speed (120-220 words a minute) and pitch (20-80 of 100): the speeds and pitches are
the same on every run, the samples differ very slightly (eSpeak's noise is not seeded). Each
clip is trimmed of leading and trailing silence and written as a 16-bit PCM WAV at eSpeak's
own 22,050 Hz (the data pipeline resamples later) to ``<folder>/<word>/<voice>_<k>.wav``;
``index.csv`` lists ``path, label, voice, rate, pitch, seconds``. The default set (two clips
per voice and word, 2,400 clips, 45 MB) takes a few seconds on two cores.

Splitting: a clip of a voice the model has heard is much easier than a new voice, so a test
split that shares voices with training measures memory, not recognition. Split by the
``voice`` column (a group split): the test voices must never be heard in training. Variants
are shared across accents (``en-us+f3`` and ``en-029+f3`` have the same voice settings), so a
stricter split holds out whole variants, or whole accents.

Licence: eSpeak NG is GPL-3.0-or-later. netwright does not ship it or link to it at build
time: the library and its voice data come from the separate ``espeakng-loader`` package (or
the system's ``espeak-ng`` program) and are loaded at run time only when speech is made.
The clips it makes are data, not a copy of the program.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import threading
import time
import wave
import zlib
from pathlib import Path

import numpy as np

from ..errors import ConfigError, DataError, did_you_mean

__all__ = ["synthesize", "generate_spoken_digits", "spoken_digits_folder", "espeak_version",
           "VOICES", "ACCENTS", "VARIANTS", "WORDS", "SAMPLE_RATE"]

WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# English accents in espeak-ng-data/lang/gmw (not en-shaw: the Shavian alphabet, same speech).
ACCENTS = ("en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-gb-x-gbclan",
           "en-gb-x-gbcwmd", "en-us-nyc")
# Voice variants in espeak-ng-data/voices/!v: the stock male and female ones, two Klatt
# synthesizer voices, a rough one and a whisper. Each was checked to make clear speech.
VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5",
            "klatt3", "croak", "whisper")
VOICES = tuple(f"{accent}+{variant}" for accent in ACCENTS for variant in VARIANTS)
SAMPLE_RATE = 22050  # eSpeak NG's output rate
RATE_RANGE = (120, 220)  # words per minute, both ends included
PITCH_RANGE = (20, 80)  # eSpeak's 0-100 pitch scale
FORMAT_VERSION = 1  # of the generated folder; a change regenerates cached copies
_MANIFEST = "manifest.json"
_KIND = "netwright-spoken-digits"
_INSTALL = ("Fix: pip install 'netwright[audio]' (or just espeakng-loader: the eSpeak NG "
            "library and its voice data), or install the espeak-ng program (apt-get install "
            "espeak-ng).")

_LOCK = threading.Lock()  # eSpeak NG is one global state per process
_BACKEND: _Library | _Program | None = None


def _new_lock_after_fork() -> None:
    # a forked child keeps the started engine (it runs no thread of its own) but must not
    # inherit a lock some other thread of the parent held at the fork
    global _LOCK
    _LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


# ---------------------------------------------------------------------------- the engines


class _Library:
    """libespeak-ng from espeakng-loader, driven through ctypes (under 1 ms a word)."""

    def __init__(self, library_path: str, data_path: str) -> None:
        import ctypes

        lib = ctypes.CDLL(library_path)
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Info.argtypes = [ctypes.c_void_p]
        lib.espeak_Info.restype = ctypes.c_char_p
        callback_type = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                         ctypes.c_void_p)
        lib.espeak_SetSynthCallback.argtypes = [callback_type]
        lib.espeak_SetSynthCallback.restype = None
        # AUDIO_OUTPUT_SYNCHRONOUS (2): samples come to the callback in this thread (no thread of
        # its own, so a forked worker process keeps a working copy); option
        # espeakINITIALIZE_DONT_EXIT (0x8000): a data error returns instead of exiting Python.
        rate = lib.espeak_Initialize(2, 0, data_path.encode(), 0x8000)
        if rate <= 0:
            raise DataError(f"eSpeak NG could not start with its data at {data_path} "
                            f"(espeak_Initialize returned {rate}). Fix: pip install --force-reinstall "
                            "espeakng-loader.")
        self.sample_rate = rate
        self.version = (lib.espeak_Info(None) or b"").decode(errors="replace")
        self.variants = frozenset(_variant_files(Path(data_path) / "voices" / "!v"))
        self.languages = _library_languages(lib, ctypes)
        self._chunks: list[np.ndarray] = []

        def collect(samples, count, _events):
            if count > 0 and samples:
                self._chunks.append(np.ctypeslib.as_array(samples, shape=(count,)).copy())
            return 0

        self._callback = callback_type(collect)  # kept alive as long as the library may call it
        lib.espeak_SetSynthCallback(self._callback)
        self._lib = lib

    def has_language(self, language: str) -> bool:
        return self._lib.espeak_SetVoiceByName(language.encode()) == 0

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        lib = self._lib
        if lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ConfigError(f"eSpeak NG refused the voice {voice!r}.")
        lib.espeak_SetParameter(1, rate, 0)  # espeakRATE, absolute
        lib.espeak_SetParameter(3, pitch, 0)  # espeakPITCH
        data = text.encode() + b"\0"
        self._chunks = []
        # position 0 of type POS_CHARACTER (1), no end, flags espeakCHARS_UTF8 (1)
        code = lib.espeak_Synth(data, len(data), 0, 1, 0, 1, None, None)
        lib.espeak_Synchronize()
        if code != 0:
            raise DataError(f"eSpeak NG could not say {text[:40]!r} with {voice!r} (error {code}).")
        chunks, self._chunks = self._chunks, []
        return np.concatenate(chunks).astype(np.int16) if chunks else np.zeros(0, np.int16)


def _library_languages(lib, ctypes) -> frozenset[str]:
    class Voice(ctypes.Structure):
        _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_char_p),
                    ("identifier", ctypes.c_char_p), ("gender", ctypes.c_ubyte),
                    ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte), ("xx1", ctypes.c_ubyte),
                    ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]

    lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(Voice))
    voices = lib.espeak_ListVoices(None)
    found, i = set(), 0
    while voices and voices[i]:
        languages = voices[i].contents.languages or b""  # priority byte, then the name
        found.add(languages[1:].decode(errors="replace").lower())
        i += 1
    return frozenset(found)


def _variant_files(folder: Path) -> list[str]:
    try:
        return sorted(p.name for p in folder.iterdir() if p.is_file())
    except OSError:
        return []


class _Program:
    """The espeak-ng program on PATH: one process per clip (slower, same voices)."""

    def __init__(self, program: str) -> None:
        self.program = program
        self.sample_rate = SAMPLE_RATE
        out = self._run(["--version"]).decode(errors="replace")
        found = re.search(r"text-to-speech:\s*(\S+)", out)
        self.version = found.group(1) if found else out.strip()[:40]
        # "--voices": Pty Language Age/Gender VoiceName File [Other Languages]
        rows = [line.split() for line in self._lines(["--voices"])]
        self.languages = frozenset(name.lower() for row in rows if len(row) > 4
                                   for name in (row[1], row[4].split("/")[-1]))
        # "--voices=variant": ... File as "!v/<name>", where a name may hold a space
        self.variants = frozenset(line.split("!v/", 1)[1].strip()
                                  for line in self._lines(["--voices=variant"]) if "!v/" in line)

    def _run(self, args: list[str], text: str | None = None) -> bytes:
        done = subprocess.run([self.program, *args], input=None if text is None else text.encode(),
                              capture_output=True, timeout=60, check=False)
        if done.returncode != 0:
            raise DataError(f"{self.program} {' '.join(args)} failed: "
                            f"{done.stderr.decode(errors='replace').strip()[:300]}")
        return done.stdout

    def _lines(self, args: list[str]) -> list[str]:
        return self._run(args).decode(errors="replace").splitlines()[1:]

    def has_language(self, language: str) -> bool:
        return language.lower() in self.languages

    def synth(self, text: str, voice: str, rate: int, pitch: int) -> np.ndarray:
        wav = self._run(["-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", "--stdin"], text)
        audio, self.sample_rate = read_wav_bytes(wav)
        return audio


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    """16-bit PCM samples and rate of a WAV file's bytes; also one written to a pipe, whose
    header gives no real sizes (as ``espeak-ng --stdout`` writes it).

    >>> buffer = io.BytesIO()
    >>> with wave.open(buffer, "wb") as w:
    ...     w.setnchannels(1); w.setsampwidth(2); w.setframerate(8000); w.writeframes(b"\\1\\0\\2\\0")
    >>> read_wav_bytes(buffer.getvalue())
    (array([1, 2], dtype=int16), 8000)
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise DataError(f"expected a WAV file, got {len(data)} bytes starting {data[:12]!r}.")
    at, rate, channels, bits = 12, 0, 1, 16
    while at + 8 <= len(data):
        kind, size = data[at:at + 4], struct.unpack("<I", data[at + 4:at + 8])[0]
        if kind == b"fmt ":
            _, channels, rate, _, _, bits = struct.unpack("<HHIIHH", data[at + 8:at + 24])
        elif kind == b"data":
            body = data[at + 8:at + 8 + size]  # a streaming header's size runs past the end
            if bits != 16:
                raise DataError(f"expected 16-bit PCM audio, got {bits}-bit.")
            audio = np.frombuffer(body[: len(body) // 2 * 2], "<i2").astype(np.int16)
            return (audio.reshape(-1, channels)[:, 0].copy() if channels > 1 else audio), rate
        at += 8 + size + (size & 1)
    raise DataError("the WAV data has no 'data' chunk.")


def _backend() -> _Library | _Program:
    """This process's engine, started once (call with ``_LOCK`` held)."""
    global _BACKEND
    if _BACKEND is not None:
        return _BACKEND
    try:
        import espeakng_loader
    except ImportError:
        program = shutil.which("espeak-ng")
        if program is None:
            raise ConfigError("Speech synthesis needs eSpeak NG, and neither the Python package "
                              "espeakng-loader nor an espeak-ng program on PATH was found. "
                              + _INSTALL) from None
        _BACKEND = _Program(program)
    else:
        _BACKEND = _Library(espeakng_loader.get_library_path(), espeakng_loader.get_data_path())
    return _BACKEND


def espeak_version() -> str:
    """The version of the eSpeak NG in use, e.g. ``'1.52.0'``."""
    with _LOCK:
        return _backend().version


def _check_voice(engine, voice: str) -> None:
    if not isinstance(voice, str) or not voice.strip():
        raise ConfigError(f"voice must be an eSpeak NG voice name like 'en-us+f3', got {voice!r}.")
    language, _, variant = voice.partition("+")
    problem = ""
    if not engine.has_language(language):
        problem = f"eSpeak NG has no language {language!r}.{did_you_mean(language, engine.languages)}"
    elif variant and variant not in engine.variants:
        problem = f"eSpeak NG has no voice variant {variant!r}.{did_you_mean(variant, engine.variants)}"
    if problem:
        examples = ", ".join(repr(v) for v in ("en", "en-us", "en-gb-scotland+m3", "en-029+croak"))
        languages = [a for a in ACCENTS if a in engine.languages] or sorted(engine.languages)[:8]
        variants = [v for v in VARIANTS if v in engine.variants] or sorted(engine.variants)[:12]
        raise ConfigError(f"unknown voice {voice!r}: {problem} A voice is a language, optionally "
                          f"'+' a variant, e.g. {examples}. Languages include "
                          f"{', '.join(languages)} ({len(engine.languages)} in all); variants "
                          f"include {', '.join(variants)} ({len(engine.variants)} in all).")


def synthesize(text: str, voice: str = "en", rate: int = 160, pitch: int = 50) -> tuple[np.ndarray, int]:
    """Say ``text`` with eSpeak NG: ``(int16 mono samples, sample rate)`` (22,050 Hz).

    ``voice`` is ``<language>[+<variant>]`` as eSpeak takes it (``"en-us+f3"``); ``rate`` is
    words a minute (80-450), ``pitch`` 0-100. An unknown voice is a ``ValueError`` naming it.
    The samples differ slightly from call to call (eSpeak's noise sources are not seeded).
    """
    if not isinstance(text, str):
        raise ConfigError(f"text must be a str, got {type(text).__name__}.")
    for name, value, low, high in (("rate", rate, 80, 450), ("pitch", pitch, 0, 100)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
            raise ConfigError(f"{name} must be a whole number from {low} to {high}, got {value!r}.")
    with _LOCK:
        engine = _backend()
        _check_voice(engine, voice)
        audio = engine.synth(text, voice, int(rate), int(pitch))
        return audio, engine.sample_rate


def trim_silence(audio: np.ndarray, sample_rate: int, threshold: float = 0.02,
                 margin: float = 0.01) -> np.ndarray:
    """``audio`` without its quiet start and end: everything before the first and after the
    last sample louder than ``threshold`` of the peak, keeping ``margin`` seconds either side.

    >>> trim_silence(np.array([0, 1, 0, 900, -1000, 3, 0, 0], np.int16), 100, margin=0.0)
    array([  900, -1000], dtype=int16)
    """
    size = np.abs(audio.astype(np.int32))
    loud = np.flatnonzero(size > threshold * max(int(size.max(initial=0)), 1))
    if not loud.size:
        return audio[:0]
    keep = int(margin * sample_rate)
    return audio[max(loud[0] - keep, 0): loud[-1] + 1 + keep]


# ---------------------------------------------------------------------------- the data set


def _file_stem(voice: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "_", voice)  # "en-us+f3" -> "en-us_f3"


def _clip_plan(voices: tuple[str, ...], per_voice: int, seed: int) -> list[tuple]:
    """(path, word, voice, rate, pitch) of every clip. A clip's rate and pitch depend only on
    (seed, voice, word, k): a set made with fewer voices has the same clips of those voices."""
    plan = []
    for voice in voices:
        for w, word in enumerate(WORDS):
            for k in range(per_voice):
                rng = np.random.default_rng([seed, zlib.crc32(voice.encode()), w, k])
                rate = int(rng.integers(RATE_RANGE[0], RATE_RANGE[1] + 1))
                pitch = int(rng.integers(PITCH_RANGE[0], PITCH_RANGE[1] + 1))
                plan.append((f"{word}/{_file_stem(voice)}_{k}.wav", word, voice, rate, pitch))
    return plan


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(audio.astype("<i2").tobytes())


def _make_clips(folder: str, clips: list[tuple]) -> list[tuple]:
    """Say, trim and write ``clips`` under ``folder``: their index rows (also in a worker)."""
    rows = []
    for path, word, voice, rate, pitch in clips:
        audio, sample_rate = synthesize(word, voice, rate, pitch)
        audio = trim_silence(audio, sample_rate)
        if not audio.size:
            raise DataError(f"eSpeak NG said nothing for {word!r} with the voice {voice!r}.")
        (Path(folder) / path).parent.mkdir(exist_ok=True)
        _write_wav(Path(folder) / path, audio, sample_rate)
        rows.append((path, word, voice, rate, pitch, round(audio.size / sample_rate, 4)))
    return rows


def _start_worker() -> None:
    with _LOCK:
        _backend()


class _Progress:
    """A rich progress bar on a terminal, else a line on stderr at every quarter."""

    def __init__(self, total: int, enabled: bool, title: str) -> None:
        self.total, self.done, self.enabled, self.title, self.bar = total, 0, enabled, title, None
        self.started = time.perf_counter()
        if enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

            self.bar = Progress("[progress.description]{task.description}", BarColumn(),
                                MofNCompleteColumn(), TimeRemainingColumn(),
                                console=Console(stderr=True))
            self.task = self.bar.add_task(title, total=total)
            self.bar.start()
        elif enabled:
            print(f"{title}: 0/{total} clips", file=sys.stderr, flush=True)

    def advance(self, count: int) -> None:
        before, self.done = self.done, self.done + count
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        elif self.enabled and self.done * 4 // self.total > before * 4 // self.total:
            print(f"{self.title}: {self.done}/{self.total} clips "
                  f"({100 * self.done // self.total}%, {time.perf_counter() - self.started:.1f} s)",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _make_all(folder: Path, plan: list[tuple], progress: bool, workers: int | None = None) -> list[tuple]:
    workers = workers or (min(2, os.cpu_count() or 1) if len(plan) > 200 else 1)
    bar = _Progress(len(plan), progress, "spoken_digits (eSpeak NG)")
    rows: list[tuple] = []
    size = max(10, len(plan) // (workers * 16))
    chunks = [plan[i:i + size] for i in range(0, len(plan), size)]
    try:
        if workers > 1:
            chunks = _make_in_pool(folder, chunks, workers, rows, bar)
        for chunk in chunks:  # all of them in this process, or the pool's leftovers
            rows += _make_clips(str(folder), chunk)
            bar.advance(len(chunk))
    finally:
        bar.close()
    return rows


def _make_in_pool(folder: Path, chunks: list[list[tuple]], workers: int, rows: list[tuple],
                  bar: _Progress) -> list[list[tuple]]:
    """Make ``chunks`` in worker processes; the chunks left to make here if the pool broke."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # fork (Linux, one thread) starts at once and needs no importable __main__; else spawn
    method = "fork" if sys.platform == "linux" and threading.active_count() == 1 else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method),
                               initializer=_start_worker)
    left = {id(chunk): chunk for chunk in chunks}
    try:
        futures = {pool.submit(_make_clips, str(folder), chunk): chunk for chunk in chunks}
        for future in as_completed(futures):
            made = future.result()
            rows += made
            del left[id(futures[future])]
            bar.advance(len(made))
    except BrokenProcessPool as exc:
        print(f"spoken_digits: worker processes failed ({exc}); making the rest here.",
              file=sys.stderr)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return list(left.values())


def _read_manifest(folder: Path) -> dict | None:
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) and manifest.get("kind") == _KIND else None


def _is_complete(folder: Path, params: dict) -> bool:
    manifest = _read_manifest(folder)
    if manifest is None or any(manifest.get(key) != value for key, value in params.items()):
        return False
    try:
        return hashlib.sha256((folder / "index.csv").read_bytes()).hexdigest() == manifest.get("index_sha256")
    except OSError:
        return False


class _FolderLock:
    """An exclusive lock on the parent folder while a set is made (two processes asking for
    the same set at once make it once); nothing where the OS has no flock."""

    def __init__(self, parent: Path) -> None:
        self.parent, self.fd = parent, None

    def __enter__(self) -> _FolderLock:
        try:
            import fcntl

            self.fd = os.open(self.parent, os.O_RDONLY)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except (ImportError, OSError):
            pass
        return self

    def __exit__(self, *_exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock


def _check_arguments(voices, per_voice, seed) -> tuple[str, ...]:
    voices = VOICES if voices is None else voices
    if isinstance(voices, str) or not all(isinstance(v, str) for v in voices):
        raise ConfigError(f"voices must be a list of eSpeak NG voice names, got {voices!r}.")
    voices = tuple(voices)
    if not voices or len(set(voices)) != len(voices):
        raise ConfigError(f"voices must be a non-empty list without repeats, got {list(voices)!r}.")
    stems = [_file_stem(v) for v in voices]
    if len(set(stems)) != len(stems):
        raise ConfigError(f"voices {list(voices)!r} give the same file names ({stems}); drop one.")
    for name, value in (("per_voice", per_voice), ("seed", seed)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (name == "per_voice"):
            raise ConfigError(f"{name} must be a whole number of at least {int(name == 'per_voice')}, "
                              f"got {value!r}.")
    return voices


def generate_spoken_digits(folder: str | os.PathLike, *, voices=None, per_voice: int = 2,
                           seed: int = 0, progress: bool = True) -> Path:
    """Make the spoken digits data set in ``folder`` (see the module's text) and return it.

    A folder this function already made with the same arguments is returned as it is; one it
    made with other arguments is made again; any other non-empty folder is left alone (a
    ``ConfigError``). The set is made in ``.<name>.partial`` beside ``folder`` and renamed
    into place when complete, so a stopped run never leaves a set that looks finished.
    """
    folder = Path(folder).expanduser().absolute()
    voices = _check_arguments(voices, per_voice, seed)
    params = {"kind": _KIND, "version": FORMAT_VERSION, "words": list(WORDS), "voices": list(voices),
              "per_voice": per_voice, "seed": seed, "rate_range": list(RATE_RANGE),
              "pitch_range": list(PITCH_RANGE)}
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _FolderLock(folder.parent):
        if _is_complete(folder, params):
            return folder
        if folder.exists() and (not folder.is_dir() or
                                (any(folder.iterdir()) and _read_manifest(folder) is None)):
            raise ConfigError(f"{folder} exists and is not a spoken_digits set netwright made (it "
                              f"has no {_MANIFEST} of one), so it is left as it is. Fix: pass "
                              "another folder, or empty this one.")
        with _LOCK:
            engine = _backend()
            for voice in voices:
                _check_voice(engine, voice)
            version, sample_rate = engine.version, engine.sample_rate
        partial = folder.parent / f".{folder.name}.partial"
        old = folder.parent / f".{folder.name}.old"
        for leftover in (partial, old):  # from a run that was stopped
            if leftover.exists():
                shutil.rmtree(leftover)
        partial.mkdir()
        started = time.perf_counter()
        try:
            rows = sorted(_make_all(partial, _clip_plan(voices, per_voice, seed), progress))
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)  # a killed process leaves it to the next run
            raise
        text = io.StringIO(newline="")
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(["path", "label", "voice", "rate", "pitch", "seconds"])
        writer.writerows(rows)
        index = text.getvalue().encode()
        (partial / "index.csv").write_bytes(index)
        (partial / "README.txt").write_text(_readme(len(rows), voices, per_voice, seed, version,
                                                    sample_rate), encoding="utf-8")
        manifest = {**params, "clips": len(rows), "index_sha256": hashlib.sha256(index).hexdigest(),
                    "espeak_ng": version, "sample_rate": sample_rate,
                    "seconds_to_make": round(time.perf_counter() - started, 1)}
        (partial / _MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if hasattr(os, "sync"):
            os.sync()  # the clips are on disk before the set is renamed into place
        if folder.exists():
            os.rename(folder, old)
        os.rename(partial, folder)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def _readme(clips: int, voices: tuple[str, ...], per_voice: int, seed: int, version: str,
            sample_rate: int) -> str:
    return f"""spoken_digits: the words zero to nine said by a speech synthesizer

Made by netwright (netwright.data.speech.generate_spoken_digits) with eSpeak NG {version or "(version unknown)"}.
{clips} clips: {len(voices)} voices x {len(WORDS)} words x {per_voice} per voice, each at a random
speed of {RATE_RANGE[0]}-{RATE_RANGE[1]} words a minute and pitch {PITCH_RANGE[0]}-{PITCH_RANGE[1]} (of 100), seed {seed}.
Silence is trimmed from both ends; 16-bit PCM mono WAV at {sample_rate} Hz.

Files: <word>/<voice>_<k>.wav, with '+' in the voice name written as '_'.
index.csv: path (relative to this folder), label (the word), voice, rate, pitch, seconds.
manifest.json: the arguments it was made with; netwright reuses this folder while they match.

Split by voice: a test split must hold voices never heard in training.
The voices are eSpeak NG's (GPL-3.0-or-later), loaded at run time from the espeakng-loader
package or the espeak-ng program; netwright does not ship them.
"""


def spoken_digits_folder(cache_dir: str | os.PathLike | None = None) -> Path:
    """The default spoken digits set, made on first use (with a progress bar) in
    ``<cache>/spoken_digits``; the cache is ``cache_dir``, else ``$NETWRIGHT_CACHE``, else
    ``$XDG_CACHE_HOME/netwright``, else ``~/.cache/netwright``."""
    if cache_dir is None:
        cache_dir = os.environ.get("NETWRIGHT_CACHE") or Path(
            os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "netwright"
    return generate_spoken_digits(Path(cache_dir) / "spoken_digits", progress=True)
