#!/usr/bin/env bash
# tools/lab/test.sh: the lab cluster test of `make test` (scripts/test.sh runs it).
# Installs the lab's Debian packages, builds (or finds cached) its programs and images,
# brings the lab up, deploys Arca with kind-setup.sh --existing-cluster and runs the journey
# (tools/lab/journey.sh), then checks the lab left nothing behind. Timings on stderr.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tools/lab/versions.sh
. "$here/versions.sh"
t0=$(date +%s)
export GOPATH=$HOME/.cache/arca/go GOCACHE=$HOME/.cache/arca/go-build GOFLAGS=-modcacherw GOTOOLCHAIN=local
say() { echo "== lab: $* ($(($(date +%s) - t0)) s)" >&2; }

packages=(containerd runc containernetworking-plugins iptables conntrack etcd-server podman busybox-static python3-yaml)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$here/build.sh" >/dev/null
say "programs built (cache: $LAB_CACHE)"
# the stand-ins' own tests (Kourier's and cert-manager's documented behaviour)
for m in labingress labissuer; do
  (cd "$here/../$m" && go vet ./... && go test ./... >&2)
done
say "the stand-ins' unit tests passed"
work=$(mktemp -d /tmp/arca-lab-test.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$repo/scripts/web.sh" build >/dev/null # the web app's image takes frontend/dist
"$here/images.sh" "$work/images"
say "images built"
"$here/releases.sh" "$work/releases" 2>/dev/null
# the journey's registry of Trivy's DB: distribution, oras and the fixture DB of the tests
LAB_REGISTRY=$("$repo/scripts/tools.sh" registry)
LAB_ORAS=$("$repo/scripts/tools.sh" oras)
"$repo/scripts/trivy-fixture.sh" "$work/trivy-db" >/dev/null
export LAB_REGISTRY LAB_ORAS LAB_TRIVY_DB=$work/trivy-db
status=0
# in the background, so that an interrupt of this script reaches the lab's own teardown
LAB_IMAGES=$work/images "$here/lab.sh" run "$here/journey.sh" "$work/releases" &
lab=$!
trap 'kill -TERM $lab 2>/dev/null; wait $lab; rm -rf "$work"; exit 130' INT TERM HUP
wait $lab || status=$?
trap - INT TERM HUP
say "lab done (status $status)"
"$here/lab.sh" check-clean || status=1
exit $status
