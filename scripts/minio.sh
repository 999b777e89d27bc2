#!/usr/bin/env bash
# A private MinIO server for tests (S3 API with server-side encryption).
#   minio.sh start DIR PORT   start MinIO on 127.0.0.1:PORT with its data in DIR/data
#   minio.sh stop DIR         stop it
# Root credentials are arca-test / arca-test-secret; a static KMS key (generated into
# DIR/kms.key) enables SSE-S3 and SSE-KMS.
set -euo pipefail
cd "$(dirname "$0")/.."

case ${1:-} in
  start)
    dir=$2 port=$3
    bin=$(scripts/tools.sh minio)
    mkdir -p "$dir/data"
    [ -f "$dir/kms.key" ] || head -c 32 /dev/urandom | base64 > "$dir/kms.key"
    MINIO_ROOT_USER=arca-test MINIO_ROOT_PASSWORD=arca-test-secret \
    MINIO_KMS_SECRET_KEY="arca-key:$(cat "$dir/kms.key")" \
    MINIO_BROWSER=off MINIO_UPDATE=off MINIO_CI_CD=1 \
      setsid "$bin" server "$dir/data" --quiet --address "127.0.0.1:$port" \
        --console-address "127.0.0.1:0" >"$dir/minio.log" 2>&1 &
    echo $! > "$dir/minio.pid"
    for _ in $(seq 1 100); do
      if curl -sf "http://127.0.0.1:$port/minio/health/live" >/dev/null; then exit 0; fi
      sleep 0.2
    done
    echo "minio.sh: MinIO did not start; log:" >&2; cat "$dir/minio.log" >&2; exit 1
    ;;
  stop)
    dir=$2
    if [ -f "$dir/minio.pid" ]; then kill "$(cat "$dir/minio.pid")" 2>/dev/null || true; rm -f "$dir/minio.pid"; fi
    ;;
  *) echo "usage: $0 start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
