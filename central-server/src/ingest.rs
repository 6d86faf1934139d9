//! Ingest: one persistent MQTT v5 session subscribed to every Centinela topic.
//!
//! Messages are collected into batches; each batch is decoded, checked and stored in one
//! transaction (rejected messages are recorded in the same transaction), then a commit receipt
//! goes to each sensor of the batch, and only then are the batch's deliveries acknowledged, all
//! of them, in the order they arrived (the next batch's signatures are checked, on two threads,
//! while the previous one is stored). Order matters: rumqttd drops a session that acknowledges
//! out of order and delivers the same messages again, forever. Storing runs in its own task
//! while the event loop goes on being polled (keep-alives, the next batch), and a store that
//! fails is retried until it works: nothing is acknowledged that is not committed.
//!
//! The broker's acknowledgement to an agent is not delivery. Agents keep each event until its
//! receipt arrives (see [`protocol::receipt`]); whatever a broker or this server loses in a crash
//! comes again and is deduplicated by `event_id`.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use protocol::{DecodeError, Kind, Message, Outcome, Receipt, ReceiptItem, TimeBounds};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{ConnectReturnCode, DisconnectReasonCode, Packet, Publish};
use rumqttc::v5::{AsyncClient, ConnectionError, Event, MqttOptions, StateError};
use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::alerts::{Alert, Alerter};
use crate::metrics::Metrics;
use crate::store::{Ingested, Item, Seal, Store};
use crate::trust::{Registry, TrustError};

/// Subscription of the server.
pub const FILTER: &str = "centinela/v1/+/+/+";

/// Most unacknowledged deliveries the broker may have in flight to the server.
pub const RECEIVE_MAXIMUM: u16 = 1024;

/// Largest packet the server accepts. A conformant MQTT v5 broker does not forward larger
/// messages to it (they are over the protocol's payload limit anyway), so one oversized message
/// cannot break the session.
pub const MAX_PACKET_BYTES: u32 = 256 * 1024;

/// Where and how the ingest session connects, and what it accepts.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    /// Broker host.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// Client id of the persistent session.
    pub client_id: String,
    /// Credentials.
    pub credentials: Option<(String, protocol::Secret)>,
    /// TLS to the broker: its CA and, for client authentication, certificate and key.
    pub tls: Option<crate::tls::BrokerTls>,
    /// How far ahead of the server's clock an observation may be.
    pub max_clock_skew: Duration,
    /// How old an observation may be.
    pub max_event_age: Duration,
    /// How old an `online` status or a spectrum summary may be (what it says of the sensor's
    /// liveness is stale past the history's statuses).
    pub max_status_age: Duration,
    /// The sensors that may speak, with their keys.
    pub registry: std::sync::Arc<Registry>,
    /// At most one tamper alert per sensor in this long.
    pub tamper_interval: Duration,
    /// The shared-subscription group of several servers (`None`: this server alone).
    pub shared_group: Option<String>,
    /// The key that signs every receipt.
    pub receipt_key: std::sync::Arc<protocol::signed::SensorKey>,
}

