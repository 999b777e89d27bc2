#!/usr/bin/env bash
# Arca on a local Kind cluster: one command from nothing to https://arca.127.0.0.1.sslip.io.
#
#   ./kind-setup.sh            create (or converge) the cluster and deploy Arca
#   ./kind-setup.sh --dry-run  print every step and the exact commands; needs no Docker
#   ./kind-setup.sh --delete   delete the Kind cluster (and everything in it)
#   ./kind-setup.sh --list-external
#                              the Secrets/ConfigMaps/namespaces this script (and the add-on
#                              releases) create outside the Kustomize render (used by kval)
#   ./kind-setup.sh --existing-cluster
#                              deploy to the cluster of the current kubectl context (or
#                              ARCA_CONTEXT) instead of creating a Kind cluster; the images
#                              must already be in its nodes' container runtime, tagged
#                              ARCA_IMAGE_TAG (default 0.1.0, as the manifests name them)
#   ./kind-setup.sh --emit-secrets JWKS_FILE ISSUER
#                              print, as YAML, the Secrets and ConfigMaps step 9 would apply,
#                              freshly generated, with JWKS_FILE and ISSUER standing for the
#                              API server's; no cluster is touched (tests/e2e/deployment.rs)
#
# Idempotent: a second run converges (the cluster is reused, add-ons re-applied, existing
# secrets kept, the one-shot Jobs re-run, images rebuilt and rolled out as new revisions).
#
# Environment: ARCA_CLUSTER (cluster name, default arca), ARCA_DOMAIN (Knative's domain,
# default 127.0.0.1.sslip.io; Arca is https://arca.$ARCA_DOMAIN), KIND_NODE_IMAGE,
# ARCA_RELEASES (a folder holding the add-on release manifests, named as in their release
# URLs, e.g. serving-core.yaml: used instead of downloading them), ARCA_MONITORING=0 (the
# prometheus-operator is not installed and the monitoring stack is not waited for: for a
# cluster that cannot run their images; the manifest still applies, so its CRDs must be in
# ARCA_RELEASES/bundle.yaml).
set -euo pipefail

# ---------------------------------------------------------------- pinned versions
# Knative 1.23 = knative.dev/serving and eventing v0.50.0, the Go types tools/kval checks with.
KNATIVE_VERSION=knative-v1.23.0
CERT_MANAGER_VERSION=v1.21.2
PROMETHEUS_OPERATOR_VERSION=v0.91.0
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.35.0}
MIN_KIND=0.31.0
MIN_KUBECTL=1.34.0
MIN_DOCKER=24.0.0
# MinIO and mc are built from source (docker/minio.Dockerfile) at these versions.
MINIO_TAG=v0.0.0-20260212201848-7aac2a2c5b7c
MC_TAG=v0.0.0-20250313080218-cf909e1063a9

SERVING_URL=https://github.com/knative/serving/releases/download/$KNATIVE_VERSION
EVENTING_URL=https://github.com/knative/eventing/releases/download/$KNATIVE_VERSION
KOURIER_URL=https://github.com/knative-extensions/net-kourier/releases/download/$KNATIVE_VERSION
CERT_MANAGER_URL=https://github.com/cert-manager/cert-manager/releases/download/$CERT_MANAGER_VERSION/cert-manager.yaml
PROMETHEUS_OPERATOR_URL=https://github.com/prometheus-operator/prometheus-operator/releases/download/$PROMETHEUS_OPERATOR_VERSION/bundle.yaml

CLUSTER=${ARCA_CLUSTER:-arca}
DOMAIN=${ARCA_DOMAIN:-127.0.0.1.sslip.io}
HOST=arca.$DOMAIN
DEFAULT_HOST=arca.127.0.0.1.sslip.io
CONTEXT=kind-$CLUSTER
FUNCTIONS=(auth users audit upload artifacts download scan sign ingest)
S3_USERS=(upload ingest scan sign download)
WAIT=600s

