# The emulator service: FCEUX instances under Xvfb, driven by netgym's Lua bridge.
# Build from the repository root: docker build -f docker/emulator.Dockerfile .
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY docker/extra-ca/ /usr/local/share/ca-certificates/extra/
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv cc65 \
    && update-ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, in a layer of their own: a code change does not reinstall them.
COPY pyproject.toml docker/requirements.py docker/check_index.py /src/
RUN python /src/check_index.py \
    && python /src/requirements.py /src/pyproject.toml emulator > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY README.md /src/
COPY client /src/client
COPY services /src/services
# The package only: a new config in agents/configs leaves this layer as it was.
COPY agents/netgym_agent /src/agents/netgym_agent
RUN pip wheel --no-deps --wheel-dir /dist /src
# The games in the repository, with the ROMs they build from source. A game
# folder of the user's whose build fails only warns, as at start: the service
# lists that game with its problem.
COPY games /games
RUN for build in /games/*/build.sh; do \
        [ -f "$build" ] || continue; \
        bash "$build" || echo "warning: $build failed; that game has no ROM in this image" >&2; \
    done

FROM debian:bookworm-slim
ENV DEBIAN_FRONTEND=noninteractive
# fceux: the emulator; xvfb: its screen; lua-socket: the bridge's TCP socket;
# efp: Escape from Pong's ROM; cc65: for game folders that build their ROM.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        python3 fceux xvfb lua5.1 lua-socket efp cc65 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home netgym
COPY --from=build /opt/venv /opt/venv
# netgym itself in a layer of its own: a code change leaves the one above,
# with every dependency, as it was.
COPY --from=build /dist /tmp/dist
RUN PIP_NO_CACHE_DIR=1 /opt/venv/bin/pip install --no-deps --no-index \
        --disable-pip-version-check /tmp/dist/*.whl \
    && rm -rf /tmp/dist
COPY --from=build --chown=netgym:netgym /games /games
COPY docker/emulator-entrypoint.sh /usr/local/bin/netgym-emulator-entrypoint
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 \
    NETGYM_EMULATOR_HOST=0.0.0.0 NETGYM_EMULATOR_BRIDGE_HOST=0.0.0.0 \
    NETGYM_EMULATOR_GAMES_DIR=/games
USER netgym
WORKDIR /home/netgym
EXPOSE 8002
HEALTHCHECK --interval=5s --timeout=5s --start-period=10s --retries=3 \
    CMD python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8002/v1/health', timeout=4)"
ENTRYPOINT ["netgym-emulator-entrypoint"]
CMD ["netgym-emulator"]
