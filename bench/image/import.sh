#!/usr/bin/env bash
# Image import benchmark: `berth image import` against `podman load` on the same archives,
# interleaved in one run. Each import starts from an empty state directory (berth --root,
# podman --root/--runroot with the overlay driver) so neither tool depends on or changes the
# host's stores. The archives are read once beforehand so both tools find them in the page
# cache, and dirty pages are flushed before each import so one run's writeback does not land in
# the next one's time.
#
# No deletions between imports: every import gets its own new state directory and all are
# removed only at exit (about 2 GB of disk per run). On ext4 without a journal (as on the
# machine this was written on) the inode allocator skips inodes freed in the last 1-6 minutes,
# one inode-table lookup each, so creating files right after deleting thousands costs several
# times more: removing one import's store before the next would slow the next one down.
#
# Measured per import, with GNU time: wall time, user and system CPU, peak RSS. "wall+sync" is
# the wall time until the imported files are on disk (the import, then `sync -f` of the state
# filesystem), which compares the tools fairly whatever each does about durability.
#
# Cases (BENCH_IMAGE_CASES, default "oci docker small"):
#   oci     the full fixture (~270 MB of content, ~21,000 files, 5 gzip layers) as oci-archive
#   docker  the same image as a docker-archive (uncompressed layers, as `docker save` writes)
#   small   the fixture at scale 0.25 as oci-archive: berth's peak RSS must not grow with size
#
# Environment: BENCH_RUNS (default 3), BERTH_BIN (default target/release/berth),
# BENCH_FS (loop or host, see bench/lib/statefs.sh),
# BENCH_TMPDIR (parent of the work dir, default /var/tmp),
# BENCH_OUT_DIR (keep raw samples and logs there; default: a temp dir removed on exit),
# BENCH_CACHE_DIR (fixture cache).
# Prints a markdown report on stdout. Not a test: nothing here asserts on time.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
runs="${BENCH_RUNS:-3}"
berth="${BERTH_BIN:-$repo/target/release/berth}"
read -r -a cases <<<"${BENCH_IMAGE_CASES:-oci docker small}"
readonly image_name=bench/import:1

if [[ ! -x "$berth" ]]; then
	echo "import.sh: $berth not found; build it with: cargo build --release --bin berth" >&2
	exit 1
fi
for tool in podman skopeo python3 /usr/bin/time; do
	if ! command -v "$tool" >/dev/null; then
		echo "import.sh: $tool not found; run: make bench (installs BENCH_PACKAGES)" >&2
		exit 1
	fi
done

work="$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/bbench.XXXXXX")"
out="${BENCH_OUT_DIR:-$work/out}"
mkdir -p "$out"
# shellcheck source=bench/lib/statefs.sh
. "$here/../lib/statefs.sh"
trap statefs_cleanup EXIT
statefs_setup "$work"
state_root="$statefs_root"

# podman: isolated storage and configuration, cgroupfs and a file event log (no systemd
# here), and its image copy temp files under the work dir on the same filesystem as berth's.
podman_tmp="$state_root/podman-tmp"
mkdir -p "$podman_tmp"
cat >"$work/containers.conf" <<EOF
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$work/podman-events.log"
image_copy_tmp_dir = "$podman_tmp"
EOF
cat >"$work/storage.conf" <<EOF
[storage]
driver = "overlay"
graphroot = "$work/unused-graphroot"
runroot = "$work/unused-runroot"
EOF
export CONTAINERS_CONF="$work/containers.conf"
export CONTAINERS_STORAGE_CONF="$work/storage.conf"

fixture_full="$("$here/make-fixture.sh" 1)"
fixture_small="$("$here/make-fixture.sh" 0.25)"

archive_of() {
	case "$1" in
	oci) echo "$fixture_full/image.oci.tar" ;;
	docker) echo "$fixture_full/image.docker.tar" ;;
	small) echo "$fixture_small/image.oci.tar" ;;
	*)
		echo "import.sh: unknown case $1" >&2
		exit 1
		;;
	esac
}

# Warm the page cache once, so both tools read the archives from memory.
for case_name in "${cases[@]}"; do
	cat "$(archive_of "$case_name")" >/dev/null
done

# How long creating an empty file takes on the state filesystem right now, so a reader can
# tell a quiet disk from one degraded by recent mass deletions (see above). Kept until exit.
create_us="$(python3 "$here/fs-create-cost.py" "$state_root/calibrate")"

podman_runs=0
raw="$out/samples.tsv"
printf 'case\ttool\trun\twall_s\tdurable_s\tuser_s\tsys_s\tmaxrss_kib\n' >"$raw"

