#!/usr/bin/env bash
# Run every check: set up .venv with the dev extras, then ruff, mypy and pytest.
# Extra arguments go to pytest, e.g. scripts/test.sh -k faults
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
# The Compose tests build and run the images on a real Docker engine; without
# one they are skipped (NETGYM_DOCKER=0 skips starting one).
if [[ "${NETGYM_DOCKER:-1}" != 0 ]] && ! scripts/docker-engine.sh; then
    echo "warning: no Docker engine, so the Compose tests cannot run" >&2
fi
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
