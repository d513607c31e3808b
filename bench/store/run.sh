#!/usr/bin/env bash
# berth's store vs Debian's etcd 3.4, side by side, same load generator, same machine.
# Both fsync every acknowledged write. Prints a markdown table with ratios (berth / etcd).
# Needs: a release build of berth (make bench does it) and /usr/bin/etcd.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --locked --bin berth --example store_bench -p berth -p berth-store >&2
BERTH=./target/release/berth
GEN=./target/release/examples/store_bench
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_ready() {
	for _ in $(seq 1 200); do
		ETCDCTL_API=3 etcdctl --endpoints "$1" endpoint health >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "server at $1 did not start" >&2
	return 1
}

run_etcd() {
	local port peer
	port=$(free_port)
	peer=$(free_port)
	/usr/bin/etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$port" \
		--advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$peer" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "default=http://127.0.0.1:$peer" \
		--log-level error --logger zap >/dev/null 2>&1 &
	PIDS+=($!)
	wait_ready "http://127.0.0.1:$port"
	"$GEN" "http://127.0.0.1:$port" "${PIDS[-1]}" >"$WORK/etcd.txt"
	kill -9 "${PIDS[-1]}"
}

run_berth() {
	local port
	port=$(free_port)
	"$BERTH" store --data-dir "$WORK/berth" --listen-client-urls "http://127.0.0.1:$port" >/dev/null 2>&1 &
	PIDS+=($!)
	wait_ready "http://127.0.0.1:$port"
	"$GEN" "http://127.0.0.1:$port" "${PIDS[-1]}" >"$WORK/berth.txt"
	kill -9 "${PIDS[-1]}"
}

run_etcd
run_berth

echo "| scenario | etcd ops/s | berth ops/s | ratio | etcd p50 ms | berth p50 ms | etcd p99 ms | berth p99 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
paste -d' ' "$WORK/etcd.txt" "$WORK/berth.txt" | awk '
$1 == "rss_kib" { printf "| RSS after 100k keys (KiB) | %d | %d | %.2f | | | | |\n", $2, $4, $4/$2; next }
{ printf "| %s | %.0f | %.0f | %.2f | %.3f | %.3f | %.3f | %.3f |\n", $1, $2, $6, $6/$2, $3, $7, $4, $8 }'
