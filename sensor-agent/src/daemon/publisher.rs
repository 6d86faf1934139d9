//! The MQTT link of the agent (rumqttc, MQTT v5, QoS 1). The outbox is the truth: an event
//! leaves it only when the broker acknowledges it. A lost connection throws the session away and
//! sends again whatever was not acknowledged, so an event may arrive twice but never not at
//! all; the server dedupes by `event_id`.
//!
//! The retained `status` topic says `online` at connect and with each heartbeat; the Last Will
//! (retained) says `offline` if the agent vanishes, and a clean shutdown says so itself.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{Kind, STATUS_SCHEMA, SensorHealth, SensorState, StatusEvent, event_id, topic};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};

use crate::daemon::outbox::Outbox;

/// Most unacknowledged publishes at a time.
const WINDOW: usize = 64;

/// What the status messages say about the agent.
#[derive(Debug)]
pub struct StatusSource {
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// Zone.
    pub zone: String,
    /// Position, metres.
    pub position_m: Option<[f64; 2]>,
    /// Planned bands the radio cannot reach.
    pub unreachable_bands: Vec<String>,
    /// Heartbeat period, seconds.
    pub heartbeat_s: f64,
    /// Health counters, updated by the scanning thread.
    pub health: Mutex<SensorHealth>,
    /// The outbox (queue depth).
    pub outbox: Arc<Outbox>,
    /// Start of the agent.
    pub started: Instant,
    counter: std::sync::atomic::AtomicU64,
}

impl StatusSource {
    /// A status source.
    #[must_use]
    pub fn new(
        facility_id: String,
        sensor_id: String,
        zone: String,
        position_m: Option<[f64; 2]>,
        unreachable_bands: Vec<String>,
        heartbeat_s: f64,
        outbox: Arc<Outbox>,
    ) -> Self {
        Self {
            facility_id,
            sensor_id,
            zone,
            position_m,
            unreachable_bands,
            heartbeat_s,
            health: Mutex::new(SensorHealth::default()),
            outbox,
            started: Instant::now(),
            counter: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The status message now.
    #[must_use]
    pub fn status(&self, state: SensorState) -> StatusEvent {
        let now = OffsetDateTime::now_utc();
        let n = self
            .counter
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut health = self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        health.uptime_s = self.started.elapsed().as_secs_f64();
        health.queue_depth = self.outbox.len() as u64;
        health.outbox_dropped = self.outbox.dropped();
        StatusEvent {
            schema: STATUS_SCHEMA.into(),
            event_id: event_id(
                now,
                format!(
                    "status {} {} {n} {state:?}",
                    self.facility_id, self.sensor_id
                )
                .as_bytes(),
            ),
            facility_id: self.facility_id.clone(),
            sensor_id: self.sensor_id.clone(),
            observed_at: now,
            state,
            zone: self.zone.clone(),
            position_m: self.position_m,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            heartbeat_s: self.heartbeat_s,
            unreachable_bands: self.unreachable_bands.clone(),
            health,
        }
    }

    fn topic(&self) -> String {
        topic(&self.facility_id, &self.sensor_id, Kind::Status).unwrap_or_default()
    }

    fn payload(&self, state: SensorState) -> Vec<u8> {
        serde_json::to_vec(&self.status(state)).unwrap_or_default()
    }
}

/// Where the link connects.
#[derive(Debug, Clone)]
pub struct LinkOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Credentials.
    pub credentials: Option<(String, String)>,
    /// TLS: the CA certificate (PEM) and, for client authentication, certificate and key (PEM).
    pub tls: Option<TlsFiles>,
}

/// PEM contents for a TLS link.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// CA certificate(s) that sign the broker's certificate.
    pub ca: Vec<u8>,
    /// Client certificate and key.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

/// Counters of the link, for tests and logs.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LinkStats {
    /// Connections made.
    pub connects: u64,
    /// Events acknowledged by the broker.
    pub acked: u64,
    /// Publishes the broker refused (reason code ≥ 0x80); they stay in the outbox.
    pub refused: u64,
}

