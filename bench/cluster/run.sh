#!/usr/bin/env bash
# A 3-member berth store vs a 3-member etcd 3.4, side by side on loopback, same load generator
# (crates/store/examples/store_bench.rs), same --heartbeat-interval 100 / --election-timeout
# 1000: throughput of puts and linearizable gets with 64 clients spread over the members, and
# failover time, from kill -9 of the leader to the first acknowledged write through the other
# two (REPS repetitions, median; the killed member is restarted between them). Both clusters
# are up during the throughput rounds (ROUNDS, default 3), measured one right after the other,
# the order swapping each round, so a change in the shared machine's load falls on both alike;
# each figure is the median over the rounds.
# berth's members run as `store_bench serve` (berth_store::serve with the flags' values, what
# `berth store` runs) so only berth-store is built in release mode; BERTH=path/to/berth runs
# `berth store` instead.
# HOSTS=netns runs every member on a host of its own made by the cluster test harness
# (crates/cluster-harness, through its `hosts` example): a network namespace on a private
# bridge, as in the harness's fault scenarios; members listen on their host's address
# (ports 2379/2380) and the load generator reaches them over the bridge. The default,
# HOSTS=loopback, runs them all on 127.0.0.1 and needs no root; netns needs root.
# Needs: /usr/bin/etcd, /usr/bin/etcdctl, python3 (netns: root, iproute2, iptables). NO_BUILD=1
# skips the release build.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPS=${REPS:-7}
ROUNDS=${ROUNDS:-3}
for n in REPS ROUNDS; do
	[[ "${!n}" =~ ^[1-9][0-9]*$ ]] || { echo "$n must be a positive whole number, not '${!n}'" >&2; exit 2; }
done
HOSTS=${HOSTS:-loopback}
case $HOSTS in
loopback | netns) ;;
*) echo "HOSTS must be loopback or netns, not '$HOSTS'" >&2; exit 2 ;;
esac
if [ -z "${NO_BUILD:-}" ]; then
	cargo build --release --locked --example store_bench -p berth-store >&2
	[ "$HOSTS" = loopback ] || cargo build --release --locked --example hosts -p berth-cluster-harness >&2
