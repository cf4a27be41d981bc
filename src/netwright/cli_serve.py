"""``netwright serve``: a run directory as an HTTP prediction service (FastAPI on uvicorn).
The work is done by :mod:`netwright.serving` (loaded only when the command runs, so
``netwright --help`` stays fast)."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import typer

__all__ = ["serve_cmd", "is_loopback"]

_TRUST_HELP = ("Allow a model 'class' outside torch.nn, torchvision.models and netwright to be "
               "imported (that runs its module's code). Only for files you trust.")


def is_loopback(host: str) -> bool:
    """Whether ``host`` answers this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_cmd(
    run_dir: Path = typer.Argument(..., help="A run directory written by `netwright train`."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind. The default answers "
                             "this machine only; 0.0.0.0 exposes the model to the network "
                             "(there is no authentication)."),
    port: int = typer.Option(8000, "--port", min=0, max=65535, help="Port to listen on."),
    runtime: str = typer.Option("onnx", "--runtime", help="onnx (RUN_DIR/exports/model.onnx, "
                                "exported first when missing) or torch."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes, each with the model; "
                                "they share the port."),
    max_batch: int = typer.Option(64, "--max-batch", min=1, help="Most rows in one model call "
                                  "(dynamic batching)."),
    max_wait_ms: float = typer.Option(2.0, "--max-wait-ms", min=0.0, help="Longest a request "
                                      "waits for others to share its model call."),
    no_batching: bool = typer.Option(False, "--no-batching", help="One model call per request."),
    max_rows: int = typer.Option(1024, "--max-rows", min=1, help="Most rows (texts, files) in "
                                 "one request; more is refused with 413."),
    max_body_mb: float = typer.Option(8.0, "--max-body-mb", min=0.001, help="Largest request "
                                      "body; larger is refused with 413."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request."),
    trust_code: bool = typer.Option(False, "--trust-code", help=_TRUST_HELP),
) -> None:
    """Serve a trained run over HTTP: POST /predict, GET /health, GET /metadata, docs at /docs.
    Concurrent requests are batched into one model call; bad requests get a 4xx naming the
    field."""
    from netwright.cli import fail
    from netwright.errors import NetwrightError
    from netwright.serving.app import run_server

    if not is_loopback(host):
        print(f"warning: binding to {host} answers anyone who can reach this machine; the service "
              f"has no authentication. Put it behind a proxy that has.", file=sys.stderr)
    where = f"http://{f'[{host}]' if ':' in host else host}:{port}"
    print(f"serving {run_dir} on {where} (docs: {where}/docs)", file=sys.stderr)
    try:
        run_server(run_dir, host=host, port=port, workers=workers, access_log=access_log,
                   runtime=runtime, max_batch=max_batch, max_wait_ms=max_wait_ms,
                   batching=not no_batching, max_rows=max_rows, max_body_mb=max_body_mb,
                   trust_code=trust_code)
    except NetwrightError as exc:
        fail(exc)
