#!/usr/bin/env bash
# Runs every side-by-side benchmark under bench/ (each folder's run.sh).
set -euo pipefail
cd "$(dirname "$0")"
for b in */run.sh; do
	echo "## ${b%/run.sh}"
	"./$b"
done
