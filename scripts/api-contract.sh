#!/usr/bin/env bash
# The API contract (issue 15): the OpenAPI document Arca serves (`arca openapi` prints
# exactly what `/api/openapi.json` serves) must
#   1. validate with openapi-spec-validator (PyPI, pinned; venv cached in ~/.cache/arca/venv-contract),
#   2. generate TypeScript types with openapi-typescript (npm, pinned to frontend's locked
#      version; frontend's own copy when `npm ci` installed it, else a cached prefix in
#      ~/.cache/arca/npm-contract) that the TypeScript compiler accepts.
# Any error fails. Prints the figures: operations, error codes, the size of the generated
# TypeScript and of the Rust client (`client/`, checked against the same document by
# `cargo test -p arca-client`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}
cache=${ARCA_CACHE:-$HOME/.cache/arca}
VALIDATOR_VERSION=0.9.0
OPENAPI_TS_VERSION=7.13.0 # frontend/package-lock.json
TYPESCRIPT_VERSION=5.9.3  # frontend/package-lock.json

work=$(mktemp -d /tmp/arca-contract.XXXXXX)
trap 'rm -rf "$work"' EXIT

echo "== the document"
cargo build --locked -q -p arca-cli
"$CARGO_TARGET_DIR/debug/arca" openapi >"$work/openapi.json"

echo "== openapi-spec-validator $VALIDATOR_VERSION"
venv=$cache/venv-contract
if ! "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('openapi-spec-validator') != '$VALIDATOR_VERSION')" 2>/dev/null; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "openapi-spec-validator==$VALIDATOR_VERSION"
fi
"$venv/bin/openapi-spec-validator" "$work/openapi.json"

echo "== openapi-typescript $OPENAPI_TS_VERSION"
version_of() { node -p "require('$1/package.json').version" 2>/dev/null || true; }
modules=$PWD/frontend/node_modules
if [ "$(version_of "$modules/openapi-typescript")" != "$OPENAPI_TS_VERSION" ] ||
  [ "$(version_of "$modules/typescript")" != "$TYPESCRIPT_VERSION" ]; then
  prefix=$cache/npm-contract
  modules=$prefix/node_modules
  if [ "$(version_of "$modules/openapi-typescript")" != "$OPENAPI_TS_VERSION" ] ||
    [ "$(version_of "$modules/typescript")" != "$TYPESCRIPT_VERSION" ]; then
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-audit --no-fund --save-exact --loglevel=error \
      "openapi-typescript@$OPENAPI_TS_VERSION" "typescript@$TYPESCRIPT_VERSION"
  fi
fi
node "$modules/openapi-typescript/bin/cli.js" "$work/openapi.json" -o "$work/schema.d.ts"
node "$modules/typescript/bin/tsc" --noEmit --strict --skipLibCheck false "$work/schema.d.ts"

operations=$(python3 -c "
import json, sys
doc = json.load(open(sys.argv[1]))
print(sum(1 for item in doc['paths'].values() for m in ('get', 'put', 'post', 'delete', 'patch') if m in item))
" "$work/openapi.json")
codes=$(python3 -c "
import json, sys
print(len(json.load(open(sys.argv[1]))['components']['schemas']['Problem']['properties']['code']['enum']))
" "$work/openapi.json")
ts_bytes=$(wc -c <"$work/schema.d.ts")
ts_lines=$(wc -l <"$work/schema.d.ts")
client_lines=$(cat client/src/*.rs | wc -l)
client_bytes=$(cat client/src/*.rs | wc -c)
client_ops=$(grep -c ' = [A-Z]* "/' client/src/endpoints.rs)
echo "== contract OK"
echo "operations: $operations (the Rust client calls $client_ops of them)"
echo "error codes: $codes"
echo "generated TypeScript: $ts_lines lines, $ts_bytes bytes"
echo "Rust client (client/src): $client_lines lines, $client_bytes bytes"
if [ -f frontend/openapi.json ] && ! python3 -c "
import json, sys
sys.exit(json.load(open(sys.argv[1])) != json.load(open(sys.argv[2])))
" frontend/openapi.json "$work/openapi.json"; then
  echo "note: frontend/openapi.json (the web app's snapshot) differs from the served document: regenerate it"
fi
