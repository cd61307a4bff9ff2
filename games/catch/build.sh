#!/usr/bin/env bash
# Build catch.nes (next to this script) from catch.s with cc65's ca65 + ld65.
# Usage: games/catch/build.sh   (from any directory; needs Debian's cc65)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CA65="${CA65:-ca65}"
LD65="${LD65:-ld65}"

for tool in "$CA65" "$LD65"; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        echo "build.sh: $tool not found; install cc65 (apt-get install cc65)" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
partial="$here/.catch.nes.tmp.$$"
trap 'rm -rf "$work" "$partial"' EXIT

"$CA65" -o "$work/catch.o" "$here/catch.s"
"$LD65" -C "$here/nes.cfg" -o "$work/catch.nes" "$work/catch.o"

# iNES header (16 bytes) + 16 KiB PRG + 8 KiB CHR
expected=$((16 + 16384 + 8192))
actual="$(wc -c <"$work/catch.nes")"
if [ "$actual" -ne "$expected" ]; then
    echo "build.sh: catch.nes is $actual bytes, expected $expected" >&2
    exit 1
fi

# Copy next to the target, then rename, so a reader never sees half a ROM.
cp "$work/catch.nes" "$partial"
mv -f "$partial" "$here/catch.nes"
echo "built $here/catch.nes ($actual bytes)"
