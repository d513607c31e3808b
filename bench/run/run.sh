#!/usr/bin/env bash
# Container start-to-exit latency (issue #3): `berth run --rm --network none IMG true` against
# a bare `runc run` of an equivalent bundle and `podman --runtime runc run --rm --network none
# IMG true`, interleaved in one run (the order rotates every round), on the same busybox rootfs.
# Also the berth daemon's idle RSS and one supervisor's RSS (`berth supervise` of a running
# `run -d` container), from /proc/<pid>/status VmRSS. `runc-spec` is bare runc running the
# spec berth generates for the same container (berth's seccomp profile and all).
#
# Every tool gets isolated temp state: berth a daemon of its own (--root, --run-dir, a store on
# a free loopback port); runc its own --root; podman its own --root/--runroot, cgroupfs, a file
# event log (containers.conf via CONTAINERS_CONF), and --ulimit flags within this machine's
# hard limits. runc's bundle is `runc spec` (its own namespaces, no tty) running `true`.
#
# Environment: BENCH_RUNS (default 20), BERTH_BIN (default target/release/berth),
# BENCH_TMPDIR (parent of the work dir, default /var/tmp), BENCH_OUT_DIR (keep raw samples and
# logs there; default: inside the work dir, removed on exit).
# Prints a markdown report on stdout. Not a test: nothing here asserts on time. Run as root.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# shellcheck source=bench/lib/busybox_rootfs.sh
source "$repo/bench/lib/busybox_rootfs.sh"
runs="${BENCH_RUNS:-20}"
berth="${BERTH_BIN:-$repo/target/release/berth}"
readonly image=bench/busybox:run

for tool in runc podman python3 /usr/bin/busybox; do
	if ! command -v "$tool" >/dev/null; then
		echo "run.sh: $tool not found; run: make bench (installs BENCH_PACKAGES)" >&2
		exit 1
	fi
done

