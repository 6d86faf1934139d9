//! Ingest: one persistent MQTT v5 session subscribed to every Centinela topic. Each message is
//! decoded and checked, stored idempotently, and only then acknowledged, so that the broker
//! delivers again whatever a crash interrupted. Bad messages are rejected, counted, recorded,
//! and acknowledged (they would never get better).

use std::time::Duration;

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, Publish};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::alerts::Alerter;
use crate::metrics::Metrics;
use crate::store::{Ingested, Store};

/// Subscription of the server.
pub const FILTER: &str = "centinela/v1/+/+/+";

/// Where and how the ingest session connects.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id of the persistent session.
    pub client_id: String,
    /// Credentials.
    pub credentials: Option<(String, String)>,
}

/// Runs the ingest session until `shutdown` turns true.
pub async fn run(
    opts: IngestOptions,
    store: Store,
    metrics: Metrics,
    alerter: Alerter,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut mo = MqttOptions::new(opts.client_id.clone(), opts.host.clone(), opts.port);
    mo.set_clean_start(false)
        .set_session_expiry_interval(Some(7 * 24 * 3600))
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(Some(256 * 1024));
    if let Some((u, p)) = &opts.credentials {
        mo.set_credentials(u.clone(), p.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(mo, 1024);
    let mut failures = 0u32;
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => ev,
            _ = shutdown.changed() => break,
        };
        match ev {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                failures = 0;
                metrics.set_connected(true);
                tracing::info!(
                    "ingest connected to mqtt://{}:{} as `{}`",
                    opts.host,
                    opts.port,
                    opts.client_id
                );
                if let Err(e) = client.subscribe(FILTER, QoS::AtLeastOnce).await {
                    tracing::error!("subscribing to {FILTER}: {e}");
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                if handle(&p, &store, &metrics, &alerter).await
                    && let Err(e) = client.ack(&p).await
                {
                    tracing::warn!("acknowledging: {e}");
                }
            }
            Ok(_) => {}
            Err(e) => {
                metrics.set_connected(false);
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(
                        "ingest: broker mqtt://{}:{} unreachable ({e}); retrying",
                        opts.host,
                        opts.port
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.changed() => break,
                }
            }
        }
    }
    let _ = client.disconnect().await;
    metrics.set_connected(false);
}

/// Handles one message; true when it may be acknowledged.
async fn handle(p: &Publish, store: &Store, metrics: &Metrics, alerter: &Alerter) -> bool {
    let topic = String::from_utf8_lossy(&p.topic).to_string();
    let kind = topic.rsplit('/').next().unwrap_or("unknown");
    metrics.received(kind);
    let msg = match protocol::decode(&topic, &p.payload) {
        Ok(m) => m,
        Err(e) => {
            metrics.rejected(e.reason());
            tracing::warn!("rejected: {e}");
            if let Err(db) = store.reject(&topic, e.reason(), &e.to_string()).await {
                tracing::error!("recording a rejected message: {db}");
            }
            return true;
        }
    };
    let payload = String::from_utf8_lossy(&p.payload);
    for attempt in 0..5 {
        let now = OffsetDateTime::now_utc();
        match store.ingest(&msg, &payload, now).await {
            Ok(Ingested::New(alerts)) => {
                let latency = (now - msg.observed_at()).as_seconds_f64() * 1e3;
                metrics.stored(msg.kind().as_str(), latency);
                alerter.raise(alerts);
                return true;
            }
            Ok(Ingested::Duplicate) => {
                metrics.duplicate();
                return true;
            }
            Err(e) => {
                metrics.store_error();
                tracing::error!("storing {} from {topic}: {e}", msg.event_id());
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    false
}
