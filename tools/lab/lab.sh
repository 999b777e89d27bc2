#!/usr/bin/env bash
# tools/lab/lab.sh: a real one-node Kubernetes with Knative, for tests, on this machine.
#
#   tools/lab/lab.sh run CMD [ARG...]   bring the lab up, run CMD inside it, tear it down;
#                                       exits with CMD's status (or 1 if the lab failed)
#   tools/lab/lab.sh check-clean        exit 1 (and say what) if a lab left anything behind
#
# The lab is etcd (Debian), kube-apiserver, kube-controller-manager, kube-scheduler, kubelet
# and kube-proxy (built from the Go module proxy: tools/lab/build.sh), containerd + runc
# (Debian), CoreDNS, Knative Serving and Eventing (InMemoryChannel, multi-tenant Broker),
# and tools/labingress: a test stand-in for Kourier's data plane (Envoy cannot run here).
#
# Everything runs in its own PID, mount and network namespace (unshare), so nothing outlives
# the run: when CMD returns, the namespace's init exits and the kernel kills every process
# in it; the mounts and the network go with the namespaces; the outer script then removes
# the lab's cgroups and its folder and checks nothing is left (check-clean).
#
# Inside, CMD finds: KUBECONFIG (cluster-admin), LAB_DIR (the lab's folder), LAB_CA (the
# cluster CA), PATH with kubectl v1.35 first. The node is 10.244.0.1, Services 10.96.0.0/16,
# Pods 10.244.0.0/24; the lab's own processes reach ClusterIPs and Pod IPs directly.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tools/lab/versions.sh
. "$here/versions.sh"

say() { echo "lab: $* ($(date +%T))" >&2; }
die() { echo "lab: $*" >&2; exit 1; }

CGROUP_ROOT=arca-lab
LAB_NODE_CPUS=${LAB_NODE_CPUS:-8}
SYSCTL_DIR=/proc/sys

check_clean() {
  local left=0
  # the lab's processes all name its folder (configs, data, sockets) in their arguments
  if pgrep -f "/tmp/arca-lab\." >/dev/null; then
    echo "lab: processes left behind:" >&2
    pgrep -af "/tmp/arca-lab\." >&2 || true
    left=1
  fi
  local c
  for c in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
    [ -e "$c" ] || continue
    echo "lab: cgroup left behind: $c" >&2
    left=1
  done
  if grep -q " /tmp/arca-lab\." /proc/self/mountinfo; then
    echo "lab: mounts left behind:" >&2
    grep " /tmp/arca-lab\." /proc/self/mountinfo >&2
    left=1
  fi
  if ip link show cni-lab0 >/dev/null 2>&1; then
    echo "lab: the bridge cni-lab0 was left in the host network" >&2
    left=1
  fi
  # the host keeps its own sysctls (the kubelet's are faked inside the mount namespace)
  if [ -n "${HOST_OVERCOMMIT:-}" ] && { [ "$(cat $SYSCTL_DIR/vm/overcommit_memory)" != "$HOST_OVERCOMMIT" ] ||
    [ "$(cat $SYSCTL_DIR/kernel/panic)" != "$HOST_PANIC" ]; }; then
    echo "lab: a host sysctl changed" >&2
    left=1
  fi
  return $left
}

# kill_lab: SIGKILL the lab's init (the child of unshare), then wait for its processes to go
kill_lab() {
  local init i
  init=$(pgrep -P "$LAB_UNSHARE" 2>/dev/null || true)
  [ -z "$init" ] || kill -KILL "$init" 2>/dev/null || true
  kill -KILL "$LAB_UNSHARE" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do
    pgrep -f "$LAB_DIR" >/dev/null || return 0
    sleep 0.2
  done
}

teardown() {
  kill_lab
  remove_cgroups
  if [ "${LAB_KEEP:-}" = 1 ]; then
    say "kept $LAB_DIR (LAB_KEEP=1)"
  else
    rm -rf "$LAB_DIR"
  fi
}

# remove_cgroups: the lab's cgroups, deepest first (they are empty once its processes died)
remove_cgroups() {
  local c i
  for ((i = 0; i < 40; i++)); do # a cgroup is busy until its last (killed) process is reaped
    for c in /sys/fs/cgroup/*/"$CGROUP_ROOT"; do
      [ -d "$c" ] || continue
      find "$c" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
    compgen -G "/sys/fs/cgroup/*/$CGROUP_ROOT" >/dev/null || return 0
    sleep 0.5
  done
}

