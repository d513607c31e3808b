//! `berth image pull` against Debian's docker-registry on loopback, with images pushed there
//! by skopeo.

mod registry;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::oci::{self, Encoding, Entry};
use crate::support::{berth, fails, fixtures, ok};
use registry::{Registry, SlowProxy};

/// Size of the random layer an interrupted pull is killed in.
const BIG_LAYER_BYTES: usize = 16 * 1024 * 1024;
/// How fast the slow proxy serves it: the download takes about two seconds.
const SLOW_BYTES_PER_SEC: usize = 8 * 1024 * 1024;
/// How long a pull may take before the test gives up on it.
const PULL_TIMEOUT: Duration = Duration::from_secs(60);

fn image_store(root: &Path) -> PathBuf {
    root.join("image")
}

fn blob_path(root: &Path, digest: &str) -> PathBuf {
    image_store(root).join("blobs/sha256").join(hex(digest))
}

fn ingest_path(root: &Path, digest: &str) -> PathBuf {
    image_store(root).join("ingest").join(hex(digest))
}

fn hex(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap()
}

/// Config digest and layer digests of the image tagged `tag` in an OCI layout.
fn layout_digests(layout: &Path, tag: &str) -> (String, Vec<String>) {
    let blob = |digest: &str| -> Value {
        serde_json::from_slice(&fs::read(layout.join("blobs/sha256").join(hex(digest))).unwrap())
            .unwrap()
    };
    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let entry = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == tag)
        .unwrap();
    let manifest = blob(entry["digest"].as_str().unwrap());
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap().to_owned())
        .collect();
    (
        manifest["config"]["digest"].as_str().unwrap().to_owned(),
        layers,
    )
}

