#!/usr/bin/env bash
# Run molecule scenarios (all under molecule/, or the ones named) against local systemd containers.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export OTELSTACK_ROOT="$root"
export OTELSTACK_COLLECTIONS_PATH="$root/.cache/collections"
mkdir -p "$OTELSTACK_COLLECTIONS_PATH/ansible_collections/otelstack"
ln -sfn "$root" "$OTELSTACK_COLLECTIONS_PATH/ansible_collections/otelstack/platform"
export PATH="$root/.venv/bin:$PATH"
cd "$root"
scenarios=("$@")
if ((${#scenarios[@]} == 0)); then
  mapfile -t scenarios < <(find molecule -mindepth 2 -maxdepth 2 -name molecule.yml -printf '%h\n' | xargs -n1 basename | sort)
fi
start=$(date +%s)
for scenario in "${scenarios[@]}"; do
  t0=$(date +%s)
  echo "=== molecule scenario ${scenario}"
  molecule test -s "$scenario"
  echo "=== ${scenario}: $(( $(date +%s) - t0 ))s"
done
echo "molecule: ${#scenarios[@]} scenarios in $(( $(date +%s) - start ))s"
