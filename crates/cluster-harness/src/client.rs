//! Recording clients over the etcd v3 API (`etcd-client`), so they work against etcd and berth.
//!
//! A [`RecordingClient`] times every operation on a shared [`Clock`] and appends it to a
//! [`History`]: the invocation instant before the request, the completion instant after the
//! answer. An error or a timeout is an unknown outcome ([`Output::Unknown`], completion
//! [`NEVER`]): the request may have been applied. [`record_watch`] follows a watch from a start
//! revision, reconnecting to the next endpoint from the revision after the last event it got,
//! and returns the events for [`crate::watchcheck`].

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, EventType, Txn, TxnOp, WatchOptions,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::time::{Instant, sleep, timeout};

use crate::lincheck::{Clock, History, Input, NEVER, Operation, Output};
use crate::watchcheck::{Event, EventKind};

/// Connects to `endpoints` with both connect and request timeouts set to `limit`.
pub async fn connect(endpoints: &[String], limit: Duration) -> Result<Client, etcd_client::Error> {
    let options = ConnectOptions::new()
        .with_connect_timeout(limit)
        .with_timeout(limit);
    Client::connect(endpoints, Some(options)).await
}

/// How long a watch stream may stay silent before the watcher tries another member.
pub const QUIET_LIMIT: Duration = Duration::from_secs(3);

/// One sequential client whose every operation lands in a history.
pub struct RecordingClient {
    id: usize,
    client: Client,
    history: History,
    clock: Clock,
    limit: Duration,
}

impl std::fmt::Debug for RecordingClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordingClient")
            .field("id", &self.id)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl RecordingClient {
    /// A client with id `id` talking to `endpoints`; each request gets at most `limit`.
    pub async fn connect(
        id: usize,
        endpoints: &[String],
        history: History,
        clock: Clock,
        limit: Duration,
    ) -> Result<Self, etcd_client::Error> {
        Ok(RecordingClient {
            id,
            client: connect(endpoints, limit).await?,
            history,
            clock,
            limit,
        })
    }

    /// Runs `input` (a linearizable read or a write) and records it; returns its output.
    pub async fn execute(&mut self, input: Input) -> Output {
        let call = self.clock.now();
        let answer = timeout(self.limit, send(&mut self.client, &input)).await;
        let (ret, output) = match answer {
            Ok(Ok(output)) => (self.clock.now(), output),
            Ok(Err(_)) | Err(_) => (NEVER, Output::Unknown),
        };
        self.history.push(Operation {
            client: self.id,
            input,
            call,
            ret,
            output: output.clone(),
        });
        output
    }
}

async fn send(client: &mut Client, input: &Input) -> Result<Output, etcd_client::Error> {
    Ok(match input {
        Input::Get { key } => {
            let resp = client.get(key.as_str(), None).await?;
            let value = resp
                .kvs()
                .first()
                .map(|kv| String::from_utf8_lossy(kv.value()).into_owned());
            Output::Get(value)
        }
        Input::Put { key, value } => {
            let resp = client.put(key.as_str(), value.as_str(), None).await?;
            Output::Put {
                revision: resp.header().map_or(0, |h| h.revision()),
            }
        }
        Input::Delete { key } => {
            let resp = client.delete(key.as_str(), None).await?;
            Output::Delete {
                deleted: resp.deleted() > 0,
            }
        }
        Input::Cas { key, expected, new } => {
            let compare = match expected {
                Some(value) => Compare::value(key.as_str(), CompareOp::Equal, value.as_str()),
                None => Compare::version(key.as_str(), CompareOp::Equal, 0),
            };
            let txn =
                Txn::new()
                    .when([compare])
                    .and_then([TxnOp::put(key.as_str(), new.as_str(), None)]);
            Output::Cas {
                succeeded: client.txn(txn).await?.succeeded(),
            }
        }
    })
}

