//! Many containers at once: fifty started and removed concurrently leave nothing behind.

use super::{remove_concurrently, run_concurrently};
use crate::support::daemon::{Daemon, IMAGE, cgroup_dirs, processes_mentioning};

const CONTAINERS: usize = 50;
const CLIENTS: usize = 10;

#[test]
fn fifty_containers_started_and_removed_concurrently_leave_nothing() {
    let daemon = Daemon::start();
    let mut ids = run_concurrently(&daemon, CONTAINERS, CLIENTS, |n| {
        [
            format!("--name=many{n}"),
            IMAGE.into(),
            "sleep".into(),
            "1000".into(),
        ]
        .into()
    });
    ids.sort_unstable();
    let mut running: Vec<String> = daemon
        .ok(&["ps", "-q", "--no-trunc"])
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    running.sort_unstable();
    assert_eq!(running, ids, "ps lists the fifty running");
    remove_concurrently(&daemon, &ids, CLIENTS);
    daemon.assert_empty();
    for id in &ids {
        daemon.assert_nothing_left(id);
        for dir in cgroup_dirs(id) {
            assert!(!dir.exists(), "{}", dir.display());
        }
        assert!(processes_mentioning(id).is_empty());
    }
}
