"""The ``netwright`` command line: a thin layer over the Python API.

Only typer and rich are imported at start, so ``netwright --help`` answers without importing
torch; each command imports what it needs.
"""

from __future__ import annotations

import os
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


def _public_kind(exc: Exception) -> str:
    """The documented error kind (``LossTargetError``), not an internal subclass such as the
    doctor's ``_LossTargetDoctorError``."""
    from netwright import errors

    mro = type(exc).__mro__
    for cls in mro:
        if cls.__module__ == errors.__name__ and cls.__name__ in errors.__all__ and cls is not errors.NetwrightError:
            return cls.__name__
    return next((cls.__name__ for cls in mro if not cls.__name__.startswith("_")), type(exc).__name__)


def fail(exc: Exception) -> None:
    """Print a netwright error the way every command does (kind, message, fix) and exit 2."""
    from rich.console import Console

    from rich.markup import escape

    Console(stderr=True, soft_wrap=True).print(
        f"[bold red]error:[/] {_public_kind(exc)}: {escape(str(exc))}", highlight=False)
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
        fail(exc)
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
                  f"({result.stop_reason}); weights: {result.weights_note}"
                  + (f"; run directory: {run_dir}" if run_dir else ""))


from .cli_datasets import datasets_app  # noqa: E402 - `netwright datasets ...`

app.add_typer(datasets_app, name="datasets")

from .cli_tune import lr_find_cmd, tune_cmd  # noqa: E402 - `netwright lr-find`, `netwright tune`

app.command("lr-find")(lr_find_cmd)
app.command("tune")(tune_cmd)

from .cli_serve import serve_cmd  # noqa: E402 - `netwright serve`

app.command("serve")(serve_cmd)


def _scores_table(scores: dict, title: str):
    from rich.table import Table

    names: list[str] = []
    for split in scores.values():
        names += [k for k, v in split.items() if k not in names and not isinstance(v, (list, dict))]
    table = Table(title=title)
    table.add_column("metric")
    for split in scores:
        table.add_column(split, justify="right")
    for name in names:
        table.add_row(name, *[f"{scores[s][name]:.4f}" if name in scores[s] else "-" for s in scores])
    return table


_TRUST_HELP = ("Allow a model 'class' outside torch.nn, torchvision.models and netwright to be "
               "imported (that runs its module's code). Only for files you trust.")


@app.command()
def train(
    config: Path = typer.Argument(..., help="A run config (YAML); see `netwright init`."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides, e.g. train.epochs=5"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors (the run "
                               "directory holds the results)."),
    resume: bool = typer.Option(False, "--resume", help="Continue the newest run of this config "
                                "from its newest complete checkpoint."),
    force: bool = typer.Option(False, "--force", help="With --resume: continue even if the config changed."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Train data-parallel in this many "
                                        "processes per machine (torch's elastic launcher)."),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines taking part (with --rdzv-endpoint)."),
    node_rank: Optional[int] = typer.Option(None, "--node-rank", help="This machine's rank."),
    rdzv_endpoint: Optional[str] = typer.Option(None, "--rdzv-endpoint", help="HOST:PORT where "
                                                "the machines meet (c10d rendezvous)."),
    max_restarts: int = typer.Option(0, "--max-restarts", help="Restart the processes this many "
                                     "times after a failure."),
) -> None:
    """Train from a config: progress, then val/test metrics and the run directory."""
    from rich.console import Console

    from netwright.errors import NetwrightError
    from netwright.runner import run

    if nproc is not None or nnodes > 1:
        from netwright.training.launch import launch

        worker = ["train", str(config), *(overrides or []), *(["--quiet"] if quiet else []),
                  *(["--trust-code"] if trust_code else [])]
        try:
            code = launch(worker, nproc=nproc or 1, nnodes=nnodes, node_rank=node_rank,
                          rdzv_endpoint=rdzv_endpoint, max_restarts=max_restarts,
                          rdzv_id=Path(config).stem)
        except NetwrightError as exc:
            fail(exc)
            return
        raise typer.Exit(code=code)
    try:
        result = run(config, overrides or [], verbose=0 if quiet else 1, resume=resume, force=force,
                     trust_code=trust_code)
    except NetwrightError as exc:
        fail(exc)
        return
    if os.environ.get("RANK", "0") != "0" or quiet:
        return  # one of several processes (rank 0 prints the results), or --quiet: errors only
    console = Console()
    fit = result.fit
    # The scores are of the weights the model holds: say which epoch's they are, above them.
    console.print(f"{len(fit.history)} epochs in {fit.seconds:.1f}s ({fit.stop_reason}); "
                  f"weights: {fit.weights_note}")
    console.print(_scores_table(result.scores, f"{result.config.name}: final metrics "
                                               f"(weights of epoch {fit.weights_epoch})"))
    console.print(f"run directory: {result.run_dir}", soft_wrap=True)


