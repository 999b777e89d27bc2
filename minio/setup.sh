#!/bin/sh
# MinIO users and policies for Arca (docs/cluster.md, "MinIO users"): one user per S3-using
# function, each with only its own policy, plus "arca-setup", which may configure the bucket
# (used next by `arca-fn-ingest setup-storage`). Runs in the setup Job (setup-job.yaml) with
# MinIO's root credentials; idempotent: users and policies are overwritten, an attachment
# that already exists is kept.
#
# Environment: MINIO_URL, MINIO_ROOT_USER, MINIO_ROOT_PASSWORD
# Files:       /etc/arca-minio-setup/arca-<user>.json (policies/)
#              /var/run/arca/minio-users/<user>-access-key, <user>-secret-key
set -eu

policies=/etc/arca-minio-setup
users_dir=/var/run/arca/minio-users
export MC_CONFIG_DIR=/tmp/mc

# MinIO may still be starting (mc alias set already asks the server): wait for both
tries=0
until mc alias set arca "$MINIO_URL" "$MINIO_ROOT_USER" "$MINIO_ROOT_PASSWORD" >/dev/null 2>&1 &&
  mc admin info arca >/dev/null 2>&1; do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "setup.sh: MinIO at $MINIO_URL is not answering" >&2
    exit 1
  fi
  sleep 2
done

for user in upload ingest scan sign download setup; do
  access_key=$(cat "$users_dir/$user-access-key")
  secret_key=$(cat "$users_dir/$user-secret-key")
  policy=arca-$user
  mc admin policy create arca "$policy" "$policies/$policy.json" >/dev/null
  mc admin user add arca "$access_key" "$secret_key" >/dev/null
  if ! out=$(mc admin policy attach arca "$policy" --user "$access_key" 2>&1); then
    case $out in
      *already*) ;;
      *) echo "setup.sh: attaching $policy: $out" >&2; exit 1 ;;
    esac
  fi
  echo "setup.sh: user for $user has policy $policy"
done
