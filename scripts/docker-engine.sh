#!/usr/bin/env bash
# Make sure a Docker engine answers `docker info`, for the Compose tests.
#
# On a machine with an engine already running this does nothing. Otherwise, as
# root on Debian with no container registry at hand (the CI machines), it
#   1. installs docker.io, docker-compose (v1) and debootstrap,
#   2. starts dockerd in the background with its state under $NETGYM_DOCKER_ROOT,
#   3. makes the base image the Dockerfiles start from (debian:bookworm-slim)
#      with debootstrap, since no image can be pulled.
# Usage: scripts/docker-engine.sh    (prints the engine's version when it is up)
set -euo pipefail
root="${NETGYM_DOCKER_ROOT:-/tmp/netgym-dockerd}"
base_image="debian:bookworm-slim"

if ! docker info >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "no Docker engine answers, and only root can start one here" >&2
        exit 1
    fi
    if ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null \
        || ! command -v debootstrap >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            docker.io docker-compose debootstrap >/dev/null
    fi
    mkdir -p "$root"
    # No iptables and no default bridge: this sandbox allows neither; Compose
    # project networks still connect the containers.
    nohup dockerd --iptables=false --ip-masq=false --bridge=none \
        --data-root "$root/data" --exec-root "$root/exec" --pidfile "$root/dockerd.pid" \
        >"$root/dockerd.log" 2>&1 &
    for _ in $(seq 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
    if ! docker info >/dev/null 2>&1; then
        echo "dockerd did not start; its log:" >&2
        tail -20 "$root/dockerd.log" >&2
        exit 1
    fi
fi

if ! docker image inspect "$base_image" >/dev/null 2>&1; then
    if ! command -v debootstrap >/dev/null; then
        echo "$base_image is missing and cannot be pulled or made (no debootstrap)" >&2
        exit 1
    fi
    rootfs="$root/rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$rootfs" -c . | docker import - "$base_image" >/dev/null
    rm -rf "$rootfs"
fi
docker version --format 'Docker engine {{.Server.Version}}'
