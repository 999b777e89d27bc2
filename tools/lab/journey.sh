#!/usr/bin/env bash
# tools/lab/journey.sh RELEASES_DIR: Arca deployed on the lab cluster by kind-setup.sh
# itself, then checked end to end. Runs inside the lab (tools/lab/lab.sh run); each check
# prints "ok - ..." or "FAIL - ..." and the script exits 1 if any failed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
releases=${1:?usage: journey.sh RELEASES_DIR}

failures=0
ok() { echo "ok - $*"; }
fail() {
  echo "FAIL - $*"
  failures=$((failures + 1))
}
check() { # DESCRIPTION CMD...
  local what=$1
  shift
  if "$@"; then ok "$what"; else fail "$what"; fi
}
t0=$(date +%s)
elapsed() { echo "$(($(date +%s) - t0)) s"; }

echo "# left out of the lab (cannot run here): Kind's cluster creation (the lab is its own"
echo "# one-node cluster), Kourier's Envoy (tools/labingress stands in), cert-manager's"
echo "# controller (tools/labissuer stands in), the monitoring stack's images (ARCA_MONITORING=0)"

# ---------------------------------------------------------------- deploy, as a laptop does
echo "# kind-setup.sh --existing-cluster"
if ! ARCA_RELEASES=$releases ARCA_MONITORING=0 "$repo/kind-setup.sh" --existing-cluster >"$LAB_DIR/logs/kind-setup.log" 2>&1; then
  tail -n 40 "$LAB_DIR/logs/kind-setup.log"
  fail "kind-setup.sh --existing-cluster (log above)"
  exit 1
fi
ok "kind-setup.sh --existing-cluster deployed Arca ($(elapsed))"

# ---------------------------------------------------------------- every object admitted and Ready
ready_all() { # KIND: every object of KIND in namespace arca is Ready
  local not
  not=$(kubectl -n arca get "$1" -o jsonpath='{range .items[*]}{.metadata.name}={.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}' | grep -v '=True$' || true)
  [ -z "$not" ] || { echo "  not Ready: $not"; return 1; }
}
for kind in ksvc broker trigger sinkbinding; do
  check "every $kind is Ready ($(kubectl -n arca get "$kind" --no-headers | wc -l))" ready_all "$kind"
done

# every object of the render exists in the cluster (admitted by the API server and webhooks)
all_admitted() {
  local missing=0 line
  while read -r line; do
    # shellcheck disable=SC2086 # KIND NAME [-n NS]
    kubectl get $line >/dev/null 2>&1 || { echo "  not in the cluster: $line"; missing=1; }
  done < <(kubectl kustomize "$repo/knative/overlays/kind" | python3 -c '
import sys, yaml
for d in yaml.safe_load_all(sys.stdin):
    if d:
        m = d["metadata"]
        ns = " -n " + m["namespace"] if m.get("namespace") else ""
        print(d["kind"] + "." + d["apiVersion"].split("/")[0] if "/" in d["apiVersion"] else d["kind"], m["name"] + ns)
')
  return $missing
}
check "every object of the render was admitted by the API server" all_admitted

# Pod Security "restricted" is enforced where Arca runs: a privileged Pod is refused
psa_refuses() {
  local ns out
  for ns in arca arca-data; do
    [ "$(kubectl get ns "$ns" -o jsonpath='{.metadata.labels.pod-security\.kubernetes\.io/enforce}')" = restricted ] || {
      echo "  namespace $ns does not enforce restricted"
      return 1
    }
    out=$(kubectl -n "$ns" run psa-probe --image=localhost/pause:lab --restart=Never \
      --overrides='{"spec":{"containers":[{"name":"p","image":"localhost/pause:lab","securityContext":{"privileged":true}}]}}' 2>&1) && {
      echo "  a privileged Pod was admitted in $ns"
      return 1
    }
    grep -q 'violates PodSecurity "restricted' <<<"$out" || { echo "  $out"; return 1; }
  done
}
check "Pod Security restricted is enforced in arca and arca-data" psa_refuses

echo "# journey done in $(elapsed): $failures failure(s)"
[ "$failures" -eq 0 ]
