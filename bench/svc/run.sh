#!/usr/bin/env bash
# Service names (issue #6): the daemon's DNS server answering NAME.service.berth from its
# watch-fed cache of the store's endpoints.
#
# 1. Registration-to-resolvable and deregistration-to-gone latency with BENCH_SERVICES (200)
#    services: the load tool puts endpoint JSON for svc-0 … svc-199 into the daemon's
#    embedded store one after another (as registration does, crates/config/src/service.rs)
#    and asks the DNS server on the network's gateway for svc-I.service.berth until the
#    address is answered (every 0.2 ms); then deletes them one after another and asks until
#    the name is NXDOMAIN. The time runs from just before the put/delete is sent.
# 2. DNS queries per second: the same load tool (BENCH_DNS_THREADS client threads, each
#    keeping BENCH_DNS_WINDOW A queries under way, names drawn in turn from the 200) against
#    berth's DNS server with the 200 services registered, and against Debian's dnsmasq serving
#    a hosts file of the same 200 names and addresses (--addn-hosts, --no-resolv, --no-hosts,
#    loopback only on a free port, never forwarding), BENCH_DNS_SECONDS each, BENCH_ROUNDS
#    rounds alternating who goes first. Both answer every query with one A record.
#
# berth gets a daemon of its own (--root, --run-dir, a store on a free loopback port, its own
# bridge and subnet) and one idle container, so that its network's DNS server runs on the
# gateway. Traffic stays on this machine.
#
# Environment: BENCH_SERVICES (200), BENCH_DNS_SECONDS (5), BENCH_ROUNDS (3),
# BENCH_DNS_THREADS (2), BENCH_DNS_WINDOW (16), BERTH_BIN and SVC_BENCH_BIN (default: built
# here with cargo --release), BENCH_OUT_DIR (keep raw output and logs there).
# Prints a markdown report on stdout. Not a test: nothing here asserts on time. Run as root.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=bench/lib/busybox_rootfs.sh
source "$repo/bench/lib/busybox_rootfs.sh"
services="${BENCH_SERVICES:-200}"
seconds="${BENCH_DNS_SECONDS:-5}"
rounds="${BENCH_ROUNDS:-3}"
threads="${BENCH_DNS_THREADS:-2}"
window="${BENCH_DNS_WINDOW:-16}"

for tool in dnsmasq python3 /usr/bin/busybox; do
	if ! command -v "$tool" >/dev/null; then
		echo "run.sh: $tool not found; run: make deps-bench (installs BENCH_PACKAGES)" >&2
		exit 1
	fi
done
if [[ -z "${BERTH_BIN:-}" || -z "${SVC_BENCH_BIN:-}" ]]; then
	(cd "$repo" && cargo build --release --locked --bin berth --example svc_bench -p berth -p berth-agent >&2)
fi
berth="${BERTH_BIN:-$repo/target/release/berth}"
gen="${SVC_BENCH_BIN:-$repo/target/release/examples/svc_bench}"

