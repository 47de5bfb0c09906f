# hotline in a container: the same pjsua2 build as `make pjsua2`, then `hotline serve`.
# (It cannot be built on the development machines, which have no Docker engine; keep it minimal
# and in step with scripts/install-debian.sh and scripts/build-pjsua2.sh.)
FROM debian:bookworm-slim

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential \
      swig uuid-dev pkg-config dpkg-dev ca-certificates redis-server kamailio sox \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/hotline
COPY pyproject.toml README.md ./
COPY hotline ./hotline
COPY scripts ./scripts
COPY config ./config

RUN python3 -m venv .venv \
 && .venv/bin/pip install --no-cache-dir . \
 && HOTLINE_CACHE=/opt/pjsua2 bash scripts/build-pjsua2.sh .venv/bin/python \
 && .venv/bin/python -c "import pjsua2"

# SIP and RTP carry addresses inside their messages, so run it on the host's network and tell it
# the address to listen on and announce:
#   docker run --network host -e HOTLINE_SIP__HOST=192.0.2.10 -v hotline:/var/lib/hotline hotline
ENV HOTLINE_HTTP__HOST=0.0.0.0 HOTLINE_DATA_DIR=/var/lib/hotline
VOLUME /var/lib/hotline
CMD [".venv/bin/hotline", "serve"]
