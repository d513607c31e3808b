//! A scripted [`CniExec`] that records every call, for tests of the chaining logic and of
//! code built on it, without root or plugin binaries.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};

use super::{CniError, CniExec, Command, Invocation};

/// One recorded call: the plugin, the command, the `CNI_*` environment, the config given
/// on stdin and what the fake answered.
#[derive(Debug, Clone)]
pub struct FakeCall {
    pub plugin: String,
    pub command: Command,
    pub invocation: Invocation,
    pub config: Value,
    pub result: Value,
}

/// The plugins the fake knows (Debian's and berth's own); any other type is not found.
const KNOWN_PLUGINS: [&str; 7] = [
    "bridge",
    super::bridge::PLUGIN,
    "host-local",
    "portmap",
    "firewall",
    "loopback",
    super::nat::PLUGIN,
];

#[derive(Debug, Default)]
struct State {
    calls: Vec<FakeCall>,
    failures: HashMap<(String, Command), (u64, String)>,
}

/// Plugins other than Debian's bridge, host-local, portmap, firewall, loopback and berth's
/// berth-bridge and berth-nat are not
/// found. ADD answers the `prevResult` with the plugin's name appended to `interfaces`, or a
/// fresh result with address 10.0.0.2/24 for the first plugin; other commands answer
/// nothing. Failures are scripted per plugin and command.
#[derive(Debug, Clone, Default)]
pub struct FakeExec {
    state: Arc<Mutex<State>>,
}

impl FakeExec {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes every later `command` of `plugin` fail with this CNI error.
    pub fn fail(&self, plugin: &str, command: Command, code: u64, msg: &str) {
        self.state()
            .failures
            .insert((plugin.to_owned(), command), (code, msg.to_owned()));
    }

    /// Makes `command` of `plugin` succeed again.
    pub fn succeed(&self, plugin: &str, command: Command) {
        self.state().failures.remove(&(plugin.to_owned(), command));
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<FakeCall> {
        self.state().calls.clone()
    }
}

impl CniExec for FakeExec {
    fn exec(
        &self,
        plugin: &str,
        command: Command,
        invocation: &Invocation,
        config: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        if !KNOWN_PLUGINS.contains(&plugin) {
            return Err(CniError::NotFound {
                plugin: plugin.to_owned(),
                path: "the fake".to_owned(),
            });
        }
        let config: Value =
            serde_json::from_slice(config).map_err(|e| CniError::BadConfig(e.to_string()))?;
        let mut state = self.state();
        let failure = state.failures.get(&(plugin.to_owned(), command)).cloned();
        let result = match (command, failure.is_some()) {
            (Command::Add, false) => {
                let mut result = config.get("prevResult").cloned().unwrap_or_else(|| {
                    json!({
                        "cniVersion": "1.0.0",
                        "interfaces": [],
                        "ips": [{"address": "10.0.0.2/24", "gateway": "10.0.0.1", "interface": 0}],
                    })
                });
                if let Some(interfaces) = result["interfaces"].as_array_mut() {
                    interfaces.push(json!({"name": plugin, "mac": "02:00:00:00:00:01"}));
                }
                result
            }
            _ => Value::Null,
        };
        state.calls.push(FakeCall {
            plugin: plugin.to_owned(),
            command,
            invocation: invocation.clone(),
            config,
            result: result.clone(),
        });
        if let Some((code, msg)) = failure {
            return Err(CniError::Plugin {
                plugin: plugin.to_owned(),
                command,
                code,
                msg,
                details: String::new(),
            });
        }
        Ok(if result.is_null() {
            Vec::new()
        } else {
            result.to_string().into_bytes()
        })
    }
}
