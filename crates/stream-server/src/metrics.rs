//! The server's counters, exposed in Prometheus text at `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::probe::Probes;

/// A label with one `reason`/`mode` value.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The value.
    pub reason: String,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    /// Open WebSocket connections.
    pub connections: Gauge,
    /// Channel subscriptions across connections.
    pub subscriptions: Gauge,
    /// Sequenced frames written to sockets.
    pub frames_sent: Counter,
    /// Frames sequenced and committed.
    pub frames_committed: Counter,
    /// Subscribes by verdict (`replay_memory`, `replay_log`, `snapshot`).
    pub resumes: Family<Reason, Counter>,
    /// Seconds per group commit.
    pub commit_seconds: Histogram,
    /// Writes per group commit.
    pub commit_batch: Histogram,
    /// Subscriptions dropped because their connection did not read.
    pub slow_consumer_drops: Counter,
    /// Client input refused, by reason.
    pub rejected_inputs: Family<Reason, Counter>,
    /// Frames the sequencer refused (a second terminal event...), by reason.
    pub dropped_frames: Family<Reason, Counter>,
    /// Sessions whose log was compacted into a base snapshot.
    pub compactions: Counter,
    /// The latency probe's ages by stage (recording only with probing on).
    pub probes: Probes,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new(false)
    }
}

impl Metrics {
    /// Registers every metric; the probe's ages are recorded when `probing`.
    pub fn new(probing: bool) -> Self {
        let mut registry = Registry::with_prefix("stream");
        let metrics = Self {
            connections: Gauge::default(),
            subscriptions: Gauge::default(),
            frames_sent: Counter::default(),
            frames_committed: Counter::default(),
            resumes: Family::default(),
            commit_seconds: Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            commit_batch: Histogram::new(exponential_buckets(1.0, 2.0, 14)),
            slow_consumer_drops: Counter::default(),
            rejected_inputs: Family::default(),
            dropped_frames: Family::default(),
            compactions: Counter::default(),
            probes: Probes::new(probing),
            registry: Registry::default(),
        };
        registry.register("connections", "Open WebSocket connections", metrics.connections.clone());
        registry.register("subscriptions", "Channel subscriptions", metrics.subscriptions.clone());
        registry.register(
            "frames_sent",
            "Sequenced frames written to sockets (plus the one unsubscribed notice per subscriber of a deleted session, which shares their queue)",
            metrics.frames_sent.clone(),
        );
        registry.register("frames_committed", "Frames committed to the log", metrics.frames_committed.clone());
        registry.register("resumes", "Subscribes by verdict", metrics.resumes.clone());
        registry.register("commit_seconds", "Seconds per group commit", metrics.commit_seconds.clone());
        registry.register("commit_batch_writes", "Writes per group commit", metrics.commit_batch.clone());
        registry.register(
            "slow_consumer_drops",
            "Subscriptions that fell behind the live fan-out and caught up from the log",
            metrics.slow_consumer_drops.clone(),
        );
        registry.register("rejected_inputs", "Client input refused, by reason", metrics.rejected_inputs.clone());
        registry.register("dropped_frames", "Frames the sequencer refused, by reason", metrics.dropped_frames.clone());
        registry.register("compactions", "Session logs compacted into a base snapshot", metrics.compactions.clone());
        registry.register(
            "probe_age_seconds",
            "Age of the latency probe's frames (--demo-probe-every) at each stage of the pipeline",
            metrics.probes.ages(),
        );
        Self { registry, ..metrics }
    }

    /// Counts a refused input.
    pub fn reject(&self, reason: &str) {
        self.rejected_inputs.get_or_create(&Reason { reason: reason.to_owned() }).inc();
    }

    /// Counts a subscribe by verdict.
    pub fn resume(&self, mode: &str) {
        self.resumes.get_or_create(&Reason { reason: mode.to_owned() }).inc();
    }

    /// Counts a frame the sequencer refused.
    pub fn drop_frame(&self, reason: &str) {
        self.dropped_frames.get_or_create(&Reason { reason: reason.to_owned() }).inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
