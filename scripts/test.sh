#!/usr/bin/env bash
# Run every check: set up .venv with the dev extras, then ruff, mypy and pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k faults
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
set +e
.venv/bin/pytest "$@"
status=$?
set -e
if [[ $status -eq 5 ]]; then
    echo "pytest collected no tests"
    exit 0
fi
exit $status
