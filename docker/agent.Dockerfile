# The training agent: stable-baselines3 on the envapi's envs, on the GPU when
# there is one. Build from the repository root:
#   docker build -f docker/agent.Dockerfile .
# PyTorch comes from PyPI with its CUDA libraries, unless docker/wheels/ holds a
# build of the pinned version (a CPU-only one for machines with no GPU).
FROM debian:bookworm-slim AS build
ARG TORCH_VERSION=2.13.0
ENV DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_FIND_LINKS=/wheels
COPY docker/extra-ca/ /usr/local/share/ca-certificates/extra/
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates python3 python3-venv \
    && update-ca-certificates \
    && rm -rf /var/lib/apt/lists/*
RUN python3 -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY docker/check_index.py /src/
RUN python /src/check_index.py
COPY docker/wheels/ /wheels/
# PyTorch pinned first, so that no resolver picks another build.
RUN pip install "torch==${TORCH_VERSION}"
COPY pyproject.toml docker/requirements.py /src/
RUN python /src/requirements.py /src/pyproject.toml agent > /tmp/requirements.txt \
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
    && useradd --uid 1000 --create-home netgym \
    && mkdir -p /work/runs && chown netgym:netgym /work /work/runs
COPY --from=build /opt/venv /opt/venv
# netgym itself in a layer of its own: a code change leaves the one above,
# with every dependency, as it was.
COPY --from=build /dist /tmp/dist
RUN PIP_NO_CACHE_DIR=1 /opt/venv/bin/pip install --no-deps --no-index \
        --disable-pip-version-check /tmp/dist/*.whl \
    && rm -rf /tmp/dist
COPY --chown=netgym:netgym agents/configs /work/configs
ENV PATH=/opt/venv/bin:$PATH PYTHONUNBUFFERED=1
USER netgym
WORKDIR /work
ENTRYPOINT ["netgym-train"]
CMD ["train", "configs/pong_ppo.yaml"]
