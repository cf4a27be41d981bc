import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F


# distributed/worker.py is a script torchrun starts, not a test module (--doctest-modules would
# import it, and it reads its arguments from the command line). It is named here, not in a
# conftest.py of its own folder: a second conftest module would shadow this one's imports.
collect_ignore = ["distributed/worker.py"]

# Data sets netwright makes on first use (spoken_digits) go to a cache of this test session,
# never the user's own (~/.cache/netwright); subprocesses inherit it. Each pytest-xdist worker
# has its own (a cache set by the process that started the workers would be shared by them).
# The process that made the cache removes it when it exits (48 MB a worker; left behind, every run
# of the suite would add them to /tmp until the disk is full).
if "NETWRIGHT_CACHE" not in os.environ or os.environ.get("PYTEST_XDIST_WORKER"):
    import atexit
    import shutil
    import tempfile

    os.environ["NETWRIGHT_CACHE"] = tempfile.mkdtemp(prefix="netwright-cache-")
    atexit.register(shutil.rmtree, os.environ["NETWRIGHT_CACHE"], ignore_errors=True)

# Under pytest-xdist, each worker process (and what it starts: CLI runs, torchrun ranks) uses one
# torch thread: two workers with torch's default of one thread per core oversubscribe the cores
# and wait on each other. A test that needs more threads sets them itself.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


class SimpleNet(nn.Module):
    """The article's SimpleNet, verbatim (it ends in softmax)."""

    def __init__(self, in_features=10, out_features=2):
        super(SimpleNet, self).__init__()
        self.linear1 = nn.Linear(in_features, 13, bias=True)
        self.linear2 = nn.Linear(13, 8, bias=True)
        self.output = nn.Linear(8, out_features, bias=True)

    def forward(self, x):
        z1 = self.linear1(x)
        sigma1 = F.relu(z1)
        z2 = self.linear2(sigma1)
        sigma2 = F.sigmoid(z2)
        z3 = self.output(sigma2)
        sigma3 = F.softmax(z3, dim=1)
        return sigma3


class SimpleNetLogits(SimpleNet):
    """The same architecture returning logits, as CrossEntropyLoss expects."""

    def forward(self, x):
        return self.output(F.sigmoid(self.linear2(F.relu(self.linear1(x)))))


@pytest.fixture
def rule_data():
    """The article's 500x20 uniform inputs with a learnable rule: the class is the argmax of the
    first three features."""
    g = torch.Generator().manual_seed(0)
    X = torch.rand((500, 20), generator=g, dtype=torch.float32)
    y = X[:, :3].argmax(dim=1)
    return X, y


@pytest.fixture
def blobs():
    rng = np.random.default_rng(0)
    centers = np.array([[2, 0], [-2, 0], [0, 2.5]])
    y = rng.integers(0, 3, size=300)
    X = (centers[y] + rng.normal(scale=0.7, size=(300, 2))).astype(np.float32)
    return X, y.astype(np.int64)


# A skip is allowed in CI only for a reason CI machines cannot meet (no GPU there). Any other
# skip (an optional package that failed to import, a console script missing) would hide tests
# that prove a promise, so with CI set it is reported as a failure naming the reason.
CI_ALLOWED_SKIPS = ("CUDA",)


# scikit-learn's estimator checks that do not apply, left out of the collection rather than
# skipped (docs/sklearn.md lists them): check_array_api_input runs only with SCIPY_ARRAY_API=1 and
# array-api-strict installed, and netwright's estimators take NumPy and pandas input, not
# array-API namespaces.
NOT_APPLICABLE_CHECKS = ("check_array_api_input",)


def pytest_collection_modifyitems(config, items):
    items[:] = [item for item in items
                if not any(f"-{name}" in item.nodeid for name in NOT_APPLICABLE_CHECKS)]


def skip_allowed_in_ci(reason: str) -> bool:
    return any(word in reason for word in CI_ALLOWED_SKIPS)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (os.environ.get("CI") and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    if not skip_allowed_in_ci(reason):
        report.outcome = "failed"
        report.longrepr = (f"skipped in CI ({reason}); CI must run this test: install what it "
                           f"needs in scripts/setup.sh, or allow the reason in CI_ALLOWED_SKIPS")