REPO=$(cd "$(dirname "$0")" && pwd)
cd "$REPO"

MODE=apply
case ${1:-} in
  "") ;;
  --dry-run) MODE=dry-run ;;
  --existing-cluster) MODE=existing ;;
  --delete) MODE=delete ;;
  --list-external) MODE=list-external ;;
  --emit-secrets) MODE=emit-secrets EMIT_JWKS=${2:-} EMIT_ISSUER=${3:-} ;;
  -h | --help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "kind-setup.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
esac
if [ "$MODE" = existing ]; then
  CONTEXT=${ARCA_CONTEXT:-$(kubectl config current-context)}
fi
MONITORING=${ARCA_MONITORING:-1}

# ---------------------------------------------------------------- helpers
STEPS=(prerequisites cluster cert-manager knative-serving kourier knative-eventing
  monitoring-stack images namespaces-and-secrets data-and-jobs functions ready summary)
step_no=0
step() {
  step_no=$((step_no + 1))
  printf '\n== step %d/%d: %s - %s\n' "$step_no" "${#STEPS[@]}" "$1" "$2"
}

dry() { [ "$MODE" = dry-run ]; }

# run CMD...: runs it, or prints it (shell-quoted) in --dry-run.
run() {
  if dry; then
    printf '+'; printf ' %q' "$@"; printf '\n'
  else
    "$@"
  fi
}

k() { run kubectl --context "$CONTEXT" "$@"; }

# apply_generated DESCRIPTION CMD...: pipes the YAML that CMD prints into `kubectl apply`.
# Values never appear in --dry-run output (the command is printed, not run).
apply_generated() {
  local what=$1
  shift
  if dry; then
    printf '+ %s | kubectl --context %s apply -f -    # %s\n' "$*" "$CONTEXT" "$what"
  elif [ "$MODE" = emit-secrets ]; then
    echo "---"
    "$@"
  else
    "$@" | kubectl --context "$CONTEXT" apply -f -
  fi
}

die() { echo "kind-setup.sh: $*" >&2; exit 1; }

# release URL: the release manifest, or its copy in ARCA_RELEASES (named as the URL's file)
release() {
  if [ -n "${ARCA_RELEASES:-}" ]; then
    [ -f "$ARCA_RELEASES/${1##*/}" ] || die "ARCA_RELEASES has no ${1##*/} (for $1)"
    echo "$ARCA_RELEASES/${1##*/}"
  else
    echo "$1"
  fi
}

# version_ge A B: is version A >= B (dotted numbers)?
version_ge() { [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]; }

# the image tag: the commit, plus a hash of uncommitted changes (a rebuild rolls out)
image_tag() {
  local tag dirty
  tag=$(git -C "$REPO" rev-parse --short=12 HEAD 2>/dev/null || echo dev)
  dirty=$(git -C "$REPO" status --porcelain --untracked-files=no 2>/dev/null | head -c1 || true)
  if [ -n "$dirty" ]; then
    tag="$tag-dirty-$(git -C "$REPO" diff HEAD 2>/dev/null | openssl dgst -sha256 | awk '{print substr($NF, 1, 8)}')"
  fi
  echo "$tag"
}

# The objects this script creates outside the render: "Kind namespace/name".
external_objects() {
  cat <<EOF
# created by the add-on releases kind-setup.sh installs
Namespace cert-manager
Namespace kourier-system
# created by kind-setup.sh (random values, never committed)
Secret arca-data/arca-postgres
Secret arca-data/arca-minio
Secret arca-data/arca-minio-users
Secret arca/arca-db
Secret arca/arca-db-roles
Secret arca/arca-admin
Secret arca/arca-metrics
Secret arca/arca-jwt-private
ConfigMap arca/arca-jwt-public
Secret arca/arca-audit-checkpoint
Secret arca/arca-download-link
Secret arca/arca-ingest-token
ConfigMap arca/arca-event-jwks
Secret arca-monitoring/arca-grafana-admin
EOF
  local u
  for u in "${S3_USERS[@]}"; do echo "Secret arca/arca-s3-$u"; done
}

