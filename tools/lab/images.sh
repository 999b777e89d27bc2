#!/usr/bin/env bash
# tools/lab/images.sh OUT_DIR: every image the lab runs, as archives containerd imports.
#
# No image registry is reachable here, so the base images are made locally and tagged with
# the names the Dockerfiles use (read from the Dockerfiles, so they stay the single source):
#   - the distroless stand-ins: the .deb packages distroless itself is assembled from
#     (libc6, libgcc-s1, libssl3, tzdata, netbase; ca-certificates' bundle; nonroot 65532);
#   - nginx, PostgreSQL and a POSIX shell (busybox): this Debian host's packaged binaries
#     with the libraries they load;
#   - Trivy: the binary scripts/tools.sh builds at the pinned version.
# Then the project's Dockerfiles build with BINARIES=prebuilt (binaries built on this host:
# CARGO_TARGET_DIR/debug, scripts/tools.sh, tools/lab/build.sh), tagged exactly as the
# manifests name them. Knative's, CoreDNS's and the lab ingress's images are FROM scratch
# images of the Go binaries, like ko's. Nothing here runs a container (no RUN steps).
#
# Prints image sizes on stderr. Needs podman (Debian), run as root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=tools/lab/versions.sh
. "$here/versions.sh"
out=${1:?usage: images.sh OUT_DIR}
mkdir -p "$out"
target=${CARGO_TARGET_DIR:-$HOME/.cache/arca/target}/debug
say() { echo "lab images: $*" >&2; }

