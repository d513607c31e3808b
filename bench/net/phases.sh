#!/usr/bin/env bash
# Where `berth run --rm -p HOSTPORT:80 IMG true` spends its time: the API calls the CLI
# makes (create, start, wait, delete with force), each timed by curl against the daemon's
# socket, N rounds (the first is a warm-up, left out of the medians); in each round also
# the CLI's `run --rm -p` and `run --rm --network none`, for reference; then the daemon's
# CNI plugin times. Its own daemon, bridge and subnet, as run.sh. Not a test; run as root.
# Usage: bench/net/phases.sh [BERTH_BIN] [N]; PROF_LOG sets the daemon's log filter.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
berth="${1:-$repo/target/release/berth}"; n="${2:-10}"
# shellcheck source=bench/lib/busybox_rootfs.sh
source "$repo/bench/lib/busybox_rootfs.sh"
work="$(mktemp -d /var/tmp/nfprof.XXXXXX)"; broot="$(mktemp -d /tmp/nfp.XXXXXX)"
slot=$(($$ % 200 + 20)); bridge="nfp$$"
sock="$broot/run/berth.sock"; host="unix://$sock"
daemon_pid=""
cleanup() {
	if [[ -n "$daemon_pid" ]]; then
		"$berth" --host "$host" ps -aq --no-trunc 2>/dev/null | xargs -r "$berth" --host "$host" rm -f >/dev/null 2>&1 || true
		kill -9 "$daemon_pid" 2>/dev/null || true
	fi
	for pidfile in "$broot"/containers/*/supervisor.pid; do
		if [[ -f "$pidfile" ]]; then kill -9 "$(cat "$pidfile")" 2>/dev/null || true; fi
	done
	grep -o " $broot/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	ip link del "$bridge" 2>/dev/null || true
	nft delete element ip berth bridges "{ $bridge }" 2>/dev/null || true
	rm -rf "$work" "$broot"
}
trap cleanup EXIT
busybox_rootfs "$work/rootfs"; touch "$work/rootfs/etc/hosts" "$work/rootfs/etc/resolv.conf"
"$berth" --root "$broot" image import-rootfs "$work/rootfs" --name prof/bb:1 >/dev/null
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"$berth" --root "$broot" --log-level "${PROF_LOG:-warn,berth_net=debug}" daemon --run-dir "$broot/run" --store-listen "http://127.0.0.1:$port" \
	--bridge "$bridge" --subnet "10.78.$slot.0/24" >"$work/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 300); do "$berth" --host "$host" ps >/dev/null 2>&1 && break; sleep 0.1; done
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'; }
api() { curl -s --unix-socket "$sock" -o "$work/out" -w '%{time_total}' "$@"; }
printf 'iter\tcreate\tstart\twait\tdelete\tcli_p\tcli_none\n'
for i in $(seq 0 "$n"); do
	hp="$(free_port)"
	c="$(api -X POST -H 'Content-Type: application/json' -d "{\"Image\":\"prof/bb:1\",\"Cmd\":[\"true\"],\"HostConfig\":{\"PortBindings\":[\"$hp:80\"]}}" http://x/v1/containers)"
	id="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d.get("Id") or d.get("id") or sys.exit(str(d)))' "$work/out")"
	s="$(api -X POST "http://x/v1/containers/$id/start")"
	w="$(api -X POST "http://x/v1/containers/$id/wait")"
	d="$(api -X DELETE "http://x/v1/containers/$id?force=1")"
	hp="$(free_port)"
	t0=$EPOCHREALTIME; "$berth" --host "$host" run --rm -p "$hp:80" prof/bb:1 true; t1=$EPOCHREALTIME
	"$berth" --host "$host" run --rm --network none prof/bb:1 true; t2=$EPOCHREALTIME
	printf '%s\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\t%.1f\n' "$i" "$(echo "$c*1000" | bc)" "$(echo "$s*1000" | bc)" "$(echo "$w*1000" | bc)" "$(echo "$d*1000" | bc)" \
		"$((${t1/./} - ${t0/./}))e-3" "$((${t2/./} - ${t1/./}))e-3"
done | tee "$work/prof.tsv"
python3 - "$work/prof.tsv" <<'PY'
import statistics, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:]]
cols = ["create", "start", "wait", "delete", "cli_p", "cli_none"]
print("median ms (rounds 1..):", {c: round(statistics.median(float(r[i + 1]) for r in rows), 1) for i, c in enumerate(cols)})
PY
grep -a "CNI plugin ran" "$work/daemon.log" | sed 's/\x1b\[[0-9;]*m//g' | python3 -c '
import re, sys, statistics
runs = {}
for line in sys.stdin:
    m = re.search(r"plugin=\"?([\w-]+)\"? command=(\w+) .*?ms=([\d.]+)", line)
    if m: runs.setdefault((m.group(1), m.group(2)), []).append(float(m.group(3)))
for k, v in sorted(runs.items()): print(k, len(v), "median", round(statistics.median(v), 1), "max", round(max(v), 1))
'
