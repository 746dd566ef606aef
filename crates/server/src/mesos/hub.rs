//! The connection hub: what the Mesos API keeps in this node's memory rather than in the state.
//!
//! Frameworks and offers are state; a framework's live connection is not. The hub holds each
//! subscribed framework's event stream, and the soft state the allocator reads alongside the
//! snapshot (refuse filters, suppression), the offers each framework was sent (to tell it when
//! one is rescinded), and the status last sent for each task (until acknowledged). The HTTP
//! handlers change it, the leader loop reads it; [`Hub::wake`] tells the loop when something
//! that is not a state write (a REVIVE, a closed stream) may call for a pass.
//!
//! Each stream queues at most [`STREAM_CAPACITY`] events. A framework that does not read them
//! (its connection stalled, or it stopped reading on purpose) would otherwise grow this
//! server's memory without end, so when its queue is full its stream is closed and dropped
//! from the hub, and the leader loop disconnects it as if its connection had dropped (a Mesos
//! master does the same to a lagging scheduler); it can re-subscribe. The hub holds the only
//! sender of each stream, so a stream it lets go of (lag, re-subscription, teardown) ends.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use axum::body::Bytes;
use berth_mesos::allocator::Filters;
use berth_mesos::recordio::record;
use berth_mesos::scheduler::Event;
use berth_mesos::updates::Sent;
use berth_model::command::FrameworkDisconnected;
use berth_model::{InstanceId, OfferId, TaskId};
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{Notify, mpsc};

use super::write_or_warn;
use crate::App;

/// Events queued for one stream before the framework counts as not reading. Events come in
/// bursts (a RECONCILE of all a framework's tasks queues one UPDATE per task at once), so this
/// is well above the tasks one framework runs at berth's scale; it bounds a stream nobody
/// reads to a few MiB (UPDATEs are a few hundred bytes).
pub(super) const STREAM_CAPACITY: usize = 16_384;

/// One framework's open event stream.
pub(super) struct Stream {
    pub(super) id: String,
    /// The stream's only sender: the stream ends once the hub drops it.
    pub(super) tx: mpsc::Sender<Bytes>,
}

/// Connection state of the Mesos API on this node.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<HubInner>,
    /// Held while a launch looks for an identical revision and registers one if there is
    /// none, so concurrent launches of one TaskInfo share a revision.
    pub(super) registering: tokio::sync::Mutex<()>,
    /// Tells the leader loop to make a pass although the state may not have changed.
    wake: Notify,
}

#[derive(Default)]
pub(super) struct HubInner {
    pub(super) streams: HashMap<String, Stream>,
    pub(super) filters: Filters<InstanceId>,
    pub(super) suppressed: HashSet<String>,
    /// Offers sent, by id → framework (to tell a framework when one is rescinded).
    pub(super) offered: HashMap<OfferId, String>,
    pub(super) sent: HashMap<TaskId, Sent>,
}

impl Hub {
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, HubInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks the leader loop for a pass: something it reads besides the state changed.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Resolves at the next [`Hub::wake`] (at once if one came since the last call).
    pub(super) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Sends `event` on `framework`'s stream, if it has one.
    pub(super) fn send(&self, framework: &str, event: &Event) {
        self.send_on(framework, None, event);
    }

    /// Queues `event` on `framework`'s stream (only if that is `stream`, when given), and says
    /// whether the stream is still open. A stream whose queue is full is closed.
    pub(super) fn send_on(&self, framework: &str, stream: Option<&str>, event: &Event) -> bool {
        let mut hub = self.lock();
        let queued = match hub.streams.get(framework) {
            Some(s) if stream.is_none_or(|id| id == s.id) => {
                s.tx.try_send(Bytes::from(record(event)))
            }
            _ => return false,
        };
        match queued {
            Ok(()) => true,
            // The connection is gone; its `Subscription` is dropped and tidies up.
            Err(TrySendError::Closed(_)) => false,
            Err(TrySendError::Full(_)) => {
                hub.streams.remove(framework);
                drop(hub);
                self.wake();
                tracing::warn!(
                    framework,
                    "closed the event stream of a framework that left {STREAM_CAPACITY} events unread; it is disconnected until it subscribes again"
                );
                false
            }
        }
    }

    pub(super) fn connected(&self) -> Vec<String> {
        self.lock().streams.keys().cloned().collect()
    }
}

/// An event stream that tells the hub when its connection goes away.
pub(super) struct Subscription {
    pub(super) rx: mpsc::Receiver<Bytes>,
    pub(super) app: Arc<App>,
    pub(super) framework: String,
    pub(super) stream: String,
}

impl futures::Stream for Subscription {
    type Item = Result<Bytes, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|b| b.map(Ok))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let still_current = {
            let mut hub = self.app.mesos.lock();
            let current = hub
                .streams
                .get(&self.framework)
                .is_some_and(|s| s.id == self.stream);
            if current {
                hub.streams.remove(&self.framework);
            }
            current
        };
        if still_current {
            let app = self.app.clone();
            let id = self.framework.clone();
            tokio::spawn(async move {
                write_or_warn(&app, FrameworkDisconnected { id }).await;
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscriber that reads nothing holds at most [`STREAM_CAPACITY`] events: then its
    /// stream is closed and leaves the hub, and what it had queued ends with the stream.
    #[test]
    fn a_stream_nobody_reads_is_closed_once_its_queue_is_full() {
        let hub = Hub::default();
        let (tx, mut rx) = mpsc::channel(STREAM_CAPACITY);
        hub.lock().streams.insert(
            "fw".into(),
            Stream {
                id: "s1".into(),
                tx,
            },
        );
        // Heartbeats of an older stream of the framework are not sent on this one.
        assert!(!hub.send_on("fw", Some("s0"), &Event::heartbeat()));
        for _ in 0..STREAM_CAPACITY {
            assert!(hub.send_on("fw", Some("s1"), &Event::heartbeat()));
        }
        assert_eq!(hub.connected(), vec!["fw".to_owned()]);
        assert!(!hub.send_on("fw", None, &Event::heartbeat()));
        assert!(hub.connected().is_empty(), "a full stream stays in the hub");
        let mut queued = 0;
        while rx.try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, STREAM_CAPACITY);
        assert_eq!(
            rx.try_recv(),
            Err(mpsc::error::TryRecvError::Disconnected),
            "the closed stream must end"
        );
        // Later events for the framework go nowhere.
        assert!(!hub.send_on("fw", None, &Event::heartbeat()));
    }
}
