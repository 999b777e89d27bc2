#!/usr/bin/env bash
# `make test`: install and start what the tests need, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
# Incremental caches only grow across CI runs (gigabytes per checkout); the dependency cache is what matters.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}

step() { echo "== $* ($(date +%T))"; }

step "tools"
for tool in openssl curl; do
  command -v $tool >/dev/null || { apt-get update -qq && apt-get install -y -qq $tool; }
done
PG_BIN=$(scripts/pg.sh bin)
export ARCA_TEST_PG_BIN=$PG_BIN
scripts/tools.sh minio >/dev/null
export ARCA_TEST_TRIVY=$(scripts/tools.sh trivy)
export ARCA_TEST_COSIGN=$(scripts/tools.sh cosign)

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --bins --locked

step "PostgreSQL (private cluster)"
PG_DIR=$(mktemp -d /tmp/arca-test-pg.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
MINIO_DIR=$(mktemp -d /tmp/arca-test-minio.XXXXXX)
cleanup() {
  scripts/pg.sh stop "$PG_DIR" || true; rm -rf "$PG_DIR"
  scripts/minio.sh stop "$MINIO_DIR" || true; rm -rf "$MINIO_DIR"
  rm -rf "${TRIVY_DB_DIR:-}"
}
trap cleanup EXIT
scripts/pg.sh start "$PG_DIR" "$PG_PORT"
export ARCA_TEST_DATABASE_URL="postgres://arca:arca@127.0.0.1:$PG_PORT/postgres"

step "MinIO (private server, SSE with a static KMS key)"
MINIO_PORT=$(free_port)
scripts/minio.sh start "$MINIO_DIR" "$MINIO_PORT"
export ARCA_TEST_S3_ENDPOINT="http://127.0.0.1:$MINIO_PORT" ARCA_TEST_MINIO_DIR="$MINIO_DIR/data"

step "Trivy fixture DB"
TRIVY_DB_DIR=$(mktemp -d /tmp/arca-test-trivy-db.XXXXXX)
export ARCA_TEST_TRIVY_DB_TOOL=$(scripts/trivy-fixture.sh "$TRIVY_DB_DIR")
export ARCA_TEST_TRIVY_DB=$TRIVY_DB_DIR
# Go builds inside tests (test binaries with known dependencies) share the cached module proxy downloads.
export GOPATH=$HOME/.cache/arca/go GOCACHE=$HOME/.cache/arca/go-build GOFLAGS=-modcacherw GOTOOLCHAIN=local

step "tests"
cargo test --workspace --locked --no-fail-fast
step "all tests passed"
