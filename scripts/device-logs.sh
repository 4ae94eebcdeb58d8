# Sourced by the device scripts: device_run NAME sets up the GPU machine's environment for
# kiln's programs ($build: the build folder, KILN_BUILD_DIR or build-device; the carried
# libraries; a kernel cache under /tmp) and the logs (device_logs NAME).
#
# The device tool brings back at most 8 files from $OUT, so
# a script writes its logs under a local folder ($out) and packs them into one
# $OUT/NAME.tgz when it exits (NAME-2.tgz, NAME-3.tgz... when a call runs it again).
# Read them here with: tar -xzf /work/.device/N/NAME.tgz -C /tmp/logs
device_logs() {
  local name=$1 n=2
  if [ -n "${OUT:-}" ]; then
    while [ -e "$OUT/$name.tgz" ]; do name=${1}-$n; n=$((n + 1)); done
    : >"$OUT/$name.tgz" # claims the name at once
  fi
  out=/tmp/kiln-logs/$name
  rm -rf "$out"
  mkdir -p "$out"
  if [ -n "${OUT:-}" ]; then
    # shellcheck disable=SC2064 # expand now: the names are fixed for this run
    trap "tar -czf '$OUT/$name.tgz' -C /tmp/kiln-logs '$name'" EXIT
  fi
}

device_run() {
  build=${KILN_BUILD_DIR:-build-device} # another build folder (carried) for A/B checks
  export LD_LIBRARY_PATH="$PWD/.carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export KILN_CACHE_PATH="${KILN_CACHE_PATH:-/tmp/kiln-device-cache}"
  device_logs "$1"
}