@app.command("evaluate")
def evaluate_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `netwright train`."),
    split: str = typer.Option("test", help="test, val or train: the run's own split."),
    data: Optional[Path] = typer.Option(None, help="Evaluate on this .csv/.parquet/.npz file instead "
                                        "(image, sound and text runs: a folder of class folders)."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
) -> None:
    """Loss and metrics of a trained run on one of its splits or on a file."""
    from rich.console import Console

    from netwright.errors import NetwrightError
    from netwright.runner import open_run

    try:
        loaded = open_run(run_dir, trust_code=trust_code)
        scores, n = loaded.evaluate_on(split=None if data is not None else split, path=data)
        where = str(data) if data is not None else split
    except NetwrightError as exc:
        fail(exc)
        return
    console = Console()
    console.print(f"{run_dir}: {where}, {n} samples", soft_wrap=True)
    console.print(_scores_table({where: scores}, "metrics"))


@app.command("predict")
def predict_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `netwright train`."),
    inputs: Path = typer.Argument(..., help="Features: .csv/.parquet (the training columns), .npz or "
                                  ".npy; for a run trained on images or sounds, a file or a folder; "
                                  "on texts, a .txt file (one text per line) or a table."),
    out: Optional[Path] = typer.Option(None, help="Write the predictions to this CSV (default: print)."),
    onnx: bool = typer.Option(False, "--onnx", help="Serve with RUN_DIR/exports/model.onnx and "
                              "onnxruntime (no torch needed)."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
) -> None:
    """Predict with a trained run: class labels and probabilities, or values."""
    import csv
    import io

    from netwright.atomic import atomic_write_text
    from netwright.errors import NetwrightError

    try:
        if onnx:
            from netwright.serving.onnx import predict_table_onnx

            notes: list = []
            header, rows = predict_table_onnx(run_dir, inputs, notes)
            for note in notes:
                print(f"note: {note}", file=sys.stderr)
        else:
            from netwright.runner import open_run

            loaded = open_run(run_dir, trust_code=trust_code)
            header, rows = loaded.predict_any(inputs)
            for note in getattr(loaded, "notes", []):
                print(f"note: {note}", file=sys.stderr)
        if out is not None and out.exists():
            from netwright.errors import ConfigError

            raise ConfigError(f"--out: {str(out)!r} already exists; netwright does not overwrite it. "
                              f"Fix: choose another file name.")
    except NetwrightError as exc:
        fail(exc)
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    if out is None:
        sys.stdout.write(buf.getvalue())
    else:
        atomic_write_text(out, buf.getvalue())
        print(f"{len(rows)} predictions written to {out}")


@app.command("export")
def export_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `netwright train`."),
    format: str = typer.Option("onnx,torchscript,pt2", "--format", help="Comma-separated formats."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace existing files in "
                                   "RUN_DIR/exports (by default an existing file is an error)."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
) -> None:
    """Export a run's model to RUN_DIR/exports (ONNX, TorchScript, torch.export), each verified
    against the eager model in a fresh process; writes exports/verify.json. Existing files there
    are kept unless --overwrite; a symbolic link for exports/ is refused."""
    from rich.console import Console
    from rich.table import Table

    from netwright.errors import NetwrightError
    from netwright.exporting import export_all
    from netwright.runner import open_run

    try:
        loaded = open_run(run_dir, trust_code=trust_code)
        shape = tuple(loaded.meta["model"].get("input_shape") or ())
        reports = export_all(loaded.model, Path(run_dir) / "exports",
                             [f.strip() for f in format.split(",") if f.strip()],
                             example=shape or None, overwrite=overwrite)
    except NetwrightError as exc:
        fail(exc)
        return
    table = Table(title=f"{run_dir}/exports (verified in a fresh process)")
    for col in ("format", "file", "max abs diff", "batch 1 vs eager", "batch 64 vs eager"):
        table.add_column(col)
    for fmt, r in reports.items():
        ratio = lambda b: _speed_text(None if b in r.latency_noisy else r.speedup(b),  # noqa: E731
                                      b in r.latency_export)
        table.add_row(fmt, r.path.name, f"{r.max_abs_diff:.2e}" if r.max_abs_diff is not None else "-",
                      ratio(1), ratio(64))
    Console().print(table)