outer_run() {
  [ "$(id -u)" = 0 ] || die "the lab needs root (namespaces, cgroups, containerd)"
  for tool in containerd runc etcd iptables conntrack openssl unshare ip; do
    command -v "$tool" >/dev/null || die "missing $tool (scripts/lab-tools.sh installs the lab's Debian packages)"
  done
  check_clean || die "a previous lab left something behind (above); remove it first"
  HOST_OVERCOMMIT=$(cat $SYSCTL_DIR/vm/overcommit_memory)
  HOST_PANIC=$(cat $SYSCTL_DIR/kernel/panic)
  export HOST_OVERCOMMIT HOST_PANIC
  LAB_DIR=$(mktemp -d /tmp/arca-lab.XXXXXX)
  export LAB_DIR
  local status=0
  # The namespace's init is the inner script; its end (or a SIGKILL, which even a PID
  # namespace's init cannot ignore) ends every process of the lab. If this script is
  # interrupted, the trap sends that SIGKILL.
  unshare --pid --fork --mount-proc --mount --net --kill-child "$here/lab.sh" __inner "$@" &
  LAB_UNSHARE=$!
  trap 'teardown; exit 130' INT TERM HUP
  wait "$LAB_UNSHARE" || status=$?
  trap - INT TERM HUP
  teardown
  if ! check_clean; then
    say "the lab left something behind"
    [ $status -ne 0 ] || status=1
  fi
  return $status
}

# ---------------------------------------------------------------- inside the namespaces
inner() {
  local bin=$LAB_CACHE/k8s-$KUBE_VERSION
  export PATH=$bin:$PATH KUBECONFIG=$LAB_DIR/pki/admin.kubeconfig LAB_CA=$LAB_DIR/pki/ca.crt
  mkdir -p "$LAB_DIR"/{logs,etcd,containerd,kubelet,pki,cni/net.d,run}

  # mounts: private to this namespace, shared below / (kubelet's mount propagation)
  mount --make-rshared /
  mount -t tmpfs -o mode=755 lab-run /run
  mkdir -p /run/netns /run/containerd
  mount -t tmpfs -o mode=755 lab-log /var/log
  # The kubelet sets vm.overcommit_memory=1, kernel.panic=10 and kernel.panic_on_oops=1; the
  # values it wants are bind-mounted over /proc/sys here, so the host keeps its own.
  local f value
  for f in vm/overcommit_memory:1 kernel/panic:10 kernel/panic_on_oops:1; do
    value=${f#*:} f=${f%%:*}
    echo "$value" >"$LAB_DIR/run/sysctl-${f//\//-}"
    mount --bind "$LAB_DIR/run/sysctl-${f//\//-}" "/proc/sys/$f"
  done

  # The node's CPU count, as cadvisor counts it (one sysfs folder per CPU): Arca and Knative
  # request more than this machine's 2 CPUs, as on a laptop's Kind node with more cores.
  # Only the lab's own processes see this (containers mount a sysfs of their own); their CPU
  # limits still hold (cgroup CFS quotas).
  mount -t tmpfs -o mode=755 lab-node /sys/devices/system/node
  mount -t tmpfs -o mode=755 lab-cpus /sys/devices/system/cpu
  for ((f = 0; f < LAB_NODE_CPUS; f++)); do mkdir "/sys/devices/system/cpu/cpu$f"; done
  echo "0-$((LAB_NODE_CPUS - 1))" >/sys/devices/system/cpu/online

  # network: loopback, and the bridge the node and its Pods share
  ip link set lo up
  ip link add cni-lab0 type bridge
  ip addr add 10.244.0.1/24 dev cni-lab0
  ip link set cni-lab0 up
  ip route add 10.96.0.0/16 dev cni-lab0
  echo 1 >/proc/sys/net/ipv4/ip_forward

  trap 'say "the lab failed to start"; dump_state' ERR
  pki
  start_control_plane
  start_node
  say "node Ready"
  add_ons
  trap - ERR
  say "lab ready"
  local status=0
  "$@" || status=$?
  if [ $status -ne 0 ]; then
    say "command failed ($status): the lab's state"
    dump_state
  fi
  return $status
}

# dump_state: what a failure needs to be understood, on stderr
dump_state() {
  {
    kubectl get pods -A -o wide
    kubectl get ksvc,route,ingresses.networking.internal.knative.dev,broker,trigger -A
    kubectl get events -A --field-selector type=Warning --sort-by=.lastTimestamp | tail -n 30
    local p
    for p in $(kubectl get pods -A --no-headers | awk '$4 != "Running" && $4 != "Completed" {print $1 "/" $2}'); do
      echo "--- logs of $p"
      kubectl -n "${p%%/*}" logs "${p#*/}" --all-containers --tail=20
    done
  } >&2 2>&1 || true
}

# kubeconfig NAME CERT KEY SERVER: a kubeconfig file
kubeconfig() {
  local name=$1 cert=$2 key=$3
  cat >"$LAB_DIR/pki/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://127.0.0.1:6443", certificate-authority: "$LAB_DIR/pki/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$cert", client-key: "$key"}
contexts:
- name: lab
  context: {cluster: lab, user: $name}
current-context: lab
EOF
}

