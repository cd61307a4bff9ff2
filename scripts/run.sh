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
# In a session of its own, so that Ctrl-C reaches the envapi first: the
# emulator service is stopped once the envapi, which uses it, has stopped.
setsid .venv/bin/netgym-emulator --port "$emulator_port" \
    --games-dir "${NETGYM_EMULATOR_GAMES_DIR:-games}" &
emulator=$!
envapi=""
stop() {
    trap - INT TERM HUP EXIT
    if [[ -n "$envapi" ]]; then
        kill -TERM "$envapi" 2>/dev/null || true
        wait "$envapi" 2>/dev/null || true
    fi
    kill -TERM "$emulator" 2>/dev/null || true
    wait "$emulator" 2>/dev/null || true
}
trap 'stop; exit 130' INT
trap 'stop; exit 143' TERM
trap 'stop; exit 129' HUP
trap stop EXIT
export NETGYM_EMULATOR_URL="${NETGYM_EMULATOR_URL:-http://127.0.0.1:$emulator_port}"
.venv/bin/netgym-envapi "$@" &
envapi=$!
status=0
wait -n "$emulator" "$envapi" || status=$?  # one has stopped: stop the other
exit "$status"
