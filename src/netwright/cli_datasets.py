"""``netwright datasets``: the built-in data sets, writing the image sets as files, and what a
config's model sees (augmented images, or texts as tokens)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

__all__ = ["datasets_app"]


datasets_app = typer.Typer(help="Built-in data sets: list them, write the image sets as files, "
                                "look at augmented training images.", no_args_is_help=False,
                           invoke_without_command=True)


@datasets_app.callback()
def datasets(ctx: typer.Context) -> None:
    """List the built-in data sets (real data shipped inside installed packages)."""
    if ctx.invoked_subcommand is not None:
        return
    from rich.console import Console
    from rich.table import Table

    from netwright.data.builtin import BUILTIN

    table = Table(title="built-in data sets (data.source in a config)")
    for col in ("name", "task", "kind", "ships in", "description"):
        table.add_column(col)
    for b in BUILTIN.values():
        table.add_row(b.name, b.task, b.kind, b.package, b.description)
    Console().print(table)


@datasets_app.command("export")
def datasets_export(
    name: str = typer.Argument(..., help="mnist or digits."),
    folder: Path = typer.Argument(..., help="A new folder: FOLDER/<label>/<n>.png."),
) -> None:
    """Write a built-in image data set as PNG files in class folders (an image-folder data
    source for `data.source`)."""
    from netwright.cli import fail
    from netwright.errors import NetwrightError

    try:
        from netwright.data.images import export_images

        counts = export_images(name, folder)
    except NetwrightError as exc:
        fail(exc)
        return
    print(f"{sum(counts.values())} images in {len(counts)} class folders written to {folder}")


@datasets_app.command("show")
def datasets_show(
    config: Path = typer.Argument(..., help="A run config (YAML) whose data is images or texts."),
    overrides: Optional[list[str]] = typer.Argument(None, help="key=value overrides"),
    out: Optional[Path] = typer.Option(None, "--out", help="Images: the PNG file to write (never "
                                       "overwritten)."),
    count: int = typer.Option(32, "--count", min=1, max=256, help="Images in the grid, or texts."),
) -> None:
    """What the model sees: a grid of augmented training images with their labels (--out), or
    training texts with their labels and the tokens the run's tokenizer makes of them."""
    from netwright.cli import fail
    from netwright.errors import ConfigError, NetwrightError

    try:
        from netwright.config import load_config
        from netwright.data.texts import is_text_source

        cfg = load_config(config, list(overrides or []))
        if is_text_source(cfg.data):
            _show_texts(cfg, count)
            return
        if out is None:
            raise ConfigError("--out: required for images (the PNG file of the grid to write).")
        from netwright.reporting.grids import show_grid

        shown = show_grid(config, list(overrides or []), out, count)
    except NetwrightError as exc:
        fail(exc)
        return
    print(f"{shown} augmented training images written to {out}")


def _show_texts(cfg: Any, count: int) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from netwright.data.prepare import prepare_data
    from netwright.data.texts import sample_tokens
    from netwright.losses import resolve_loss

    _, info = resolve_loss(cfg.loss)
    data = prepare_data(cfg.data, info.task, info.name)
    table = Table(title=f"{count} training texts and their tokens ({data.text['tokenizer']['kind']}, "
                        f"{data.text['vocab_size']} in the vocabulary; [UNK]: unknown)")
    for col in ("label", "text", "tokens", "n"):
        table.add_column(col, justify="right" if col == "n" else "left")
    for row in sample_tokens(data, count, cfg.data.seed):
        table.add_row(escape(str(row["label"])), escape(row["text"]), escape(" ".join(row["tokens"])),
                      str(len(row["tokens"])))
    Console().print(table)
