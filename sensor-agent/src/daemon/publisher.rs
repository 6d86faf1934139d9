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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use protocol::{
    Kind, Outcome, Receipt, STATUS_SCHEMA, SensorHealth, SensorState, StatusEvent, event_id, topic,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{LastWill, Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};

use crate::daemon::outbox::Outbox;
use crate::daemon::signer::Signer;

/// Most events sent and not yet confirmed at a time.
const WINDOW: usize = 256;

/// Most publishes waiting for the broker's acknowledgement at a time: the request queue's size.
const MQTT_INFLIGHT: u16 = 4 * WINDOW as u16;

/// Longest wait between two sends of an event without a receipt.
pub const MAX_RESEND_INTERVAL: Duration = Duration::from_secs(300);

/// First wait for a receipt before an event is sent again (the link's default).
pub const DEFAULT_RECEIPT_TIMEOUT: Duration = Duration::from_secs(15);

/// Wait before sending again an event the broker could not route (0x10: no subscriber) or
/// refused.
const UNROUTED_RETRY: Duration = Duration::from_secs(2);

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
}

/// An event sent in this session and not yet confirmed.
#[derive(Debug)]
struct Flight {
    event_id: uuid::Uuid,
    sha256: String,
    due: Instant,
    attempts: u32,
}

/// `base` doubled per attempt, up to [`MAX_RESEND_INTERVAL`].
fn doubling(base: Duration, attempts: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempts.min(16)))
        .min(MAX_RESEND_INTERVAL)
}

/// What the link knows of the events it has sent in one session.
#[derive(Debug)]
struct Session {
    /// Publishes handed to the client, in order: `Some(seq)` for outbox events.
    requested: VecDeque<Option<u64>>,
    by_pkid: HashMap<u16, u64>,
    flights: BTreeMap<u64, Flight>,
    by_event: HashMap<uuid::Uuid, u64>,
    /// Highest outbox sequence number taken this session.
    last_taken: Option<u64>,
    timeout: Duration,
    /// When an outbox event was last sent.
    last_send: Instant,
}

impl Session {
    fn new(timeout: Duration) -> Self {
        Self {
            requested: VecDeque::new(),
            by_pkid: HashMap::new(),
            flights: BTreeMap::new(),
            by_event: HashMap::new(),
            last_taken: None,
            timeout,
            last_send: Instant::now(),
        }
    }

    fn backoff(&self, attempts: u32) -> Duration {
        doubling(self.timeout, attempts)
    }

    fn outgoing(&mut self, pkid: u16) {
        if let Some(Some(seq)) = self.requested.pop_front() {
            self.by_pkid.insert(pkid, seq);
        }
    }

    fn forget(&mut self, seq: u64) {
        if let Some(f) = self.flights.remove(&seq) {
            self.by_event.remove(&f.event_id);
        }
    }

    /// Sends new events from the outbox until the window is full.
    fn top_up(&mut self, client: &AsyncClient, outbox: &Outbox, stats: &mut LinkStats) {
        while self.flights.len() < WINDOW {
            let batch = outbox.next_after(self.last_taken, WINDOW - self.flights.len());
            if batch.is_empty() {
                return;
            }
            for (seq, e) in batch {
                let Some(event_id) = protocol::peek_event_id(e.payload.as_bytes()) else {
                    // Nothing the server could ever confirm.
                    tracing::error!("outbox event {seq} has no event_id; moved to rejected/");
                    outbox.reject(seq, "the payload has no event_id");
                    stats.server_rejected += 1;
                    self.last_taken = Some(seq);
                    continue;
                };
                let sha256 = protocol::payload_sha256(e.payload.as_bytes());
                if client
                    .try_publish(e.topic, QoS::AtLeastOnce, false, e.payload.into_bytes())
                    .is_err()
                {
                    return; // the client's queue is full: on the next occasion
                }
                self.requested.push_back(Some(seq));
                self.last_taken = Some(seq);
                self.last_send = Instant::now();
                self.by_event.insert(event_id, seq);
                self.flights.insert(
                    seq,
                    Flight {
                        event_id,
                        sha256,
                        due: Instant::now() + self.timeout,
                        attempts: 0,
                    },
                );
            }
        }
    }

