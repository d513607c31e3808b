//! `berth image …`: importing real archives, refusing hostile ones, and stacking layers.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_image::Store;
use berth_types::Digest;
use serde_json::Value;

use crate::support::oci::{self, Encoding, Entry, Image, file};
use crate::support::{berth, fails, fixtures, ok};

mod bad_input;

fn ls_json(root: &Path) -> Vec<Value> {
    let out = ok(berth(root).args(["image", "ls", "--format", "json"]));
    serde_json::from_str::<Value>(&out)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn image_root(root: &Path) -> PathBuf {
    root.join("image")
}

/// `berth image import PATH --name NAME`, which must succeed.
fn import_as(root: &Path, path: &Path, name: &str) {
    ok(berth(root)
        .args(["image", "import"])
        .arg(path)
        .args(["--name", name]));
}

/// Mounts a fresh rootfs of image `name` for container `id`, runs `look` on it, then unmounts
/// and removes it (also when `look` panics, so a failing test leaves no mount behind).
fn with_mounted_rootfs<T>(
    root: &Path,
    name: &str,
    id: &str,
    look: impl FnOnce(&berth_image::Rootfs) -> T,
) -> T {
    let store = Store::open(&image_root(root)).unwrap();
    let image = store.resolve(name).unwrap();
    let rootfs = store.prepare_rootfs(id, &image).unwrap();
    rootfs.mount().unwrap();
    let seen = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| look(&rootfs)));
    store.remove_rootfs(id).unwrap();
    seen.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

/// Every blob hashes to its name and every layer directory is complete: what a crash or a
/// race must never break.
fn assert_store_consistent(root: &Path) {
    let blobs = image_root(root).join("blobs/sha256");
    for entry in fs::read_dir(&blobs).unwrap() {
        let entry = entry.unwrap();
        let mut bytes = Vec::new();
        fs::File::open(entry.path())
            .unwrap()
            .read_to_end(&mut bytes)
            .unwrap();
        assert_eq!(
            Digest::of(&bytes).hex(),
            entry.file_name().to_string_lossy(),
            "blob {} does not match its digest",
            entry.path().display()
        );
    }
    let layers = image_root(root).join("layers/sha256");
    for entry in fs::read_dir(&layers).unwrap() {
        let path = entry.unwrap().path();
        assert!(
            path.join("layer.json").is_file(),
            "incomplete layer {}",
            path.display()
        );
    }
}

fn tmp_entries(root: &Path) -> usize {
    fs::read_dir(image_root(root).join("tmp")).unwrap().count()
}

