//! Configuration sharing (issue #6): configuration values kept as keys under
//! [`CONFIG_PREFIX`] in an etcd v3 store (berth's own or an external etcd, through the
//! `etcd-client` crate only), and delivered into containers as files and environment
//! variables.
//!
//! - [`ConfigKey`] is a validated key name; [`ConfigFile`] and [`ConfigEnv`] are the
//!   `--config KEY:/path[:mode]` and `--config-env KEY=VAR` bindings of a container.
//! - [`Kv`] is the narrow store client the CLI and the daemon use: get/put/delete/watch,
//!   and a key's older values from the MVCC history ([`Kv::history`]).
//! - [`place`] writes a value into a container's root filesystem as the host sees it,
//!   atomically (temp file + rename(2) in the target's directory), resolving the path inside
//!   the rootfs so that no symlink in it can lead outside.
//!
//! - [`Endpoint`], [`ServiceName`] and [`ServiceSpec`] are the services' contract: the key
//!   layout under [`SERVICE_PREFIX`] and the JSON of one registered container.
//!
//! Not done yet: owners other than root for placed files, and delivery to containers on
//! other machines (each daemon syncs its own containers).

mod binding;
mod key;
mod kv;
pub mod place;
mod service;

pub use binding::{BindingError, ConfigEnv, ConfigFile, DEFAULT_MODE};
pub use key::{CONFIG_PREFIX, ConfigKey, KeyError, MAX_KEY_LEN};
pub use kv::{Entry, Event, EventKind, Kv, KvError, LeaseId, Revision, WatchStream};
pub use service::{
    Endpoint, EndpointHealth, MAX_SERVICE_NAME_LEN, SERVICE_DOMAIN, SERVICE_PREFIX, ServiceError,
    ServiceName, ServiceSpec, parse_endpoint_key,
};
