//! `include/mesos/v1/scheduler/scheduler.proto`: the calls a framework sends and the events a
//! master streams back.
//!
//! A [`Call`] is input, so it mirrors the proto exactly (a `type` plus optional payloads) and
//! may be inconsistent; `crate::validate::validate_call` says whether it is well-formed.
//! An [`Event`] is output, so it is a Rust enum: the `type` and the same-named lowercase key
//! always agree, OFFERS is nested (`{"offers":{"offers":[...]}}`) because a flat list breaks
//! pymesos, and the payloads with invariants frameworks rely on ([`Update`], [`Failure`]) can
//! only be built through constructors that keep them.
//!
//! ```text
//!  framework ── POST /api/v1/scheduler {"type":"SUBSCRIBE",...} ──► master
//!            ◄── 200, chunked RecordIO: SUBSCRIBED, OFFERS, UPDATE, HEARTBEAT, ... ──
//!  framework ── POST /api/v1/scheduler {"type":"ACCEPT",...} (Mesos-Stream-Id) ──► 202
//! ```

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::v1::{
    AgentId, ExecutorId, Filters, FrameworkId, FrameworkInfo, InverseOffer, KillPolicy, MasterInfo,
    Offer, OfferId, Operation, OperationId, OperationStatus, ResourceProviderId, TaskId,
    TaskStatus,
};
use crate::wire::{Base64Bytes, proto_enum};

// ---------------------------------------------------------------------------------------------
// Calls

proto_enum! {
    /// `Call.Type`. A name this build does not know reads as `UNKNOWN`, which a master
    /// answers with 501 Not Implemented.
    pub enum CallType fallback Unknown {
        Unknown = "UNKNOWN",
        Subscribe = "SUBSCRIBE",
        Teardown = "TEARDOWN",
        Accept = "ACCEPT",
        Decline = "DECLINE",
        AcceptInverseOffers = "ACCEPT_INVERSE_OFFERS",
        DeclineInverseOffers = "DECLINE_INVERSE_OFFERS",
        Revive = "REVIVE",
        Kill = "KILL",
        Shutdown = "SHUTDOWN",
        Acknowledge = "ACKNOWLEDGE",
        AcknowledgeOperationStatus = "ACKNOWLEDGE_OPERATION_STATUS",
        Reconcile = "RECONCILE",
        ReconcileOperations = "RECONCILE_OPERATIONS",
        Message = "MESSAGE",
        Request = "REQUEST",
        Suppress = "SUPPRESS",
        UpdateFramework = "UPDATE_FRAMEWORK",
    }
}

/// `Call`: one request from a framework.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Call {
    /// Set on every call but the first SUBSCRIBE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework_id: Option<FrameworkId>,
    /// `None` when the body has no `type` (a 400 on a real master).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<CallType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Subscribe>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept: Option<Accept>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline: Option<Decline>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accept_inverse_offers: Option<InverseOffersReply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decline_inverse_offers: Option<InverseOffersReply>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revive: Option<Revive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill: Option<Kill>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shutdown: Option<Shutdown>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge: Option<Acknowledge>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acknowledge_operation_status: Option<AcknowledgeOperationStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile: Option<Reconcile>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconcile_operations: Option<ReconcileOperations>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request: Option<Request>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppress: Option<Suppress>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_framework: Option<UpdateFramework>,
}

/// A request body that is not a `Call`: the JSON path where reading stopped, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// Where in the body, e.g. `accept.operations[0].launch.task_infos[1].task_id`.
    pub path: String,
    /// What was wrong there, e.g. ``missing field `value` at line 1 column 212``.
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() || self.path == "." {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

impl std::error::Error for ParseError {}

impl Call {
    /// Parses a request body. The error names the offending member, so the 400 a framework
    /// gets back says what to fix.
    pub fn from_json(body: &[u8]) -> Result<Call, ParseError> {
        let mut de = serde_json::Deserializer::from_slice(body);
        let call: Call = serde_path_to_error::deserialize(&mut de).map_err(|e| ParseError {
            path: e.path().to_string(),
            message: e.inner().to_string(),
        })?;
        de.end().map_err(|e| ParseError {
            path: String::new(),
            message: e.to_string(),
        })?;
        Ok(call)
    }

    /// The call as compact JSON (what a client sends).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a Call always serializes")
    }

    /// A call of `type` from `framework_id` with no payload (REVIVE, SUPPRESS, TEARDOWN).
    pub fn new(r#type: CallType, framework_id: Option<FrameworkId>) -> Self {
        Self {
            framework_id,
            r#type: Some(r#type),
            ..Self::default()
        }
    }
}

