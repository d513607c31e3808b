//! openraft's own storage conformance suite, run against the redb log store and the state machine
//! adapter: every `RaftLogStorage`/`RaftStateMachine` must pass it.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};

use super::types::StorageError;
use super::{LogStore, StateMachineStore, TypeConfig};
use crate::backend::RedbBackend;
use crate::config::BackendBatch;
use crate::node::Shared;

/// A fresh store in a temporary directory; the directory lives as long as the test.
struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for Builder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError> {
        let dir = tempfile::tempdir().map_err(|e| openraft::StorageIOError::write(&e))?;
        let backend =
            RedbBackend::open(dir.path()).map_err(|e| openraft::StorageIOError::write(&e))?;
        let log = LogStore::open(&dir.path().join("log"), &backend.database())
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        let (shared, identity) =
            Shared::load(Box::new(backend), u64::MAX, BackendBatch::default(), None)
                .map_err(|e| openraft::StorageIOError::write(&e))?;
        let sm = StateMachineStore::new(Arc::clone(&shared), identity.raft_applied.as_deref())
            .map_err(|e| openraft::StorageIOError::write(&e))?;
        Ok((dir, log, sm))
    }
}

#[test]
fn log_store_and_state_machine_pass_openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
