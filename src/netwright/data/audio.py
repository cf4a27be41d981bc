"""Sound files as training data: a folder of class sub-folders, or a table of paths and labels.

Every file's header is read before training starts (``soundfile.info``: its format, length,
sample rate and channels), so a corrupt, empty or unknown file is named here, never later
inside a worker process. Clips are decoded by ``soundfile`` (libsndfile: WAV, FLAC, OGG/Vorbis,
Opus, MP3, AIFF), mixed down to mono, resampled to ``data.sample_rate`` with ``soxr`` (the
SoX resampler, "high quality"), and cut or padded to ``data.duration``: a random crop in
training, the centre in evaluation and prediction; a short clip sits in the middle of silence.
The model gets float32 waveforms ``(1, samples)`` in [-1, 1]; the features (log-mel, MFCC)
are layers of the model (:mod:`netwright.models.audio`), computed on whole batches on the
model's device and exported with it. ``cache="memory"`` keeps the decoded, resampled clips.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import ConfigError, DataError
from .files import FileKind
from .images import encode_labels, scan_folder, scan_table

__all__ = ["AUDIO_SUFFIXES", "SOUNDS", "AudioList", "AudioFiles", "list_audio", "check_audio",
           "decode", "fit_length", "audio", "prepare_audio", "is_audio_source", "level_counts",
           "audio_files_in", "group_split", "resolve_source", "decode_all", "conversion_notes"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff")
SOUNDS = FileKind("sound", AUDIO_SUFFIXES, "data.audio", "root/yes/1.wav, root/no/2.flac")
DEFAULT_RATE = 16_000
# A clip is "clipped" when at least this share of its samples sit at full scale, "silent" when
# its loudest sample is below -60 dBFS. Measured on every cached clip, else on a seeded sample.
CLIP_LEVEL, CLIP_SHARE, SILENCE_PEAK = 0.999, 0.001, 10 ** (-60 / 20)
LEVEL_SAMPLE = 400


@dataclass
class AudioList:
    """Checked sound files: paths, class ids, class names, the clip length the model takes, and
    what the check found."""

    paths: list[Path]
    labels: np.ndarray  # int64 class ids (index into classes)
    classes: list
    sample_rate: int
    num_samples: int  # every clip is cut or padded to this many samples
    rates: list[int] = field(default_factory=list)  # each file's own sample rate
    groups: list | None = None  # data.group: e.g. the speaker of each clip
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)
    notes: list[str] = field(default_factory=list)  # stated conversions, for the run's log
    levels: dict = field(default_factory=dict)  # {"checked", "clipped", "silent", examples}

    @property
    def duration(self) -> float:
        return self.num_samples / self.sample_rate


def audio_files_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)


def _sf() -> Any:
    try:
        import soundfile
    except (ImportError, OSError) as exc:  # OSError: the libsndfile library itself is missing
        raise ConfigError(f"audio: reading sound files needs soundfile ({exc}). Fix: pip install "
                          f"'netwright[audio]'.") from None
    return soundfile


def _info(path: Path) -> tuple[int, int, int] | str:
    """(frames, sample rate, channels) of a readable sound file, or why it is not one."""
    sf = _sf()
    try:
        if path.stat().st_size == 0:
            return "the file is empty (zero bytes)"
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:  # noqa: B014
        try:
            with open(path, "rb") as fh:
                head = fh.read(12)
        except OSError as unreadable:  # no permission, a folder named .wav ...
            return f"the file cannot be read ({type(unreadable).__name__}: {unreadable})"
        return f"not a sound file soundfile can read (it starts with {head!r}: {exc})"
    if info.frames <= 0:
        return "the file holds no samples (zero length)"
    return int(info.frames), int(info.samplerate), int(info.channels)


def check_audio(paths: Sequence[Path], *, skip_bad: bool) -> tuple[list[int], list[tuple[int, int, int]], list[tuple[str, str]]]:
    """Read every file's header; (kept indices, their (frames, rate, channels), skipped
    (file, reason))."""
    kept, infos, skipped = [], [], []
    for i, p in enumerate(paths):
        found = _info(Path(p))
        if isinstance(found, str):
            if not skip_bad:
                raise DataError(
                    f"sound file {str(p)!r}: {found}. Fix: replace or delete the file, or set "
                    f"data.skip_bad: true to leave unreadable files out (they are counted and "
                    f"listed in the run's log).")
            skipped.append((str(p), found))
            continue
        kept.append(i)
        infos.append(found)
    return kept, infos, skipped


def decode(path: Path, sample_rate: int) -> np.ndarray:
    """One whole clip as float32 mono at ``sample_rate`` (channels averaged, soxr-resampled)."""
    sf = _sf()
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError) as exc:  # noqa: B014
        raise DataError(f"sound file {str(path)!r} cannot be decoded: {exc}. Fix: replace or "
                        f"delete it, or set data.skip_bad: true.") from None
    x = data.mean(axis=1) if data.shape[1] > 1 else data[:, 0]
    if rate != sample_rate and len(x):
        import soxr

        x = soxr.resample(x, rate, sample_rate, quality="HQ")
    return np.ascontiguousarray(x, dtype=np.float32)


def fit_length(x: Any, length: int, start: int | None = None) -> Any:
    """``x`` (..., L) (a tensor or a NumPy array) cut or padded to ``length``: a longer clip is cropped at ``start`` (the centre
    when None), a shorter one is centred in zeros.

    >>> fit_length(torch.arange(1., 6.), 3).tolist(), fit_length(torch.ones(2), 4).tolist()
    ([2.0, 3.0, 4.0], [0.0, 1.0, 1.0, 0.0])
    """
    n = x.shape[-1]
    if n > length:
        start = (n - length) // 2 if start is None else start
        return x[..., start:start + length]
    if n < length:
        left = (length - n) // 2
        if isinstance(x, np.ndarray):
            return np.pad(x, [(0, 0)] * (x.ndim - 1) + [(left, length - n - left)])
        return torch.nn.functional.pad(x, (left, length - n - left))
    return x


class AudioFiles(Dataset):
    """``(waveform, class id)`` pairs: float32 ``(1, num_samples)``. ``train=True`` crops long
    clips at random and applies ``augment``; otherwise the centre is taken and nothing random
    happens. ``cache`` holds the decoded, resampled clips (rows follow ``audio.paths``)."""

    def __init__(self, audio: AudioList, index: np.ndarray | None = None, *, train: bool = False,
                 augment: Callable | None = None, cache: list[torch.Tensor] | None = None,
                 binary: bool = False):
        self.audio = audio
        self.index = np.arange(len(audio.paths)) if index is None else np.asarray(index)
        self.train, self.augment, self.cache, self.binary = train, augment, cache, binary
        labels = torch.from_numpy(audio.labels[self.index].copy())
        self.targets = labels.float()[:, None] if binary else labels

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    def __len__(self) -> int:
        return len(self.index)

    def clip(self, i: int) -> torch.Tensor:
        """Clip ``i`` decoded and resampled, its whole length, before cropping."""
        j = int(self.index[i])
        if self.cache is not None:
            return self.cache[j]
        return torch.from_numpy(decode(self.audio.paths[j], self.audio.sample_rate))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.clip(i)
        length = self.audio.num_samples
        start = None
        if self.train and x.shape[0] > length:
            start = int(torch.randint(0, x.shape[0] - length + 1, ()))
        x = fit_length(x, length, start)[None]
        if self.augment is not None and self.train:
            x = self.augment(x.clone())
        return x, self.targets[i]

    def subset(self, positions: np.ndarray, *, train: bool = False,
               augment: Callable | None = None) -> AudioFiles:
        return AudioFiles(self.audio, self.index[positions], train=train, augment=augment,
                          cache=self.cache, binary=self.binary)

    def path(self, i: int) -> Path:
        return self.audio.paths[int(self.index[i])]


class _Clips(Dataset):
    def __init__(self, audio: AudioList):
        self.audio = audio

    def __len__(self) -> int:
        return len(self.audio.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.from_numpy(decode(self.audio.paths[i], self.audio.sample_rate))


def decode_all(audio: AudioList, num_workers: int = 0) -> list[torch.Tensor]:
    """Every clip decoded and resampled once (whole lengths), by ``num_workers`` processes."""
    from torch.utils.data import DataLoader

    loader = DataLoader(_Clips(audio), batch_size=None, num_workers=num_workers)
    # A clip from a worker lives in shared memory with a file descriptor of its own: a copy
    # lets it go, or 2,400 cached clips would exhaust the process's descriptors.
    return [clip.clone() if num_workers else clip for clip in loader]


def level_counts(clips: Sequence[torch.Tensor], names: Sequence[str]) -> dict:
    """How many of ``clips`` are clipped (≥ 0.1 % of samples at full scale) or silent (peak
    below -60 dBFS), with the first few files of each.

    >>> level_counts([torch.ones(100), torch.zeros(100), torch.full((100,), 0.5)], "abc")
    {'checked': 3, 'clipped': 1, 'silent': 1, 'clipped_files': ['a'], 'silent_files': ['b']}
    """
    clipped, silent = [], []
    for clip, name in zip(clips, names):
        a = clip.abs()
        peak = float(a.max()) if a.numel() else 0.0
        if peak < SILENCE_PEAK:
            silent.append(str(name))
        elif float((a >= CLIP_LEVEL).float().mean()) >= CLIP_SHARE:
            clipped.append(str(name))
    return {"checked": len(names), "clipped": len(clipped), "silent": len(silent),
            "clipped_files": clipped[:5], "silent_files": silent[:5]}


def conversion_notes(infos: Sequence[tuple[int, int, int]], sample_rate: int,
                     num_samples: int) -> list[str]:
    """What reading files of ``infos`` ((frames, rate, channels) each) at ``sample_rate``, cut
    to ``num_samples``, does to them, in words: resampled, mixed down, padded, cropped.

    >>> conversion_notes([(8000, 8000, 2), (16000, 16000, 1)], 16000, 16000)
    ['1 file(s) (1 at 8000 Hz) are resampled to 16000 Hz (soxr, high quality)', '1 multi-channel file(s) (1 with 2 channels) are mixed down to mono']
    """
    notes = []
    other = Counter(r for _, r, _ in infos if r != sample_rate)
    if other:
        what = ", ".join(f"{n} at {r} Hz" for r, n in sorted(other.items()))
        notes.append(f"{sum(other.values())} file(s) ({what}) are resampled to {sample_rate} Hz "
                     f"(soxr, high quality)")
    stereo = Counter(c for _, _, c in infos if c > 1)
    if stereo:
        what = ", ".join(f"{n} with {c} channels" for c, n in sorted(stereo.items()))
        notes.append(f"{sum(stereo.values())} multi-channel file(s) ({what}) are mixed down to mono")
    # A clip within one sample of the length (rounding) is neither padded nor cropped.
    lengths = [f * sample_rate / r for f, r, _ in infos]
    seconds = f"{num_samples / sample_rate:g} s"
    short = sum(1 for n in lengths if n < num_samples - 1)
    long = sum(1 for n in lengths if n > num_samples + 1)
    if short:
        notes.append(f"{short} clip(s) are shorter than {seconds} and are padded with silence "
                     f"(centred)")
    if long:
        notes.append(f"{long} clip(s) are longer than {seconds} and are cropped (at random in "
                     f"training, the centre in evaluation and prediction)")
    return notes


def _rate_and_length(infos: list[tuple[int, int, int]], sample_rate: int | None,
                     duration: float | None) -> tuple[int, int, list[str]]:
    notes = []
    rates = Counter(r for _, r, _ in infos)
    if sample_rate is None:
        sample_rate = next(iter(rates)) if len(rates) == 1 else DEFAULT_RATE
    if duration is None:
        longest = max(f / r for f, r, _ in infos)
        num_samples = int(np.ceil(longest * sample_rate))
        notes.append(f"data.duration not set: every clip is padded to the longest, {longest:.3f} s "
                     f"({num_samples} samples)")
    else:
        num_samples = int(round(duration * sample_rate))
        if num_samples < 1:
            raise ConfigError(f"data.duration: {duration} s at {sample_rate} Hz is less than one "
                              f"sample. Fix: a duration such as 1.0.")
    return int(sample_rate), num_samples, notes + conversion_notes(infos, sample_rate, num_samples)


def list_audio(source: str | os.PathLike, *, audio: str | None = None, target: str | None = None,
               sample_rate: int | None = None, duration: float | None = None,
               skip_bad: bool = False, classes: Sequence[Any] | None = None,
               group: str | None = None) -> AudioList:
    """Find, check and describe the sound files of a folder or table (headers only: nothing
    is decoded). ``classes``: a finished run's classes (prediction and evaluation)."""
    path = Path(source)
    groups = None
    if path.is_dir():
        if audio is not None or group is not None:
            name = "data.audio" if audio is not None else "data.group"
            raise ConfigError(f"{name}: {str(path)!r} is a folder of class folders; {name} names a "
                              f"column of a CSV/Parquet file. Fix: leave it out.")
        paths, names, found = scan_folder(path, need_two=classes is None, kind=SOUNDS)
    elif path.suffix.lower() in (".csv", ".parquet"):
        if audio is None:
            raise ConfigError(f"data.audio: required to read sounds from {path.name} (the column "
                              f"that holds their paths).")
        paths, names = scan_table(path, audio, target, kind=SOUNDS)
        found = None
        if group is not None:
            from .prepare import read_table

            df = read_table(path)
            if group not in df.columns:
                raise DataError(f"data.group: column {group!r} is not in {str(path)!r}; its "
                                f"columns are {[str(c) for c in df.columns][:20]}.")
            groups = df[group].tolist()
    else:
        raise DataError(f"data.source {str(path)!r}: expected a folder of class folders of sound "
                        f"files ({', '.join(AUDIO_SUFFIXES)}), or a CSV/Parquet file with "
                        f"data.audio; no such folder or table.")
    kept, infos, skipped = check_audio(paths, skip_bad=skip_bad)
    if not kept:
        raise DataError(f"data.source {str(path)!r}: none of the {len(paths)} files is a readable "
                        f"sound file (the first: {skipped[0][0]!r}, {skipped[0][1]}).")
    paths = [paths[i] for i in kept]
    names = [names[i] for i in kept] if names is not None else None
    groups = [groups[i] for i in kept] if groups is not None else None
    rate, num_samples, notes = _rate_and_length(infos, sample_rate, duration)
    if names is None:  # a table without labels: prediction only
        labels, classes = np.zeros(len(paths), dtype=np.int64), list(classes or [])
    else:
        labels, classes = encode_labels(names, classes if classes is not None else found, path,
                                        noun="sound")
    if skipped:
        notes.append(f"skipped {len(skipped)} unreadable file(s): " + "; ".join(
            f"{f} ({why})" for f, why in skipped[:20]) + (" ..." if len(skipped) > 20 else ""))
    return AudioList(paths, labels, classes, rate, num_samples, [r for _, r, _ in infos], groups,
                     skipped, notes)


