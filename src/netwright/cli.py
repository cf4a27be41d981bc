"""The ``netwright`` command line: a thin layer over the Python API.

Only typer and rich are imported at start, so ``netwright --help`` answers without importing
torch; each command imports what it needs.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(
    name="netwright",
    help="Build, train, check, save and ship PyTorch network models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# A default model per built-in data set for the quick start: (hidden sizes, loss, metrics).
_QUICK = {
    "multiclass": ("cross_entropy", ["accuracy", "f1_macro"]),
    "binary": ("bce_with_logits", ["accuracy", "f1", "auroc"]),
    "regression": ("mse", ["r2", "rmse", "mae"]),
}


def _fail(exc: Exception) -> None:
    from rich.console import Console

    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {type(exc).__name__}: {escape(str(exc))}", highlight=False)
    raise typer.Exit(code=2)


@app.command()
def quickstart(
    dataset: str = typer.Option("digits", help="A built-in data set (see `netwright datasets`)."),
    epochs: int = typer.Option(30, min=1, help="Training epochs."),
    batch_size: int = typer.Option(32, min=1),
    lr: float = typer.Option(1e-3, help="Learning rate (Adam)."),
    hidden: int = typer.Option(128, min=1, help="Width of the MLP's hidden layer."),
    seed: int = typer.Option(0),
    run_dir: Optional[Path] = typer.Option(None, help="Write the run directory here."),
) -> None:
    """Train an MLP on a built-in real data set and print held-out test metrics."""
    import time

    import numpy as np
    import torch
    from torch import nn

    import netwright as nw
    from netwright.data.builtin import BUILTIN
    from netwright.data.splits import stratified_indices
    from netwright.errors import NetwrightError

    try:
        X, y = nw.load_builtin(dataset)
        task = BUILTIN[dataset.strip().lower()].task
        loss, metrics = _QUICK[task]
        if task == "regression":
            perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
            test, keep = perm[: len(y) // 5].numpy(), perm[len(y) // 5:].numpy()
        else:
            keep, test = (t.numpy() for t in stratified_indices(torch.as_tensor(y), 0.2, seed))
        # Standardise with the training part's statistics only (no test leakage).
        mean, std = X[keep].mean(0), X[keep].std(0) + 1e-6
        Xs = (X - mean) / std
        y_t = y.astype(np.float32)[:, None] if task != "multiclass" else y
        if task == "regression":
            y_t = (y_t - y_t[keep].mean()) / y_t[keep].std()
        out = int(y.max()) + 1 if task == "multiclass" else 1
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Linear(X.shape[1], hidden), nn.ReLU(), nn.Dropout(0.1),
                              nn.Linear(hidden, out))
        print(f"netwright quickstart: {dataset} ({len(y)} samples, {X.shape[1]} features, {task}); "
              f"MLP {X.shape[1]}-{hidden}-{out}, loss {loss}, {epochs} epochs")
        t0 = time.perf_counter()
        result = nw.fit(model, (Xs[keep], y_t[keep]), loss=loss, lr=lr, epochs=epochs,
                        batch_size=batch_size, val=0.15, metrics=metrics, seed=seed,
                        early_stopping={"patience": 8}, run_dir=run_dir)
        took = time.perf_counter() - t0
        scores = nw.evaluate(model, (Xs[test], y_t[test]), loss=loss, metrics=metrics)
    except NetwrightError as exc:
        _fail(exc)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="held-out test set")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in scores.items():
        table.add_row(name, f"{value:.4f}")
    console = Console()
    console.print(f"{dataset}: held-out test set of {len(test)} samples (never seen in training)")
    console.print(table)
    console.print(f"trained {len(result.history)} epochs in {took:.1f}s "
                  f"({result.stop_reason}); best epoch {result.best['epoch']} by {result.monitor}"
                  + (f"; run directory: {run_dir}" if run_dir else ""))


@app.command()
def datasets() -> None:
    """List the built-in data sets (real data shipped inside installed packages)."""
    from rich.console import Console
    from rich.table import Table

    from netwright.data.builtin import BUILTIN

    table = Table(title="built-in data sets")
    for col in ("name", "task", "ships in", "description"):
        table.add_column(col)
    for b in BUILTIN.values():
        table.add_row(b.name, b.task, b.package, b.description)
    Console().print(table)


@app.command()
def version() -> None:
    """Print netwright's and torch's versions."""
    import netwright

    line = f"netwright {netwright.__version__}"
    try:
        import torch

        line += f", torch {torch.__version__} (CUDA available: {torch.cuda.is_available()})"
    except ImportError:  # pragma: no cover
        line += ", torch not installed"
    print(line)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
