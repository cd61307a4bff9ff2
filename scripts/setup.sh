#!/usr/bin/env bash
# Set up netgym in ./.venv: the envapi service and the client library.
# Usage: scripts/setup.sh [extras]   (default extras: envapi; "dev" adds tests and SB3)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-envapi}"
python="${PYTHON:-python3}"

if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "netgym needs Python 3.11 or newer; $("$python" --version 2>&1) found (set PYTHON=...)" >&2
    exit 1
fi
if ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
    else
        echo "Python's venv module is missing: install it (Debian/Ubuntu: sudo apt-get install python3-venv)" >&2
        exit 1
    fi
fi

[[ -x .venv/bin/pip ]] || "$python" -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
if [[ "$extras" == *dev* || "$extras" == *sb3* ]]; then
    # Pin torch so that no resolver picks a newer build than the one wanted here
    # (on CPU-only machines the pinned version can come from a local wheel).
    .venv/bin/pip install --quiet "torch==${NETGYM_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/pip install --quiet -e ".[$extras]"
echo "netgym is set up in .venv (extras: $extras)"
