#!/usr/bin/env bash
# Bridged networking (issue #5): start-to-exit of a container with a published port,
# `berth run --rm -p HOSTPORT:80 IMG true` on berth's default bridge network against
# `podman run --rm -p HOSTPORT:80 IMG true` on podman's default bridge network (netavark),
# interleaved in one run (the order rotates every round) on the same busybox rootfs. Then
# container-to-container TCP throughput through berth: busybox wget fetching
# BENCH_NET_MB MiB from busybox httpd over the bridge (two bridged containers, by the server's address) and
# over the host's loopback (the same two containers with --network host, by 127.0.0.1).
#
# Every tool gets isolated temp state: berth a daemon of its own (--root, --run-dir, a store
# on a free loopback port, its own bridge and subnet); podman its own --root/--runroot,
# cgroupfs, a file event log and its own default subnet (containers.conf via
# CONTAINERS_CONF), and --ulimit flags within this machine's hard limits (see bench/run).
# Host ports are picked free before each run; traffic stays on this machine.
#
# Environment: BENCH_RUNS (default 20), BENCH_NET_MB (default 512), BENCH_NET_REPS (transfers
# per path, default 5), BERTH_BIN (default
# target/release/berth), BENCH_TMPDIR (default /var/tmp), BENCH_OUT_DIR (keep raw samples
# and logs there; default: inside the work dir, removed on exit).
# Prints a markdown report on stdout. Not a test: nothing here asserts on time. Run as root.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=bench/lib/busybox_rootfs.sh
source "$repo/bench/lib/busybox_rootfs.sh"
runs="${BENCH_RUNS:-20}"
megs="${BENCH_NET_MB:-512}"
reps="${BENCH_NET_REPS:-5}"
berth="${BERTH_BIN:-$repo/target/release/berth}"
readonly image=bench/busybox:net

for tool in podman python3 /usr/bin/busybox; do
	if ! command -v "$tool" >/dev/null; then
		echo "run.sh: $tool not found; run: make bench (installs BENCH_PACKAGES)" >&2
		exit 1
	fi
done
if [[ ! -x "$berth" ]]; then
	echo "run.sh: $berth not found (build it: cargo build --release --bin berth)" >&2
	exit 1
fi

