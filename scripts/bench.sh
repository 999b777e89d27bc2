#!/usr/bin/env bash
# `make bench`: every figure next to a baseline measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
cargo build --locked --workspace --bins
ARCA_BENCH_TRIVY=$(scripts/tools.sh trivy)
export ARCA_BENCH_TRIVY
WORK=$(mktemp -d /tmp/arca-bench.XXXXXX)
cleanup() { scripts/minio.sh stop "$WORK/minio" || true; rm -rf "$WORK"; }
trap cleanup EXIT
scripts/trivy-fixture.sh "$WORK/trivy-db" >/dev/null
export ARCA_BENCH_TRIVY_DB=$WORK/trivy-db
MINIO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
scripts/minio.sh start "$WORK/minio" "$MINIO_PORT"
export ARCA_BENCH_S3_ENDPOINT=http://127.0.0.1:$MINIO_PORT
echo "== build: dev profile (dependencies and the arca-shared library optimised at -O2)"
ARCA_TRIVY=$ARCA_BENCH_TRIVY scripts/bench-startup.sh "$CARGO_TARGET_DIR/debug/arca" "$ARCA_BENCH_TRIVY_DB"
"$CARGO_TARGET_DIR/debug/arca-bench" "$CARGO_TARGET_DIR/debug/arca" "$@"
