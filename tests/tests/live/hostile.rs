//! Ingest against hostile or unlucky clients, over real brokers on loopback (the embedded rumqttd
//! and Mosquitto from apt): malformed messages mixed with valid ones, a flood of odd topics,
//! messages dated in the future, heartbeats that would keep a dead sensor online, a late Last
//! Will, and a client that takes the server's own client id.

use std::time::Duration;

use centinela_tests::Mosquitto;
use centinela_tests::live::{self, Feeder, Fleet, Sealer, counter, gap, get, wait_for};
use centinela_tests::testdb::Backend;
use central_server::Server;
use protocol::{
    GapState, Outcome, Receipt, STATUS_SCHEMA, SensorHealth, SensorState, StatusEvent, event_id,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use time::OffsetDateTime;

centinela_tests::on_both_databases!(
    interleaved_malformed_messages_do_not_wedge_the_embedded_broker,
    interleaved_malformed_messages_do_not_wedge_mosquitto,
    a_flood_of_odd_topics_neither_wedges_ingest_nor_grows_the_metrics,
    a_message_dated_in_the_future_cannot_rewrite_the_present,
    sensors_go_offline_on_time_and_only_by_their_own_connection,
    a_takeover_of_the_servers_session_loses_nothing_on_the_embedded_broker,
    a_takeover_of_the_servers_session_loses_nothing_on_mosquitto,
);

const FAC: &str = "test-prison";

/// Messages a raw client received: topic and payload.
type Inbox = std::sync::Arc<std::sync::Mutex<Vec<(String, Vec<u8>)>>>;

/// A raw MQTT v5 client whose event loop runs in the background, counting PUBACKs and keeping
/// what arrives on its subscriptions. It holds the test sensors' keys: what it publishes is
/// sealed as their agents would (these are tests of a misbehaving or unlucky sensor, not of a
/// forger; `trust.rs` tries the forgeries).
struct Raw {
    client: AsyncClient,
    sealer: Sealer,
    acks: std::sync::Arc<std::sync::atomic::AtomicU64>,
    inbox: Inbox,
    task: tokio::task::JoinHandle<()>,
}

impl Raw {
    /// Logged in as test sensor `sensor` of the test facility.
    fn connect(port: u16, sensor: &str) -> Self {
        Self::with(live::mqtt_options(port, FAC, sensor))
    }

    fn with(mut o: MqttOptions) -> Self {
        o.set_keep_alive(Duration::from_secs(10))
            .set_max_packet_size(Some(512 * 1024));
        let (client, mut el) = AsyncClient::new(o, 512);
        let acks = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let inbox: Inbox = std::sync::Arc::default();
        let (a, i) = (acks.clone(), inbox.clone());
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        a.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        i.lock().expect("inbox").push((
                            String::from_utf8_lossy(&p.topic).into_owned(),
                            p.payload.to_vec(),
                        ));
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Self {
            client,
            sealer: Sealer::default(),
            acks,
            inbox,
            task,
        }
    }

    /// Seals and publishes `msg`; the bytes sent.
    async fn publish(&self, topic: impl Into<String>, msg: impl Into<Vec<u8>>) -> Vec<u8> {
        let topic = topic.into();
        let payload = self.sealer.seal(&topic, &msg.into());
        self.client
            .publish(topic, QoS::AtLeastOnce, false, payload.clone())
            .await
            .expect("publish");
        payload
    }

    async fn publish_retained(&self, topic: impl Into<String>, msg: impl Into<Vec<u8>>) {
        let topic = topic.into();
        let payload = self.sealer.seal(&topic, &msg.into());
        self.client
            .publish(topic, QoS::AtLeastOnce, true, payload)
            .await
            .expect("publish");
    }

    fn acks(&self) -> u64 {
        self.acks.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn receipts(&self) -> Vec<Receipt> {
        self.inbox
            .lock()
            .expect("inbox")
            .iter()
            .filter(|(t, _)| t.starts_with(protocol::RECEIPT_ROOT))
            .filter_map(|(t, p)| {
                // Only what the server signed is a receipt.
                let env = protocol::signed::Envelope::open(p).ok()?;
                env.verify_with(&live::test_receipt_key().public(), t)
                    .ok()?;
                serde_json::from_slice(env.msg).ok()
            })
            .collect()
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn gap_topic(sensor: &str) -> String {
    format!("centinela/v1/{FAC}/{sensor}/gap")
}

/// The malformed message number `n` of a mix: every kind of rejection a client can provoke.
fn malformed(sensor: &str, n: u32) -> (String, Vec<u8>) {
    let good = serde_json::to_value(gap(FAC, sensor, 1_000_000 + n)).expect("json");
    let mut v = good.clone();
    match n % 8 {
        0 => (gap_topic(sensor), b"{not json".to_vec()),
        1 => {
            v["schema"] = "centinela.jammer/1".into();
            (gap_topic(sensor), v.to_string().into_bytes())
        }
        2 => {
            v["facility_id"] = "another-prison".into();
            (gap_topic(sensor), v.to_string().into_bytes())
        }
        3 => (
            format!("centinela/v1/{FAC}/{sensor}/k{n}"),
            good.to_string().into_bytes(),
        ),
        4 => {
            v["observed_at"] = "2199-01-01T00:00:00Z".into();
            v["state"] = "closed".into();
            (gap_topic(sensor), v.to_string().into_bytes())
        }
        5 => {
            v.as_object_mut().expect("object").remove("band");
            (gap_topic(sensor), v.to_string().into_bytes())
        }
        6 => (gap_topic(sensor), vec![b' '; 70_000]),
        _ => {
            v["center_hz"] = (-1.0).into();
            (gap_topic(sensor), v.to_string().into_bytes())
        }
    }
}

async fn stored_gaps(server: &Server) -> i64 {
    live::stored_count(server, "gap").await
}

/// 500 pairs of (valid event, malformed message), then one more valid event later: all 501
/// valid events are stored and the ingest session never drops. (rumqttd drops a session whose
/// acknowledgements leave out of order: before, 162 of 500 were stored and the session dropped
/// 113 times, and the later event never arrived.)
async fn interleaved_valid_and_malformed(b: Backend, broker_port: Option<u16>) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(FAC, &["mix"]);
    let server = live::start_server(broker_port, &db, "srv-mix", &fleet).await;
    let port = broker_port.unwrap_or(server.broker.1);
    let raw = Raw::connect(port, "mix");
    for n in 0..500u32 {
        let g = gap(FAC, "mix", n);
        raw.publish(gap_topic("mix"), serde_json::to_vec(&g).expect("json"))
            .await;
        let (t, p) = malformed("mix", n);
        raw.publish(t, p).await;
    }
    wait_for(
        "the broker to acknowledge all 1,000",
        Duration::from_secs(60),
        || async { raw.acks() >= 1000 },
    )
    .await;
    wait_for(
        "the 500 valid events of the mix",
        Duration::from_secs(60),
        || async { stored_gaps(&server).await == 500 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    raw.publish(
        gap_topic("mix"),
        serde_json::to_vec(&gap(FAC, "mix", 9999)).expect("json"),
    )
    .await;
    wait_for(
        "a valid event sent later",
        Duration::from_secs(20),
        || async { stored_gaps(&server).await == 501 },
    )
    .await;
    let (disconnects, lost, takeovers) = server.metrics.session_troubles();
    assert_eq!(
        (disconnects, lost, takeovers),
        (0, 0, 0),
        "the ingest session never dropped"
    );
    assert_eq!(server.metrics.rejected_total(), 500);
    let r = get(&server, "/api/rejects").await;
    let reasons: Vec<&str> = r["latest"]
        .as_array()
        .expect("latest")
        .iter()
        .filter_map(|x| x["reason"].as_str())
        .collect();
    // Broken JSON breaks the envelope around it, and a payload too large (or no object) cannot
    // be sealed: the sensor's own agent never sends either.
    for want in [
        "bad_envelope",
        "unsigned",
        "schema",
        "mismatch",
        "topic",
        "future",
        "fields",
        "value",
    ] {
        assert!(reasons.contains(&want), "{want} in {reasons:?}");
    }
    server.stop().await;
}

async fn interleaved_malformed_messages_do_not_wedge_the_embedded_broker(b: Backend) {
    interleaved_valid_and_malformed(b, None).await;
}

async fn interleaved_malformed_messages_do_not_wedge_mosquitto(b: Backend) {
    let Some(mq) = Mosquitto::start() else {
        return;
    };
    interleaved_valid_and_malformed(b, Some(mq.port)).await;
}

/// 20,000 malformed messages, most on odd topics, with 200 valid events among them: every valid
/// one is stored, the session holds, and `/metrics` does not grow with the odd topics (before,
/// each topic's last level became a label: 1.2 KB grew to 1.04 MB).
async fn a_flood_of_odd_topics_neither_wedges_ingest_nor_grows_the_metrics(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(FAC, &["flood"]);
    let server = live::start_server(None, &db, "srv-flood", &fleet).await;
    let raw = Raw::connect(server.broker.1, "flood");
    raw.publish(
        gap_topic("flood"),
        serde_json::to_vec(&gap(FAC, "flood", 0)).expect("json"),
    )
    .await;
    wait_for("a first event", Duration::from_secs(10), || async {
        stored_gaps(&server).await == 1
    })
    .await;
    let before = server.metrics.render().len();
    let mut valid = 1;
    for n in 0..20_000u32 {
        if n % 100 == 50 {
            raw.publish(
                gap_topic("flood"),
                serde_json::to_vec(&gap(FAC, "flood", n + 1)).expect("json"),
            )
            .await;
            valid += 1;
        }
        let (t, p) = if n % 4 == 0 {
            malformed("flood", n)
        } else {
            (format!("centinela/v1/{FAC}/flood/odd-{n}"), b"{}".to_vec())
        };
        raw.publish(t, p).await;
    }
    wait_for(
        "the 201 valid events among 20,000 bad ones",
        Duration::from_secs(120),
        || async { stored_gaps(&server).await == valid },
    )
    .await;
    wait_for(
        "every rejection counted",
        Duration::from_secs(60),
        || async { server.metrics.rejected_total() == 20_000 },
    )
    .await;
    let after = server.metrics.render().len();
    eprintln!("/metrics: {before} bytes before, {after} after 20,000 odd messages");
    assert!(
        after < before + 1500,
        "/metrics grew from {before} to {after} bytes"
    );
    assert_eq!(server.metrics.session_troubles(), (0, 0, 0));
    server.stop().await;
}

/// A `closed` gap dated 2199 once hid a real leak for good (later honest updates became history
/// only). Now it is refused for now (a receipt says `deferred`), and the honest update that
/// follows is the current state.
async fn a_message_dated_in_the_future_cannot_rewrite_the_present(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(FAC, &["yard"]);
    let server = live::start_server(None, &db, "srv-future", &fleet).await;
    let raw = Raw::connect(server.broker.1, "yard");
    raw.client
        .subscribe(
            protocol::receipt_topic(FAC, "yard").expect("topic"),
            QoS::AtLeastOnce,
        )
        .await
        .expect("subscribe");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let open = gap(FAC, "yard", 0);
    raw.publish(gap_topic("yard"), serde_json::to_vec(&open).expect("json"))
        .await;
    let mut forged = open.clone();
    forged.state = GapState::Closed;
    forged.observed_at = OffsetDateTime::parse(
        "2199-01-01T00:00:00Z",
        &time::format_description::well_known::Rfc3339,
    )
    .expect("time");
    forged.event_id = event_id(forged.observed_at, b"forged close");
    let mut near = forged.clone();
    near.observed_at = OffsetDateTime::now_utc() + time::Duration::minutes(10);
    near.event_id = event_id(near.observed_at, b"ten minutes ahead");
    let forged_bytes = raw
        .publish(
            gap_topic("yard"),
            serde_json::to_vec(&forged).expect("json"),
        )
        .await;
    raw.publish(gap_topic("yard"), serde_json::to_vec(&near).expect("json"))
        .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut honest = open.clone();
    honest.state = GapState::Update;
    honest.observed_at = OffsetDateTime::now_utc();
    honest.margin_db = 27.5;
    honest.event_id = event_id(honest.observed_at, b"honest update");
    raw.publish(
        gap_topic("yard"),
        serde_json::to_vec(&honest).expect("json"),
    )
    .await;
    wait_for("the honest update", Duration::from_secs(10), || async {
        stored_gaps(&server).await == 2
    })
    .await;
    let gaps = get(&server, &format!("/api/facilities/{FAC}/gaps")).await;
    let rows = gaps.as_array().expect("array");
    assert_eq!(rows.len(), 1, "{gaps}");
    assert_eq!(
        rows[0]["state"], "update",
        "the leak is still shown: {gaps}"
    );
    assert_eq!(rows[0]["margin_db"], 27.5, "{gaps}");
    wait_for("the receipts", Duration::from_secs(10), || async {
        raw.receipts().iter().map(|r| r.items.len()).sum::<usize>() >= 4
    })
    .await;
    let items: Vec<_> = raw.receipts().into_iter().flat_map(|r| r.items).collect();
    let outcome = |id: uuid::Uuid| items.iter().find(|i| i.event_id == id).map(|i| i.outcome);
    assert_eq!(outcome(open.event_id), Some(Outcome::Stored));
    assert_eq!(outcome(forged.event_id), Some(Outcome::Deferred));
    assert_eq!(outcome(near.event_id), Some(Outcome::Deferred));
    assert_eq!(outcome(honest.event_id), Some(Outcome::Stored));
    let forged_item = items
        .iter()
        .find(|i| i.event_id == forged.event_id)
        .expect("item");
    assert!(
        forged_item
            .reason
            .as_deref()
            .is_some_and(|r| r.contains("ahead of this server's clock")),
        "{forged_item:?}"
    );
    assert_eq!(
        forged_item.sha256,
        protocol::payload_sha256(&forged_bytes),
        "the digest is of the bytes received: the whole envelope"
    );
    let m = server.metrics.render();
    assert_eq!(
        counter(&m, "centinela_messages_rejected_total{reason=\"future\"}"),
        2,
        "{m}"
    );
    server.stop().await;
}

fn status(
    sensor: &str,
    state: SensorState,
    heartbeat_s: f64,
    connected_at: OffsetDateTime,
) -> StatusEvent {
    let now = OffsetDateTime::now_utc();
    let observed_at = if state == SensorState::Offline {
        connected_at
    } else {
        now
    };
    StatusEvent {
        schema: STATUS_SCHEMA.into(),
        event_id: event_id(
            now,
            format!("{sensor} {state:?} {heartbeat_s} {connected_at}").as_bytes(),
        ),
        facility_id: FAC.into(),
        sensor_id: sensor.into(),
        observed_at,
        state,
        connected_at: Some(connected_at),
        zone: "patio".into(),
        position_m: None,
        agent_version: "test".into(),
        heartbeat_s,
        unreachable_bands: vec![],
        health: SensorHealth::default(),
        will_seq: None,
    }
}

async fn sensor_state(server: &Server, sensor: &str) -> Option<String> {
    let v = get(server, &format!("/api/facilities/{FAC}/sensors")).await;
    v.as_array()?
        .iter()
        .find(|s| s["sensor_id"] == sensor)
        .and_then(|s| s["state"].as_str().map(str::to_string))
}

/// A retained status announcing a heartbeat of a day once kept a stopped sensor "online"; now
/// it is refused, and a sensor that stops talking is offline after three of its (bounded)
/// heartbeats. The Last Will of an older connection, delivered late, does not mark a newer
/// connection offline; the Will of the current one does.
async fn sensors_go_offline_on_time_and_only_by_their_own_connection(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(FAC, &["sleeper", "roamer"]);
    let server = live::start_server(None, &db, "srv-hb", &fleet).await;
    let raw = Raw::connect(server.broker.1, "sleeper");
    let t = |s: &StatusEvent| {
        (
            format!("centinela/v1/{FAC}/{}/status", s.sensor_id),
            serde_json::to_vec(s).expect("json"),
        )
    };
    let now = OffsetDateTime::now_utc();
    let (topic, p) = t(&status("sleeper", SensorState::Online, 86_400.0, now));
    raw.publish_retained(topic, p).await;
    wait_for(
        "the day-long heartbeat refused",
        Duration::from_secs(10),
        || async { server.metrics.rejected_total() == 1 },
    )
    .await;
    assert_eq!(sensor_state(&server, "sleeper").await, None);
    let (topic, p) = t(&status("sleeper", SensorState::Online, 1.0, now));
    raw.publish_retained(topic, p).await;
    wait_for("the sensor online", Duration::from_secs(10), || async {
        sensor_state(&server, "sleeper").await.as_deref() == Some("online")
    })
    .await;
    let t0 = std::time::Instant::now();
    wait_for(
        "the silent sensor offline",
        Duration::from_secs(15),
        || async { sensor_state(&server, "sleeper").await.as_deref() == Some("offline") },
    )
    .await;
    eprintln!(
        "offline after {:.1} s of silence (heartbeat 1 s)",
        t0.elapsed().as_secs_f64()
    );

    // Connection 1 started long ago, connection 2 now: the Will of 1 arrives after 2's hello.
    let c1 = now - time::Duration::hours(3);
    let c2 = OffsetDateTime::now_utc();
    let (topic, p) = t(&status("roamer", SensorState::Online, 10.0, c2));
    raw.publish(topic, p).await;
    let (topic, p) = t(&status("roamer", SensorState::Offline, 10.0, c1));
    raw.publish(topic, p).await;
    wait_for("both statuses stored", Duration::from_secs(10), || async {
        live::stored_count(&server, "status").await >= 3
    })
    .await;
    assert_eq!(
        sensor_state(&server, "roamer").await.as_deref(),
        Some("online"),
        "a late Will of an older connection does not mark the sensor offline"
    );
    let (topic, p) = t(&status("roamer", SensorState::Offline, 10.0, c2));
    raw.publish(topic, p).await;
    wait_for("the current Will", Duration::from_secs(10), || async {
        sensor_state(&server, "roamer").await.as_deref() == Some("offline")
    })
    .await;
    server.stop().await;
}

/// A client connecting with the server's own client id takes over its session (before, 151 of
/// 200 events never reached the store). Now the takeover is counted and logged, the server
/// takes its session back, and the agent sends again whatever has no receipt: all 200 are
/// stored, once.
async fn takeover(b: Backend, broker_port: Option<u16>) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let client_id = "centinela-server-takeover";
    let fleet = Fleet::new().with(FAC, &["victim"]);
    let server = live::start_server(broker_port, &db, client_id, &fleet).await;
    let port = broker_port.unwrap_or(server.broker.1);
    let mut feeder = Feeder::start(
        &dir.path().join("outbox"),
        port,
        FAC,
        "victim",
        Duration::from_secs(3),
    );
    feeder.push_paced(0..50).await;
    // The imposter: same client id, and it acknowledges (and so swallows) what it receives.
    // An insider with the server's own broker password (on Mosquitto, which lets anyone in
    // here, any client).
    let mut o = MqttOptions::new(client_id, "127.0.0.1", port);
    if broker_port.is_none() {
        let secret = std::fs::read_to_string(
            dir.path()
                .join("broker")
                .join(central_server::credentials::SERVER_SECRET_FILE),
        )
        .expect("the server's broker password");
        o.set_credentials(central_server::credentials::SERVER_USER, secret.trim());
    }
    let imposter = Raw::with(o);
    imposter
        .client
        .subscribe("centinela/v1/+/+/+", QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    feeder.push_paced(50..200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    drop(imposter);
    wait_for("all 200 events stored", Duration::from_secs(90), || async {
        stored_gaps(&server).await == 200
    })
    .await;
    wait_for("an empty outbox", Duration::from_secs(30), || async {
        feeder.outbox.is_empty()
    })
    .await;
    let (disconnects, lost, takeovers) = server.metrics.session_troubles();
    eprintln!(
        "takeover: {disconnects} disconnects, {lost} sessions lost, {takeovers} takeovers reported by the broker; link {:?}",
        feeder.status.link_stats()
    );
    // Neither rumqttd nor Mosquitto 2.0.11 says "session taken over" (0x8E) before closing
    // the connection: the takeover shows as a lost connection and, on reconnecting, a session
    // the broker no longer has (the imposter started clean).
    assert!(
        disconnects >= 1,
        "the takeover is visible: {disconnects} disconnects"
    );
    assert!(lost >= 1, "the lost session is visible: {lost}");
    let _ = takeovers;
    let (_, sent) = feeder.finish().await;
    let history = get(
        &server,
        &format!("/api/facilities/{FAC}/gaps/history?limit=100000"),
    )
    .await;
    let stored: Vec<String> = history
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|e| e["event_id"].as_str().map(str::to_string))
        .collect();
    live::assert_exactly_once(&stored, &sent, "after a takeover");
    server.stop().await;
}

async fn a_takeover_of_the_servers_session_loses_nothing_on_the_embedded_broker(b: Backend) {
    takeover(b, None).await;
}

async fn a_takeover_of_the_servers_session_loses_nothing_on_mosquitto(b: Backend) {
    let Some(mq) = Mosquitto::start() else {
        return;
    };
    takeover(b, Some(mq.port)).await;
}
