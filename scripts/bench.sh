#!/usr/bin/env bash
# `make bench`: every figure next to a baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
cargo build --locked -p arca-cli -p arca-e2e --bins
echo "== build: dev profile (dependencies and the arca-shared library optimised at -O2)"
scripts/bench-startup.sh "$CARGO_TARGET_DIR/debug/arca"
"$CARGO_TARGET_DIR/debug/arca-bench" "$CARGO_TARGET_DIR/debug/arca" "$@"