def group_split(groups: Sequence[Any], test: float, val: float, seed: int,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, val, test) row indices with every group (e.g. a speaker) in one split only:
    whole groups are drawn (seeded) until a split holds its fraction of the rows.

    >>> tr, va, te = group_split(["a", "a", "b", "b", "c", "c", "d", "d"], 0.25, 0.25, 0)
    >>> len(tr), len(va), len(te), sorted(set(tr) & set(te))
    (4, 2, 2, [])
    """
    keys = [str(g) for g in groups]
    names = sorted(set(keys))
    if len(names) < 1 + (test > 0) + (val > 0):
        raise DataError(f"data.group: {len(names)} group(s) cannot fill train"
                        f"{', val' if val else ''}{' and test' if test else ''} without sharing a "
                        f"group. Fix: more groups, or data.val / data.test: 0.")
    order = np.random.default_rng(seed).permutation(len(names))
    sizes = Counter(keys)
    n = len(keys)
    chosen: dict[str, str] = {}
    i = 0
    for part, share in (("test", test), ("val", val)):
        got = 0
        while share > 0 and got < share * n and i < len(names) - 1:
            name = names[order[i]]
            chosen[name] = part
            got += sizes[name]
            i += 1
    part_of = np.array([chosen.get(k, "train") for k in keys])
    return tuple(np.nonzero(part_of == p)[0] for p in ("train", "val", "test"))  # type: ignore[return-value]


def audio(source: str | os.PathLike, *, sample_rate: int | None = None,
          duration: float | None = None, augment: Any = None, cache: bool = False,
          skip_bad: bool = False, train: bool = True, num_workers: int = 0) -> AudioFiles:
    """The Python entry (``nw.audio``): a checked folder of class folders of sound files as a
    Dataset of ``(waveform (1, samples), class id)``; ``.audio.classes`` holds the class names.
    ``train=True`` crops long clips at random and applies ``augment`` (a list as in
    ``data.augment``); pass ``train=False`` for validation and test data."""
    from .sound_augment import build_sound_augment

    listed = list_audio(source, sample_rate=sample_rate, duration=duration, skip_bad=skip_bad)
    aug = build_sound_augment(augment, listed.sample_rate, "augment") if augment else None
    data = AudioFiles(listed, train=train, augment=aug)
    if cache:
        data.cache = decode_all(listed, num_workers)
    listed.levels = _levels(data, 0)
    return data


def default_workers(cached: bool) -> int:
    """Loader processes for sound files when the config does not say: decoding and resampling
    want every core (up to 4); cached clips only need cropping, fastest in-process."""
    return 0 if cached else max(1, min(4, (os.cpu_count() or 1)))


def _levels(whole: AudioFiles, seed: int) -> dict:
    if whole.cache is not None:
        return level_counts(whole.cache, [str(p) for p in whole.audio.paths])
    n = len(whole.audio.paths)
    pick = np.sort(np.random.default_rng(seed).permutation(n)[:LEVEL_SAMPLE])
    return level_counts([whole.clip(int(i)) for i in pick], [str(whole.audio.paths[i]) for i in pick])


def prepare_audio(cfg: Any, loss_task: str, loss_name: str | None = None) -> Any:
    """A config's sound data → :class:`~netwright.data.prepare.Prepared` whose splits are
    :class:`AudioFiles` datasets: stratified by class (seeded), or by ``data.group`` so that no
    group (speaker) is in two splits. No statistics are fitted: the model's feature layers
    normalise (log-mel in dB, batch norm)."""
    from .prepare import Prepared, class_splits
    from .sound_augment import build_sound_augment

    if loss_task == "regression":
        raise ConfigError(f"loss {loss_name or ''!r}: sound folders and tables hold class labels, "
                          f"and this is a regression loss. Fix: loss: cross_entropy "
                          f"(bce_with_logits for two classes).")
    for name in ("window", "shape", "features", "image", "image_size", "channels", "mean", "std",
                 "text", "tokenizer"):
        if getattr(cfg, name) is not None:
            raise ConfigError(f"data.{name}: not used for sounds (they are read as waveforms of "
                              f"data.sample_rate, cut to data.duration). Fix: leave it out.")
    source, column, target, group = resolve_source(cfg)
    if column is not None and target is None:
        raise ConfigError(f"data.target: required with data.audio (the column of class labels "
                          f"in {Path(cfg.source).name}).")
    listed = list_audio(source, audio=column, target=target, sample_rate=cfg.sample_rate,
                        duration=cfg.duration, skip_bad=cfg.skip_bad, group=group)
    if loss_task == "binary" and len(listed.classes) != 2:
        raise DataError(f"data: a binary loss needs exactly 2 classes; the sounds have "
                        f"{len(listed.classes)}: {listed.classes[:10]}. Fix: loss: cross_entropy.")
    augment = build_sound_augment(cfg.augment, listed.sample_rate, "data.augment")
    labels = listed.labels
    if listed.groups is not None:
        train_idx, val_idx, test_idx = group_split(listed.groups, cfg.test, cfg.val, cfg.seed)
        listed.notes.append(f"split by data.group {group!r}: {len(set(map(str, listed.groups)))} "
                            f"groups, none in two splits")
    else:
        train_idx, val_idx, test_idx = class_splits(labels, cfg)
    whole = AudioFiles(listed, binary=loss_task == "binary")
    if cfg.cache == "memory":
        whole.cache = decode_all(listed, default_workers(False))
    listed.levels = _levels(whole, cfg.seed)
    train = whole.subset(train_idx, train=True, augment=augment)
    part = lambda idx: whole.subset(idx) if len(idx) else None  # noqa: E731
    return Prepared(
        train=train, val=part(val_idx), test=part(test_idx),
        task=loss_task if loss_task != "custom" else "multiclass",
        input_shape=(1, listed.num_samples), classes=listed.classes,
        sizes={"train": len(train_idx), "val": len(val_idx), "test": len(test_idx)},
        notes=list(listed.notes), skipped=list(listed.skipped),
        audio={"sample_rate": listed.sample_rate, "duration": listed.duration,
               "num_samples": listed.num_samples, "levels": listed.levels},
        workers=default_workers(cfg.cache == "memory"),
    )


def resolve_source(cfg: Any) -> tuple[str, str | None, str | None, str | None]:
    """(source, path column, label column, group column) of a config's sound data: the
    built-in ``spoken_digits`` set is its generated folder's index (paths, words, voices), made
    on first use."""
    if cfg.source.strip().lower() == "spoken_digits":
        from .speech import spoken_digits_folder

        folder = spoken_digits_folder()
        return str(folder / "index.csv"), "path", cfg.target or "label", cfg.group or "voice"
    return cfg.source, cfg.audio, cfg.target, cfg.group


def is_audio_source(cfg: Any) -> bool:
    """Whether a config's data is sounds: ``data.audio`` is set, the source is the built-in
    ``spoken_digits`` set, or a folder of class folders of sound files."""
    if cfg.audio is not None or cfg.source.strip().lower() == "spoken_digits":
        return True
    if cfg.streaming or cfg.image is not None or cfg.text is not None:
        return False
    from .texts import folder_kind

    return Path(cfg.source).is_dir() and folder_kind(Path(cfg.source)) == "audio"
