#!/usr/bin/env bash
# berth's store vs Debian's etcd 3.4, side by side, same load generator, same machine.
# Both fsync every acknowledged write. Prints a markdown table with ratios (berth / etcd).
# ROUNDS (default 3) rounds of the throughput scenarios; NO_BUILD=1 skips the release build.
# Needs: a release build of berth (make bench does it) and /usr/bin/etcd.
#
# PIN=1 (the default on a machine with 2 CPUs or more) gives the servers the first half of the
# CPUs and the load generator the rest, as etcd's own benchmarks put the client on a machine
# of its own: the generator's CPU is then not taken from the server under test. Each server is
# started on its CPUs, so Go (GOMAXPROCS) and tokio (worker threads) size themselves to them.
# PIN=0 runs everything on every CPU, as runs 1-15 did (bench/store/RESULTS.md).
# STORE_BENCH_CLIENT=etcd-client drives puts and gets through etcd-client instead of the
# generator's lean gRPC client (ADR 0408).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
[ -n "${NO_BUILD:-}" ] || cargo build --release --locked --bin berth --example store_bench -p berth -p berth-store >&2
BERTH=./target/release/berth
GEN=./target/release/examples/store_bench
CPUS=$(nproc)
PIN=${PIN:-$((CPUS >= 2))}
SERVER_ON=() GEN_ON=()
if [ "$PIN" = 1 ]; then
	half=$((CPUS / 2))
	SERVER_ON=(taskset -c "0-$((half - 1))")
	GEN_ON=(taskset -c "$half-$((CPUS - 1))")
fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	# Reaped here, so bash's "Killed" notices go nowhere.
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
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

start_etcd() {
	local port peer
	port=$(free_port)
	peer=$(free_port)
	"${SERVER_ON[@]}" /usr/bin/etcd --data-dir "$WORK/etcd" --listen-client-urls "http://127.0.0.1:$port" \
		--advertise-client-urls "http://127.0.0.1:$port" --listen-peer-urls "http://127.0.0.1:$peer" \
		--initial-advertise-peer-urls "http://127.0.0.1:$peer" --initial-cluster "default=http://127.0.0.1:$peer" \
		--log-level error --logger zap >/dev/null 2>&1 &
	PIDS+=($!)
	EP[etcd]="http://127.0.0.1:$port"
	PID[etcd]=$!
	wait_ready "${EP[etcd]}"
}

start_berth() {
	local port
	port=$(free_port)
	"${SERVER_ON[@]}" "$BERTH" store --data-dir "$WORK/berth" --listen-client-urls "http://127.0.0.1:$port" >/dev/null 2>&1 &
	PIDS+=($!)
	EP[berth]="http://127.0.0.1:$port"
	PID[berth]=$!
	wait_ready "${EP[berth]}"
}

# One scenario against one server; its result lines go to that server's file.
bench() { # server scenario
	"${GEN_ON[@]}" "$GEN" "${EP[$1]}" "${PID[$1]}" "$2" >>"$WORK/$1.txt"
}

declare -A EP PID
start_etcd
start_berth
# Both servers run for the whole benchmark and every scenario is measured on one right after
# the other, the order swapping each round, so that a change in the machine's load (it is
# shared) falls on both alike; each figure is the median over the rounds.
for round in $(seq 1 "$ROUNDS"); do
	order=(etcd berth)
	((round % 2)) || order=(berth etcd)
	for scenario in put_1_client put_64_clients get_linearizable_64_clients get_serializable_64_clients; do
		for server in "${order[@]}"; do bench "$server" "$scenario"; done
	done
	echo "round $round of $ROUNDS done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
for server in etcd berth; do
	bench "$server" watch_fanout
	bench "$server" rss
done

if [ "$PIN" = 1 ]; then
	echo "Servers on CPUs ${SERVER_ON[2]}, the load generator on CPUs ${GEN_ON[2]} (PIN=1)."
else
	echo "Servers and the load generator on all $CPUS CPUs (PIN=0)."
fi
echo "Median of $ROUNDS rounds (ratio = berth / etcd; the RSS is after one fill of 100,000 keys on top of the rounds' writes)."
echo
echo "| scenario | etcd ops/s | berth ops/s | ratio | ratio per round | etcd p50 ms | berth p50 ms | etcd p99 ms | berth p99 ms | etcd CPU µs/op | berth CPU µs/op | generator CPU µs/op (etcd) | (berth) |"
echo "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
python3 bench/lib/ratio_table.py "$WORK/etcd.txt" "$WORK/berth.txt" --cpu