/// Runs the link until `shutdown`; then says `offline` (if connected) and returns.
pub async fn run(
    opts: LinkOptions,
    status: Arc<StatusSource>,
    outbox: Arc<Outbox>,
    wake: Arc<Notify>,
    mut qos0: mpsc::Receiver<(String, Vec<u8>)>,
    mut shutdown: watch::Receiver<bool>,
) -> LinkStats {
    let mut stats = LinkStats::default();
    let mut backoff = Duration::from_millis(250);
    let mut failures = 0u32;
    let client_id = format!("centinela-{}-{}", status.facility_id, status.sensor_id);
    'session: loop {
        if *shutdown.borrow() {
            break;
        }
        let mut mo = MqttOptions::new(client_id.clone(), opts.host.clone(), opts.port);
        mo.set_keep_alive(Duration::from_secs(10))
            .set_clean_start(true)
            .set_last_will(LastWill::new(
                status.topic(),
                status.payload(SensorState::Offline),
                QoS::AtLeastOnce,
                true,
                None,
            ));
        if let Some((u, p)) = &opts.credentials {
            mo.set_credentials(u.clone(), p.clone());
        }
        if let Some(tls) = &opts.tls {
            // rustls needs a process-wide crypto provider; a second install is a no-op error.
            let _ = rustls::crypto::ring::default_provider().install_default();
            mo.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
                ca: tls.ca.clone(),
                alpn: None,
                client_auth: tls.client.clone(),
            }));
        }
        let (client, mut el) = AsyncClient::new(mo, 4 * WINDOW);
        let mut requested: VecDeque<Option<u64>> = VecDeque::new();
        let mut inflight: HashMap<u16, u64> = HashMap::new();
        let mut last_sent: Option<u64> = None;
        let mut connected = false;
        let mut heartbeat = tokio::time::interval(Duration::from_secs_f64(status.heartbeat_s));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                ev = el.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        connected = true;
                        stats.connects += 1;
                        if failures > 0 {
                            tracing::info!("broker mqtt://{}:{} is back; {} event(s) to send", opts.host, opts.port, outbox.len());
                        } else {
                            tracing::info!("connected to mqtt://{}:{}", opts.host, opts.port);
                        }
                        failures = 0;
                        backoff = Duration::from_millis(250);
                        if client.publish(status.topic(), QoS::AtLeastOnce, true, status.payload(SensorState::Online)).await.is_ok() {
                            requested.push_back(None);
                        }
                        top_up(&client, &outbox, &mut requested, &inflight, &mut last_sent).await;
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(Some(seq)) = requested.pop_front() {
                            inflight.insert(pkid, seq);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some(seq) = inflight.remove(&ack.pkid) {
                            if matches!(ack.reason, PubAckReason::Success | PubAckReason::NoMatchingSubscribers) {
                                outbox.ack(seq);
                                stats.acked += 1;
                            } else {
                                stats.refused += 1;
                                tracing::error!("broker refused event {seq}: {:?}; it stays in the outbox", ack.reason);
                            }
                        }
                        top_up(&client, &outbox, &mut requested, &inflight, &mut last_sent).await;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        failures += 1;
                        if failures == 1 || failures.is_multiple_of(40) {
                            tracing::warn!("broker mqtt://{}:{}: {e}; events wait in the outbox ({} now)", opts.host, opts.port, outbox.len());
                        }
                        break;
                    }
                },
                () = wake.notified(), if connected => {
                    top_up(&client, &outbox, &mut requested, &inflight, &mut last_sent).await;
                }
                _ = heartbeat.tick(), if connected => {
                    if client.publish(status.topic(), QoS::AtLeastOnce, true, status.payload(SensorState::Online)).await.is_ok() {
                        requested.push_back(None);
                    }
                }
                Some((t, p)) = qos0.recv(), if connected => {
                    if client.publish(t, QoS::AtMostOnce, false, p).await.is_ok() {
                        requested.push_back(None);
                    }
                }
                _ = shutdown.changed() => {
                    if connected {
                        if client.publish(status.topic(), QoS::AtLeastOnce, true, status.payload(SensorState::Offline)).await.is_ok() {
                            requested.push_back(None);
                        }
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                        // Drain: let the offline status and in-flight events be acknowledged.
                        while tokio::time::Instant::now() < deadline {
                            match tokio::time::timeout_at(deadline, el.poll()).await {
                                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                                    if let Some(Some(seq)) = requested.pop_front() {
                                        inflight.insert(pkid, seq);
                                    }
                                }
                                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                                    if let Some(seq) = inflight.remove(&ack.pkid) {
                                        outbox.ack(seq);
                                        stats.acked += 1;
                                    }
                                    if inflight.is_empty() && requested.is_empty() {
                                        break;
                                    }
                                }
                                Ok(Ok(_)) => {}
                                Ok(Err(_)) | Err(_) => break,
                            }
                        }
                        let _ = client.disconnect().await;
                        let _ = tokio::time::timeout(Duration::from_millis(300), el.poll()).await;
                    }
                    break 'session;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => break 'session,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    stats
}

async fn top_up(
    client: &AsyncClient,
    outbox: &Outbox,
    requested: &mut VecDeque<Option<u64>>,
    inflight: &HashMap<u16, u64>,
    last_sent: &mut Option<u64>,
) {
    let busy = inflight.len() + requested.iter().filter(|r| r.is_some()).count();
    if busy >= WINDOW {
        return;
    }
    for (seq, e) in outbox.next_after(*last_sent, WINDOW - busy) {
        if client
            .publish(e.topic, QoS::AtLeastOnce, false, e.payload.into_bytes())
            .await
            .is_err()
        {
            return;
        }
        requested.push_back(Some(seq));
        *last_sent = Some(seq);
    }
}
