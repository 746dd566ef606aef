//! Time as the state machine sees it: milliseconds since the epoch, chosen by the node that
//! proposes a command and carried inside it, so applying the log is deterministic.

use serde::{Deserialize, Serialize};

/// A moment, in milliseconds since the Unix epoch.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub i64);

impl Millis {
    /// The wall clock now. Only the API edge and leader loops call this; the state machine and
    /// the scheduler take time as an input.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Millis(d.as_millis() as i64)
    }

    /// Epoch seconds, fractional, as ECS puts timestamps on the wire.
    pub fn as_epoch_seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }

    /// From wire epoch seconds; `None` for values that are not finite.
    pub fn from_epoch_seconds(seconds: f64) -> Option<Self> {
        seconds
            .is_finite()
            .then(|| Millis((seconds * 1000.0).round() as i64))
    }

    pub fn saturating_add_ms(self, ms: i64) -> Self {
        Self(self.0.saturating_add(ms))
    }

    pub fn saturating_sub_ms(self, ms: i64) -> Self {
        Millis(self.0.saturating_sub(ms))
    }
}
