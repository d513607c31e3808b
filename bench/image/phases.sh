#!/usr/bin/env bash
# Where one `berth image import` spends its time, phase by phase: copying blobs out of the
# archive, then for each layer unpacking it (decompress, hash, create files), syncfs, and
# publishing it. Phases are cut at the syscalls that end them (blob and layer renames, syncfs),
# traced by strace with a seccomp filter so that only those few calls stop the process; the
# per-file work runs untraced. Not part of run.sh: a diagnostic for whoever optimizes import.
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
	strace -f --seccomp-bpf -ttt -T -e trace=execve,rename,syncfs,fsync,exit_group -o "$work/trace" \
	"$berth" --root "$statefs_root/state" image import "$archive" --name bench/phases:1 >/dev/null

python3 - "$work/trace" "$work/time" "$create_us" "$statefs_desc" <<'EOF'
import re, sys

trace, timefile, create_us, fs_desc = sys.argv[1:]
events = []  # (start, duration, kind, detail)
for line in open(trace):
    m = re.match(r"\d+\s+(\d+\.\d+) (\w+)\((.*)\)\s+= .*?(?:<(\d+\.\d+)>)?$", line.strip())
    if m:
        events.append((float(m[1]), float(m[4] or 0), m[2], m[3]))
t0 = events[0][0]
rows = []
mark = t0
blob_end = None
layer = 0
for start, dur, kind, detail in events:
    if kind == "rename" and "/blobs/sha256/" in detail and layer == 0:
        blob_end = start + dur
    elif kind == "syncfs":
        if layer == 0:
            rows.append(("copy blobs out of the archive (hash, write, fsync each)", blob_end - t0))
            mark = blob_end
        layer += 1
        rows.append((f"layer {layer}: unpack (decompress, hash, create files)", start - mark))
        rows.append((f"layer {layer}: syncfs", dur))
        mark = start + dur
    elif kind == "rename" and "/layers/sha256/" in detail:
        rows.append((f"layer {layer}: publish (rename, fsync dir)", start + dur - mark))
        mark = start + dur
end = events[-1][0]
rows.append(("record the image (images.json)", end - mark))
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
