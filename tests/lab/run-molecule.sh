#!/usr/bin/env bash
# Run molecule scenarios (all under molecule/, or the ones named) against local systemd containers.
# OTELSTACK_MOLECULE_JOBS scenarios run at once (default 2; their containers have distinct names);
# each scenario's output goes to .cache/molecule-logs/<scenario>.log and is printed when it ends.
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
logs="$root/.cache/molecule-logs"
mkdir -p "$logs"
jobs=${OTELSTACK_MOLECULE_JOBS:-2}

run_one() {
  local scenario=$1 t0 rc
  t0=$(date +%s)
  echo "=== ${scenario}: started"
  # Wide lines: molecule wraps its output at the terminal width, which splits task errors in the log.
  if COLUMNS=${COLUMNS:-240} molecule test -s "$scenario" >"$logs/$scenario.log" 2>&1; then rc=0; else rc=$?; fi
  rm -f "$logs/$scenario.failed"
  if ((rc != 0)); then
    cat "$logs/$scenario.log"
    touch "$logs/$scenario.failed"
  fi
  echo "=== ${scenario}: $([[ $rc == 0 ]] && echo passed || echo "FAILED (exit $rc)") in $(($(date +%s) - t0))s"
  return "$rc"
}
export -f run_one
export logs

start=$(date +%s)
status=0
printf '%s\n' "${scenarios[@]}" | xargs -P "$jobs" -I{} bash -c 'run_one "$@"' _ {} || status=$?
# The cause of each failure again at the very end, where a truncated CI log still shows it.
for scenario in "${scenarios[@]}"; do
  if [[ -f "$logs/$scenario.failed" ]]; then
    echo "--- ${scenario} failed; the failing tasks and assertions (whole log: $logs/$scenario.log):"
    sed -e 's/\x1b\[[0-9;]*m//g' -e 's/^ *│ \{0,1\}//' "$logs/$scenario.log" |
      grep -E -A2 '^(fatal|failed): \[|^E  |^(FAILED|ERROR) tests/' | cut -c1-300 | tail -12 || true
  fi
done
echo "molecule: ${#scenarios[@]} scenarios in $(($(date +%s) - start))s with ${jobs} at a time"
exit "$status"
