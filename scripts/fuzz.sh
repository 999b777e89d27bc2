#!/usr/bin/env bash
# Fuzzes the HTTP API from its own OpenAPI document with schemathesis (pinned, from PyPI,
# installed into ~/.cache/arca/venv-fuzz): a fresh `arca serve` (plain HTTP, a temporary data
# dir), an admin session kept alive (scripts/fuzz_hooks.py signs in again after a 401),
# every check schemathesis has. Any 5xx, or an answer that breaks its own schema, fails.
#   FUZZ_CASES   test cases to generate in all, spread over the operations (default 200;
#                `make fuzz` asks for 5000)
#   FUZZ_SEED    schemathesis seed (default: random, printed)
#   FUZZ_ACCEPTANCE=1  also require every schema-valid request to be accepted (ST202). Off
#                by default: Arca refuses valid-by-schema requests for reasons no schema can
#                state (configured size limits, DER inside base64, an expiry in the past,
#                exactly one of two fields), so this check reports rather than gates.
#   ARCA_BIN     the arca binary (default $CARGO_TARGET_DIR/debug/arca)
#   ARCA_TRIVY   the Trivy binary (default: scripts/tools.sh trivy, built once and cached)
set -euo pipefail
cd "$(dirname "$0")/.."
SCHEMATHESIS_VERSION=4.32.5
CASES=${FUZZ_CASES:-200}
SEED=${FUZZ_SEED:-$RANDOM$RANDOM}
TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}
ARCA_BIN=${ARCA_BIN:-$TARGET_DIR/debug/arca}
VENV=$HOME/.cache/arca/venv-fuzz

installed=$("$VENV/bin/schemathesis" --version 2>/dev/null || true)
if [ "$installed" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  echo "fuzz: installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
fi
if [ ! -x "$ARCA_BIN" ]; then
  cargo build --locked -p arca-cli
fi

work=$(mktemp -d /tmp/arca-fuzz.XXXXXX)
pid=
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
  if [ -n "$pid" ]; then
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
# A scanner and the fixture vulnerability DB, so that the server is healthy (without a DB
# it answers 503 on /api/health, by design).
trivy=${ARCA_TRIVY:-}
if [ -z "$trivy" ]; then
  trivy=$(scripts/tools.sh trivy)
fi
scripts/trivy-fixture.sh "$work/trivy-db" >/dev/null
mkdir -p "$work/trivy-cache/db"
cp "$work/trivy-db/trivy.db" "$work/trivy-db/metadata.json" "$work/trivy-cache/db/"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
password=$(python3 -c 'import secrets; print("fuzz-" + secrets.token_urlsafe(18))')
base="http://127.0.0.1:$port"
# Limits high enough that the fuzzer's own pace is never what is refused (429 is not what is
# being tested here, and a locked-out admin would stall the run).
ARCA_ADMIN_PASSWORD=$password ARCA_RATE_LIMIT=1000000 ARCA_LOGIN_RATE_LIMIT=1000000 \
  ARCA_LOCKOUT_THRESHOLD=1000000 ARCA_LOG=warn ARCA_TRIVY=$trivy ARCA_TRIVY_CACHE_DIR=$work/trivy-cache \
  "$ARCA_BIN" serve --plain-http --listen "127.0.0.1:$port" --data-dir "$work/data" >"$work/arca.log" 2>&1 &
pid=$!
for _ in $(seq 1 300); do
  if curl -fsS "$base/api/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "$pid" 2>/dev/null; then
    cat "$work/arca.log" >&2
    echo "fuzz: arca serve exited at start-up" >&2
    exit 1
  fi
  sleep 0.2
done
curl -fsS "$base/api/openapi.json" -o "$work/openapi.json"
operations=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(sum(1 for p in d["paths"].values() for m in p if m in ("get","put","post","delete","patch")))' "$work/openapi.json")
# Some operations yield fewer distinct cases than asked (small input spaces, filtered
# cases): ask a quarter more, so that at least FUZZ_CASES are generated in all.
per_operation=$(( (CASES * 5 / 4 + operations - 1) / operations ))
echo "fuzz: $operations operations, $per_operation cases each (FUZZ_CASES=$CASES), seed $SEED, server $base"

status=0
# use_after_free runs as use_after_free_except_tombstones (scripts/fuzz_hooks.py): a deleted
# artifact's tombstone stays readable by design, every other deleted resource must be gone.
exclude=(--exclude-checks "positive_data_acceptance,use_after_free")
if [ "${FUZZ_ACCEPTANCE:-0}" = 1 ]; then exclude=(--exclude-checks use_after_free); fi
# Run from the work dir: schemathesis keeps a cache of failing cases in ./.schemathesis.
hooks=$PWD/scripts
cd "$work"
ARCA_FUZZ_URL=$base ARCA_FUZZ_PASSWORD=$password PYTHONPATH=$hooks SCHEMATHESIS_HOOKS=fuzz_hooks \
  "$VENV/bin/schemathesis" run "$base/api/openapi.json" \
  --checks all \
  "${exclude[@]}" \
  --max-examples "$per_operation" \
  --seed "$SEED" \
  --workers 2 \
  --request-timeout 60 \
  --generation-database none \
  --suppress-health-check all \
  --report junit --report-junit-path "$work/junit.xml" \
  --no-color 2>&1 | tee "$work/schemathesis.log" || status=$?
if grep -q '"level":"ERROR"' "$work/arca.log"; then
  echo "fuzz: the server logged errors:" >&2
  grep '"level":"ERROR"' "$work/arca.log" | head -20 >&2
  status=1
fi
python3 - "$work/junit.xml" <<'PY' || true
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else root.findall("testsuite")
tests = sum(int(s.get("tests", 0)) for s in suites)
failures = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
print(f"fuzz: {tests} operations tested, {failures} with failures")
PY
echo "fuzz: schemathesis counted $(grep -Eo '[0-9]+ generated' "$work/schemathesis.log" | head -1 || echo '? generated') test cases (FUZZ_CASES=$CASES)"
exit "$status"
