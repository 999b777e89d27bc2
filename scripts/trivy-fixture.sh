#!/usr/bin/env bash
# Builds the fixture vulnerability DB the tests scan with (Trivy cannot download its DB
# here): the tool in tools/trivy-db-fixture, then a DB from tests/fixtures/trivy-db/base.yaml.
#   trivy-fixture.sh OUT_DIR     prints the path of the tool; the DB goes to OUT_DIR
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${ARCA_TOOLS_CACHE:-$HOME/.cache/arca}
export GOPATH=$CACHE/go GOCACHE=$CACHE/go-build GOFLAGS=-modcacherw GOTOOLCHAIN=local
tool=$CACHE/tools/trivy-db-fixture
(cd tools/trivy-db-fixture && go build -o "$tool" .) >&2
"$tool" -out "$1" -updated-at 2026-01-01T00:00:00Z tests/fixtures/trivy-db/base.yaml
echo "$tool"