/// The images.json record of the image named `name`.
fn recorded(root: &Path, name: &str) -> Option<Value> {
    let index: Value =
        serde_json::from_slice(&fs::read(image_store(root).join("images.json")).ok()?).unwrap();
    index["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|image| image["names"].as_array().unwrap().iter().any(|n| n == name))
        .cloned()
}

/// Bytes that gzip cannot shrink, from a fixed xorshift seed.
fn incompressible(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn pulled_image_is_stored_unpacked_and_named_by_its_reference() {
    let dir = tempfile::tempdir().unwrap();
    let layout = fixtures::umoci_two_layer_image(dir.path());
    let registry = Registry::start();
    registry.push(&layout, "v1", "app:1");
    let root = dir.path().join("root");
    let name = format!("{}/app:1", registry.host());

    let out = ok(berth(&root).args(["image", "pull", "--insecure", &name]));

    assert!(out.contains("Status: Downloaded newer image for"), "{out}");
    let (config, layers) = layout_digests(&layout, "v1");
    let image = recorded(&root, &name).expect("the image is recorded under the pulled name");
    assert_eq!(image["id"], config.as_str());
    let recorded_layers: Vec<&str> = image["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["blob"].as_str().unwrap())
        .collect();
    assert_eq!(recorded_layers, layers);
    for layer in &layers {
        assert!(
            blob_path(&root, layer).is_file(),
            "layer blob {layer} stored"
        );
    }
    let top = image["layers"][1]["chain_id"].as_str().unwrap();
    let fs_dir = image_store(&root)
        .join("layers/sha256")
        .join(hex(top))
        .join("fs");
    assert_eq!(
        fs::read_to_string(fs_dir.join("data/new")).unwrap(),
        "second layer"
    );
    assert!(
        fs::read_dir(image_store(&root).join("ingest"))
            .unwrap()
            .next()
            .is_none()
    );
}

#[test]
fn docker_schema_2_images_pull_too() {
    let dir = tempfile::tempdir().unwrap();
    let layout = fixtures::umoci_two_layer_image(dir.path());
    let registry = Registry::start();
    registry.push_as_docker(&layout, "v1", "docker:1");
    let root = dir.path().join("root");
    let name = format!("{}/docker:1", registry.host());

    ok(berth(&root).args(["image", "pull", "-q", "--insecure", &name]));

    let image = recorded(&root, &name).expect("the image is recorded");
    let manifest = blob_path(&root, image["manifest"].as_str().unwrap());
    let manifest: Value = serde_json::from_slice(&fs::read(manifest).unwrap()).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    assert_eq!(image["layers"].as_array().unwrap().len(), 2);
}

#[test]
fn second_pull_of_the_same_image_downloads_no_blob() {
    let dir = tempfile::tempdir().unwrap();
    let layout = fixtures::umoci_two_layer_image(dir.path());
    let registry = Registry::start();
    registry.push(&layout, "v1", "app:1");
    let root = dir.path().join("root");
    let name = format!("{}/app:1", registry.host());
    let (config, layers) = layout_digests(&layout, "v1");

    ok(berth(&root).args(["image", "pull", "--insecure", &name]));
    let gets_after_first: usize = layers
        .iter()
        .map(|l| registry.blob_gets(hex(l)).len())
        .sum();
    assert_eq!(gets_after_first, layers.len(), "each layer fetched once");
    let out = ok(berth(&root).args(["image", "pull", "--insecure", &name]));

    assert!(out.contains("Status: Image is up to date for"), "{out}");
    for blob in layers.iter().chain([&config]) {
        assert_eq!(
            registry.blob_gets(hex(blob)).len(),
            1,
            "{blob} fetched by the first pull only"
        );
    }
}

/// An OCI layout with one layer of incompressible data; returns it and the layer's digest.
fn big_image(dir: &Path) -> (PathBuf, String) {
    let image = oci::Image {
        layers: vec![oci::tar(&[Entry::File(
            "big",
            incompressible(BIG_LAYER_BYTES),
        )])],
        encodings: vec![Encoding::Gzip],
        ..oci::Image::default()
    };
    let layout = image.write(&dir.join("oci"));
    let (_, layers) = layout_digests(&layout, "latest");
    (layout, layers[0].clone())
}

#[test]
fn two_pulls_of_the_same_image_at_once_download_each_blob_once() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, layer) = big_image(dir.path());
    let registry = Registry::start();
    registry.push(&layout, "latest", "big:1");
    let proxy = SlowProxy::start(registry.port(), 4 * SLOW_BYTES_PER_SEC);
    let root = dir.path().join("root");
    let name = format!("{}/big:1", proxy.host());

    let pulls: Vec<_> = (0..2)
        .map(|_| {
            berth(&root)
                .args(["image", "pull", "-q", "--insecure", &name])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for pull in pulls {
        let output = pull.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    assert_eq!(
        registry.blob_gets(hex(&layer)).len(),
        1,
        "the layer was downloaded once"
    );
    assert!(blob_path(&root, &layer).is_file());
    assert!(recorded(&root, &name).is_some());
}

#[test]
fn pull_killed_mid_download_leaves_no_blob_and_the_next_pull_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (layout, layer) = big_image(dir.path());
    let layer = &layer;
    let registry = Registry::start();
    registry.push(&layout, "latest", "big:1");
    let proxy = SlowProxy::start(registry.port(), SLOW_BYTES_PER_SEC);
    let root = dir.path().join("root");

    let mut child = berth(&root)
        .args(["image", "pull", "-q", "--insecure"])
        .arg(format!("{}/big:1", proxy.host()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let partial = ingest_path(&root, layer);
    let deadline = Instant::now() + PULL_TIMEOUT;
    while fs::metadata(&partial).map_or(0, |m| m.len()) < 1024 * 1024 {
        assert!(Instant::now() < deadline, "no partial download appeared");
        assert!(
            child.try_wait().unwrap().is_none(),
            "pull ended before it was killed"
        );
        thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    drop(proxy);

    let partial_len = fs::metadata(&partial).unwrap().len();
    assert!(partial_len > 0);
    assert!(
        !blob_path(&root, layer).exists(),
        "no blob under the digest of a partial layer"
    );
    assert!(recorded(&root, &format!("{}/big:1", registry.host())).is_none());

    let name = format!("{}/big:1", registry.host());
    ok(berth(&root).args(["image", "pull", "-q", "--insecure", &name]));

    assert!(blob_path(&root, layer).is_file());
    assert!(!partial.exists(), "the finished download moved into blobs/");
    let layer_size = fs::metadata(blob_path(&root, layer)).unwrap().len();
    let resumed = registry.blob_gets(hex(layer));
    let (status, bytes) = *resumed.last().unwrap();
    assert_eq!(
        status, 206,
        "the second pull asked for the rest only: {resumed:?}"
    );
    assert!(
        bytes <= layer_size - partial_len,
        "{bytes} bytes sent after {partial_len} were kept"
    );
    assert!(recorded(&root, &name).is_some());
    assert!(
        fs::read_dir(image_store(&root).join("tmp"))
            .unwrap()
            .next()
            .is_none(),
        "scratch space cleaned"
    );
}

#[test]
fn corrupted_blob_in_the_registry_is_refused_and_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let layout = fixtures::umoci_two_layer_image(dir.path());
    let registry = Registry::start();
    registry.push(&layout, "v1", "app:1");
    let (_, layers) = layout_digests(&layout, "v1");
    let layer = &layers[0];
    let stored = registry.blob_file(hex(layer));
    let mut bytes = fs::read(&stored).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&stored, bytes).unwrap();
    let root = dir.path().join("root");
    let name = format!("{}/app:1", registry.host());

    let err = fails(berth(&root).args(["image", "pull", "--insecure", &name]));

    assert!(
        err.contains(&format!(
            "blob {layer} is corrupt: its content hashes to sha256:"
        )),
        "{err}"
    );
    assert!(!blob_path(&root, layer).exists());
    assert!(
        !ingest_path(&root, layer).exists(),
        "the corrupt download is discarded"
    );
    assert!(recorded(&root, &name).is_none());
}

#[test]
fn pulling_an_image_the_registry_does_not_have_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let name = format!("{}/nothing:1", registry.host());

    let err = fails(berth(&dir.path().join("root")).args(["image", "pull", "--insecure", &name]));

    assert!(
        err.contains(&format!("manifest for {name} not found")),
        "{err}"
    );
}

#[test]
fn pulling_an_invalid_reference_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();

    let err = fails(berth(&dir.path().join("root")).args([
        "image",
        "pull",
        "127.0.0.1:5000/Not_Lowercase:1",
    ]));

    assert!(err.contains("invalid reference format"), "{err}");
}

#[test]
fn pull_resolves_an_index_to_its_linux_amd64_manifest() {
    let dir = tempfile::tempdir().unwrap();
    let image = oci::Image {
        layers: vec![oci::tar(&[oci::file("hello", "from an index")])],
        platform_index: Some(("linux", "amd64")),
        ..oci::Image::default()
    };
    let layout = image.write(&dir.path().join("oci"));
    let registry = Registry::start();
    registry.push(&layout, "latest", "multi:1");
    let root = dir.path().join("root");
    let name = format!("{}/multi:1", registry.host());

    let out = ok(berth(&root).args(["image", "pull", "--insecure", &name]));

    let index: Value =
        serde_json::from_slice(&fs::read(layout.join("index.json")).unwrap()).unwrap();
    let index_digest = index["manifests"][0]["digest"].as_str().unwrap();
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let recorded = recorded(&root, &name).unwrap();
    let top = recorded["layers"][0]["chain_id"].as_str().unwrap();
    let file = image_store(&root)
        .join("layers/sha256")
        .join(hex(top))
        .join("fs/hello");
    assert_eq!(fs::read_to_string(file).unwrap(), "from an index");
}

#[test]
fn without_insecure_a_plain_http_registry_is_spoken_to_over_https_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::start();
    let name = format!("{}/app:1", registry.host());

    let err = fails(berth(&dir.path().join("root")).args(["image", "pull", &name]));

    assert!(
        err.contains(&format!("https://{}/v2/", registry.host())),
        "{err}"
    );
}
