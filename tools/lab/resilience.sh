# shellcheck shell=bash disable=SC2154 # arca, work, host: set by journey.sh
# tools/lab/resilience.sh: the journey's checks of how Arca on the lab cluster takes a pod
# killed mid-scan, a PostgreSQL outage, a rollout of every Service, and a function at its
# maxScale. Sourced by journey.sh, which sets: arca (the CLI, signed in), work (a scratch
# dir), host and work/ca.pem (the edge), repo, and the ok/fail/check helpers.

# restarts: "POD CONTAINER RESTARTS" for every container of Arca's pods
restarts() {
  # shellcheck disable=SC2016 # a Go template, not shell
  kubectl -n arca get pods -o go-template='{{range .items}}{{$p := .metadata.name}}{{range .status.containerStatuses}}{{$p}} {{.name}} {{.restartCount}}{{"\n"}}{{end}}{{end}}' |
    sort
}

# many_files_tarball FILE: a tar.gz of 20,000 small files, which takes scan several seconds
many_files_tarball() {
  python3 - "$1" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w:gz") as tar:
    for i in range(20000):
        data = f"file {i}\n".encode()
        info = tarfile.TarInfo(f"pkg/f{i:05}.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
PY
}

# The scan pod is deleted (force, no grace) while Trivy runs on an artifact: the Broker
# redelivers to the pod that replaces it, and the artifact is approved with no user action.
scan_pod_killed_mid_scan() {
  local file=$work/killed-mid-scan.tar.gz push pods i
  many_files_tarball "$file"
  "$arca" push "$file" --name lab-killed-mid-scan --version 1.0.0 >"$work/killed.out" 2>&1 &
  push=$!
  for ((i = 0; i < 1200; i++)); do
    pgrep -f 'trivy .*--offline-scan' >/dev/null && break
    sleep 0.1
  done
  pgrep -f 'trivy .*--offline-scan' >/dev/null || {
    echo "  Trivy never ran: $(tail -n 3 "$work/killed.out")"
    kill "$push" 2>/dev/null
    return 1
  }
  pods=$(kubectl -n arca get pods -l serving.knative.dev/service=scan -o name)
  # shellcheck disable=SC2086 # the pods' names
  kubectl -n arca delete --grace-period=0 --force $pods >/dev/null 2>&1
  echo "  deleted ${pods//$'\n'/ } while Trivy ran"
  wait "$push" || {
    echo "  push ended with: $(tail -n 3 "$work/killed.out")"
    logs_of scan ingest
    return 1
  }
  grep -q approved "$work/killed.out" || { echo "  $(tail -n 3 "$work/killed.out")"; return 1; }
}

# Every Service rolls out a second revision at once, under the namespace's quota.
every_service_rolls_out() {
  local svc want=() not
  for svc in $(kubectl -n arca get ksvc -o jsonpath='{.items[*].metadata.name}'); do
    kubectl -n arca patch ksvc "$svc" --type merge \
      -p '{"spec":{"template":{"metadata":{"annotations":{"lab.arca.dev/rollout":"2"}}}}}' >/dev/null
    want+=("$svc")
  done
  for svc in "${want[@]}"; do
    kubectl -n arca wait ksvc "$svc" --for=condition=Ready --timeout=300s >/dev/null 2>&1 || true
  done
  not=$(kubectl -n arca get ksvc -o go-template='{{range .items}}{{if ne .status.latestCreatedRevisionName .status.latestReadyRevisionName}}{{.metadata.name}}: {{.status.latestCreatedRevisionName}} not ready{{"\n"}}{{end}}{{end}}')
  [ -z "$not" ] || {
    echo "  ${not//$'\n'/$'\n'  }"
    kubectl -n arca get events --field-selector type=Warning 2>&1 | tail -n 8 | sed 's/^/  /'
    return 1
  }
  echo "  ${#want[@]} Services at a new revision: $(kubectl -n arca get ksvc -o jsonpath='{.items[*].status.latestReadyRevisionName}')"
}

psql_arca() { # SQL: one value from Arca's database
  kubectl -n arca-data exec postgres-0 -- psql -U arca -d arca -tAc "$1"
}

# The function with the largest maxScale (artifacts, 5) runs at it: every pod serves, and the
# PostgreSQL connections stay within the budget kval checks (Σ maxScale × pool, below
# max_connections).
# Pods of revisions no longer the latest (Knative removes them about a minute after their
# traffic moved; min-scale holds no revision that no route names): "service revision" lines.
previous_revision_pods() {
  kubectl -n arca get ksvc -o go-template='{{range .items}}{{.metadata.name}} {{.status.latestReadyRevisionName}}{{"\n"}}{{end}}' \
    >"$work/latest-revisions"
  kubectl -n arca get pods -l serving.knative.dev/revision \
    -o go-template='{{range .items}}{{index .metadata.labels "serving.knative.dev/service"}} {{index .metadata.labels "serving.knative.dev/revision"}}{{"\n"}}{{end}}' |
    awk 'NR == FNR {latest[$1] = $2; next} $2 != latest[$1]' "$work/latest-revisions" -
}

largest_function_at_max_scale() {
  local max pods conns limit i t left
  # The namespace quota holds the burst beside every other Service at its min-scale, not
  # beside a whole second set of revisions: the rollout's previous pods go first.
  t=$(date +%s)
  for ((i = 0; i < 100; i++)); do
    left=$(previous_revision_pods)
    [ -z "$left" ] && break
    sleep 3
  done
  [ -z "$left" ] || { echo "  previous revisions' pods still there after 300 s: ${left//$'\n'/, }"; return 1; }
  echo "  previous revisions' pods gone $(($(date +%s) - t)) s after the rollout check"
  max=$(kubectl -n arca get ksvc artifacts -o jsonpath='{.spec.template.metadata.annotations.autoscaling\.knative\.dev/max-scale}')
  kubectl -n arca patch ksvc artifacts --type merge \
    -p "{\"spec\":{\"template\":{\"metadata\":{\"annotations\":{\"autoscaling.knative.dev/min-scale\":\"$max\"}}}}}" >/dev/null
  kubectl -n arca wait ksvc artifacts --for=condition=Ready --timeout=300s >/dev/null || true
  for ((i = 0; i < 60; i++)); do
    pods=$(kubectl -n arca get pods -l serving.knative.dev/service=artifacts --field-selector=status.phase=Running \
      -o go-template='{{range .items}}{{range .status.conditions}}{{if and (eq .type "Ready") (eq .status "True")}}x{{end}}{{end}}{{end}}')
    [ "${#pods}" -ge "$max" ] && break
    sleep 2
  done
  [ "${#pods}" -ge "$max" ] || {
    echo "  ${#pods} of $max artifacts pods Ready"
    kubectl -n arca get events --field-selector type=Warning 2>&1 | tail -n 8 | sed 's/^/  /'
    return 1
  }
  local token
  token=$(admin_token)
  for ((i = 0; i < 40; i++)); do
    curl -sf --cacert "$work/ca.pem" -H "Authorization: Bearer $token" -o /dev/null "https://$host/api/artifacts" ||
      { echo "  GET /api/artifacts failed at $max pods"; return 1; }
  done
  conns=$(psql_arca "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'")
  limit=$(psql_arca "SHOW max_connections")
  # each pod of artifacts connects as its own role, at most ARCA_DB_POOL_SIZE at once (the
  # previous revision's pod may still hold its own connections beside the five)
  local own most pool
  own=$(psql_arca "SELECT count(*) FROM pg_stat_activity WHERE usename = 'arca_artifacts'")
  most=$(psql_arca "SELECT coalesce(max(n), 0) FROM (SELECT count(*) AS n FROM pg_stat_activity WHERE usename = 'arca_artifacts' GROUP BY client_addr) per_pod")
  pool=$(kubectl -n arca get ksvc artifacts -o go-template='{{range (index .spec.template.spec.containers 0).env}}{{if eq .name "ARCA_DB_POOL_SIZE"}}{{.value}}{{end}}{{end}}')
  echo "  artifacts at maxScale $max: $own connections as arca_artifacts, at most $most from one pod (pool $pool); $conns in all, of max_connections $limit"
  [ "$own" -ge 1 ] || { echo "  no connection as arca_artifacts: the function does not use its own role"; return 1; }
  [ "$most" -le "$pool" ] && [ "$conns" -lt "$limit" ]
}

# PostgreSQL stops for 60 s: /api/health stops answering 200 (readiness fails, liveness does
# not), no container is restarted, and service resumes once it is back.
postgres_outage() {
  local before after code t down=0
  before=$(restarts)
  kubectl -n arca-data scale statefulset postgres --replicas=0 >/dev/null
  kubectl -n arca-data wait pod/postgres-0 --for=delete --timeout=120s >/dev/null || true
  t=$(date +%s)
  while [ $(($(date +%s) - t)) -lt 60 ]; do
    code=$(curl -s --cacert "$work/ca.pem" -o /dev/null -w '%{http_code}' --max-time 10 "https://$host/api/health")
    [ "$code" != 200 ] && down=1
    sleep 5
  done
  kubectl -n arca-data scale statefulset postgres --replicas=1 >/dev/null
  kubectl -n arca-data wait pod/postgres-0 --for=condition=Ready --timeout=180s >/dev/null 2>&1 || true
  [ "$down" = 1 ] || { echo "  /api/health answered 200 throughout PostgreSQL's outage"; return 1; }
  for ((t = 0; t < 60; t++)); do
    "$arca" ls >/dev/null 2>&1 && break
    sleep 2
  done
  "$arca" ls >/dev/null 2>&1 || { echo "  service did not resume within 120 s of PostgreSQL's return"; return 1; }
  after=$(restarts)
  # a container restarted if its count grew (pods that scaled away meanwhile do not count)
  local grew
  echo "$before" >"$work/restarts.before"
  grew=$(echo "$after" | awk 'NR == FNR {n[$1 "/" $2] = $3; next} ($1 "/" $2) in n && $3 > n[$1 "/" $2] {print $1 "/" $2}' \
    "$work/restarts.before" -)
  [ -z "$grew" ] || { echo "  restarted during the outage: $grew"; return 1; }
  echo "  $(echo "$after" | wc -l) containers, none restarted; service resumed"
}
