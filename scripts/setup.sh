#!/usr/bin/env bash
# Sets up .venv with netwright (editable) and every extra, at the exact versions of constraints.txt.
# Safe to run again: an existing .venv is reused and pip only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# A new environment takes about 7 GB (torch's CUDA-capable build and its libraries): said before
# pip runs out of space half-way.
if [ ! -x .venv/bin/python ]; then
    free_kb=$(df -Pk . | awk 'NR == 2 {print $4}')
    if [ "${free_kb:-0}" -lt 8000000 ]; then
        echo "setup: $((free_kb / 1024)) MB free on the disk of $(pwd); the environment (.venv) needs" \
             "about 7 GB. Fix: free space (old clones' .venv folders, /tmp), then run this again." >&2
    fi
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e ".[all,dev]"
# Headless Chromium renders the HTML reports in the tests (tests/test_report.py). It is the
# distribution's package: installed here when missing and apt-get can be used (root, Debian).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q chromium >/dev/null 2>&1; } \
        || echo "setup: chromium could not be installed; the browser test of the reports will be skipped"
fi
