//! The follower's election timer: a member stands for election once the leader it follows has
//! been silent for the election timeout `t` plus a random part of up to a tenth of `t` (ADR
//! 0705).
//!
//! openraft 0.9 has a timer of its own, and it stays as the fallback (a member that never heard
//! a leader, a candidate whose election failed). It looks only on its tick, every 1.5 heartbeat
//! intervals, and draws its random timeout once per process, so on its own a follower stood
//! `[t, 1.2t)` plus up to 150 ms after the leader fell silent. This timer sleeps until its own
//! deadline, and draws a new random part every time the leader is heard.
//!
//! A follower never stands earlier than `t` after it last heard its leader: the instant kept is
//! taken after openraft has handled the leader's message, never before.

use std::future::Future;
use std::sync::{Mutex, PoisonError, Weak};
use std::time::Duration;

use openraft::{ServerState, Vote};
use tokio::sync::watch;
use tokio::time::Instant;

use super::Node;

/// When this member last heard the leader it follows, and when it stands if it hears nothing
/// more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Heard {
    leader: u64,
    term: u64,
    stand_at: Instant,
}

/// What the peer server tells the timer: the leader was heard.
#[derive(Debug)]
pub(crate) struct LeaderContact {
    timeout: Duration,
    last: Mutex<Option<Heard>>,
}