# cert NAME SUBJECT [SANS]: a key and a certificate signed by the lab CA
cert() {
  local name=$1 subject=$2 sans=${3:-} d=$LAB_DIR/pki ext
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$name.key" \
    -subj "$subject" -out "$d/$name.csr" 2>/dev/null
  ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth"
  [ -z "$sans" ] || ext+="
subjectAltName=$sans"
  openssl x509 -req -in "$d/$name.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 2 \
    -extfile <(echo "$ext") -out "$d/$name.crt" 2>/dev/null
}

pki() {
  local d=$LAB_DIR/pki
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" \
    -subj "/CN=arca-lab-ca" -days 2 -out "$d/ca.crt" 2>/dev/null
  cert apiserver "/CN=kube-apiserver" \
    "IP:127.0.0.1,IP:10.96.0.1,IP:10.244.0.1,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost"
  cert apiserver-kubelet "/O=system:masters/CN=kube-apiserver-kubelet-client"
  cert admin "/O=system:masters/CN=lab-admin"
  cert controller-manager "/CN=system:kube-controller-manager"
  cert scheduler "/CN=system:kube-scheduler"
  cert kube-proxy "/CN=system:kube-proxy"
  cert kubelet "/O=system:nodes/CN=system:node:lab" "IP:10.244.0.1,IP:127.0.0.1,DNS:lab"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$d/sa.key" 2>/dev/null
  openssl pkey -in "$d/sa.key" -pubout -out "$d/sa.pub"
  kubeconfig admin "$d/admin.crt" "$d/admin.key"
  kubeconfig controller-manager "$d/controller-manager.crt" "$d/controller-manager.key"
  kubeconfig scheduler "$d/scheduler.crt" "$d/scheduler.key"
  kubeconfig kube-proxy "$d/kube-proxy.crt" "$d/kube-proxy.key"
  kubeconfig kubelet "$d/kubelet.crt" "$d/kubelet.key"
}

# daemon NAME CMD...: start in the background, logging to logs/NAME.log
daemon() {
  local name=$1
  shift
  "$@" >"$LAB_DIR/logs/$name.log" 2>&1 &
  echo $! >"$LAB_DIR/run/$name.pid"
}

