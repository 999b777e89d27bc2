#!/usr/bin/env bash
# `make test`: install and start what the tests need, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

step() { echo "== $* ($(date +%T))"; }

step "tools"
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
PG_BIN=$(scripts/pg.sh bin)
export ARCA_TEST_PG_BIN=$PG_BIN

step "format and lint"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --bins --locked

step "PostgreSQL (private cluster)"
PG_DIR=$(mktemp -d /tmp/arca-test-pg.XXXXXX)
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cleanup() { scripts/pg.sh stop "$PG_DIR" || true; rm -rf "$PG_DIR"; }
trap cleanup EXIT
scripts/pg.sh start "$PG_DIR" "$PG_PORT"
export ARCA_TEST_DATABASE_URL="postgres://arca:arca@127.0.0.1:$PG_PORT/postgres"

step "tests"
cargo test --workspace --locked --no-fail-fast
step "all tests passed"