/// `Call.Subscribe`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Subscribe {
    pub framework_info: FrameworkInfo,
    /// Roles it wants no offers for yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed_roles: Vec<String>,
}

/// `Call.UpdateFramework` (Mesos 1.9+): change a subscribed framework's info.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UpdateFramework {
    pub framework_info: FrameworkInfo,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed_roles: Vec<String>,
}

/// `Call.Accept`: use offers for `operations`, in order; whatever they leave unused is
/// declined with `filters`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accept {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offer_ids: Vec<OfferId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<Operation>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `Call.Decline`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Decline {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offer_ids: Vec<OfferId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `Call.AcceptInverseOffers` and `Call.DeclineInverseOffers` (the same shape). berth sends
/// no inverse offers, so it accepts these calls and ignores them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InverseOffersReply {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inverse_offer_ids: Vec<OfferId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Filters>,
}

/// `Call.Revive`: clear filters and offer again, for `roles` (all when empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revive {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// `Call.Suppress`: stop offers for `roles` (all when empty) until REVIVE.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suppress {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
}

/// `Call.Kill`. pymesos sends no `agent_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kill {
    pub task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    /// Overrides the task's own kill policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kill_policy: Option<KillPolicy>,
}

/// `Call.Shutdown`: stop a custom executor.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shutdown {
    pub executor_id: ExecutorId,
    pub agent_id: AgentId,
}

/// `Call.Acknowledge`: the framework received the status update with `uuid`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledge {
    pub agent_id: AgentId,
    pub task_id: TaskId,
    /// Must be the 16 bytes of the acknowledged status's uuid.
    pub uuid: Base64Bytes,
}

/// `Call.AcknowledgeOperationStatus`, accepted and ignored: berth sends no operation status
/// updates.
///
/// Every field is optional and `uuid` is kept as raw JSON because pymesos sends back the
/// whole `OperationStatus` it received, whose `uuid` is a `UUID` message rather than the
/// `bytes` the proto declares here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AcknowledgeOperationStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_provider_id: Option<ResourceProviderId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uuid: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation_id: Option<OperationId>,
}

/// `Call.Reconcile`: send the latest status of `tasks`, or of every task when empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconcile {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tasks: Vec<ReconcileTask>,
}

/// `Call.Reconcile.Task`. pymesos sends only `task_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileTask {
    pub task_id: TaskId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
}

/// `Call.ReconcileOperations`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileOperations {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<ReconcileOperation>,
}

/// `Call.ReconcileOperations.Operation`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReconcileOperation {
    pub operation_id: OperationId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_provider_id: Option<ResourceProviderId>,
}

/// `Call.Message` and `Event.Message` (the same shape): opaque bytes between a framework and
/// one of its executors.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub agent_id: AgentId,
    pub executor_id: ExecutorId,
    pub data: Base64Bytes,
}

/// `Call.Request`: resources asked of the allocator. A master's allocator ignores it; so
/// does berth.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Request {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub requests: Vec<crate::v1::Request>,
}

// ---------------------------------------------------------------------------------------------
// Events

proto_enum! {
    /// `Event.Type`.
    pub enum EventType fallback Unknown {
        Unknown = "UNKNOWN",
        Subscribed = "SUBSCRIBED",
        Offers = "OFFERS",
        InverseOffers = "INVERSE_OFFERS",
        Rescind = "RESCIND",
        RescindInverseOffer = "RESCIND_INVERSE_OFFER",
        Update = "UPDATE",
        UpdateOperationStatus = "UPDATE_OPERATION_STATUS",
        Message = "MESSAGE",
        Failure = "FAILURE",
        Error = "ERROR",
        Heartbeat = "HEARTBEAT",
    }
}

/// `Event`: one record of the subscription stream.
///
/// Serializes as `{"type":"<TYPE>","<type>":{...}}` (HEARTBEAT has no payload), `type` first.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Subscribed(Subscribed),
    Offers(Offers),
    InverseOffers(InverseOffers),
    Rescind(Rescind),
    RescindInverseOffer(RescindInverseOffer),
    Update(Update),
    UpdateOperationStatus(UpdateOperationStatus),
    Message(Message),
    Failure(Failure),
    Error(ErrorEvent),
    Heartbeat,
}

