#!/usr/bin/env bash
# Build the external tools the tests run, from the Go module proxy (cargo-deny: the Rust crate
# registry) at pinned versions. Idempotent: a tool already built at its pinned version is
# reused (cached under ~/.cache/arca).
#   scripts/tools.sh minio|trivy|cosign|registry|oras|kval|cargo-deny
#                                                      prints the path of the binary
#                                                      (kval: tools/kval, keyed by a hash of its sources)
#   scripts/tools.sh trivy --prefer-path               a `trivy` on PATH at the supported
#                                                      version (TRIVY_VERSION's minor) if any
set -euo pipefail

MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
TRIVY_VERSION=0.74.0
COSIGN_VERSION=v2.6.5
# An OCI registry and its client, for the Trivy DB download tests (a local mirror on loopback).
REGISTRY_VERSION=v3.1.2
ORAS_VERSION=v1.3.6
# Checks Cargo.lock against the RustSec advisories (an offline copy), licenses, sources, bans.
CARGO_DENY_VERSION=0.20.2

CACHE=${ARCA_TOOLS_CACHE:-$HOME/.cache/arca}
export GOPATH=$CACHE/go
export GOCACHE=$CACHE/go-build
export GOFLAGS=-modcacherw
export GOTOOLCHAIN=local
BIN=$CACHE/tools

build() { # name version-stamp command...
  local name=$1 stamp=$2; shift 2
  local out=$BIN/$name-$stamp
  if [ ! -x "$out" ]; then
    mkdir -p "$BIN"
    echo "building $name $stamp (first time only; takes minutes)" >&2
    nice -n 5 "$@" >&2
    mv "$GOPATH/bin/$name" "$out"
  fi
  echo "$out"
}

case ${1:-} in
  minio)
    build minio "$MINIO_VERSION" go install "github.com/minio/minio@$MINIO_VERSION" ;;
  trivy)
    if [ "${2:-}" = "--prefer-path" ] && on_path=$(command -v trivy); then
      found=$("$on_path" --version 2>/dev/null | sed -n 's/^Version: *//p' | head -n1)
      if [ "${found%.*}" = "${TRIVY_VERSION%.*}" ]; then
        echo "$on_path"
        exit 0
      fi
      echo "trivy on PATH is ${found:-of unknown version}; Arca supports ${TRIVY_VERSION%.*}.x: building $TRIVY_VERSION" >&2
    fi
    GOEXPERIMENT=jsonv2 CGO_ENABLED=0 build trivy "$TRIVY_VERSION" go install \
      -ldflags "-s -w -X github.com/aquasecurity/trivy/pkg/version/app.ver=$TRIVY_VERSION" \
      "github.com/aquasecurity/trivy/cmd/trivy@v$TRIVY_VERSION" ;;
  cosign)
    CGO_ENABLED=0 build cosign "$COSIGN_VERSION" go install "github.com/sigstore/cosign/v2/cmd/cosign@$COSIGN_VERSION" ;;
  registry)
    CGO_ENABLED=0 build registry "$REGISTRY_VERSION" go install \
      "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" ;;
  oras)
    CGO_ENABLED=0 build oras "$ORAS_VERSION" go install "oras.land/oras/cmd/oras@$ORAS_VERSION" ;;
  kval)
    cd "$(dirname "$0")/../tools/kval"
    hash=$(cat go.mod go.sum ./*.go | sha256sum | cut -c1-16)
    CGO_ENABLED=0 build kval "$hash" go build -o "$GOPATH/bin/kval" . ;;
  cargo-deny)
    # cargo install, with its own lock file (--locked) and a scratch target dir: the
    # project's target dir (CARGO_TARGET_DIR) stays the project's.
    out=$BIN/cargo-deny-$CARGO_DENY_VERSION
    if [ ! -x "$out/bin/cargo-deny" ]; then
      echo "building cargo-deny $CARGO_DENY_VERSION (first time only; takes minutes)" >&2
      scratch=$(mktemp -d /tmp/arca-cargo-deny-build.XXXXXX)
      trap 'rm -rf "$scratch"' EXIT
      mkdir -p "$BIN"
      rm -rf "$out.partial"
      CARGO_TARGET_DIR=$scratch nice -n 5 cargo install --quiet --locked "cargo-deny@$CARGO_DENY_VERSION" \
        --root "$out.partial" >&2
      rm -rf "$out"
      mv "$out.partial" "$out" # whole or not at all: an interrupted build is not taken for done
    fi
    echo "$out/bin/cargo-deny" ;;
  *) echo "usage: $0 minio|trivy|cosign|registry|oras|kval|cargo-deny" >&2; exit 2 ;;
esac
