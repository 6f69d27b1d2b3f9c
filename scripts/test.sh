#!/usr/bin/env bash
# perfguard's own test suite (pytester end to end, real torch on CPU), on both cores.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest tests -n 2 -q "$@"
