"""``python -m netwright.exporting``: the fresh process that verifies exported artifacts (see
:mod:`netwright.exporting.child`)."""

import sys

from .child import main

if __name__ == "__main__":  # pragma: no cover - run by Verifier in a fresh process
    sys.exit(main(sys.argv[1:]))
