#!/usr/bin/env bash
# Set up netgym in ./.venv: the envapi service and the client library.
# Usage: scripts/setup.sh [extras]   (default extras: envapi; "dev" adds tests and SB3)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-envapi}"
python3 -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
if [[ "$extras" == *dev* || "$extras" == *sb3* ]]; then
    # Pin torch so that no resolver picks a newer build than the one wanted here
    # (on CPU-only machines the pinned version can come from a local wheel).
    .venv/bin/pip install --quiet "torch==${NETGYM_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/pip install --quiet -e ".[$extras]"
echo "netgym is set up in .venv (extras: $extras)"
