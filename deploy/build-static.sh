#!/usr/bin/env bash
# Builds fleet-hub, fleet-spoke and fleetctl as static release binaries
# (glibc, crt-static), the ones deploy/Dockerfile copies into its images.
#
#   deploy/build-static.sh [OUT_DIR]
#
# The binaries land in $CARGO_TARGET_DIR/x86_64-unknown-linux-gnu/release/
# (CARGO_TARGET_DIR defaults to target/static, apart from the debug build
# so neither invalidates the other) and, given OUT_DIR, are copied there.
#
# The explicit --target matters: with it, RUSTFLAGS reach only the target's
# crates, so proc-macros and build scripts stay ordinary dynamic host programs
# (crt-static cannot build proc-macros).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/static}"
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"

cargo build --release --locked --target "$target" \
  -p fleet-hub -p fleet-spoke -p fleetctl --bins

bin="$CARGO_TARGET_DIR/$target/release"
if [ "$#" -gt 0 ]; then
  mkdir -p "$1"
  cp "$bin/fleet-hub" "$bin/fleet-spoke" "$bin/fleetctl" "$1/"
fi
echo "static binaries in $bin: fleet-hub fleet-spoke fleetctl"
