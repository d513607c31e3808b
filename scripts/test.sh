#!/usr/bin/env bash
# Runs the whole test suite: unit tests of every crate and the end-to-end scenarios in tests/.
# cargo-nextest runs every test in its own process, which the end-to-end tests (mounts,
# namespaces, child daemons) rely on for isolation; plain cargo test is the fallback.
set -euo pipefail
cd "$(dirname "$0")/.."
if cargo nextest --version >/dev/null 2>&1; then
	cargo nextest run --workspace --locked --no-fail-fast --profile ci
else
	cargo test --workspace --locked --no-fail-fast
fi
