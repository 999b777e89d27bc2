#!/usr/bin/env bash
# The web app (frontend/).
#   scripts/web.sh build   `npm ci` when package-lock.json changed since the last install,
#                          `npm run build` when the sources changed → frontend/dist
#                          (what `make run` serves: `arca serve` defaults to frontend/dist)
#   scripts/web.sh test    build, then: typecheck; src/api/schema.d.ts is what openapi-typescript
#                          makes of the document the server serves now; vitest; first-page
#                          bundle size; `nginx -t`; the Chromium end-to-end suite on the local
#                          store, on MinIO, and once behind nginx. Any failure fails.
# Env (test): ARCA_BIN (the arca binary; default $CARGO_TARGET_DIR/debug/arca),
#   ARCA_TEST_TRIVY (Trivy), ARCA_TEST_TRIVY_DB (fixture DB dir), ARCA_TEST_MINIO_BIN (minio).
# Debian's chromium and nginx are installed with apt-get when missing; no browser is
# downloaded. npm's cache lives in ~/.cache/arca/npm.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
web=$repo/frontend
cache=${ARCA_CACHE:-$HOME/.cache/arca}
export npm_config_cache=$cache/npm npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
started=$(date +%s)

step() { echo "== web: $* ($(date +%T))"; }
die() {
  echo "web.sh: $*" >&2
  exit 1
}

need_node() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    die "Node.js 20+ and npm are needed (Debian: apt-get install nodejs npm; NodeSource for 20+)"
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 20 ] || die "Node.js $(node --version) is too old: Vite needs 20+"
}

# Debian packages the tests use, installed when missing (apt-get update once).
apt_updated=0
need_apt() { # command package
  command -v "$1" >/dev/null && return 0
  [ -x "/usr/sbin/$1" ] && return 0
  echo "installing $2 (Debian)" >&2
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
}

# sha256 of the given files and directories' contents (sorted paths).
tree_hash() {
  (cd "$web" && find "$@" -type f -not -name '*.tsbuildinfo' -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
}

build() {
  need_node
  local lock_stamp=$web/node_modules/.arca-lock.sha256 lock
  lock=$( (sha256sum "$web/package-lock.json"; node --version) | sha256sum | cut -d' ' -f1)
  if [ ! -f "$lock_stamp" ] || [ "$(cat "$lock_stamp")" != "$lock" ]; then
    step "npm ci (package-lock.json changed since the last install)"
    (cd "$web" && npm ci --prefer-offline --loglevel=error)
    echo "$lock" >"$lock_stamp"
  fi
  local src_stamp=$web/dist/.arca-build.sha256 src
  src=$(tree_hash src public scripts/bundle-size.mjs index.html package-lock.json tsconfig.json vite.config.ts)
  if [ -f "$web/dist/index.html" ] && [ -f "$src_stamp" ] && [ "$(cat "$src_stamp")" = "$src" ]; then
    echo "web: frontend/dist is up to date"
    return 0
  fi
  step "npm run build"
  (cd "$web" && npm run build --silent)
  echo "$src" >"$src_stamp"
}

# The generated API types must be what the current server's document generates.
check_schema() {
  local work=$1
  "$ARCA_BIN" openapi >"$work/openapi.json"
  (cd "$web" && node node_modules/openapi-typescript/bin/cli.js "$work/openapi.json" -o "$work/schema.d.ts" >/dev/null 2>&1)
  if ! cmp -s "$work/schema.d.ts" "$web/src/api/schema.d.ts"; then
    diff -u "$web/src/api/schema.d.ts" "$work/schema.d.ts" | head -40 >&2 || true
    die "frontend/src/api/schema.d.ts is stale against the server's OpenAPI document: run
  $ARCA_BIN openapi > frontend/openapi.json && (cd frontend && npm run gen:api)
and fix what the typecheck then reports"
  fi
  if ! python3 -c 'import json,sys; sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))' "$work/openapi.json" "$web/openapi.json"; then
    die "frontend/openapi.json differs from the server's document: $ARCA_BIN openapi > frontend/openapi.json"
  fi
  echo "schema.d.ts and openapi.json match the server's document"
}

e2e() { # label, then env assignments for e2e/run.mjs
  local label=$1 t0
  shift
  step "end to end: $label"
  t0=$(date +%s)
  (cd "$web" && env -u E2E_ONLY "$@" node e2e/run.mjs)
  echo "e2e $label: $(($(date +%s) - t0)) s"
}

test_all() {
  ARCA_BIN=${ARCA_BIN:-${CARGO_TARGET_DIR:-$cache/target}/debug/arca}
  [ -x "$ARCA_BIN" ] || die "ARCA_BIN ($ARCA_BIN) is not an executable arca binary"
  local var
  for var in ARCA_TEST_TRIVY ARCA_TEST_TRIVY_DB ARCA_TEST_MINIO_BIN; do
    [ -n "${!var:-}" ] || die "$var is not set (make test sets it): the end-to-end suite needs it"
  done
  [ -x "$ARCA_TEST_TRIVY" ] || die "ARCA_TEST_TRIVY ($ARCA_TEST_TRIVY) is not executable"
  [ -x "$ARCA_TEST_MINIO_BIN" ] || die "ARCA_TEST_MINIO_BIN ($ARCA_TEST_MINIO_BIN) is not executable"
  [ -f "$ARCA_TEST_TRIVY_DB/trivy.db" ] || die "ARCA_TEST_TRIVY_DB ($ARCA_TEST_TRIVY_DB) holds no trivy.db"
  export ARCA_BIN ARCA_TEST_TRIVY ARCA_TEST_TRIVY_DB ARCA_TEST_MINIO_BIN

  step "tools"
  need_apt chromium chromium
  need_apt nginx nginx
  need_apt sha256sum coreutils
  need_apt python3 python3
  build

  local work
  work=$(mktemp -d /tmp/arca-web-test.XXXXXX)
  # shellcheck disable=SC2064 # expand now: the path is fixed
  trap "rm -rf '$work'" EXIT

  step "typecheck"
  (cd "$web" && npm run --silent typecheck)
  step "API types against the server's document"
  check_schema "$work"
  step "vitest"
  (cd "$web" && npx vitest run --reporter=dot)
  step "bundle size"
  (cd "$web" && node scripts/bundle-size.mjs --max-first-page-kib 300)
  step "nginx -t"
  bash "$web/scripts/nginx-check.sh"

  rm -rf "$web/test-results"
  e2e "local store (arca serve --web-dir)" E2E_STORE=local
  e2e "MinIO (presigned cross-origin PUTs)" E2E_STORE=minio
  e2e "behind nginx (local store)" E2E_STORE=local E2E_NGINX=1
  echo "screenshots and reports: frontend/test-results/"
}

case ${1:-} in
  build) build ;;
  test) test_all ;;
  *)
    echo "usage: $0 build|test" >&2
    exit 2
    ;;
esac
echo "web.sh $1: $(($(date +%s) - started)) s in total"
