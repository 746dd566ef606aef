//! openraft's own storage conformance suite (`openraft::testing::Suite`: vote, log reads,
//! purge, truncation, membership, applying, snapshots built and installed) run against berth's
//! redb log store and state machine, each test on a fresh data directory.

use berth_raft::metrics::RaftMetrics;
use berth_raft::{LogStore, StateMachine, TypeConfig};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};

/// Opens both stores in a new temporary directory, kept alive as long as they are.
struct FreshDataDir;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, tempfile::TempDir> for FreshDataDir {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachine), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::read(&e))?;
        let log = LogStore::open(&dir.path().join("raft-log.redb"), RaftMetrics::default())
            .map_err(|e| StorageIOError::read_logs(&e))?;
        let sm = StateMachine::open(
            &dir.path().join("raft-snapshot.redb"),
            berth_state::Config::default(),
        )?;
        Ok((dir, log, sm))
    }
}

#[test]
fn berths_storage_passes_openrafts_suite() {
    Suite::test_all(FreshDataDir).expect("every case of openraft's storage suite passes");
}
