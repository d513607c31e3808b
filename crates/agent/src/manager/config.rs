//! Config keys in containers (issue #6): the values a create binds, read from the store
//! before anything is made, and changed values placed later in the containers that bind them.

use std::collections::HashMap;

use berth_config::{CONFIG_PREFIX, ConfigFile, ConfigKey};
use berth_runtime::supervisor::Request;
use berth_types::ContainerId;

use super::{CONTROL_SLACK, ContainerManager, Entry, alive, lock};
use crate::error::{AgentError, Result};

impl ContainerManager {
    /// Reads the values of every config key `parsed` binds (one read, so all are of one
    /// revision) and adds the environment variables they define. A missing key is a 404
    /// and nothing is made.
    pub(super) fn config_values(
        &self,
        parsed: &mut crate::options::ParsedCreate,
    ) -> Result<HashMap<ConfigKey, Vec<u8>>> {
        let keys: Vec<&ConfigKey> = parsed
            .configs
            .iter()
            .map(|c| &c.key)
            .chain(parsed.config_env.iter().map(|e| &e.key))
            .collect();
        if keys.is_empty() {
            return Ok(HashMap::new());
        }
        let Some(kv) = self.config_store.get() else {
            return Err(AgentError::BadRequest(
                "this daemon has no store to read config keys from".into(),
            ));
        };
        let (_, entries) = self
            .runtime
            .block_on(kv.get(CONFIG_PREFIX.as_bytes(), true, 0))
            .map_err(|e| AgentError::Internal(format!("cannot read config keys: {e}")))?;
        let values: HashMap<ConfigKey, Vec<u8>> = entries
            .into_iter()
            .filter_map(|e| Some((ConfigKey::from_store_key(&e.key)?, e.value)))
            .collect();
        if let Some(missing) = keys.iter().find(|k| !values.contains_key(k)) {
            return Err(AgentError::NotFound(format!(
                "config key {missing} does not exist; set it first with `berth config set {missing} VALUE`"
            )));
        }
        for binding in &parsed.config_env {
            let value = std::str::from_utf8(&values[&binding.key])
                .ok()
                .filter(|v| !v.contains('\0'))
                .ok_or_else(|| {
                    AgentError::BadRequest(format!(
                        "config key {} cannot be the environment variable {}: its value is not text (UTF-8 without NUL bytes)",
                        binding.key, binding.var
                    ))
                })?;
            let var = format!("{}={value}", binding.var)
                .parse()
                .map_err(|e: berth_runtime::OptionError| AgentError::BadRequest(e.to_string()))?;
            parsed.options.env.push(var);
        }
        Ok(values)
    }

    /// Places changed config values in the containers that bind them (issue #6): for each
    /// config file whose key is in `values` and whose content differs, the value replaces
    /// the file atomically in the container's rootfs; then a running container with a
    /// `ConfigSignal` gets that signal once. Errors are logged per container.
    pub fn deliver_config(&self, values: &HashMap<ConfigKey, Vec<u8>>) {
        let entries: Vec<(ContainerId, Entry)> = lock(&self.index)
            .containers
            .iter()
            .filter(|(_, e)| !e.removing)
            .map(|(id, e)| (id.clone(), e.clone()))
            .collect();
        for (id, entry) in entries {
            let request = &entry.record.request;
            let mut changed = false;
            for binding in &request.configs {
                let Ok(config) = binding.parse::<ConfigFile>() else {
                    continue;
                };
                let Some(value) = values.get(&config.key) else {
                    continue;
                };
                let rootfs = &entry.record.rootfs;
                match berth_config::place::read(rootfs, &config.target) {
                    Ok(Some(current)) if current == *value => continue,
                    _ => {}
                }
                match berth_config::place::write_atomic(rootfs, &config.target, value, config.mode)
                {
                    Ok(()) => changed = true,
                    Err(err) => tracing::warn!(%id, %err, "cannot place a config value"),
                }
            }
            let Some(signal) = request.config_signal.as_ref().filter(|_| changed) else {
                continue;
            };
            if entry.supervisor.is_some_and(alive) {
                let kill = Request::Kill {
                    signal: signal.clone(),
                };
                if let Err(err) = self.control(&id, &kill, CONTROL_SLACK) {
                    tracing::warn!(%id, %err, "cannot signal a config change");
                }
            }
        }
    }
}
