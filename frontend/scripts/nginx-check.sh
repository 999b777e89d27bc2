#!/usr/bin/env bash
# Checks frontend/nginx.conf with Debian's nginx (`nginx -t`), as a non-root user, in a
# temporary prefix. With --serve DIST PORT UPSTREAM it then runs nginx in the foreground
# serving DIST on PORT with /api proxied to UPSTREAM (what the e2e run against nginx uses).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
  echo "installing nginx (Debian)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null 2>&1 ||
    { DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; }
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
prefix=$(mktemp -d /tmp/arca-nginx.XXXXXX)
trap 'rm -rf "$prefix"' EXIT
mkdir -p "$prefix/arca" "$prefix/html"
# The container's paths (/tmp, /dev/stderr) belong to its user; here they may be taken,
# so the check points them into the prefix.
sed -e "s#/tmp/nginx#$prefix/nginx#g" -e "s#/dev/stderr#$prefix/error.log#; s#/dev/stdout#$prefix/access.log#" \
  "$here/nginx.conf" > "$prefix/nginx.conf"
cp /etc/nginx/mime.types "$prefix/mime.types"
run_as=()
if [ "$(id -u)" = 0 ]; then
  # Prove it runs unprivileged: as nobody, with everything it writes under /tmp.
  chown -R nobody "$prefix"
  run_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
if [ "${1:-}" = "--serve" ]; then
  dist=$2 port=$3 upstream=$4
  cp -r "$dist"/. "$prefix/html/"
  sed "s#ARCA_UPSTREAM#$upstream#" "$here/nginx.local-proxy.conf" > "$prefix/arca/api-upstream.map"
  sed -i "s#root /usr/share/nginx/html;#root $prefix/html;#; s#listen 8080;#listen 127.0.0.1:$port;#" "$prefix/nginx.conf"
  [ "$(id -u)" = 0 ] && chown -R nobody "$prefix"
  "${run_as[@]}" "$nginx_bin" -t -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log"
  "${run_as[@]}" "$nginx_bin" -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log" -g 'daemon off;' &
  nginx_pid=$!
  trap 'kill "$nginx_pid" 2>/dev/null; wait "$nginx_pid"; rm -rf "$prefix"' EXIT
  trap 'exit 0' TERM INT
  wait "$nginx_pid"
  exit
fi
# Both shapes: the cluster's (no includes) and the local one (with the /api proxy).
"${run_as[@]}" "$nginx_bin" -t -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log"
sed "s#ARCA_UPSTREAM#http://127.0.0.1:8443#" "$here/nginx.local-proxy.conf" > "$prefix/arca/api-upstream.map"
echo '~. "https://minio.example.com";' > "$prefix/arca/s3-origin.map"
[ "$(id -u)" = 0 ] && chown -R nobody "$prefix"
"${run_as[@]}" "$nginx_bin" -t -p "$prefix" -c "$prefix/nginx.conf" -e "$prefix/error.log"
echo "nginx.conf OK (unprivileged, with and without the local /api proxy)"
