#!/usr/bin/env bash
# Run the stack on this machine without Docker: the emulator service and the
# envapi (which serves Atari, the Gymnasium classics and every game in games/).
# Ctrl-C stops both. Settings come from NETGYM_* variables (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
for argument in "$@"; do
    if [[ "$argument" == -h || "$argument" == --help ]]; then
        exec .venv/bin/netgym-envapi --help
    fi
done
emulator_port="${NETGYM_EMULATOR_PORT:-8002}"
.venv/bin/netgym-emulator --port "$emulator_port" --games-dir "${NETGYM_EMULATOR_GAMES_DIR:-games}" &
emulator=$!
trap 'kill "$emulator" 2>/dev/null; wait "$emulator" 2>/dev/null' EXIT
export NETGYM_EMULATOR_URL="${NETGYM_EMULATOR_URL:-http://127.0.0.1:$emulator_port}"
.venv/bin/netgym-envapi "$@"
