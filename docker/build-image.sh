#!/usr/bin/env bash
# Build the harness image from wheels made on this host (no package index is needed in the build).
#
# Usage: docker/build-image.sh [TAG]          (TAG default: harness:VERSION, also tagged harness:latest)
# Env:   BASE_IMAGE  base image (default python:3.11-slim; docker/build-base-image.sh makes
#                    harness-base:bookworm where no image registry is reachable)
#        PIP         pip used to build the wheels (default: python3 -m pip)
# Exit codes: 0 built; 1 failed.
set -euo pipefail
cd "$(dirname "$0")/.."

base="${BASE_IMAGE:-python:3.11-slim}"
pip=(${PIP:-python3 -m pip})
version="$(python3 -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')"
tag="${1:-harness:$version}"
context=build/docker

mkdir -p "$context/wheels"
rm -f "$context"/wheels/harness-*.whl
# The project's wheel plus a wheel of every dependency; wheels already here are reused.
"${pip[@]}" wheel --quiet --wheel-dir "$context/wheels" --find-links "$context/wheels" .
# The build reads only the wheels: drop what this checkout's last build left in build/.
rm -rf build/lib build/bdist.*

docker build --build-arg "BASE_IMAGE=$base" -f Dockerfile -t "$tag" "$context"
[ "$tag" = "harness:latest" ] || docker tag "$tag" harness:latest
echo "built $tag from $base"
