#!/usr/bin/env bash
# The image benchmarks, as bench/run.sh calls every folder: the import against podman load.
# phases.sh is a diagnostic and not run here (see bench/README.md).
set -euo pipefail
exec "$(dirname "$0")/import.sh" "$@"
