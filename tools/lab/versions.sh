# shellcheck shell=bash disable=SC2034 # read by the scripts that source this file
# Pinned versions of the lab cluster (tools/lab); each keys its cache folder.
# The add-ons' versions are kind-setup.sh's and the Dockerfiles' own (read from them).
_lab_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
_pin() { sed -n "s/^$1=\\([^ ]*\\)\$/\\1/p" "$_lab_repo/$2" | head -n 1; }
KUBE_VERSION=v1.35.4 # the node image kind-setup.sh pins is v1.35.0; the proxy serves v1.35.4
COREDNS_VERSION=v1.14.7
# Knative knative-v1.23.0 (kind-setup.sh) is knative.dev/serving and eventing v0.50.0
KNATIVE_VERSION=v0.50.0
CERT_MANAGER_VERSION=$(_pin CERT_MANAGER_VERSION kind-setup.sh)
PROMETHEUS_OPERATOR_VERSION=$(_pin PROMETHEUS_OPERATOR_VERSION kind-setup.sh)
MC_VERSION=$(_pin 'ARG MC_VERSION' docker/minio.Dockerfile)
MINIO_VERSION=$(_pin 'ARG MINIO_VERSION' docker/minio.Dockerfile)
LAB_CACHE=${ARCA_LAB_CACHE:-$HOME/.cache/arca/lab}