def _speed_text(ratio: float | None, measured: bool) -> str:
    """``2.81x faster`` / ``5.00x slower``; ``noisy`` when the timings spread too much to compare."""
    if ratio is None:
        return "noisy" if measured else "-"
    return f"{ratio:.2f}x faster" if ratio >= 1 else f"{1 / ratio:.2f}x slower"


@app.command("report")
def report_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `netwright train` (also "
                                   "one that is still training or was interrupted)."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
) -> None:
    """Write RUN_DIR/report.html: headline, curves, confusion matrix or predicted vs actual,
    mistakes, model summary, the doctor's findings and the config, in one self-contained file."""
    from netwright.errors import NetwrightError

    try:
        from netwright.reporting.report import write_report
        from netwright.runner import open_run

        model = data = None
        note = ""
        if (run_dir / "weights.safetensors").is_file():
            loaded = open_run(run_dir, trust_code=trust_code)
            model, data = loaded.model, loaded.data()
        else:
            note = " (no final weights yet: curves and headline only)"
        path = write_report(run_dir, model=model, data=data)
    except NetwrightError as exc:
        fail(exc)
        return
    print(f"report written to {path}{note}")


@app.command("compare")
def compare_cmd(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run directories."),
    out: Optional[Path] = typer.Option(None, "--out", help="Also write this self-contained HTML "
                                       "file (never overwritten)."),
) -> None:
    """Compare runs: the config keys that differ, final and best metrics, curves overlaid."""
    from rich.console import Console
    from rich.table import Table

    from netwright.errors import NetwrightError

    try:
        if out is not None:
            from netwright.reporting.compare import write_compare

            _, found = write_compare(run_dirs, out)
        else:
            from netwright.reporting.compare import compare_runs

            found = compare_runs(run_dirs)
    except NetwrightError as exc:
        fail(exc)
        return
    table = Table(title="runs")
    table.add_column("run")
    for split, metric in found["metrics"]:
        table.add_column(f"{split} {metric}", justify="right")
    table.add_column("best epoch", justify="right")
    for r in found["runs"]:
        cells = []
        for split, metric in found["metrics"]:
            v = (r["scores"].get(split) or {}).get(metric)
            cells.append(f"{v:.4f}" if isinstance(v, (int, float)) else "-")
        table.add_row(r["label"], *cells, str(r["best"].get("epoch", "-")))
    console = Console()
    console.print(table)
    if found["differences"]:
        diff = Table(title="config keys that differ")
        diff.add_column("key")
        for r in found["runs"]:
            diff.add_column(r["label"])
        for key, values in found["differences"].items():
            diff.add_row(key, *[str(v) for v in values])
        console.print(diff)
    if out is not None:
        console.print(f"comparison written to {out}", soft_wrap=True)


