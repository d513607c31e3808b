//! Bad input to `berth image import`: hostile and broken archives get a clear error naming
//! what is wrong, and change nothing outside the store's scratch space.

use std::fs;

use super::{assert_store_consistent, image_root, ls_json, tmp_entries};
use crate::support::oci::{self, Entry, Image, file};
use crate::support::{berth, fails, fixtures, ok};

/// Imports `image` and returns berth's error output; asserts nothing was recorded and no
/// scratch space was left.
fn refused(image: &Image, extra: &[&str]) -> String {
    let work = tempfile::tempdir().unwrap();
    let dir = image.write(&work.path().join("layout"));
    let root = work.path().join("root");
    let err = fails(berth(&root).args(["image", "import"]).arg(&dir).args(extra));
    if root.join("image/VERSION").exists() {
        assert!(
            ls_json(&root).is_empty(),
            "a refused import records no image"
        );
        assert_eq!(
            tmp_entries(&root),
            0,
            "a refused import leaves no scratch space"
        );
        assert_eq!(
            fs::read_dir(image_root(&root).join("layers/sha256"))
                .unwrap()
                .count(),
            0
        );
        assert_store_consistent(&root);
    }
    err
}

fn hostile_layer(entries: &[Entry]) -> Image {
    Image {
        layers: vec![oci::tar(entries)],
        ..Image::default()
    }
}

#[test]
fn entries_with_dotdot_or_absolute_paths_are_refused() {
    let err = refused(&hostile_layer(&[file("../escape", "x")]), &[]);
    assert!(err.contains("'..' is not allowed"), "{err}");
    let err = refused(&hostile_layer(&[file("a/../../escape", "x")]), &[]);
    assert!(err.contains("'..' is not allowed"), "{err}");
    let err = refused(&hostile_layer(&[file("/etc/evil", "x")]), &[]);
    assert!(err.contains("absolute path is not allowed"), "{err}");
}

#[test]
fn symlinks_and_hardlinks_that_point_outside_the_layer_are_refused() {
    let err = refused(
        &hostile_layer(&[Entry::Symlink("link", "../../../../etc")]),
        &[],
    );
    assert!(err.contains("points outside the layer"), "{err}");
    let err = refused(
        &hostile_layer(&[Entry::Hardlink("link", "../../etc/passwd")]),
        &[],
    );
    assert!(err.contains("hardlink target with '..'"), "{err}");
    let err = refused(
        &hostile_layer(&[Entry::Hardlink("link", "etc/shadow")]),
        &[],
    );
    assert!(err.contains("not an earlier entry of this layer"), "{err}");
    let err = refused(
        &hostile_layer(&[Entry::Hardlink("link", "/etc/passwd")]),
        &[],
    );
    assert!(err.contains("absolute hardlink target"), "{err}");
}

#[test]
fn writes_through_a_symlink_are_refused_within_a_layer_and_across_layers() {
    let outside = tempfile::tempdir().unwrap();
    let target: &'static str = Box::leak(outside.path().display().to_string().into_boxed_str());

    let err = refused(
        &hostile_layer(&[Entry::Symlink("evil", target), file("evil/pwned", "x")]),
        &[],
    );
    assert!(err.contains("symlink in this layer"), "{err}");

    let two_layers = Image {
        layers: vec![
            oci::tar(&[Entry::Symlink("evil", target)]),
            oci::tar(&[file("evil/pwned", "x")]),
        ],
        ..Image::default()
    };
    let err = refused(&two_layers, &[]);
    assert!(err.contains("placed by an earlier layer"), "{err}");
    assert!(
        !outside.path().join("pwned").exists(),
        "nothing was written outside the store"
    );

    // Replacing the symlink with a real directory first is legitimate, as docker allows.
    let replaced = Image {
        layers: vec![
            oci::tar(&[Entry::Symlink("evil", target)]),
            oci::tar(&[Entry::Dir("evil/"), file("evil/fine", "x")]),
        ],
        ..Image::default()
    };
    let work = tempfile::tempdir().unwrap();
    let dir = replaced.write(&work.path().join("layout"));
    ok(berth(&work.path().join("root"))
        .args(["image", "import"])
        .arg(&dir));
    assert!(!outside.path().join("fine").exists());
}

#[test]
fn device_nodes_are_refused() {
    let err = refused(&hostile_layer(&[Entry::CharDevice("dev/mem", 1, 1)]), &[]);
    assert!(err.contains("device nodes are not allowed"), "{err}");
}

