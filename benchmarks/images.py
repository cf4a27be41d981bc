"""Images per second of netwright's image-folder pipeline against the tutorial one.

The tutorial: ``torchvision.datasets.ImageFolder`` (PIL decode) with ``transforms.v2`` and a
``DataLoader``. netwright: ``data.images`` (every file checked first, torchvision decode) batched
by netwright's own ``make_batches``, without and with ``cache: memory``. Both read the 5,000
real MNIST digits written as PNG files (``netwright datasets export mnist``), in batches of 64
with 2 worker processes, shuffled, with the same transforms: none (decode to [0, 1] floats) or
a random affine augmentation. Each pipeline runs two epochs (the second is what a cache buys);
the pipelines alternate, three rounds, and the medians are reported. Ratios are netwright's
images/s over the tutorial's, measured side by side in one run.

    python -m compileall -q src && python benchmarks/images.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch


def tutorial_loader(root: Path, augment: bool) -> torch.utils.data.DataLoader:
    from torchvision import datasets
    from torchvision.transforms import v2

    steps = [v2.Grayscale(1), v2.PILToTensor()]
    if augment:
        steps.append(v2.RandomAffine(degrees=8, translate=(0.08, 0.08)))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    data = datasets.ImageFolder(str(root), transform=v2.Compose(steps))
    return torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=2,
                                       persistent_workers=True)


def netwright_batches(root: Path, augment: bool, cache: bool):
    from netwright.data.batches import make_batches
    from netwright.data.images import default_workers, images
    from netwright.data.sources import DatasetSource

    data = images(root, augment=[{"random_affine": {"degrees": 8, "translate": [0.08, 0.08]}}]
                  if augment else None, cache=cache, num_workers=2)
    workers = min(2, default_workers(cache, augment)) if cache else 2
    return make_batches(DatasetSource(data), batch_size=64, shuffle=True,
                        device=torch.device("cpu"), generator=torch.Generator().manual_seed(0),
                        num_workers=workers, persistent_workers=workers > 0)


def epochs(make, n: int = 2) -> list[float]:
    """Images per second of each of ``n`` epochs; the first includes making the pipeline
    (checking files, filling a cache, starting workers), as a user's first epoch does."""
    start = time.perf_counter()
    loader = make()
    rates = []
    for _ in range(n):
        count = 0
        for x, _y in loader:
            count += len(x)
        now = time.perf_counter()
        rates.append(count / (now - start))
        start = now
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    from netwright.data.images import export_images

    root = Path(tempfile.mkdtemp()) / "mnist_png"
    export_images("mnist", root)
    for augment in (False, True):
        runs = {"tutorial": [], "netwright": [], "netwright cache": []}
        makers = {"tutorial": lambda: tutorial_loader(root, augment),
                  "netwright": lambda: netwright_batches(root, augment, False),
                  "netwright cache": lambda: netwright_batches(root, augment, True)}
        for r in range(args.rounds):
            names = list(makers) if r % 2 == 0 else list(makers)[::-1]
            for name in names:
                runs[name].append(epochs(makers[name]))
        label = "random affine augmentation" if augment else "no augmentation"
        print(f"\n{label} (5,000 MNIST PNGs, batch 64, 2 workers; median of {args.rounds})")
        base = [statistics.median(r[i] for r in runs["tutorial"]) for i in (0, 1)]
        for name, rates in runs.items():
            med = [statistics.median(r[i] for r in rates) for i in (0, 1)]
            print(f"  {name:16s} epoch 1: {med[0]:8.0f} img/s ({med[0] / base[0]:.2f}x)   "
                  f"epoch 2: {med[1]:8.0f} img/s ({med[1] / base[1]:.2f}x)")


if __name__ == "__main__":
    main()
