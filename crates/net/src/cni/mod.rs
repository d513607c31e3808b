//! CNI: running plugin binaries the way the CNI 1.0.0 specification says a runtime must.
//!
//! [`CniExec`] is the effect boundary: run one plugin with one command. [`PluginExec`]
//! execs the binaries found on a plugin path (Debian's `/usr/lib/cni` by default);
//! [`FakeExec`] records calls and answers from a script, for tests without root.
//! [`Chain`] is the runtime logic over any `CniExec`: a conflist's plugins in order for
//! ADD (each gets the previous result as `prevResult`) and CHECK, in reverse for DEL, with
//! `runtimeConfig` given only to plugins that declare the capability.
//!
//! [`nat`] is berth's own plugin (`berth-nat`, nftables in one transaction per ADD/DEL);
//! `PluginExec` runs it in process rather than exec'ing the `berth` binary.

pub mod bridge;
mod chain;
mod exec;
mod fake;
pub(crate) mod ipam;
pub mod nat;

use std::fmt;
use std::path::PathBuf;

pub use chain::{Chain, RuntimeConfig};
pub use exec::PluginExec;
pub use fake::{FakeCall, FakeExec};

#[cfg(test)]
mod contract;

/// The operation a plugin is asked to perform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Del,
    Check,
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
        })
    }
}

/// The `CNI_*` environment of one invocation, besides `CNI_COMMAND` and `CNI_PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub container_id: String,
    /// The container's network namespace; `None` for a DEL after it is gone.
    pub netns: Option<PathBuf>,
    pub ifname: String,
    /// `CNI_ARGS`: `KEY=VALUE` pairs joined with `;`.
    pub args: String,
}

/// How one plugin invocation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CniError {
    #[error("CNI plugin {plugin:?} not found in {path}")]
    NotFound { plugin: String, path: String },
    #[error("CNI plugin {plugin} {command} could not run: {reason}")]
    Spawn {
        plugin: String,
        command: Command,
        reason: String,
    },
    #[error("CNI plugin {plugin} {command} failed (code {code}): {msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
    Plugin {
        plugin: String,
        command: Command,
        code: u64,
        msg: String,
        details: String,
    },
    #[error("CNI plugin {plugin} {command} answered something that is not a CNI result: {reason}")]
    BadResult {
        plugin: String,
        command: Command,
        reason: String,
    },
    #[error("CNI configuration list is unusable: {0}")]
    BadConfig(String),
}

/// Runs one CNI plugin: `plugin` is its `type`, `config` the JSON given on stdin. Returns
/// the plugin's stdout on success (the result for ADD, usually empty otherwise).
pub trait CniExec: Send + Sync {
    fn exec(
        &self,
        plugin: &str,
        command: Command,
        invocation: &Invocation,
        config: &[u8],
    ) -> Result<Vec<u8>, CniError>;
}