# Short paths: podman refuses a runroot path over 50 characters, and berth's control sockets
# (<root>/containers/<64-hex id>/control.sock) must fit in a unix socket's 108 bytes.
work="$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/brun.XXXXXX")"
broot="$(mktemp -d /tmp/bb.XXXXXX)"
out="${BENCH_OUT_DIR:-$work/out}"
mkdir -p "$out"
daemon_pid=""
cleanup() {
	if [[ -n "$daemon_pid" ]]; then
		"$berth" --host "unix://$broot/run/berth.sock" ps -aq --no-trunc 2>/dev/null |
			xargs -r "$berth" --host "unix://$broot/run/berth.sock" rm -f >/dev/null 2>&1 || true
		kill -9 "$daemon_pid" 2>/dev/null || true
	fi
	# Supervisors of this run's containers outlive the daemon by design.
	for pid in $(pgrep -f "supervise.*$broot" || true); do
		kill -9 "$pid" 2>/dev/null || true
	done
	for c in $(runc --root "$work/runc" list -q 2>/dev/null); do
		runc --root "$work/runc" delete -f "$c" >/dev/null 2>&1 || true
	done
	podman --root "$work/p/root" --runroot "$work/p/run" rm -af >/dev/null 2>&1 || true
	podman --root "$work/p/root" --runroot "$work/p/run" unshare true >/dev/null 2>&1 || true
	# Whatever is still mounted under the work dir (podman's overlay, berth's rootfs).
	grep -o " $work/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	grep -o " $broot/[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
	rm -rf "$work" "$broot"
}
trap cleanup EXIT

# The same root filesystem for all three: busybox-static with every applet linked.
rootfs="$work/rootfs"
busybox_rootfs "$rootfs"

# runc: `runc spec`, edited to run `true` without a terminal.
mkdir -p "$work/bundle"
cp -a "$rootfs" "$work/bundle/rootfs"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
spec = json.load(open(path))
spec["process"]["args"] = ["true"]
spec["process"]["terminal"] = False
json.dump(spec, open(path, "w"), indent=1)
PY

# podman: isolated storage and configuration; cgroupfs and a file event log (no systemd here);
# nofile and nproc within the hard limits as --ulimit flags (podman's defaults ask for more
# than this machine allows without CAP_SYS_RESOURCE, and podman 4.3 did not apply
# containers.conf's default_ulimits for them: every run failed with EPERM on setrlimit).
# (nproc at the shell's own hard limit was refused too, somewhere down podman's chain.)
ulimits=(--ulimit nofile=1024:1024 --ulimit nproc=4096:4096)
cat >"$work/containers.conf" <<CONF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/podman-events.log"
CONF
export CONTAINERS_CONF="$work/containers.conf"
podman_cmd=(podman --root "$work/p/root" --runroot "$work/p/run" --storage-driver overlay
	--runtime runc)
tar -C "$rootfs" -c . | "${podman_cmd[@]}" import --quiet - "$image" >/dev/null

# berth: a daemon of its own, if this build has one that serves containers.
berth_note=""
berth_host="unix://$broot/run/berth.sock"
if [[ ! -x "$berth" ]]; then
	berth_note="$berth not found (build it: cargo build --release --bin berth)"
elif ! "$berth" daemon --help 2>/dev/null | grep -q -- '--run-dir'; then
	berth_note="this berth's daemon does not serve containers yet (no --run-dir)"
else
	"$berth" --root "$broot" image import-rootfs "$rootfs" --name "$image" >/dev/null
	port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
	"$berth" --root "$broot" daemon --run-dir "$broot/run" \
		--store-listen "http://127.0.0.1:$port" >"$out/daemon.log" 2>&1 &
	daemon_pid=$!
	for _ in $(seq 1 300); do
		if "$berth" --host "$berth_host" ps >/dev/null 2>&1; then break; fi
		if ! kill -0 "$daemon_pid" 2>/dev/null; then break; fi
		sleep 0.1
	done
	if ! "$berth" --host "$berth_host" ps >/dev/null 2>&1; then
		berth_note="the daemon did not answer (see $out/daemon.log)"
		kill -9 "$daemon_pid" 2>/dev/null || true
		daemon_pid=""
	fi
fi

tools=(runc podman)
if [[ -z "$berth_note" ]]; then
	# runc-spec: the very spec berth makes for this container (docker's seccomp profile,
	# capabilities, masked paths, rlimits), run by bare runc: the equivalent bundle the
	# issue compares against. `runc spec`'s default has no seccomp filter, so it is cheaper.
	id="$("$berth" --host "$berth_host" create --network none "$image" true)"
	mkdir -p "$work/bundle-berth"
	cp -a "$rootfs" "$work/bundle-berth/rootfs"
	python3 - "$broot/containers/$id/bundle/config.json" "$work/bundle-berth/config.json" <<'PY'
import json, sys
spec = json.load(open(sys.argv[1]))
spec["root"]["path"] = "rootfs"
spec["linux"].pop("cgroupsPath", None)
json.dump(spec, open(sys.argv[2], "w"), indent=1)
PY
	"$berth" --host "$berth_host" rm "$id" >/dev/null
	tools=(berth runc runc-spec podman)
fi

# once TOOL RUN: one container from start to exit; prints the wall time in microseconds, or
# fails as the tool did.
once() {
	local tool="$1" run="$2" start end status=0
	local log="$out/$tool-$run.log"
	start="$EPOCHREALTIME"
	case "$tool" in
	berth) "$berth" --host "$berth_host" run --rm --network none "$image" true >"$log" 2>&1 || status=$? ;;
	runc) runc --root "$work/runc" run -b "$work/bundle" "bench-$run" </dev/null >"$log" 2>&1 || status=$? ;;
	runc-spec) runc --root "$work/runc" run -b "$work/bundle-berth" "bench-b$run" </dev/null >"$log" 2>&1 || status=$? ;;
	podman) "${podman_cmd[@]}" run --rm --network none "${ulimits[@]}" "$image" true >"$log" 2>&1 || status=$? ;;
	esac
	end="$EPOCHREALTIME"
	if ((status != 0)); then
		return "$status"
	fi
	echo $((${end/./} - ${start/./}))
}

# One warm-up run each (page cache, podman's first-run setup), not counted.
for tool in "${tools[@]}"; do
	if ! once "$tool" 0 >/dev/null; then
		echo "run.sh: $tool failed its warm-up run:" >&2
		cat "$out/$tool-0.log" >&2
		exit 1
	fi
done

