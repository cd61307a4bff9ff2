#!/bin/sh
# Build the ROM of every game folder that makes its own (build.sh), when the
# folder can be written (a bind mount of your games/), then start the service.
# A failed build only warns: that game is then listed with its problem.
set -eu
games="${NETGYM_EMULATOR_GAMES_DIR:-/games}"
for build in "$games"/*/build.sh; do
    [ -f "$build" ] || continue
    folder="$(dirname "$build")"
    if [ ! -w "$folder" ]; then
        echo "warning: user $(id -u) cannot write $folder, so its build.sh did not run" \
            "(set NETGYM_UID and NETGYM_GID to the owner of games/)" >&2
        continue
    fi
    bash "$build" >/dev/null || echo "warning: $build failed; see GET /v1/games" >&2
done
exec "$@"
