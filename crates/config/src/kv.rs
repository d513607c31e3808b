//! [`Kv`]: the etcd v3 client the CLI and the daemon share (the `etcd-client` crate, so it
//! speaks to berth's store and to etcd alike), with errors a person can act on.

use std::time::Duration;

use etcd_client::{
    Client, ConnectOptions, DeleteOptions, EventType, GetOptions, KeyValue, PutOptions,
    WatchOptions,
};

/// A store revision.
pub type Revision = i64;
/// A store lease's id.
pub type LeaseId = i64;

/// How long connecting to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long one request may take (a store that does not answer is reported, not waited on).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest answer accepted (a `get --prefix` over many keys).
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// Why a store request failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KvError {
    #[error(
        "the store at {endpoints} did not answer ({reason}); is `berth daemon` running (its embedded store serves http://127.0.0.1:2379 by default), or is another --endpoints meant?"
    )]
    Unreachable { endpoints: String, reason: String },
    #[error(
        "the value is too large for the store ({bytes} bytes; the store takes requests up to its --max-request-bytes, 1.5 MiB by default)"
    )]
    TooLarge { bytes: usize },
    #[error("revision {revision} has been compacted: the store no longer keeps it")]
    Compacted { revision: Revision },
    #[error("the store refused the request: {0}")]
    Store(String),
}

/// One key's value at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub create_revision: Revision,
    pub mod_revision: Revision,
    pub version: i64,
}

impl From<&KeyValue> for Entry {
    fn from(kv: &KeyValue) -> Self {
        Self {
            key: kv.key().to_vec(),
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
            version: kv.version(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Put,
    Delete,
}

/// A change seen by a watch: for a delete, `entry.value` is empty and `entry.mod_revision`
/// is the revision of the delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub entry: Entry,
}

/// A key's value now and before, newest first, from the store's MVCC history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct History {
    pub entries: Vec<Entry>,
    /// Older values exist but were compacted away.
    pub compacted: bool,
}

/// A client of one store (its endpoints).
#[derive(Clone)]
pub struct Kv {
    client: Client,
    endpoints: Vec<String>,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Kv {
    /// A client of the store at `endpoints` (`http://HOST:PORT`). Connections are made on
    /// first use, so this fails only on malformed endpoints.
    pub async fn connect(endpoints: &[String]) -> Result<Self, KvError> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT);
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|err| KvError::Unreachable {
                endpoints: endpoints.join(","),
                reason: err.to_string(),
            })?;
        Ok(Self {
            client,
            endpoints: endpoints.to_vec(),
        })
    }

    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    fn error(&self, err: etcd_client::Error, bytes: usize) -> KvError {
        map_error(&self.endpoints.join(","), err, bytes)
    }

    /// `key` (or every key with the prefix `key`) at `revision` (0: the latest), with the
    /// revision of the store the answer was read at.
    pub async fn get(
        &self,
        key: &[u8],
        prefix: bool,
        revision: Revision,
    ) -> Result<(Revision, Vec<Entry>), KvError> {
        let mut options = GetOptions::new().with_revision(revision);
        if prefix {
            options = options.with_prefix();
        }
        let answer = self
            .client
            .kv_client()
            .max_decoding_message_size(MAX_ANSWER_BYTES)
            .get(key, Some(options))
            .await
            .map_err(|err| match self.error(err, 0) {
                KvError::Compacted { .. } => KvError::Compacted { revision },
                other => other,
            })?;
        let header = answer.header().map_or(0, |h| h.revision());
        Ok((header, answer.kvs().iter().map(Entry::from).collect()))
    }

    /// Puts `value` at `key`; the revision it was written at.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<Revision, KvError> {
        let answer = self
            .client
            .kv_client()
            .put(key, value, None)
            .await
            .map_err(|err| self.error(err, value.len()))?;
        Ok(answer.header().map_or(0, |h| h.revision()))
    }

    /// Puts `value` at `key` attached to lease `lease`: the key is deleted when the lease
    /// expires or is revoked.
    pub async fn put_with_lease(
        &self,
        key: &[u8],
        value: &[u8],
        lease: LeaseId,
    ) -> Result<Revision, KvError> {
        let answer = self
            .client
            .kv_client()
            .put(key, value, Some(PutOptions::new().with_lease(lease)))
            .await
            .map_err(|err| self.error(err, value.len()))?;
        Ok(answer.header().map_or(0, |h| h.revision()))
    }

    /// A new lease of `ttl` (whole seconds, at least 1): its id.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<LeaseId, KvError> {
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let answer = self
            .client
            .lease_client()
            .grant(seconds, None)
            .await
            .map_err(|err| self.error(err, 0))?;
        Ok(answer.id())
    }

    /// Renews lease `lease` once: `Ok(true)` while it lives, `Ok(false)` when the store no
    /// longer has it (it expired or was revoked: its keys are gone).
    pub async fn keep_alive(&self, lease: LeaseId) -> Result<bool, KvError> {
        let renew = async {
            let (mut keeper, mut stream) = self
                .client
                .lease_client()
                .keep_alive(lease)
                .await
                .map_err(|err| self.error(err, 0))?;
            keeper
                .keep_alive()
                .await
                .map_err(|err| self.error(err, 0))?;
            match stream.message().await.map_err(|err| self.error(err, 0))? {
                Some(answer) => Ok(answer.ttl() > 0),
                None => Err(KvError::Store(
                    "the store closed the lease keep-alive stream".into(),
                )),
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, renew)
            .await
            .map_err(|_| KvError::Unreachable {
                endpoints: self.endpoints.join(","),
                reason: format!("no keep-alive answer within {REQUEST_TIMEOUT:?}"),
            })?
    }

    /// Revokes lease `lease`: its keys are deleted now.
    pub async fn revoke_lease(&self, lease: LeaseId) -> Result<(), KvError> {
        self.client
            .lease_client()
            .revoke(lease)
            .await
            .map_err(|err| self.error(err, 0))?;
        Ok(())
    }

    /// Deletes `key` (or every key with the prefix `key`); how many keys were deleted.
    pub async fn delete(&self, key: &[u8], prefix: bool) -> Result<i64, KvError> {
        let options = prefix.then(|| DeleteOptions::new().with_prefix());
        let answer = self
            .client
            .kv_client()
            .delete(key, options)
            .await
            .map_err(|err| self.error(err, 0))?;
        Ok(answer.deleted())
    }

    /// The values `key` had, newest first: its current value, then each earlier one read
    /// with `get --rev` one revision before the later one's `mod_revision`, back to the
    /// key's creation, at most `limit` of them. Stops early (and says so) at compaction.
    pub async fn history(&self, key: &[u8], limit: usize) -> Result<History, KvError> {
        let (_, current) = self.get(key, false, 0).await?;
        let mut entries: Vec<Entry> = current.into_iter().collect();
        let mut compacted = false;
        while entries.len() < limit {
            let Some(last) = entries.last() else { break };
            let before = last.mod_revision - 1;
            if before < last.create_revision {
                break;
            }
            match self.get(key, false, before).await {
                Ok((_, older)) => match older.into_iter().next() {
                    Some(entry) => entries.push(entry),
                    None => break,
                },
                Err(KvError::Compacted { .. }) => {
                    compacted = true;
                    break;
                }
                Err(err) => return Err(err),
            }
        }
        Ok(History { entries, compacted })
    }

    /// Watches `key` (or the prefix `key`) from `start_revision` (0: from now).
    pub async fn watch(
        &self,
        key: &[u8],
        prefix: bool,
        start_revision: Revision,
    ) -> Result<WatchStream, KvError> {
        let mut options = WatchOptions::new().with_start_revision(start_revision);
        if prefix {
            options = options.with_prefix();
        }
        // A watch is a long stream: its own client without the request timeout.
        let endpoints = self.endpoints.join(",");
        let unreachable = |reason: String| KvError::Unreachable {
            endpoints: endpoints.clone(),
            reason,
        };
        let mut client = Client::connect(
            &self.endpoints,
            Some(ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT)),
        )
        .await
        .map_err(|err| unreachable(err.to_string()))?;
        let stream = tokio::time::timeout(REQUEST_TIMEOUT, client.watch(key, Some(options)))
            .await
            .map_err(|_| unreachable(format!("no answer within {REQUEST_TIMEOUT:?}")))?
            .map_err(|err| self.error(err, 0))?;
        Ok(WatchStream {
            stream,
            endpoints,
            _client: client,
        })
    }
}

