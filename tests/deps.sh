#!/usr/bin/env bash
# deps.sh install      install every Debian package sra needs (build + tests)
# deps.sh check-build  fail with the package to install when a library is missing
# As root, `install` runs apt-get; otherwise it prints the exact command and fails.
set -euo pipefail

BUILD_PKGS="libhdf5-dev libzstd-dev libopenblas-dev libutf8proc-dev libcjson-dev libonig-dev pkg-config"
TEST_PKGS="python3-h5py python3-numpy python3-regex python3-torch hdf5-tools gnuplot-nox slurm-wlm munge openmpi-bin libopenmpi-dev"

missing() {
    local out=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
    done
    echo "${out# }"
}

case "${1:-install}" in
install)
    need=$(missing $BUILD_PKGS $TEST_PKGS)
    [ -z "$need" ] && exit 0
    if [ "$(id -u)" = 0 ]; then
        echo "sra: installing missing Debian packages: $need"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y --no-install-recommends $need >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null && apt-get install -y --no-install-recommends $need; }
    else
        echo "sra: missing Debian packages. Run:" >&2
        echo "  sudo apt-get install -y $need" >&2
        exit 1
    fi
    ;;
check-build)
    command -v pkg-config >/dev/null || { echo "sra: pkg-config not found: run 'make deps' (Debian package pkg-config)" >&2; exit 1; }
    declare -A pkgof=([hdf5-serial]=libhdf5-dev [libzstd]=libzstd-dev [openblas]=libopenblas-dev
                      [libutf8proc]=libutf8proc-dev [libcjson]=libcjson-dev [oniguruma]=libonig-dev)
    bad=""
    for m in hdf5-serial libzstd openblas libutf8proc libcjson oniguruma; do
        if [ "$m" = hdf5-serial ]; then pkg-config --exists hdf5-serial || pkg-config --exists hdf5 || bad="$bad ${pkgof[$m]}"
        else pkg-config --exists "$m" || bad="$bad ${pkgof[$m]}"; fi
    done
    if [ -n "$bad" ]; then
        echo "sra: missing libraries; run 'make deps' or: sudo apt-get install -y$bad" >&2
        exit 1
    fi
    ;;
*) echo "usage: $0 install|check-build" >&2; exit 2 ;;
esac
