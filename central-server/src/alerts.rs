//! Alerts: a critical gap, a jammer band going down, a sensor going offline, a tamper attempt.
//! Each is a log line (target `alert`) and, when configured, a JSON POST to a webhook.
//!
//! An alert is a row of the database before it is said: the transaction that changes the state
//! behind it records it ([`Raised`]), so several servers on one database raise it once, and the
//! server that recorded it claims its sending. Once said, its row records how ([`Outcome`]): a
//! webhook that fails is tried again later, by whichever server claims the alert then, up to
//! [`MAX_ATTEMPTS`] times; an alert whose server died before saying it is claimed by another
//! when its claim runs out.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::metrics::Metrics;

/// Something a supervisor must hear about now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "alert", rename_all = "snake_case")]
pub enum Alert {
    /// A gap opened (or grew) with critical severity.
    CriticalGap {
        /// Facility.
        facility_id: String,
        /// Sensor.
        sensor_id: String,
        /// Zone.
        zone: String,
        /// Band.
        band: String,
        /// Technology.
        technology: String,
        /// Cell, when named.
        pci: Option<u16>,
        /// Margin, dB.
        margin_db: f64,
    },
    /// A jammer band is down.
    JammerDown {
        /// Facility.
        facility_id: String,
        /// Sensor that saw it.
        sensor_id: String,
        /// Zone.
        zone: String,
        /// Band.
        band: String,
        /// Noise rise, dB.
        noise_rise_db: f64,
    },
    /// Someone spoke for a registered sensor without its key (forged, replayed, revoked or
    /// cloned messages). At most one per sensor per interval; every refusal is counted.
    Tamper {
        /// Facility.
        facility_id: String,
        /// Sensor the messages named.
        sensor_id: String,
        /// Reason label of the refusal.
        reason: String,
        /// What was refused.
        detail: String,
    },
    /// A sensor lost what it should have kept: events dropped from its outbox (full, or its
    /// disk failing with its memory queue full too) or evidence clips not kept, since its
    /// previous status.
    SensorLoss {
        /// Facility.
        facility_id: String,
        /// Sensor.
        sensor_id: String,
        /// Zone.
        zone: String,
        /// Events dropped since its previous status.
        events: u64,
        /// Evidence clips not kept since its previous status.
        clips: u64,
        /// Events it holds in memory only (its disk cannot be written).
        in_memory: u64,
    },
    /// A sensor went offline.
    SensorOffline {
        /// Facility.
        facility_id: String,
        /// Sensor.
        sensor_id: String,
        /// Zone.
        zone: String,
        /// Why the server thinks so.
        reason: String,
    },
}

/// Something wrong with this server itself, said at once by the server that sees it: it cannot
/// be a row of the database first (the database may be what fails), so it is not claimed or
/// settled; the webhook is tried a few times in the background.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "alert", rename_all = "snake_case")]
pub enum ServerAlert {
    /// The database does not take writes: nothing is stored and no receipt is sent (agents keep
    /// their events), until it does again.
    DatabaseUnwritable {
        /// The server that cannot write.
        server: String,
        /// The database's error.
        error: String,
        /// For how long writes have failed, seconds.
        failing_s: f64,
    },
    /// The database takes writes again.
    DatabaseWritable {
        /// The server.
        server: String,
        /// How long writes failed, seconds.
        after_s: f64,
    },
}

impl ServerAlert {
    /// Label for counters.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::DatabaseUnwritable { .. } => "database_unwritable",
            Self::DatabaseWritable { .. } => "database_writable",
        }
    }

    /// One line for the log, Spanish then English.
    #[must_use]
    pub fn sentence(&self) -> String {
        match self {
            Self::DatabaseUnwritable {
                server,
                error,
                failing_s,
            } => format!(
                "BASE DE DATOS SIN ESCRITURA en el servidor {server} desde hace {failing_s:.0} s: no se guarda nada ni se envían recibos; los sensores conservan sus eventos / DATABASE NOT WRITABLE on server {server} for {failing_s:.0} s ({error}): nothing is stored and no receipt is sent; sensors keep their events"
            ),
            Self::DatabaseWritable { server, after_s } => format!(
                "BASE DE DATOS ESCRIBE DE NUEVO en el servidor {server} tras {after_s:.0} s / DATABASE WRITABLE AGAIN on server {server} after {after_s:.0} s"
            ),
        }
    }
}

