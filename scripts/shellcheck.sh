#!/usr/bin/env bash
# Runs the shellcheck linter on every shell script of the repository (installed from Debian when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v shellcheck >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq shellcheck
fi
mapfile -t scripts < <(git ls-files -- '*.sh' .ci/run)
for script in "${scripts[@]}"; do
  bash -n "$script"
done
shellcheck -x "${scripts[@]}"
echo "shellcheck: ${#scripts[@]} scripts clean"
