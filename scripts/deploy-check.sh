#!/usr/bin/env bash
# Static validation of the Kind deployment (no Docker engine, no cluster needed); `make test`
# runs it. Every check runs; the summary lists the failures and the exit status is 1 if any.
#   1. kubectl kustomize knative/overlays/kind renders
#   2. tools/kval: every rendered object strict-decoded into its real Go type, Knative's
#      SetDefaults + Validate, Arca's rules; the gateway config matches routes.yaml
#   3. each broken fixture in tests/fixtures/kval fails with its expected message
#   4. shellcheck + bash -n on kind-setup.sh, scripts/*.sh, .ci/run, minio/setup.sh
#   5. nginx -t on frontend/nginx.conf (when it exists) and on the gateway's config, and the
#      gateway's routing decisions with the real nginx
#   6. Dockerfiles: pinned base images, non-root USER in every final stage, every workspace
#      member in each cargo build context (and a Dockerfile missing one is caught)
#   7. kind-setup.sh --dry-run succeeds without Docker and names every step
#   8. README "Deploy to Kind": every command and repo file it names exists
# Tools it needs are installed when missing (kubectl, shellcheck, nginx from Debian); kval is
# built from the Go module proxy once per version of its sources (scripts/tools.sh kval),
# cached in ~/.cache/arca/tools/kval-<hash>.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

