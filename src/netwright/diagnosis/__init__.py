"""The model doctor: find model-building mistakes before the first training step.

Each problem is a :class:`Finding` with a stable code (``NW101`` ...), a severity and a fix.
Severity follows consequence: a setup that cannot train, or trains meaninglessly, is an
``error``; one that trains, but badly, is a ``warning``; ``info`` is worth knowing but harmless.
The codes are listed, with an example and the fix, in ``docs/doctor.md`` and in :data:`CODES`.

- :func:`preflight` runs the cheap checks on one batch: one forward in eval mode under
  ``no_grad`` plus tensor reductions. ``fit`` runs it before training. It never changes the
  model (weights, buffers, the train/eval mode of every submodule) nor the global RNG.
- :func:`doctor` takes what ``fit`` takes, runs :func:`preflight` on the first batch (with the
  whole in-memory data for the data-wide checks), and with ``deep=True`` adds the deep checks on
  a copy of the model: a gradient check per layer and a few steps overfitting one batch.

Code groups: NW1xx output vs targets and loss, NW2xx the model and its input, NW3xx the data,
NW4xx optimizer, scheduler and logged values, NW5xx the deep checks.

The package, one module per part: ``report`` (findings, codes, the report), ``tracing`` (the
traced forward), the checks by family (``output_checks`` NW1xx, ``model_checks`` NW2xx,
``data_checks`` NW3xx, ``setup_checks`` NW4xx, ``deep`` NW5xx) and ``api`` (check_batch,
preflight, doctor).
"""

from .api import check_batch, doctor, preflight
from .report import CODES, SEVERITIES, DoctorError, Finding, Report

__all__ = ["Finding", "Report", "DoctorError", "CODES", "doctor", "preflight", "check_batch"]