# wait_for WHAT SECONDS CMD...: until CMD succeeds
wait_for() {
  local what=$1 seconds=$2 i
  shift 2
  for ((i = 0; i < seconds * 2; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.5
  done
  say "timed out after ${seconds}s waiting for $what"
  tail -n 30 "$LAB_DIR"/logs/*.log >&2 || true
  return 1
}

start_control_plane() {
  local d=$LAB_DIR/pki
  daemon etcd etcd --data-dir "$LAB_DIR/etcd" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    --quota-backend-bytes 2147483648
  wait_for etcd 30 curl -sf http://127.0.0.1:2379/health
  daemon apiserver kube-apiserver --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --advertise-address 10.244.0.1 --secure-port 6443 \
    --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" \
    --client-ca-file "$d/ca.crt" \
    --kubelet-client-certificate "$d/apiserver-kubelet.crt" --kubelet-client-key "$d/apiserver-kubelet.key" \
    --kubelet-certificate-authority "$d/ca.crt" --kubelet-preferred-address-types InternalIP \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction,ResourceQuota,LimitRanger \
    --allow-privileged=false --profiling=false --anonymous-auth=true
  wait_for "the API server" 60 curl -sf --cacert "$d/ca.crt" https://127.0.0.1:6443/readyz
  daemon controller-manager kube-controller-manager --kubeconfig "$d/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$d/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$d/controller-manager.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --use-service-account-credentials \
    --service-account-private-key-file "$d/sa.key" --root-ca-file "$d/ca.crt" \
    --cluster-signing-cert-file "$d/ca.crt" --cluster-signing-key-file "$d/ca.key" \
    --service-cluster-ip-range 10.96.0.0/16 --controllers '*,-cloud-node-lifecycle'
  daemon scheduler kube-scheduler --kubeconfig "$d/scheduler.kubeconfig" \
    --authentication-kubeconfig "$d/scheduler.kubeconfig" --authorization-kubeconfig "$d/scheduler.kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1
  say "control plane up"
}

start_node() {
  local d=$LAB_DIR/pki ctr_sock=$LAB_DIR/run/containerd.sock
  cat >"$LAB_DIR/containerd/config.toml" <<EOF
version = 2
root = "$LAB_DIR/containerd/root"
state = "/run/containerd/state"
[grpc]
  address = "$ctr_sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/pause:lab"
  disable_apparmor = true
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "/usr/bin/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LAB_DIR/cni/net.d"
EOF
  cat >"$LAB_DIR/cni/net.d/10-lab.conflist" <<EOF
{"cniVersion": "1.0.0", "name": "lab", "plugins": [
  {"type": "bridge", "bridge": "cni-lab0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
   "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam", "ranges": [[{"subnet": "10.244.0.0/24", "rangeStart": "10.244.0.10", "rangeEnd": "10.244.0.199", "gateway": "10.244.0.1"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
EOF
  daemon containerd containerd --config "$LAB_DIR/containerd/config.toml"
  wait_for containerd 30 ctr --address "$ctr_sock" version
  import_images

  # The kubelet's cgroups: its own root in every v1 hierarchy (cpuset needs cpus and mems)
  local c
  for c in /sys/fs/cgroup/*/; do
    if [ "$c" = /sys/fs/cgroup/unified/ ]; then continue; fi
    mkdir -p "$c$CGROUP_ROOT"
  done
  cat /sys/fs/cgroup/cpuset/cpuset.cpus >/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.cpus
  cat /sys/fs/cgroup/cpuset/cpuset.mems >/sys/fs/cgroup/cpuset/$CGROUP_ROOT/cpuset.mems
  cat >"$LAB_DIR/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
cgroupsPerQOS: true
protectKernelDefaults: false
failSwapOn: false
readOnlyPort: 0
address: 10.244.0.1
tlsCertFile: $d/kubelet.crt
tlsPrivateKeyFile: $d/kubelet.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $d/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [10.96.0.10]
resolvConf: /etc/resolv.conf
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
maxPods: 80
serializeImagePulls: false
containerRuntimeEndpoint: unix://$ctr_sock
EOF
  daemon kubelet kubelet --config "$LAB_DIR/kubelet/config.yaml" --kubeconfig "$d/kubelet.kubeconfig" \
    --root-dir "$LAB_DIR/kubelet/root" --hostname-override lab --node-ip 10.244.0.1
  cat >"$LAB_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $d/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: 10.244.0.0/24
hostnameOverride: lab
bindAddress: 10.244.0.1
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  daemon kube-proxy kube-proxy --config "$LAB_DIR/kube-proxy.yaml"
  wait_for "node lab" 90 kubectl wait --for=condition=Ready node/lab --timeout=1s
  wait_for "the default ServiceAccount" 60 kubectl -n default get serviceaccount default
}

# import_images: every image archive the lab built (tools/lab/images.sh) into containerd
import_images() {
  local a n=0
  for a in "$LAB_IMAGES"/*.tar; do
    ctr --address "$LAB_DIR/run/containerd.sock" -n k8s.io images import --no-unpack "$a" >/dev/null
    n=$((n + 1))
  done
  say "images imported ($n archives)"
}

add_ons() {
  [ "${LAB_ADDONS:-1}" = 0 ] || "$here/addons.sh" # LAB_ADDONS=0: a bare node (debugging)
}

case ${1:-} in
  run)
    shift
    [ $# -gt 0 ] || die "usage: lab.sh run CMD [ARG...]"
    : "${LAB_IMAGES:?LAB_IMAGES: the folder of image archives (tools/lab/images.sh)}"
    export LAB_IMAGES
    outer_run "$@"
    ;;
  __inner)
    shift
    inner "$@"
    ;;
  check-clean) check_clean ;;
  *) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
