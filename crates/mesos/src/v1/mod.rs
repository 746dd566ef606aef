//! Messages of `include/mesos/v1/mesos.proto` that a master speaking the scheduler API needs.
//!
//! Each type mirrors its proto message: field names are the proto's, `required` fields are
//! plain values (a message without one does not parse, as it would not on a real master),
//! `optional` fields are `Option` and `repeated` ones `Vec`, both left out of the JSON when
//! unset or empty, which is how a master writes them. Fields berth has no use for
//! (reservations, disk infos, discovery, checks, limits, seccomp, rlimits...) are not modelled:
//! they are ignored on input, as unknown fields always are.
//!
//! Proto defaults are methods (`CommandInfo::shell()`, `Filters::refuse_seconds()`...), so
//! the wire form stays what the framework sent while callers get the effective value.
//!
//! `mesos.proto` is long, so the messages are grouped by what they are about, one file each
//! (ids and the small shared messages here; [`framework`], [`offers`], [`task`],
//! [`container`], [`status`]), and all re-exported: callers name them `v1::TaskInfo` as the
//! proto's single namespace does, whatever file they live in.

use serde::{Deserialize, Serialize};

use crate::wire::{Base64Bytes, integer, lenient_enum, opt_integer, proto_enum};

pub mod container;
pub mod framework;
pub mod offers;
pub mod status;
pub mod task;

pub use container::*;
pub use framework::*;
pub use offers::*;
pub use status::*;
pub use task::*;

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        pub struct $name {
            pub value: String,
        }

        impl $name {
            pub fn new(value: impl Into<String>) -> Self {
                Self { value: value.into() }
            }

            pub fn as_str(&self) -> &str {
                &self.value
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self::new(value)
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self::new(value)
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(&self.value)
            }
        }
    };
}

id_type!(
    /// `FrameworkID`: assigned by the master at a framework's first SUBSCRIBE.
    FrameworkId
);
id_type!(
    /// `OfferID`: fresh and unique for every offer.
    OfferId
);
id_type!(
    /// `AgentID`: one per agent (for berth, per container instance).
    AgentId
);
id_type!(
    /// `TaskID`: chosen by the framework, unique among its live tasks.
    TaskId
);
id_type!(
    /// `ExecutorID`: chosen by the framework.
    ExecutorId
);
id_type!(
    /// `OperationID`: set by a framework that wants operation status updates.
    OperationId
);
id_type!(
    /// `ResourceProviderID`.
    ResourceProviderId
);

/// `ContainerID`: a container, nested under `parent` when it is a nested container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContainerId {
    pub value: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<Box<ContainerId>>,
}

/// `DurationInfo`: a duration in nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurationInfo {
    #[serde(deserialize_with = "integer")]
    pub nanoseconds: i64,
}

impl DurationInfo {
    pub fn from_secs_f64(secs: f64) -> Self {
        Self {
            nanoseconds: (secs * 1e9).round() as i64,
        }
    }

    pub fn as_secs_f64(self) -> f64 {
        self.nanoseconds as f64 / 1e9
    }
}

/// `TimeInfo`: nanoseconds since the epoch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TimeInfo {
    #[serde(deserialize_with = "integer")]
    pub nanoseconds: i64,
}

/// `Address`: where something listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Address {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(deserialize_with = "integer")]
    pub port: i32,
}

/// `URL`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Url {
    pub scheme: String,
    pub address: Address,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub query: Vec<Parameter>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fragment: Option<String>,
}

/// `Unavailability`: a maintenance window, from `start` for `duration` (forever if unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailability {
    pub start: TimeInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<DurationInfo>,
}

/// `Parameter`: a key/value pair (docker parameters, URL queries).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Parameter {
    pub key: String,
    pub value: String,
}

/// `Labels`: free-form key/value metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<Label>,
}

/// `Label`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}
