//! Read-index coalescing (ADR 0704): one read-index round serves every linearizable read that
//! was waiting when it started.
//!
//! A read index is only good for the reads that arrived *before* the round that produced it
//! started. The round confirms "I still led, with commit index c, at a moment after the round
//! started"; a write acknowledged before such a read arrived is committed at or below c, so
//! waiting for c applied and reading makes the read see it. A read that arrives while a round
//! is already in flight may follow a write acknowledged after that round took its commit
//! index: joining that round could miss the write (a stale read). So such a read waits for the
//! *next* round, which starts only after the current one ends.
//!
//! Hence: at most one round in flight per [`Coalescer`]; the reads that arrive meanwhile queue
//! up, and when the round ends all of them are served by one new round. Under load that is one
//! quorum round (leader) or one ReadIndex RPC (follower) per round trip, whatever the number of
//! readers, as etcd's read-index loop batches; an idle reader pays at most one round, as before.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::error::EtcdError;

type Waiter = oneshot::Sender<Result<u64, EtcdError>>;

#[derive(Debug, Default)]
struct Queue {
    /// A round is running (its task owns the next rounds too, until the queue is empty).
    in_flight: bool,
    /// Reads that arrived since the running round started; the next round serves them.
    waiting: Vec<Waiter>,
}

/// Coalesces read-index rounds; see the module documentation.
#[derive(Debug, Clone, Default)]
pub struct Coalescer {
    queue: Arc<Mutex<Queue>>,
}

impl Coalescer {
    /// The read index of a round that started after this call: the caller's own if no round
    /// is running, else the one after the running round. `round` makes a round; the caller
    /// that finds none running hands it to the task that runs rounds until no read waits.
    pub async fn read_index<F, Fut>(&self, round: F) -> Result<u64, EtcdError>
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = Result<u64, EtcdError>> + Send,
    {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.lock();
            queue.waiting.push(tx);
            !std::mem::replace(&mut queue.in_flight, true)
        };
        if start {
            let queue = Arc::clone(&self.queue);
            // Its own task: a caller that gives up (a cancelled gRPC call) must not strand
            // the reads queued behind it.
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut queue = queue.lock().unwrap_or_else(PoisonError::into_inner);
                        if queue.waiting.is_empty() {
                            queue.in_flight = false;
                            return;
                        }
                        std::mem::take(&mut queue.waiting)
                    };
                    // Every read in `batch` arrived before this point: the round is theirs.
                    let result = round().await;
                    for waiter in batch {
                        let _ = waiter.send(result);
                    }
                }
            });
        }
        rx.await.map_err(|_| EtcdError::Stopped)?
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    /// A logical clock: every arrival and every round start takes the next tick.
    #[derive(Clone, Default)]
    struct Clock(Arc<AtomicU64>);

    impl Clock {
        fn tick(&self) -> u64 {
            self.0.fetch_add(1, Ordering::SeqCst) + 1
        }
    }

    /// A round that takes `took` and answers the tick it started at.
    fn round(
        clock: &Clock,
        rounds: &Arc<AtomicU64>,
        took: Duration,
    ) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = Result<u64, EtcdError>> + Send>>
    + Send
    + 'static {
        let (clock, rounds) = (clock.clone(), Arc::clone(rounds));
        move || {
            let started = clock.tick();
            rounds.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(took).await;
                Ok(started)
            })
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_concurrent_reads_share_few_rounds_each_started_after_the_read_arrived() {
        let coalescer = Coalescer::default();
        let clock = Clock::default();
        let rounds = Arc::new(AtomicU64::new(0));
        let mut reads = Vec::new();
        // 200 readers arriving over ~100 ms, rounds of 20 ms each.
        for i in 0..200u64 {
            let (coalescer, clock) = (coalescer.clone(), clock.clone());
            let round = round(&clock, &rounds, Duration::from_millis(20));
            reads.push(tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(i / 2)).await;
                let arrived = clock.tick();
                let served_by = coalescer.read_index(round).await.unwrap();
                (arrived, served_by)
            }));
        }
        for read in reads {
            let (arrived, served_by) = read.await.unwrap();
            assert!(
                served_by > arrived,
                "a read that arrived at tick {arrived} was served by a round started at tick \
                 {served_by}, before it arrived"
            );
        }
        let rounds = rounds.load(Ordering::SeqCst);
        // ~100 ms of arrivals / 20 ms rounds: about 6; far fewer than one per read.
        assert!(rounds <= 20, "200 reads took {rounds} rounds");
        assert!(
            rounds >= 2,
            "reads arriving during a round waited for the next one"
        );
    }

    #[tokio::test]
    async fn a_lone_read_runs_its_own_round_and_a_failed_round_fails_only_its_reads() {
        let coalescer = Coalescer::default();
        let calls = Arc::new(AtomicU64::new(0));
        let failing = {
            let calls = Arc::clone(&calls);
            move || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        Err(EtcdError::LeaderChanged)
                    } else {
                        Ok(7)
                    }
                }
            }
        };
        assert_eq!(
            coalescer.read_index(failing.clone()).await,
            Err(EtcdError::LeaderChanged)
        );
        assert_eq!(coalescer.read_index(failing).await, Ok(7));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }
}
