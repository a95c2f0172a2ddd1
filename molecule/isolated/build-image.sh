#!/usr/bin/env bash
# Build the node image for the isolated molecule scenario without a registry:
# debootstrap a minimal Debian rootfs, pack it as a tarball under .cache/ and
# `podman import` it. The tarball and the image tag are keyed by a hash of
# what goes into the rootfs, so a second run only retags.
#
# Usage: molecule/isolated/build-image.sh   (as root; prints the image name)
# Environment:
#   DEBIAN_MIRROR   Debian archive to debootstrap from (default deb.debian.org)
#   NODE_IMAGE      image name the scenario uses (default below)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
export CONTAINERS_CONF="${CONTAINERS_CONF:-$here/containers.conf}"

suite=bookworm
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
image="${NODE_IMAGE:-localhost/vault-batch-client-node:$suite}"
cache_dir="$repo/.cache/isolated"
# Part of the cache key: raise it when a change to the steps below changes
# what goes into the rootfs, so that existing images are rebuilt.
recipe_version=1

# What a Nomad client node needs before the role runs: Python for Ansible's
# modules, venv and pip for the processor's virtual environment, and CA
# certificates for pip's HTTPS downloads.
packages=(ca-certificates python3 python3-pip python3-venv)

# Hosts behind a TLS-inspecting proxy trust its CA through
# /usr/local/share/ca-certificates. The node needs the same CAs, or pip
# cannot reach the package index from inside the container.
shopt -s nullglob
extra_cas=(/usr/local/share/ca-certificates/*.crt)
shopt -u nullglob

key="$(
    {
        echo "$suite $mirror"
        printf '%s\n' "${packages[@]}"
        cat "${extra_cas[@]}" /dev/null
        echo "recipe $recipe_version"
    } | sha256sum | cut -c1-16
)"
tarball="$cache_dir/rootfs-$suite-$key.tar"
keyed_image="${image%:*}:$key"

log() { echo "build-image: $*" >&2; }

if podman image exists "$keyed_image"; then
    podman tag "$keyed_image" "$image"
    log "image $keyed_image is up to date"
    echo "$image"
    exit 0
fi

if [[ ! -s "$tarball" ]]; then
    if ((EUID != 0)) || ! command -v debootstrap >/dev/null; then
        log "building the rootfs needs root and debootstrap: run tests/support/install-podman.sh and this script as root"
        exit 1
    fi
    mkdir -p "$cache_dir"
    rootfs="$(mktemp -d "$cache_dir/rootfs.XXXXXX")"
    trap 'rm -rf --one-file-system "$rootfs" "$tarball.partial"' EXIT

    log "debootstrap $suite from $mirror into $rootfs"
    started=$SECONDS
    debootstrap --variant=minbase --components=main \
        --include="$(IFS=,; echo "${packages[*]}")" \
        "$suite" "$rootfs" "$mirror" >"$cache_dir/debootstrap.log" 2>&1 || {
        log "debootstrap failed. Last lines of $cache_dir/debootstrap.log:"
        tail -n 30 "$cache_dir/debootstrap.log" >&2
        exit 1
    }
    log "debootstrap took $((SECONDS - started)) s"

    if ((${#extra_cas[@]})); then
        cp "${extra_cas[@]}" "$rootfs/usr/local/share/ca-certificates/"
        chroot "$rootfs" update-ca-certificates >/dev/null
    fi
    # Package caches and lists only make the image larger. A task that
    # installs packages in the container must run apt-get update first.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*

    tar --numeric-owner --xattrs -C "$rootfs" -cf "$tarball.partial" .
    mv "$tarball.partial" "$tarball"
    rm -rf --one-file-system "$rootfs"
    trap - EXIT
fi

log "podman import $tarball"
started=$SECONDS
podman import --quiet --change 'CMD ["sleep", "infinity"]' "$tarball" "$keyed_image" >/dev/null
podman tag "$keyed_image" "$image"
log "import took $((SECONDS - started)) s"

# Drop the tarballs and images built under earlier cache keys.
for old in "$cache_dir"/rootfs-"$suite"-*.tar; do
    [[ "$old" == "$tarball" ]] || rm -f "$old"
done
older_images="$(
    podman images --format '{{.Repository}}:{{.Tag}}' --filter reference="${image%:*}" |
        grep -vxF -e "$keyed_image" -e "$image" || true
)"
for old in $older_images; do
    podman rmi "$old" >/dev/null || log "could not remove the older image $old. Remove it with podman rmi."
done
echo "$image"
