//! Group commit: writes that queue while earlier entries are being committed share the next
//! Raft entry (and its fsync).
//!
//! The batcher takes the first queued write, then everything else already queued (up to
//! `max_batch`), proposes that as one entry, and goes on with the next while at most
//! `max_inflight` entries are being committed. A write is answered only when its entry is
//! committed and applied ([`Propose`] resolves then), each with its own command's result, in
//! the order the writes were queued; a failed entry fails every write in it with the same
//! error. The proposer is a trait so that this ordering and accounting is tested without
//! openraft.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use berth_model::{CommandResult, Stamped};
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::metrics::RaftMetrics;
use crate::{Batch, BerthRaft, WriteError, Written};

/// One queued write and where its answer goes.
pub(crate) struct Pending {
    pub command: Stamped,
    pub reply: oneshot::Sender<Result<Written, WriteError>>,
}

/// Proposes one entry and resolves once it is committed and applied: with the entry's log
/// index and one result per command, in order.
pub(crate) trait Propose: Clone + Send + Sync + 'static {
    fn propose(
        &self,
        batch: Batch,
    ) -> impl Future<Output = Result<(u64, Vec<CommandResult>), WriteError>> + Send;
}

impl Propose for BerthRaft {
    async fn propose(&self, batch: Batch) -> Result<(u64, Vec<CommandResult>), WriteError> {
        match self.client_write(batch).await {
            Ok(resp) => Ok((resp.log_id.index, resp.data)),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f))) => {
                Err(WriteError::NotLeader {
                    leader: f.leader_id.zip(f.leader_node.map(|n| n.addr)),
                })
            }
            Err(other) => Err(WriteError::Unavailable(other.to_string())),
        }
    }
}

