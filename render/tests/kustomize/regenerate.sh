#!/usr/bin/env bash
# Regenerates expected.yaml of every golden case with `kubectl kustomize`.
#
# Usage: render/tests/kustomize/regenerate.sh [case...]
#
# Cases with an error.txt are refused by fleet on purpose and are skipped.
# Cases with helmCharts (`*-helm-*`) need a Helm 3.19 binary: set
# HELM_COMMAND to it (passed as --enable-helm --helm-command); without it
# they are skipped.
# The goldens were produced with kubectl v1.32 (kustomize v5.5.0); check
# `kubectl version --client` before regenerating and review the diff.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
if [ "$#" -eq 0 ]; then
  set -- */
fi
for c in "$@"; do
  c="${c%/}"
  [ -d "$c/input" ] || continue
  [ -f "$c/error.txt" ] && continue
  dir="$c/input"
  if [ -f "$c/dir" ]; then
    dir="$c/input/$(tr -d '[:space:]' < "$c/dir")"
  fi
  helm_flags=()
  case "$c" in
    *-helm-*)
      if [ -z "${HELM_COMMAND:-}" ]; then
        echo "skip $c: set HELM_COMMAND to a helm 3.19 binary" >&2
        continue
      fi
      helm_flags=(--enable-helm --helm-command "$HELM_COMMAND")
      ;;
  esac
  if ! kubectl kustomize "${helm_flags[@]}" "$dir" > "$c/expected.yaml.tmp" 2> "$c/stderr.tmp"; then
    echo "FAIL $c:" >&2
    cat "$c/stderr.tmp" >&2
    rm -f "$c/expected.yaml.tmp" "$c/stderr.tmp"
    exit 1
  fi
  mv "$c/expected.yaml.tmp" "$c/expected.yaml"
  rm -f "$c/stderr.tmp"
  echo "ok   $c"
done
