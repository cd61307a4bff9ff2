#!/usr/bin/env bash
# Run the stack on this machine without Docker: the emulator service and the
# envapi (which serves Atari, the Gymnasium classics and every game in games/).
# Ctrl-C or SIGTERM stops both; the envapi goes on serving Atari and the
# classics if the emulator service fails. Settings come from NETGYM_* variables
# (see README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
for argument in "$@"; do
    if [[ "$argument" == -h || "$argument" == --help ]]; then
        cat <<'HELP'
usage: scripts/run.sh [envapi options]

Runs the emulator service (FCEUX under Xvfb, for the games in games/) and the
envapi in front of it; Ctrl-C stops both. The options go to the envapi (below).
The emulator service reads NETGYM_EMULATOR_* variables, among them
NETGYM_EMULATOR_PORT (8002) and NETGYM_EMULATOR_GAMES_DIR (games); all of them:
.venv/bin/netgym-emulator --help. This script points the envapi at it
(NETGYM_EMULATOR_URL=http://127.0.0.1:$NETGYM_EMULATOR_PORT, unless set).

HELP
        exec .venv/bin/netgym-envapi --help
    fi
done
emulator=""
envapi=""
# The envapi first, then the emulator service it uses; a second signal meanwhile
# does not cut this short (the emulator would be left running).
stop() {
    trap '' INT TERM HUP
    if [[ -n "$envapi" ]] && kill -TERM "$envapi" 2>/dev/null; then
        for _ in $(seq 100); do
            kill -0 "$envapi" 2>/dev/null || break
            sleep 0.2
        done
        kill -KILL "$envapi" 2>/dev/null || true
        wait "$envapi" 2>/dev/null || true
    fi
    if [[ -n "$emulator" ]]; then
        kill -TERM "$emulator" 2>/dev/null || true
        wait "$emulator" 2>/dev/null || true
    fi
}
die_of() {  # stop, then end as killed by the signal, so that a calling script stops too
    stop
    trap - EXIT "$1"
    kill -"$1" $$
}
trap 'die_of INT' INT
trap 'die_of TERM' TERM
trap 'die_of HUP' HUP
trap stop EXIT
emulator_port="${NETGYM_EMULATOR_PORT:-8002}"
# Instances are started by the envapi alone: the emulator service and the envapi
# share a token that no other local process knows.
NETGYM_EMULATOR_TOKEN="${NETGYM_EMULATOR_TOKEN:-$(.venv/bin/python -c 'import secrets; print(secrets.token_hex(16))')}"
export NETGYM_EMULATOR_TOKEN
# In a session of its own, so that Ctrl-C reaches the envapi alone: the
# emulator service is stopped once the envapi, which uses it, has stopped.
# Both get SIGTERM from Linux when this script dies without stopping them (a
# SIGKILL): none of them is left holding its ports.
setsid setpriv --pdeathsig TERM -- .venv/bin/netgym-emulator --port "$emulator_port" \
    --games-dir "${NETGYM_EMULATOR_GAMES_DIR:-games}" &
emulator=$!
export NETGYM_EMULATOR_URL="${NETGYM_EMULATOR_URL:-http://127.0.0.1:$emulator_port}"
setpriv --pdeathsig TERM -- .venv/bin/netgym-envapi "$@" &
envapi=$!
status=0
wait "$envapi" || status=$?
exit "$status"