# measure CASE TOOL RUN: one import on a fresh state dir; appends a line to samples.tsv.
measure() {
	local case_name="$1" tool="$2" run="$3" archive state log cmd runroot
	archive="$(archive_of "$case_name")"
	# A new directory per import, kept until the end: see "no deletions" at the top.
	state="$state_root/state/$case_name-$tool-$run"
	log="$out/$case_name-$tool-$run.log"
	mkdir -p "$state"
	case "$tool" in
	berth) cmd=("$berth" --root "$state" image import "$archive" --name "$image_name") ;;
	podman)
		# podman refuses a runroot path over 50 characters.
		runroot="$work/run/$((++podman_runs))"
		cmd=(podman --root "$state/root" --runroot "$runroot" --storage-driver overlay
			--tmpdir "$state/libpod" load --quiet --input "$archive")
		;;
	esac
	sync -f "$state"
	local start end
	start="$(date +%s.%N)"
	if ! TMPDIR="$podman_tmp" /usr/bin/time -f '%e %U %S %M' -o "$out/time" "${cmd[@]}" >"$log" 2>&1; then
		echo "import.sh: $tool failed on $case_name (run $run):" >&2
		cat "$log" "$out/time" >&2
		exit 1
	fi
	sync -f "$state"
	end="$(date +%s.%N)"
	local wall user sys rss
	read -r wall user sys rss <"$out/time"
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case_name" "$tool" "$run" "$wall" \
		"$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.2f", b - a }')" "$user" "$sys" "$rss" >>"$raw"
	echo "  $case_name run $run: $tool ${wall}s, peak RSS $((rss / 1024)) MiB" >&2
}

for ((run = 1; run <= runs; run++)); do
	for case_name in "${cases[@]}"; do
		# Alternate who goes first, so neither always meets the other's leftovers.
		if ((run % 2)); then
			measure "$case_name" berth "$run"
			measure "$case_name" podman "$run"
		else
			measure "$case_name" podman "$run"
			measure "$case_name" berth "$run"
		fi
	done
done

commit="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git -C "$repo" status --porcelain 2>/dev/null)" ]]; then commit+="+dirty"; fi
cat <<EOF
## Image import: berth vs podman load

$(date -u '+%Y-%m-%d %H:%M UTC'), kernel $(uname -r), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')), $(free -g | awk '/^Mem:/ { print $2 }') GiB RAM.
berth $commit (release build), $(podman --version), overlay driver, $runs runs per tool and case, interleaved.
Stores on $statefs_desc; creating an empty file there took $create_us µs before the runs.

EOF
python3 - "$raw" "$fixture_full/stats.json" "$fixture_small/stats.json" <<'EOF'
import csv, json, statistics, sys
from collections import defaultdict

raw, full_stats, small_stats = sys.argv[1:]
samples = defaultdict(list)
with open(raw) as f:
    for row in csv.DictReader(f, delimiter="\t"):
        samples[(row["case"], row["tool"])].append(row)

def describe(path, kind):
    s = json.load(open(path))
    return f"{kind}: {s['content_bytes'] / 1e6:.0f} MB of file content, {s['regular_files']} regular files, {s['entries']} tar entries in {len(s['layers'])} gzip layers, archive {s['archive_bytes'] / 1e6:.0f} MB"

labels = {"oci": "full, oci-archive", "docker": "full, docker-archive", "small": "small (x0.25), oci-archive"}
print("Fixtures:\n")
print("- " + describe(full_stats, "full"))
print("- " + describe(small_stats, "small"))
print()
print("| image | tool | runs | wall s (median) | wall+sync s (median) | user s | sys s | peak RSS MiB (max) | berth/podman wall | berth/podman wall+sync |")
print("|---|---|---|---|---|---|---|---|---|---|")
med = lambda rows, key: statistics.median(float(r[key]) for r in rows)
for case in labels:
    if (case, "berth") not in samples:
        continue
    b, p = samples[(case, "berth")], samples[(case, "podman")]
    for tool, rows in (("berth", b), ("podman", p)):
        ratio = ratio_sync = ""
        if tool == "berth":
            ratio = f"**{med(b, 'wall_s') / med(p, 'wall_s'):.2f}**"
            ratio_sync = f"{med(b, 'durable_s') / med(p, 'durable_s'):.2f}"
        rss = max(int(r["maxrss_kib"]) for r in rows) / 1024
        print(f"| {labels[case]} | {tool} | {len(rows)} | {med(rows, 'wall_s'):.2f} | {med(rows, 'durable_s'):.2f} | {med(rows, 'user_s'):.2f} | {med(rows, 'sys_s'):.2f} | {rss:.1f} | {ratio} | {ratio_sync} |")
EOF
