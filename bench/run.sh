#!/usr/bin/env bash
# Runs every side-by-side benchmark under bench/: each folder's run.sh, the image import first,
# then the others in name order. Keeps each one's markdown report (and, for those that honour
# BENCH_OUT_DIR, raw samples and logs) in one results directory: BENCH_RESULTS_DIR, default
# target/bench/<UTC time>/. Benchmarks are not tests: they print numbers and never fail on
# them. `make bench` installs BENCH_PACKAGES and builds target/release/berth first.
#
# BENCH_ONLY=NAME runs one folder's benchmark (e.g. BENCH_ONLY=image).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo/bench"
results="${BENCH_RESULTS_DIR:-$repo/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$results"

names=(image)
for b in */run.sh; do
	name="${b%/run.sh}"
	if [[ "$name" != image ]]; then
		names+=("$name")
	fi
done

for name in "${names[@]}"; do
	if [[ -n "${BENCH_ONLY:-}" && "$name" != "$BENCH_ONLY" ]]; then
		continue
	fi
	echo "## $name"
	BENCH_OUT_DIR="$results/$name" "./$name/run.sh" | tee "$results/$name.md"
done
echo "results in $results" >&2
