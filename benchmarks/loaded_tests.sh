#!/usr/bin/env bash
# `make test` on a clean clone of this repository, N times in a row (default 5), while two busy-looping
# processes load both cores; prints the exit code, wall time and pytest's summary of each run.
#   bash benchmarks/loaded_tests.sh [N]
set -u
N=${1:-5}
REPO=$(cd "$(dirname "$0")/.." && pwd)
CLONE=$(mktemp -d)/mamc
git clone -q "$REPO" "$CLONE" && cd "$CLONE" || exit 1
python3 -c "while True: pass" & B1=$!
python3 -c "while True: pass" & B2=$!
trap 'kill $B1 $B2 2>/dev/null' EXIT
for i in $(seq 1 "$N"); do
  start=$(date +%s)
  make test > "test_$i.log" 2>&1
  rc=$?
  echo "run $i: exit $rc, $(( $(date +%s) - start )) s, $(grep -E 'passed|failed' "test_$i.log" | tail -1)"
done
