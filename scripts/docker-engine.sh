#!/usr/bin/env bash
# Make sure a Docker engine with Compose answers, for the Compose tests.
#
# On a machine whose engine already runs, this only checks for Compose and the
# base image. Otherwise, as root on Debian (the CI machines), it
#   1. installs what is missing of docker.io, docker-compose (v1) and debootstrap,
#   2. starts dockerd in the background with its state under $NETGYM_DOCKER_ROOT
#      (it keeps running afterwards, so later runs reuse its image cache),
#   3. pulls the base image the Dockerfiles start from (debian:bookworm-slim), or,
#      where no registry can be reached, makes it with debootstrap.
# Usage: scripts/docker-engine.sh    (prints the engine's version when it is up)
set -euo pipefail
root="${NETGYM_DOCKER_ROOT:-/tmp/netgym-dockerd}"
base_image="debian:bookworm-slim"

install() {
    if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
        echo "cannot install $* here: only root on Debian can (or install them yourself)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! docker info >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "no Docker engine answers, and only root can start one here" >&2
        exit 1
    fi
    if ! command -v dockerd >/dev/null; then
        install docker.io
        # Where systemd runs, the package has started its own engine: use that one.
        command -v systemctl >/dev/null && systemctl start docker >/dev/null 2>&1 || true
    fi
fi
if ! docker info >/dev/null 2>&1; then
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

if ! command -v docker-compose >/dev/null && ! docker compose version >/dev/null 2>&1; then
    install docker-compose
fi

if ! docker image inspect "$base_image" >/dev/null 2>&1 \
    && ! timeout 120 docker pull -q "$base_image" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || install debootstrap
    rootfs="$root/rootfs"
    rm -rf "$rootfs"
    debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
    tar -C "$rootfs" -c . | docker import - "$base_image" >/dev/null
    rm -rf "$rootfs"
fi
# The three images take about 3 GB, and a build needs room beside them.
data_root=$(docker info --format '{{.DockerRootDir}}' 2>/dev/null || true)
if [[ -d "$data_root" ]]; then
    "$(dirname "$0")/disk-space.sh" "$data_root" 6000 \
        "building netgym's images (docker image prune frees old ones)"
fi
docker version --format 'Docker engine {{.Server.Version}}'
