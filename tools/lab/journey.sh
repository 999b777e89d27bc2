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

# ---------------------------------------------------------------- Trivy's DB, from a registry here
# No registry on the internet is reachable: the fixture DB is served as Trivy's DB artifact by
# a registry on the node (what an air-gapped cluster does with ARCA_TRIVY_DB_REPOSITORY).
mkdir -p "$LAB_DIR/registry/storage" "$LAB_DIR/registry/push"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 10.244.0.1:5000\n' \
  "$LAB_DIR/registry/storage" >"$LAB_DIR/registry/config.yml"
OTEL_SDK_DISABLED=true OTEL_TRACES_EXPORTER=none "$LAB_REGISTRY" serve "$LAB_DIR/registry/config.yml" \
  >"$LAB_DIR/logs/registry.log" 2>&1 &
for _ in $(seq 60); do curl -sf http://10.244.0.1:5000/v2/ >/dev/null && break; sleep 0.5; done
tar -czf "$LAB_DIR/registry/push/db.tar.gz" -C "$LAB_TRIVY_DB" trivy.db metadata.json
(cd "$LAB_DIR/registry/push" && HOME=$PWD "$LAB_ORAS" push --plain-http 10.244.0.1:5000/trivy-db:2 \
  --artifact-type application/vnd.aquasec.trivy.config.v1+json \
  db.tar.gz:application/vnd.aquasec.trivy.db.layer.v1.tar+gzip >/dev/null)
ok "the fixture vulnerability DB is served at 10.244.0.1:5000/trivy-db:2"

# ---------------------------------------------------------------- deploy, as a laptop does
echo "# kind-setup.sh --existing-cluster"
if ! ARCA_RELEASES=$releases ARCA_MONITORING=0 "$repo/kind-setup.sh" --existing-cluster >"$LAB_DIR/logs/kind-setup.log" 2>&1; then
  tail -n 40 "$LAB_DIR/logs/kind-setup.log"
  fail "kind-setup.sh --existing-cluster (log above)"
  exit 1
fi
ok "kind-setup.sh --existing-cluster deployed Arca ($(elapsed))"

# scan takes its DB from that registry: a second revision of a Service, under the namespace's quota
kubectl -n arca patch ksvc scan --type json -p '[{"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "ARCA_TRIVY_DB_REPOSITORY", "value": "10.244.0.1:5000/trivy-db:2"}}, {"op": "add", "path": "/spec/template/spec/containers/0/env/-", "value": {"name": "ARCA_TRIVY_DB_INSECURE", "value": "true"}}]' >/dev/null
second_revision() {
  kubectl -n arca wait ksvc/scan --for=jsonpath='{.status.latestReadyRevisionName}'=scan-00002 --timeout=300s >/dev/null &&
    kubectl -n arca wait ksvc/scan --for=condition=Ready --timeout=60s >/dev/null
}
check "a second revision (scan-00002, the DB's registry) rolls out under the namespace's quota" second_revision

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
    # a Pod with no securityContext: "baseline" would admit it, "restricted" must not
    out=$(kubectl -n "$ns" run psa-probe --image=localhost/pause:lab --restart=Never 2>&1) && {
      echo "  a Pod without runAsNonRoot, seccomp or dropped capabilities was admitted in $ns"
      return 1
    }
    grep -q 'violates PodSecurity "restricted' <<<"$out" || { echo "  $out"; return 1; }
  done
}
check "Pod Security restricted is enforced in arca and arca-data" psa_refuses