#[test]
fn a_blob_that_does_not_match_its_descriptor_is_refused() {
    let layers = vec![oci::tar(&[file("f", "content")])];
    let err = refused(
        &Image {
            layers: layers.clone(),
            corrupt_layer: true,
            ..Image::default()
        },
        &[],
    );
    assert!(err.contains("is corrupt: its content hashes to"), "{err}");
    let err = refused(
        &Image {
            layers,
            layer_size_skew: 7,
            ..Image::default()
        },
        &[],
    );
    assert!(err.contains("descriptor says"), "{err}");
}

#[test]
fn truncated_and_non_archive_files_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let layout = fixtures::umoci_two_layer_image(work.path());
    let archive = fixtures::oci_archive(&layout, &work.path().join("oci.tar"));
    let bytes = fs::read(&archive).unwrap();
    let truncated = work.path().join("truncated.tar");
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    let root = work.path().join("root");
    let err = fails(berth(&root).args(["image", "import"]).arg(&truncated));
    assert!(err.contains("truncated"), "{err}");

    let not_tar = work.path().join("notes.txt");
    fs::write(&not_tar, "just some text, not an archive\n".repeat(40)).unwrap();
    let err = fails(berth(&root).args(["image", "import"]).arg(&not_tar));
    assert!(err.contains("not a tar archive"), "{err}");

    let empty_dir = work.path().join("empty");
    fs::create_dir(&empty_dir).unwrap();
    let err = fails(berth(&root).args(["image", "import"]).arg(&empty_dir));
    assert!(err.contains("is not an image archive"), "{err}");
    assert!(ls_json(&root).is_empty());
}

#[test]
fn a_layer_that_is_not_valid_gzip_or_tar_is_refused() {
    let mut bad_gzip = oci::gzip(&oci::tar(&[file("f", &"x".repeat(10_000))]));
    bad_gzip.truncate(bad_gzip.len() / 2);
    let err = refused(
        &Image {
            layers: vec![oci::tar(&[file("f", "x")])],
            raw_layer: Some(bad_gzip),
            ..Image::default()
        },
        &[],
    );
    assert!(err.contains("is not a valid gzip stream"), "{err}");

    let not_tar = oci::gzip(&vec![0x41; 4096]);
    let err = refused(
        &Image {
            layers: vec![oci::tar(&[file("f", "x")])],
            raw_layer: Some(not_tar),
            ..Image::default()
        },
        &[],
    );
    assert!(
        err.contains("is not a valid gzip stream") || err.contains("is not a valid tar"),
        "{err}"
    );
}

#[test]
fn a_manifest_that_refers_to_a_missing_blob_is_refused() {
    let err = refused(
        &Image {
            layers: vec![oci::tar(&[file("f", "x")])],
            drop_layer: true,
            ..Image::default()
        },
        &[],
    );
    assert!(err.contains("is missing from the archive (layer)"), "{err}");
}

#[test]
fn an_unknown_layer_media_type_is_refused() {
    let err = refused(
        &Image {
            layers: vec![oci::tar(&[file("f", "x")])],
            layer_media_type: Some("application/x-mystery"),
            ..Image::default()
        },
        &[],
    );
    assert!(
        err.contains("unsupported media type \"application/x-mystery\" for layer"),
        "{err}"
    );
}

#[test]
fn an_index_without_a_linux_amd64_image_is_refused() {
    let err = refused(
        &Image {
            layers: vec![oci::tar(&[file("f", "x")])],
            platform_index: Some(("linux", "arm64")),
            ..Image::default()
        },
        &[],
    );
    assert!(
        err.contains("no linux/amd64 image (it has: linux/arm64)"),
        "{err}"
    );

    let work = tempfile::tempdir().unwrap();
    let dir = Image {
        layers: vec![oci::tar(&[file("f", "x")])],
        platform_index: Some(("linux", "amd64")),
        ..Image::default()
    }
    .write(&work.path().join("layout"));
    ok(berth(&work.path().join("root"))
        .args(["image", "import"])
        .arg(&dir)
        .args(["--name", "multi:1"]));
}

#[test]
fn a_name_that_is_not_a_valid_reference_is_refused() {
    let image = Image {
        layers: vec![oci::tar(&[file("f", "x")])],
        ..Image::default()
    };
    for (name, expected) in [
        ("Upper/Case", "must be lowercase"),
        ("bad name", "invalid reference format"),
        ("app:-tag", "invalid reference format"),
    ] {
        let err = refused(&image, &["--name", name]);
        assert!(err.contains(expected), "{name}: {err}");
    }
    let work = tempfile::tempdir().unwrap();
    let err = fails(berth(&work.path().join("root")).args(["image", "inspect", "nothing:here"]));
    assert!(err.contains("no such image: nothing:here"), "{err}");
}
