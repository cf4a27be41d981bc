"""Clips per second of netwright's sound pipeline against a per-clip tutorial one.

Both read the same real sound files (the built-in ``spoken_digits`` clips: eSpeak NG speech,
16-bit WAV at 22,050 Hz), resample them to 16 kHz, cut or pad them to one second and turn them
into 40-band log-mel spectrograms (n_fft 512, hop 160), in batches of 64 with 2 worker
processes, shuffled.

- The tutorial: a ``Dataset`` whose ``__getitem__`` does everything for one clip, as the
  librosa tutorials do: ``librosa.load(path, sr=16000)`` (soxr), ``librosa.util.fix_length``,
  ``librosa.feature.melspectrogram`` and ``librosa.power_to_db``, then a ``DataLoader``.
- netwright: ``nw.audio`` (every header checked first; soundfile decode, soxr resample, cut)
  batched by netwright's ``make_batches``; the log-mel is a layer (``LogMel``) computed once
  per batch, as it is inside a model. Also with ``cache: memory`` (the decoded clips kept).

Each pipeline runs two epochs (the first includes building it: checking files, filling a
cache, starting workers); the pipelines alternate, three rounds, and the medians are
reported. Ratios are netwright's clips/s over the tutorial's, measured side by side in one run.
The log-mels of both agree (checked on a few clips before timing).

    python -m compileall -q src && python benchmarks/audio.py [--rounds 3] [--voices 24]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RATE, SECONDS, N_FFT, HOP, N_MELS = 16000, 1.0, 512, 160, 40


class TutorialClips(torch.utils.data.Dataset):
    """The per-clip pipeline of the librosa tutorials."""

    def __init__(self, paths: list[Path], labels: list[int]):
        self.paths, self.labels = paths, labels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        import librosa

        y, _ = librosa.load(self.paths[i], sr=RATE)
        y = librosa.util.fix_length(y, size=int(RATE * SECONDS))
        mel = librosa.feature.melspectrogram(y=y, sr=RATE, n_fft=N_FFT, hop_length=HOP,
                                             n_mels=N_MELS)
        return torch.from_numpy(librosa.power_to_db(mel, top_db=80.0)), self.labels[i]


def tutorial(root: Path):
    from netwright.data.audio import list_audio

    listed = list_audio(root, sample_rate=RATE, duration=SECONDS)
    data = TutorialClips(listed.paths, listed.labels.tolist())
    loader = torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=2,
                                         persistent_workers=True)
    return ((x, y) for x, y in loader), loader


def netwright_pipeline(root: Path, cache: bool):
    from netwright.data.audio import audio
    from netwright.data.batches import make_batches
    from netwright.data.sources import DatasetSource
    from netwright.models.audio import LogMel

    data = audio(root, sample_rate=RATE, duration=SECONDS, cache=cache, num_workers=2,
                 train=False)
    workers = 0 if cache else 2
    batches = make_batches(DatasetSource(data), batch_size=64, shuffle=True,
                           device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                           num_workers=workers, persistent_workers=workers > 0)
    features = LogMel(RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    return features, batches


def run_epochs(name: str, root: Path, n: int = 2) -> list[float]:
    """Clips per second of each of ``n`` epochs; the first includes making the pipeline."""
    start = time.perf_counter()
    if name == "tutorial":
        _, loader = tutorial(root)
        features = None
        source = loader
    else:
        features, source = netwright_pipeline(root, cache=name == "netwright_cache")
    rates = []
    with torch.inference_mode():
        for _ in range(n):
            count = 0
            for x, _y in source:
                mel = features(x) if features is not None else x
                count += mel.shape[0]
            now = time.perf_counter()
            rates.append(count / (now - start))
            start = now
    return rates


def agree(root: Path, n: int = 8) -> float:
    """Largest |dB| difference between the two pipelines' log-mels of the first ``n`` clips.
    librosa's ``fix_length`` pads at the end where netwright centres a short clip, so netwright's
    decoded clip is padded at the end here, as the tutorial's is; and librosa pads the STFT's
    edges with zeros (``pad_mode="constant"``), netwright's default reflects them."""
    from netwright.data.audio import decode, list_audio
    from netwright.models.audio import LogMel

    listed = list_audio(root, sample_rate=RATE, duration=SECONDS)
    tut = TutorialClips(listed.paths, listed.labels.tolist())
    features = LogMel(RATE, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS, pad_mode="constant")
    length = int(RATE * SECONDS)
    worst = 0.0
    for i in range(n):
        y = decode(listed.paths[i], RATE)[:length]
        y = np.pad(y, (0, length - len(y)))
        ours = features(torch.from_numpy(y))
        worst = max(worst, float((ours - tut[i][0]).abs().max()))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--voices", type=int, default=0,
                        help="use this many voices of spoken_digits (0: the whole set)")
    args = parser.parse_args()
    from netwright.data import speech

    if args.voices:
        root = Path(tempfile.mkdtemp()) / "spoken_digits"
        speech.generate_spoken_digits(root, voices=speech.VOICES[:args.voices], progress=False)
    else:
        root = speech.spoken_digits_folder()
    print(f"log-mel agreement on 8 clips: max |difference| {agree(root):.4f} dB")
    names = ["tutorial", "netwright", "netwright_cache"]
    results: dict[str, list[list[float]]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in (names if r % 2 == 0 else names[::-1]):
            results[name].append(run_epochs(name, root))
    clips = sum(1 for _ in root.rglob("*.wav"))
    print(f"{clips} clips (spoken_digits, 22,050 Hz WAV) -> 16 kHz, 1 s, 40-band log-mel; "
          f"batches of 64, 2 workers; median of {args.rounds} rounds")
    base = [statistics.median(r[e] for r in results["tutorial"]) for e in range(2)]
    for name in names:
        med = [statistics.median(r[e] for r in results[name]) for e in range(2)]
        print(f"{name:16s} epoch 1 {med[0]:8.0f} clips/s ({med[0] / base[0]:.2f}x)   "
              f"epoch 2 {med[1]:8.0f} clips/s ({med[1] / base[1]:.2f}x)")


if __name__ == "__main__":
    main()