/// An event berth must not send: it would break the framework that reads it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// A status with a uuid asks to be acknowledged, and an ACKNOWLEDGE needs the agent id.
    #[error(
        "status of task {task_id} carries a uuid but no agent_id; the framework could not acknowledge it"
    )]
    UuidWithoutAgent { task_id: String },
    /// ACKNOWLEDGE is validated as a 16-byte UUID, so any other length can never be acked.
    #[error("status of task {task_id} has a {len}-byte uuid; a status uuid is 16 bytes")]
    UuidLength { task_id: String, len: usize },
}

impl Event {
    /// SUBSCRIBED: the framework's id and how often to expect HEARTBEAT.
    pub fn subscribed(
        framework_id: FrameworkId,
        heartbeat_interval_seconds: f64,
        master_info: Option<MasterInfo>,
    ) -> Event {
        Event::Subscribed(Subscribed {
            framework_id,
            heartbeat_interval_seconds: Some(heartbeat_interval_seconds),
            master_info,
        })
    }

    /// OFFERS, nested as `{"offers":{"offers":[...]}}`.
    pub fn offers(offers: Vec<Offer>) -> Event {
        Event::Offers(Offers { offers })
    }

    /// RESCIND of one offer.
    pub fn rescind(offer_id: OfferId) -> Event {
        Event::Rescind(Rescind { offer_id })
    }

    /// UPDATE with `status`. Refused when the status could not be acknowledged: a uuid
    /// without an agent_id, or a uuid that is not 16 bytes.
    pub fn update(status: TaskStatus) -> Result<Event, EventError> {
        Update::new(status).map(Event::Update)
    }

    /// MESSAGE from an executor.
    pub fn message(agent_id: AgentId, executor_id: ExecutorId, data: Base64Bytes) -> Event {
        Event::Message(Message {
            agent_id,
            executor_id,
            data,
        })
    }

    /// FAILURE of an agent (pymesos calls `slaveLost`).
    pub fn agent_failure(agent_id: AgentId) -> Event {
        Event::Failure(Failure {
            agent_id: Some(agent_id),
            executor_id: None,
            status: None,
        })
    }

    /// FAILURE of an executor with its wait status (pymesos calls `executorLost` and reads
    /// all three fields, so none may be missing).
    pub fn executor_failure(agent_id: AgentId, executor_id: ExecutorId, status: i32) -> Event {
        Event::Failure(Failure {
            agent_id: Some(agent_id),
            executor_id: Some(executor_id),
            status: Some(status),
        })
    }

    /// ERROR: the framework should abort (e.g. it was torn down, or failed over elsewhere).
    pub fn error(message: impl Into<String>) -> Event {
        Event::Error(ErrorEvent {
            message: message.into(),
        })
    }

    /// HEARTBEAT.
    pub fn heartbeat() -> Event {
        Event::Heartbeat
    }

    /// The `type` it is sent with.
    pub fn event_type(&self) -> EventType {
        match self {
            Event::Subscribed(_) => EventType::Subscribed,
            Event::Offers(_) => EventType::Offers,
            Event::InverseOffers(_) => EventType::InverseOffers,
            Event::Rescind(_) => EventType::Rescind,
            Event::RescindInverseOffer(_) => EventType::RescindInverseOffer,
            Event::Update(_) => EventType::Update,
            Event::UpdateOperationStatus(_) => EventType::UpdateOperationStatus,
            Event::Message(_) => EventType::Message,
            Event::Failure(_) => EventType::Failure,
            Event::Error(_) => EventType::Error,
            Event::Heartbeat => EventType::Heartbeat,
        }
    }

    /// Compact JSON, one RecordIO record's payload.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an Event always serializes")
    }

    /// Parses one record's payload (for tests and clients).
    pub fn from_json(record: &[u8]) -> Result<Event, serde_json::Error> {
        serde_json::from_slice(record)
    }
}

/// `Event.Subscribed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subscribed {
    pub framework_id: FrameworkId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heartbeat_interval_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_info: Option<MasterInfo>,
}

/// `Event.Offers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Offers {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offers: Vec<Offer>,
}

/// `Event.InverseOffers`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct InverseOffers {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inverse_offers: Vec<InverseOffer>,
}

/// `Event.Rescind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rescind {
    pub offer_id: OfferId,
}

/// `Event.RescindInverseOffer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RescindInverseOffer {
    pub inverse_offer_id: OfferId,
}

/// `Event.Update`: a task status. Built only through [`Update::new`] (or parsing, which
/// applies the same check), so every UPDATE can be acknowledged.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Update {
    status: TaskStatus,
}

