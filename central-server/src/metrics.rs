//! Prometheus metrics of the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

// Labels take values only from finite, validated sets (message kinds, rejection reasons, alert
// kinds): never anything a client wrote, or the exposition grows with every odd topic.

/// Why the embedded broker refuses a connection (`crate::broker::Access::check`): the labels
/// of its refusal counter, which [`Metrics::broker_refused_total`] sums.
pub const BROKER_REFUSALS: [&str; 4] = [
    "no_credentials",
    "unknown_user",
    "bad_password",
    "client_id",
];
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

/// Message kinds as metric labels: the wire kinds, and `invalid` for a topic that is not one.
fn kind_label(kind: &str) -> &'static str {
    match kind {
        "gap" => "gap",
        "jammer" => "jammer",
        "status" => "status",
        "spectrum" => "spectrum",
        _ => "invalid",
    }
}

/// Every rejection reason: decoding's and the registry's and signature's.
fn reasons() -> impl Iterator<Item = &'static str> {
    protocol::DecodeError::REASONS
        .into_iter()
        .chain(crate::trust::TrustError::REASONS)
}

/// Rejection reasons as labels (the finite set of [`reasons`]).
fn reason_label(reason: &str) -> &'static str {
    reasons().find(|r| *r == reason).unwrap_or("other")
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
    conflicts: Counter,
    receipts: Counter,
    ack_failures: Counter,
    disconnects: Counter,
    sessions_lost: Counter,
    session_takeovers: Counter,
    tls_failures: Counter,
    batches: Counter,
    batch_seconds: Counter<f64, AtomicU64>,
    broker_refused: Family<ReasonLabel, Counter>,
    http_refused: Family<ReasonLabel, Counter>,
    db_writable: Gauge<i64, AtomicI64>,
    db_write_failures: Counter,
    db_state: std::sync::Mutex<DbState>,
}

/// What the server last learnt of its database's writes, from each writer (the probe, ingest).
#[derive(Debug, Default, Clone)]
struct DbState {
    /// Per writer, since when and why its writes fail.
    failing: [Option<(std::time::Instant, String)>; 2],
    /// When a write last succeeded.
    last_ok: Option<std::time::Instant>,
}

/// Who wrote to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writer {
    /// The health probe (one small row every few seconds).
    Probe = 0,
    /// An ingest batch.
    Ingest = 1,
}

