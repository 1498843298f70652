# onecrew-chat: `docker build -t onecrew-chat .` (or `podman build`), then run `serve` (the default) or `worker`
# with the production settings (docs/operations.md, "Containers"). Two stages: the build stage installs the locked
# dependencies, then the package, into a virtualenv; the runtime stage copies only that virtualenv, drops pip and
# setuptools, and runs as an unprivileged user. PORT and HOST are the service's own settings (serve reads them).
#
# The base image is pinned by exact tag and by digest (the multi-platform index of that tag), so a rebuild
# starts from the same bytes; move both together, on purpose (docs/operations.md, "The image").
#
# ONECREW_MODE=production: a container missing a production setting refuses to start in one line naming it,
# rather than fall back to SQLite or the emulator (`-e ONECREW_MODE=development` for a demo container).
ARG BASE_IMAGE=python:3.11.14-slim-bookworm@sha256:65a93d69fa75478d554f4ad27c85c1e69fa184956261b4301ebaf6dbb0a3543d

FROM ${BASE_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
# A virtualenv without pip: the base image's own pip (not upgraded) installs into it, so none is left behind.
RUN python -m venv --without-pip /opt/venv
# The locked dependencies, each checked against its hash, before any source: a change to the code or the docs
# reuses this layer instead of installing everything again.
COPY requirements.lock ./
RUN python -m pip --python /opt/venv/bin/python install --require-hashes --no-deps -r requirements.lock
# Then the package alone (its dependencies are already there, at their locked versions).
COPY pyproject.toml LICENSE ./
COPY src ./src
RUN python -m pip --python /opt/venv/bin/python install --no-deps . \
 && python -m pip --python /opt/venv/bin/python check

FROM ${BASE_IMAGE} AS runtime
# No installer or build tool in what runs: the base image's pip and setuptools go too.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
 && groupadd --system --gid 10001 onecrew \
 && useradd --system --uid 10001 --gid onecrew --home-dir /app --shell /usr/sbin/nologin onecrew \
 && mkdir -p /app/var \
 && chown onecrew:onecrew /app/var
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8000 \
    ONECREW_MODE=production \
    ONECREW_LOG_FORMAT=json \
    ONECREW_DATA_DIR=/app/var
WORKDIR /app
USER onecrew:onecrew
EXPOSE 8000
# Liveness of `serve` on whatever PORT says; a `worker` container overrides or disables it (see compose.yaml).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8000'), timeout=2)"]
ENTRYPOINT ["onecrew-chat"]
CMD ["serve"]