impl Update {
    /// Refuses a status whose uuid lacks an agent_id or is not 16 bytes.
    pub fn new(status: TaskStatus) -> Result<Update, EventError> {
        if let Some(uuid) = &status.uuid {
            if status.agent_id.is_none() {
                return Err(EventError::UuidWithoutAgent {
                    task_id: status.task_id.value.clone(),
                });
            }
            if uuid.len() != 16 {
                return Err(EventError::UuidLength {
                    task_id: status.task_id.value.clone(),
                    len: uuid.len(),
                });
            }
        }
        Ok(Update { status })
    }

    pub fn status(&self) -> &TaskStatus {
        &self.status
    }

    pub fn into_status(self) -> TaskStatus {
        self.status
    }
}

impl<'de> Deserialize<'de> for Update {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            status: TaskStatus,
        }
        let raw = Raw::deserialize(deserializer)?;
        Update::new(raw.status).map_err(D::Error::custom)
    }
}

/// `Event.UpdateOperationStatus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UpdateOperationStatus {
    pub status: OperationStatus,
}

/// `Event.Failure`: an agent or an executor is gone. Built by [`Event::agent_failure`] and
/// [`Event::executor_failure`], which always set what pymesos reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    agent_id: Option<AgentId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    executor_id: Option<ExecutorId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    status: Option<i32>,
}

impl Failure {
    pub fn agent_id(&self) -> Option<&AgentId> {
        self.agent_id.as_ref()
    }

    pub fn executor_id(&self) -> Option<&ExecutorId> {
        self.executor_id.as_ref()
    }

    /// The executor's wait status (`waitpid` form), when known.
    pub fn status(&self) -> Option<i32> {
        self.status
    }
}

/// `Event.Error`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorEvent {
    pub message: String,
}

impl Serialize for Event {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let entries = if matches!(self, Event::Heartbeat) {
            1
        } else {
            2
        };
        let mut map = serializer.serialize_map(Some(entries))?;
        map.serialize_entry("type", &self.event_type())?;
        match self {
            Event::Subscribed(p) => map.serialize_entry("subscribed", p)?,
            Event::Offers(p) => map.serialize_entry("offers", p)?,
            Event::InverseOffers(p) => map.serialize_entry("inverse_offers", p)?,
            Event::Rescind(p) => map.serialize_entry("rescind", p)?,
            Event::RescindInverseOffer(p) => map.serialize_entry("rescind_inverse_offer", p)?,
            Event::Update(p) => map.serialize_entry("update", p)?,
            Event::UpdateOperationStatus(p) => map.serialize_entry("update_operation_status", p)?,
            Event::Message(p) => map.serialize_entry("message", p)?,
            Event::Failure(p) => map.serialize_entry("failure", p)?,
            Event::Error(p) => map.serialize_entry("error", p)?,
            Event::Heartbeat => {}
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            r#type: Option<EventType>,
            subscribed: Option<Subscribed>,
            offers: Option<Offers>,
            inverse_offers: Option<InverseOffers>,
            rescind: Option<Rescind>,
            rescind_inverse_offer: Option<RescindInverseOffer>,
            update: Option<Update>,
            update_operation_status: Option<UpdateOperationStatus>,
            message: Option<Message>,
            failure: Option<Failure>,
            error: Option<ErrorEvent>,
        }

        fn need<T, E: serde::de::Error>(payload: Option<T>, t: EventType) -> Result<T, E> {
            payload.ok_or_else(|| {
                E::custom(format_args!(
                    "{t} event without its `{}` payload",
                    t.as_str().to_ascii_lowercase()
                ))
            })
        }

        let raw = Raw::deserialize(deserializer)?;
        let t = raw
            .r#type
            .ok_or_else(|| D::Error::custom("event without `type`"))?;
        Ok(match t {
            EventType::Subscribed => Event::Subscribed(need(raw.subscribed, t)?),
            EventType::Offers => Event::Offers(need(raw.offers, t)?),
            EventType::InverseOffers => Event::InverseOffers(need(raw.inverse_offers, t)?),
            EventType::Rescind => Event::Rescind(need(raw.rescind, t)?),
            EventType::RescindInverseOffer => {
                Event::RescindInverseOffer(need(raw.rescind_inverse_offer, t)?)
            }
            EventType::Update => Event::Update(need(raw.update, t)?),
            EventType::UpdateOperationStatus => {
                Event::UpdateOperationStatus(need(raw.update_operation_status, t)?)
            }
            EventType::Message => Event::Message(need(raw.message, t)?),
            EventType::Failure => Event::Failure(need(raw.failure, t)?),
            EventType::Error => Event::Error(need(raw.error, t)?),
            EventType::Heartbeat => Event::Heartbeat,
            EventType::Unknown => return Err(D::Error::custom("event of unknown type")),
        })
    }
}