    /// Sends again what is due.
    fn resend_due(
        &mut self,
        client: &AsyncClient,
        outbox: &Outbox,
        status: &StatusSource,
        stats: &mut LinkStats,
    ) {
        let now = Instant::now();
        let mut due: Vec<u64> = self
            .flights
            .iter()
            .filter(|(_, f)| f.due <= now)
            .map(|(s, _)| *s)
            .collect();
        // A probe: while everything waits out a long backoff, the oldest event still goes once
        // per timeout, so that its receipt says soon when the server is back.
        if due.is_empty()
            && now.duration_since(self.last_send) >= self.timeout
            && let Some((&first, _)) = self.flights.iter().next()
        {
            due.push(first);
        }
        for seq in due {
            let Some(e) = outbox.get(seq) else {
                self.forget(seq); // dropped from a full outbox meanwhile
                continue;
            };
            if client
                .try_publish(e.topic, QoS::AtLeastOnce, false, e.payload.into_bytes())
                .is_err()
            {
                return;
            }
            self.requested.push_back(Some(seq));
            self.last_send = now;
            let wait = {
                let f = self.flights.get(&seq).map_or(0, |f| f.attempts + 1);
                self.backoff(f)
            };
            if let Some(f) = self.flights.get_mut(&seq) {
                f.attempts += 1;
                f.due = now + wait;
                if f.attempts == 1 || f.attempts.is_multiple_of(10) {
                    tracing::info!(
                        "event {seq} has no commit receipt yet: sent again (try {}), next in {:.0} s",
                        f.attempts + 1,
                        wait.as_secs_f64()
                    );
                }
            }
            stats.resent += 1;
            status.count(|h| h.resent += 1);
        }
    }

    fn puback(&mut self, pkid: u16, reason: PubAckReason, stats: &mut LinkStats) {
        let Some(seq) = self.by_pkid.remove(&pkid) else {
            return;
        };
        match reason {
            PubAckReason::Success => stats.acked += 1,
            other => {
                if other == PubAckReason::NoMatchingSubscribers {
                    stats.unrouted += 1;
                    if stats.unrouted == 1 || stats.unrouted.is_multiple_of(100) {
                        tracing::warn!(
                            "the broker has no subscriber for our events (0x10: is the server's session gone?); they stay in the outbox and are sent again"
                        );
                    }
                } else {
                    stats.refused += 1;
                    tracing::error!(
                        "broker refused event {seq}: {other:?}; it stays in the outbox"
                    );
                }
                // Soon, but backing off like any resend: a server away for hours must not be
                // called every two seconds.
                if let Some(f) = self.flights.get_mut(&seq) {
                    let wait = doubling(UNROUTED_RETRY, f.attempts);
                    f.due = f.due.min(Instant::now() + wait);
                }
            }
        }
    }

