#!/usr/bin/env bash
# What CI needs for the deployment tests (tests/deploy) on a fresh Debian bookworm machine, as root:
# Docker engine + docker-compose 1.29 + debootstrap from Debian's packages, a running dockerd, and
# the local base image harness-base:bookworm. Idempotent: whatever is already there is kept.
#
# Usage: bash docker/ci-setup.sh
# Env:   HARNESS_DOCKERD_LOG  where a dockerd started here logs (default /tmp/harness-dockerd.log)
# Exit codes: 0 ready; 1 something could not be set up (the message says what); 2 not root.
set -euo pipefail
cd "$(dirname "$0")/.."

[ "$(id -u)" = 0 ] || { echo "ci-setup: run as root (apt-get, dockerd, debootstrap)" >&2; exit 2; }
started=$(date +%s)
log="${HARNESS_DOCKERD_LOG:-/tmp/harness-dockerd.log}"
packages=(docker.io docker-compose debootstrap ca-certificates)

missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "ci-setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

engine_up() { docker info >/dev/null 2>&1; }

start_dockerd() {
    echo "ci-setup: starting dockerd $* (log: $log)"
    setsid nohup dockerd "$@" >>"$log" 2>&1 </dev/null &
    for _ in $(seq 60); do
        engine_up && return 0
        kill -0 $! 2>/dev/null || return 1  # dockerd exited
        sleep 1
    done
    return 1
}

if ! engine_up; then
    # A dockerd that is running but not answering yet (a second run right after the first): wait.
    if pgrep -x dockerd >/dev/null; then
        for _ in $(seq 30); do engine_up && break; sleep 1; done
    fi
fi
if ! engine_up; then
    # Some sandboxes refuse iptables; the tests only need the bridge and ports on 127.0.0.1.
    start_dockerd || { pid=$(pgrep -x dockerd || true); [ -z "$pid" ] || kill "$pid"; sleep 2;
                       start_dockerd --iptables=false; } || {
        tail -n 20 "$log" >&2; echo "ci-setup: dockerd did not start; see $log" >&2; exit 1; }
fi
docker info --format 'ci-setup: Docker engine {{.ServerVersion}}, storage {{.Driver}}'
docker-compose version --short | sed 's/^/ci-setup: docker-compose /'

# Stacks an interrupted test run left behind (tests/deploy names them e2e* and hxe2e*): their
# restart policy brings them back with the engine, and their legacy would keep cutover tests away.
test_stack='^(harness-e2e[0-9a-f]{8}|hxe2e[0-9a-f]{8})'
leftovers=$(docker ps -a --filter label=harness.stack --format '{{.ID}} {{.Label "harness.stack"}}' \
            | awk '$2 ~ /^(hx)?e2e[0-9a-f]+$/ { print $1 }')
if [ -n "$leftovers" ]; then
    echo "ci-setup: removing containers of interrupted test runs"
    docker rm -f $leftovers >/dev/null
fi
docker network ls --format '{{.Name}}' | grep -E "$test_stack" | xargs -r docker network rm >/dev/null || true
docker volume ls --format '{{.Name}}' | grep -E "$test_stack" | xargs -r docker volume rm >/dev/null || true

bash docker/build-base-image.sh
echo "ci-setup: ready in $(( $(date +%s) - started ))s"
