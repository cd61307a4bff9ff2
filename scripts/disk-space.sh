#!/usr/bin/env bash
# Warn, never fail, when a folder's file system has less room than a step needs.
# Usage: scripts/disk-space.sh FOLDER MEGABYTES WHAT   (WHAT: what needs the room)
set -uo pipefail
free_mb="" mount=""
read -r free_mb mount < <(df -Pm "$1" 2>/dev/null | awk 'NR == 2 {print $4, $6}')
if [[ "$free_mb" =~ ^[0-9]+$ && "$free_mb" -lt "$2" ]]; then
    echo "warning: only ${free_mb} MB free on ${mount}; $3 needs about $2 MB" >&2
fi
exit 0
