//! Bridged containers leave nothing behind (issue #5): fifty started and removed
//! concurrently, then a daemon killed with SIGKILL while twenty more are being started;
//! after a restart and their removal no veth, lease, iptables or nftables rule, record or
//! namespace is left.

use std::thread;
use std::time::{Duration, Instant};

use super::network::assert_no_network_state;
use super::{all_ids, remove_concurrently, run_concurrently};
use crate::support::daemon::{Daemon, IMAGE};

const CONTAINERS: usize = 50;
const DURING_KILL: usize = 20;
const CLIENTS: usize = 10;

/// Every `n`th container publishes a port, so berth-nat's rules are part of what must go.
const PUBLISH_EVERY: usize = 5;

fn args(n: usize) -> Vec<String> {
    let mut args = vec!["--name".to_owned(), format!("leak{n}")];
    if n.is_multiple_of(PUBLISH_EVERY) {
        args.extend(["-p".to_owned(), "80".to_owned()]);
    }
    args.extend([IMAGE.to_owned(), "sleep".to_owned(), "1000".to_owned()]);
    args
}

#[test]
fn fifty_bridged_containers_and_a_kill_9_while_starting_twenty_leave_no_network_behind() {
    let mut daemon = Daemon::start();
    let mut ids = run_concurrently(&daemon, CONTAINERS, CLIENTS, args);
    ids.sort_unstable();
    assert_eq!(all_ids(&daemon), ids, "ps -a lists the fifty");
    remove_concurrently(&daemon, &ids, CLIENTS);
    daemon.assert_empty();
    assert_no_network_state(&daemon, &ids, &[daemon.subnet()]);

    // Twenty more, and SIGKILL for the daemon once a few of them are attached.
    let attachments = daemon.root().join("attachments");
    thread::scope(|scope| {
        for client in 0..CLIENTS {
            let daemon = &daemon;
            scope.spawn(move || {
                for n in (client..DURING_KILL).step_by(CLIENTS) {
                    let args = args(CONTAINERS + n);
                    // The daemon dies under some of these: their result does not matter.
                    let _ = daemon.cli().arg("run").arg("-d").args(&args).output();
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            let attached = std::fs::read_dir(&attachments)
                .map(|d| d.flatten().filter(|e| e.path().is_dir()).count())
                .unwrap_or(0);
            if attached >= 3 {
                break;
            }
            thread::sleep(Duration::from_millis(10));
        }
        let pid = daemon.pid().expect("the daemon runs");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).expect("kill -9");
    });
    daemon.kill();
    daemon.spawn();
    let survivors = all_ids(&daemon);
    assert!(survivors.len() <= DURING_KILL, "{survivors:?}");
    remove_concurrently(&daemon, &survivors, CLIENTS);
    daemon.assert_empty();
    let mut every = ids;
    every.extend(survivors);
    assert_no_network_state(&daemon, &every, &[daemon.subnet()]);
}
