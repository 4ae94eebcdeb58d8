#!/usr/bin/env bash
# Builds another branch (or any commit) for a GPU A/B against this checkout, without
# touching it: a temporary git worktree, a release build in DIR (default build-NAME, with
# NAME the branch name's last part), then the worktree is removed (the binaries embed the
# templates, so they need nothing from it).
#   bash scripts/build-branch.sh wip/overlap-two-promotes        -> build-overlap-two-promotes
# Then carry DIR with build-device and .carry, and on the GPU machine e.g.
#   KILN_BUILD_DIR=DIR bash scripts/device-check.sh run none
#   bash scripts/ab-knob.sh KILN_BUILD_DIR=build-device,DIR 2 --quick
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: $0 BRANCH [DIR]" >&2; exit 2; }
rev=$1
dir=${2:-build-${rev##*/}}
git rev-parse --verify --quiet "$rev^{commit}" >/dev/null || { echo "$0: no such branch or commit: $rev" >&2; exit 2; }
tree=$(mktemp -d /tmp/kiln-branch-XXXXXX)
trap 'git worktree remove --force "$tree" >/dev/null 2>&1 || rm -rf "$tree"' EXIT
git worktree add --detach --quiet "$tree" "$rev"
rm -rf "$dir"
meson setup "$dir" "$tree" --buildtype=release -Dwerror=true >/dev/null
ninja -C "$dir" >/dev/null
echo "built $rev ($(git rev-parse --short "$rev")) into $dir"
