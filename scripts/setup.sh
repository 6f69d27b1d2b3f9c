#!/usr/bin/env bash
# Create .venv with everything the plugin, its tests and the example project need.
# Idempotent: a second run only re-checks. torch is pinned first: a bare `torch`
# requirement would make pip fetch a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "torch==${PERFGUARD_TORCH:-2.13.0}"
.venv/bin/python -m pip install -q -e ".[dev]"
