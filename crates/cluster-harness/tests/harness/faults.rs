//! The scenarios of issue #7 against etcd 3.4, and those berth's store passes so far against
//! berth (`*_berth`), on 3 members and some on 5 (`*_5`): load from 4 (or 5) recording
//! clients, a fault, then the checks of `Cluster::verify` (linearizable, no acknowledged write
//! lost, equal HashKV on every member, watch streams exactly the committed history).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use berth_cluster_harness::client::WatchRecord;
use berth_cluster_harness::client::find_leader;
use berth_cluster_harness::lincheck::{Input, Operation, Output};
use berth_cluster_harness::scenario::{Cluster, ScenarioError};
use tokio::time::{Instant, sleep};

use super::support::{Load, MEMBERS, Store, command, spawn_watcher, start_cluster, verify};

const LOAD: Duration = Duration::from_secs(4);

async fn leader(cluster: &Cluster) -> usize {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(leader) = find_leader(&cluster.endpoints).await {
            return leader;
        }
        assert!(Instant::now() < deadline, "no leader elected");
        sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `fault` while the load and one watcher (starting on the leader or on member 0) run,
/// then verifies everything.
async fn scenario(
    seed: u64,
    watch_leader: bool,
    fault: impl AsyncFnOnce(&mut Cluster),
) -> (Cluster, Vec<Operation>, WatchRecord) {
    scenario_on(Store::Etcd, seed, watch_leader, fault).await
}

async fn scenario_on(
    store: Store,
    seed: u64,
    watch_leader: bool,
    fault: impl AsyncFnOnce(&mut Cluster),
) -> (Cluster, Vec<Operation>, WatchRecord) {
    scenario_sized(store, MEMBERS, seed, watch_leader, fault).await
}

async fn scenario_sized(
    store: Store,
    members: usize,
    seed: u64,
    watch_leader: bool,
    fault: impl AsyncFnOnce(&mut Cluster),
) -> (Cluster, Vec<Operation>, WatchRecord) {
    let mut cluster = start_cluster(store, members).await;
    let start = cluster
        .revision(Duration::from_secs(30))
        .await
        .expect("revision")
        + 1;
    let until = Arc::new(AtomicI64::new(i64::MAX));
    let first = if watch_leader {
        leader(&cluster).await
    } else {
        0
    };
    let watcher = spawn_watcher(&cluster, first, start, until.clone());
    let load = Load::start(&cluster, LOAD, seed).await;
    fault(&mut cluster).await;
    let ops = load.finish().await;
    for i in 0..cluster.endpoints.len() {
        if let Some(status) = cluster.hosts.exited(i) {
            let log = std::fs::read_to_string(cluster.hosts.log_path(i)).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(10).collect();
            panic!("member {i} ended by itself during the scenario: {status}; log tail: {tail:#?}");
        }
    }
    cluster
        .wait_ready(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    until.store(
        cluster
            .revision(Duration::from_secs(30))
            .await
            .expect("final revision"),
        Ordering::SeqCst,
    );
    let record = watcher.await.expect("watcher");
    eprintln!(
        "watcher from member {first}: revisions {start}..={}, {} events, {} reconnects",
        record.until,
        record.events.len(),
        record.reconnects
    );
    verify(&cluster, &ops, std::slice::from_ref(&record)).await;
    (cluster, ops, record)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steady_load_is_linearizable_and_members_agree() {
    let (cluster, ops, record) = scenario(1, false, async |_| {}).await;

    // The same checks fail on a doctored history: they are not vacuous.
    let mut lost = ops.clone();
    let acked = lost
        .iter_mut()
        .find(|op| matches!(op.output, Output::Put { .. }))
        .expect("an acknowledged put");
    acked.input = Input::Put {
        key: acked.input.key().to_owned(),
        value: "never written".into(),
    };
    let err = cluster
        .verify(&lost, &[])
        .await
        .expect_err("a put nobody wrote");
    assert!(
        matches!(
            err,
            ScenarioError::NotLinearizable(_) | ScenarioError::LostWrite(_)
        ),
        "{err}"
    );
    let mut gap = record.clone();
    gap.events.remove(gap.events.len() / 2);
    let err = cluster
        .verify(&ops, &[gap])
        .await
        .expect_err("a watch stream with a gap");
    assert!(matches!(err, ScenarioError::Watch(_)), "{err}");
}

async fn kill_the_leader_and_restart(cluster: &mut Cluster) {
    sleep(Duration::from_secs(1)).await;
    let victim = leader(cluster).await;
    cluster.hosts.kill9(victim).expect("kill -9 the leader");
    sleep(Duration::from_millis(1500)).await;
    cluster
        .hosts
        .restart(victim)
        .expect("restart the old leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_kill_9_and_restart() {
    scenario(2, false, kill_the_leader_and_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_kill_9_and_restart_berth() {
    scenario_on(Store::Berth, 2, false, kill_the_leader_and_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_kill_9_and_restart_5() {
    scenario_sized(Store::Etcd, 5, 12, false, kill_the_leader_and_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_leader_kill_9_and_restart_berth_5() {
    scenario_sized(Store::Berth, 5, 12, false, kill_the_leader_and_restart).await;
}

async fn pause_the_leader(cluster: &mut Cluster) {
    sleep(Duration::from_secs(1)).await;
    let victim = leader(cluster).await;
    cluster.hosts.pause(victim).expect("SIGSTOP the leader");
    sleep(Duration::from_secs(2)).await;
    cluster.hosts.resume(victim).expect("SIGCONT the leader");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_sigstop_then_sigcont_stays_linearizable() {
    scenario(5, false, pause_the_leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_sigstop_then_sigcont_stays_linearizable_berth() {
    scenario_on(Store::Berth, 5, false, pause_the_leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_sigstop_then_sigcont_stays_linearizable_5() {
    scenario_sized(Store::Etcd, 5, 5, false, pause_the_leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_leader_sigstop_then_sigcont_stays_linearizable_berth_5() {
    scenario_sized(Store::Berth, 5, 5, false, pause_the_leader).await;
}

/// Every fsync of the leader's process returns 100 ms late for 2 s under load; the strace
/// that delays them must have delayed some.
async fn slow_disk_on_the_leader(store: Store, members: usize) {
    let mut delayed = String::new();
    scenario_sized(store, members, 6, false, async |cluster: &mut Cluster| {
        sleep(Duration::from_secs(1)).await;
        let victim = leader(cluster).await;
        cluster
            .hosts
            .slow_disk(victim, Duration::from_millis(100))
            .expect("slow the leader's disk");
        sleep(Duration::from_secs(2)).await;
        cluster
            .hosts
            .clear_slow_disk(victim)
            .expect("disk back to speed");
        delayed =
            std::fs::read_to_string(cluster.hosts.slow_disk_trace(victim)).unwrap_or_default();
    })
    .await;
    assert!(
        delayed.contains("DELAYED"),
        "no fsync was delayed; strace wrote:\n{delayed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_disk_on_the_leader_stays_linearizable() {
    slow_disk_on_the_leader(Store::Etcd, MEMBERS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_disk_on_the_leader_stays_linearizable_berth() {
    slow_disk_on_the_leader(Store::Berth, MEMBERS).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_disk_on_the_leader_stays_linearizable_5() {
    slow_disk_on_the_leader(Store::Etcd, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_disk_on_the_leader_stays_linearizable_berth_5() {
    slow_disk_on_the_leader(Store::Berth, 5).await;
}

async fn isolate_a_follower(cluster: &mut Cluster) {
    sleep(Duration::from_secs(1)).await;
    let leader = leader(cluster).await;
    let follower = (leader + 1) % cluster.endpoints.len();
    cluster
        .hosts
        .partition(&[&[follower]])
        .expect("isolate a follower");
    sleep(Duration::from_secs(2)).await;
    cluster.hosts.heal().expect("heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_follower_serves_no_stale_reads() {
    // The classic bug: a cut-off follower answering reads from its own, aging, state.
    scenario(7, false, isolate_a_follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_follower_serves_no_stale_reads_berth() {
    scenario_on(Store::Berth, 7, false, isolate_a_follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_follower_serves_no_stale_reads_5() {
    scenario_sized(Store::Etcd, 5, 7, false, isolate_a_follower).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_follower_serves_no_stale_reads_berth_5() {
    scenario_sized(Store::Berth, 5, 7, false, isolate_a_follower).await;
}

async fn isolate_the_leader(cluster: &mut Cluster) {
    sleep(Duration::from_secs(1)).await;
    let victim = leader(cluster).await;
    cluster.hosts.isolate(victim).expect("isolate the leader");
    sleep(Duration::from_secs(2)).await;
    cluster.hosts.heal().expect("heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_minority_then_heal_stays_linearizable() {
    scenario(3, false, isolate_the_leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_minority_then_heal_stays_linearizable_berth() {
    scenario_on(Store::Berth, 3, false, isolate_the_leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_minority_then_heal_stays_linearizable_5() {
    scenario_sized(Store::Etcd, 5, 3, false, isolate_the_leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn isolated_leader_minority_then_heal_stays_linearizable_berth_5() {
    scenario_sized(Store::Berth, 5, 3, false, isolate_the_leader).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_on_the_killed_leader_resumes_without_gaps_or_duplicates() {
    scenario(4, true, kill_the_leader_and_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_on_the_killed_leader_resumes_without_gaps_or_duplicates_berth() {
    scenario_on(Store::Berth, 4, true, kill_the_leader_and_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_on_the_killed_leader_resumes_without_gaps_or_duplicates_5() {
    scenario_sized(Store::Etcd, 5, 4, true, kill_the_leader_and_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_on_the_killed_leader_resumes_without_gaps_or_duplicates_berth_5() {
    scenario_sized(Store::Berth, 5, 4, true, kill_the_leader_and_restart).await;
}

/// The leader and as many others as make a minority on one side, the rest on the other; or,
/// with `leader_in_majority`, a minority of followers cut off from the leader's majority.
async fn split(cluster: &mut Cluster, leader_in_majority: bool) {
    sleep(Duration::from_secs(1)).await;
    let leader = leader(cluster).await;
    let n = cluster.endpoints.len();
    let minority_size = (n - 1) / 2;
    let followers: Vec<usize> = (0..n).filter(|&i| i != leader).collect();
    let minority: Vec<usize> = if leader_in_majority {
        followers[..minority_size].to_vec()
    } else {
        std::iter::once(leader)
            .chain(followers[..minority_size - 1].iter().copied())
            .collect()
    };
    let majority: Vec<usize> = (0..n).filter(|i| !minority.contains(i)).collect();
    cluster
        .hosts
        .partition(&[&minority, &majority])
        .expect("partition");
    sleep(Duration::from_secs(2)).await;
    cluster.hosts.heal().expect("heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_leader_in_minority_partition_5() {
    scenario_sized(Store::Etcd, 5, 8, false, async |c| split(c, false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_leader_in_minority_partition_berth_5() {
    scenario_sized(Store::Berth, 5, 8, false, async |c| split(c, false).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_minority_of_followers_cut_off_5() {
    scenario_sized(Store::Etcd, 5, 9, false, async |c| split(c, true).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_minority_of_followers_cut_off_berth_5() {
    scenario_sized(Store::Berth, 5, 9, false, async |c| split(c, true).await).await;
}

/// Every member drops a fifth of the packets it sends and receives, clients' included, for 3 s
/// under load, then the links heal: the loss half of a netem fault (this kernel has no
/// `sch_netem`, so no delay), through iptables' `statistic` match.
async fn lossy_links(cluster: &mut Cluster) {
    sleep(Duration::from_secs(1)).await;
    for i in 0..cluster.endpoints.len() {
        cluster.hosts.lossy(i, 20.0).expect("a lossy link");
    }
    sleep(Duration::from_secs(3)).await;
    cluster.hosts.heal().expect("heal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_links_on_every_member_stay_linearizable() {
    scenario(13, false, lossy_links).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_links_on_every_member_stay_linearizable_berth() {
    scenario_on(Store::Berth, 13, false, lossy_links).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_links_on_every_member_stay_linearizable_5() {
    scenario_sized(Store::Etcd, 5, 13, false, lossy_links).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_links_on_every_member_stay_linearizable_berth_5() {
    scenario_sized(Store::Berth, 5, 13, false, lossy_links).await;
}

/// Every member's link slowed to 128 kbit/s for 3 s under load (a `tbf` qdisc: up to half a
/// second of queue, so delays grow with the traffic behind each packet, heartbeats included),
/// then cleared: the delay half of a netem fault, as this kernel allows it.
async fn slow_links(cluster: &mut Cluster) {
    sleep(Duration::from_secs(1)).await;
    for i in 0..cluster.endpoints.len() {
        cluster.hosts.slow_link(i, 128).expect("a slow link");
    }
    sleep(Duration::from_secs(3)).await;
    for i in 0..cluster.endpoints.len() {
        cluster.hosts.clear_qdisc(i).expect("clear the slow link");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_links_on_every_member_stay_linearizable() {
    scenario(14, false, slow_links).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_links_on_every_member_stay_linearizable_berth() {
    scenario_on(Store::Berth, 14, false, slow_links).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_links_on_every_member_stay_linearizable_5() {
    scenario_sized(Store::Etcd, 5, 14, false, slow_links).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_links_on_every_member_stay_linearizable_berth_5() {
    scenario_sized(Store::Berth, 5, 14, false, slow_links).await;
}

/// Every member in turn killed and started again on its data, each back before the next.
async fn rolling_restart(cluster: &mut Cluster) {
    sleep(Duration::from_millis(500)).await;
    for i in 0..cluster.endpoints.len() {
        cluster.hosts.kill9(i).expect("kill -9");
        sleep(Duration::from_millis(300)).await;
        cluster.hosts.restart(i).expect("restart");
        cluster
            .wait_ready(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("after restarting member {i}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_every_member() {
    scenario(10, false, rolling_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_every_member_berth() {
    scenario_on(Store::Berth, 10, false, rolling_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_every_member_5() {
    scenario_sized(Store::Etcd, 5, 10, false, rolling_restart).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_restart_of_every_member_berth_5() {
    scenario_sized(Store::Berth, 5, 10, false, rolling_restart).await;
}

/// A follower is replaced by a fresh member (new peer URL, empty data directory) while the
/// load runs; the checks then include the new member's HashKV.
async fn replace_a_follower(cluster: &mut Cluster, store: Store) {
    sleep(Duration::from_secs(1)).await;
    let leader = leader(cluster).await;
    let victim = (leader + 1) % cluster.endpoints.len();
    cluster
        .replace_member(victim, 2390, command(store).as_ref())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_replace_converges_and_loses_nothing() {
    scenario(11, false, async |c| {
        replace_a_follower(c, Store::Etcd).await
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_replace_converges_and_loses_nothing_berth() {
    scenario_on(Store::Berth, 11, false, async |c| {
        replace_a_follower(c, Store::Berth).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_replace_converges_and_loses_nothing_5() {
    scenario_sized(Store::Etcd, 5, 11, false, async |c| {
        replace_a_follower(c, Store::Etcd).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_replace_converges_and_loses_nothing_berth_5() {
    scenario_sized(Store::Berth, 5, 11, false, async |c| {
        replace_a_follower(c, Store::Berth).await;
    })
    .await;
}