/// An alert recorded in the database, to be said.
#[derive(Debug, Clone, PartialEq)]
pub struct Raised {
    /// Its row.
    pub id: i64,
    /// How many times it has been tried, this one included.
    pub attempt: i64,
    /// The alert.
    pub alert: Alert,
}

/// How saying an alert ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The webhook took it.
    Sent,
    /// No webhook is configured: the log line is all.
    Logged,
    /// The webhook refused it [`MAX_ATTEMPTS`] times.
    Failed,
}

impl Outcome {
    /// The word stored in the alert's row.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Logged => "logged",
            Self::Failed => "failed",
        }
    }
}

/// Attempts at a webhook before an alert is given up (logged as failed, counted).
pub const MAX_ATTEMPTS: i64 = 8;

/// Where alerts' rows are settled: the store.
#[async_trait::async_trait]
pub trait Ledger: Send + Sync + std::fmt::Debug {
    /// The alert was said.
    ///
    /// # Errors
    /// The database.
    async fn settle(&self, id: i64, outcome: Outcome) -> Result<(), String>;

    /// The webhook failed: the alert waits `after` and is claimed again by any server.
    ///
    /// # Errors
    /// The database.
    async fn postpone(&self, id: i64, after: Duration) -> Result<(), String>;
}

impl Alert {
    /// The facility and sensor it is about.
    #[must_use]
    pub fn source(&self) -> (&str, &str) {
        match self {
            Self::CriticalGap {
                facility_id,
                sensor_id,
                ..
            }
            | Self::JammerDown {
                facility_id,
                sensor_id,
                ..
            }
            | Self::Tamper {
                facility_id,
                sensor_id,
                ..
            }
            | Self::SensorOffline {
                facility_id,
                sensor_id,
                ..
            }
            | Self::SensorLoss {
                facility_id,
                sensor_id,
                ..
            } => (facility_id, sensor_id),
        }
    }

    /// Label for counters.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::CriticalGap { .. } => "critical_gap",
            Self::JammerDown { .. } => "jammer_down",
            Self::SensorOffline { .. } => "sensor_offline",
            Self::SensorLoss { .. } => "sensor_loss",
            Self::Tamper { .. } => "tamper",
        }
    }

    /// One line for the log.
    #[must_use]
    pub fn sentence(&self) -> String {
        match self {
            Self::CriticalGap {
                facility_id,
                sensor_id,
                zone,
                band,
                technology,
                pci,
                margin_db,
            } => format!(
                "CRITICAL GAP at {facility_id}/{zone}: {technology} {band}{} leaks with {margin_db:+.1} dB margin (sensor {sensor_id})",
                pci.map(|p| format!(" PCI {p}")).unwrap_or_default()
            ),
            Self::JammerDown {
                facility_id,
                sensor_id,
                zone,
                band,
                noise_rise_db,
            } => format!(
                "JAMMER DOWN at {facility_id}/{zone}: band {band} noise rise {noise_rise_db:.1} dB (sensor {sensor_id})"
            ),
            Self::SensorOffline {
                facility_id,
                sensor_id,
                zone,
                reason,
            } => format!("SENSOR OFFLINE at {facility_id}/{zone}: {sensor_id}, {reason}"),
            Self::SensorLoss {
                facility_id,
                sensor_id,
                zone,
                events,
                clips,
                in_memory,
            } => format!(
                "SENSOR LOST EVIDENCE at {facility_id}/{zone}: sensor {sensor_id} dropped {events} event(s) and {clips} evidence clip(s) since its last status ({in_memory} held in memory only: its disk cannot be written or is full)"
            ),
            Self::Tamper {
                facility_id,
                sensor_id,
                reason,
                detail,
            } => format!(
                "TAMPER: a message for sensor {facility_id}/{sensor_id} was refused ({reason}): {detail}"
            ),
        }
    }
}