work=$(mktemp -d /tmp/arca-lab-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
pm() { podman --root "$work/storage" --runroot "$work/run" --storage-driver overlay "$@"; }

# the base image a Dockerfile stage names: from_of FILE STAGE
from_of() { sed -n "s/^FROM \([^ ]*\) AS $2\$/\1/p" "$repo/docker/$1"; }

# import_rootfs DIR NAME: a one-layer image of DIR
import_rootfs() { tar -C "$1" --numeric-owner -c . | pm import -q - "$2" >/dev/null; }

# etc_files DIR USER UID: passwd/group with root, nobody and one service user, /tmp 1777
etc_files() {
  local d=$1 user=$2 uid=$3
  mkdir -p "$d/etc" "$d/tmp" "$d/home/$user"
  chmod 1777 "$d/tmp"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n%s:x:%s:%s:%s:/home/%s:/sbin/nologin\n' \
    "$user" "$uid" "$uid" "$user" "$user" >"$d/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\n%s:x:%s:\n' "$user" "$uid" >"$d/etc/group"
  chown "$uid:$uid" "$d/home/$user"
  mkdir -p "$d/etc/ssl/certs"
  cp /etc/ssl/certs/ca-certificates.crt "$d/etc/ssl/certs/"
}

# with_libs DIR FILE...: copy each file and the shared libraries it loads (ldd) into DIR
with_libs() {
  local d=$1 f lib
  shift
  for f in "$@"; do
    mkdir -p "$d$(dirname "$f")"
    cp -a "$f" "$d$f"
    if [ ! -f "$f" ] || [ ! -x "$f" ]; then continue; fi
    for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
      [ -e "$d$lib" ] || { mkdir -p "$d$(dirname "$lib")" && cp -L "$lib" "$d$lib"; }
    done
  done
}

# debs DIR PACKAGE...: unpack Debian packages into DIR (downloads cached in LAB_CACHE/debs)
debs() {
  local d=$1 p deb
  shift
  mkdir -p "$LAB_CACHE/debs"
  for p in "$@"; do
    deb=$(find "$LAB_CACHE/debs" -name "${p}_*.deb" | head -n 1)
    if [ -z "$deb" ]; then
      (cd "$LAB_CACHE/debs" && apt-get download "$p" >/dev/null 2>&1) || { apt-get update -qq && (cd "$LAB_CACHE/debs" && apt-get download "$p" >/dev/null); }
      deb=$(find "$LAB_CACHE/debs" -name "${p}_*.deb" | head -n 1)
    fi
    dpkg-deb -x "$deb" "$d"
  done
}

bases() {
  local d
  # distroless cc (glibc, libgcc, OpenSSL) and static, nonroot
  d=$work/cc && mkdir -p "$d" && debs "$d" libc6 libgcc-s1 libssl3 tzdata netbase && etc_files "$d" nonroot 65532
  import_rootfs "$d" "$(from_of function.Dockerfile function)"
  d=$work/static && mkdir -p "$d" && debs "$d" tzdata netbase && etc_files "$d" nonroot 65532
  import_rootfs "$d" "$(from_of minio.Dockerfile server)"
  # a POSIX shell for minio/setup.sh (the Dockerfile's stage is Alpine's busybox)
  d=$work/shell && mkdir -p "$d/bin" && debs "$d" busybox-static && etc_files "$d" nonroot 65532
  ln -s busybox "$d/bin/sh"
  import_rootfs "$d" "$(from_of minio.Dockerfile setup)"
  # Trivy at the version scripts/tools.sh pins
  d=$work/trivy && mkdir -p "$d/usr/local/bin" && cp "$("$repo/scripts/tools.sh" trivy)" "$d/usr/local/bin/trivy"
  import_rootfs "$d" "$(sed -n 's/^FROM \([^ ]*\) AS trivy$/\1/p' "$repo/docker/scan.Dockerfile")"
  # nginx (uid 101 like nginx-unprivileged; the gateway's config keeps every path in /tmp)
  d=$work/nginx && mkdir -p "$d/var/log/nginx" "$d/var/lib/nginx" && etc_files "$d" nginx 101
  with_libs "$d" /usr/sbin/nginx /etc/nginx/mime.types
  import_rootfs "$d" "$(from_of gateway.Dockerfile gateway)"
}

# PostgreSQL: Debian's server with the official image's entrypoint contract (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_INITDB_ARGS, PGDATA; first argument "-..." means
# "postgres ..."), uid 999, tagged as knative/ names it.
postgres_image() {
  local d=$work/postgres pg image
  pg=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -type d | sort -V | tail -n 1)
  [ -x "$pg/bin/postgres" ] || pg=$(dirname "$("$repo/scripts/pg.sh" bin)")
  image=$(kubectl kustomize "$repo/knative/overlays/kind" | sed -n 's/^ *image: \(postgres:[^ ]*\)$/\1/p' | head -n 1)
  mkdir -p "$d/bin" "$d/var/run/postgresql" "$d/var/lib/postgresql" && etc_files "$d" postgres 999
  debs "$d" busybox-static
  ln -s busybox "$d/bin/sh"
  with_libs "$d" "$pg"/bin/* "$pg/lib" "/usr/share/postgresql/$(basename "$pg")" /usr/share/zoneinfo
  chown 999:999 "$d/var/run/postgresql" "$d/var/lib/postgresql"
  mkdir -p "$d/usr/local/bin"
  cat >"$d/usr/local/bin/docker-entrypoint.sh" <<EOF
#!/bin/sh
# The lab's PostgreSQL entrypoint: the official image's contract, for Debian's $(basename "$pg").
set -eu
case "\${1:-}" in -*) set -- postgres "\$@" ;; esac
PATH=$pg/bin:/bin
: "\${PGDATA:=/var/lib/postgresql/data}" "\${POSTGRES_USER:=postgres}" "\${POSTGRES_DB:=\$POSTGRES_USER}"
if [ ! -s "\$PGDATA/PG_VERSION" ]; then
  mkdir -p "\$PGDATA" && chmod 700 "\$PGDATA"
  printf '%s\n' "\$POSTGRES_PASSWORD" >/tmp/pwfile
  initdb --username="\$POSTGRES_USER" --pwfile=/tmp/pwfile --auth-local=trust \${POSTGRES_INITDB_ARGS:-} -D "\$PGDATA" >/dev/null
  rm -f /tmp/pwfile
  echo "host all all all scram-sha-256" >>"\$PGDATA/pg_hba.conf"
  postgres -D "\$PGDATA" -c listen_addresses= -k /tmp &
  until pg_isready -h /tmp -q; do sleep 0.2; done
  [ "\$POSTGRES_DB" = postgres ] || psql -h /tmp -U "\$POSTGRES_USER" -d postgres -qc "CREATE DATABASE \\"\$POSTGRES_DB\\""
  pg_ctl -D "\$PGDATA" -m fast -w stop >/dev/null
fi
exec "\$@" -D "\$PGDATA" -c listen_addresses='*'
EOF
  chmod 755 "$d/usr/local/bin/docker-entrypoint.sh"
  import_rootfs "$d" localhost/lab/postgres-rootfs:1
  printf 'FROM localhost/lab/postgres-rootfs:1\nUSER 999:999\nENV PATH=%s/bin:/bin\nENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]\nCMD ["postgres"]\n' "$pg" >"$work/postgres.Dockerfile"
  pm build --pull=never -q -f "$work/postgres.Dockerfile" -t "$image" "$work/empty" >/dev/null
  images+=("$image")
}

# Arca's images from the project's Dockerfiles, with this host's binaries
arca_images() {
  local ctx=$work/ctx fn
  mkdir -p "$ctx/prebuilt"
  for fn in auth users audit upload artifacts download scan sign ingest; do
    [ -x "$target/arca-fn-$fn" ] || { echo "lab images: $target/arca-fn-$fn is missing (cargo build --workspace --bins)" >&2; exit 1; }
    objcopy --strip-debug "$target/arca-fn-$fn" "$ctx/prebuilt/arca-fn-$fn"
  done
  cp "$LAB_CACHE/minio-$MINIO_VERSION/minio" "$ctx/prebuilt/minio"
  cp "$LAB_CACHE/mc-$MC_VERSION/mc" "$ctx/prebuilt/mc"
  for fn in auth users audit upload artifacts download sign ingest; do
    pm build --pull=never -q -f "$repo/docker/function.Dockerfile" --build-arg BINARIES=prebuilt \
      --build-arg FUNCTION=$fn -t "kind.local/arca-$fn:0.1.0" "$ctx" >/dev/null
    images+=("kind.local/arca-$fn:0.1.0")
  done
  pm build --pull=never -q -f "$repo/docker/function.Dockerfile" --build-arg BINARIES=prebuilt \
    --build-arg FUNCTION=scan -t kind.local/arca-scan-base:0.1.0 "$ctx" >/dev/null
  pm build --pull=never -q -f "$repo/docker/scan.Dockerfile" --build-arg BASE=kind.local/arca-scan-base:0.1.0 \
    -t kind.local/arca-scan:0.1.0 "$ctx" >/dev/null
  images+=(kind.local/arca-scan:0.1.0)
  pm build --pull=never -q -f "$repo/docker/gateway.Dockerfile" -t kind.local/arca-gateway:0.1.0 "$ctx" >/dev/null
  images+=(kind.local/arca-gateway:0.1.0)
  # the web app, built by scripts/web.sh (its nginx is the gateway's base)
  mkdir -p "$ctx/frontend"
  cp -r "$repo/frontend/dist" "$repo/frontend/nginx.conf" "$ctx/frontend/"
  pm build --pull=never -q -f "$repo/docker/web.Dockerfile" --build-arg DIST=prebuilt -t kind.local/arca-web:0.1.0 "$ctx" >/dev/null
  images+=(kind.local/arca-web:0.1.0)
  local minio_tag mc_tag
  minio_tag=$(sed -n 's/^ARG MINIO_VERSION=//p' "$repo/docker/minio.Dockerfile")
  mc_tag=$(sed -n 's/^ARG MC_VERSION=//p' "$repo/docker/minio.Dockerfile")
  pm build --pull=never -q -f "$repo/docker/minio.Dockerfile" --build-arg BINARIES=prebuilt --target server \
    -t "kind.local/arca-minio:$minio_tag" "$ctx" >/dev/null
  pm build --pull=never -q -f "$repo/docker/minio.Dockerfile" --build-arg BINARIES=prebuilt --target setup \
    -t "kind.local/arca-minio-setup:$mc_tag" "$ctx" >/dev/null
  images+=("kind.local/arca-minio:$minio_tag" "kind.local/arca-minio-setup:$mc_tag")
}

# go_image NAME BINARY: FROM scratch, the binary as /ko-app/<name> (like ko), CA bundle, uid 65532
go_image() {
  local name=$1 binary=$2 d
  d=$work/go-$(basename "$name" | tr ':' '-')
  mkdir -p "$d/ko-app" && etc_files "$d" nonroot 65532
  cp "$binary" "$d/ko-app/$(basename "$binary")"
  import_rootfs "$d" "localhost/lab/rootfs-$(basename "$d"):1"
  printf 'FROM localhost/lab/rootfs-%s:1\nUSER 65532:65532\nENV KO_DATA_PATH=/var/run/ko\nENTRYPOINT ["/ko-app/%s"]\n' \
    "$(basename "$d")" "$(basename "$binary")" >"$d.Dockerfile"
  pm build --pull=never -q -f "$d.Dockerfile" -t "$name" "$work/empty" >/dev/null
  images+=("$name")
}

addon_images() {
  local b
  for b in "$LAB_CACHE/serving-$KNATIVE_VERSION"/*; do
    go_image "kind.local/lab/knative-serving-$(basename "$b"):$KNATIVE_VERSION" "$b"
  done
  for b in "$LAB_CACHE/eventing-$KNATIVE_VERSION"/*; do
    go_image "kind.local/lab/knative-eventing-$(basename "$b"):$KNATIVE_VERSION" "$b"
  done
  go_image "kind.local/lab/coredns:$COREDNS_VERSION" "$LAB_CACHE/coredns-$COREDNS_VERSION/coredns"
  go_image kind.local/arca-lab-ingress:dev "$("$here/build.sh" --path labingress)/labingress"
  go_image kind.local/lab/labissuer:dev "$("$here/build.sh" --path labissuer)/labissuer"
  mkdir -p "$work/pause/bin" && cp "$LAB_CACHE/pause-1/pause" "$work/pause/pause"
  import_rootfs "$work/pause" localhost/lab/pause-rootfs:1
  printf 'FROM localhost/lab/pause-rootfs:1\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$work/pause.Dockerfile"
  pm build --pull=never -q -f "$work/pause.Dockerfile" -t localhost/pause:lab "$work/empty" >/dev/null
  images+=(localhost/pause:lab)
}

mkdir -p "$work/empty"
images=()
say "base images"
bases
say "Arca's images (docker/*.Dockerfile, BINARIES=prebuilt)"
arca_images
postgres_image
arca=("${images[@]}")
images=()
# The add-ons' images depend only on their builds (and this script): cached by that key
addons_key=$(cat "$0" <(find "$LAB_CACHE" -maxdepth 1 -mindepth 1 ! -name images ! -name debs | sort) <("$here/build.sh" --path labingress) <("$here/build.sh" --path labissuer) |
  sha256sum | cut -c1-16)
addons=$LAB_CACHE/images/addons-$addons_key.tar
rm -f "$out"/*.tar
if [ ! -f "$addons" ]; then
  say "Kubernetes add-on images (Knative, CoreDNS, the lab's stand-ins, pause)"
  addon_images
  mkdir -p "$LAB_CACHE/images"
  rm -f "$LAB_CACHE"/images/addons-*.tar
  pm save -q -m --format docker-archive -o "$addons.partial" "${images[@]}" >/dev/null
  mv "$addons.partial" "$addons"
fi
ln -s "$addons" "$out/addons.tar"
# Images the manifests name without a registry (PostgreSQL's) are "localhost/..." to podman;
# the archive names them as the manifests do, so that containerd's import normalizes them
# the way the kubelet looks them up.
short=() qualified=()
for i in "${arca[@]}"; do
  case $i in
    */*) case ${i%%/*} in *.* | *:* | localhost) qualified+=("$i") ;; *) short+=("$i") ;; esac ;;
    *) short+=("$i") ;;
  esac
done
pm save -q -m --format docker-archive -o "$out/arca.tar" "${qualified[@]}" >/dev/null
if [ ${#short[@]} -gt 0 ]; then
  pm save -q -m --format docker-archive -o "$work/short.tar" "${short[@]/#/localhost/}" >/dev/null
  python3 - "$work/short.tar" "$out/short-names.tar" <<'PY'
import io, json, sys, tarfile
with tarfile.open(sys.argv[1]) as src, tarfile.open(sys.argv[2], "w") as dst:
    for member in src.getmembers():
        data = src.extractfile(member) if member.isfile() else None
        if member.name == "manifest.json":
            manifest = json.load(data)
            for image in manifest:
                image["RepoTags"] = [t.removeprefix("localhost/") for t in image.get("RepoTags") or []]
            raw = json.dumps(manifest).encode()
            member.size = len(raw)
            data = io.BytesIO(raw)
        dst.addfile(member, data)
PY
fi
for i in "${arca[@]}"; do
  say "$(pm image inspect --format '{{.Size}}' "$i" | awk '{printf "%6.1f MB", $1/1e6}')  $i"
done
say "archives: $(du -shL "$out" | cut -f1)"
