//! Errors: the etcd errors a client sees on the wire, and the store's own failures.

use std::path::PathBuf;

/// An error etcd defines for its v3 API. Each maps to etcd's own gRPC code and message, so
/// clients that match on them (etcdctl, client libraries) behave as against etcd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EtcdError {
    #[error("etcdserver: key is not provided")]
    EmptyKey,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: value is provided")]
    ValueProvided,
    #[error("etcdserver: lease is provided")]
    LeaseProvided,
    #[error("etcdserver: too many operations in txn request")]
    TooManyOps,
    #[error("etcdserver: duplicate key given in txn request")]
    DuplicateKey,
    #[error("etcdserver: mvcc: required revision has been compacted")]
    Compacted,
    #[error("etcdserver: mvcc: required revision is a future revision")]
    FutureRev,
    #[error("etcdserver: mvcc: database space exceeded")]
    NoSpace,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("etcdserver: lease already exists")]
    LeaseExist,
    #[error("etcdserver: too large lease TTL")]
    LeaseTtlTooLarge,
    #[error("etcdserver: request is too large")]
    RequestTooLarge,
    #[error("etcdserver: request timed out")]
    Timeout,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
}

impl EtcdError {
    /// The gRPC status code etcd sends with this error.
    pub fn code(self) -> tonic::Code {
        use tonic::Code;
        match self {
            Self::EmptyKey
            | Self::KeyNotFound
            | Self::ValueProvided
            | Self::LeaseProvided
            | Self::TooManyOps
            | Self::DuplicateKey
            | Self::RequestTooLarge => Code::InvalidArgument,
            Self::Compacted | Self::FutureRev | Self::LeaseTtlTooLarge => Code::OutOfRange,
            Self::NoSpace => Code::ResourceExhausted,
            Self::LeaseNotFound => Code::NotFound,
            Self::LeaseExist => Code::FailedPrecondition,
            Self::Timeout | Self::Stopped | Self::NoLeader | Self::LeaderChanged => {
                Code::Unavailable
            }
        }
    }

    /// Every error, in the order of its number between members (the peer service's answers to
    /// forwarded writes): append only.
    const ALL: [Self; 17] = [
        Self::EmptyKey,
        Self::KeyNotFound,
        Self::ValueProvided,
        Self::LeaseProvided,
        Self::TooManyOps,
        Self::DuplicateKey,
        Self::Compacted,
        Self::FutureRev,
        Self::NoSpace,
        Self::LeaseNotFound,
        Self::LeaseExist,
        Self::LeaseTtlTooLarge,
        Self::RequestTooLarge,
        Self::Timeout,
        Self::Stopped,
        Self::NoLeader,
        Self::LeaderChanged,
    ];

    /// The error's number between members (1-based; 0 means no error).
    pub fn wire_code(self) -> u8 {
        let at = Self::ALL.iter().position(|e| *e == self).unwrap_or(14);
        u8::try_from(at + 1).unwrap_or(u8::MAX)
    }

    /// The error numbered `code`, if any.
    pub fn from_wire_code(code: u8) -> Option<Self> {
        Self::ALL.get(usize::from(code).checked_sub(1)?).copied()
    }
}

impl From<EtcdError> for tonic::Status {
    fn from(err: EtcdError) -> Self {
        tonic::Status::new(err.code(), err.to_string())
    }
}

/// A failure of the store itself: its files, its engine, its network listener.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}")]
    DataDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the store database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: Box<redb::DatabaseError>,
    },
    #[error(
        "store database {path} has format version {found}, this berth reads only {expected} \
         (version 1 predates the raft log and is not migrated: start with an empty data \
         directory and copy the keys over, e.g. with etcdctl get/put)"
    )]
    FormatVersion {
        path: PathBuf,
        found: u64,
        expected: u64,
    },
    #[error("store database {path} holds a corrupt record at revision {revision}")]
    CorruptRecord { path: PathBuf, revision: i64 },
    #[error(
        "store database {path} has no record for revision {main}.{sub}, which its index holds \
         (the file was changed behind the store's back; restore it from a snapshot)"
    )]
    MissingRecord { path: PathBuf, main: i64, sub: i64 },
    #[error("store engine failed during {during}")]
    Engine {
        during: &'static str,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("invalid listen URL {url}: {reason}")]
    ListenUrl { url: String, reason: &'static str },
    #[error("cannot listen on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("gRPC server failed")]
    Serve(#[source] tonic::transport::Error),
    #[error("the store's writer stopped after an earlier failure")]
    WriterStopped,
    #[error("cannot start the store's commit thread")]
    CommitterThread(#[source] std::io::Error),
    #[error("the client stopped reading the stream")]
    ClientGone,
    #[error("raft failed during {during}: {reason}")]
    Raft {
        during: &'static str,
        reason: String,
    },
}

impl StoreError {
    /// Wraps any redb error with what the store was doing.
    pub(crate) fn engine(during: &'static str, source: impl Into<redb::Error>) -> Self {
        Self::Engine {
            during,
            source: Box::new(source.into()),
        }
    }
}