raw="$out/samples.tsv"
printf 'round\ttool\twall_us\n' >"$raw"
n=${#tools[@]}
for round in $(seq 1 "$runs"); do
	for k in $(seq 0 $((n - 1))); do
		tool="${tools[$(((round + k) % n))]}"
		if ! us="$(once "$tool" "$round")"; then
			echo "run.sh: $tool failed (round $round):" >&2
			cat "$out/$tool-$round.log" >&2
			exit 1
		fi
		printf '%s\t%s\t%s\n' "$round" "$tool" "$us" >>"$raw"
	done
done

# Footprints: the daemon idle, and the supervisors of ten running containers. A supervisor's
# RSS counts the berth binary's text, which every supervisor (and the daemon) shares through
# the page cache; its PSS splits shared pages among their users and its private dirty pages
# are what each one costs alone, so all three are reported (medians over the ten).
daemon_rss="" supervisor_rss="" supervisor_pss="" supervisor_private=""
vmrss() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
rollup() { awk -v key="$2:" '$1 == key { print $2 }' "/proc/$1/smaps_rollup"; }
if [[ -n "$daemon_pid" ]]; then
	sleep 2
	daemon_rss="$(vmrss "$daemon_pid")"
	for _ in $(seq 10); do
		"$berth" --host "$berth_host" run -d --network none "$image" sleep 1000 >/dev/null
	done
	sleep 1
	for pid in $(pgrep -f "supervise.*$broot" || true); do
		supervisor_rss="$supervisor_rss $(vmrss "$pid")"
		supervisor_pss="$supervisor_pss $(rollup "$pid" Pss)"
		supervisor_private="$supervisor_private $(rollup "$pid" Private_Dirty)"
	done
fi

commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
cat <<EOF
## Container start to exit: berth run vs runc run vs podman run

berth $commit ($berth), $(runc --version | head -1), $(podman --version), $runs runs per tool,
interleaved (order rotated each round), one warm-up each; \`true\` in a busybox rootfs, no network.
$(nproc) CPUs, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo).
EOF
echo
if [[ -n "$berth_note" ]]; then
	echo "berth not measured: $berth_note."
	echo
fi
python3 - "$raw" "$daemon_rss" "$supervisor_rss" "$supervisor_pss" "$supervisor_private" <<'PY'
import statistics, sys
raw, daemon_rss, supervisor_rss = sys.argv[1], sys.argv[2], sys.argv[3].split()
supervisor_pss, supervisor_private = sys.argv[4].split(), sys.argv[5].split()
samples = {}
for line in open(raw).read().splitlines()[1:]:
    _, tool, us = line.split("\t")
    samples.setdefault(tool, []).append(int(us) / 1000)
med = {tool: statistics.median(v) for tool, v in samples.items()}
print("| tool | runs | median ms | min ms | max ms |")
print("|---|---:|---:|---:|---:|")
for tool in ("berth", "runc", "runc-spec", "podman"):
    if tool in samples:
        v = samples[tool]
        print(f"| {tool} | {len(v)} | {med[tool]:.1f} | {min(v):.1f} | {max(v):.1f} |")
print()
if "runc" in med and "podman" in med:
    print(f"podman / runc: {med['podman'] / med['runc']:.2f}")
if "berth" in med:
    print(f"berth / podman: {med['berth'] / med['podman']:.2f} (goal ≤ 0.5)")
    print(f"berth / runc: {med['berth'] / med['runc']:.2f} (goal ≤ 2)")
if "berth" in med and "runc-spec" in med:
    print(f"berth / runc-spec (runc running berth's own spec): "
          f"{med['berth'] / med['runc-spec']:.2f} (goal ≤ 2)")
if daemon_rss:
    print(f"\nberth daemon idle RSS: {int(daemon_rss) / 1024:.1f} MiB")
def median_mib(kib):
    return statistics.median(int(k) for k in kib) / 1024
if supervisor_rss:
    print(f"berth supervisor, median of {len(supervisor_rss)} running containers: "
          f"RSS {median_mib(supervisor_rss):.1f} MiB, PSS {median_mib(supervisor_pss):.1f} MiB, "
          f"private dirty {median_mib(supervisor_private):.1f} MiB (goal < 2 MiB per container)")
PY