work="$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/bsvc.XXXXXX")"
broot="$(mktemp -d /tmp/bs.XXXXXX)"
out="${BENCH_OUT_DIR:-$work/out}"
mkdir -p "$out"
# This run's own bridge and subnet, from the shell's pid: parallel runs and a real daemon
# (berth0, 10.88.0.0/16) never share them.
slot=$(($$ % 250 + 1))
bridge="bs$$"
subnet="10.75.$slot.0/24"
gateway="10.75.$slot.1"
host="unix://$broot/run/berth.sock"
daemon_pid=""
dnsmasq_pid=""
cleanup() {
	if [[ -n "$daemon_pid" ]]; then
		"$berth" --host "$host" ps -aq --no-trunc 2>/dev/null |
			xargs -r "$berth" --host "$host" rm -f >/dev/null 2>&1 || true
		kill -9 "$daemon_pid" 2>/dev/null || true
	fi
	[[ -n "$dnsmasq_pid" ]] && kill "$dnsmasq_pid" 2>/dev/null || true
	for pidfile in "$broot"/containers/*/supervisor.pid; do
		[[ -f "$pidfile" ]] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
	done
	grep -o " $broot/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	ip link del "$bridge" 2>/dev/null || true
	rm -rf "$work" "$broot"
}
trap cleanup EXIT

free_port() {
	python3 -c "import socket; s=socket.socket(socket.AF_INET, socket.$1); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"
}

busybox_rootfs "$work/rootfs"
"$berth" --root "$broot" image import-rootfs "$work/rootfs" --name bench/busybox:svc >/dev/null
store="http://127.0.0.1:$(free_port SOCK_STREAM)"
"$berth" --root "$broot" daemon --run-dir "$broot/run" --store-listen "$store" \
	--bridge "$bridge" --subnet "$subnet" >"$out/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 300); do
	if "$berth" --host "$host" ps >/dev/null 2>&1 &&
		BERTH_STORE_ENDPOINTS="$store" "$berth" kv get / >/dev/null 2>&1; then break; fi
	if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
	sleep 0.1
done
if ! "$berth" --host "$host" ps >/dev/null 2>&1; then
	echo "run.sh: the berth daemon did not answer:" >&2
	cat "$out/daemon.log" >&2
	exit 1
fi
"$berth" --host "$host" run -d --name idle bench/busybox:svc sleep 3600 >/dev/null

"$gen" latency "$store" "$gateway:53" "$services" >"$out/latency.txt"

"$gen" register "$store" "$services"
"$gen" hosts "$services" >"$work/hosts"
# dnsmasq reads the file after dropping root for nobody: the work dir must let it in.
chmod 0755 "$work"
chmod 0644 "$work/hosts"
dport="$(free_port SOCK_DGRAM)"
dnsmasq --keep-in-foreground --conf-file=/dev/null --no-resolv --no-hosts \
	--addn-hosts="$work/hosts" --listen-address=127.0.0.1 --bind-interfaces --port="$dport" \
	--local-ttl=1 --pid-file --log-facility="$out/dnsmasq.log" &
dnsmasq_pid=$!
sleep 0.5
for server in "$gateway" "127.0.0.1:$dport"; do
	if ! busybox nslookup -type=a svc-0.service.berth "$server" >/dev/null 2>&1; then
		echo "run.sh: $server does not answer svc-0.service.berth; dnsmasq's log:" >&2
		cat "$out/dnsmasq.log" >&2
		exit 1
	fi
done

: >"$out/qps.txt"
for round in $(seq 1 "$rounds"); do
	if ((round % 2)); then order=(berth dnsmasq); else order=(dnsmasq berth); fi
	for tool in "${order[@]}"; do
		case "$tool" in
		berth) target="$gateway:53" ;;
		dnsmasq) target="127.0.0.1:$dport" ;;
		esac
		echo "$tool $("$gen" qps "$target" "$services" "$seconds" "$threads" "$window")" >>"$out/qps.txt"
	done
done

cpu="$(nproc) CPUs"
load="$(cut -d' ' -f1-3 /proc/loadavg)"
echo "## Service names: $services services, $(date -u +%Y-%m-%d), $cpu, load average $load after the run"
echo
echo "Latency from the store write to the DNS answer ($services services, one after another):"
echo
echo "| | p50 ms | p99 ms | max ms | never seen |"
echo "|---|---:|---:|---:|---:|"
awk '{ printf "| %s | %.2f | %.2f | %.2f | %d |\n", $1, $2, $3, $4, $5 }' "$out/latency.txt"
echo
echo "A queries per second ($threads client threads x $window under way, ${seconds}s each, $rounds rounds):"
echo
echo "| server | round qps | answered | empty | timeouts |"
echo "|---|---|---:|---:|---:|"
awk '{ r[$1] = r[$1] sprintf("%s%.0f", (r[$1] == "" ? "" : ", "), $3); a[$1] += $5; e[$1] += $7; t[$1] += $9; q[$1] += $3; n[$1]++ }
END { for (s in r) printf "| %s | %s | %d | %d | %d |\n", s, r[s], a[s], e[s], t[s] }' "$out/qps.txt"
echo
awk '{ q[$1] += $3; n[$1]++ } END {
	b = q["berth"] / n["berth"]; d = q["dnsmasq"] / n["dnsmasq"];
	printf "Mean qps: berth %.0f, dnsmasq %.0f; berth / dnsmasq: **%.2f**\n", b, d, b / d }' "$out/qps.txt"
