# The envapi: serves Atari, the Gymnasium classics and the emulator's games.
# Build from the repository root: docker build -f docker/envapi.Dockerfile .
FROM debian:bookworm-slim AS build
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt
COPY docker/extra-ca/ /usr/local/share/ca-certificates/extra/
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
    && update-ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
# Dependencies first, in a layer of their own: a code change does not reinstall them.
COPY pyproject.toml docker/requirements.py docker/check_index.py /src/
RUN python /src/check_index.py \
    && python /src/requirements.py /src/pyproject.toml envapi > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY README.md /src/
COPY client /src/client
COPY services /src/services
# The package only: a new config in agents/configs leaves this layer as it was.
COPY agents/netgym_agent /src/agents/netgym_agent
RUN pip wheel --no-deps --wheel-dir /dist /src

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 1000 --create-home netgym
COPY --from=build /opt/venv /opt/venv
# netgym itself in a layer of its own: a code change leaves the one above,
# with every dependency, as it was.
COPY --from=build /dist /tmp/dist
RUN PIP_NO_CACHE_DIR=1 /opt/venv/bin/pip install --no-deps --no-index \
        --disable-pip-version-check /tmp/dist/*.whl \
    && rm -rf /tmp/dist
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1 NETGYM_HOST=0.0.0.0
USER netgym
WORKDIR /home/netgym
EXPOSE 8000 8001
# /v1/health pings the data port and starts a worker process.
HEALTHCHECK --interval=5s --timeout=10s --start-period=20s --retries=3 \
    CMD python3 -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"NETGYM_PORT\", \"8000\")}/v1/health', timeout=9)"
CMD ["netgym-envapi"]
