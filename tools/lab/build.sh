#!/usr/bin/env bash
# tools/lab/build.sh: the lab cluster's programs, built once from the Go module proxy and
# cached under ~/.cache/arca/lab/<component>-<version>/ (a warm run only checks they exist).
#
#   tools/lab/build.sh [COMPONENT...]   k8s serving eventing coredns minio mc labingress labissuer
#                                       pause (default: all)
#   tools/lab/build.sh --path labingress|labissuer   the cache folder of that build
#
# Prints nothing on stdout but the cache folder; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/lab/versions.sh
. "$here/versions.sh"

export GOPATH=$HOME/.cache/arca/go GOCACHE=$HOME/.cache/arca/go-build GOFLAGS=-modcacherw GOTOOLCHAIN=local
export CGO_ENABLED=0 GOPROXY=${GOPROXY:-https://proxy.golang.org}
command -v go >/dev/null || { echo "lab build: Go is needed" >&2; exit 1; }

say() { echo "lab build: $*" >&2; }

# module_dir NAME: a scratch Go module (removed on exit)
work=$(mktemp -d /tmp/arca-lab-build.XXXXXX)
trap 'rm -rf "$work"' EXIT
module_dir() { mkdir -p "$work/$1" && cd "$work/$1" && go mod init "lab.local/$1" >/dev/null 2>&1; }

# complete DIR: the build in DIR is complete
complete() { [ -f "$1/.complete" ]; }

build_k8s() {
  local out=$LAB_CACHE/k8s-$KUBE_VERSION
  complete "$out" && return 0
  say "Kubernetes $KUBE_VERSION (apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl; ~6 min cold)"
  module_dir k8s
  go mod edit -require "k8s.io/kubernetes@$KUBE_VERSION"
  go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" >/dev/null
  # k8s.io/kubernetes replaces its staging modules with ./staging/...; a dependent module
  # takes the published k8s.io/* v0.x.y of the same release instead.
  local mod staging=${KUBE_VERSION/v1./v0.}
  mod=$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$mod" | grep -v '^k8s.io/sample-' |
    while read -r m; do go mod edit -replace "$m=$m@$staging"; done
  cat >tools.go <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  go mod tidy -e >/dev/null 2>&1 || true
  go get "k8s.io/kubernetes@$KUBE_VERSION" >&2
  local minor=${KUBE_VERSION#v1.}
  minor=${minor%%.*}
  local ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  mkdir -p "$out"
  go build -trimpath -ldflags "$ldflags" -o "$out/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubelet \
    k8s.io/kubernetes/cmd/kube-proxy k8s.io/kubernetes/cmd/kubectl
  touch "$out/.complete"
}

# go_cmds OUT MODULE@VERSION PACKAGE...: `go build` each package of a published module
go_cmds() {
  local out=$1 modver=$2
  shift 2
  module_dir "$(basename "$out")"
  go mod edit -require "$modver"
  printf '//go:build tools\n\npackage tools\n\nimport (\n' >tools.go
  local p
  for p in "$@"; do printf '\t_ "%s"\n' "$p" >>tools.go; done
  printf ')\n' >>tools.go
  go mod tidy >&2
  mkdir -p "$out"
  for p in "$@"; do
    go build -trimpath -ldflags "-s -w" -o "$out/$(echo "${p#*/cmd/}" | tr / _)" "$p"
  done
  touch "$out/.complete"
}

build_serving() {
  local out=$LAB_CACHE/serving-$KNATIVE_VERSION
  complete "$out" && return 0
  say "Knative Serving $KNATIVE_VERSION (controller, webhook, activator, autoscaler, queue; ~2.5 min cold)"
  local p=knative.dev/serving/cmd
  go_cmds "$out" "knative.dev/serving@$KNATIVE_VERSION" $p/controller $p/webhook $p/activator $p/autoscaler $p/queue
}

build_eventing() {
  local out=$LAB_CACHE/eventing-$KNATIVE_VERSION
  complete "$out" && return 0
  say "Knative Eventing $KNATIVE_VERSION (core, InMemoryChannel, multi-tenant Broker; ~1.5 min cold)"
  local p=knative.dev/eventing/cmd
  go_cmds "$out" "knative.dev/eventing@$KNATIVE_VERSION" $p/controller $p/webhook $p/mtping $p/jobsink \
    $p/requestreply $p/mtchannel_broker $p/broker/filter $p/broker/ingress \
    $p/in_memory/channel_controller $p/in_memory/channel_dispatcher
}

# CoreDNS with the plugins a cluster DNS needs (the full set pulls every cloud SDK)
build_coredns() {
  local out=$LAB_CACHE/coredns-$COREDNS_VERSION
  complete "$out" && return 0
  say "CoreDNS $COREDNS_VERSION (kubernetes, cache, errors, health, ready, log, loadbalance; ~1 min cold)"
  module_dir coredns
  go mod edit -require "github.com/coredns/coredns@$COREDNS_VERSION"
  cat >main.go <<'GO'
// CoreDNS with only the plugins the lab's cluster DNS uses, in CoreDNS's own order.
package main

import (
	"github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	"github.com/coredns/coredns/coremain"
)

func init() {
	dnsserver.Directives = []string{"ready", "health", "errors", "log", "loadbalance", "cache", "kubernetes"}
}

func main() { coremain.Run() }
GO
  go mod tidy >&2
  mkdir -p "$out"
  go build -trimpath -ldflags "-s -w" -o "$out/coredns" .
  touch "$out/.complete"
}

# MinIO and its client, static (CGO_ENABLED=0) as docker/minio.Dockerfile builds them for
# its distroless/static base (the tests' MinIO from scripts/tools.sh links glibc)
build_minio() { # NAME VERSION
  local out=$LAB_CACHE/$1-$2
  complete "$out" && return 0
  say "$1 $2 (~2-4 min cold)"
  mkdir -p "$out"
  GOBIN=$out go install -trimpath -ldflags "-s -w" "github.com/minio/$1@$2"
  touch "$out/.complete"
}

# local_dir NAME: the cache folder of tools/NAME's build, keyed by a hash of its source
local_dir() {
  local src=$here/../$1
  echo "$LAB_CACHE/$1-$(cat "$src"/go.mod "$src"/go.sum "$src"/*.go | sha256sum | cut -c1-16)"
}

# the lab's stand-ins (tools/labingress for Kourier, tools/labissuer for cert-manager),
# rebuilt when their source changes
build_local() {
  local out
  out=$(local_dir "$1")
  complete "$out" && return 0
  say "$1 (a lab stand-in, tools/$1)"
  mkdir -p "$out"
  (cd "$here/../$1" && go build -trimpath -ldflags "-s -w" -o "$out/$1" .)
  touch "$out/.complete"
}

# the pause container: exits on SIGINT/SIGTERM, reaps children (what Kubernetes' pause does)
build_pause() {
  local out=$LAB_CACHE/pause-1
  complete "$out" && return 0
  mkdir -p "$out"
  gcc -Os -static -o "$out/pause" "$here/pause.c"
  touch "$out/.complete"
}

if [ "${1:-}" = --path ]; then # --path labingress|labissuer: where its binary is cached
  local_dir "$2"
  exit 0
fi
components=("$@")
[ ${#components[@]} -gt 0 ] || components=(k8s serving eventing coredns minio mc labingress labissuer pause)
for c in "${components[@]}"; do
  case $c in
    k8s) build_k8s ;;
    serving) build_serving ;;
    eventing) build_eventing ;;
    coredns) build_coredns ;;
    mc) build_minio mc "$MC_VERSION" ;;
    minio) build_minio minio "$MINIO_VERSION" ;;
    labingress | labissuer) build_local "$c" ;;
    pause) build_pause ;;
    *) echo "lab build: unknown component $c" >&2; exit 2 ;;
  esac
done
echo "$LAB_CACHE"
