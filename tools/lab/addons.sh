#!/usr/bin/env bash
# tools/lab/addons.sh: what Kind gives a new cluster, inside the lab (lab.sh runs it):
# cluster DNS (CoreDNS) and storage. Kind provisions volumes dynamically (local-path); the
# lab makes one hostPath PersistentVolume per claim the manifests will make, ahead of time.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
kubectl apply -f "$here/manifests/coredns.yaml" >/dev/null
for pv in 1 2 3 4; do
  mkdir -p "$LAB_DIR/pv/$pv"
  chmod 1777 "$LAB_DIR/pv/$pv"
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolume
metadata: {name: lab-pv-$pv}
spec:
  capacity: {storage: 50Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Delete
  hostPath: {path: $LAB_DIR/pv/$pv, type: Directory}
YAML
done
kubectl -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null
echo "lab: CoreDNS ready; 4 volumes of 50Gi" >&2
