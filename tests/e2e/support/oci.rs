//! Writes OCI image layouts by hand, including broken and hostile ones a real tool would never
//! produce: `..` paths, escaping links, device nodes, wrong digests, unknown media types.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_types::Digest;
use serde_json::{Value, json};

/// One tar entry, with its name and link target as raw bytes (nothing is validated).
#[derive(Debug, Clone)]
pub enum Entry {
    Dir(&'static str),
    File(&'static str, Vec<u8>),
    Symlink(&'static str, &'static str),
    Hardlink(&'static str, &'static str),
    CharDevice(&'static str, u32, u32),
}

pub fn file(name: &'static str, content: &str) -> Entry {
    Entry::File(name, content.as_bytes().to_vec())
}

/// A tar archive of `entries`, exactly as given.
pub fn tar(entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (name, kind, link, data): (&str, u8, &str, &[u8]) = match entry {
            Entry::Dir(name) => (name, b'5', "", &[]),
            Entry::File(name, data) => (name, b'0', "", data),
            Entry::Symlink(name, target) => (name, b'2', target, &[]),
            Entry::Hardlink(name, target) => (name, b'1', target, &[]),
            Entry::CharDevice(name, _, _) => (name, b'3', "", &[]),
        };
        let mut header = [0u8; 512];
        header[..name.len()].copy_from_slice(name.as_bytes());
        let mode = if kind == b'5' { "0000755" } else { "0000644" };
        header[100..107].copy_from_slice(mode.as_bytes());
        header[108..115].copy_from_slice(b"0000000");
        header[116..123].copy_from_slice(b"0000000");
        header[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        header[136..147].copy_from_slice(b"14000000000");
        header[156] = kind;
        header[157..157 + link.len()].copy_from_slice(link.as_bytes());
        header[257..263].copy_from_slice(b"ustar\0");
        header[263..265].copy_from_slice(b"00");
        if let Entry::CharDevice(_, major, minor) = entry {
            header[329..336].copy_from_slice(format!("{major:07o}").as_bytes());
            header[337..344].copy_from_slice(format!("{minor:07o}").as_bytes());
        }
        header[148..156].copy_from_slice(b"        ");
        let sum: u32 = header.iter().map(|&b| u32::from(b)).sum();
        header[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// How a layer blob is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Gzip,
    Zstd,
    Plain,
}

impl Encoding {
    fn encode(self, tar: &[u8]) -> (Vec<u8>, &'static str) {
        match self {
            Self::Gzip => (gzip(tar), "application/vnd.oci.image.layer.v1.tar+gzip"),
            Self::Zstd => (
                zstd::encode_all(tar, 3).unwrap(),
                "application/vnd.oci.image.layer.v1.tar+zstd",
            ),
            Self::Plain => (tar.to_vec(), "application/vnd.oci.image.layer.v1.tar"),
        }
    }
}

/// An image to write as an OCI layout, with knobs to break it.
#[derive(Debug, Clone)]
pub struct Image {
    /// Uncompressed layer tars, bottom first.
    pub layers: Vec<Vec<u8>>,
    /// Encoding of each layer; gzip where none is given.
    pub encodings: Vec<Encoding>,
    pub cmd: Vec<&'static str>,
    pub ref_name: Option<&'static str>,
    /// Media type written for every layer instead of the gzip one.
    pub layer_media_type: Option<&'static str>,
    /// Added to the size of layer 0's descriptor.
    pub layer_size_skew: i64,
    /// Flip a byte in layer 0's blob after computing its digest.
    pub corrupt_layer: bool,
    /// Leave layer 0's blob out of the layout.
    pub drop_layer: bool,
    /// Wrap the manifest in an index whose only entry is for this platform.
    pub platform_index: Option<(&'static str, &'static str)>,
    /// Replace layer 0's blob with these bytes (digest and size describe them truthfully).
    pub raw_layer: Option<Vec<u8>>,
}

impl Default for Image {
    fn default() -> Self {
        Self {
            layers: Vec::new(),
            encodings: Vec::new(),
            cmd: vec!["/bin/sh"],
            ref_name: Some("latest"),
            layer_media_type: None,
            layer_size_skew: 0,
            corrupt_layer: false,
            drop_layer: false,
            platform_index: None,
            raw_layer: None,
        }
    }
}

fn put_blob(dir: &Path, bytes: &[u8]) -> (Digest, u64) {
    let digest = Digest::of(bytes);
    fs::write(dir.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
    (digest, bytes.len() as u64)
}

impl Image {
    /// Writes the image as an OCI image layout in `dir` and returns `dir`.
    pub fn write(&self, dir: &Path) -> PathBuf {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let mut descriptors = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            diff_ids.push(Digest::of(layer).to_string());
            let encoding = self.encodings.get(i).copied().unwrap_or(Encoding::Gzip);
            let (encoded, media_type) = encoding.encode(layer);
            let mut blob = match (&self.raw_layer, i) {
                (Some(raw), 0) => raw.clone(),
                _ => encoded,
            };
            let digest = Digest::of(&blob);
            let size = blob.len() as i64 + if i == 0 { self.layer_size_skew } else { 0 };
            if i == 0 && self.corrupt_layer {
                let last = blob.len() - 10;
                blob[last] ^= 0xff;
            }
            if !(i == 0 && self.drop_layer) {
                fs::write(dir.join("blobs/sha256").join(digest.hex()), &blob).unwrap();
            }
            descriptors.push(json!({
                "mediaType": self.layer_media_type.unwrap_or(media_type),
                "digest": digest.to_string(),
                "size": size,
            }));
        }
        let config = json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Cmd": self.cmd, "Env": ["PATH=/bin"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        });
        let (config_digest, config_size) = put_blob(dir, &serde_json::to_vec(&config).unwrap());
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config_digest.to_string(),
                "size": config_size,
            },
            "layers": descriptors,
        });
        let (manifest_digest, manifest_size) =
            put_blob(dir, &serde_json::to_vec(&manifest).unwrap());
        let mut top = json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest.to_string(),
            "size": manifest_size,
        });
        if let Some((os, arch)) = self.platform_index {
            top["platform"] = json!({ "os": os, "architecture": arch });
            let nested = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "manifests": [top],
            });
            let (digest, size) = put_blob(dir, &serde_json::to_vec(&nested).unwrap());
            top = json!({
                "mediaType": "application/vnd.oci.image.index.v1+json",
                "digest": digest.to_string(),
                "size": size,
            });
        }
        if let Some(name) = self.ref_name {
            top["annotations"] = json!({ "org.opencontainers.image.ref.name": name });
        }
        let index: Value = json!({ "schemaVersion": 2, "manifests": [top] });
        fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
        dir.to_path_buf()
    }
}