@app.command("summary")
def summary_cmd(
    target: Path = typer.Argument(..., help="A run config (YAML) or a run directory."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
) -> None:
    """Per-layer output shapes, parameters and FLOPs of a config's or a run's model."""
    from rich.console import Console

    from netwright.errors import NetwrightError
    from netwright.models.scaling import unwrap
    from netwright.models.summary import summary

    try:
        if target.is_dir():
            from netwright.runner import open_run

            loaded = open_run(target, trust_code=trust_code)
            model, shape = loaded.model, loaded.meta["model"].get("input_shape")
        else:
            from netwright.config import load_config
            from netwright.data.prepare import prepare_data
            from netwright.losses import resolve_loss
            from netwright.runner import build_model

            cfg = load_config(target)
            data = prepare_data(cfg.data, resolve_loss(cfg.loss)[1].task, resolve_loss(cfg.loss)[1].name)
            model, shape = build_model(cfg, data, trust_code=trust_code), data.input_shape
        report = summary(unwrap(model), shape)
    except NetwrightError as exc:
        fail(exc)
        return
    console = Console()
    console.print(report.to_table() if hasattr(report, "to_table") else str(report))


@app.command("doctor")
def doctor_cmd(
    config: Path = typer.Argument(..., help="A run config (YAML)."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides"),
    quick: bool = typer.Option(False, "--quick", help="Only the cheap checks (no overfitting steps)."),
    json_out: bool = typer.Option(False, "--json", help="Print the report as JSON."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
) -> None:
    """Check a config's model, data and training setup before training (deep checks included).

    Exit status: 0 without errors, 1 when the report has an error finding, 2 for a bad config.
    """
    from rich.console import Console

    from netwright.config import load_config
    from netwright.data.prepare import prepare_data
    from netwright.diagnosis import doctor
    from netwright.errors import NetwrightError
    from netwright.losses import resolve_loss
    from netwright.runner import build_model

    try:
        cfg = load_config(config, overrides or [])
        data = prepare_data(cfg.data, resolve_loss(cfg.loss)[1].task, resolve_loss(cfg.loss)[1].name)
        model = build_model(cfg, data, trust_code=trust_code)
        opt = cfg.optimizer.model_dump(exclude_none=True)
        name, lr = opt.pop("name"), opt.pop("lr")
        train = cfg.train.model_dump(exclude_none=True)  # every training option, as fit gets it
        report = doctor(model, data.train, val=data.val, deep=not quick, loss=cfg.loss,
                        optimizer={"name": name, **opt}, lr=lr, scheduler=cfg.scheduler,
                        metrics=list(cfg.metrics) or None, **train)
    except NetwrightError as exc:
        fail(exc)
        return
    if json_out:
        print(report.to_json())
    else:
        console = Console()
        console.print(report.to_table())
        console.print(f"{len(report.errors)} error(s), {len(report.warnings)} warning(s); "
                      f"codes are explained in docs/doctor.md")
    if report.errors:
        raise typer.Exit(code=1)


_TEMPLATES = {
    "mlp": """\
# A netwright run config. Train it with:  netwright train {path}
# Every key below is optional except model, data and loss; the values shown are the defaults
# where a default exists. Errors name the key and say what was expected.
name: digits_mlp              # the run directory is <run_dir>/<name> (numbered if it exists)
run_dir: runs
model:                        # a layer list, a {{name: layer}} mapping, or a zoo model
  zoo: mlp                    # zoo: simplenet, mlp, cnn, resnet, rnn, lstm, gru, text_classifier
  hidden: [128]
  dropout: 0.1
data:
  source: digits              # built-in (netwright datasets) or a .csv/.parquet/.npz file
  # target: label             # the target column (files)
  # features: [a, b]          # feature columns (default: all but the target)
  val: 0.1                    # validation fraction
  test: 0.2                   # test fraction (stratified for classes, seeded)
  standardize: features       # features | global | none (fitted on the training split only)
loss: cross_entropy           # cross_entropy, nll, bce, bce_with_logits, mse, l1, smooth_l1, huber
optimizer:
  name: adam                  # sgd (momentum, nesterov), adam, adamw, rmsprop, adagrad
  lr: 0.001
  weight_decay: 0.0
scheduler: null               # step, multistep, exponential, cosine, onecycle, reduce_on_plateau
train:
  epochs: 30
  batch_size: 32
  seed: 0
  precision: "32"             # "32", bf16-mixed, 16-mixed (CUDA)
  accumulate: 1
  clip_grad: null
  early_stopping:
    patience: 8
metrics: [accuracy, f1_macro] # accuracy precision recall f1 auroc confusion_matrix | mse mae rmse r2
""",
    "regression": """\
# A regression run config (diabetes). Train it with:  netwright train {path}
name: diabetes_mlp
model:
  zoo: mlp
  hidden: [32]
data:
  source: diabetes
  standardize_target: true    # train on a standardised target; the model still outputs real units
loss: mse
optimizer: {{name: adamw, lr: 0.003, weight_decay: 0.01}}
train: {{epochs: 80, batch_size: 32, early_stopping: 10}}
metrics: [r2, rmse, mae]
""",
}


@app.command()
def init(
    path: Path = typer.Argument(Path("netwright.yaml"), help="Where to write the starter config."),
    template: str = typer.Option("mlp", help=f"One of: {', '.join(_TEMPLATES)}."),
) -> None:
    """Write a commented starter config."""
    from netwright.atomic import atomic_write_text
    from netwright.errors import ConfigError, did_you_mean

    if template not in _TEMPLATES:
        fail(ConfigError(f"--template: unknown template {template!r}.{did_you_mean(template, _TEMPLATES)} "
                          f"Expected one of: {', '.join(_TEMPLATES)}."))
    if path.exists():
        fail(ConfigError(f"{str(path)!r} already exists; netwright does not overwrite it. Fix: "
                          f"give another path, e.g. `netwright init my_run.yaml`."))
    text = _TEMPLATES[template].format(path=path)
    # The run is named after the config file (my_run.yaml -> runs/my_run), not the template.
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in path.stem) or "run"
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line.startswith("name: "):
            col = line.find("#")
            lines[i] = f"name: {stem}" if col < 0 else f"name: {stem} ".ljust(col) + line[col:]
            break
    text = "\n".join(lines)
    atomic_write_text(path, text)
    print(f"wrote {path}; train it with: netwright train {path}")


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
