#!/usr/bin/env bash
# Runs every benchmark under bench/, in the order of the list below (the image import first),
# and keeps each one's markdown report and raw samples in one results directory:
# BENCH_RESULTS_DIR, default target/bench/<UTC time>/. Benchmarks are not tests: they print
# numbers and never fail on them. Expects target/release/berth (`make bench` builds it).
#
# BENCH_ONLY=NAME runs one benchmark (e.g. BENCH_ONLY=image/import).
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"

# Each entry is bench/<entry>.sh; it prints a markdown report on stdout and honours
# BENCH_OUT_DIR for its raw samples and logs.
benchmarks=(
	image/import
)

results="${BENCH_RESULTS_DIR:-$repo/target/bench/$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$results"

for name in "${benchmarks[@]}"; do
	if [[ -n "${BENCH_ONLY:-}" && "$name" != "$BENCH_ONLY" ]]; then
		continue
	fi
	slug="${name//\//-}"
	echo "== bench/$name.sh" >&2
	BENCH_OUT_DIR="$results/$slug" "$repo/bench/$name.sh" | tee "$results/$slug.md"
done
echo "results in $results" >&2
