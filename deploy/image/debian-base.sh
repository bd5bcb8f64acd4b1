#!/usr/bin/env bash
# A base image for the Dockerfile made from Debian's own packages, for machines where no image
# registry answers (the Dockerfile's default base is the official python image):
#
#   deploy/image/debian-base.sh [TAG]          # default TAG: modelops-base:bookworm
#   make image BASE_IMAGE=modelops-base:bookworm
#
# debootstrap a minimal Debian (minbase) with python3, python3-venv and ca-certificates, drop
# what no container needs (apt lists and caches, documentation, man pages, translations, iconv's
# converters) and
# `docker import` the tree. Needs root, debootstrap, Docker and a Debian mirror (MIRROR).
set -euo pipefail

SUITE=${SUITE:-bookworm}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
TAG=${1:-modelops-base:$SUITE}

work=$(mktemp -d "${TMPDIR:-/tmp}/modelops-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"

debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates --components=main \
  "$SUITE" "$root" "$MIRROR" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2
  echo "debootstrap of $SUITE from $MIRROR failed (log above)" >&2
  exit 1
}

chroot "$root" apt-get clean
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
  "$root"/var/log/* "$root"/tmp/* "$root"/root/.cache
# Translations of the base tools' messages; the C.UTF-8 locale is built into libc.
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
# glibc's converters between legacy character sets (iconv); Python brings its own codecs.
rm -rf "$root"/usr/lib/x86_64-linux-gnu/gconv
# The container runtime provides /dev, /proc and /sys.
rm -rf "${root:?}"/dev/* "${root:?}"/proc/* "${root:?}"/sys/*

tar -C "$root" --numeric-owner -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' \
  --message "debootstrap --variant=minbase $SUITE + python3 python3-venv ca-certificates" \
  - "$TAG" >/dev/null
echo "$TAG"
