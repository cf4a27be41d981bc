"""``netwright lr-find`` and ``netwright tune``: choosing the learning rate and the
hyperparameters of a config. The work is done by :mod:`netwright.tuning` (loaded only when a
command runs, so ``netwright --help`` stays fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

__all__ = ["lr_find_cmd", "tune_cmd"]

_TRUST_HELP = ("Allow a model 'class' outside torch.nn, torchvision.models and netwright to be "
               "imported (that runs its module's code). Only for files you trust.")


def lr_find_cmd(
    config: Path = typer.Argument(..., help="A run config (YAML)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides"),
    steps: int = typer.Option(200, "--steps", min=10, help="Learning rates tried (one batch each)."),
    start_lr: float = typer.Option(1e-7, "--start-lr", help="The first learning rate."),
    end_lr: float = typer.Option(10.0, "--end-lr", help="The last learning rate."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the plot here (PNG; default: "
                                       "<run_dir>/<name>-lr_find.png of the config)."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
) -> None:
    """The learning-rate range test (Smith, 2017) on a config's model and data: the loss over
    exponentially growing learning rates, on copies (nothing is trained), the suggested learning
    rate and the rule that chose it, and a plot."""
    from netwright.cli import fail
    from netwright.errors import NetwrightError
    from netwright.tuning.lr_find import lr_find_config

    try:
        result = lr_find_config(config, overrides or [], steps=steps, start_lr=start_lr,
                                end_lr=end_lr, out=out, trust_code=trust_code, verbose=1)
    except NetwrightError as exc:
        fail(exc)
        return
    print(result.summary())


def tune_cmd(
    config: Path = typer.Argument(..., help="A run config (YAML) with a tune: section."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides"),
    trials: int = typer.Option(20, "--trials", min=1, help="Finished trials the study should "
                               "reach (trials kept from an earlier, interrupted run count)."),
    jobs: int = typer.Option(1, "--jobs", min=1, help="Worker processes on the same study."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop starting trials after "
                                            "this many seconds."),
    storage: Optional[str] = typer.Option(None, "--storage", help="An Optuna RDB storage URL "
                                          "(default: an SQLite file in the tune directory)."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the results."),
) -> None:
    """Search the hyperparameters of the config's tune: section with Optuna (TPE, pruning by
    each epoch's validation metric): every trial a run directory, the study in a database, so
    that the same command continues an interrupted search; then best.yaml and tune.html."""
    from netwright.cli import fail
    from netwright.errors import NetwrightError
    from netwright.tuning.search import tune

    try:
        result = tune(config, overrides or [], trials=trials, jobs=jobs, timeout=timeout,
                      storage=storage, trust_code=trust_code, verbose=0 if quiet else 1)
    except NetwrightError as exc:
        fail(exc)
        return
    print(result.summary())