/// The number of the next receipt this server signs: it starts at the server's clock in
/// microseconds, so it grows across restarts (agents do not rely on it: a receipt only says
/// what was true at its commit).
fn next_receipt_seq() -> u64 {
    static NEXT: std::sync::LazyLock<std::sync::atomic::AtomicU64> =
        std::sync::LazyLock::new(|| {
            let micros = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
            std::sync::atomic::AtomicU64::new(u64::try_from(micros).unwrap_or(1))
        });
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl IngestOptions {
    /// The subscription: every Centinela topic, as a member of the group when there is one.
    #[must_use]
    pub fn filter(&self) -> String {
        match &self.shared_group {
            Some(g) => format!("$share/{g}/{FILTER}"),
            None => FILTER.to_string(),
        }
    }
}

/// Most messages stored in one transaction: SQLite's own thread does best with smaller
/// batches, PostgreSQL (a round trip and a commit per batch) with larger ones (measured with the
/// national load bench).
fn batch_max(engine: crate::db::Engine) -> usize {
    match engine {
        crate::db::Engine::Sqlite => 128,
        crate::db::Engine::Postgres => 512,
    }
}
/// Longest a received message waits for its batch to fill.
const BATCH_WAIT: Duration = Duration::from_millis(5);

/// What a store job hands back.
struct Done {
    epoch: u64,
    batch: Vec<Publish>,
    receipts: Vec<(String, Vec<u8>)>,
    alerts: Vec<crate::alerts::Raised>,
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
    // Alone, the session outlives the connection: the broker queues for a server that is down.
    // In a group it ends with the connection: the broker hands the group's messages to the
    // members it still has, and what a dead member had in flight comes again from the agents.
    let shared = opts.shared_group.is_some();
    mo.set_clean_start(shared)
        .set_session_expiry_interval((!shared).then_some(7 * 24 * 3600))
        .set_manual_acks(true)
        .set_keep_alive(Duration::from_secs(10))
        .set_max_packet_size(Some(MAX_PACKET_BYTES))
        // At most this many unacknowledged messages in flight to us. Acks go through the client's
        // request channel, which the event loop drains only between deliveries: the channel
        // must hold more acks (and receipts) than the broker may have in flight.
        .set_receive_maximum(Some(RECEIVE_MAXIMUM));
    if let Some((u, p)) = &opts.credentials {
        mo.set_credentials(u.clone(), p.expose());
    }
    if let Some(tls) = &opts.tls {
        // rustls needs a process-wide crypto provider; a second install is a no-op error.
        let _ = rustls::crypto::ring::default_provider().install_default();
        mo.set_transport(rumqttc::Transport::tls_with_config(
            rumqttc::TlsConfiguration::Simple {
                ca: tls.ca.clone(),
                alpn: None,
                client_auth: tls
                    .client
                    .as_ref()
                    .map(|(c, k)| (c.clone(), k.expose().as_bytes().to_vec())),
            },
        ));
    }
    let (client, mut eventloop) = AsyncClient::new(mo, 8 * usize::from(RECEIVE_MAXIMUM));
    let mut failures = 0u32;
    // Deliveries of the current connection; a reconnect starts a new epoch, and the broker
    // delivers again whatever the old one did not acknowledge.
    let mut epoch = 0u64;
    let mut connected_once = false;
    let mut pending: Vec<Publish> = Vec::new();
    let mut flush_at: Option<tokio::time::Instant> = None;
    // At most two batches in hand: the next one's signatures are checked while the previous one
    // is stored; they are stored, and acknowledged, in the order they arrived.
    let mut jobs: std::collections::VecDeque<JoinHandle<Option<Done>>> =
        std::collections::VecDeque::new();
    let mut last_stored: Option<tokio::sync::oneshot::Receiver<()>> = None;
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let reject_log = std::sync::Arc::new(LogLimiter::new(Duration::from_secs(10), 10));
    let tamper = std::sync::Arc::new(TamperLimiter::new(opts.tamper_interval));
    let batch_max = batch_max(store.engine());
    loop {
        let start_now = jobs.len() < 2
            && !pending.is_empty()
            && (pending.len() >= batch_max
                || flush_at.is_some_and(|t| t <= tokio::time::Instant::now()));
        if start_now {
            let take = pending.len().min(batch_max);
            let batch: Vec<Publish> = pending.drain(..take).collect();
            flush_at = (!pending.is_empty()).then(tokio::time::Instant::now);
            let (stored_tx, stored_rx) = tokio::sync::oneshot::channel();
            jobs.push_back(tokio::spawn(store_batch(
                batch,
                epoch,
                Turn {
                    after: last_stored.replace(stored_rx),
                    stored: stored_tx,
                },
                store.clone(),
                metrics.clone(),
                opts.clone(),
                cancel_rx.clone(),
                reject_log.clone(),
                tamper.clone(),
            )));
        }
        tokio::select! {
            ev = eventloop.poll() => match ev {
                Ok(Event::Incoming(Packet::SubAck(_))) => {
                    // Ready only once subscribed: what is published from now on reaches us.
                    metrics.set_connected(true);
                }
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    failures = 0;
                    if ack.code != ConnectReturnCode::Success {
                        tracing::error!("ingest: the broker refused the session: {:?}", ack.code);
                        continue;
                    }
                    if connected_once && !ack.session_present && !shared {
                        metrics.session_lost();
                        tracing::warn!(
                            target: "alert",
                            "INGEST SESSION LOST: the broker had no session for `{}` (it restarted without saving it, or another client connected with this id): what it queued for us is gone; agents send again what has no receipt",
                            opts.client_id
                        );
                    }
                    connected_once = true;
                    tracing::info!(
                        "ingest connected to mqtt://{}:{} as `{}`",
                        opts.host,
                        opts.port,
                        opts.client_id
                    );
                    let filter = opts.filter();
                    if let Err(e) = client.try_subscribe(filter.clone(), QoS::AtLeastOnce) {
                        tracing::error!("subscribing to {filter}: {e}");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    pending.push(p);
                    if flush_at.is_none() {
                        flush_at = Some(tokio::time::Instant::now() + BATCH_WAIT);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    if let ConnectionError::MqttState(StateError::ServerDisconnect {
                        reason_code: DisconnectReasonCode::SessionTakenOver,
                        ..
                    }) = &e
                    {
                        metrics.session_taken_over();
                        tracing::error!(
                            target: "alert",
                            "INGEST SESSION TAKEN OVER: another client connected to the broker as `{}`; taking it back (agents send again what has no receipt)",
                            opts.client_id
                        );
                    }
                    // Unacknowledged deliveries come again on the next connection (the session
                    // persists), so what is pending is dropped here; a batch being stored is
                    // committed but not acknowledged (its redelivery is a duplicate).
                    pending.clear();
                    flush_at = None;
                    epoch += 1;
                    metrics.set_connected(false);
                    metrics.disconnected();
                    let tls_refused = matches!(e, ConnectionError::Tls(_));
                    if tls_refused {
                        metrics.tls_failed();
                    }
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(30) {
                        let scheme = if opts.tls.is_some() { "mqtts" } else { "mqtt" };
                        if tls_refused {
                            tracing::error!(
                                target: "alert",
                                "ingest: broker {scheme}://{}:{} refused by TLS ({e}): is it the broker the CA in server.broker_tls_ca signed? retrying",
                                opts.host,
                                opts.port
                            );
                        } else if matches!(
                            e,
                            ConnectionError::ConnectionRefused(
                                ConnectReturnCode::NotAuthorized
                                    | ConnectReturnCode::BadUserNamePassword
                            )
                        ) {
                            let user = opts.credentials.as_ref().map_or("", |c| c.0.as_str());
                            tracing::error!(
                                target: "alert",
                                "ingest: broker {scheme}://{}:{} refused the server's login `{user}` ({e}): the broker does not know this user or its password; write the broker's files with `central-server broker-config` (for a member of a group, `--instance NAME`) and reload the broker (SIGHUP); retrying",
                                opts.host,
                                opts.port
                            );
                        } else {
                            tracing::warn!(
                                "ingest: broker {scheme}://{}:{}: {e}; retrying",
                                opts.host,
                                opts.port
                            );
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = shutdown.changed() => break,
                    }
                }
            },
            () = async {
                match flush_at {
                    Some(t) => tokio::time::sleep_until(t).await,
                    None => std::future::pending().await,
                }
            }, if jobs.len() < 2 => {}
            r = async {
                match jobs.front_mut() {
                    Some(j) => j.await,
                    None => std::future::pending().await,
                }
            } => {
                jobs.pop_front();
                if let Ok(Some(done)) = r {
                    finish(done, epoch, &client, &metrics, &alerter);
                }
            }
            _ = shutdown.changed() => break,
        }
    }
    // A batch being stored finishes (or gives up on a failing database) and is acknowledged.
    let _ = cancel_tx.send(true);
    while let Some(j) = jobs.pop_front() {
        if let Ok(Ok(Some(done))) = tokio::time::timeout(Duration::from_secs(10), j).await {
            finish(done, epoch, &client, &metrics, &alerter);
        }
    }
    let _ = tokio::time::timeout(Duration::from_millis(300), async {
        loop {
            if eventloop.poll().await.is_err() {
                break;
            }
        }
    })
    .await;
    let _ = client.try_disconnect();
    let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
    metrics.set_connected(false);
}

/// After a commit: alerts, receipts, then the acknowledgements in arrival order.
fn finish(done: Done, epoch: u64, client: &AsyncClient, metrics: &Metrics, alerter: &Alerter) {
    alerter.raise(done.alerts);
    for (topic, payload) in done.receipts {
        match client.try_publish(topic, QoS::AtLeastOnce, false, payload) {
            Ok(()) => metrics.receipt_sent(),
            Err(e) => {
                // The agent sends again and gets a receipt for the duplicate.
                tracing::warn!("publishing a receipt: {e}");
            }
        }
    }
    if done.epoch != epoch {
        // Delivered on a connection that is gone: the broker delivers them again.
        return;
    }
    for p in &done.batch {
        // `try_ack`: never wait on the request channel from inside the event loop's task.
        if let Err(e) = client.try_ack(p) {
            metrics.ack_failed();
            tracing::warn!("acknowledging: {e}");
        }
    }
}

/// Why a delivery is refused: its contents, or who sent it.
#[derive(Debug)]
enum Refusal {
    Decode(DecodeError),
    Trust(TrustError),
}

impl Refusal {
    fn reason(&self) -> &'static str {
        match self {
            Self::Decode(e) => e.reason(),
            Self::Trust(e) => e.reason(),
        }
    }

    fn is_transient(&self) -> bool {
        matches!(self, Self::Decode(e) if e.is_transient())
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Decode(e) => e.fmt(f),
            Self::Trust(e) => e.fmt(f),
        }
    }
}

/// What one delivery decoded to.
enum Decoded {
    Good {
        msg: Box<Message>,
        payload: String,
        key: String,
        seq: i64,
        sha256: String,
    },
    Bad(Refusal),
}

/// Checks one delivery: the registry and the signature, then the message itself.
fn check(
    topic: &str,
    parsed: Option<&(String, String, Kind)>,
    payload: &[u8],
    registry: &Registry,
    bounds: &TimeBounds,
    max_status_age: time::Duration,
) -> Decoded {
    let Some((facility, sensor, _)) = parsed else {
        // Not a Centinela topic: decoding says so.
        return match protocol::decode(topic, payload) {
            Err(e) => Decoded::Bad(Refusal::Decode(e)),
            Ok(_) => Decoded::Bad(Refusal::Trust(TrustError::UnknownSensor {
                topic: topic.to_string(),
                facility: String::new(),
                sensor: String::new(),
            })),
        };
    };
    let v = match registry.check(topic, facility, sensor, payload) {
        Ok(v) => v,
        Err(e) => return Decoded::Bad(Refusal::Trust(e)),
    };
    let m = match protocol::decode(topic, v.msg).and_then(|m| {
        let stale_after = matches!(&m, Message::Spectrum(_))
            || matches!(&m, Message::Status(s) if s.state == protocol::SensorState::Online);
        let b = TimeBounds {
            max_age: if stale_after {
                bounds.max_age.min(max_status_age)
            } else {
                bounds.max_age
            },
            ..*bounds
        };
        m.check_time(topic, &b).map(|()| m)
    }) {
        Ok(m) => m,
        Err(e) => return Decoded::Bad(Refusal::Decode(e)),
    };
    if let Err(e) = registry.check_zone(topic, facility, sensor, m.zone()) {
        return Decoded::Bad(Refusal::Trust(e));
    }
    Decoded::Good {
        msg: Box::new(m),
        payload: String::from_utf8_lossy(payload).into_owned(),
        key: v.key.to_string(),
        seq: i64::try_from(v.seq).unwrap_or(i64::MAX),
        sha256: protocol::payload_sha256(payload),
    }
}

/// A batch's turn to store: after the previous batch (`after`), and then say so (`stored`).
struct Turn {
    after: Option<tokio::sync::oneshot::Receiver<()>>,
    stored: tokio::sync::oneshot::Sender<()>,
}

/// Decodes, stores (retrying a failing database until it works or ingest stops) and builds the
/// receipts of one batch. `None` when cancelled before the commit.
#[allow(clippy::too_many_arguments)]
async fn store_batch(
    batch: Vec<Publish>,
    epoch: u64,
    turn: Turn,
    store: Store,
    metrics: Metrics,
    opts: IngestOptions,
    mut cancel: watch::Receiver<bool>,
    log: std::sync::Arc<LogLimiter>,
    tamper: std::sync::Arc<TamperLimiter>,
) -> Option<Done> {
    let mut decoded = Vec::with_capacity(batch.len());
    let mut topics = Vec::with_capacity(batch.len());
    let now = OffsetDateTime::now_utc();
    let bounds = TimeBounds {
        now,
        max_skew: time::Duration::try_from(opts.max_clock_skew).unwrap_or(time::Duration::ZERO),
        max_age: time::Duration::try_from(opts.max_event_age).unwrap_or(time::Duration::MAX),
    };
    let status_age = time::Duration::try_from(opts.max_status_age).unwrap_or(time::Duration::MAX);
    let refused = |e: &dyn std::fmt::Display, reason: &'static str| {
        metrics.rejected(reason);
        match log.allow() {
            Some(0) => tracing::warn!("rejected: {e}"),
            Some(skipped) => tracing::warn!(
                "rejected: {e} (and {skipped} more not logged; all are counted in /metrics and listed in /api/rejects)"
            ),
            None => {}
        }
    };
    for p in &batch {
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let parsed = protocol::parse_topic(&topic).ok();
        metrics.received(parsed.as_ref().map_or("invalid", |(_, _, k)| k.as_str()));
        topics.push((topic, parsed));
    }
    // Signatures are the costly part (an Ed25519 verification is some 50 µs here): checked off
    // the async threads, a large batch split over two threads.
    type Work = (String, Option<(String, String, Kind)>, bytes::Bytes);
    let work: Vec<Work> = topics
        .iter()
        .zip(&batch)
        .map(|((t, parsed), p)| (t.clone(), parsed.clone(), p.payload.clone()))
        .collect();
    let registry = opts.registry.clone();
    let checked = tokio::task::spawn_blocking(move || {
        let run = |part: &[Work]| {
            part.iter()
                .map(|(t, parsed, payload)| {
                    check(t, parsed.as_ref(), payload, &registry, &bounds, status_age)
                })
                .collect::<Vec<_>>()
        };
        if work.len() < 16 {
            return run(&work);
        }
        let (a, b) = work.split_at(work.len() / 2);
        std::thread::scope(|sc| {
            let first = sc.spawn(|| run(a));
            let mut second = run(b);
            let mut out = first.join().unwrap_or_default();
            out.append(&mut second);
            out
        })
    })
    .await
    .unwrap_or_default();
    let checked = if checked.len() == batch.len() {
        checked
    } else {
        // A checking thread failed (never seen: the checks are fuzzed): once more, here.
        tracing::error!("checking a batch on its threads failed; checking it again");
        topics
            .iter()
            .zip(&batch)
            .map(|((t, parsed), p)| {
                check(
                    t,
                    parsed.as_ref(),
                    &p.payload,
                    &opts.registry,
                    &bounds,
                    status_age,
                )
            })
            .collect()
    };
    for d in checked {
        if let Decoded::Bad(e) = &d {
            refused(e, e.reason());
        }
        decoded.push(d);
    }
    let mut items = Vec::with_capacity(batch.len());
    let mut details = Vec::with_capacity(batch.len());
    for d in &decoded {
        details.push(match d {
            Decoded::Bad(e) => e.to_string(),
            Decoded::Good { .. } => String::new(),
        });
    }
    for ((d, p), ((topic, _), detail)) in
        decoded.iter().zip(&batch).zip(topics.iter().zip(&details))
    {
        items.push(match d {
            Decoded::Good {
                msg,
                payload,
                key,
                seq,
                sha256,
            } => Item::Accept {
                topic,
                msg,
                payload,
                seal: Seal {
                    key,
                    seq: *seq,
                    sha256,
                },
                retained: p.retain,
            },
            Decoded::Bad(e) => Item::Reject {
                topic,
                reason: e.reason(),
                detail,
            },
        });
    }
    if let Some(previous) = turn.after {
        // Stored or given up (either way its turn is over).
        let _ = previous.await;
    }
    let mut delay = Duration::from_millis(100);
    let mut attempts = 0u32;
    let results = loop {
        let received_at = OffsetDateTime::now_utc();
        let t0 = Instant::now();
        match store.ingest_batch(&items, received_at).await {
            Ok(r) => {
                metrics.batch_stored(t0.elapsed());
                metrics.database_write(crate::metrics::Writer::Ingest, Ok(()));
                break (r, received_at);
            }
            Err(e) => {
                metrics.store_error();
                metrics.database_write(crate::metrics::Writer::Ingest, Err(e.to_string()));
                attempts += 1;
                if attempts == 1 || attempts.is_multiple_of(10) {
                    tracing::error!(
                        "storing a batch of {} messages (attempt {attempts}): {e}; retrying, nothing is acknowledged until it is stored",
                        items.len()
                    );
                }
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    _ = cancel.changed() => return None,
                }
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    let _ = turn.stored.send(());
    let (results, committed_at) = results;
    let mut alerts = Vec::new();
    let mut tampers: Vec<Alert> = Vec::new();
    let tampered = |alerts: &mut Vec<Alert>, topic: &str, reason: &'static str, detail: String| {
        let Ok((facility, sensor, _)) = protocol::parse_topic(topic) else {
            return;
        };
        if opts.registry.get(&facility, &sensor).is_some() && tamper.allow(&facility, &sensor) {
            alerts.push(Alert::Tamper {
                facility_id: facility,
                sensor_id: sensor,
                reason: reason.into(),
                detail: detail.chars().take(300).collect(),
            });
        }
    };
    for (d, (topic, _)) in decoded.iter().zip(&topics) {
        if let Decoded::Bad(Refusal::Trust(e)) = d
            && e.is_tamper()
        {
            tampered(&mut tampers, topic, e.reason(), e.to_string());
        }
    }
    let mut per_sensor: BTreeMap<(String, String), Vec<ReceiptItem>> = BTreeMap::new();
    // Receipts come only from what the commit returned.
    let results = results.into_inner();
    for ((d, r), (p, (topic, parsed))) in decoded.iter().zip(results).zip(batch.iter().zip(&topics))
    {
        let (outcome, reason, event_id) = match (d, r) {
            (Decoded::Good { msg: m, seq, .. }, Some(Ingested::Replayed)) => {
                let e = TrustError::Replayed {
                    topic: topic.clone(),
                    seq: seq.unsigned_abs(),
                };
                refused(&e, e.reason());
                tampered(&mut tampers, topic, e.reason(), e.to_string());
                (Outcome::Rejected, Some(e.to_string()), Some(m.event_id()))
            }
            (Decoded::Good { msg: m, .. }, Some(Ingested::New(a))) => {
                let latency = (committed_at - m.observed_at()).as_seconds_f64() * 1e3;
                metrics.stored(m.kind().as_str(), latency);
                alerts.extend(a);
                (Outcome::Stored, None, Some(m.event_id()))
            }
            (Decoded::Good { msg: m, .. }, Some(Ingested::Duplicate)) => {
                metrics.duplicate();
                (Outcome::Duplicate, None, Some(m.event_id()))
            }
            (Decoded::Good { msg: m, .. }, Some(Ingested::Conflict)) => {
                metrics.conflict();
                tracing::warn!(
                    "event {} arrived again with other bytes than those stored: not stored",
                    m.event_id()
                );
                (
                    Outcome::Conflict,
                    Some("this event_id is stored with other content".to_string()),
                    Some(m.event_id()),
                )
            }
            (Decoded::Bad(e), _) => (
                if e.is_transient() {
                    Outcome::Deferred
                } else {
                    Outcome::Rejected
                },
                Some(e.to_string()),
                protocol::peek_event_id(&p.payload),
            ),
            (Decoded::Good { .. }, None) => continue,
        };
        // Receipts for the events an agent keeps in its outbox (gap and jammer).
        let Some((facility, sensor, kind)) = parsed else {
            continue;
        };
        let (Some(event_id), Kind::Gap | Kind::Jammer) = (event_id, kind) else {
            continue;
        };
        per_sensor
            .entry((facility.clone(), sensor.clone()))
            .or_default()
            .push(ReceiptItem {
                event_id,
                outcome,
                sha256: protocol::payload_sha256(&p.payload),
                reason: reason.map(|r| r.chars().take(300).collect()),
            });
    }
    // At most one tamper alert per sensor and interval across every server of the database
    // (this server's own limiter keeps a flood of forgeries off the database).
    for t in tampers {
        match store
            .claim_tamper(t, committed_at, opts.tamper_interval)
            .await
        {
            Ok(Some(r)) => alerts.push(r),
            Ok(None) => {}
            Err(e) => tracing::warn!("recording a tamper alert: {e}"),
        }
    }
    // One signed receipt per sensor and at most MAX_RECEIPT_ITEMS items.
    let mut receipts = Vec::new();
    for ((facility, sensor), items) in per_sensor {
        let Ok(topic) = protocol::receipt_topic(&facility, &sensor) else {
            continue;
        };
        for chunk in items.chunks(protocol::receipt::MAX_RECEIPT_ITEMS) {
            let r = Receipt {
                schema: protocol::RECEIPT_SCHEMA.into(),
                facility_id: facility.clone(),
                sensor_id: sensor.clone(),
                committed_at,
                items: chunk.to_vec(),
            };
            match protocol::receipt::seal_receipt(&opts.receipt_key, &topic, next_receipt_seq(), &r)
            {
                Ok(payload) => receipts.push((topic.clone(), payload)),
                // Not seen: a chunk is far under the limit. The agent sends again and gets a
                // receipt for the duplicate.
                Err(e) => tracing::error!("signing a receipt for {facility}/{sensor}: {e}"),
            }
        }
    }
    Some(Done {
        epoch,
        batch,
        receipts,
        alerts,
    })
}

/// At most one tamper alert per sensor per interval.
#[derive(Debug)]
struct TamperLimiter {
    every: Duration,
    last: std::sync::Mutex<std::collections::HashMap<(String, String), Instant>>,
}

impl TamperLimiter {
    fn new(every: Duration) -> Self {
        Self {
            every,
            last: std::sync::Mutex::default(),
        }
    }

    fn allow(&self, facility: &str, sensor: &str) -> bool {
        let mut m = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let k = (facility.to_string(), sensor.to_string());
        match m.get(&k) {
            Some(t) if t.elapsed() < self.every => false,
            _ => {
                m.insert(k, Instant::now());
                true
            }
        }
    }
}

/// At most `burst` log lines per `every`: one client sending thousands of bad messages must not
/// flood the log (every rejection is still counted and listed in `/api/rejects`).
#[derive(Debug)]
pub(crate) struct LogLimiter {
    every: Duration,
    burst: usize,
    state: std::sync::Mutex<(Instant, usize, u64)>,
}

impl LogLimiter {
    pub(crate) fn new(every: Duration, burst: usize) -> Self {
        Self {
            every,
            burst,
            state: std::sync::Mutex::new((Instant::now(), 0, 0)),
        }
    }

    /// `Some(skipped since the last line)` when a line may be logged now.
    pub(crate) fn allow(&self) -> Option<u64> {
        let mut st = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if st.0.elapsed() >= self.every {
            st.0 = Instant::now();
            st.1 = 0;
        }
        if st.1 < self.burst {
            st.1 += 1;
            Some(std::mem::take(&mut st.2))
        } else {
            st.2 += 1;
            None
        }
    }
}
