#!/usr/bin/env bash
# A 3-member berth store vs a 3-member etcd 3.4, side by side on loopback, same load generator
# (crates/store/examples/store_bench.rs), same --heartbeat-interval 100 / --election-timeout
# 1000: throughput of puts and linearizable gets with 64 clients spread over the members, and
# failover time, from kill -9 of the leader to the first acknowledged write through the other
# two (REPS repetitions, median; the killed member is restarted between them).
# berth's members run as `store_bench serve` (berth_store::serve with the flags' values, what
# `berth store` runs) so only berth-store is built in release mode; BERTH=path/to/berth runs
# `berth store` instead.
# Needs: /usr/bin/etcd, /usr/bin/etcdctl, python3. NO_BUILD=1 skips the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-7}
[ -n "${NO_BUILD:-}" ] || cargo build --release --locked --example store_bench -p berth-store >&2
BERTH=${BERTH:-}
GEN=$PWD/target/release/examples/store_bench
WORK=$(mktemp -d)
declare -A PID ARGV
cleanup() {
	for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT

# Ports: client 22k0i, peer 22k5i (k = 1 for etcd, 2 for berth; i = 0..2). They lie below
# Linux's ephemeral range (32768-60999 by default): a fixed port inside it can be taken by an
# outgoing connection's local end (etcdctl's health checks, the members' own peer dials), and
# the member then fails to start with "address in use".
client_url() { echo "http://127.0.0.1:22${1}0${2}"; }
peer_url() { echo "http://127.0.0.1:22${1}5${2}"; }

start_member() { # kind k i
	local kind=$1 k=$2 i=$3 initial="" j
	for j in 0 1 2; do initial+="${initial:+,}n$j=$(peer_url "$k" "$j")"; done
	local flags=(--name "n$i" --data-dir "$WORK/$kind/n$i"
		--listen-client-urls "$(client_url "$k" "$i")" --advertise-client-urls "$(client_url "$k" "$i")"
		--listen-peer-urls "$(peer_url "$k" "$i")" --initial-advertise-peer-urls "$(peer_url "$k" "$i")"
		--initial-cluster "$initial" --initial-cluster-token "bench-$kind" --initial-cluster-state new
		--heartbeat-interval 100 --election-timeout 1000)
	if [ "$kind" = etcd ]; then
		/usr/bin/etcd "${flags[@]}" --log-level error --logger zap >>"$WORK/$kind-n$i.log" 2>&1 &
	elif [ -n "$BERTH" ]; then
		"$BERTH" --log-level warn store "${flags[@]}" >>"$WORK/$kind-n$i.log" 2>&1 &
	else
		"$GEN" serve "n$i" "$WORK/$kind/n$i" "$(client_url "$k" "$i")" "$(peer_url "$k" "$i")" \
			"$initial" "bench-$kind" >>"$WORK/$kind-n$i.log" 2>&1 &
	fi
	PID[$kind$i]=$!
}

endpoints() { echo "$(client_url "$1" 0),$(client_url "$1" 1),$(client_url "$1" 2)"; }

wait_healthy() { # k
	local e
	for e in ${1//,/ }; do
		for _ in $(seq 1 300); do
			ETCDCTL_API=3 etcdctl --endpoints "$e" --command-timeout=2s endpoint health >/dev/null 2>&1 && continue 2
			sleep 0.1
		done
		echo "member at $e never became healthy; the members' logs:" >&2
		tail -n 5 "$WORK"/*.log >&2 || true
		return 1
	done
}

# The index (0-2) of the member every member names as leader.
leader_index() { "$GEN" leader "$1"; }

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

bench_kind() { # kind k
	local kind=$1 k=$2 i eps
	eps=$(endpoints "$k")
	for i in 0 1 2; do start_member "$kind" "$k" "$i"; done
	wait_healthy "$eps"
	"$GEN" cluster "$eps" >"$WORK/$kind.txt" 2>"$WORK/$kind-retries.txt"
	echo "$kind: $(cat "$WORK/$kind-retries.txt") (operations refused and retried)" >&2
	: >"$WORK/$kind-failover.txt"
	for _ in $(seq 1 "$REPS"); do
		wait_healthy "$eps"
		sleep 2 # every member has heard the leader for a while, as in steady state
		local l survivors=""
		l=$(leader_index "$eps")
		for i in 0 1 2; do [ "$i" = "$l" ] || survivors+="${survivors:+,}$(client_url "$k" "$i")"; done
		"$GEN" failover "$survivors" "${PID[$kind$l]}" >>"$WORK/$kind-failover.txt"
		start_member "$kind" "$k" "$l"
	done
	wait_healthy "$eps"
	for i in 0 1 2; do kill -9 "${PID[$kind$i]}"; unset "PID[$kind$i]"; done
}

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
bench_kind etcd 1
bench_kind berth 2
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "| scenario (3 members) | etcd ops/s | berth ops/s | ratio | etcd p50 ms | berth p50 ms | etcd p99 ms | berth p99 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
paste -d' ' "$WORK/etcd.txt" "$WORK/berth.txt" | awk '
{ printf "| %s | %.0f | %.0f | %.2f | %.3f | %.3f | %.3f | %.3f |\n", $1, $2, $6, $6/$2, $3, $7, $4, $8 }'
e=$(awk '{ print $2 }' "$WORK/etcd-failover.txt" | median)
b=$(awk '{ print $2 }' "$WORK/berth-failover.txt" | median)
echo
echo "| failover, kill -9 of the leader to the first acknowledged write ($REPS runs) | etcd | berth | ratio |"
echo "|---|---:|---:|---:|"
echo "| median ms | $e | $b | $(awk -v e="$e" -v b="$b" 'BEGIN { printf "%.2f", b / e }') |"
echo "| all runs ms | $(awk '{ print $2 }' "$WORK/etcd-failover.txt" | paste -sd' ') | $(awk '{ print $2 }' "$WORK/berth-failover.txt" | paste -sd' ') | |"
