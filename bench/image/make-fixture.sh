#!/usr/bin/env bash
# Prints the directory of the benchmark image fixture at the given scale, building it first when
# the cache does not hold it yet. The cache key is the fixture version, the scale and the busybox
# binary, so a rerun reuses the archives and a change to make-fixture.py (bump FIXTURE_VERSION)
# or to busybox-static builds a new one.
#
# Usage: make-fixture.sh [SCALE]    (default 1: ~270 MB of content, ~21,000 files)
#
# The directory holds layout/ (OCI layout), image.oci.tar (oci-archive), image.docker.tar
# (docker-archive, written by skopeo from the layout) and stats.json.
set -euo pipefail

readonly FIXTURE_VERSION=1
here="$(cd "$(dirname "$0")" && pwd)"
scale="${1:-1}"
cache="${BENCH_CACHE_DIR:-/var/tmp/berth-bench}"
busybox="${BENCH_BUSYBOX:-/bin/busybox}"

busybox_id="$(sha256sum "$busybox" | cut -c1-12)"
dir="$cache/image-fixture-v$FIXTURE_VERSION-scale$scale-busybox$busybox_id"
if [[ -f "$dir/complete" ]]; then
	echo "$dir"
	exit 0
fi

mkdir -p "$cache"
work="$(mktemp -d "$cache/.fixture.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "building image fixture at scale $scale in $dir" >&2
python3 "$here/make-fixture.py" "$work/out" --scale "$scale" --busybox "$busybox" >/dev/null
# skopeo stages blobs in TMPDIR; keep that inside the work dir.
TMPDIR="$work" skopeo copy --quiet \
	"oci:$work/out/layout:bench" "docker-archive:$work/out/image.docker.tar:bench/import:1"
touch "$work/out/complete"
rm -rf "$dir"
mv "$work/out" "$dir"
echo "$dir"
