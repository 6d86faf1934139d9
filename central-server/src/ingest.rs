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

/// Most unacknowledged deliveries the broker may have in flight to the server.
pub const RECEIVE_MAXIMUM: u16 = 256;

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
        .set_max_packet_size(Some(256 * 1024))
        // At most this many unacknowledged messages in flight to us. Acks go through the client's
        // request channel, which the event loop drains only between deliveries: the channel
        // must hold more acks than the broker may have in flight, or an ack waits forever.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    if let Some((u, p)) = &opts.credentials {
        mo.set_credentials(u.clone(), p.clone());
    }
    let (client, mut eventloop) = AsyncClient::new(mo, 4 * usize::from(RECEIVE_MAXIMUM));
    let mut failures = 0u32;
    let mut batch: Vec<Publish> = Vec::new();
    let mut flush_at: Option<tokio::time::Instant> = None;
    loop {
        let ev = tokio::select! {
            ev = eventloop.poll() => Some(ev),
            () = async {
                match flush_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            } => None,
            _ = shutdown.changed() => break,
        };
        match ev {
            None => {
                flush(&mut batch, &client, &store, &metrics, &alerter).await;
                flush_at = None;
            }
            Some(Ok(Event::Incoming(Packet::SubAck(_)))) => {
                // Ready only once subscribed: what is published from now on reaches us.
                metrics.set_connected(true);
            }
            Some(Ok(Event::Incoming(Packet::ConnAck(_)))) => {
                failures = 0;
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
            Some(Ok(Event::Incoming(Packet::Publish(p)))) => {
                batch.push(p);
                if batch.len() >= BATCH_MAX {
                    flush(&mut batch, &client, &store, &metrics, &alerter).await;
                    flush_at = None;
                } else if flush_at.is_none() {
                    flush_at = Some(tokio::time::Instant::now() + BATCH_WAIT);
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                // Unacknowledged deliveries come again on the next connection (the session
                // persists), so a half-collected batch is simply dropped here.
                batch.clear();
                flush_at = None;
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
    flush(&mut batch, &client, &store, &metrics, &alerter).await;
    let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    metrics.set_connected(false);
}

/// Most messages stored in one transaction.
const BATCH_MAX: usize = 128;
/// Longest a received message waits for its batch to fill.
const BATCH_WAIT: Duration = Duration::from_millis(5);

fn ack(client: &AsyncClient, p: &Publish) {
    // `try_ack`: never wait on the request channel from inside the event loop's task. A lost
    // ack only means the broker delivers the message again (deduped by event_id).
    if let Err(e) = client.try_ack(p) {
        tracing::warn!("acknowledging: {e}");
    }
}

/// Decodes a batch, stores the good messages in one transaction, acknowledges what may be.
async fn flush(
    batch: &mut Vec<Publish>,
    client: &AsyncClient,
    store: &Store,
    metrics: &Metrics,
    alerter: &Alerter,
) {
    if batch.is_empty() {
        return;
    }
    let mut good: Vec<(usize, protocol::Message, String)> = Vec::with_capacity(batch.len());
    for (i, p) in batch.iter().enumerate() {
        let topic = String::from_utf8_lossy(&p.topic).to_string();
        let kind = topic.rsplit('/').next().unwrap_or("unknown");
        metrics.received(kind);
        match protocol::decode(&topic, &p.payload) {
            Ok(m) => good.push((i, m, String::from_utf8_lossy(&p.payload).to_string())),
            Err(e) => {
                metrics.rejected(e.reason());
                tracing::warn!("rejected: {e}");
                if let Err(db) = store.reject(&topic, e.reason(), &e.to_string()).await {
                    tracing::error!("recording a rejected message: {db}");
                }
                ack(client, p);
            }
        }
    }
    let refs: Vec<(&protocol::Message, &str)> =
        good.iter().map(|(_, m, p)| (m, p.as_str())).collect();
    for attempt in 0..5 {
        let now = OffsetDateTime::now_utc();
        match store.ingest_batch(&refs, now).await {
            Ok(results) => {
                for ((i, m, _), r) in good.iter().zip(results) {
                    match r {
                        Ingested::New(alerts) => {
                            let latency = (now - m.observed_at()).as_seconds_f64() * 1e3;
                            metrics.stored(m.kind().as_str(), latency);
                            alerter.raise(alerts);
                        }
                        Ingested::Duplicate => metrics.duplicate(),
                    }
                    ack(client, &batch[*i]);
                }
                batch.clear();
                return;
            }
            Err(e) => {
                metrics.store_error();
                tracing::error!("storing a batch of {} messages: {e}", refs.len());
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
        }
    }
    // Not stored and not acknowledged: the broker delivers them again after a reconnect.
    batch.clear();
}
