# onecrew-chat: `docker build -t onecrew-chat .`, then `docker run onecrew-chat` (serve) or `... onecrew-chat worker`.
# Two stages: the build stage installs the package into a virtualenv; the runtime stage copies only that virtualenv
# and runs as an unprivileged user. PORT and HOST are the service's own settings (serve reads them).
# ONECREW_MODE=production: a container missing a production setting refuses to start in one line naming it,
# rather than fall back to SQLite or the emulator (`-e ONECREW_MODE=development` for a demo container).

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/venv \
 && /opt/venv/bin/pip install --upgrade pip \
 && /opt/venv/bin/pip install .

FROM python:3.11-slim AS runtime
RUN groupadd --system --gid 10001 onecrew \
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