    fn receipt(
        &mut self,
        payload: &[u8],
        outbox: &Outbox,
        status: &StatusSource,
        stats: &mut LinkStats,
    ) {
        let r = match Receipt::decode(payload, &status.facility_id, &status.sensor_id) {
            Ok(r) => r,
            Err(e) => {
                stats.receipt_mismatches += 1;
                status.count(|h| h.receipt_mismatches += 1);
                tracing::warn!("ignoring a receipt: {e}");
                return;
            }
        };
        let mut committed_any = false;
        for item in r.items {
            let Some(&seq) = self.by_event.get(&item.event_id) else {
                continue; // confirmed already, or sent in an earlier session
            };
            let Some(f) = self.flights.get_mut(&seq) else {
                continue;
            };
            if f.sha256 != item.sha256 {
                stats.receipt_mismatches += 1;
                status.count(|h| h.receipt_mismatches += 1);
                tracing::warn!(
                    "a receipt for event {} names other bytes than ours ({:?}): another client published under our event id; ours stays in the outbox",
                    item.event_id,
                    item.outcome
                );
                continue;
            }
            let reason = item.reason.unwrap_or_default();
            match item.outcome {
                Outcome::Stored | Outcome::Duplicate => {
                    outbox.ack(seq);
                    self.forget(seq);
                    stats.confirmed += 1;
                    committed_any = true;
                }
                Outcome::Deferred => {
                    tracing::warn!(
                        "the server defers event {seq}: {reason}; kept and sent again later"
                    );
                    f.due = Instant::now() + self.timeout;
                }
                Outcome::Rejected | Outcome::Conflict => {
                    tracing::error!(
                        "the server refused event {seq} for good ({:?}): {reason}; moved to the outbox's rejected/",
                        item.outcome
                    );
                    outbox.reject(seq, &reason);
                    self.forget(seq);
                    stats.server_rejected += 1;
                }
            }
        }
        if committed_any {
            // The server is committing again: what already waited out a timeout (sent while it
            // was down, lost by a broker) goes again soon instead of after its long backoff.
            let soon = Instant::now() + Duration::from_secs(1);
            for f in self.flights.values_mut() {
                if f.attempts > 0 && f.due > soon {
                    f.due = soon;
                    f.attempts = 1;
                }
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
        let mut s = Session::new(opts.receipt_timeout);
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
                            s.requested.push_back(None);
                        }
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        // Receipts reach us from now on: send.
                        ready = true;
                        s.top_up(&client, &outbox, &mut stats);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => s.outgoing(pkid),
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        s.puback(ack.pkid, ack.reason, &mut stats);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if p.topic == receipts.as_bytes() {
                            s.receipt(&p.payload, &outbox, &status, &mut stats);
                            s.top_up(&client, &outbox, &mut stats);
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
                () = wake.notified(), if ready => s.top_up(&client, &outbox, &mut stats),
                _ = tick.tick(), if ready => {
                    s.resend_due(&client, &outbox, &status, &mut stats);
                    s.top_up(&client, &outbox, &mut stats);
                }
                _ = heartbeat.tick(), if connected => {
                    if let Some(p) = status.payload(SensorState::Online)
                        && client.try_publish(status.topic(), QoS::AtLeastOnce, true, p).is_ok() {
                        s.requested.push_back(None);
                    }
                }
                Some((t, p)) = qos0.recv(), if connected => {
                    if client.try_publish(t, QoS::AtMostOnce, false, p).is_ok() {
                        s.requested.push_back(None);
                    }
                }
                _ = shutdown.changed() => {
                    if connected {
                        // The Will, said by ourselves: the same bytes and number.
                        if let Some(p) = will.take()
                            && client.try_publish(status.topic(), QoS::AtLeastOnce, true, p).is_ok() {
                            s.requested.push_back(None);
                        }
                        // Drain: let the offline status go out and in-flight events be confirmed.
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                        let mut status_sent = false;
                        while tokio::time::Instant::now() < deadline {
                            match tokio::time::timeout_at(deadline, el.poll()).await {
                                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => s.outgoing(pkid),
                                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                                    if !s.by_pkid.contains_key(&ack.pkid) {
                                        status_sent = true;
                                    }
                                    s.puback(ack.pkid, ack.reason, &mut stats);
                                }
                                Ok(Ok(Event::Incoming(Packet::Publish(p)))) if p.topic == receipts.as_bytes() => {
                                    s.receipt(&p.payload, &outbox, &status, &mut stats);
                                }
                                Ok(Ok(_)) => {}
                                Ok(Err(_)) | Err(_) => break,
                            }
                            if status_sent && s.flights.is_empty() {
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
