# shellcheck shell=bash
# shellcheck disable=SC2034  # the statefs_* variables are read by the scripts that source this
# The filesystem a benchmark's stores live on, chosen by BENCH_FS. Source this file, call
# statefs_setup WORK_DIR, use $statefs_root and $statefs_desc, and call statefs_cleanup from the
# EXIT trap.
#
# BENCH_FS=loop (default): a fresh ext4, with a journal, on a loop device (direct I/O) over a
# sparse file in WORK_DIR (BENCH_FS_SIZE, default 32G, only what is written takes disk space).
# Every run starts on the same clean filesystem whatever the host disk went through, a sync
# flushes only the benchmark's own data, and cleanup removes one file instead of hundreds of
# thousands. BENCH_FS=host: WORK_DIR itself, on the host disk.

statefs_work=""
statefs_loopdev=""
statefs_root=""
statefs_desc=""

statefs_setup() {
	statefs_work="$1"
	case "${BENCH_FS:-loop}" in
	loop)
		truncate -s "${BENCH_FS_SIZE:-32G}" "$statefs_work/fs.img"
		mkfs.ext4 -q -F -N 3000000 "$statefs_work/fs.img"
		statefs_loopdev="$(losetup --find --show --direct-io=on "$statefs_work/fs.img")"
		mkdir "$statefs_work/fs"
		# noinit_itable: no background inode-table zeroing competing with the measurements
		# (the sparse file reads back as zeros anyway).
		mount -o noinit_itable "$statefs_loopdev" "$statefs_work/fs"
		statefs_root="$statefs_work/fs"
		statefs_desc="a fresh ext4 (journal) on a loop device with direct I/O, over a sparse file on $(findmnt -no SOURCE,FSTYPE -T "$statefs_work" | tr -s ' ' ' ')"
		;;
	host)
		statefs_root="$statefs_work"
		statefs_desc="$(findmnt -no TARGET,SOURCE,FSTYPE,OPTIONS -T "$statefs_work" | tr -s ' ' ' ')"
		;;
	*)
		echo "BENCH_FS must be loop or host, not ${BENCH_FS}" >&2
		return 1
		;;
	esac
}

# Unmounts everything under the work dir, deepest first (a tool that died half-way may leave
# a mount), detaches the loop device, and removes the work dir.
statefs_cleanup() {
	local target
	if [[ -z "$statefs_work" ]]; then
		return 0
	fi
	while read -r target; do
		umount "$target" 2>/dev/null || umount -l "$target" 2>/dev/null || true
	done < <(findmnt -rn -o TARGET | grep -F "$statefs_work/" | sort -r || true)
	if [[ -n "$statefs_loopdev" ]]; then
		losetup -d "$statefs_loopdev" 2>/dev/null || true
	fi
	rm -rf "$statefs_work"
}
