#!/usr/bin/env bash
# Set up (idempotently) and run every check: lint, format, types, the whole test suite.
# Usage: bash scripts/test.sh [extra pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
echo "== ruff check"; .venv/bin/ruff check .
echo "== ruff format --check"; .venv/bin/ruff format --check .
echo "== mypy"; .venv/bin/mypy
echo "== policy check"; .venv/bin/iport-cds policy check policy/policies/*.json policy/policies/parts/*.json
echo "== pytest"
.venv/bin/python -m pytest --cov --cov-report=term:skip-covered "$@"