# ---------------------------------------------------------------- the journey, through the edge
work=$LAB_DIR/journey
mkdir -p "$work/home"
host=$(kubectl -n arca get ksvc arca -o jsonpath='{.status.url}')
host=${host#*://}
edge=$(kubectl -n kourier-system get service kourier -o jsonpath='{.spec.clusterIP}')
# the lab's own /etc/hosts (its mount namespace): the public host name is the edge's address
{ cat /etc/hosts; echo "$edge $host"; } >"$work/hosts"
mount --bind "$work/hosts" /etc/hosts
kubectl -n cert-manager get secret arca-ca -o jsonpath='{.data.ca\.crt}' | base64 -d >"$work/ca.pem"
kubectl -n arca get secret arca-admin -o jsonpath='{.data.password}' | base64 -d >"$work/admin-password"
arca=${ARCA_BIN:-${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}/debug/arca}
arca=$(cd "$repo" && realpath "$arca")
export HOME=$work/home ARCA_SERVER=https://$host
login_body=$(python3 -c 'import json,sys; print(json.dumps({"username": "admin", "password": open(sys.argv[1]).read().strip()}))' "$work/admin-password")

check "GET https://$host/api/health through the edge (TLS from the cluster's CA)" \
  curl -sf --cacert "$work/ca.pem" -o /dev/null "https://$host/api/health"
check "arca login as admin" sh -c "'$arca' login --username admin --ca-cert '$work/ca.pem' --signing-ca '$work/ca.pem' --password-stdin <'$work/admin-password' >/dev/null"
# diagnostics for a failed step: the functions' and the edge's last log lines
logs_of() { # SERVICE...
  local svc
  for svc in "$@"; do
    echo "  --- $svc"
    kubectl -n arca logs -l "serving.knative.dev/service=$svc" -c "$svc" --tail=15 --prefix 2>&1 | sed 's/^/  /' || true
  done
  echo "  --- the edge (lab stand-in)"
  kubectl -n kourier-system logs deploy/3scale-kourier-gateway --tail=15 2>&1 | sed 's/^/  /' || true
}
head -c 3000000 /dev/urandom >"$work/lab-demo.bin"
if "$arca" push "$work/lab-demo.bin" --name lab-demo --version 1.0.0 >"$work/push.out" 2>&1; then
  ok "arca push: presigned upload to MinIO, storage event to ingest, Broker to scan and sign, approved ($(elapsed))"
else
  fail "arca push ended with $(tail -n 3 "$work/push.out")"
  logs_of upload ingest scan sign arca
fi
if (cd "$work" && "$arca" pull lab-demo@1.0.0 -o pulled.bin -O json >pull.json 2>&1) &&
  cmp -s "$work/pulled.bin" "$work/lab-demo.bin" && grep -q '"signature_verified": *true' "$work/pull.json"; then
  ok "arca pull: same bytes, Arca's signature verified against the cluster's signing CA"
else
  fail "arca pull: $(cat "$work/pull.json" 2>/dev/null)"
fi

# ---------------------------------------------------------------- functions as rendered
# Each function's process, seen from the lab's PID namespace (the parent of the Pods'):
# uid 65532, no capabilities, no-new-privileges, seccomp filter, read-only root.
container_process_ok() { # POD CONTAINER
  local id pid status
  id=$(kubectl -n arca get pod "$1" -o jsonpath="{.status.containerStatuses[?(@.name==\"$2\")].containerID}")
  id=${id#containerd://}
  # the container's processes are in this PID namespace's /proc, in a cgroup named by its id
  pid=$(grep -l "$id" /proc/[0-9]*/cgroup 2>/dev/null | head -n 1 | cut -d/ -f3)
  [ -n "$pid" ] || { echo "  $1/$2: no process in a cgroup named $id"; return 1; }
  status=$(cat "/proc/$pid/status")
  grep -Eq '^Uid:\s+65532\s+65532\s+65532\s+65532$' <<<"$status" || { echo "  $1: $(grep ^Uid <<<"$status")"; return 1; }
  local want
  for want in '^CapEff:\s+0+$' '^CapBnd:\s+0+$' '^NoNewPrivs:\s+1$' '^Seccomp:\s+2$'; do
    grep -Eq "$want" <<<"$status" || { echo "  $1: /proc/$pid/status does not match $want"; return 1; }
  done
  awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | grep -q '^ro' || { echo "  $1: root file system is writable"; return 1; }
}
declare -A wake=([auth]=/api/auth/me [users]=/api/users [audit]=/api/audit-logs [upload]=/api/artifacts/x/parts
  [artifacts]=/api/artifacts [download]=/api/download-links/x [scan]=/api/policy [sign]=/api/artifacts/x/signature)
internal=$(kubectl -n kourier-system get service kourier-internal -o jsonpath='{.spec.clusterIP}')
functions_confined() {
  local fn pod bad=0
  for fn in auth users audit upload artifacts download scan sign ingest; do
    # a function scaled to zero is woken by any request to it through the edge
    if [ "$fn" = ingest ]; then # cluster-local only: through the internal gateway
      curl -s -o /dev/null -H "Host: ingest.arca.svc.cluster.local" "http://$internal/health/liveness" || true
    else
      curl -s --cacert "$work/ca.pem" -o /dev/null "https://$host${wake[$fn]}" || true
    fi
    kubectl -n arca wait pod -l "serving.knative.dev/service=$fn" --for=condition=Ready --timeout=90s >/dev/null 2>&1 || true
    pod=$(kubectl -n arca get pods -l "serving.knative.dev/service=$fn" --field-selector=status.phase=Running \
      -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || true)
    [ -n "$pod" ] || { echo "  $fn: no running pod"; bad=1; continue; }
    container_process_ok "$pod" "$fn" || bad=1
  done
  return $bad
}
check "every function runs as uid 65532, no capabilities, no-new-privileges, seccomp, read-only root" functions_confined

# admin_token [CLIENT]: an access token for admin, signed in from that client (as_client, with
# its forged X-Forwarded-For), else from the lab's own address
admin_token() {
  local login=(curl -s --cacert "$work/ca.pem")
  [ -z "${1:-}" ] || login=(as_client "$1")
  "${login[@]}" -H 'Content-Type: application/json' -d "$login_body" "https://$host/api/auth/login" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}

# ---------------------------------------------------------------- a forged event
# A pod of Arca's namespace mints a service-account token for ingest's audience (any pod
# can: the API server signs it) and sends ingest a "deleted" event for the approved
# artifact. ingest must refuse it (the sender is not the Broker), audit it, and keep the blob.
forged_event_refused() {
  local id mc_tag logs token entries forger_ip
  id=$("$arca" show lab-demo@1.0.0 -O json | python3 -c 'import json,sys; print(json.load(sys.stdin)["artifact"]["id"])')
  mc_tag=$(sed -n 's/^ARG MC_VERSION=//p' "$repo/docker/minio.Dockerfile")
  kubectl -n arca create serviceaccount lab-forger >/dev/null
  kubectl -n arca apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Pod
metadata: {name: lab-forger, namespace: arca}
spec:
  serviceAccountName: lab-forger
  restartPolicy: Never
  securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
    - name: forger
      image: kind.local/arca-minio-setup:$mc_tag
      imagePullPolicy: Never
      command: [sh, -c]
      args:
        - >-
          wget -q -S -O- --header "Authorization: Bearer \$(cat /var/run/forge/token)"
          --header "Content-Type: application/json" --header "ce-specversion: 1.0"
          --header "ce-id: forged-$id" --header "ce-source: /arca/ingest"
          --header "ce-type: dev.arca.artifact.deleted" --header "ce-subject: $id"
          --post-data '{"id":"$id"}' http://ingest.arca.svc.cluster.local/ 2>&1; echo "wget exit \$?"
      resources: {requests: {cpu: 10m, memory: 16Mi}, limits: {cpu: 100m, memory: 64Mi}}
      securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
      volumeMounts: [{name: forge, mountPath: /var/run/forge}]
  volumes:
    - name: forge
      projected:
        sources: [{serviceAccountToken: {audience: arca-ingest, path: token, expirationSeconds: 600}}]
YAML
  kubectl -n arca wait pod/lab-forger --for=jsonpath='{.status.phase}'=Succeeded --timeout=120s >/dev/null || true
  logs=$(kubectl -n arca logs lab-forger)
  grep -Eq 'HTTP/1.1 40[13]' <<<"$logs" || { echo "  the forged event was not refused: $logs"; return 1; }
  "$arca" show lab-demo@1.0.0 -O json | grep -q '"status": *"approved"' || { echo "  the artifact is no longer approved"; return 1; }
  (cd "$work" && "$arca" pull lab-demo@1.0.0 -o again.bin >/dev/null 2>&1) || { echo "  the artifact's blob is gone"; return 1; }
  token=$(admin_token)
  entries=$(curl -s --cacert "$work/ca.pem" -H "Authorization: Bearer $token" "https://$host/api/audit-logs?limit=500")
  # the refusal is audited from the forger's own address (its subject is not named yet: a
  # refused sender is recorded as anonymous)
  forger_ip=$(kubectl -n arca get pod lab-forger -o jsonpath='{.status.podIP}')
  # the entries go through a file: 500 of them exceed one argument's size limit (128 KiB)
  printf '%s' "$entries" >"$work/audit-forger.json"
  python3 - "$work/audit-forger.json" "$forger_ip" <<'PY' || return 1
import json, sys
entries, ip = json.load(open(sys.argv[1]))["entries"], sys.argv[2]
if not any(e.get("action") == "POST /" and e.get("client_ip") == ip and e.get("outcome") != "success" for e in entries):
    print(f"  no refused POST / from the forger's address {ip} in the audit log")
    sys.exit(1)
PY
}
check "a forged CloudEvent (a pod's own token for ingest's audience) is refused and audited; the artifact stays" forged_event_refused

# ---------------------------------------------------------------- client addresses behind the edge
# Three machines outside the cluster (network namespaces on the node's bridge, 10.244.0.201-203)
# call the edge, each sending its own X-Forwarded-For. Arca must see each one's real address.
client_ns() { # NAME ADDRESS
  ip netns add "$1"
  ip link add "$1-lab" type veth peer name eth0 netns "$1"
  ip link set "$1-lab" master cni-lab0 up
  ip -n "$1" addr add "$2/24" dev eth0
  ip -n "$1" link set eth0 up
  ip -n "$1" link set lo up
  ip -n "$1" route add default via 10.244.0.1
}
client_ns c1 10.244.0.201
client_ns c2 10.244.0.202
client_ns c3 10.244.0.203
as_client() { # NAME CURL-ARGS...: curl from that machine, a forged X-Forwarded-For on every request
  local name=$1
  shift
  ip netns exec "$name" curl -s --cacert "$work/ca.pem" -H "X-Forwarded-For: 198.51.100.77, 10.244.0.201" "$@"
}
# per-address login limit: c3 exhausts its own budget with wrong passwords (for an account of
# its own: failed sign-ins for admin would lock admin's account, a different control); c1 and
# c2 still sign in
limited() {
  local i code=""
  for ((i = 0; i < 40; i++)); do
    code=$(as_client c3 -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' \
      -d '{"username":"lab-nobody","password":"wrong"}' "https://$host/api/auth/login")
    [ "$code" = 429 ] && break
  done
  [ "$code" = 429 ] || { echo "  c3 was never limited (last answer $code)"; logs_of auth; return 1; }
  [ -n "$(admin_token c1)" ] || {
    echo "  c1 could not sign in after c3 was limited: $(as_client c1 -H 'Content-Type: application/json' -d "$login_body" "https://$host/api/auth/login" | head -c 300)"
    logs_of auth
    return 1
  }
  [ -n "$(admin_token c2)" ] || { echo "  c2 could not sign in after c3 was limited"; return 1; }
}
check "login limits count each client's real address (c3 limited after wrong passwords; c1 and c2 still sign in)" limited
# audited by the real address: c2's sign-in is recorded as 10.244.0.202, never the forged ones
audited() {
  local token entries
  token=$(admin_token c1)
  entries=$(as_client c1 -H "Authorization: Bearer $token" "https://$host/api/audit-logs?limit=500")
  printf '%s' "$entries" >"$work/audit-clients.json"
  python3 - "$work/audit-clients.json" <<'PY'
import json, sys
entries = [e for e in json.load(open(sys.argv[1]))["entries"] if e.get("action", "").endswith("/api/auth/login")]
seen = {e.get("client_ip") for e in entries}
want = {"10.244.0.201", "10.244.0.202", "10.244.0.203"}
forged = {"198.51.100.77"}
if not want <= seen or seen & forged:
    print(f"  audit client addresses: {sorted(a for a in seen if a)}")
    sys.exit(1)
PY
}
check "the audit log records each client's real address, never the forged X-Forwarded-For" audited

# ---------------------------------------------------------------- failures and change
# shellcheck source=tools/lab/resilience.sh
. "$here/resilience.sh"
check "the scan pod deleted mid-scan: the artifact is approved with no user action" scan_pod_killed_mid_scan
check "every Service rolls out a second revision at once, under the namespace's quota" every_service_rolls_out
# Right after every Service rolls, the namespace's quota (16 CPU limits, 15.8 used) admitted
# 2 to 4 of artifacts' 5 pods: the burst fits once the previous revisions' pods are gone, so
# the check waits for that first.
check "the largest function at its maxScale stays within PostgreSQL's connection budget" largest_function_at_max_scale
check "PostgreSQL stopped for 60 s: no container restarted, service resumed" postgres_outage

echo "# journey done in $(elapsed): $failures failure(s)"
# LAB_HOLD=1 (by hand, for debugging): keep the lab up until this process is signalled
if [ "${LAB_HOLD:-0}" = 1 ]; then
  echo "# LAB_HOLD=1: the lab stays up; kill -TERM the lab.sh run process to tear it down"
  sleep infinity & wait $!
fi
[ "$failures" -eq 0 ]
