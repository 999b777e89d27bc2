#!/usr/bin/env bash
# `make test`: install and start what the tests need, then run every test.
#   scripts/test.sh                      everything (what CI runs): lint, cargo tests, the
#                                        deployment checks, the dependency checks (cargo deny,
#                                        offline), the lab cluster (tools/lab: a real
#                                        Kubernetes + Knative running Arca), the API contract, the API fuzz,
#                                        the web app's tests (vitest, Chromium end to end)
#   scripts/test.sh --only ARGS...       services up, then `cargo test ARGS` only (no lint,
#                                        no other suites): for iterating on one test
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}

only=()
if [ "${1:-}" = "--only" ]; then
  shift
  only=("$@")
fi

step() { echo "== $* ($(date +%T))"; }

step "tools"
need_apt=()
for tool in openssl curl pgrep python3 kubectl; do
  command -v "$tool" >/dev/null || need_apt+=("$tool")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  pkgs=()
  for tool in "${need_apt[@]}"; do
    case $tool in
      pgrep) pkgs+=(procps) ;;
      python3) pkgs+=(python3 python3-venv) ;;
      kubectl) pkgs+=(kubernetes-client) ;; # renders knative/ for the deployment tests
      *) pkgs+=("$tool") ;;
    esac
  done
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}"
fi
command -v go >/dev/null || { echo "make test: Go is needed to build MinIO, Trivy and cosign (https://go.dev/dl)" >&2; exit 1; }
command -v cargo >/dev/null || { echo "make test: Rust (cargo) is needed (https://rustup.rs)" >&2; exit 1; }
# Assigned first, exported after: `export X=$(cmd)` would hide cmd's failure from set -e.
PG_BIN=$(scripts/pg.sh bin)
MINIO_BIN=$(scripts/tools.sh minio)
TRIVY_BIN=$(scripts/tools.sh trivy)
COSIGN_BIN=$(scripts/tools.sh cosign)
REGISTRY_BIN=$(scripts/tools.sh registry)
ORAS_BIN=$(scripts/tools.sh oras)
KVAL_BIN=$(scripts/tools.sh kval)
scripts/tools.sh cargo-deny >/dev/null # the dependencies suite's checker, built once per version
export ARCA_TEST_PG_BIN=$PG_BIN ARCA_TEST_MINIO_BIN=$MINIO_BIN ARCA_TEST_TRIVY=$TRIVY_BIN ARCA_TEST_COSIGN=$COSIGN_BIN
export ARCA_TEST_REGISTRY=$REGISTRY_BIN ARCA_TEST_ORAS=$ORAS_BIN ARCA_TEST_KVAL=$KVAL_BIN

if [ ${#only[@]} -eq 0 ]; then
  step "format and lint"
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets --locked -- -D warnings
  scripts/shellcheck.sh
fi

step "build"
cargo build --workspace --bins --locked

step "PostgreSQL (private cluster)"
PG_DIR=$(mktemp -d /tmp/arca-test-pg.XXXXXX)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(free_port)
MINIO_DIR=$(mktemp -d /tmp/arca-test-minio.XXXXXX)
TRIVY_DB_DIR=$(mktemp -d /tmp/arca-test-trivy-db.XXXXXX)
cleanup() {
  scripts/pg.sh stop "$PG_DIR" || true
  rm -rf "$PG_DIR"
  scripts/minio.sh stop "$MINIO_DIR" || true
  rm -rf "$MINIO_DIR" "$TRIVY_DB_DIR"
}
trap cleanup EXIT
scripts/pg.sh start "$PG_DIR" "$PG_PORT"
export ARCA_TEST_DATABASE_URL="postgres://arca:arca@127.0.0.1:$PG_PORT/postgres"

step "MinIO (private server, SSE with a static KMS key)"
MINIO_PORT=$(free_port)
scripts/minio.sh start "$MINIO_DIR" "$MINIO_PORT"
export ARCA_TEST_S3_ENDPOINT="http://127.0.0.1:$MINIO_PORT" ARCA_TEST_MINIO_DIR="$MINIO_DIR/data"

step "Trivy fixture DB"
TRIVY_DB_TOOL=$(scripts/trivy-fixture.sh "$TRIVY_DB_DIR")
export ARCA_TEST_TRIVY_DB_TOOL=$TRIVY_DB_TOOL ARCA_TEST_TRIVY_DB=$TRIVY_DB_DIR
# Go builds inside tests (test binaries with known dependencies) share the cached module proxy downloads.
export GOPATH=$HOME/.cache/arca/go GOCACHE=$HOME/.cache/arca/go-build GOFLAGS=-modcacherw GOTOOLCHAIN=local

if [ ${#only[@]} -gt 0 ]; then
  step "tests (only: ${only[*]})"
  cargo test --locked "${only[@]}"
  step "selected tests passed"
  exit 0
fi

# Every suite runs even when an earlier one failed; the summary names the failures.
failed=()
suite() { # name, command...
  local name=$1 t0
  shift
  step "$name"
  t0=$(date +%s)
  if "$@"; then
    echo "== $name passed in $(($(date +%s) - t0)) s"
  else
    echo "== $name FAILED after $(($(date +%s) - t0)) s" >&2
    failed+=("$name")
  fi
}
suite "tests (cargo)" cargo test --workspace --locked --no-fail-fast
suite "deployment (static checks)" scripts/deploy-check.sh
suite "dependencies (cargo deny: advisories offline, licenses, sources, bans)" scripts/deps-check.sh
suite "lab cluster (Kubernetes, Knative, Arca by kind-setup.sh)" tools/lab/test.sh
suite "API contract" scripts/api-contract.sh
suite "API fuzz (schemathesis)" env FUZZ_CASES="${FUZZ_CASES:-1500}" ARCA_TRIVY="$TRIVY_BIN" scripts/fuzz.sh
suite "web app (typecheck, vitest, Chromium end to end)" scripts/web.sh test

if [ ${#failed[@]} -gt 0 ]; then
  echo "== FAILED: ${failed[*]}" >&2
  exit 1
fi
step "all tests passed"
