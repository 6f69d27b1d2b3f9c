#!/usr/bin/env bash
# The main job: the example project under `pytest --perfguard`, gated against its committed
# baseline; the report lands in example_project/.perfguard/report/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd example_project
../.venv/bin/python -m pytest --perfguard "$@"