CACHE=${ARCA_TOOLS_CACHE:-$HOME/.cache/arca}
export GOPATH=$CACHE/go GOCACHE=$CACHE/go-build GOFLAGS=-modcacherw GOTOOLCHAIN=local
WORK=$(mktemp -d /tmp/arca-deploy-check.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

failures=()
fail() { failures+=("$1"); echo "FAIL: $1" >&2; }
step() { echo "== deploy-check: $* ($(date +%T))"; }

apt_install() { # PACKAGE...
  echo "deploy-check: installing $* from Debian packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  local i
  for i in 1 2 3 4 5 6; do # another apt-get may hold the lock for a while
    if { apt-get update -qq && apt-get install -y -qq "$@"; } >"$WORK/apt.log" 2>&1; then return 0; fi
    sleep $((i * 5))
  done
  cat "$WORK/apt.log" >&2
  return 1
}

step "tools"
command -v kubectl >/dev/null || apt_install kubernetes-client || { echo "deploy-check: kubectl is required" >&2; exit 1; }
command -v shellcheck >/dev/null || apt_install shellcheck || fail "shellcheck could not be installed"
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || apt_install nginx || fail "nginx could not be installed"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
command -v go >/dev/null || { echo "deploy-check: Go is required to build tools/kval" >&2; exit 1; }

# kval, rebuilt only when its sources change (scripts/tools.sh, cached in ~/.cache/arca/tools)
KVAL=$(ARCA_TOOLS_CACHE=$CACHE scripts/tools.sh kval) || { echo "deploy-check: building tools/kval failed" >&2; exit 1; }

step "render: kubectl kustomize knative/overlays/kind"
if ! kubectl kustomize knative/overlays/kind >"$WORK/render.yaml" 2>"$WORK/render.err"; then
  cat "$WORK/render.err" >&2
  fail "kustomize render"
fi

step "kval: the render, with the real Kubernetes/Knative/cert-manager/prometheus-operator types"
./kind-setup.sh --list-external >"$WORK/external.txt" || fail "kind-setup.sh --list-external"
KVAL_ARGS=(-routes knative/base/ingress/routes.yaml -external "$WORK/external.txt" -allow-untyped tools/kval/allow-untyped.txt)
if [ -s "$WORK/render.yaml" ]; then
  "$KVAL" "${KVAL_ARGS[@]}" -counts "$WORK/render.yaml" || fail "kval on the render"
fi
"$KVAL" routes -check knative/base/ingress/routes.yaml knative/base/ingress/gateway.conf ||
  fail "gateway.conf is out of date with routes.yaml"

step "kval: every broken fixture is caught"
for fixture in tests/fixtures/kval/*.yaml; do
  expect=$(sed -n 's/^# expect: //p' "$fixture" | head -n 1)
  if [ -z "$expect" ]; then
    fail "$fixture has no '# expect:' line"
    continue
  fi
  if out=$("$KVAL" "${KVAL_ARGS[@]}" "$WORK/render.yaml" "$fixture" 2>&1); then
    fail "$fixture: kval accepted it (expected: $expect)"
  elif ! grep -qF -- "$expect" <<<"$out"; then
    echo "$out" >&2
    fail "$fixture: kval failed, but without: $expect"
  else
    echo "caught  $(basename "$fixture"): $expect"
  fi
done

step "shellcheck and bash -n"
scripts=(kind-setup.sh .ci/run scripts/*.sh)
for s in "${scripts[@]}"; do
  bash -n "$s" || fail "bash -n $s"
done
sh -n minio/setup.sh || fail "sh -n minio/setup.sh"
if command -v shellcheck >/dev/null; then
  shellcheck -x "${scripts[@]}" minio/setup.sh || fail "shellcheck"
fi

step "nginx -t"
nginx_test() { # NAME CONFIG
  local prefix=$WORK/nginx-$1
  mkdir -p "$prefix/conf" "$prefix/logs"
  cp "$2" "$prefix/conf/nginx.conf"
  [ -f /etc/nginx/mime.types ] && cp /etc/nginx/mime.types "$prefix/conf/"
  if "$NGINX" -t -q -p "$prefix" -c "$prefix/conf/nginx.conf" -e "$prefix/logs/error.log" 2>"$prefix/out"; then
    echo "nginx -t: $2 ok"
  else
    cat "$prefix/out" >&2
    fail "nginx -t $2"
  fi
}
if [ -x "$NGINX" ]; then
  nginx_test gateway knative/base/ingress/gateway.conf
  if [ -f frontend/nginx.conf ]; then
    nginx_test frontend frontend/nginx.conf
  else
    echo "nginx -t: frontend/nginx.conf does not exist yet: skipped"
  fi
fi

step "gateway routing with the real nginx (tests/fixtures/kval/gateway-routes.txt)"
if [ -x "$NGINX" ]; then
  g=$WORK/nginx-routing
  mkdir -p "$g/conf" "$g/logs"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  # shellcheck disable=SC2016 # nginx variables, not shell ones
  sed -e 's|proxy_pass http://$arca_upstream$request_uri;|return 200 "$arca_service";|' \
    -e "s|listen 8080;|listen 127.0.0.1:$port;|" -e "s|pid /tmp/nginx.pid;|pid $g/nginx.pid;|" \
    -e "s|temp_path /tmp/|temp_path $g/|" -e "s|access_log /dev/stdout json;|access_log $g/access.log json;|" \
    knative/base/ingress/gateway.conf >"$g/conf/nginx.conf"
  if "$NGINX" -p "$g" -c "$g/conf/nginx.conf" -e "$g/logs/error.log"; then
    for _ in $(seq 50); do [ -s "$g/nginx.pid" ] && break; sleep 0.1; done
    checked=0
    while read -r method path want; do
      case $method in '#'* | '') continue ;; esac
      got=$(curl -s -X "$method" -H 'Host: arca.test' -H 'X-Forwarded-Proto: https' "http://127.0.0.1:$port$path")
      case $got in *'"code":"not_found"'*) got=none ;; esac
      [ "$got" = "$want" ] || fail "gateway routes $method $path to '$got', expected $want"
      checked=$((checked + 1))
    done <tests/fixtures/kval/gateway-routes.txt
    # the edge: the client's address as Kourier recorded it (second from the right, after the
    # queue-proxy's hop), never what the client wrote
    curl -s -o /dev/null -H 'Host: arca.test' -H 'X-Forwarded-Proto: https' \
      -H 'X-Forwarded-For: 1.2.3.4, 198.51.100.23, 10.244.0.9' "http://127.0.0.1:$port/api/auth/me"
    curl -s -o /dev/null -H 'Host: arca.test' -H 'X-Forwarded-Proto: https' -H 'X-Forwarded-For: 1.2.3.4' "http://127.0.0.1:$port/api/roles"
    # the edge: HSTS over HTTPS, and no bearer secret of a path in its access log
    secret=SECRETdownloadLINKtoken0123456789
    headers=$(curl -s -D - -o /dev/null -H 'Host: arca.test' -H 'X-Forwarded-Proto: https' "http://127.0.0.1:$port/api/download-links/$secret")
    grep -qi '^strict-transport-security: max-age=31536000' <<<"$headers" || fail "the gateway sends no HSTS header over HTTPS"
    curl -s -o /dev/null -H 'Host: arca.test' -H 'X-Forwarded-Proto: https' "http://127.0.0.1:$port/api/uploads/$secret"
    kill "$(cat "$g/nginx.pid")" 2>/dev/null || true
    sleep 0.2
    grep -q '"path":"/api/auth/me".*"client":"198.51.100.23"' "$g/access.log" ||
      fail "the gateway does not take the client's address from Kourier's hop"
    grep -q '"path":"/api/roles".*"client":"unknown"' "$g/access.log" ||
      fail "the gateway believes a lone X-Forwarded-For that no trusted hop wrote"
    if grep -q "$secret" "$g/access.log"; then
      fail "the gateway's access log records a download-link or upload token"
    elif ! grep -q '/api/download-links/{token}' "$g/access.log"; then
      fail "the gateway's access log has no line for the download-link request"
    fi
    echo "gateway: $checked routing decisions as expected; HSTS at the edge; tokens not logged"
  else
    cat "$g/logs/error.log" >&2
    fail "nginx could not start the gateway configuration"
  fi
fi

step "Dockerfiles"
"$KVAL" dockerfiles -workspace Cargo.toml docker/*.Dockerfile || fail "Dockerfile checks"
# the build-context check itself: the function image without one workspace member must fail
sed '/^COPY client client$/d' docker/function.Dockerfile >"$WORK/missing-member.Dockerfile"
if out=$("$KVAL" dockerfiles -workspace Cargo.toml "$WORK/missing-member.Dockerfile" 2>&1); then
  fail "kval dockerfiles accepted a cargo build context without the workspace member client"
elif ! grep -qF 'does not COPY the workspace member "client"' <<<"$out"; then
  echo "$out" >&2
  fail "kval dockerfiles failed on a missing workspace member, but without naming it"
else
  echo "caught  a cargo build context without the workspace member client"
fi
[ -f .dockerignore ] || fail ".dockerignore is missing"

step "kind-setup.sh --dry-run (with docker and kind unavailable)"
mkdir -p "$WORK/nobin"
for tool in docker kind; do
  printf '#!/bin/sh\necho "%s must not run in --dry-run" >&2\nexit 99\n' "$tool" >"$WORK/nobin/$tool"
  chmod +x "$WORK/nobin/$tool"
done
if PATH="$WORK/nobin:$PATH" ./kind-setup.sh --dry-run >"$WORK/dry-run.txt" 2>&1; then
  for s in prerequisites cluster cert-manager knative-serving kourier knative-eventing monitoring-stack \
    images namespaces-and-secrets data-and-jobs functions ready summary; do
    grep -qE "^== step [0-9]+/[0-9]+: $s " "$WORK/dry-run.txt" || fail "kind-setup.sh --dry-run does not mention the step $s"
  done
  for cmd in "kind create cluster" "kind load docker-image" "kubectl kustomize knative/overlays/kind" \
    "docker build -f docker/web.Dockerfile" "docker build -f docker/gateway.Dockerfile" \
    "job/arca-migrate" "job/minio-setup" "ksvc --all" "authentication-oidc"; do
    grep -qF -- "$cmd" "$WORK/dry-run.txt" || fail "kind-setup.sh --dry-run does not show: $cmd"
  done
  for fn in auth users audit upload artifacts download scan sign ingest; do
    grep -qE -- "--build-arg FUNCTION=$fn " "$WORK/dry-run.txt" || fail "kind-setup.sh --dry-run builds no image for $fn"
  done
  if grep -qE 'must not run in --dry-run|password=[A-Za-z0-9+/]{12}' "$WORK/dry-run.txt"; then
    fail "kind-setup.sh --dry-run ran docker/kind or printed a secret"
  fi
  echo "kind-setup.sh --dry-run: $(grep -c '^+ ' "$WORK/dry-run.txt") commands in $(grep -c '^== step' "$WORK/dry-run.txt") steps"
else
  cat "$WORK/dry-run.txt" >&2
  fail "kind-setup.sh --dry-run"
fi

step "README: the Deploy to Kind section names only things that exist"
awk '/^## Deploy to Kind/{on=1; print; next} on && /^## /{on=0} on' README.md >"$WORK/readme-kind.md"
if [ ! -s "$WORK/readme-kind.md" ]; then
  fail "README.md has no '## Deploy to Kind' section"
else
  # repo paths in backticks: anything with a slash or a known extension, without spaces
  # shellcheck disable=SC2016 # literal backquotes
  grep -oE '`[^` ]+`' "$WORK/readme-kind.md" | tr -d '`' |
    grep -E '(/|\.(sh|yaml|yml|json|conf|md|Dockerfile|alloy|toml)$)' |
    grep -vE '^(https?:|-|\$|<|~|/|[a-z0-9.-]+\.(io|dev|local)/)' |
    sed 's/[.,:;)]*$//' | sort -u >"$WORK/readme-paths.txt"
  while read -r path; do
    [ -e "$path" ] || fail "README (Deploy to Kind) names $path, which does not exist"
  done <"$WORK/readme-paths.txt"
  # commands in its sh blocks: repo scripts exist and are executable, their flags exist,
  # make targets exist, other programs are ones kind-setup.sh installs or checks
  awk '/^```(sh|bash|console)?$/{code=!code; next} code' "$WORK/readme-kind.md" |
    sed -e 's/#.*//' -E -e 's/^[[:space:]]*([A-Z_][A-Z0-9_]*=[^ ]* +)+//' | grep -vE '^[[:space:]]*$' >"$WORK/readme-commands.txt"
  while read -r first second _; do
    case $first in
      ./* | scripts/*)
        [ -x "${first#./}" ] || fail "README (Deploy to Kind) runs $first, which is not an executable file"
        if [[ ${second:-} == --* ]] && ! grep -qF -- "$second)" "${first#./}"; then
          fail "README (Deploy to Kind) runs $first $second, an option it does not have"
        fi
        ;;
      make)
        grep -qE "^${second:-}:" Makefile || fail "README (Deploy to Kind) runs make ${second:-}, no such target"
        ;;
      kubectl | kind | docker | curl | arca | openssl | base64 | echo | export | git | cd | go) ;;
      *) fail "README (Deploy to Kind) runs '$first', which nothing installs or checks" ;;
    esac
  done <"$WORK/readme-commands.txt"
  echo "README: $(wc -l <"$WORK/readme-paths.txt") paths and $(wc -l <"$WORK/readme-commands.txt") command lines checked"
fi

echo
if [ ${#failures[@]} -gt 0 ]; then
  echo "deploy-check: ${#failures[@]} failure(s):"
  printf '  - %s\n' "${failures[@]}"
  exit 1
fi
echo "deploy-check: all static checks passed"
