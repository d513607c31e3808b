//! Fixture images made at test time from Debian's busybox-static with umoci and skopeo, so a
//! fresh machine needs nothing but the packages `make test` installs.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use super::tool;

/// Commands linked to busybox in fixture root filesystems.
const APPLETS: [&str; 8] = ["sh", "ls", "cat", "echo", "true", "sleep", "touch", "rm"];

/// Fills `rootfs` with busybox and links for a few applets in `bin/`.
pub fn busybox_rootfs(rootfs: &Path) {
    let bin = rootfs.join("bin");
    fs::create_dir_all(&bin).unwrap();
    fs::copy("/usr/bin/busybox", bin.join("busybox"))
        .expect("/usr/bin/busybox (Debian busybox-static) is needed");
    for applet in APPLETS {
        symlink("busybox", bin.join(applet)).unwrap();
    }
    fs::create_dir_all(rootfs.join("etc")).unwrap();
    fs::write(rootfs.join("etc/os-release"), "NAME=fixture\n").unwrap();
}

/// An OCI image layout at `dir` (tag `v1`) made by umoci: a busybox layer, then a second
/// layer that adds `/data/new`, deletes `/etc/os-release` and replaces `/opt` wholesale.
pub fn umoci_two_layer_image(dir: &Path) -> PathBuf {
    let layout = dir.join("oci");
    let bundle = dir.join("bundle");
    let image = format!("{}:v1", layout.display());
    tool(
        "umoci",
        &["init", "--layout", &layout.display().to_string()],
    );
    tool("umoci", &["new", "--image", &image]);
    tool(
        "umoci",
        &["unpack", "--image", &image, &bundle.display().to_string()],
    );
    let rootfs = bundle.join("rootfs");
    busybox_rootfs(&rootfs);
    fs::create_dir_all(rootfs.join("opt/old")).unwrap();
    fs::write(rootfs.join("opt/old/file"), "old").unwrap();
    tool(
        "umoci",
        &["repack", "--image", &image, &bundle.display().to_string()],
    );
    fs::remove_dir_all(&bundle).unwrap();

    tool(
        "umoci",
        &["unpack", "--image", &image, &bundle.display().to_string()],
    );
    fs::create_dir_all(rootfs.join("data")).unwrap();
    fs::write(rootfs.join("data/new"), "second layer").unwrap();
    fs::remove_file(rootfs.join("etc/os-release")).unwrap();
    fs::remove_dir_all(rootfs.join("opt")).unwrap();
    fs::create_dir_all(rootfs.join("opt")).unwrap();
    fs::write(rootfs.join("opt/fresh"), "fresh").unwrap();
    tool(
        "umoci",
        &["repack", "--image", &image, &bundle.display().to_string()],
    );
    tool(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.cmd",
            "/bin/sh",
            "--config.env",
            "GREETING=hi",
        ],
    );
    fs::remove_dir_all(&bundle).unwrap();
    layout
}

/// Copies the layout's `v1` image to an `oci-archive` tar with skopeo.
pub fn oci_archive(layout: &Path, dest: &Path) -> PathBuf {
    let from = format!("oci:{}:v1", layout.display());
    let to = format!("oci-archive:{}:v1", dest.display());
    tool("skopeo", &["copy", "-q", &from, &to]);
    dest.to_path_buf()
}

/// Copies the layout's `v1` image to a `docker save`-format tar with skopeo, named `name`.
pub fn docker_archive(layout: &Path, dest: &Path, name: &str) -> PathBuf {
    let from = format!("oci:{}:v1", layout.display());
    let to = format!("docker-archive:{}:{name}", dest.display());
    tool("skopeo", &["copy", "-q", &from, &to]);
    dest.to_path_buf()
}
