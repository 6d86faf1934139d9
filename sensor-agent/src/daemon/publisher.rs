//! The MQTT link of the agent (rumqttc, MQTT v5, QoS 1). The outbox is the truth: an event
//! leaves it only when the server's commit receipt for it arrives
//! (`centinela/receipt/v1/{facility}/{sensor}`, see [`protocol::receipt`]), never on the
//! broker's PUBACK alone: a broker acknowledges what it then loses in a crash, drops what
//! overflows a queue, and answers 0x10 "no matching subscribers" when the server's session is
//! gone. What has no receipt within `receipt_timeout` is sent again (the timeout doubles with
//! each try, up to [`MAX_RESEND_INTERVAL`]); a lost connection sends again everything not
//! confirmed. So an event may arrive twice but never not at all; the server dedupes by
//! `event_id`. A receipt item acts only when its SHA-256 is that of this agent's own bytes.
//!
//! The retained `status` topic says `online` at connect and with each heartbeat; the Last Will
//! (retained) says `offline` if the agent vanishes, and a clean shutdown says so itself. Both
//! carry the start of the connection, so a late Will of an older connection is recognised.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{
    Kind, ReceiptError, STATUS_SCHEMA, SensorHealth, SensorState, StatusEvent, event_id, topic,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};

use crate::daemon::outbox::Outbox;
use crate::daemon::signer::Signer;

/// Most publishes waiting for the broker's acknowledgement at a time: the request queue's size.
const MQTT_INFLIGHT: u16 = 4 * WINDOW as u16;

pub use crate::daemon::session::MAX_RESEND_INTERVAL;
use crate::daemon::session::{Acked, BrokerAck, Session, Verdict, WINDOW};

/// First wait for a receipt before an event is sent again (the link's default).
pub const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(15);

/// What the status messages say about the agent.
#[derive(Debug)]
pub struct StatusSource {
    /// Where the status goes (checked once, at construction).
    status_topic: String,
    /// Where this sensor's receipts come from.
    receipt_topic: String,
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
    /// Seals every status.
    pub signer: Arc<Signer>,
    /// Start of the agent.
    pub started: Instant,
    counter: std::sync::atomic::AtomicU64,
    connected_at: Mutex<Option<OffsetDateTime>>,
    will_seq: Mutex<Option<u64>>,
    link: Mutex<LinkStats>,
}

