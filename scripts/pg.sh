#!/usr/bin/env bash
# A private PostgreSQL cluster for tests: never the machine's own server.
#   pg.sh bin              print the PostgreSQL bin dir (installs PostgreSQL if missing)
#   pg.sh start DIR PORT   initdb (if needed) and start a cluster in DIR on 127.0.0.1:PORT
#   pg.sh stop DIR         stop the cluster in DIR
# The superuser is `arca` with password `arca`; the server never runs as root.
set -euo pipefail

bin_dir() {
  local d
  d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$d" ] || [ ! -x "$d/initdb" ]; then
    echo "pg.sh: installing PostgreSQL from Debian packages" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
    d=$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -name bin -type d | sort -V | tail -n 1)
  fi
  echo "$d"
}

# Runs a command as the unprivileged `postgres` user when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

cmd=${1:-}
case "$cmd" in
  bin) bin_dir ;;
  start)
    dir=$2 port=$3
    bin=$(bin_dir)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    chmod 0700 "$dir"
    if [ ! -f "$dir/PG_VERSION" ]; then
      pwfile=$(mktemp); echo arca > "$pwfile"; chmod 0644 "$pwfile"
      as_pg "$bin/initdb" -D "$dir" -U arca --pwfile="$pwfile" -A scram-sha-256 --no-sync >/dev/null
      rm -f "$pwfile"
    fi
    as_pg "$bin/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null
    ;;
  stop)
    dir=$2
    bin=$(bin_dir)
    if [ -f "$dir/postmaster.pid" ]; then
      as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
    fi
    ;;
  *) echo "usage: pg.sh bin | start DIR PORT | stop DIR" >&2; exit 2 ;;
esac