/// Runs until the queue closes, recording each entry's commit in `metrics`.
pub(crate) async fn run<P: Propose>(
    proposer: P,
    mut queue: mpsc::UnboundedReceiver<Pending>,
    max_batch: usize,
    max_inflight: usize,
    metrics: RaftMetrics,
) {
    let inflight = Arc::new(Semaphore::new(max_inflight));
    loop {
        let Ok(permit) = inflight.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = queue.recv().await else {
            return;
        };
        let mut commands = Vec::with_capacity(16);
        let mut replies = Vec::with_capacity(16);
        commands.push(first.command);
        replies.push(first.reply);
        while commands.len() < max_batch {
            match queue.try_recv() {
                Ok(p) => {
                    commands.push(p.command);
                    replies.push(p.reply);
                }
                Err(_) => break,
            }
        }
        let proposer = proposer.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let proposed = Instant::now();
            let size = commands.len();
            let outcome = proposer.propose(Batch { commands }).await;
            drop(permit);
            match outcome {
                Ok((index, results)) => {
                    metrics.committed(size, proposed.elapsed().as_secs_f64(), &results);
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(Ok(Written { index, result }));
                    }
                }
                Err(err) => {
                    for reply in replies {
                        let _ = reply.send(Err(err.clone()));
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use berth_model::command::DeleteCluster;
    use berth_model::{Command, Millis};

    use super::*;

    /// A proposer whose entries commit when the test says so: each proposal is recorded and
    /// waits for its turn; entry `n` gets index `n + 1` and, per command, an answer naming the
    /// command (so a test sees which write got which answer).
    #[derive(Clone, Default)]
    struct Held {
        proposed: Arc<Mutex<Vec<Proposal>>>,
    }

    /// One proposed entry: its commands' names, and how the test commits it (once).
    type Proposal = (Vec<String>, Option<oneshot::Sender<Result<(), WriteError>>>);

    fn name_of(s: &Stamped) -> String {
        match &s.command {
            Command::DeleteCluster(DeleteCluster { name }) => name.to_string(),
            other => panic!("unexpected command {other:?}"),
        }
    }

    impl Propose for Held {
        async fn propose(&self, batch: Batch) -> Result<(u64, Vec<CommandResult>), WriteError> {
            let names: Vec<String> = batch.commands.iter().map(name_of).collect();
            let (commit, committed) = oneshot::channel();
            let index = {
                let mut proposed = self.proposed.lock().unwrap();
                proposed.push((names.clone(), Some(commit)));
                proposed.len() as u64
            };
            committed
                .await
                .expect("the test commits or fails every entry")?;
            let results = names
                .into_iter()
                .map(|n| Err(berth_model::Error::invalid(format!("answer to {n}"))))
                .collect();
            Ok((index, results))
        }
    }

    impl Held {
        fn entries(&self) -> Vec<Vec<String>> {
            self.proposed
                .lock()
                .unwrap()
                .iter()
                .map(|(n, _)| n.clone())
                .collect()
        }

        /// Resolves entry `n` (0-based) with `outcome`.
        fn resolve(&self, n: usize, outcome: Result<(), WriteError>) {
            let commit = self.proposed.lock().unwrap()[n].1.take();
            commit
                .expect("each entry is resolved once")
                .send(outcome)
                .unwrap();
        }

        async fn wait_for_entries(&self, n: usize) {
            for _ in 0..1000 {
                if self.proposed.lock().unwrap().len() >= n {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            panic!("expected {n} entries, got {:?}", self.entries());
        }
    }

    type Answer = oneshot::Receiver<Result<Written, WriteError>>;

    fn write(queue: &mpsc::UnboundedSender<Pending>, name: &str) -> Answer {
        let (reply, answer) = oneshot::channel();
        let command = Stamped {
            at: Millis(0),
            command: DeleteCluster { name: name.into() }.into(),
            by: None,
        };
        queue.send(Pending { command, reply }).unwrap();
        answer
    }

    fn answered(answer: &mut Answer) -> Option<Result<Written, WriteError>> {
        answer.try_recv().ok()
    }

    fn start(max_batch: usize, max_inflight: usize) -> (Held, mpsc::UnboundedSender<Pending>) {
        let held = Held::default();
        let (queue, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(
            held.clone(),
            rx,
            max_batch,
            max_inflight,
            RaftMetrics::default(),
        ));
        (held, queue)
    }

    #[tokio::test]
    async fn writes_queued_behind_inflight_entries_share_the_next_in_order() {
        let (held, queue) = start(1024, 1);
        let a = write(&queue, "a");
        held.wait_for_entries(1).await;
        // While entry 1 is in flight (max_inflight = 1), b, c, d queue up.
        let mut rest: Vec<Answer> = ["b", "c", "d"].iter().map(|n| write(&queue, n)).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            held.entries(),
            [vec!["a"]],
            "nothing more is proposed while one is in flight"
        );
        held.resolve(0, Ok(()));
        held.wait_for_entries(2).await;
        assert_eq!(held.entries()[1], ["b", "c", "d"]);
        let first = a.await.unwrap().unwrap();
        assert_eq!(first.index, 1);
        held.resolve(1, Ok(()));
        for (answer, name) in rest.iter_mut().zip(["b", "c", "d"]) {
            let written = answer.await.unwrap().unwrap();
            assert_eq!(written.index, 2);
            // Each write gets its own command's answer.
            assert_eq!(
                written.result.unwrap_err().to_string(),
                format!("answer to {name}")
            );
        }
    }

    #[tokio::test]
    async fn no_write_is_answered_before_its_entry_commits() {
        let (held, queue) = start(1024, 2);
        let mut a = write(&queue, "a");
        held.wait_for_entries(1).await;
        let mut b = write(&queue, "b");
        held.wait_for_entries(2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(answered(&mut a).is_none() && answered(&mut b).is_none());
        // Entries may commit out of order; each answer waits for its own.
        held.resolve(1, Ok(()));
        assert_eq!(b.await.unwrap().unwrap().index, 2);
        assert!(answered(&mut a).is_none(), "a's entry has not committed");
        held.resolve(0, Ok(()));
        assert_eq!(a.await.unwrap().unwrap().index, 1);
    }

    #[tokio::test]
    async fn a_failed_entry_fails_every_write_in_it_and_only_those() {
        let (held, queue) = start(1024, 1);
        let first = write(&queue, "first");
        held.wait_for_entries(1).await;
        let answers: Vec<Answer> = ["x", "y"].iter().map(|n| write(&queue, n)).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        held.resolve(0, Ok(()));
        held.wait_for_entries(2).await;
        let lost = WriteError::NotLeader {
            leader: Some((2, "10.0.0.2:8642".into())),
        };
        held.resolve(1, Err(lost.clone()));
        assert!(first.await.unwrap().is_ok());
        for answer in answers {
            assert_eq!(answer.await.unwrap().unwrap_err(), lost);
        }
        // The batcher goes on after a failure.
        let later = write(&queue, "later");
        held.wait_for_entries(3).await;
        held.resolve(2, Ok(()));
        assert_eq!(later.await.unwrap().unwrap().index, 3);
    }

    #[tokio::test]
    async fn an_entry_holds_at_most_max_batch_writes() {
        let (held, queue) = start(2, 1);
        let _a = write(&queue, "a");
        held.wait_for_entries(1).await;
        let _rest: Vec<Answer> = ["b", "c", "d", "e", "f"]
            .iter()
            .map(|n| write(&queue, n))
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        for n in 0..3 {
            held.resolve(n, Ok(()));
            held.wait_for_entries(n + 2).await;
        }
        assert_eq!(
            held.entries()[..4],
            [vec!["a"], vec!["b", "c"], vec!["d", "e"], vec!["f"]]
        );
    }
}