/// The database's write health, as `/api/health` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct DbHealth {
    /// The last write (probe or ingest batch) committed.
    pub writable: bool,
    /// Why the last write failed, while writes fail.
    pub error: Option<String>,
    /// For how long writes have failed, seconds.
    pub failing_s: Option<f64>,
    /// Seconds since a write last committed (`None`: none yet).
    pub last_ok_s: Option<f64>,
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
        let conflicts = Counter::default();
        let receipts = Counter::default();
        let ack_failures = Counter::default();
        let disconnects = Counter::default();
        let sessions_lost = Counter::default();
        let session_takeovers = Counter::default();
        let tls_failures = Counter::default();
        let batches = Counter::default();
        let batch_seconds = Counter::<f64, AtomicU64>::default();
        let broker_refused = Family::<ReasonLabel, Counter>::default();
        let http_refused = Family::<ReasonLabel, Counter>::default();
        let db_writable = Gauge::<i64, AtomicI64>::default();
        let db_write_failures = Counter::default();
        registry.register(
            "database_writable",
            "1 while the database's last write (a probe every few seconds, or an ingest batch) committed",
            db_writable.clone(),
        );
        registry.register(
            "database_write_failures",
            "Writes to the database that failed (probes and ingest batches)",
            db_write_failures.clone(),
        );
        registry.register(
            "http_refused",
            "HTTP requests and logins refused, by reason (see auth::REFUSALS)",
            http_refused.clone(),
        );
        registry.register(
            "broker_connections_refused",
            "Connections the embedded broker refused, by reason (no_credentials, unknown_user, bad_password, client_id)",
            broker_refused.clone(),
        );
        registry.register(
            "events_conflict",
            "Deliveries whose event_id is stored with other bytes (never stored)",
            conflicts.clone(),
        );
        registry.register(
            "receipts_published",
            "Commit receipts published to sensors",
            receipts.clone(),
        );
        registry.register(
            "ack_failures",
            "Acknowledgements that could not be queued (the broker delivers again)",
            ack_failures.clone(),
        );
        registry.register(
            "ingest_disconnects",
            "Times the ingest session lost its connection",
            disconnects.clone(),
        );
        registry.register(
            "ingest_sessions_lost",
            "Reconnections that found no session at the broker (what it queued is gone)",
            sessions_lost.clone(),
        );
        registry.register(
            "ingest_session_takeovers",
            "Times the broker said another client took over the ingest session's client id",
            session_takeovers.clone(),
        );
        registry.register(
            "ingest_tls_failures",
            "Connections to the broker refused by TLS (untrusted certificate, wrong host name, failed handshake)",
            tls_failures.clone(),
        );
        registry.register("ingest_batches", "Batches committed", batches.clone());
        registry.register(
            "ingest_batch_seconds",
            "Time spent committing batches",
            batch_seconds.clone(),
        );
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
                conflicts,
                receipts,
                ack_failures,
                disconnects,
                sessions_lost,
                session_takeovers,
                tls_failures,
                batches,
                batch_seconds,
                broker_refused,
                http_refused,
                db_writable,
                db_write_failures,
                db_state: std::sync::Mutex::default(),
            }),
        }
    }

    /// The embedded broker refused a connection (`reason` one of [`BROKER_REFUSALS`]).
    pub fn broker_refused(&self, reason: &'static str) {
        self.inner
            .broker_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// The API or the login refused a request (`reason` one of [`crate::auth::REFUSALS`]).
    pub fn http_refused(&self, reason: &'static str) {
        self.inner
            .http_refused
            .get_or_create(&ReasonLabel { reason })
            .inc();
    }

    /// Requests refused for `reason` so far.
    #[must_use]
    pub fn http_refused_count(&self, reason: &'static str) -> u64 {
        self.inner
            .http_refused
            .get_or_create(&ReasonLabel { reason })
            .get()
    }

    /// Connections the embedded broker refused so far.
    #[must_use]
    pub fn broker_refused_total(&self) -> u64 {
        BROKER_REFUSALS
            .iter()
            .map(|r| {
                self.inner
                    .broker_refused
                    .get_or_create(&ReasonLabel { reason: r })
                    .get()
            })
            .sum()
    }

    /// A message arrived.
    pub fn received(&self, kind: &str) {
        self.inner
            .received
            .get_or_create(&KindLabel {
                kind: kind_label(kind),
            })
            .inc();
    }

    /// An event was stored.
    pub fn stored(&self, kind: &str, latency_ms: f64) {
        self.inner
            .stored
            .get_or_create(&KindLabel {
                kind: kind_label(kind),
            })
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
                reason: reason_label(reason),
            })
            .inc();
    }

    /// Rejections so far, all reasons.
    #[must_use]
    pub fn rejected_total(&self) -> u64 {
        reasons()
            .map(|r| {
                self.inner
                    .rejected
                    .get_or_create(&ReasonLabel { reason: r })
                    .get()
            })
            .sum()
    }

    /// The database failed.
    pub fn store_error(&self) {
        self.inner.store_errors.inc();
    }

    /// A write to the database by `writer` committed (`Ok`) or failed. The database is
    /// writable while no writer's last write failed (a small probe may pass where a batch
    /// does not). Returns whether it was writable before, and is now: a change is worth saying.
    pub fn database_write(&self, writer: Writer, outcome: Result<(), String>) -> (bool, bool) {
        let mut st = self
            .inner
            .db_state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = st.failing.iter().all(Option::is_none);
        let slot = &mut st.failing[writer as usize];
        match outcome {
            Ok(()) => {
                *slot = None;
                st.last_ok = Some(std::time::Instant::now());
            }
            Err(e) => {
                let since = slot.as_ref().map_or_else(std::time::Instant::now, |f| f.0);
                *slot = Some((since, e));
                self.inner.db_write_failures.inc();
            }
        }
        let now = st.failing.iter().all(Option::is_none);
        self.inner
            .db_writable
            .set(i64::from(now && st.last_ok.is_some()));
        (before, now)
    }

    /// The database's write health.
    #[must_use]
    pub fn database(&self) -> DbHealth {
        let st = self
            .inner
            .db_state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let worst = st.failing.iter().flatten().min_by_key(|f| f.0);
        DbHealth {
            writable: worst.is_none() && st.last_ok.is_some(),
            error: worst.map(|f| f.1.clone()),
            failing_s: worst.map(|f| f.0.elapsed().as_secs_f64()),
            last_ok_s: st.last_ok.map(|t| t.elapsed().as_secs_f64()),
        }
    }

    /// An alert was raised.
    pub fn alert(&self, kind: &'static str) {
        self.inner.alerts.get_or_create(&KindLabel { kind }).inc();
    }

    /// A delivery's event id is stored with other bytes.
    pub fn conflict(&self) {
        self.inner.conflicts.inc();
    }

    /// A receipt was published.
    pub fn receipt_sent(&self) {
        self.inner.receipts.inc();
    }

    /// An acknowledgement could not be queued.
    pub fn ack_failed(&self) {
        self.inner.ack_failures.inc();
    }

    /// The ingest connection was lost.
    pub fn disconnected(&self) {
        self.inner.disconnects.inc();
    }

    /// A reconnection found no session.
    pub fn session_lost(&self) {
        self.inner.sessions_lost.inc();
    }

    /// The broker said another client took the session over.
    pub fn session_taken_over(&self) {
        self.inner.session_takeovers.inc();
    }

    /// A connection to the broker failed its TLS handshake or certificate check.
    pub fn tls_failed(&self) {
        self.inner.tls_failures.inc();
    }

    /// Connections to the broker refused by TLS so far.
    #[must_use]
    pub fn tls_failures(&self) -> u64 {
        self.inner.tls_failures.get()
    }

    /// A batch was committed in `took`.
    pub fn batch_stored(&self, took: std::time::Duration) {
        self.inner.batches.inc();
        self.inner.batch_seconds.inc_by(took.as_secs_f64());
    }

    /// Ingest disconnects, reconnections without a session and takeovers so far.
    #[must_use]
    pub fn session_troubles(&self) -> (u64, u64, u64) {
        (
            self.inner.disconnects.get(),
            self.inner.sessions_lost.get(),
            self.inner.session_takeovers.get(),
        )
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
