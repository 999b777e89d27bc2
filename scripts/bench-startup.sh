#!/usr/bin/env bash
# Time from `arca serve` start to a healthy /api/health, and idle RSS, on SQLite.
# Usage: ARCA_TRIVY=… bench-startup.sh ARCA_BINARY TRIVY_DB_DIR   (healthy needs a scanner with a DB)
set -euo pipefail
arca=$1
db=$2
dir=$(mktemp -d)
mkdir -p "$dir/trivy/db"
cp "$db/trivy.db" "$db/metadata.json" "$dir/trivy/db/"
trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

measure() {
  local label=$1
  local start end
  start=$(date +%s%N)
  ARCA_ADMIN_PASSWORD=bench-password-123456 ARCA_TRIVY_CACHE_DIR="$dir/trivy" ARCA_TRIVY_DB_UPDATE_INTERVAL=0 \
    "$arca" serve --listen "127.0.0.1:$port" --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
  pid=$!
  until curl -fsk -o /dev/null "https://127.0.0.1:$port/api/health" 2>/dev/null; do
    kill -0 $pid 2>/dev/null || { cat "$dir/err"; exit 1; }
    sleep 0.005
  done
  end=$(date +%s%N)
  sleep 2
  rss=$(awk '/VmRSS/ {print $2}' /proc/$pid/status)
  printf '%-28s start-to-healthy %6.0f ms   idle RSS %6.1f MiB\n' "$label" "$(( (end - start) / 1000 ))e-3" "$(echo "$rss / 1024" | bc -l)"
  kill -TERM $pid; wait $pid || true
}
measure "first start (empty dir)"
measure "restart (same data dir)"