fi
BERTH=${BERTH:-}
GEN=$PWD/target/release/examples/store_bench
WORK=$(mktemp -d)
declare -A PID
declare -a ADDR
cleanup() {
	for p in "${PID[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	if [ -n "${HARNESS_PID:-}" ]; then
		# End of input: the harness kills what it started and removes its hosts.
		[ -z "${HARNESS[1]:-}" ] || eval "exec ${HARNESS[1]}>&-"
		wait "$HARNESS_PID" 2>/dev/null || true
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT

if [ "$HOSTS" = netns ]; then
	[ "$(id -u)" = 0 ] || { echo "HOSTS=netns needs root (network namespaces)" >&2; exit 2; }
	# Six hosts: etcd's members on 0-2, berth's on 3-5.
	coproc HARNESS { exec "$PWD/target/release/examples/hosts" 6; }
	for _ in 0 1 2 3 4 5; do
		read -r word h addr <&"${HARNESS[0]}" || { echo "the harness made no hosts" >&2; exit 1; }
		[ "$word" = host ] || { echo "the harness said: $word $h $addr" >&2; exit 1; }
		ADDR[h]=$addr
	done
fi

# Asks the harness to run "$@" (flags without spaces) on host $1; sets HOST_PID, and adds the
# file that gets the member's output to HOST_LOGS.
HOST_LOGS=()
on_host() {
	local h=$1 word index log
	shift
	echo "start $h $*" >&"${HARNESS[1]}"
	read -r word index HOST_PID log <&"${HARNESS[0]}"
	if [ "$word $index" != "pid $h" ]; then
		echo "the harness could not start host $h: $word $index $HOST_PID $log" >&2
		return 1
	fi
	[[ " ${HOST_LOGS[*]} " == *" $log "* ]] || HOST_LOGS+=("$log")
}

# Ports: client 22k0i, peer 22k5i (k = 1 for etcd, 2 for berth; i = 0..2). They lie below
# Linux's ephemeral range (32768-60999 by default): a fixed port inside it can be taken by an
# outgoing connection's local end (etcdctl's health checks, the members' own peer dials), and
# the member then fails to start with "address in use".
# With HOSTS=netns, member i of kind k is host 3(k-1)+i, on etcd's usual ports.
client_url() {
	if [ "$HOSTS" = netns ]; then echo "http://${ADDR[3 * ($1 - 1) + $2]}:2379"; else echo "http://127.0.0.1:22${1}0${2}"; fi
}
peer_url() {
	if [ "$HOSTS" = netns ]; then echo "http://${ADDR[3 * ($1 - 1) + $2]}:2380"; else echo "http://127.0.0.1:22${1}5${2}"; fi
}

start_member() { # kind k i
	local kind=$1 k=$2 i=$3 initial="" j
	for j in 0 1 2; do initial+="${initial:+,}n$j=$(peer_url "$k" "$j")"; done
	local flags=(--name "n$i" --data-dir "$WORK/$kind/n$i"
		--listen-client-urls "$(client_url "$k" "$i")" --advertise-client-urls "$(client_url "$k" "$i")"
		--listen-peer-urls "$(peer_url "$k" "$i")" --initial-advertise-peer-urls "$(peer_url "$k" "$i")"
		--initial-cluster "$initial" --initial-cluster-token "bench-$kind" --initial-cluster-state new
		--heartbeat-interval 100 --election-timeout 1000)
	local argv
	if [ "$kind" = etcd ]; then
		argv=(/usr/bin/etcd "${flags[@]}" --log-level error --logger zap)
	elif [ -n "$BERTH" ]; then
		argv=("$BERTH" --log-level warn store "${flags[@]}")
	else
		argv=("$GEN" serve "n$i" "$WORK/$kind/n$i" "$(client_url "$k" "$i")" "$(peer_url "$k" "$i")"
			"$initial" "bench-$kind")
	fi
	if [ "$HOSTS" = netns ]; then
		# The harness keeps the member's output in its own directory.
		on_host $((3 * (k - 1) + i)) "${argv[@]}"
		PID[$kind$i]=$HOST_PID
	else
		"${argv[@]}" >>"$WORK/$kind-n$i.log" 2>&1 &
		PID[$kind$i]=$!
	fi
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
		tail -n 5 "$WORK"/*.log "${HOST_LOGS[@]}" >&2 || true
		return 1
	done
}

# The index (0-2) of the member every member names as leader.
leader_index() { "$GEN" leader "$1"; }

median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

start_cluster() { # kind k
	local i
	for i in 0 1 2; do start_member "$1" "$2" "$i"; done
	wait_healthy "$(endpoints "$2")"
}

throughput() { # kind k
	"$GEN" cluster "$(endpoints "$2")" >>"$WORK/$1.txt" 2>>"$WORK/$1-retries.txt"
}

failover_then_stop() { # kind k
	local kind=$1 k=$2 i eps
	eps=$(endpoints "$k")
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
start_cluster etcd 1
start_cluster berth 2
sleep 2
for round in $(seq 1 "$ROUNDS"); do
	order=("etcd 1" "berth 2")
	((round % 2)) || order=("berth 2" "etcd 1")
	for kind in "${order[@]}"; do
		# shellcheck disable=SC2086 # "kind k", split on purpose
		throughput $kind
	done
	echo "round $round of $ROUNDS done, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
done
for kind in etcd berth; do
	echo "$kind: $(grep -h cluster_retries "$WORK/$kind-retries.txt" | awk '{ n += $2 } END { print "cluster_retries", n + 0 }') over $ROUNDS rounds (operations refused and retried)" >&2
done
failover_then_stop etcd 1
failover_then_stop berth 2
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

echo "Median of $ROUNDS rounds (ratio = berth / etcd)."
echo
echo "| scenario (3 members) | etcd ops/s | berth ops/s | ratio | ratio per round | etcd p50 ms | berth p50 ms | etcd p99 ms | berth p99 ms |"
echo "|---|---:|---:|---:|---|---:|---:|---:|---:|"
python3 bench/lib/ratio_table.py "$WORK/etcd.txt" "$WORK/berth.txt"
e=$(awk '{ print $2 }' "$WORK/etcd-failover.txt" | median)
b=$(awk '{ print $2 }' "$WORK/berth-failover.txt" | median)
echo
echo "| failover, kill -9 of the leader to the first acknowledged write ($REPS runs) | etcd | berth | ratio |"
echo "|---|---:|---:|---:|"
echo "| median ms | $e | $b | $(awk -v e="$e" -v b="$b" 'BEGIN { printf "%.2f", b / e }') |"
echo "| all runs ms | $(awk '{ print $2 }' "$WORK/etcd-failover.txt" | paste -sd' ') | $(awk '{ print $2 }' "$WORK/berth-failover.txt" | paste -sd' ') | |"
