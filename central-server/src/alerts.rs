//! Alerts: a critical gap, a jammer band going down, a sensor going offline. Each is a log line
//! (target `alert`) and, when configured, a JSON POST to a webhook.

use std::time::Duration;

use serde::Serialize;

use crate::metrics::Metrics;

/// Something a supervisor must hear about now.
#[derive(Debug, Clone, PartialEq, Serialize)]
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

impl Alert {
    /// Label for counters.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::CriticalGap { .. } => "critical_gap",
            Self::JammerDown { .. } => "jammer_down",
            Self::SensorOffline { .. } => "sensor_offline",
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

/// Sends alerts to the log and the webhook.
#[derive(Debug, Clone)]
pub struct Alerter {
    webhook: Option<String>,
    client: reqwest::Client,
    metrics: Metrics,
}

impl Alerter {
    /// An alerter posting to `webhook` when given.
    #[must_use]
    pub fn new(webhook: Option<String>, metrics: Metrics) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            webhook,
            client,
            metrics,
        }
    }

    /// Raises alerts: logs each at once; the webhook posts run in the background.
    pub fn raise(&self, alerts: Vec<Alert>) {
        for a in alerts {
            tracing::warn!(target: "alert", "{}", a.sentence());
            self.metrics.alert(a.label());
            if let Some(url) = self.webhook.clone() {
                let client = self.client.clone();
                let metrics = self.metrics.clone();
                tokio::spawn(async move {
                    let r = client.post(&url).json(&a).send().await;
                    match r.map(|r| r.error_for_status()) {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) | Err(e) => {
                            metrics.webhook_failed();
                            tracing::warn!("webhook {url}: {e}");
                        }
                    }
                });
            }
        }
    }
}
