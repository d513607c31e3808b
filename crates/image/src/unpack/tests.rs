use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::*;

#[test]
fn relative_symlinks_that_climb_out_of_the_layer_escape() {
    assert!(escapes(Path::new("a"), Path::new("../etc")));
    assert!(escapes(Path::new("a/b"), Path::new("../../x")));
    assert!(escapes(Path::new("a/b"), Path::new("x/../../../y")));
    assert!(!escapes(Path::new("a/b"), Path::new("../x")));
    assert!(!escapes(Path::new("usr/bin/sh"), Path::new("busybox")));
    assert!(!escapes(Path::new("bin"), Path::new("/usr/bin")));
    assert!(!escapes(Path::new("a/b"), Path::new("./../c/./d")));
}

/// What a generated tar entry is.
#[derive(Debug, Clone)]
enum Kind {
    File,
    Dir,
    Symlink(String),
    Hardlink(String),
}

/// Path pieces an attacker would combine, weighted so that entries often collide.
fn component() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("a"),
        3 => Just("b"),
        1 => Just(".."),
        1 => Just("."),
        1 => Just(""),
        1 => Just(".wh.a"),
        1 => Just(".wh..wh..opq"),
    ]
}

fn path() -> impl Strategy<Value = String> {
    (
        prop::bool::weighted(0.1),
        prop::collection::vec(component(), 1..4),
    )
        .prop_map(|(absolute, parts)| {
            let joined = parts.join("/");
            if absolute {
                format!("/{joined}")
            } else {
                joined
            }
        })
}

fn entry() -> impl Strategy<Value = (String, Kind)> {
    // `@OUT` stands for the absolute path of the sentinel directory outside the layer.
    let target = prop_oneof![
        2 => path(),
        2 => Just("@OUT".to_owned()),
        1 => Just("@OUT/x".to_owned()),
    ];
    let kind = prop_oneof![
        Just(Kind::File),
        Just(Kind::Dir),
        target.clone().prop_map(Kind::Symlink),
        target.prop_map(Kind::Hardlink),
    ];
    (path(), kind)
}

/// A tar of the entries with their names written verbatim (the tar crate's own path setters
/// would refuse the hostile ones).
fn tar_of(entries: &[(String, Kind)], outside: &Path) -> Vec<u8> {
    let outside = outside.display().to_string();
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind) in entries {
        let mut header = tar::Header::new_ustar();
        let raw = &mut header.as_old_mut().name;
        let len = name.len().min(raw.len());
        raw[..len].copy_from_slice(&name.as_bytes()[..len]);
        let (entry_type, link, data): (_, String, &[u8]) = match kind {
            Kind::File => (EntryType::Regular, String::new(), b"payload"),
            Kind::Dir => (EntryType::Directory, String::new(), b""),
            Kind::Symlink(target) => (EntryType::Symlink, target.replace("@OUT", &outside), b""),
            Kind::Hardlink(target) => (EntryType::Link, target.replace("@OUT", &outside), b""),
        };
        header.set_entry_type(entry_type);
        let raw_link = &mut header.as_old_mut().linkname;
        let len = link.len().min(raw_link.len());
        raw_link[..len].copy_from_slice(&link.as_bytes()[..len]);
        header.set_mode(0o755);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        header.set_cksum();
        builder.append(&header, data).unwrap();
    }
    builder.into_inner().unwrap()
}

/// Every path under `dir`, not following symlinks.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.clone());
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            walk(&path, out);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Whatever the archive holds, an unpack creates nothing outside the layer directory,
    /// leaves no relative symlink that climbs out of it, and does not panic.
    #[test]
    fn no_archive_writes_outside_the_layer(entries in prop::collection::vec(entry(), 1..12)) {
        let sandbox = tempfile::tempdir().unwrap();
        let dest = sandbox.path().join("layer");
        let outside = sandbox.path().join("outside");
        fs::create_dir(&dest).unwrap();
        fs::create_dir(&outside).unwrap();
        // A lower layer whose symlink points at the sentinel, as an earlier layer could.
        let lower = sandbox.path().join("lower");
        fs::create_dir(&lower).unwrap();
        std::os::unix::fs::symlink(&outside, lower.join("a")).unwrap();

        let tar = tar_of(&entries, &outside);
        let digest = Digest::of(&tar);
        let _ = unpack(&mut &tar[..], &dest, &[lower], &digest, Policy::default());

        prop_assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
        let mut top: Vec<_> = fs::read_dir(sandbox.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        top.sort();
        prop_assert_eq!(top, vec!["layer", "lower", "outside"]);
        let mut all = Vec::new();
        walk(&dest, &mut all);
        for path in all {
            if let Ok(target) = fs::read_link(&path) {
                let rel = path.strip_prefix(&dest).unwrap();
                prop_assert!(!escapes(rel, &target), "{} -> {}", rel.display(), target.display());
            }
        }
    }
}

#[test]
fn a_file_written_through_a_symlink_of_the_same_layer_is_refused() {
    let sandbox = tempfile::tempdir().unwrap();
    let dest = sandbox.path().join("layer");
    let outside = sandbox.path().join("outside");
    fs::create_dir(&dest).unwrap();
    fs::create_dir(&outside).unwrap();
    let entries = [
        ("a".to_owned(), Kind::Symlink("@OUT".into())),
        ("a/b".to_owned(), Kind::File),
    ];
    let tar = tar_of(&entries, &outside);
    let digest = Digest::of(&tar);
    let err = unpack(&mut &tar[..], &dest, &[], &digest, Policy::default()).unwrap_err();
    assert!(err.to_string().contains("symlink in this layer"), "{err}");
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
}
