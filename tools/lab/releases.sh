#!/usr/bin/env bash
# tools/lab/releases.sh OUT_DIR: the release manifests kind-setup.sh would download, made
# from the same versions' sources in the Go module cache (no release host is reachable):
#   serving-crds.yaml serving-core.yaml     knative.dev/serving config/core, with
#                                           knative.dev/networking's and caching's CRDs
#   eventing-crds.yaml eventing-core.yaml   knative.dev/eventing config/core
#   in-memory-channel.yaml mt-channel-broker.yaml
#   kourier.yaml       the lab's stand-in for Kourier (tools/labingress), not Kourier
#   cert-manager.yaml  cert-manager's CRDs and the lab's stand-in controller (tools/labissuer)
#   bundle.yaml        prometheus-operator's CRDs only (its operator and the monitoring stack's
#                      images cannot be built here: kind-setup.sh runs with ARCA_MONITORING=0)
# `ko://` image references become the lab's images (tools/lab/images.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/lab/versions.sh
. "$here/versions.sh"
out=${1:?usage: releases.sh OUT_DIR}
mkdir -p "$out"
export GOPATH=${GOPATH:-$HOME/.cache/arca/go} GOFLAGS=-modcacherw GOTOOLCHAIN=local

# module_path MODULE@VERSION: its folder in the module cache (downloaded if missing)
module_path() { go mod download -json "$1" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p'; }

serving=$(module_path "knative.dev/serving@$KNATIVE_VERSION")
eventing=$(module_path "knative.dev/eventing@$KNATIVE_VERSION")
# the networking and caching versions serving was released with
dep_version() { sed -n "s#^\t$1 \(v[^ ]*\).*#\1#p" "$serving/go.mod"; }
networking=$(module_path "knative.dev/networking@$(dep_version knative.dev/networking)")
caching=$(module_path "knative.dev/caching@$(dep_version knative.dev/caching)")
certmanager=$(module_path "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION")
promop=$(module_path "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION")

# yamls DIR...: every YAML file below DIR (merge leftovers, named *~*, skipped), as one stream
yamls() {
  find "$@" -name '*.yaml' ! -name '*~*' | sort | while read -r f; do
    printf -- '---\n'
    cat "$f"
    printf '\n'
  done
}

# split NAME: stdin's CRDs to NAME-crds.yaml, everything to NAME-core.yaml (as the releases)
split() {
  python3 -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
with open(sys.argv[1] + "-crds.yaml", "w") as f:
    yaml.safe_dump_all([d for d in docs if d["kind"] == "CustomResourceDefinition"], f)
with open(sys.argv[1] + "-core.yaml", "w") as f:
    yaml.safe_dump_all(docs, f)
' "$out/$1"
}

images() {
  sed -e "s#ko://knative.dev/serving/cmd/\([a-z_/]*\)#kind.local/lab/knative-serving-\1:$KNATIVE_VERSION#g" \
    -e "s#ko://knative.dev/eventing/cmd/\([a-z_/]*\)#kind.local/lab/knative-eventing-\1:$KNATIVE_VERSION#g" |
    sed -e ':a' -e 's#\(kind\.local/lab/knative-[a-z]*-[a-z_]*\)/#\1_#' -e 'ta'
}

{
  yamls "$serving/config/core"
  yamls "$networking/config"
  yamls "$caching/config/image.yaml"
} | images | split serving

{
  yamls "$eventing/config/core"
  yamls "$eventing/third_party/eventing-integrations-latest"
} | images | split eventing
yamls "$eventing/config/channels/in-memory-channel" | images >"$out/in-memory-channel.yaml"
yamls "$eventing/config/brokers/mt-channel-broker" | images >"$out/mt-channel-broker.yaml"

yamls "$here/manifests/labingress.yaml" "$here/manifests/config-kourier.yaml" >"$out/kourier.yaml"
{
  yamls "$certmanager/deploy/crds"
  yamls "$here/manifests/cert-manager.yaml"
} >"$out/cert-manager.yaml"
yamls "$promop/example/prometheus-operator-crd" >"$out/bundle.yaml"
ls "$out" >&2
