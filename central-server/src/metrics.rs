//! Prometheus metrics of the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

/// Counters and gauges, cheap to clone.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    received: Family<KindLabel, Counter>,
    stored: Family<KindLabel, Counter>,
    duplicates: Counter,
    rejected: Family<ReasonLabel, Counter>,
    store_errors: Counter,
    alerts: Family<KindLabel, Counter>,
    webhook_failures: Counter,
    http_bad_requests: Counter,
    broker_connected: Gauge<i64, AtomicI64>,
    ingest_latency_ms: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric.
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("centinela");
        let received = Family::<KindLabel, Counter>::default();
        let stored = Family::<KindLabel, Counter>::default();
        let duplicates = Counter::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let store_errors = Counter::default();
        let alerts = Family::<KindLabel, Counter>::default();
        let webhook_failures = Counter::default();
        let http_bad_requests = Counter::default();
        let broker_connected = Gauge::<i64, AtomicI64>::default();
        let ingest_latency_ms = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "messages_received",
            "MQTT messages received, by kind",
            received.clone(),
        );
        registry.register("events_stored", "Events stored, by kind", stored.clone());
        registry.register(
            "events_duplicate",
            "Events already stored under their event_id",
            duplicates.clone(),
        );
        registry.register(
            "messages_rejected",
            "Malformed or inconsistent messages, by reason",
            rejected.clone(),
        );
        registry.register(
            "store_errors",
            "Database failures while ingesting",
            store_errors.clone(),
        );
        registry.register("alerts", "Alerts raised, by kind", alerts.clone());
        registry.register(
            "webhook_failures",
            "Alert webhook posts that failed",
            webhook_failures.clone(),
        );
        registry.register(
            "http_bad_requests",
            "HTTP requests answered 400 or 404",
            http_bad_requests.clone(),
        );
        registry.register(
            "broker_connected",
            "1 while the ingest session is connected and subscribed",
            broker_connected.clone(),
        );
        registry.register(
            "ingest_latency_ms",
            "Observation-to-storage latency of the last stored event, milliseconds",
            ingest_latency_ms.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                received,
                stored,
                duplicates,
                rejected,
                store_errors,
                alerts,
                webhook_failures,
                http_bad_requests,
                broker_connected,
                ingest_latency_ms,
            }),
        }
    }

    /// A message arrived.
    pub fn received(&self, kind: &str) {
        self.inner
            .received
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// An event was stored.
    pub fn stored(&self, kind: &str, latency_ms: f64) {
        self.inner
            .stored
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
        self.inner.ingest_latency_ms.set(latency_ms);
    }

    /// A duplicate arrived.
    pub fn duplicate(&self) {
        self.inner.duplicates.inc();
    }

    /// A message was rejected.
    pub fn rejected(&self, reason: &str) {
        self.inner
            .rejected
            .get_or_create(&ReasonLabel {
                reason: reason.into(),
            })
            .inc();
    }

    /// Rejections so far, all reasons.
    #[must_use]
    pub fn rejected_total(&self) -> u64 {
        let mut n = 0;
        for r in [
            "topic",
            "too_large",
            "json",
            "schema",
            "fields",
            "mismatch",
            "value",
        ] {
            n += self
                .inner
                .rejected
                .get_or_create(&ReasonLabel { reason: r.into() })
                .get();
        }
        n
    }

    /// The database failed.
    pub fn store_error(&self) {
        self.inner.store_errors.inc();
    }

    /// An alert was raised.
    pub fn alert(&self, kind: &str) {
        self.inner
            .alerts
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    /// A webhook post failed.
    pub fn webhook_failed(&self) {
        self.inner.webhook_failures.inc();
    }

    /// An HTTP request was bad.
    pub fn bad_request(&self) {
        self.inner.http_bad_requests.inc();
    }

    /// Ingest session state.
    pub fn set_connected(&self, up: bool) {
        self.inner.broker_connected.set(i64::from(up));
    }

    /// Whether the ingest session is connected.
    #[must_use]
    pub fn connected(&self) -> bool {
        self.inner.broker_connected.get() == 1
    }

    /// The text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        if prometheus_client::encoding::text::encode(&mut s, &self.inner.registry).is_err() {
            s.clear();
        }
        s
    }
}