# ---------------------------------------------------------------- secrets (step 9)
# secret_value NS NAME KEY GENERATOR...: the existing value, or a new one from GENERATOR
secret_value() {
  local ns=$1 name=$2 key=$3 value=""
  shift 3
  if [ "$MODE" != emit-secrets ]; then
    value=$(kubectl --context "$CONTEXT" -n "$ns" get secret "$name" -o "go-template={{index .data \"$key\" | base64decode}}" 2>/dev/null || true)
  fi
  if [ -z "$value" ]; then value=$("$@"); fi
  printf '%s' "$value"
}
rand_hex() { openssl rand -hex "$1"; }
rand_b64() { openssl rand -base64 "$1" | tr -d '\n'; }
ec_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null; }

# secret NS NAME --from-literal=... / --from-file=...: create or update (converges)
secret() {
  local ns=$1 name=$2
  shift 2
  apply_generated "secret $ns/$name" kubectl -n "$ns" create secret generic "$name" "$@" --dry-run=client -o yaml
}

# generate_secrets: every Secret (and the two ConfigMaps of public keys) Arca needs, each
# value read back from the cluster when it exists, else generated with openssl.
generate_secrets() {
  local work
  work=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: the trap outlives this function's locals
  trap "rm -rf '$work'" EXIT
  pg_password=$(secret_value arca-data arca-postgres password rand_hex 24)
  secret arca-data arca-postgres --from-literal=password="$pg_password"
  secret arca arca-db --from-literal=url="postgres://arca:$pg_password@postgres.arca-data.svc.cluster.local:5432/arca"
  # each function's own role (the migrate Job creates it with only the grants it needs)
  role_args=()
  for fn in "${FUNCTIONS[@]}"; do
    url=$(secret_value arca arca-db-roles "$fn" printf 'postgres://arca_%s:%s@postgres.arca-data.svc.cluster.local:5432/arca' "$fn" "$(rand_hex 24)")
    role_args+=("--from-literal=$fn=$url")
  done
  secret arca arca-db-roles "${role_args[@]}"

  ingest_token=$(secret_value arca arca-ingest-token token rand_hex 32)
  secret arca arca-ingest-token --from-literal=token="$ingest_token"
  kms_key=$(secret_value arca-data arca-minio kms-secret-key printf 'arca-key:%s' "$(rand_b64 32)")
  secret arca-data arca-minio --from-literal=root-user=arca-root \
    --from-literal=root-password="$(secret_value arca-data arca-minio root-password rand_hex 24)" \
    --from-literal=kms-secret-key="$kms_key" --from-literal=ingest-token="$ingest_token"

  user_args=()
  for u in "${S3_USERS[@]}" setup; do
    key=$(secret_value arca-data arca-minio-users "$u-secret-key" rand_hex 24)
    user_args+=("--from-literal=$u-access-key=arca-$u" "--from-literal=$u-secret-key=$key")
    if [ "$u" != setup ]; then
      secret arca "arca-s3-$u" --from-literal=access-key="arca-$u" --from-literal=secret-key="$key"
    fi
  done
  secret arca-data arca-minio-users "${user_args[@]}"

  secret arca arca-admin --from-literal=password="$(secret_value arca arca-admin password rand_b64 18)"
  secret arca arca-metrics --from-literal=token="$(secret_value arca arca-metrics token rand_hex 32)"
  secret arca arca-download-link --from-literal=key="$(secret_value arca arca-download-link key rand_b64 32)"
  secret arca-monitoring arca-grafana-admin --from-literal=user=admin \
    --from-literal=password="$(secret_value arca-monitoring arca-grafana-admin password rand_b64 18)"

  secret_value arca arca-jwt-private private.pem ec_key >"$work/jwt.pem"
  openssl pkey -in "$work/jwt.pem" -pubout -out "$work/jwt-public.pem"
  secret arca arca-jwt-private --from-file=private.pem="$work/jwt.pem"
  apply_generated "public JWT key" kubectl -n arca create configmap arca-jwt-public \
    --from-file=public.pem="$work/jwt-public.pem" --dry-run=client -o yaml
  secret_value arca arca-audit-checkpoint private.pem ec_key >"$work/audit.pem"
  secret arca arca-audit-checkpoint --from-file=private.pem="$work/audit.pem"

  if [ "$MODE" = emit-secrets ]; then
    cp "$EMIT_JWKS" "$work/jwks.json"
    issuer=$EMIT_ISSUER
  else
    kubectl --context "$CONTEXT" get --raw /openid/v1/jwks >"$work/jwks.json"
    issuer=$(kubectl --context "$CONTEXT" get --raw /.well-known/openid-configuration | sed -n 's/.*"issuer":"\([^"]*\)".*/\1/p')
  fi
  [ -n "$issuer" ] || die "the API server announces no OIDC issuer"
  apply_generated "the API server's JWKS and issuer (OIDC sender tokens)" kubectl -n arca create configmap arca-event-jwks \
    --from-file=jwks.json="$work/jwks.json" --from-literal=issuer="$issuer" --dry-run=client -o yaml
}

