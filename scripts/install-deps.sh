#!/bin/sh
# Debian packages kiln builds and tests with (the CUDA toolkit, with NVRTC, is expected at
# $CUDA_HOME or /usr/local/cuda). Installs only what is missing.
set -eu
pkgs="meson ninja-build pkg-config gcc libsqlite3-dev libxxhash-dev libcmocka-dev"
missing=""
for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq $missing >/dev/null
fi
if [ ! -e "${CUDA_HOME:-/usr/local/cuda}/include/nvrtc.h" ]; then
  echo "install-deps: no CUDA toolkit (nvrtc.h) under ${CUDA_HOME:-/usr/local/cuda}" >&2
  exit 1
fi