work="$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/bnet.XXXXXX")"
broot="$(mktemp -d /tmp/bn.XXXXXX)"
out="${BENCH_OUT_DIR:-$work/out}"
mkdir -p "$out"
# This run's own bridge and subnets: derived from the shell's pid so that parallel runs and a
# real daemon (berth0, 10.88.0.0/16) never share them.
slot=$(($$ % 250 + 1))
bridge="bn$$"
berth_subnet="10.77.$slot.0/24"
podman_subnet="10.76.$slot.0/24"
berth_host="unix://$broot/run/berth.sock"
daemon_pid=""
cleanup() {
	if [[ -n "$daemon_pid" ]]; then
		"$berth" --host "$berth_host" ps -aq --no-trunc 2>/dev/null |
			xargs -r "$berth" --host "$berth_host" rm -f >/dev/null 2>&1 || true
		kill -9 "$daemon_pid" 2>/dev/null || true
	fi
	# Supervisors of this run's containers outlive the daemon by design: their pid files.
	for pidfile in "$broot"/containers/*/supervisor.pid; do
		[[ -f "$pidfile" ]] && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
	done
	podman --root "$work/p/root" --runroot "$work/p/run" rm -af >/dev/null 2>&1 || true
	grep -o " $work/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	grep -o " $broot/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	ip link del "$bridge" 2>/dev/null || true
	rm -rf "$work" "$broot"
}
trap cleanup EXIT

rootfs="$work/rootfs"
busybox_rootfs "$rootfs"
touch "$rootfs/etc/hosts" "$rootfs/etc/resolv.conf"

ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
cat >"$work/containers.conf" <<CONF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/podman-events.log"

[network]
network_config_dir = "$work/networks"
default_subnet = "$podman_subnet"
CONF
export CONTAINERS_CONF="$work/containers.conf"
podman_cmd=(podman --root "$work/p/root" --runroot "$work/p/run" --storage-driver overlay
	--runtime runc)
tar -C "$rootfs" -c . | "${podman_cmd[@]}" import --quiet - "$image" >/dev/null

"$berth" --root "$broot" image import-rootfs "$rootfs" --name "$image" >/dev/null
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
# berth_net=debug: the daemon logs how long each CNI plugin took (reported below).
"$berth" --root "$broot" --log-level warn,berth_net=debug daemon --run-dir "$broot/run" \
	--store-listen "http://127.0.0.1:$port" \
	--bridge "$bridge" --subnet "$berth_subnet" >"$out/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 1 300); do
	if "$berth" --host "$berth_host" ps >/dev/null 2>&1; then break; fi
	if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
	sleep 0.1
done
if ! "$berth" --host "$berth_host" ps >/dev/null 2>&1; then
	echo "run.sh: the berth daemon did not answer:" >&2
	cat "$out/daemon.log" >&2
	exit 1
fi

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("0.0.0.0",0)); print(s.getsockname()[1])'
}

# once TOOL RUN: one container with a published port from start to exit; prints the wall
# time in microseconds, or fails as the tool did.
once() {
	local tool="$1" run="$2" start end status=0 hostport
	local log="$out/$tool-$run.log"
	hostport="$(free_port)"
	start="$EPOCHREALTIME"
	case "$tool" in
	berth) "$berth" --host "$berth_host" run --rm -p "$hostport:80" "$image" true >"$log" 2>&1 || status=$? ;;
	podman) "${podman_cmd[@]}" run --rm -p "$hostport:80" "${ulimits[@]}" "$image" true >"$log" 2>&1 || status=$? ;;
	esac
	end="$EPOCHREALTIME"
	if ((status != 0)); then
		return "$status"
	fi
	echo $((${end/./} - ${start/./}))
}

tools=(berth podman)
for tool in "${tools[@]}"; do
	if ! once "$tool" 0 >/dev/null; then
		echo "run.sh: $tool failed its warm-up run:" >&2
		cat "$out/$tool-0.log" >&2
		exit 1
	fi
done

raw="$out/samples.tsv"
printf 'round\ttool\twall_us\n' >"$raw"
for round in $(seq 1 "$runs"); do
	for k in 0 1; do
		tool="${tools[$(((round + k) % 2))]}"
		if ! us="$(once "$tool" "$round")"; then
			echo "run.sh: $tool failed (round $round):" >&2
			cat "$out/$tool-$round.log" >&2
			exit 1
		fi
		printf '%s\t%s\t%s\n' "$round" "$tool" "$us" >>"$raw"
	done
done

# throughput NETWORK TARGET: MiB/s of $megs MiB from a server container to a client
# container, both on NETWORK, the client connecting to TARGET (`server`: the server's bridge
# address; otherwise an address, 127.0.0.1 for host). The server is busybox httpd serving a
# 64 MiB file from its tmpfs; the client fetches it $megs/64 times with busybox wget and
# times its own transfers. (busybox's nc stops at its input's end without waiting for the
# data to cross, so it cannot measure a transfer.)
throughput() {
	local network="$1" target="$2" server ip tport elapsed fetches
	tport="$(free_port)"
	fetches=$((megs / 64))
	server="$("$berth" --host "$berth_host" run -d --network "$network" --tmpfs /www "$image" \
		sh -c "dd if=/dev/zero of=/www/blob bs=1048576 count=64 2>/dev/null && exec httpd -f -p $tport -h /www")"
	ip="$target"
	if [[ "$target" == server ]]; then
		ip="$("$berth" --host "$berth_host" inspect "$server" | python3 -c '
import json, sys
networks = json.load(sys.stdin)[0]["NetworkSettings"]["Networks"]
print(next(iter(networks.values()))["IPAddress"])')"
	fi
	elapsed="$("$berth" --host "$berth_host" run --rm --network "$network" "$image" sh -c "
		until wget -q -O /dev/null http://$ip:$tport/blob; do sleep 0.1; done
		s=\$(cut -d' ' -f1 /proc/uptime)
		i=0; while [ \$i -lt $fetches ]; do
			wget -q -O /dev/null http://$ip:$tport/blob || exit 1; i=\$((i + 1)); done
		e=\$(cut -d' ' -f1 /proc/uptime)
		echo \$s \$e")"
	"$berth" --host "$berth_host" rm -f "$server" >/dev/null
	# /proc/uptime ticks in hundredths of a second: enough for transfers of a second or more.
	python3 -c "s, e = map(float, '$elapsed'.split()); print(f'{$fetches * 64 / (e - s):.0f}' if e - s >= 0.01 else 'n/a')"
}
# Only the timed runs' plugin timings: the log up to here.
cp "$out/daemon.log" "$out/daemon-runs.log"
# Alternating transfers, so that a change in the machine's load falls on both paths alike.
bridge_mbs=""
host_mbs=""
for _ in $(seq 1 "$reps"); do
	bridge_mbs+="$(throughput bridge server) "
	host_mbs+="$(throughput host 127.0.0.1) "
done
# Bridged frames go through the host's iptables/nftables when br_netfilter is loaded and
# this is 1 (docker and kube-proxy want it): then every rule of the host's FORWARD path
# costs bridge throughput.
nf_call="$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 'n/a (no br_netfilter)')"
forward_rules="$(nft list ruleset 2>/dev/null | grep -cE '^\s+(iif|oif|ip |meta|ct |counter|jump|goto|accept|drop)' || true)"

commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
cat <<REPORT
## Bridged container with a published port, start to exit: berth run vs podman run

berth $commit ($berth), $(podman --version) (netavark), $runs runs per tool, interleaved
(order rotated each round), one warm-up each; \`true\` in a busybox rootfs with \`-p HOSTPORT:80\`
on each tool's default bridge network. $(nproc) CPUs,
$(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo).

REPORT
python3 - "$raw" "$bridge_mbs" "$host_mbs" "$megs" "$out/daemon-runs.log" "$nf_call" "$forward_rules" <<'PY'
import re, statistics, sys
raw, bridge, host, megs, log, nf_call, rules = sys.argv[1:8]
samples = {}
for line in open(raw).read().splitlines()[1:]:
    _, tool, us = line.split("\t")
    samples.setdefault(tool, []).append(int(us) / 1000)
med = {tool: statistics.median(v) for tool, v in samples.items()}
print("| tool | runs | median ms | min ms | max ms |")
print("|---|---:|---:|---:|---:|")
for tool in ("berth", "podman"):
    v = samples[tool]
    print(f"| {tool} | {len(v)} | {med[tool]:.1f} | {min(v):.1f} | {max(v):.1f} |")
print()
print(f"berth / podman: {med['berth'] / med['podman']:.2f} (goal ≤ 0.33)")
print()
bridge, host = bridge.split(), host.split()
print(f"Container-to-container TCP, busybox wget fetching {megs} MiB from busybox httpd, "
      f"{len(bridge)} transfers per path, alternating:")
print()
print("| path | median MiB/s | each |")
print("|---|---:|---|")
def median(values):
    numbers = [int(v) for v in values if v.isdigit()]
    return statistics.median(numbers) if numbers else None
for name, values in (("bridge (two bridged containers, by address)", bridge),
                     ("host loopback (two --network host containers, 127.0.0.1)", host)):
    m = median(values)
    print(f"| {name} | {m if m is None else f'{m:.0f}'} | {' '.join(values)} |")
if median(bridge) and median(host):
    print(f"\nbridge / loopback: {median(bridge) / median(host):.2f} (goal ≥ 0.8)")
print(f"\nHost: bridge-nf-call-iptables = {nf_call}; rules in the host's nftables ruleset: {rules}.")
# The daemon's "CNI plugin ran" debug lines (warm-up and timed runs): per plugin and command.
runs = {}
pattern = re.compile(r'CNI plugin ran plugin="?([\w-]+)"? command=(\w+) .*?ms=([\d.]+)')
for line in open(log, errors="replace"):
    m = pattern.search(re.sub(r"\x1b\[[0-9;]*m", "", line))
    if m:
        runs.setdefault((m.group(1), m.group(2)), []).append(float(m.group(3)))
if runs:
    print("\nberth's CNI plugin invocations (one per container and command; berth-bridge and berth-nat in process):")
    print()
    print("| plugin | command | calls | median ms | max ms |")
    print("|---|---|---:|---:|---:|")
    for (plugin, command), v in sorted(runs.items()):
        print(f"| {plugin} | {command} | {len(v)} | {statistics.median(v):.1f} | {max(v):.1f} |")
PY
