#!/usr/bin/env bash
# Builds fleet-hub, fleet-spoke and fleetctl as static release binaries
# (glibc, crt-static): the ones deploy/Dockerfile copies into its images.
#
#   deploy/build-static.sh [OUT_DIR]
#
# The build goes to $CARGO_TARGET_DIR (default target/static, apart from the
# debug build so neither invalidates the other); OUT_DIR (default
# target/static/image) receives the three binaries without their debug
# sections (objcopy --strip-debug: about 20 MB instead of 100-150 MB each;
# symbols stay, so a backtrace still names functions). tests/tests/image.rs
# checks what is in OUT_DIR.
#
# The explicit --target matters: with it, RUSTFLAGS reach only the target's
# crates, so proc-macros and build scripts stay ordinary dynamic host programs
# (crt-static cannot build proc-macros).
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target/static}"
export RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C target-feature=+crt-static"
out="${1:-$CARGO_TARGET_DIR/image}"
command -v objcopy >/dev/null || { echo "build-static.sh: objcopy (binutils) is needed" >&2; exit 1; }

cargo build --release --locked --target "$target" \
  -p fleet-hub -p fleet-spoke -p fleetctl --bins

bin="$CARGO_TARGET_DIR/$target/release"
mkdir -p "$out"
for b in fleet-hub fleet-spoke fleetctl; do
  objcopy --strip-debug "$bin/$b" "$out/$b"
done
echo "static binaries in $out: fleet-hub fleet-spoke fleetctl"
