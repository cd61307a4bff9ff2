#!/usr/bin/env bash
# Set up netgym in ./.venv: the services, the client library and the training agent.
# Usage: scripts/setup.sh [extras]   (default: envapi,emulator,agent; "dev" adds the tests)
# As root on Debian it also installs the Debian packages the emulator needs.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-envapi,emulator,agent}"
python="${PYTHON:-python3}"

if ! command -v "$python" >/dev/null && [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv
fi
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

# The emulator service runs the real FCEUX under Xvfb; cc65 builds the homebrew
# test game; efp is the free Escape from Pong ROM.
debian_packages=(fceux xvfb lua5.1 lua-socket cc65 efp)
missing=()
for package in "${debian_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
        || missing+=("$package")
done
if ((${#missing[@]})); then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "warning: the emulator service needs: sudo apt-get install ${missing[*]}" >&2
    fi
fi

# .venv with PyTorch's CPU build and the dev tools takes about 1.5 GB, and pip
# unpacks the wheels beside it first.
[[ -d .venv ]] || scripts/disk-space.sh . 3000 "setting up .venv"
[[ -x .venv/bin/pip ]] || "$python" -m venv .venv
.venv/bin/pip install --quiet --upgrade pip
if [[ "$extras" == *dev* || "$extras" == *sb3* || "$extras" == *agent* ]]; then
    # Pin torch so that no resolver picks a newer build than the one wanted here
    # (on CPU-only machines the pinned version can come from a local wheel).
    .venv/bin/pip install --quiet "torch==${NETGYM_TORCH_VERSION:-2.13.0}"
fi
.venv/bin/pip install --quiet -e ".[$extras]"

for build in games/*/build.sh; do
    if command -v ca65 >/dev/null; then
        bash "$build"
    else
        echo "warning: cc65 is missing, so $build cannot build its ROM" >&2
    fi
done
echo "netgym is set up in .venv (extras: $extras)"
