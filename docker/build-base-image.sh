#!/usr/bin/env bash
# Build the local base image (Debian bookworm minbase + python3 + venv) with debootstrap and
# `docker import`, for machines that reach Debian's package mirrors but no image registry.
#
# Usage: docker/build-base-image.sh [--force] [TAG]     (TAG default: harness-base:bookworm)
# Env:   DEBIAN_MIRROR  mirror URL to debootstrap from; default: the first bookworm URI in this
#                       machine's own apt sources (/etc/apt/sources.list, sources.list.d/*).
#        DEBIAN_SUITE   default bookworm (its python3 is 3.11, which the project requires).
# Exit codes: 0 image present or built; 1 build failed; 2 bad usage or missing tool.
# Idempotent: an existing TAG is kept unless --force is given.
set -euo pipefail

force=0
tag=""
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
        -*) echo "unknown option $arg; see --help" >&2; exit 2 ;;
        *) tag="$arg" ;;
    esac
done
tag="${tag:-harness-base:bookworm}"
suite="${DEBIAN_SUITE:-bookworm}"

for tool in docker debootstrap tar; do
    command -v "$tool" >/dev/null || { echo "$tool not found: run docker/ci-setup.sh or apt-get install $tool" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "debootstrap needs root: run as root" >&2; exit 2; }

if [ "$force" = 0 ] && docker image inspect "$tag" >/dev/null 2>&1; then
    echo "base image $tag already present (use --force to rebuild)"
    exit 0
fi

# The mirror this machine's apt already uses: deb822 *.sources stanzas first, then one-line lists.
find_mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk -v suite="$suite" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; suites = ""; deb = 0
                for (i = 1; i <= NF; i++) {
                    if ($i ~ /^Types:/ && (" " $i " ") ~ /[ \t]deb[ \t]/) deb = 1
                    if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                    if ($i ~ /^Suites:/) { suites = " " $i " "; sub(/^ Suites:/, "", suites) }
                }
                if (deb && uris != "" && index(suites, " " suite " ")) { split(uris, u, " "); print u[1]; exit }
            }' "$f"
    done
    for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -f "$f" ] || continue
        awk -v suite="$suite" '$1 == "deb" {
                i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "$f"
    done
}
mirror="${DEBIAN_MIRROR:-$(find_mirror | head -n 1)}"
[ -n "$mirror" ] || { echo "no $suite mirror in /etc/apt/sources*; set DEBIAN_MIRROR" >&2; exit 2; }

rootfs="$(mktemp -d /tmp/harness-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT

echo "debootstrap $suite from $mirror into $rootfs"
start=$(date +%s)
debootstrap --variant=minbase \
    --include=python3,python3-venv,python3-pip,ca-certificates \
    "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
        tail -n 30 "$rootfs.log" >&2; echo "debootstrap failed; full log: $rootfs.log" >&2; exit 1; }

# Slim the tree: package lists and caches, docs, man pages, other locales.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
       "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
# The image has the same apt source the host used, so `apt-get install` works in a derived image.
printf 'deb %s %s main\n' "$mirror" "$suite" >"$rootfs/etc/apt/sources.list"

tar -C "$rootfs" -c . | docker import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["python3"]' \
    - "$tag" >/dev/null
rm -f "$rootfs.log"
docker run --rm "$tag" python3 -c 'import sys, venv, ensurepip; assert sys.version_info >= (3, 11), sys.version'
echo "built $tag in $(( $(date +%s) - start ))s"
