//! What an agent measures: container starts and how long each runtime call takes.
//!
//! ```text
//!  supervisor ──► Measured (one wrapper per runtime) ──► docker | process | hollow
//!                    └─ times prepare_image, create, start, stop, remove; counts starts
//! ```
//! Every runtime is wrapped once where the agent builds them, so the supervisor, the
//! reconciler and adoption are measured alike without a line of their own, and a new runtime
//! is measured the day it is added. [`AgentMetrics`] is a Prometheus collector: `berth agent
//! --metrics-listen` serves it alone, and `berth dev` adds it to its server's `/metrics`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Unit;

use crate::runtime::{
    ContainerSpec, ContainerState, Existing, LogStream, Runtime, RuntimeError, RuntimeKind,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StartLabels {
    runtime: &'static str,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CallLabels {
    runtime: &'static str,
    operation: &'static str,
}

fn call_histogram() -> Histogram {
    // 1 ms to ~65 s: a hollow start takes microseconds, an image pull can take a minute.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// The agent's counters and histograms; clones share them.
#[derive(Debug, Clone)]
pub struct AgentMetrics {
    starts: Family<StartLabels, Counter>,
    calls: Family<CallLabels, Histogram, fn() -> Histogram>,
    errors: Family<CallLabels, Counter>,
}

impl Default for AgentMetrics {
    fn default() -> Self {
        AgentMetrics {
            starts: Family::default(),
            calls: Family::new_with_constructor(call_histogram),
            errors: Family::default(),
        }
    }
}

impl AgentMetrics {
    /// `runtime`, measured.
    pub(crate) fn measure(&self, runtime: Arc<dyn Runtime>) -> Arc<dyn Runtime> {
        Arc::new(Measured {
            kind: runtime.kind().as_str(),
            inner: runtime,
            metrics: self.clone(),
        })
    }

    fn started(&self, runtime: &'static str, ok: bool) {
        let result = if ok { "started" } else { "failed" };
        self.starts
            .get_or_create(&StartLabels { runtime, result })
            .inc();
    }

    /// Times `call` as `operation` on `runtime`, counting it if it fails.
    async fn timed<T>(
        &self,
        runtime: &'static str,
        operation: &'static str,
        call: impl Future<Output = Result<T, RuntimeError>>,
    ) -> Result<T, RuntimeError> {
        let began = Instant::now();
        let result = call.await;
        let labels = CallLabels { runtime, operation };
        self.calls
            .get_or_create(&labels)
            .observe(began.elapsed().as_secs_f64());
        if result.is_err() {
            self.errors.get_or_create(&labels).inc();
        }
        result
    }
}

impl Collector for AgentMetrics {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.starts.encode(encoder.encode_descriptor(
            "berth_agent_container_starts",
            "Containers this agent created and started (started), or could not (failed), by runtime",
            None,
            self.starts.metric_type(),
        )?)?;
        self.calls.encode(encoder.encode_descriptor(
            "berth_agent_runtime_call_duration",
            "Time a runtime call took (prepare_image, create, start, stop, remove), by runtime",
            Some(&Unit::Seconds),
            self.calls.metric_type(),
        )?)?;
        self.errors.encode(encoder.encode_descriptor(
            "berth_agent_runtime_call_errors",
            "Runtime calls that failed, by runtime and call",
            None,
            self.errors.metric_type(),
        )?)
    }
}

/// A runtime whose calls are measured.
struct Measured {
    kind: &'static str,
    inner: Arc<dyn Runtime>,
    metrics: AgentMetrics,
}

#[async_trait]
impl Runtime for Measured {
    fn kind(&self) -> RuntimeKind {
        self.inner.kind()
    }

    async fn version(&self) -> Result<String, RuntimeError> {
        self.inner.version().await
    }

    async fn prepare_image(&self, image: &str) -> Result<Option<String>, RuntimeError> {
        let call = self.inner.prepare_image(image);
        self.metrics.timed(self.kind, "prepare_image", call).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<String, RuntimeError> {
        let created = self
            .metrics
            .timed(self.kind, "create", self.inner.create(spec))
            .await;
        if created.is_err() {
            self.metrics.started(self.kind, false);
        }
        created
    }

    async fn start(&self, id: &str) -> Result<(), RuntimeError> {
        let started = self
            .metrics
            .timed(self.kind, "start", self.inner.start(id))
            .await;
        self.metrics.started(self.kind, started.is_ok());
        started
    }

    async fn inspect(&self, id: &str) -> Result<ContainerState, RuntimeError> {
        self.inner.inspect(id).await
    }

    async fn wait(&self, id: &str) -> Result<i32, RuntimeError> {
        self.inner.wait(id).await
    }

    async fn stop(&self, id: &str, timeout: Duration) -> Result<(), RuntimeError> {
        let call = self.inner.stop(id, timeout);
        self.metrics.timed(self.kind, "stop", call).await
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let call = self.inner.remove(id);
        self.metrics.timed(self.kind, "remove", call).await
    }

    async fn list(&self) -> Result<Vec<Existing>, RuntimeError> {
        self.inner.list().await
    }

    async fn logs(&self, id: &str, follow: bool) -> Result<LogStream, RuntimeError> {
        self.inner.logs(id, follow).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::LABEL_TASK;
    use crate::runtime::hollow::HollowRuntime;

    fn rendered(metrics: &AgentMetrics) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(metrics.clone()));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        text
    }

    #[tokio::test]
    async fn starts_and_failures_are_counted_per_runtime() {
        let metrics = AgentMetrics::default();
        let hollow = metrics.measure(Arc::new(HollowRuntime::new()));
        let spec = ContainerSpec {
            runtime_name: "web".to_owned(),
            task_arn: "task-web".to_owned(),
            container_name: "web".to_owned(),
            image: "anything".to_owned(),
            labels: [(LABEL_TASK.to_owned(), "task-web".to_owned())].into(),
            ..ContainerSpec::default()
        };
        let id = hollow.create(&spec).await.expect("created");
        hollow.start(&id).await.expect("started");
        assert!(
            hollow.create(&spec).await.is_err(),
            "the same runtime name twice"
        );
        let text = rendered(&metrics);
        for line in [
            "berth_agent_container_starts_total{runtime=\"hollow\",result=\"started\"} 1",
            "berth_agent_container_starts_total{runtime=\"hollow\",result=\"failed\"} 1",
            "berth_agent_runtime_call_duration_seconds_count{runtime=\"hollow\",operation=\"start\"} 1",
            "berth_agent_runtime_call_errors_total{runtime=\"hollow\",operation=\"create\"} 1",
        ] {
            assert!(text.contains(line), "{line} in\n{text}");
        }
    }
}
