//! Facts of the scheduler HTTP API outside the message bodies.

/// The one endpoint of the scheduler API: every call is a POST here.
pub const SCHEDULER_PATH: &str = "/api/v1/scheduler";

/// Answers [`crate::v1::VersionInfo`]; pymesos reads it before subscribing.
pub const VERSION_PATH: &str = "/version";

/// Header naming the subscription: in the SUBSCRIBE response, and on every later call (a
/// missing or mismatched one is a 400; one on SUBSCRIBE itself is a 400 too).
pub const STREAM_ID_HEADER: &str = "Mesos-Stream-Id";

/// Content type of calls and of the event stream (JSON records in RecordIO framing).
pub const CONTENT_TYPE: &str = "application/json";

/// The Mesos version berth reports. Purely numeric and dotted: pymesos converts each part
/// with `int()`, so a suffix such as `-dev` kills its I/O thread. 1.x (>= 1.0) also makes
/// pymesos advertise GPU_RESOURCES and read inverse offers only from INVERSE_OFFERS.
pub const MESOS_VERSION: &str = "1.11.0";

/// A master's default heartbeat interval. Frameworks resubscribe after missing several.
pub const DEFAULT_HEARTBEAT_INTERVAL_SECS: f64 = 15.0;
