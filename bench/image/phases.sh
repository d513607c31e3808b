#!/usr/bin/env bash
# Where one `berth image import` spends its time, phase by phase: copying blobs out of the
# archive into scratch, unpacking each layer (decompress, hash, create files), the one syncfs,
# and publishing. Phases are cut at the syscalls that start or end them (the mkdir of each
# scratch layer-N directory, syncfs), traced by strace with a seccomp filter so that only
# mkdir, rename, fsync and syncfs stop the process; the per-file work runs untraced. Not part of run.sh: a diagnostic for whoever optimizes import.
#
# Usage: phases.sh [ARCHIVE]    (default: the full oci-archive fixture)
# The store goes on a fresh loop filesystem like import.sh's (BENCH_FS, bench/lib/statefs.sh).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
berth="${BERTH_BIN:-$repo/target/release/berth}"
archive="${1:-$("$here/make-fixture.sh" 1)/image.oci.tar}"

work="$(mktemp -d "${BENCH_TMPDIR:-/var/tmp}/bphases.XXXXXX")"
# shellcheck source=bench/lib/statefs.sh
. "$here/../lib/statefs.sh"
trap statefs_cleanup EXIT
statefs_setup "$work"

cat "$archive" >/dev/null
create_us="$(python3 "$here/fs-create-cost.py" "$statefs_root/calibrate")"
sync -f "$statefs_root"
/usr/bin/time -f '%e %U %S %M' -o "$work/time" \
	strace -f --seccomp-bpf -ttt -T -e trace=execve,mkdir,mkdirat,rename,syncfs,fsync,exit_group -o "$work/trace" \
	"$berth" --root "$statefs_root/state" image import "$archive" --name bench/phases:1 >/dev/null

python3 - "$work/trace" "$work/time" "$create_us" "$statefs_desc" <<'EOF'
import re, sys

trace, timefile, create_us, fs_desc = sys.argv[1:]
events = []  # (start, duration, syscall, arguments)
for line in open(trace):
    m = re.match(r"\d+\s+(\d+\.\d+) (\w+)\((.*)\)\s+= .*?(?:<(\d+\.\d+)>)?$", line.strip())
    if m:
        events.append((float(m[1]), float(m[4] or 0), m[2], m[3]))
t0, end = events[0][0], events[-1][0]
# The staging flow: blobs are copied into scratch, each layer is unpacked into scratch/layer-N
# (its mkdir starts the phase), one syncfs, then everything is renamed into place.
layer_starts = [(e[0], int(m[1])) for e in events if e[2] in ("mkdir", "mkdirat") and (m := re.search(r'/layer-(\d+)"', e[3]))]
syncfs = [e for e in events if e[2] == "syncfs"]
rows = []
first_layer = layer_starts[0][0] if layer_starts else (syncfs[0][0] if syncfs else end)
fsync_in_copy = sum(e[1] for e in events if e[2] == "fsync" and e[0] < first_layer)
rows.append((f"copy blobs out of the archive (sha256, write; fsync {fsync_in_copy:.3f} s)", first_layer - t0))
bounds = [t for t, _ in layer_starts] + [syncfs[0][0] if syncfs else end]
for (start, n), stop in zip(layer_starts, bounds[1:]):
    rows.append((f"layer {n + 1}: unpack (decompress, hash, create files)", stop - start))
for e in syncfs:
    rows.append(("syncfs", e[1]))
last_sync_end = syncfs[-1][0] + syncfs[-1][1] if syncfs else end
rows.append(("publish (renames, directory fsyncs) and record the image", end - last_sync_end))
wall, user, sys_, rss = open(timefile).read().split()[-4:]
print(f"berth image import, traced: wall {wall} s (user {user} s, sys {sys_} s), peak RSS {int(rss) // 1024} MiB.")
print(f"Store on {fs_desc}; creating an empty file there took {create_us} µs before the run.\n")
print("| phase | seconds | share |")
print("|---|---|---|")
total = end - t0
for name, secs in rows:
    print(f"| {name} | {secs:.3f} | {secs / total:.0%} |")
print(f"| total (first to last traced call) | {total:.3f} | |")
EOF
