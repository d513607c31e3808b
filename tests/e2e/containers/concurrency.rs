//! Many containers at once: fifty started and removed concurrently leave nothing behind.

use std::thread;

use super::run_detached;
use crate::support::daemon::{Daemon, IMAGE, cgroup_dirs, processes_mentioning};

const CONTAINERS: usize = 50;
const CLIENTS: usize = 10;

#[test]
fn fifty_containers_started_and_removed_concurrently_leave_nothing() {
    let daemon = Daemon::start();
    let ids: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let daemon = &daemon;
                scope.spawn(move || {
                    (client..CONTAINERS)
                        .step_by(CLIENTS)
                        .map(|n| {
                            let name = format!("many{n}");
                            run_detached(daemon, &["--name", &name, IMAGE, "sleep", "1000"])
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let running = daemon.ok(&["ps", "-q", "--no-trunc"]);
    let mut listed: Vec<&str> = running.lines().collect();
    listed.sort_unstable();
    let mut expected: Vec<&str> = ids.iter().map(String::as_str).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected);

    thread::scope(|scope| {
        for chunk in ids.chunks(CONTAINERS / CLIENTS) {
            let daemon = &daemon;
            scope.spawn(move || {
                for id in chunk {
                    daemon.ok(&["rm", "-f", id]);
                }
            });
        }
    });
    daemon.assert_empty();
    for id in &ids {
        daemon.assert_nothing_left(id);
        for dir in cgroup_dirs(id) {
            assert!(!dir.exists(), "{}", dir.display());
        }
        assert!(processes_mentioning(id).is_empty());
    }
}