/// Says alerts: to the log and the webhook, then settles their rows in the ledger.
#[derive(Debug, Clone)]
pub struct Alerter {
    webhook: Option<String>,
    client: reqwest::Client,
    metrics: Metrics,
    ledger: Arc<dyn Ledger>,
}

impl Alerter {
    /// An alerter posting to `webhook` when given, settling alerts in `ledger`.
    #[must_use]
    pub fn new(webhook: Option<String>, metrics: Metrics, ledger: Arc<dyn Ledger>) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            webhook,
            client,
            metrics,
            ledger,
        }
    }

    /// Says alerts: logs each at once (a later attempt says so); the webhook posts and the
    /// settling run in the background.
    pub fn raise(&self, alerts: Vec<Raised>) {
        for r in alerts {
            if r.attempt <= 1 {
                tracing::warn!(target: "alert", "{}", r.alert.sentence());
                self.metrics.alert(r.alert.label());
            } else {
                tracing::info!(
                    target: "alert",
                    "(attempt {} of alert {}) {}",
                    r.attempt,
                    r.id,
                    r.alert.sentence()
                );
            }
            let this = self.clone();
            tokio::spawn(async move { this.deliver(r).await });
        }
    }

    /// Says an alert about this server itself: the log at once, the webhook in the background
    /// (three attempts, 5 s apart; no database row, since the database may be what fails).
    pub fn say_server(&self, alert: ServerAlert) {
        tracing::error!(target: "alert", "{}", alert.sentence());
        self.metrics.alert(alert.label());
        let Some(url) = self.webhook.clone() else {
            return;
        };
        let this = self.clone();
        tokio::spawn(async move {
            for attempt in 1..=3 {
                let res = this.client.post(&url).json(&alert).send().await;
                match res.map(reqwest::Response::error_for_status) {
                    Ok(Ok(_)) => return,
                    Ok(Err(e)) | Err(e) => {
                        this.metrics.webhook_failed();
                        tracing::warn!("webhook {url} (server alert, attempt {attempt} of 3): {e}");
                    }
                }
                tokio::time::sleep(Duration::from_secs(5)).await;
            }
        });
    }

    async fn deliver(&self, r: Raised) {
        let settled = match &self.webhook {
            None => self.ledger.settle(r.id, Outcome::Logged).await,
            Some(url) => {
                // The alert's row id goes with it (in the body and as an idempotency key): a
                // server that dies between the webhook's answer and settling the row leaves the
                // alert to another, which sends it again under the same id.
                let mut body = serde_json::to_value(&r.alert).unwrap_or_default();
                if let Some(o) = body.as_object_mut() {
                    o.insert("alert_id".into(), r.id.into());
                }
                let res = self
                    .client
                    .post(url)
                    .header("Idempotency-Key", format!("centinela-alert-{}", r.id))
                    .json(&body)
                    .send()
                    .await;
                match res.map(reqwest::Response::error_for_status) {
                    Ok(Ok(_)) => self.ledger.settle(r.id, Outcome::Sent).await,
                    Ok(Err(e)) | Err(e) => {
                        self.metrics.webhook_failed();
                        tracing::warn!(
                            "webhook {url} (alert {}, attempt {} of {MAX_ATTEMPTS}): {e}",
                            r.id,
                            r.attempt
                        );
                        if r.attempt >= MAX_ATTEMPTS {
                            tracing::error!(
                                target: "alert",
                                "alert {} given up after {MAX_ATTEMPTS} attempts at the webhook: {}",
                                r.id,
                                r.alert.sentence()
                            );
                            self.ledger.settle(r.id, Outcome::Failed).await
                        } else {
                            // 5 s, 10 s, 20 s, … up to 10 minutes.
                            let after = Duration::from_secs(5 << r.attempt.clamp(0, 7) as u32)
                                .min(Duration::from_secs(600));
                            self.ledger.postpone(r.id, after).await
                        }
                    }
                }
            }
        };
        if let Err(e) = settled {
            // Its claim runs out and another attempt says it again.
            tracing::warn!("settling alert {}: {e}", r.id);
        }
    }
}