if [ "$MODE" = emit-secrets ]; then
  if [ ! -r "$EMIT_JWKS" ] || [ -z "$EMIT_ISSUER" ]; then
    die "--emit-secrets needs JWKS_FILE and ISSUER (what the API server's /openid/v1/jwks and issuer would be)"
  fi
  generate_secrets
  exit 0
fi

if [ "$MODE" = list-external ]; then
  external_objects
  exit 0
fi

# ---------------------------------------------------------------- delete
if [ "$MODE" = delete ]; then
  command -v kind >/dev/null || die "kind is not installed"
  if kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
    run kind delete cluster --name "$CLUSTER"
  else
    echo "kind-setup.sh: no Kind cluster named $CLUSTER"
  fi
  exit 0
fi

if dry; then
  echo "kind-setup.sh --dry-run: the steps and commands of a real run (nothing is executed;"
  echo "secret values are generated only in a real run and never printed)."
fi

# ---------------------------------------------------------------- 1. prerequisites
step prerequisites "docker, kind and kubectl with their versions"
if [ "$MODE" = existing ]; then
  for tool in kubectl openssl; do command -v "$tool" >/dev/null || die "missing: $tool"; done
  kubectl_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: v\([0-9.]*\).*/\1/p')
  version_ge "${kubectl_version:-0}" "$MIN_KUBECTL" || die "kubectl ${kubectl_version:-?} is too old: need >= $MIN_KUBECTL"
  echo "existing cluster (context $CONTEXT): docker and kind are not needed; kubectl $kubectl_version: ok"
elif dry; then
  echo "(skipped in --dry-run: needs docker >= $MIN_DOCKER with a running engine, kind >= $MIN_KIND, kubectl >= $MIN_KUBECTL, openssl, git)"
