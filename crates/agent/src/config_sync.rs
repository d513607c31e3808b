//! The daemon's config sync (issue #6, docs/adr/0601-config-sharing.md): one task watches
//! `/berth/config/` in the store and hands every changed value to
//! [`ContainerManager::deliver_config`], which replaces the containers' files atomically
//! and signals them.
//!
//! It starts (and restarts, after any store error) with a full read of the prefix, delivered
//! to every container whose file differs — so a daemon that was down, or lost its watch, or
//! watched from a revision since compacted, catches up — then watches from the revision after
//! that read, so no change between the read and the watch is missed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use berth_config::{CONFIG_PREFIX, ConfigKey, EventKind, Kv, KvError};

use crate::manager::ContainerManager;

/// How long the task waits before reading the store again after an error.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Starts the sync task on the current runtime; it runs until the runtime stops.
pub fn spawn(manager: Arc<ContainerManager>, kv: Kv) {
    tokio::spawn(async move {
        let mut last_error = String::new();
        loop {
            match sync(&manager, &kv).await {
                Ok(()) => tracing::info!("the store closed the config watch; reading again"),
                Err(err) => {
                    let text = err.to_string();
                    if text != last_error {
                        tracing::warn!(%err, "config sync: reading the store again in 1 s");
                        last_error = text;
                    }
                }
            }
            tokio::time::sleep(RETRY_AFTER).await;
        }
    });
}

async fn deliver(manager: &Arc<ContainerManager>, values: HashMap<ConfigKey, Vec<u8>>) {
    if values.is_empty() {
        return;
    }
    let manager = Arc::clone(manager);
    let _ = tokio::task::spawn_blocking(move || manager.deliver_config(&values)).await;
}

/// One full read, then the watch until it ends or fails.
async fn sync(manager: &Arc<ContainerManager>, kv: &Kv) -> Result<(), KvError> {
    let (revision, entries) = kv.get(CONFIG_PREFIX.as_bytes(), true, 0).await?;
    let values = entries
        .into_iter()
        .filter_map(|e| Some((ConfigKey::from_store_key(&e.key)?, e.value)))
        .collect();
    deliver(manager, values).await;
    let mut stream = kv
        .watch(CONFIG_PREFIX.as_bytes(), true, revision + 1)
        .await?;
    while let Some(events) = stream.next().await? {
        // The latest value of each key in the batch; a deleted key keeps its last file.
        let mut values = HashMap::new();
        for event in events {
            let Some(key) = ConfigKey::from_store_key(&event.entry.key) else {
                continue;
            };
            match event.kind {
                EventKind::Put => {
                    values.insert(key, event.entry.value);
                }
                EventKind::Delete => {
                    values.remove(&key);
                }
            }
        }
        deliver(manager, values).await;
    }
    Ok(())
}
