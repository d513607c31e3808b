//! The contract every [`CniExec`] keeps, run against [`PluginExec`] (Debian's plugins, in a
//! real pinned namespace: root) and [`FakeExec`], so tests built on the fake hold for the
//! real thing.

use super::{CniError, CniExec, Command, FakeExec, Invocation, PluginExec};
use crate::netns;

const LOOPBACK: &[u8] = br#"{"cniVersion":"1.0.0","name":"contract","type":"loopback"}"#;

/// Unpins the namespace even when an assertion fails.
struct Pinned(std::path::PathBuf);

impl Drop for Pinned {
    fn drop(&mut self) {
        // Best effort: a failing removal must not hide the assertion that failed.
        let _ = netns::remove(&self.0);
    }
}

fn contract(exec: &dyn CniExec) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ns = dir.path().join("ns");
    netns::create(&ns).expect("netns");
    let _pinned = Pinned(ns.clone());
    let inv = Invocation {
        container_id: "contract".to_owned(),
        netns: Some(ns.clone()),
        ifname: "lo".to_owned(),
        args: String::new(),
    };

    let out = exec
        .exec("loopback", Command::Add, &inv, LOOPBACK)
        .expect("ADD");
    let result: serde_json::Value = serde_json::from_slice(&out).expect("ADD answers JSON");
    assert_eq!(result["cniVersion"], "1.0.0", "{result}");

    exec.exec("loopback", Command::Del, &inv, LOOPBACK)
        .expect("DEL");
    exec.exec("loopback", Command::Del, &inv, LOOPBACK)
        .expect("a second DEL is not an error");
    let gone = Invocation {
        netns: None,
        ..inv.clone()
    };
    exec.exec("loopback", Command::Del, &gone, LOOPBACK)
        .expect("DEL without a namespace");

    let err = exec
        .exec("no-such-plugin", Command::Add, &inv, LOOPBACK)
        .unwrap_err();
    assert!(matches!(err, CniError::NotFound { .. }), "{err}");
}

#[test]
fn the_real_plugins_keep_the_contract() {
    contract(&PluginExec::default());
}

#[test]
fn the_fake_keeps_the_contract() {
    contract(&FakeExec::default());
}