#[test]
fn the_same_image_imports_alike_from_oci_layout_oci_archive_and_docker_archive() {
    let work = tempfile::tempdir().unwrap();
    let layout = fixtures::umoci_two_layer_image(work.path());
    let archive = fixtures::oci_archive(&layout, &work.path().join("oci.tar"));
    let docker = fixtures::docker_archive(
        &layout,
        &work.path().join("docker.tar"),
        "fixture/docker:v1",
    );
    let root = work.path().join("root");

    let out = ok(berth(&root)
        .args(["image", "import"])
        .arg(&layout)
        .args(["--name", "fixture/dir:1"]));
    assert_eq!(out.trim(), "Loaded image: fixture/dir:1");
    import_as(&root, &archive, "fixture/tar:1");
    let out = ok(berth(&root).args(["image", "import"]).arg(&docker));
    assert_eq!(
        out.trim(),
        "Loaded image: fixture/docker:v1",
        "docker save names are kept"
    );

    let images = ls_json(&root);
    assert_eq!(
        images.len(),
        1,
        "one image id whatever the archive format: {images:?}"
    );
    let names: Vec<&str> = images[0]["Names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3);
    assert!(names.contains(&"docker.io/fixture/dir:1"));
    assert_eq!(images[0]["Layers"], 2);

    let inspect: Value = serde_json::from_str(&ok(berth(&root).args([
        "image",
        "inspect",
        "fixture/tar:1",
    ])))
    .unwrap();
    assert_eq!(inspect[0]["Config"]["Cmd"][0], "/bin/sh");
    assert!(
        inspect[0]["Config"]["Env"]
            .to_string()
            .contains("GREETING=hi")
    );
    assert_eq!(inspect[0]["RootFS"]["Layers"].as_array().unwrap().len(), 2);
    assert_store_consistent(&root);
    assert_eq!(tmp_entries(&root), 0, "no scratch space is left behind");
}

#[test]
fn whiteouts_and_opaque_directories_hide_lower_files_in_the_container_rootfs() {
    let work = tempfile::tempdir().unwrap();
    let lower = oci::tar(&[
        Entry::Dir("etc/"),
        file("etc/keep", "kept"),
        file("etc/gone", "deleted above"),
        Entry::Dir("opt/"),
        file("opt/old", "hidden by opaque dir"),
    ]);
    let upper = oci::tar(&[
        file("etc/.wh.gone", ""),
        Entry::Dir("opt/"),
        file("opt/.wh..wh..opq", ""),
        file("opt/new", "only this"),
    ]);
    let dir = Image {
        layers: vec![lower, upper],
        ..Image::default()
    }
    .write(&work.path().join("layout"));
    let root = work.path().join("root");
    import_as(&root, &dir, "layers:1");

    let (seen, upper_has_write, lower_unchanged) =
        with_mounted_rootfs(&root, "layers:1", "ctr-whiteouts", |rootfs| {
            let merged = &rootfs.target;
            let seen = (
                fs::read_to_string(merged.join("etc/keep")).ok(),
                merged.join("etc/gone").exists(),
                merged.join("opt/old").exists(),
                fs::read_to_string(merged.join("opt/new")).ok(),
            );
            // Writes land in the container's own upper directory, never in the shared layers.
            fs::write(merged.join("etc/keep"), "changed").unwrap();
            let upper_has_write = rootfs.upper.join("etc/keep").exists();
            let lower_unchanged = fs::read_to_string(rootfs.lowers[1].join("etc/keep")).unwrap();
            (seen, upper_has_write, lower_unchanged)
        });

    assert_eq!(seen.0.as_deref(), Some("kept"));
    assert!(!seen.1, "a whiteout hides the lower file");
    assert!(
        !seen.2,
        "an opaque directory hides the lower directory's content"
    );
    assert_eq!(seen.3.as_deref(), Some("only this"));
    assert!(upper_has_write);
    assert_eq!(lower_unchanged, "kept");
    assert!(!image_root(&root).join("snapshots/ctr-whiteouts").exists());
}

#[test]
fn layers_may_be_gzip_zstd_or_plain_tar() {
    let work = tempfile::tempdir().unwrap();
    let dir = Image {
        layers: vec![
            oci::tar(&[file("gzipped", "g")]),
            oci::tar(&[file("zstd", "z")]),
            oci::tar(&[file("plain", "p")]),
        ],
        encodings: vec![Encoding::Gzip, Encoding::Zstd, Encoding::Plain],
        ..Image::default()
    }
    .write(&work.path().join("layout"));
    let root = work.path().join("root");
    import_as(&root, &dir, "mixed:1");
    let store = Store::open(&image_root(&root)).unwrap();
    let image = store.resolve("mixed:1").unwrap();
    let media_types: Vec<&str> = image.layers.iter().map(|l| l.media_type.as_str()).collect();
    assert_eq!(
        media_types,
        [
            "application/vnd.oci.image.layer.v1.tar+gzip",
            "application/vnd.oci.image.layer.v1.tar+zstd",
            "application/vnd.oci.image.layer.v1.tar"
        ]
    );
    let contents: Vec<Option<String>> =
        with_mounted_rootfs(&root, "mixed:1", "ctr-mixed", |rootfs| {
            ["gzipped", "zstd", "plain"]
                .iter()
                .map(|name| fs::read_to_string(rootfs.target.join(name)).ok())
                .collect()
        });
    assert_eq!(
        contents,
        [Some("g".into()), Some("z".into()), Some("p".into())]
    );
}

#[test]
fn umoci_layers_stack_into_the_expected_rootfs() {
    let work = tempfile::tempdir().unwrap();
    let layout = fixtures::umoci_two_layer_image(work.path());
    let root = work.path().join("root");
    import_as(&root, &layout, "fixture:1");
    let store = Store::open(&image_root(&root)).unwrap();
    let err = store.resolve("fixture").unwrap_err();
    assert!(
        err.to_string().contains("no such image"),
        "fixture:latest was never imported"
    );
    let (busybox_runs, checks) = with_mounted_rootfs(&root, "fixture:1", "ctr-umoci", |rootfs| {
        let merged = &rootfs.target;
        let busybox_runs =
            merged.join("bin/busybox").is_file() && fs::read_link(merged.join("bin/sh")).is_ok();
        let checks = (
            fs::read_to_string(merged.join("data/new")).ok(),
            merged.join("etc/os-release").exists(),
            merged.join("opt/old").exists(),
            merged.join("opt/fresh").exists(),
        );
        (busybox_runs, checks)
    });
    assert!(busybox_runs);
    assert_eq!(checks.0.as_deref(), Some("second layer"));
    assert!(!checks.1, "deleted in layer 2");
    assert!(!checks.2, "replaced directory content is gone");
    assert!(checks.3);
}

#[test]
fn import_rootfs_makes_a_one_layer_image_from_a_directory_or_a_tar() {
    let work = tempfile::tempdir().unwrap();
    let rootfs = work.path().join("rootfs");
    fixtures::busybox_rootfs(&rootfs);
    let root = work.path().join("root");
    let id = ok(berth(&root)
        .args(["image", "import-rootfs"])
        .arg(&rootfs)
        .args([
            "--name",
            "local/bb:1",
            "--cmd",
            "sh",
            "--cmd",
            "-c",
            "--cmd",
            "echo hi",
            "-e",
            "A=1",
            "-w",
            "/srv",
        ]));
    assert!(id.trim().starts_with("sha256:"));
    let inspect: Value =
        serde_json::from_str(&ok(berth(&root).args(["image", "inspect", "local/bb:1"]))).unwrap();
    let config = &inspect[0]["Config"];
    assert_eq!(config["Cmd"], serde_json::json!(["sh", "-c", "echo hi"]));
    assert_eq!(config["WorkingDir"], "/srv");
    let env = config["Env"].to_string();
    assert!(env.contains("A=1") && env.contains("PATH="), "{env}");

    let tarball = work.path().join("rootfs.tar.gz");
    let status = std::process::Command::new("tar")
        .arg("-czf")
        .arg(&tarball)
        .arg("-C")
        .arg(&rootfs)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    ok(berth(&root)
        .args(["image", "import-rootfs"])
        .arg(&tarball)
        .args(["--name", "local/bb:tgz"]));
    let store = Store::open(&image_root(&root)).unwrap();
    let image = store.resolve("local/bb:tgz").unwrap();
    let layer = image_root(&root)
        .join("layers/sha256")
        .join(image.layers[0].chain_id.hex())
        .join("fs");
    assert_eq!(
        fs::read(layer.join("bin/busybox")).unwrap(),
        fs::read("/usr/bin/busybox").unwrap()
    );
    assert_eq!(
        fs::read_link(layer.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
}

#[test]
fn rm_keeps_layers_another_image_shares_and_prune_reclaims_the_rest() {
    let work = tempfile::tempdir().unwrap();
    let base = oci::tar(&[file("base", "shared")]);
    let a = Image {
        layers: vec![base.clone(), oci::tar(&[file("a", "only a")])],
        ..Image::default()
    }
    .write(&work.path().join("a"));
    let b = Image {
        layers: vec![base, oci::tar(&[file("b", "only b")])],
        ..Image::default()
    }
    .write(&work.path().join("b"));
    let root = work.path().join("root");
    import_as(&root, &a, "app/a:1");
    import_as(&root, &b, "app/b:1");
    let layers_dir = image_root(&root).join("layers/sha256");
    assert_eq!(
        fs::read_dir(&layers_dir).unwrap().count(),
        3,
        "the base layer is unpacked once"
    );

    let out = ok(berth(&root).args(["image", "rm", "app/a:1"]));
    assert!(
        out.contains("Untagged: app/a:1") && out.contains("Deleted: sha256:"),
        "{out}"
    );
    assert_eq!(
        fs::read_dir(&layers_dir).unwrap().count(),
        2,
        "a's own layer goes, the shared base stays"
    );
    let store = Store::open(&image_root(&root)).unwrap();
    let b_image = store.resolve("app/b:1").unwrap();
    assert!(
        layers_dir
            .join(b_image.layers[0].chain_id.hex())
            .join("fs/base")
            .is_file()
    );
    assert_store_consistent(&root);

    let err = fails(berth(&root).args(["image", "rm", "app/a:1"]));
    assert!(err.contains("no such image: app/a:1"), "{err}");

    ok(berth(&root).args(["image", "prune", "--all"]));
    assert!(ls_json(&root).is_empty());
    assert_eq!(fs::read_dir(&layers_dir).unwrap().count(), 0);
    assert_eq!(
        fs::read_dir(image_root(&root).join("blobs/sha256"))
            .unwrap()
            .count(),
        0
    );
}

#[test]
fn an_image_a_container_uses_is_not_removed_without_force() {
    let work = tempfile::tempdir().unwrap();
    let dir = Image {
        layers: vec![oci::tar(&[file("f", "x")])],
        ..Image::default()
    }
    .write(&work.path().join("layout"));
    let root = work.path().join("root");
    import_as(&root, &dir, "used:1");
    let store = Store::open(&image_root(&root)).unwrap();
    let image = store.resolve("used:1").unwrap();
    store.prepare_rootfs("ctr-user", &image).unwrap();

    let err = fails(berth(&root).args(["image", "rm", "used:1"]));
    assert!(err.contains("used by container(s) ctr-user"), "{err}");
    ok(berth(&root).args(["image", "prune", "-a"]));
    assert_eq!(ls_json(&root).len(), 1, "prune keeps an image in use");

    ok(berth(&root).args(["image", "rm", "--force", "used:1"]));
    let chain = image.layers[0].chain_id.hex().to_owned();
    assert!(
        image_root(&root)
            .join("layers/sha256")
            .join(&chain)
            .is_dir(),
        "the container's layers stay while it exists"
    );
    store.remove_rootfs("ctr-user").unwrap();
    ok(berth(&root).args(["image", "prune"]));
    assert!(
        !image_root(&root)
            .join("layers/sha256")
            .join(&chain)
            .exists()
    );
}

/// A layer big enough that an import takes a noticeable time: 48 MiB of incompressible data.
fn big_image(dir: &Path) -> PathBuf {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let data: Vec<u8> = (0..48 * 1024 * 1024 / 8)
        .flat_map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state.to_le_bytes()
        })
        .collect();
    Image {
        layers: vec![oci::tar(&[Entry::File("big", data)])],
        ..Image::default()
    }
    .write(dir)
}

#[test]
fn two_concurrent_imports_of_one_image_both_succeed_and_store_it_once() {
    let work = tempfile::tempdir().unwrap();
    let dir = big_image(&work.path().join("layout"));
    let root = work.path().join("root");
    let spawn = |name: &str| {
        berth(&root)
            .args(["image", "import"])
            .arg(&dir)
            .args(["--name", name])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = spawn("race:a");
    let second = spawn("race:b");
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let images = ls_json(&root);
    assert_eq!(images.len(), 1);
    assert_eq!(images[0]["Names"].as_array().unwrap().len(), 2);
    assert_eq!(
        fs::read_dir(image_root(&root).join("layers/sha256"))
            .unwrap()
            .count(),
        1
    );
    assert_store_consistent(&root);
    assert_eq!(tmp_entries(&root), 0);
}

#[test]
fn kill_9_during_import_leaves_a_consistent_store_that_cleans_up_and_imports_again() {
    let work = tempfile::tempdir().unwrap();
    let dir = big_image(&work.path().join("layout"));
    let root = work.path().join("root");
    // Create the store first so the scratch directory can be watched.
    ok(berth(&root).args(["image", "ls"]));
    let mut child = berth(&root)
        .args(["image", "import"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tmp_entries(&root) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(30));
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(
        !status.success(),
        "the import was killed before it finished"
    );

    assert_store_consistent(&root);
    assert!(
        ls_json(&root).is_empty(),
        "a killed import records no image"
    );
    assert_eq!(
        tmp_entries(&root),
        0,
        "the next command removes the dead import's scratch space"
    );

    import_as(&root, &dir, "after-crash:1");
    assert_eq!(ls_json(&root).len(), 1);
    assert_store_consistent(&root);
}
