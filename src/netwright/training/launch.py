"""``netwright train CONFIG --nproc N``: the same command in N processes, started by torch's
elastic launcher (``torch.distributed.run``, what ``torchrun`` runs), on this machine or, with
``--nnodes`` and a c10d rendezvous endpoint, on several."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from ..errors import ConfigError

__all__ = ["launcher_command", "launch"]


def launcher_command(worker_args: Sequence[str], *, nproc: int, nnodes: int = 1,
                     node_rank: int | None = None, rdzv_endpoint: str | None = None,
                     rdzv_id: str = "netwright", max_restarts: int = 0) -> list[str]:
    """The command line that starts ``netwright <worker_args>`` in ``nproc`` processes here.

    >>> launcher_command(["train", "c.yaml"], nproc=2)[2:]
    ['torch.distributed.run', '--nproc-per-node', '2', '--max-restarts', '0', '--standalone', '-m', 'netwright.cli', 'train', 'c.yaml']
    """
    for name, value, low in (("--nproc", nproc, 1), ("--nnodes", nnodes, 1),
                             ("--max-restarts", max_restarts, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{name}: expected an integer >= {low}; received {value!r}.")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc),
           "--max-restarts", str(max_restarts)]
    if nnodes == 1 and rdzv_endpoint is None:
        cmd.append("--standalone")  # a rendezvous on this machine, on a free port
    else:
        if not rdzv_endpoint:
            raise ConfigError(
                f"--nnodes {nnodes}: the machines meet at a rendezvous endpoint. Fix: add "
                f"--rdzv-endpoint HOST:PORT (the same on every machine; HOST is one of them).")
        cmd += ["--nnodes", str(nnodes), "--rdzv-backend", "c10d", "--rdzv-endpoint", rdzv_endpoint,
                "--rdzv-id", rdzv_id]
        if node_rank is not None:
            cmd += ["--node-rank", str(node_rank)]
    return cmd + ["-m", "netwright.cli", *worker_args]


def launch(worker_args: Sequence[str], **options) -> int:
    """Run :func:`launcher_command` and return its exit status (the launcher's: non-zero when
    a worker failed, after its summary naming the rank and the error)."""
    return subprocess.call(launcher_command(worker_args, **options))