/// Runs random operations on `keys` until `deadline`: 50% reads, 30% puts, 5% deletes, 15%
/// compare-and-sets, every written value unique (`c<id>-<n>`). After an unknown outcome the
/// client pauses briefly, so a dead endpoint costs little.
pub async fn random_load(
    client: &mut RecordingClient,
    keys: &[String],
    deadline: Instant,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut last_read: Option<String> = None;
    let mut n = 0u64;
    while Instant::now() < deadline && !keys.is_empty() {
        n += 1;
        let key = keys[rng.random_range(0..keys.len())].clone();
        let value = format!("c{}-{n}", client.id);
        let input = match rng.random_range(0..20) {
            0..10 => Input::Get { key },
            10..16 => Input::Put { key, value },
            16 => Input::Delete { key },
            _ => Input::Cas {
                key,
                expected: last_read.clone(),
                new: value,
            },
        };
        match client.execute(input).await {
            Output::Get(value) => last_read = value,
            Output::Unknown => sleep(Duration::from_millis(100)).await,
            _ => {}
        }
    }
}

/// What one watcher received.
#[derive(Clone, Debug, Default)]
pub struct WatchRecord {
    /// The revision it asked to start from.
    pub start: i64,
    pub events: Vec<Event>,
    /// The last revision it was to reach (the history after it is not its business).
    pub until: i64,
    /// How many times it had to reconnect.
    pub reconnects: usize,
}

/// Watches `prefix` from `start` until it has seen revision `until` (which the caller may
/// lower from `i64::MAX` once it knows the last revision) or `deadline` passes, trying
/// `endpoints` in turn: after a broken stream, or one quiet for [`QUIET_LIMIT`] (a paused or
/// partitioned member sends nothing), it reconnects to the next endpoint from the revision
/// after its last event, as an etcd client library does.
pub async fn record_watch(
    endpoints: &[String],
    prefix: &str,
    start: i64,
    until: &AtomicI64,
    deadline: Instant,
) -> WatchRecord {
    let mut record = WatchRecord {
        start,
        ..WatchRecord::default()
    };
    let mut next = start;
    let mut turn = 0usize;
    let more = |next: i64| next <= until.load(Ordering::SeqCst) && Instant::now() < deadline;
    while more(next) && !endpoints.is_empty() {
        let endpoint = &endpoints[turn % endpoints.len()];
        turn += 1;
        if turn > 1 {
            record.reconnects += 1;
            sleep(Duration::from_millis(200)).await;
        }
        let Ok(mut client) = connect(std::slice::from_ref(endpoint), Duration::from_secs(2)).await
        else {
            continue;
        };
        let options = WatchOptions::new().with_prefix().with_start_revision(next);
        let Ok(Ok(mut stream)) =
            timeout(Duration::from_secs(2), client.watch(prefix, Some(options))).await
        else {
            continue;
        };
        let mut quiet_since = Instant::now();
        while more(next) && quiet_since.elapsed() < QUIET_LIMIT {
            let resp = match timeout(Duration::from_millis(250), stream.message()).await {
                Err(_) => continue,
                Ok(Ok(Some(resp))) if !resp.canceled() => resp,
                Ok(_) => break,
            };
            quiet_since = Instant::now();
            for event in resp.events() {
                let Some(kv) = event.kv() else { continue };
                if kv.mod_revision() > until.load(Ordering::SeqCst) {
                    // Past the end the caller asked for, in the same response as earlier events.
                    continue;
                }
                let kind = match event.event_type() {
                    EventType::Put => EventKind::Put,
                    EventType::Delete => EventKind::Delete,
                };
                record.events.push(Event {
                    revision: kv.mod_revision(),
                    key: String::from_utf8_lossy(kv.key()).into_owned(),
                    kind,
                    value: (kind == EventKind::Put)
                        .then(|| String::from_utf8_lossy(kv.value()).into_owned()),
                });
                next = next.max(kv.mod_revision() + 1);
            }
        }
    }
    record.until = until.load(Ordering::SeqCst);
    // An event recorded while the end was still open may lie past the end set later: a write
    // whose client gave up (an unknown outcome) can commit after the final revision was read.
    // The record covers `start..=until` only, as the committed history it is checked against.
    record.events.retain(|e| e.revision <= record.until);
    record
}

/// The index of the member that `endpoints[i]` says is the leader, asking each in turn.
pub async fn find_leader(endpoints: &[String]) -> Option<usize> {
    for (i, endpoint) in endpoints.iter().enumerate() {
        let Ok(mut client) = connect(std::slice::from_ref(endpoint), Duration::from_secs(1)).await
        else {
            continue;
        };
        let Ok(status) = client.status().await else {
            continue;
        };
        if let Some(header) = status.header()
            && status.leader() != 0
            && status.leader() == header.member_id()
        {
            return Some(i);
        }
    }
    None
}