impl LeaderContact {
    /// `timeout` is the election timeout `t`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            last: Mutex::new(None),
        }
    }

    /// The leader of `vote` was heard just now: openraft accepted its AppendEntries or a
    /// chunk of its snapshot.
    pub(crate) fn heard(&self, vote: &Vote<u64>) {
        let Some(leader) = vote.leader_id().voted_for() else {
            return;
        };
        let jitter = self.timeout.mul_f64(rand::random::<f64>() / 10.0);
        let heard = Heard {
            leader,
            term: vote.leader_id().get_term(),
            stand_at: Instant::now() + self.timeout + jitter,
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(heard);
    }

    fn last(&self) -> Option<Heard> {
        *self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the timer needs of a member; [`Node`] in a store.
pub(crate) trait Member: Send + Sync + 'static {
    fn leader_contact(&self) -> &LeaderContact;
    /// Whether this member is a voting follower of `leader` in `term`, as raft says now.
    fn still_follows(&self, leader: u64, term: u64) -> bool;
    /// Starts an election; `false` once raft has stopped.
    fn stand(&self) -> impl Future<Output = bool> + Send;
}

/// Runs until `stop` turns true or the member is gone: sleeps until the last heard leader's
/// silence has lasted long enough, and then, if this member still follows that leader in that
/// term and is a voter, starts an election, once for that silence.
pub(crate) async fn stand_when_the_leader_is_silent<M: Member>(
    member: Weak<M>,
    mut stop: watch::Receiver<bool>,
) {
    let mut stood_for = None;
    loop {
        let wake_at = {
            let Some(member) = member.upgrade() else {
                return;
            };
            let contact = member.leader_contact();
            match contact.last() {
                Some(heard) if stood_for != Some(heard) && Instant::now() >= heard.stand_at => {
                    stood_for = Some(heard);
                    // Looked at again last: the leader may have been heard meanwhile.
                    if member.still_follows(heard.leader, heard.term)
                        && contact.last() == Some(heard)
                    {
                        tracing::info!(
                            leader = heard.leader,
                            term = heard.term,
                            "the leader has been silent for the election timeout: standing for election"
                        );
                        if !member.stand().await {
                            return;
                        }
                    }
                    Instant::now() + contact.timeout
                }
                Some(heard) if stood_for != Some(heard) => heard.stand_at,
                // Nothing heard yet, or nothing since the last stand. openraft's own timer
                // covers a member with no leader and a failed election; a leader heard from
                // now on is looked at before its deadline, since that is at least `t` away.
                _ => Instant::now() + contact.timeout,
            }
        };
        tokio::select! {
            () = tokio::time::sleep_until(wake_at) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

impl Member for Node {
    fn leader_contact(&self) -> &LeaderContact {
        &self.leader_contact
    }

    fn still_follows(&self, leader: u64, term: u64) -> bool {
        let metrics = self.raft.metrics();
        let m = metrics.borrow();
        m.state == ServerState::Follower
            && m.current_term == term
            && m.current_leader == Some(leader)
            && leader != self.member_id
            && m.membership_config
                .membership()
                .voter_ids()
                .any(|id| id == self.member_id)
    }

    async fn stand(&self) -> bool {
        self.raft.trigger().elect().await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    const T: Duration = Duration::from_millis(1000);

    /// A follower of member 7 in term 3 whose elections are counted, on tokio's paused clock.
    struct Follower {
        contact: LeaderContact,
        following: Mutex<(u64, u64)>,
        stood_at: Mutex<Vec<Instant>>,
        elections: AtomicU64,
    }

    impl Member for Follower {
        fn leader_contact(&self) -> &LeaderContact {
            &self.contact
        }
        fn still_follows(&self, leader: u64, term: u64) -> bool {
            *self.following.lock().unwrap() == (leader, term)
        }
        async fn stand(&self) -> bool {
            self.elections.fetch_add(1, Ordering::SeqCst);
            self.stood_at.lock().unwrap().push(Instant::now());
            true
        }
    }

    fn follower() -> (Arc<Follower>, watch::Sender<bool>) {
        let member = Arc::new(Follower {
            contact: LeaderContact::new(T),
            following: Mutex::new((7, 3)),
            stood_at: Mutex::new(Vec::new()),
            elections: AtomicU64::new(0),
        });
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(stand_when_the_leader_is_silent(
            Arc::downgrade(&member),
            stopped,
        ));
        (member, stop)
    }

    fn leader_7_term_3() -> Vote<u64> {
        Vote::new_committed(3, 7)
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_stands_after_t_to_eleven_tenths_t_of_silence_and_only_once() {
        let (member, _stop) = follower();
        let mut silences = Vec::new();
        for _ in 0..20 {
            // The leader speaks every 100 ms for two seconds: no election.
            for _ in 0..20 {
                member.contact.heard(&leader_7_term_3());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let before = member.elections.load(Ordering::SeqCst);
            member.contact.heard(&leader_7_term_3());
            let silent_from = Instant::now();
            // Then it falls silent for three election timeouts: one election.
            tokio::time::sleep(3 * T).await;
            assert_eq!(member.elections.load(Ordering::SeqCst), before + 1);
            let stood = *member.stood_at.lock().unwrap().last().unwrap();
            silences.push(stood - silent_from);
        }
        for silence in &silences {
            assert!(
                *silence >= T && *silence <= T + T / 10 + Duration::from_millis(1),
                "stood after {silence:?} of silence, outside [t, 1.1t]: {silences:?}"
            );
        }
        // The random part is drawn anew each time.
        let first = silences[0];
        assert!(silences.iter().any(|s| *s != first), "{silences:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_follower_of_another_leader_or_term_does_not_stand() {
        let (member, _stop) = follower();
        // Heard leader 7 in term 3, but raft has since moved on (a vote granted to another
        // candidate, say): the silence of the old leader is no reason to stand.
        member.contact.heard(&leader_7_term_3());
        *member.following.lock().unwrap() = (0, 4);
        tokio::time::sleep(5 * T).await;
        assert_eq!(member.elections.load(Ordering::SeqCst), 0);
        // Nothing heard at all: openraft's own timer is in charge.
        let (member, _stop) = follower();
        tokio::time::sleep(5 * T).await;
        assert_eq!(member.elections.load(Ordering::SeqCst), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_timer_stops_when_told() {
        let (member, stop) = follower();
        stop.send(true).unwrap();
        member.contact.heard(&leader_7_term_3());
        tokio::time::sleep(5 * T).await;
        assert_eq!(member.elections.load(Ordering::SeqCst), 0);
    }
}
