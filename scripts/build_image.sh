#!/usr/bin/env bash
# Build the production image (./Dockerfile) with podman, on a machine with no container registry:
#
#   scripts/build_image.sh [TAG]          # default TAG: localhost/ecg-ray:dev
#
# 1. Installs podman and debootstrap from Debian when they are missing (root or sudo).
# 2. The base: ECG_IMAGE_BASE if set (e.g. docker.io/library/debian:bookworm-slim where a registry
#    is reachable), else a Debian 12 minbase root file system made once by debootstrap and imported
#    as localhost/ecg-debootstrap:bookworm (kept: later builds reuse it and their cached layers).
# 3. Builds with `podman build --isolation chroot` (podman run does not work on hosts whose cgroups
#    are in hybrid mode; building does). pip and npm inside the build trust this machine's CA bundle
#    (ECG_BUILD_CA) through a build secret named by the build command only; nothing of it enters
#    the image.
# 4. Removes the image that TAG named before and the layers no build uses any more (podman image
#    prune: untagged images without children), keeping the cache of the current one.
# Prints the image id last (stdout); everything else goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=${1:-localhost/ecg-ray:dev}
BASE_TAG=localhost/ecg-debootstrap:bookworm
CACHE=localhost/ecg-ray-build
MIRROR=${ECG_DEBIAN_MIRROR:-http://deb.debian.org/debian}
CA=${ECG_BUILD_CA:-/etc/ssl/certs/ca-certificates.crt}
log() { printf '[build_image] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo -n "$@"; else return 1; fi; }

# podman's root storage and chroot builds need root.
if [ "$(id -u)" != 0 ]; then log "run as root (podman build --isolation chroot with root storage)"; exit 3; fi

missing=()
command -v podman >/dev/null || missing+=(podman)
[ -n "${ECG_IMAGE_BASE:-}" ] || command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  command -v apt-get >/dev/null || { log "cannot install ${missing[*]}: no apt-get here"; exit 3; }
  log "installing ${missing[*]} from Debian"
  as_root apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

base=${ECG_IMAGE_BASE:-}
if [ -z "$base" ]; then
  base=$BASE_TAG
  if ! podman image exists "$base"; then
    root=$(mktemp -d /var/tmp/ecg-debootstrap.XXXXXX)
    trap 'rm -rf "$root"' EXIT
    log "making a Debian 12 base with debootstrap (about a minute)"
    nice -n 10 debootstrap --variant=minbase bookworm "$root" "$MIRROR" >&2
    # What debian:bookworm-slim has and minbase lacks: the update and security suites; what it
    # leaves out: downloaded packages, lists, docs.
    rm -f "$root/etc/apt/sources.list"
    cat > "$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${MIRROR%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
      "$root"/usr/share/man/* "$root"/var/log/*.log "$root"/var/log/apt/*
    tar -C "$root" -c . | podman import --message "debootstrap --variant=minbase bookworm $MIRROR" - "$base" >&2
    rm -rf "$root"
    trap - EXIT
  fi
fi

# pip and npm trust the CA bundle through the Dockerfile's optional build secret build_ca: a
# secret mount, never a layer (a -v mount would leave its mount point in the image).
secrets=()
if [ -f "$CA" ]; then secrets=(--secret "id=build_ca,src=$CA"); fi

old=$(podman image inspect --format '{{.Id}}' "$TAG" 2>/dev/null || true)
log "building $TAG from $base"
build() { nice -n 10 podman build --isolation chroot --format docker --pull=never --layers \
  --build-arg "BASE=$base" "${secrets[@]}" "$@" . >&2; }
# The two builder stages are tagged too, so that their cached layers are not dangling: the prune
# below then removes only what no build uses any more (older builds' layers), and the next build
# still finds npm's and pip's work cached. Later calls reuse the layers the earlier ones made.
build --target web -t "$CACHE:web"
build --target python -t "$CACHE:python"
build -t "$TAG"
new=$(podman image inspect --format '{{.Id}}' "$TAG")
if [ -n "$old" ] && [ "$old" != "$new" ]; then
  podman rmi "$old" >/dev/null 2>&1 || true  # fails while another tag names it: then it stays
fi
podman image prune -f >/dev/null
echo "$new"
