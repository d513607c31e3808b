#!/usr/bin/env python3
"""Writes the deterministic multi-layer image the import benchmark feeds to berth and podman.

The image is shaped like a real application image: a busybox-static base, then layers of many
small files (text and binary, with symlinks and hardlinks), a layer of large incompressible
files, and a layer of large compressible files that also deletes files of lower layers
(whiteouts and an opaque directory). Layers are gzip-compressed, as registries serve them.

Everything derives from one seed and fixed timestamps, so the same version, scale and busybox
binary give byte-identical blobs. Output, in OUT_DIR:

    layout/             OCI image layout (what `skopeo copy ... oci:` writes)
    image.oci.tar       the same layout as one tar (what `skopeo copy ... oci-archive:` writes)
    stats.json          sizes and entry counts, for the benchmark's report

`--scale 1` gives about 270 MB of file content (a 220 MB archive) and 21,000 regular files;
sizes and counts scale linearly.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

MTIME = 1_700_000_000
CREATED = "2023-11-14T22:13:20Z"
MIB = 1024 * 1024
REF_NAME = "bench"


class HashingWriter:
    """A write-only file object that hashes and counts what passes through it."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        self.inner.write(data)
        return len(data)

    def flush(self) -> None:
        self.inner.flush()

    def digest(self) -> str:
        return "sha256:" + self.sha.hexdigest()


@dataclass
class LayerStats:
    comment: str
    regular_files: int = 0
    symlinks: int = 0
    hardlinks: int = 0
    whiteouts: int = 0
    directories: int = 0
    content_bytes: int = 0