else
  missing=()
  for tool in docker kind kubectl openssl git; do
    command -v "$tool" >/dev/null || missing+=("$tool")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing: ${missing[*]}. Install Docker (https://docs.docker.com/get-docker/), kind (https://kind.sigs.k8s.io/docs/user/quick-start/#installation) and kubectl (https://kubernetes.io/docs/tasks/tools/)."
  docker_version=$(docker version --format '{{.Server.Version}}' 2>/dev/null) ||
    die "docker is installed but its engine does not answer (is the Docker daemon running? can this user reach it?)"
  kind_version=$(kind version | sed -n 's/^kind v\([0-9.]*\).*/\1/p')
  kubectl_version=$(kubectl version --client 2>/dev/null | sed -n 's/^Client Version: v\([0-9.]*\).*/\1/p')
  version_ge "${docker_version%%-*}" "$MIN_DOCKER" || die "docker $docker_version is too old: need >= $MIN_DOCKER"
  version_ge "${kind_version:-0}" "$MIN_KIND" || die "kind ${kind_version:-?} is too old: need >= $MIN_KIND (for $KIND_NODE_IMAGE)"
  version_ge "${kubectl_version:-0}" "$MIN_KUBECTL" || die "kubectl ${kubectl_version:-?} is too old: need >= $MIN_KUBECTL (within one minor version of the cluster)"
  echo "docker $docker_version, kind $kind_version, kubectl $kubectl_version: ok"
fi

# ---------------------------------------------------------------- 2. cluster
step cluster "Kind cluster '$CLUSTER' (1 control plane + 2 workers, ports 80/443 on 127.0.0.1)"
if [ "$MODE" = existing ]; then
  echo "existing cluster: $(kubectl --context "$CONTEXT" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
elif dry || ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  run kind create cluster --name "$CLUSTER" --image "$KIND_NODE_IMAGE" \
    --config knative/overlays/kind/kind-cluster.yaml --wait 180s
else
  echo "cluster $CLUSTER exists: reusing it"
fi
k wait --for=condition=Ready nodes --all --timeout="$WAIT"

# ---------------------------------------------------------------- 3. cert-manager
step cert-manager "cert-manager $CERT_MANAGER_VERSION (issues the CA, the ingress and the signing certificates)"
k apply -f "$(release "$CERT_MANAGER_URL")"
k -n cert-manager wait --for=condition=Available deployment --all --timeout="$WAIT"

# ---------------------------------------------------------------- 4. Knative Serving
step knative-serving "Knative Serving $KNATIVE_VERSION"
k apply -f "$(release "$SERVING_URL/serving-crds.yaml")"
k wait --for=condition=Established crd --all --timeout="$WAIT"
k apply -f "$(release "$SERVING_URL/serving-core.yaml")"
# Arca's public host is arca.<domain>: {{.Name}}.{{.Domain}}, domain claims created on demand
k -n knative-serving patch configmap config-network --type merge \
  -p '{"data":{"ingress-class":"kourier.ingress.networking.knative.dev","domain-template":"{{.Name}}.{{.Domain}}","autocreate-cluster-domain-claims":"true"}}'
k -n knative-serving patch configmap config-domain --type merge -p "{\"data\":{\"$DOMAIN\":\"\"}}"
# seccomp RuntimeDefault etc. on queue-proxy too (Pod Security "restricted" in namespace arca)
k -n knative-serving patch configmap config-features --type merge -p '{"data":{"secure-pod-defaults":"enabled"}}'
# queue-proxy gets requests and limits (the namespace quota needs them)
k -n knative-serving patch configmap config-deployment --type merge \
  -p '{"data":{"queue-sidecar-cpu-request":"25m","queue-sidecar-cpu-limit":"200m","queue-sidecar-memory-request":"32Mi","queue-sidecar-memory-limit":"128Mi"}}'
k -n knative-serving wait --for=condition=Available deployment --all --timeout="$WAIT"

# ---------------------------------------------------------------- 5. Kourier
step kourier "Kourier $KNATIVE_VERSION (Knative's ingress; TLS with the cert-manager certificate)"
k apply -f "$(release "$KOURIER_URL/kourier.yaml")"
# Kind has no load balancer: fixed NodePorts, which kind-cluster.yaml maps to 80 and 443
k -n kourier-system patch service kourier --type merge \
  -p '{"spec":{"type":"NodePort","ports":[{"name":"http2","port":80,"protocol":"TCP","targetPort":8080,"nodePort":31080},{"name":"https","port":443,"protocol":"TCP","targetPort":8443,"nodePort":31443}]}}'
k -n kourier-system wait --for=condition=Available deployment --all --timeout="$WAIT"
k -n knative-serving wait --for=condition=Available deployment --all --timeout="$WAIT"

# ---------------------------------------------------------------- 6. Knative Eventing
step knative-eventing "Knative Eventing $KNATIVE_VERSION (Broker, Triggers, SinkBinding; OIDC sender identity)"
k apply -f "$(release "$EVENTING_URL/eventing-crds.yaml")"
k wait --for=condition=Established crd --all --timeout="$WAIT"
k apply -f "$(release "$EVENTING_URL/eventing-core.yaml")"
k apply -f "$(release "$EVENTING_URL/in-memory-channel.yaml")"
k apply -f "$(release "$EVENTING_URL/mt-channel-broker.yaml")"
# the Broker sends an OIDC token (audience = the Trigger's subscriber.audience) to scan/sign/ingest
k -n knative-eventing patch configmap config-features --type merge -p '{"data":{"authentication-oidc":"enabled"}}'
k -n knative-eventing wait --for=condition=Available deployment --all --timeout="$WAIT"

# ---------------------------------------------------------------- 7. monitoring stack
step monitoring-stack "prometheus-operator $PROMETHEUS_OPERATOR_VERSION (Prometheus, Grafana, Loki and Alloy come with Arca's manifests)"
# the bundle's CRDs are too large for client-side apply
k apply --server-side --force-conflicts -f "$(release "$PROMETHEUS_OPERATOR_URL")"
k wait --for=condition=Established crd --all --timeout="$WAIT"
if [ "$MONITORING" = 0 ]; then
  echo "ARCA_MONITORING=0: the operator and the monitoring stack are not waited for (their manifests still apply)"
else
  k -n default wait --for=condition=Available deployment/prometheus-operator --timeout="$WAIT"
fi

# ---------------------------------------------------------------- 8. images
# Images are built without provenance/SBOM attestations (--provenance=false --sbom=false):
# with Docker's containerd image store an attested image is an index holding attestation
# manifests, which `kind load` cannot import.

if [ "$MODE" = existing ]; then
  TAG=${ARCA_IMAGE_TAG:-0.1.0}
  step images "existing cluster: the images (tag $TAG) must be in its nodes' runtime already"
  echo "not built here: kind.local/arca-*:$TAG, the MinIO images and PostgreSQL, as the manifests name them"
else
TAG=$(image_tag)
step images "build the images (tag $TAG) and load them into the Kind nodes"
images=()
for fn in "${FUNCTIONS[@]}"; do
  if [ "$fn" = scan ]; then
    run docker build -f docker/function.Dockerfile --provenance=false --sbom=false --build-arg FUNCTION=scan -t "kind.local/arca-scan-base:$TAG" .
    run docker build -f docker/scan.Dockerfile --provenance=false --sbom=false --build-arg "BASE=kind.local/arca-scan-base:$TAG" -t "kind.local/arca-scan:$TAG" .
  else
    run docker build -f docker/function.Dockerfile --provenance=false --sbom=false --build-arg "FUNCTION=$fn" -t "kind.local/arca-$fn:$TAG" .
  fi
  images+=("kind.local/arca-$fn:$TAG")
done
run docker build -f docker/web.Dockerfile --provenance=false --sbom=false -t "kind.local/arca-web:$TAG" .
run docker build -f docker/gateway.Dockerfile --provenance=false --sbom=false -t "kind.local/arca-gateway:$TAG" .
run docker build -f docker/minio.Dockerfile --provenance=false --sbom=false --target server -t "kind.local/arca-minio:$MINIO_TAG" .
run docker build -f docker/minio.Dockerfile --provenance=false --sbom=false --target setup -t "kind.local/arca-minio-setup:$MC_TAG" .
images+=("kind.local/arca-web:$TAG" "kind.local/arca-gateway:$TAG" "kind.local/arca-minio:$MINIO_TAG" "kind.local/arca-minio-setup:$MC_TAG")
run kind load docker-image --name "$CLUSTER" "${images[@]}"
fi

# ---------------------------------------------------------------- 9. namespaces and secrets
step namespaces-and-secrets "namespaces, then every secret Arca needs (random, generated once, kept on re-runs)"
for ns in arca arca-data arca-monitoring; do
  apply_generated "namespace $ns" kubectl create namespace "$ns" --dry-run=client -o yaml
done

if dry; then
  echo "# each value is read back from the cluster when the Secret exists, else generated with openssl:"
  external_objects | grep -E '^(Secret|ConfigMap) arca' | sed 's/^/#   /'
  secret arca-data arca-postgres --from-literal=password=REDACTED
  secret arca-data arca-minio --from-literal=root-user=arca-root --from-literal=root-password=REDACTED \
    --from-literal=kms-secret-key=arca-key:REDACTED --from-literal=ingest-token=REDACTED
  user_args=()
  for u in "${S3_USERS[@]}" setup; do
    user_args+=("--from-literal=$u-access-key=arca-$u" "--from-literal=$u-secret-key=REDACTED")
  done
  secret arca-data arca-minio-users "${user_args[@]}"
  secret arca arca-db "--from-literal=url=postgres://arca:REDACTED@postgres.arca-data.svc.cluster.local:5432/arca"
  role_args=()
  for fn in "${FUNCTIONS[@]}"; do
    role_args+=("--from-literal=$fn=postgres://arca_$fn:REDACTED@postgres.arca-data.svc.cluster.local:5432/arca")
  done
  secret arca arca-db-roles "${role_args[@]}"
  for u in "${S3_USERS[@]}"; do
    secret arca "arca-s3-$u" "--from-literal=access-key=arca-$u" --from-literal=secret-key=REDACTED
  done
  secret arca arca-admin --from-literal=password=REDACTED
  secret arca arca-metrics --from-literal=token=REDACTED
  secret arca arca-jwt-private --from-file=private.pem=/dev/stdin
  apply_generated "public JWT key" kubectl -n arca create configmap arca-jwt-public --from-file=public.pem=/dev/stdin --dry-run=client -o yaml
  secret arca arca-audit-checkpoint --from-file=private.pem=/dev/stdin
  secret arca arca-download-link --from-literal=key=REDACTED
  secret arca arca-ingest-token --from-literal=token=REDACTED
  secret arca-monitoring arca-grafana-admin --from-literal=user=admin --from-literal=password=REDACTED
  printf '+ kubectl --context %s get --raw /openid/v1/jwks; kubectl --context %s get --raw /.well-known/openid-configuration\n' "$CONTEXT" "$CONTEXT"
  apply_generated "the API server's JWKS and issuer (OIDC sender tokens)" kubectl -n arca create configmap arca-event-jwks --from-file=jwks.json=JWKS --from-literal=issuer=ISSUER --dry-run=client -o yaml
else
  generate_secrets
fi

# ---------------------------------------------------------------- 10. data and jobs
# The render with this build's image tags and the chosen host name, applied in two phases:
# the Knative Services (label arca.dev/rollout=services) only once the migration has run.
TAG_EXPR="s#\(kind\.local/arca-[a-z-]*\):0\.1\.0#\1:$TAG#g"
HOST_EXPR="s#${DEFAULT_HOST//./\\.}#$HOST#g"
apply_render() { # SELECTOR
  if dry; then
    printf '+ kubectl kustomize knative/overlays/kind | sed -e %q -e %q | kubectl --context %s apply -l %q -f -\n' \
      "$TAG_EXPR" "$HOST_EXPR" "$CONTEXT" "$1"
  else
    kubectl kustomize knative/overlays/kind | sed -e "$TAG_EXPR" -e "$HOST_EXPR" |
      kubectl --context "$CONTEXT" apply -l "$1" -f -
  fi
}
step data-and-jobs "everything but the Knative Services: policies, quotas, certificates, PostgreSQL, MinIO, Broker, Triggers, monitoring; then the migration and storage-setup Jobs"
# Jobs are immutable and run once: re-create them so that this rollout migrates and sets up
k -n arca delete job arca-migrate --ignore-not-found
k -n arca-data delete job minio-setup --ignore-not-found
apply_render "arca.dev/rollout!=services"
k -n arca-data rollout status statefulset/postgres --timeout="$WAIT"
k -n arca-data rollout status statefulset/minio --timeout="$WAIT"
k -n arca wait --for=condition=complete job/arca-migrate --timeout="$WAIT"
k -n arca-data wait --for=condition=complete job/minio-setup --timeout="$WAIT"
k wait --for=condition=Ready certificate --all --all-namespaces --timeout="$WAIT"
# Kourier serves the ingress certificate on its HTTPS listener, and records the address each
# connection comes from (use-remote-address: Envoy appends the peer to X-Forwarded-For; one
# trusted hop keeps the gateway's X-Forwarded-Proto on the internal hop). The gateway then
# sends the functions that address alone (knative/base/ingress/gateway.conf).
k -n knative-serving patch configmap config-kourier --type merge \
  -p '{"data":{"certs-secret-namespace":"kourier-system","certs-secret-name":"arca-ingress-tls","use-remote-address":"true","trusted-hops-count":"1"}}'
# (an ingress that watches config-kourier, such as a test stand-in, has no controller to restart)
if dry || kubectl --context "$CONTEXT" -n knative-serving get deployment/net-kourier-controller >/dev/null 2>&1; then
  k -n knative-serving rollout restart deployment/net-kourier-controller
  k -n knative-serving rollout status deployment/net-kourier-controller --timeout="$WAIT"
fi

# ---------------------------------------------------------------- 11. functions
step functions "the Knative Services (9 functions, the SPA, the gateway), after the migration"
apply_render "arca.dev/rollout=services"

# ---------------------------------------------------------------- 12. ready
step ready "wait for every Service, the Broker and Triggers, and the monitoring stack"
k -n arca wait --for=condition=Ready ksvc --all --timeout="$WAIT"
k -n arca wait --for=condition=Ready broker --all --timeout="$WAIT"
k -n arca wait --for=condition=Ready trigger --all --timeout="$WAIT"
k -n arca wait --for=condition=Ready sinkbinding --all --timeout="$WAIT"
if [ "$MONITORING" != 0 ]; then
  k -n arca-monitoring rollout status deployment/grafana --timeout="$WAIT"
  k -n arca-monitoring rollout status deployment/alloy --timeout="$WAIT"
  k -n arca-monitoring rollout status statefulset/loki --timeout="$WAIT"
  k -n arca-monitoring wait --for=condition=Available prometheus/arca --timeout="$WAIT"
fi

# ---------------------------------------------------------------- 13. summary
step summary "where Arca is and how to sign in"
cat <<EOF
Arca:        https://$HOST
CA to trust: kubectl --context $CONTEXT -n cert-manager get secret arca-ca -o jsonpath='{.data.ca\\.crt}' | base64 -d > arca-ca.pem
             (then: curl --cacert arca-ca.pem https://$HOST/api/health;
              arca login --server https://$HOST --username admin --ca-cert arca-ca.pem)
Admin:       user admin, password:
             kubectl --context $CONTEXT -n arca get secret arca-admin -o jsonpath='{.data.password}' | base64 -d; echo
Grafana:     kubectl --context $CONTEXT -n arca-monitoring port-forward svc/grafana 3000:3000  (http://127.0.0.1:3000)
             user admin, password:
             kubectl --context $CONTEXT -n arca-monitoring get secret arca-grafana-admin -o jsonpath='{.data.password}' | base64 -d; echo
Prometheus:  kubectl --context $CONTEXT -n arca-monitoring port-forward svc/prometheus-operated 9090:9090
Tear down:   ./kind-setup.sh --delete   (Kind only; an existing cluster is left as it is)
EOF
if ! dry; then
  echo
  echo "The CA certificate:"
  kubectl --context "$CONTEXT" -n cert-manager get secret arca-ca -o jsonpath='{.data.ca\.crt}' | base64 -d
fi
