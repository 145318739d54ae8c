# syntax=docker/dockerfile:1
# boltlink's image: Python 3.11 and boltlink.pyz, nothing else.
#
#   docker build -t boltlink:0.1.0 --build-arg SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)" .
#   docker run --rm -p 5000:5000 --read-only -v boltlink-data:/var/lib/boltlink boltlink:0.1.0
#
# docs/deploy.md walks through compose and Kubernetes; tests/deploy/ runs the
# pre-extraction, ENTRYPOINT + CMD and HEALTHCHECK lines below outside a container.

# A pyz is tied to the Python minor version and to the platform it was built
# on, so the build stage starts from the very image the runtime uses.
FROM python:3.11-slim AS base

FROM base AS build
WORKDIR /src
# build.py takes the zip timestamps from the commit time; there is no .git in
# the context, so pass it to get the same bytes as `python3 build.py` gives.
ARG SOURCE_DATE_EPOCH
COPY build.py requirements.lock ./
COPY boltlink/ boltlink/
# build.py installs its pinned tools (pip, shiv) and the locked wheels into .build/.
RUN --mount=type=cache,target=/root/.cache/pip python3 build.py --output /dist/boltlink.pyz

FROM base
# The official image ships the standard library without .pyc files, and a
# non-root process on a read-only filesystem cannot write them: compile once
# here, or every process start compiles ~0.5 s of the modules it imports.
RUN python3 -m compileall -q -j 0 --invalidation-mode unchecked-hash /usr/local/lib/python3.11 \
 && groupadd --system --gid 10001 boltlink \
 && useradd --system --uid 10001 --gid boltlink --home-dir /var/lib/boltlink --shell /usr/sbin/nologin boltlink \
 && install -d -o boltlink -g boltlink -m 0750 /var/lib/boltlink

COPY --from=build --chmod=0555 /dist/boltlink.pyz /usr/local/bin/boltlink

ENV SHIV_ROOT=/opt/boltlink \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    BOLTLINK_DATA_DIR=/var/lib/boltlink \
    BOLTLINK_HOST=0.0.0.0 \
    BOLTLINK_PORT=5000 \
    BOLTLINK_LOG_FORMAT=json

# Extract the pyz's site-packages into SHIV_ROOT now, compiled, and make it
# read-only: shiv finds SHIV_ROOT/boltlink_<build id>/site-packages and
# writes nothing, so a container starts without extracting or compiling and
# runs with a read-only root filesystem. Hash-based .pyc files stay valid
# whatever the image's file times become (BuildKit may rewrite them).
RUN SHIV_COMPILE_PYC=0 boltlink --version \
 && python3 -m compileall -q -f -j 0 --invalidation-mode unchecked-hash "$SHIV_ROOT" \
 && chmod -R a-w "$SHIV_ROOT"

# Everything boltlink writes (SQLite, spool, logs, run/) goes to the data
# directory: mount a volume there.
WORKDIR /var/lib/boltlink
VOLUME ["/var/lib/boltlink"]
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 5000
# SIGTERM is `boltlink stop`: drain, let in-flight requests finish (kill_timeout), exit 0.
STOPSIGNAL SIGTERM
# No curl in the image: Python asks /health, which touches no dependency.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('BOLTLINK_PORT', '5000'), timeout=4)"]
ENTRYPOINT ["boltlink"]
CMD ["start-cluster", "--foreground"]