@dataclass
class Layer:
    """Builds one layer tar: parents of every entry get a directory entry first."""

    tar: tarfile.TarFile
    stats: LayerStats
    dirs: set[str] = field(default_factory=set)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.mode = mode
        info.mtime = MTIME
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    def _parents(self, path: str) -> None:
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            self.dir("/".join(parts[:i]))

    def dir(self, path: str, mode: int = 0o755) -> None:
        if path in self.dirs:
            return
        self._parents(path)
        self.dirs.add(path)
        self.tar.addfile(self._info(path + "/", tarfile.DIRTYPE, mode))
        self.stats.directories += 1

    def file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        self._parents(path)
        info = self._info(path, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        self.stats.regular_files += 1
        self.stats.content_bytes += len(data)

    def symlink(self, path: str, target: str) -> None:
        self._parents(path)
        info = self._info(path, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)
        self.stats.symlinks += 1

    def hardlink(self, path: str, target: str) -> None:
        self._parents(path)
        info = self._info(path, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self.tar.addfile(info)
        self.stats.hardlinks += 1

    def whiteout(self, path: str) -> None:
        head, _, base = path.rpartition("/")
        self.file(f"{head}/.wh.{base}" if head else f".wh.{base}", b"")
        self.stats.regular_files -= 1
        self.stats.whiteouts += 1

    def opaque(self, path: str) -> None:
        """Hides everything lower layers put in path."""
        self.file(f"{path}/.wh..wh..opq", b"")
        self.stats.regular_files -= 1
        self.stats.whiteouts += 1


class Content:
    """Seeded file contents: text that compresses about 3:1, and incompressible bytes."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        letters = "abcdefghijklmnopqrstuvwxyz"
        words = ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(4000)]
        punct = [" ", " ", " ", " ", ", ", ". ", "\n", " = ", "(", ") "]
        pieces = [rng.choice(words) + rng.choice(punct) for _ in range(400_000)]
        self.corpus = "".join(pieces).encode()

    def text(self, size: int) -> bytes:
        out = bytearray()
        while len(out) < size:
            start = self.rng.randrange(0, len(self.corpus) - 4096)
            out += self.corpus[start : start + self.rng.randint(256, 4096)]
        return bytes(out[:size])

    def random(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def small_size(self, low: int, high: int) -> int:
        """Log-uniform between low and high, as file sizes in real trees are."""
        return int(low * (high / low) ** self.rng.random())


def build_base(layer: Layer, busybox: Path) -> None:
    layer.file("bin/busybox", busybox.read_bytes(), 0o755)
    applets = subprocess.run([str(busybox), "--list"], check=True, capture_output=True, text=True).stdout.split()
    for applet in sorted(set(applets) - {"busybox"}):
        layer.symlink(f"bin/{applet}", "busybox")
    for d in ("dev", "proc", "sys", "tmp", "root", "var/log", "usr/lib"):
        layer.dir(d)
    layer.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    layer.file("etc/group", b"root:x:0:\nnogroup:x:65534:\n")
    layer.file("etc/hostname", b"bench\n")


def build_small_files(layer: Layer, content: Content, count: int) -> list[str]:
    """Many small files in a deep tree, 70 % text and 30 % binary: an application's assets."""
    paths = []
    for i in range(count):
        path = f"usr/share/app/assets/{i % 50:02d}/{(i // 50) % 20:02d}/item-{i:06d}"
        size = content.small_size(200, 24 * 1024)
        if content.rng.random() < 0.7:
            layer.file(path + ".txt", content.text(size))
            paths.append(path + ".txt")
        else:
            layer.file(path + ".bin", content.random(size))
            paths.append(path + ".bin")
    return paths


def build_library_tree(layer: Layer, content: Content, count: int) -> None:
    """A language runtime's library tree: small source files, symlinks and hardlinks."""
    packages = max(1, count // 60)
    for i in range(count):
        pkg = i % packages
        path = f"usr/lib/runtime/pkg{pkg:04d}/mod{i // packages:03d}.src"
        layer.file(path, content.text(content.small_size(100, 6 * 1024)))
        if i % 40 == 0:
            layer.symlink(f"usr/lib/runtime/pkg{pkg:04d}/alias{i // packages:03d}.src", f"mod{i // packages:03d}.src")
        if i % 90 == 0:
            layer.hardlink(f"usr/lib/runtime/links/copy-{i:06d}.src", path)
    for i in range(20):
        layer.file(f"usr/lib/runtime/legacy/old-{i:02d}.src", content.text(2048))


def build_large_random(layer: Layer, content: Content, scale: float) -> None:
    for i, mib in enumerate((24, 24, 24, 24, 24, 16)):
        layer.file(f"opt/models/weights-{i}.bin", content.random(int(mib * MIB * scale)))


def build_large_text_and_deletes(layer: Layer, content: Content, scale: float, small_paths: list[str]) -> None:
    for i in range(2):
        layer.file(f"var/lib/app/dataset-{i}.csv", content.text(int(24 * MIB * scale)))
    for path in small_paths[::24]:
        layer.whiteout(path)
    layer.opaque("usr/lib/runtime/legacy")
    for i in range(50):
        layer.file(f"usr/lib/runtime/legacy/new-{i:02d}.src", content.text(1024))


def write_layer(blobs: Path, comment: str, build) -> tuple[dict, str, LayerStats]:
    """Writes one gzip layer blob; returns its descriptor, diff_id and stats."""
    stats = LayerStats(comment)
    tmp = blobs / ".layer.tmp"
    with open(tmp, "wb") as raw:
        compressed = HashingWriter(raw)
        with gzip.GzipFile(filename="", mode="wb", compresslevel=6, fileobj=compressed, mtime=0) as gz:
            uncompressed = HashingWriter(gz)
            with tarfile.open(fileobj=uncompressed, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                build(Layer(tar, stats))
    digest = compressed.digest()
    tmp.rename(blobs / digest.removeprefix("sha256:"))
    descriptor = {
        "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
        "digest": digest,
        "size": compressed.size,
    }
    return descriptor, uncompressed.digest(), stats


def write_json_blob(blobs: Path, media_type: str, value: dict) -> dict:
    data = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": "sha256:" + digest, "size": len(data)}


def write_layout(layout: Path, scale: float, seed: int, busybox: Path) -> list[LayerStats]:
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    content = Content(random.Random(seed))
    small_paths: list[str] = []

    def small(layer: Layer) -> None:
        small_paths.extend(build_small_files(layer, content, int(12_000 * scale)))

    builders = [
        ("busybox-static base", lambda layer: build_base(layer, busybox)),
        ("small application assets", small),
        ("library tree with links", lambda layer: build_library_tree(layer, content, int(9_000 * scale))),
        ("large incompressible files", lambda layer: build_large_random(layer, content, scale)),
        (
            "large text files, whiteouts, opaque dir",
            lambda layer: build_large_text_and_deletes(layer, content, scale, small_paths),
        ),
    ]
    descriptors, diff_ids, stats = [], [], []
    for comment, build in builders:
        descriptor, diff_id, layer_stats = write_layer(blobs, comment, build)
        descriptors.append(descriptor)
        diff_ids.append(diff_id)
        stats.append(layer_stats)

    config = {
        "created": CREATED,
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["/bin/sh"],
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created": CREATED, "created_by": f"make-fixture.py: {s.comment}"} for s in stats],
    }
    config_desc = write_json_blob(blobs, "application/vnd.oci.image.config.v1+json", config)
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": descriptors,
    }
    manifest_desc = write_json_blob(blobs, "application/vnd.oci.image.manifest.v1+json", manifest)
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": REF_NAME}
    manifest_desc["platform"] = {"architecture": "amd64", "os": "linux"}
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [manifest_desc]}
    (layout / "index.json").write_text(json.dumps(index, sort_keys=True, separators=(",", ":")))
    (layout / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return stats


def write_archive(layout: Path, archive: Path) -> None:
    """The layout as one tar, entries sorted, as `skopeo copy ... oci-archive:` writes it."""
    tmp = archive.with_suffix(".tmp")
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(layout.rglob("*")):
            info = tar.gettarinfo(str(path), str(path.relative_to(layout)))
            info.mtime = MTIME
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            if path.is_file():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)
    tmp.rename(archive)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=20261128)
    parser.add_argument("--busybox", type=Path, default=Path("/bin/busybox"))
    args = parser.parse_args()

    out: Path = args.out_dir
    if out.exists():
        shutil.rmtree(out)
    work = out.with_name(out.name + ".partial")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    stats = write_layout(work / "layout", args.scale, args.seed, args.busybox)
    write_archive(work / "layout", work / "image.oci.tar")

    blobs = work / "layout" / "blobs" / "sha256"
    layer_sizes = sorted(p.stat().st_size for p in blobs.iterdir())
    summary = {
        "scale": args.scale,
        "seed": args.seed,
        "layers": [s.__dict__ for s in stats],
        "regular_files": sum(s.regular_files for s in stats),
        "entries": sum(s.regular_files + s.symlinks + s.hardlinks + s.whiteouts + s.directories for s in stats),
        "content_bytes": sum(s.content_bytes for s in stats),
        "blob_bytes": sum(layer_sizes),
        "archive_bytes": (work / "image.oci.tar").stat().st_size,
    }
    (work / "stats.json").write_text(json.dumps(summary, indent=2) + "\n")
    os.rename(work, out)
    json.dump({k: v for k, v in summary.items() if k != "layers"}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