impl StatusSource {
    /// A status source for the sensor `id`.
    ///
    /// # Errors
    /// [`crate::AgentError::Input`] for ids that cannot be topic levels.
    pub fn new(
        id: crate::config::Identity,
        position_m: Option<[f64; 2]>,
        unreachable_bands: Vec<String>,
        heartbeat_s: f64,
        outbox: Arc<Outbox>,
        signer: Arc<Signer>,
    ) -> Result<Self, crate::AgentError> {
        let bad = |e: protocol::ProtocolError| crate::AgentError::Input(e.to_string());
        let status_topic = topic(&id.facility_id, &id.sensor_id, Kind::Status).map_err(bad)?;
        let receipt_topic = protocol::receipt_topic(&id.facility_id, &id.sensor_id).map_err(bad)?;
        Ok(Self {
            status_topic,
            receipt_topic,
            facility_id: id.facility_id,
            sensor_id: id.sensor_id,
            zone: id.zone,
            position_m,
            unreachable_bands,
            heartbeat_s,
            health: Mutex::new(SensorHealth::default()),
            outbox,
            signer,
            started: Instant::now(),
            counter: std::sync::atomic::AtomicU64::new(0),
            connected_at: Mutex::new(None),
            will_seq: Mutex::new(None),
            link: Mutex::new(LinkStats::default()),
        })
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
        health.outbox_unwritten = self.outbox.unwritten();
        health.outbox_in_memory = self.outbox.in_memory() as u64;
        health.server_rejected = self.outbox.rejected();
        let connected_at = *self
            .connected_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
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
            connected_at,
            zone: self.zone.clone(),
            position_m: self.position_m,
            agent_version: env!("CARGO_PKG_VERSION").into(),
            heartbeat_s: self.heartbeat_s,
            unreachable_bands: self.unreachable_bands.clone(),
            health,
            will_seq: if state == SensorState::Online {
                *self
                    .will_seq
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
            } else {
                None
            },
        }
    }

    /// The connection's Last Will is sealed: its number is held in reserve until it is sent.
    fn set_will(&self, will: Option<&[u8]>) {
        *self
            .will_seq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) =
            will.and_then(|w| protocol::signed::Envelope::open(w).ok().map(|e| e.seq));
    }

    /// The link's counters so far (what [`run`] returns at the end).
    #[must_use]
    pub fn link_stats(&self) -> LinkStats {
        self.link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn publish_stats(&self, stats: &LinkStats) {
        stats.clone_into(
            &mut self
                .link
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
    }

    /// A new connection starts now: its statuses, and its Last Will, carry this time.
    fn new_connection(&self) {
        *self
            .connected_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(OffsetDateTime::now_utc());
    }

    fn count(&self, f: impl FnOnce(&mut SensorHealth)) {
        f(&mut self
            .health
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner));
    }

    fn topic(&self) -> String {
        self.status_topic.clone()
    }

    /// The sealed status; `None` (logged) when it cannot be sealed.
    fn payload(&self, state: SensorState) -> Option<Vec<u8>> {
        let msg = serde_json::to_vec(&self.status(state)).ok()?;
        self.signer
            .seal(&self.topic(), &msg)
            .inspect_err(|e| tracing::error!("status not sent: {e}"))
            .ok()
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
    pub credentials: Option<(String, protocol::Secret)>,
    /// TLS: the CA certificate (PEM) and, for client authentication, certificate and key (PEM).
    pub tls: Option<TlsFiles>,
    /// First wait for a commit receipt before an event is sent again.
    pub receipt_timeout: Duration,
    /// The server's receipt keys: only a receipt signed with one of them is acted on.
    pub server_keys: Vec<protocol::signed::PublicKey>,
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
    /// Events the broker acknowledged with success (not yet delivery).
    pub acked: u64,
    /// Events the server confirmed committed (stored or already stored): they left the outbox.
    pub confirmed: u64,
    /// Events sent again for want of a receipt.
    pub resent: u64,
    /// Publishes the broker answered 0x10 "no matching subscribers" (it discarded them).
    pub unrouted: u64,
    /// Publishes the broker refused (reason code ≥ 0x80); they stay in the outbox.
    pub refused: u64,
    /// Events the server refused for good (moved to `rejected/`).
    pub server_rejected: u64,
    /// Receipt items whose digest was not that of this agent's bytes, or receipts that could
    /// not be read.
    pub receipt_mismatches: u64,
    /// Receipts not signed by the server's key (unsigned or forged): ignored.
    pub receipts_refused: u64,
}

/// Sends new events from the outbox until the window is full.
fn top_up(s: &mut Session, client: &AsyncClient, outbox: &Outbox, stats: &mut LinkStats) {
    while s.room() > 0 {
        let batch = outbox.next_after(s.last_taken(), s.room());
        if batch.is_empty() {
            return;
        }
        for (seq, e) in batch {
            let Some(event_id) = protocol::peek_event_id(e.payload.as_bytes()) else {
                // Nothing the server could ever confirm.
                tracing::error!("outbox event {seq} has no event_id; moved to rejected/");
                outbox.reject(seq, "the payload has no event_id");
                stats.server_rejected += 1;
                s.skipped(seq);
                continue;
            };
            let sha256 = protocol::payload_sha256(e.payload.as_bytes());
            if client
                .try_publish(e.topic, QoS::AtLeastOnce, false, e.payload.into_bytes())
                .is_err()
            {
                return; // the client's queue is full: on the next occasion
            }
            s.sent(seq, event_id, sha256, Instant::now());
        }
    }
}

/// Sends again what is due.
fn resend_due(
    s: &mut Session,
    client: &AsyncClient,
    outbox: &Outbox,
    status: &StatusSource,
    stats: &mut LinkStats,
) {
    let now = Instant::now();
    for seq in s.due(now) {
        let Some(e) = outbox.get(seq) else {
            s.forget(seq); // dropped from a full outbox meanwhile
            continue;
        };
        if client
            .try_publish(e.topic, QoS::AtLeastOnce, false, e.payload.into_bytes())
            .is_err()
        {
            return;
        }
        if let Some((try_no, wait)) = s.resent(seq, now)
            && (try_no == 2 || (try_no - 1).is_multiple_of(10))
        {
            tracing::info!(
                "event {seq} has no commit receipt yet: sent again (try {try_no}), next in {:.0} s",
                wait.as_secs_f64()
            );
        }
        stats.resent += 1;
        status.count(|h| h.resent += 1);
    }
}

/// A PUBACK: counted, and logged when the broker discarded or refused an event.
fn puback(s: &mut Session, pkid: u16, reason: PubAckReason, stats: &mut LinkStats) {
    let ack = match reason {
        PubAckReason::Success => BrokerAck::Success,
        PubAckReason::NoMatchingSubscribers => BrokerAck::NoSubscribers,
        _ => BrokerAck::Refused,
    };
    match s.puback(pkid, ack, Instant::now()) {
        Acked::Other => {}
        Acked::Event(_) => stats.acked += 1,
        Acked::Bounced(_, BrokerAck::NoSubscribers) => {
            stats.unrouted += 1;
            if stats.unrouted == 1 || stats.unrouted.is_multiple_of(100) {
                tracing::warn!(
                    "the broker has no subscriber for our events (0x10: is the server's session gone?); they stay in the outbox and are sent again"
                );
            }
        }
        Acked::Bounced(seq, _) => {
            stats.refused += 1;
            tracing::error!("broker refused event {seq}: {reason:?}; it stays in the outbox");
        }
    }
}

/// A commit receipt: what it committed leaves the outbox, what it refused for good moves to
/// `rejected/`.
fn receipt(
    s: &mut Session,
    topic: &str,
    payload: &[u8],
    keys: &[protocol::signed::PublicKey],
    outbox: &Outbox,
    status: &StatusSource,
    stats: &mut LinkStats,
) {
    let r = match protocol::receipt::open_signed(
        payload,
        topic,
        keys,
        &status.facility_id,
        &status.sensor_id,
    ) {
        Ok(r) => r,
        Err(e) => {
            // Nothing of it is believed: the events stay in the outbox until a receipt the
            // server signed says they are committed.
            stats.receipt_mismatches += 1;
            status.count(|h| h.receipt_mismatches += 1);
            if matches!(e, ReceiptError::Unsigned(_) | ReceiptError::BadSignature(_)) {
                stats.receipts_refused += 1;
                status.count(|h| h.receipts_refused += 1);
            }
            tracing::warn!(
                "ignoring a receipt on {topic}: {e}; events stay in the outbox (is mqtt.server_key the key the server prints?)"
            );
            return;
        }
    };
    for v in s.receipt(&r.items, Instant::now()) {
        match v {
            Verdict::Committed(seq) => {
                outbox.ack(seq);
                stats.confirmed += 1;
            }
            Verdict::Deferred(seq, reason) => {
                tracing::warn!(
                    "the server defers event {seq}: {reason}; kept and sent again later"
                );
            }
            Verdict::Rejected(seq, outcome, reason) => {
                tracing::error!(
                    "the server refused event {seq} for good ({outcome:?}): {reason}; moved to the outbox's rejected/"
                );
                outbox.reject(seq, &reason);
                stats.server_rejected += 1;
            }
            Verdict::OtherBytes(event_id, outcome) => {
                stats.receipt_mismatches += 1;
                status.count(|h| h.receipt_mismatches += 1);
                tracing::warn!(
                    "a receipt for event {event_id} names other bytes than ours ({outcome:?}): another client published under our event id; ours stays in the outbox"
                );
            }
        }
    }
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
    let receipts = status.receipt_topic.clone();
    // The Last Will is sealed once per connection that comes up (attempts that fail keep it, so
    // a broker away for an hour spends no numbers), and it is what a clean shutdown publishes
    // itself: every sealed Will reaches the server one way or the other.
    let mut will: Option<Vec<u8>> = None;
    'session: loop {
        if *shutdown.borrow() {
            break;
        }
        if will.is_none() {
            status.new_connection();
            will = status.payload(SensorState::Offline);
            status.set_will(will.as_deref());
        }
        let mut mo = MqttOptions::new(client_id.clone(), opts.host.clone(), opts.port);
        mo.set_keep_alive(Duration::from_secs(10))
            .set_clean_start(true)
            .set_max_packet_size(Some(protocol::receipt::MAX_RECEIPT_BYTES as u32 + 1024))
            // The client's in-flight table is allocated at its limit (65,535 entries, 14 MB,
            // by default): no more than the request queue can hold.
            .set_outgoing_inflight_upper_limit(MQTT_INFLIGHT);
        if let Some(w) = &will {
            mo.set_last_will(LastWill::new(
                status.topic(),
                w.clone(),
                QoS::AtLeastOnce,
                true,
                None,
            ));
        }
        if let Some((u, p)) = &opts.credentials {
            mo.set_credentials(u.clone(), p.expose());
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
        let (client, mut el) = AsyncClient::new(mo, usize::from(MQTT_INFLIGHT));
        let mut s = Session::new(opts.receipt_timeout, Instant::now());
        let mut connected = false;
        let mut ready = false;
        let mut heartbeat = tokio::time::interval(Duration::from_secs_f64(status.heartbeat_s));
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            status.publish_stats(&stats);
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
                        if let Err(e) = client.try_subscribe(receipts.clone(), QoS::AtLeastOnce) {
                            tracing::error!("subscribing to {receipts}: {e}");
                        }
                        if let Some(p) = status.payload(SensorState::Online)
                            && client.try_publish(status.topic(), QoS::AtLeastOnce, true, p).is_ok() {
                            s.sent_other();
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        // Receipts reach us from now on: send.
                        ready = true;
                        top_up(&mut s, &client, &outbox, &mut stats);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => s.outgoing(pkid),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        puback(&mut s, ack.pkid, ack.reason, &mut stats);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if p.topic == receipts.as_bytes() {
                            receipt(&mut s, &receipts, &p.payload, &opts.server_keys, &outbox, &status, &mut stats);
                            top_up(&mut s, &client, &outbox, &mut stats);
                        }
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
                () = wake.notified(), if ready => top_up(&mut s, &client, &outbox, &mut stats),
                _ = tick.tick(), if ready => {
                    resend_due(&mut s, &client, &outbox, &status, &mut stats);
                    top_up(&mut s, &client, &outbox, &mut stats);
                }
                _ = heartbeat.tick(), if connected => {
                    if let Some(p) = status.payload(SensorState::Online)
                        && client.try_publish(status.topic(), QoS::AtLeastOnce, true, p).is_ok() {
                        s.sent_other();
                    }
                }
                Some((t, p)) = qos0.recv(), if connected => {
                    if client.try_publish(t, QoS::AtMostOnce, false, p).is_ok() {
                        s.sent_other();
                    }
                }
                _ = shutdown.changed() => {
                    if connected {
                        // The Will, said by ourselves: the same bytes and number.
                        if let Some(p) = will.take()
                            && client.try_publish(status.topic(), QoS::AtLeastOnce, true, p).is_ok() {
                            s.sent_other();
                        }
                        // Drain: let the offline status go out and in-flight events be confirmed.
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                        let mut status_sent = false;
                        while tokio::time::Instant::now() < deadline {
                            match tokio::time::timeout_at(deadline, el.poll()).await {
                                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => s.outgoing(pkid),
                                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                                    if !s.carries_event(ack.pkid) {
                                        status_sent = true;
                                    }
                                    puback(&mut s, ack.pkid, ack.reason, &mut stats);
                                }
                                Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == receipts.as_bytes() => {
                                    receipt(&mut s, &receipts, &p.payload, &opts.server_keys, &outbox, &status, &mut stats);
                                }
                                Ok(Ok(_)) => {}
                                Ok(Err(_)) | Err(_) => break,
                            }
                            if status_sent && s.in_flight() == 0 {
                                break;
                            }
                        }
                        let _ = client.try_disconnect();
                        let _ = tokio::time::timeout(Duration::from_millis(300), el.poll()).await;
                    }
                    break 'session;
                }
            }
        }
        if connected {
            // The broker publishes this connection's Will: the next one gets its own.
            will = None;
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = shutdown.changed() => break 'session,
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    status.publish_stats(&stats);
    stats
}