/// The events of one watch, batch by batch.
pub struct WatchStream {
    stream: etcd_client::WatchStream,
    endpoints: String,
    _client: Client,
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchStream")
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl WatchStream {
    /// The next batch of events (one revision's, or several); `None` when the store closed
    /// the stream. A watch whose start revision was compacted is [`KvError::Compacted`].
    pub async fn next(&mut self) -> Result<Option<Vec<Event>>, KvError> {
        loop {
            let answer = self
                .stream
                .message()
                .await
                .map_err(|err| map_error(&self.endpoints, err, 0))?;
            let Some(answer) = answer else {
                return Ok(None);
            };
            if answer.canceled() {
                if answer.compact_revision() > 0 {
                    return Err(KvError::Compacted {
                        revision: answer.compact_revision(),
                    });
                }
                return Err(KvError::Store(format!(
                    "the watch was cancelled: {}",
                    answer.cancel_reason()
                )));
            }
            if answer.events().is_empty() {
                continue;
            }
            let events = answer
                .events()
                .iter()
                .filter_map(|event| {
                    let entry = Entry::from(event.kv()?);
                    let kind = match event.event_type() {
                        EventType::Put => EventKind::Put,
                        EventType::Delete => EventKind::Delete,
                    };
                    Some(Event { kind, entry })
                })
                .collect();
            return Ok(Some(events));
        }
    }
}

fn map_error(endpoints: &str, err: etcd_client::Error, bytes: usize) -> KvError {
    use tonic::Code;
    let unreachable = |reason: String| KvError::Unreachable {
        endpoints: endpoints.to_owned(),
        reason,
    };
    match err {
        etcd_client::Error::GRpcStatus(status) => {
            let message = status.message().to_owned();
            if message.contains("request is too large")
                || message.contains("larger than max")
                || message.contains("message length too large")
            {
                return KvError::TooLarge { bytes };
            }
            if message.contains("compacted") {
                return KvError::Compacted { revision: 0 };
            }
            match status.code() {
                Code::Unavailable | Code::Cancelled | Code::DeadlineExceeded | Code::Unknown
                    if !message.starts_with("etcdserver:") =>
                {
                    unreachable(message)
                }
                _ => KvError::Store(message),
            }
        }
        etcd_client::Error::TransportError(err) => unreachable(err.to_string()),
        etcd_client::Error::IoError(err) => unreachable(err.to_string()),
        other => KvError::Store(other.to_string()),
    }
}
