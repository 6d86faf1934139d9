//! Forgeries against the signed ingest, over the embedded broker and Mosquitto (which let a
//! logged-in sensor publish on another's topic): an insider's sensor that speaks for a
//! registered sensor without its key (unsigned, signed by another key, a signature
//! that no longer fits the bytes), for a sensor nobody registered, for a revoked sensor, and a
//! replay of a used sequence number. Each is refused, counted by reason, listed, and the
//! sensors it named raise one `tamper` alert each; the honest sensor's gap stays as it said.
//! A deliberate gap in the honest sensor's numbers shows as missing messages.

use std::time::Duration;

use centinela_tests::Mosquitto;
use centinela_tests::live::{self, Fleet, Sealer, counter, gap, get, test_key, wait_for};
use centinela_tests::testdb::Backend;
use protocol::GapState;
use protocol::signed::SensorKey;
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

centinela_tests::on_both_databases!(
    forgeries_are_refused_counted_and_alerted_on_the_embedded_broker,
    forgeries_are_refused_counted_and_alerted_through_mosquitto,
    the_embedded_broker_refuses_anonymous_unknown_and_borrowed_identities,
    mosquitto_with_broker_config_enforces_each_sensors_rights,
    forged_receipts_on_the_embedded_broker_erase_nothing,
);

const FAC: &str = "trust-prison";

fn topic(sensor: &str) -> String {
    format!("centinela/v1/{FAC}/{sensor}/gap")
}

fn json(g: &protocol::GapEvent) -> Vec<u8> {
    serde_json::to_vec(g).expect("json")
}

async fn forgeries(b: Backend, broker_port: Option<u16>) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new()
        .with(FAC, &["honest", "insider"])
        .revoked(FAC, "stolen");
    let server = live::start_server(broker_port, &db, "srv-trust", &fleet).await;
    let port = broker_port.unwrap_or(server.broker.1);
    // One client relays the honest sensor's bytes and sends the insider's forgeries.
    let mut o = live::mqtt_options(port, FAC, "insider");
    o.set_keep_alive(Duration::from_secs(10));
    let (client, mut el) = AsyncClient::new(o, 64);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let send = |t: String, p: Vec<u8>| {
        let c = client.clone();
        async move {
            c.publish(t, QoS::AtLeastOnce, false, p)
                .await
                .expect("publish");
        }
    };
    // The honest sensor opens a gap (a real leak), signed with its key.
    let honest = Sealer::default();
    let open = gap(FAC, "honest", 0);
    let open_bytes = honest.seal(&topic("honest"), &json(&open));
    send(topic("honest"), open_bytes.clone()).await;
    wait_for("the honest gap", Duration::from_secs(10), || async {
        live::stored_count(&server, "gap").await == 1
    })
    .await;

    // Forgeries: each tries to close the honest sensor's gap (the all-clear an insider wants).
    let mut closed = open.clone();
    closed.state = GapState::Closed;
    closed.observed_at = time::OffsetDateTime::now_utc();
    closed.event_id = protocol::event_id(closed.observed_at, b"forged all-clear");
    let forger = SensorKey::from_seed(&[0x66; 32]);
    // 1. unsigned;
    send(topic("honest"), json(&closed)).await;
    // 2. signed with the forger's own key;
    send(
        topic("honest"),
        forger
            .seal(&topic("honest"), 99, &json(&closed))
            .expect("seal"),
    )
    .await;
    // 3. the honest envelope of the open gap, its message edited to say closed;
    let edited = String::from_utf8(open_bytes.clone())
        .expect("utf8")
        .replace("\"state\":\"open\"", "\"state\":\"closed\"");
    assert_ne!(
        edited.as_bytes(),
        &open_bytes[..],
        "the edit changed the bytes"
    );
    send(topic("honest"), edited.into_bytes()).await;
    // 4. a sensor no one registered, and 5. a revoked sensor, each with its own (stolen) key;
    for who in ["ghost", "stolen"] {
        let g = gap(FAC, who, 0);
        let sealed = test_key(FAC, who)
            .seal(&topic(who), 1, &json(&g))
            .expect("seal");
        send(topic(who), sealed).await;
    }
    // 6. a replay: the honest key's number 1 (already used by the open gap) on other bytes —
    //    what a sensor whose counter was restored from an old backup, or a clone, would send.
    send(
        topic("honest"),
        test_key(FAC, "honest")
            .seal(&topic("honest"), 1, &json(&closed))
            .expect("seal"),
    )
    .await;
    // 7. and the honest bytes again (a resend): a duplicate, not an attack.
    send(topic("honest"), open_bytes.clone()).await;
    wait_for("six refusals", Duration::from_secs(10), || async {
        server.metrics.rejected_total() == 6
    })
    .await;
    let m = server.metrics.render();
    for reason in [
        "unsigned",
        "wrong_key",
        "bad_signature",
        "unknown_sensor",
        "revoked",
        "replayed",
    ] {
        assert_eq!(
            counter(
                &m,
                &format!("centinela_messages_rejected_total{{reason=\"{reason}\"}}")
            ),
            1,
            "{reason}: {m}"
        );
    }
    assert_eq!(counter(&m, "centinela_events_duplicate_total"), 1, "{m}");
    // One tamper alert per named registered sensor (honest: four refusals; stolen: one), none
    // for the ghost.
    wait_for("the tamper alerts", Duration::from_secs(5), || async {
        counter(
            &server.metrics.render(),
            "centinela_alerts_total{kind=\"tamper\"}",
        ) == 2
    })
    .await;
    let rejects = get(&server, "/api/rejects").await;
    let reasons: Vec<&str> = rejects["latest"]
        .as_array()
        .expect("latest")
        .iter()
        .filter_map(|r| r["reason"].as_str())
        .collect();
    for want in [
        "unsigned",
        "wrong_key",
        "bad_signature",
        "unknown_sensor",
        "revoked",
        "replayed",
    ] {
        assert!(reasons.contains(&want), "{want} listed: {rejects}");
    }
    let gaps = get(&server, &format!("/api/facilities/{FAC}/gaps")).await;
    let rows = gaps.as_array().expect("gaps");
    assert_eq!(rows.len(), 1, "the leak is still shown: {gaps}");
    assert_eq!(rows[0]["state"], "open", "{gaps}");
    assert_eq!(rows[0]["sensor_id"], "honest", "{gaps}");

    // A deliberate gap: the honest sensor's numbers 2–6 never sent, 7 sent.
    honest.skip(FAC, "honest", 5);
    let next = gap(FAC, "honest", 8);
    send(topic("honest"), honest.seal(&topic("honest"), &json(&next))).await;
    let now = time::OffsetDateTime::now_utc();
    let status = protocol::StatusEvent {
        schema: protocol::STATUS_SCHEMA.into(),
        event_id: protocol::event_id(now, b"honest hello"),
        facility_id: FAC.into(),
        sensor_id: "honest".into(),
        observed_at: now,
        state: protocol::SensorState::Online,
        connected_at: Some(now),
        zone: "patio".into(),
        position_m: None,
        agent_version: "test".into(),
        heartbeat_s: 10.0,
        unreachable_bands: vec![],
        health: protocol::SensorHealth::default(),
        will_seq: None,
    };
    let st = format!("centinela/v1/{FAC}/honest/status");
    send(
        st.clone(),
        honest.seal(&st, &serde_json::to_vec(&status).expect("json")),
    )
    .await;
    let sensors_path = format!("/api/facilities/{FAC}/sensors");
    wait_for("the sensor listed", Duration::from_secs(10), || async {
        get(&server, &sensors_path)
            .await
            .as_array()
            .is_some_and(|a| !a.is_empty())
    })
    .await;
    let sensors = get(&server, &sensors_path).await;
    assert_eq!(sensors[0]["last_seq"], 8, "{sensors}");
    assert_eq!(
        sensors[0]["missing_messages"], 5,
        "numbers 2–6 never came: {sensors}"
    );
    server.stop().await;
}

async fn forgeries_are_refused_counted_and_alerted_on_the_embedded_broker(b: Backend) {
    forgeries(b, None).await;
}

async fn forgeries_are_refused_counted_and_alerted_through_mosquitto(b: Backend) {
    let Some(mq) = Mosquitto::start() else {
        return;
    };
    forgeries(b, Some(mq.port)).await;
}

/// The PUBACK reason of one QoS 1 publish by a new client; `Err` with the connection error when
/// the broker closes the connection instead (Mosquitto 2.0.11 does so right after refusing).
async fn puback(o: MqttOptions, topic: String, payload: Vec<u8>) -> Result<PubAckReason, String> {
    let (c, mut el) = AsyncClient::new(o, 8);
    c.publish(topic, QoS::AtLeastOnce, false, payload)
        .await
        .expect("publish");
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::PubAck(a))) => return Ok(a.reason),
                Ok(_) => {}
                Err(e) => return Err(format!("{e:?}")),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no answer".into()))
}

/// A client kept connected in the background, counting how often its connection dropped.
struct Connection {
    drops: std::sync::Arc<std::sync::atomic::AtomicU32>,
    task: tokio::task::JoinHandle<()>,
}

impl Connection {
    fn open(o: MqttOptions) -> Self {
        let drops = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let d = drops.clone();
        let (c, mut el) = AsyncClient::new(o, 8);
        let task = tokio::spawn(async move {
            let _keep = c;
            loop {
                if el.poll().await.is_err() {
                    d.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Self { drops, task }
    }

    fn drops(&self) -> u32 {
        self.drops.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a client with these options gets a successful CONNACK within 5 s.
async fn connects(o: MqttOptions) -> bool {
    let (_c, mut el) = AsyncClient::new(o, 8);
    let r = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(a))) => {
                    return a.code == rumqttc::v5::mqttbytes::v5::ConnectReturnCode::Success;
                }
                Ok(_) => {}
                Err(_) => return false,
            }
        }
    })
    .await;
    r.unwrap_or(false)
}

/// The embedded broker lets in only the users of its password file, each with its own client
/// id: no anonymous client, no unknown user, no wrong password, no sensor in another's session
/// or the server's. Every refusal is counted.
async fn the_embedded_broker_refuses_anonymous_unknown_and_borrowed_identities(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(FAC, &["honest", "insider"]);
    let server = live::start_server(None, &db, "srv-door", &fleet).await;
    let port = server.broker.1;
    let anonymous = MqttOptions::new("anonymous", "127.0.0.1", port);
    let mut unknown = MqttOptions::new("centinela-trust-prison-ghost", "127.0.0.1", port);
    unknown.set_credentials("trust-prison.ghost", "whatever");
    let mut wrong = live::mqtt_options(port, FAC, "insider");
    wrong.set_credentials(
        centinela_tests::live::login(FAC, "insider").0,
        "not-the-password",
    );
    // The insider's own login, in the honest sensor's session and in the server's.
    let (user, password, _) = centinela_tests::live::login(FAC, "insider");
    let mut borrowed = MqttOptions::new(
        centinela_tests::live::login(FAC, "honest").2,
        "127.0.0.1",
        port,
    );
    borrowed.set_credentials(user.clone(), password.expose());
    let mut server_session = MqttOptions::new("srv-door", "127.0.0.1", port);
    server_session.set_credentials(user, password.expose());
    for (what, o) in [
        ("anonymous", anonymous),
        ("unknown user", unknown),
        ("wrong password", wrong),
        ("another sensor's client id", borrowed),
        ("the server's client id", server_session),
    ] {
        assert!(!connects(o).await, "{what} must be refused");
    }
    assert!(
        connects(live::mqtt_options(port, FAC, "insider")).await,
        "the insider's own login works"
    );
    let m = server.metrics.render();
    // An anonymous client is turned away by rumqttd itself, before the login hook that counts
    // (rumqttd logs it); every client that offers a login is counted.
    for (reason, n) in [("unknown_user", 1), ("bad_password", 1), ("client_id", 2)] {
        assert_eq!(
            counter(
                &m,
                &format!("centinela_broker_connections_refused_total{{reason=\"{reason}\"}}")
            ),
            n,
            "{reason}: {m}"
        );
    }
    assert!(
        server.metrics.connected(),
        "the server's own session is untouched"
    );
    server.stop().await;
}

/// Mosquitto with the files `central-server broker-config` writes: no anonymous client; a
/// sensor may publish only on its own topics (another's: refused, and Mosquitto 2.0.11 closes
/// the connection) and reads nothing of another sensor's, messages or receipts; a revoked
/// sensor has no user; the server reads all.
async fn mosquitto_with_broker_config_enforces_each_sensors_rights(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new()
        .with(FAC, &["honest", "insider"])
        .revoked(FAC, "stolen");
    let cfg = central_server::config::ServerConfig {
        server: central_server::config::ServerSection {
            db: db.db.clone(),
            data_dir: Some(db.dir.clone()),
            ..central_server::config::ServerSection::default()
        },
        facilities: fleet.facilities(),
    };
    let broker_dir = cfg.server.broker_dir();
    let w = central_server::credentials::broker_config(&cfg, &broker_dir).expect("broker-config");
    assert!(
        w.new_sensors.iter().all(|(u, _)| !u.contains("stolen")),
        "a revoked sensor gets no user: {w:?}"
    );
    let fragment = std::fs::read_to_string(broker_dir.join(central_server::credentials::CONF_FILE))
        .expect("fragment");
    // Mosquitto as Debian runs it: started as root, it reads its password and ACL files as its
    // own user, which broker-config gave them to (the data directory must let it through).
    let mq = if w.broker_group.is_some() {
        use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .expect("chmod");
        for f in [
            central_server::credentials::PASSWD_FILE,
            central_server::credentials::ACL_FILE,
        ] {
            let m = std::fs::metadata(broker_dir.join(f)).expect("file");
            assert_eq!(
                m.mode() & 0o777,
                0o640,
                "{f} readable by the broker's group"
            );
            assert_eq!(Some(m.gid()), w.broker_group, "{f}'s group");
        }
        Mosquitto::start_as_its_user(&fragment)
    } else {
        eprintln!("no `mosquitto` group here: Mosquitto runs as this test's user");
        Mosquitto::start_with(&fragment)
    };
    let Some(mq) = mq else {
        return;
    };
    let server = live::start_server(Some(mq.port), &db, "srv-acl", &fleet).await;
    let login = |sensor: &str| {
        let user = central_server::credentials::sensor_user(FAC, sensor);
        let (u, p) = central_server::credentials::read_credentials(
            &broker_dir
                .join(central_server::credentials::CREDENTIALS_DIR)
                .join(&user),
        )
        .expect("credentials written");
        let mut o = MqttOptions::new(
            central_server::credentials::sensor_client_id(FAC, sensor),
            "127.0.0.1",
            mq.port,
        );
        o.set_credentials(u, p.expose());
        o
    };
    // No sensor takes over another's session or the server's: Mosquitto gives each login its
    // user name as client id, whatever it asked for.
    let troubles = server.metrics.session_troubles();
    let honest_link = Connection::open(login("honest"));
    for borrowed in [
        "centinela-server",
        "srv-acl",
        &central_server::credentials::sensor_client_id(FAC, "honest"),
    ] {
        let mut o = login("insider");
        o.set_client_id(borrowed.to_string());
        assert!(
            connects(o).await,
            "the insider's own login, whatever id it asks for, is let in as itself"
        );
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        server.metrics.session_troubles(),
        troubles,
        "the server's session was taken over or lost (disconnects, no session, takeovers)\n{}",
        mq.log()
    );
    assert!(server.metrics.connected(), "the server is still subscribed");
    assert_eq!(
        honest_link.drops(),
        0,
        "the honest sensor's connection was taken over\n{}",
        mq.log()
    );
    drop(honest_link);
    assert!(
        !connects(MqttOptions::new("anon", "127.0.0.1", mq.port)).await,
        "anonymous"
    );
    let mut stolen = MqttOptions::new("stolen", "127.0.0.1", mq.port);
    stolen.set_credentials(
        central_server::credentials::sensor_user(FAC, "stolen"),
        "guess",
    );
    assert!(!connects(stolen).await, "a revoked sensor has no user");
    // The insider publishes on the honest sensor's topic (a forged close) and on its own
    // (Mosquitto closes a connection after refusing its publish: each try gets its own client).
    let sealer = Sealer::default();
    let mut closed = gap(FAC, "honest", 0);
    closed.state = GapState::Closed;
    let own = gap(FAC, "insider", 0);
    let forged_ack = puback(login("insider"), topic("honest"), json(&closed)).await;
    let own_ack = puback(
        login("insider"),
        topic("insider"),
        sealer.seal(&topic("insider"), &json(&own)),
    )
    .await;
    assert!(
        forged_ack == Ok(PubAckReason::NotAuthorized)
            || forged_ack
                .as_ref()
                .is_err_and(|e| e.contains("ConnectionAborted")),
        "another's topic refused: {forged_ack:?}\n{}",
        mq.log()
    );
    assert_eq!(own_ack, Ok(PubAckReason::Success), "its own accepted");
    // The insider listens to everything and to the honest sensor's receipts; the honest
    // sensor then reports a gap. Mosquitto grants a wildcard subscription and checks the read
    // right of each message it would deliver: nothing of the honest sensor's reaches the insider.
    let heard: std::sync::Arc<std::sync::Mutex<Vec<String>>> = std::sync::Arc::default();
    let (spy, mut el) = AsyncClient::new(login("insider"), 16);
    let h = heard.clone();
    let spy_task = tokio::spawn(async move {
        while let Ok(ev) = el.poll().await {
            if let Event::Incoming(Packet::Publish(p)) = ev {
                h.lock()
                    .expect("heard")
                    .push(String::from_utf8_lossy(&p.topic).into_owned());
            }
        }
    });
    for filter in [
        "centinela/v1/#".to_string(),
        protocol::receipt_topic(FAC, "honest").expect("topic"),
    ] {
        spy.subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let honest_gap = gap(FAC, "honest", 1);
    let sent = puback(
        login("honest"),
        topic("honest"),
        sealer.seal(&topic("honest"), &json(&honest_gap)),
    )
    .await;
    assert_eq!(
        sent,
        Ok(PubAckReason::Success),
        "the honest sensor's own topic"
    );
    wait_for(
        "both sensors' events stored",
        Duration::from_secs(10),
        || async { live::stored_count(&server, "gap").await == 2 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    spy_task.abort();
    let heard = heard.lock().expect("heard").clone();
    assert!(
        heard.iter().all(|t| !t.contains("/honest")),
        "the insider read the honest sensor's messages or receipts: {heard:?}"
    );
    assert_eq!(
        server.metrics.rejected_total(),
        0,
        "the forged close never reached the server"
    );
    server.stop().await;
}

/// Holds the database's write lock (SQLite) or the sequence table (PostgreSQL) from a connection
/// of the test's own, so that the server cannot commit until [`Stall::release`].
struct Stall {
    conn: sqlx::pool::PoolConnection<sqlx::Any>,
}

impl Stall {
    async fn start(db: &centinela_tests::testdb::TestDb) -> Self {
        let pool = db.reader().await;
        let mut conn = pool.acquire().await.expect("connection");
        let sql = match db.backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN; LOCK TABLE sequences IN ACCESS EXCLUSIVE MODE",
        };
        sqlx::raw_sql(sql).execute(&mut *conn).await.expect("lock");
        Self { conn }
    }

    async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK")
            .execute(&mut *self.conn)
            .await
            .expect("unlock");
    }
}

/// The insider of the issue: a sensor's login on the embedded broker (no topic rights) hears
/// another sensor's events and answers each with `stored` receipts carrying the right digest,
/// unsigned and signed with its own sensor key, while the server cannot commit. The agent
/// keeps every event (the receipts are not the server's), counts the forgeries, and all its
/// events are stored once when the database frees up.
async fn forged_receipts_on_the_embedded_broker_erase_nothing(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new().with(FAC, &["victim", "thief"]);
    let server = live::start_server(None, &db, "srv-receipts", &fleet).await;
    let port = server.broker.1;
    let stall = Stall::start(&db).await;
    // The thief listens to the victim and forges a receipt for every event it hears.
    let receipt_topic = protocol::receipt_topic(FAC, "victim").expect("topic");
    let forged = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let (thief, mut el) = AsyncClient::new(live::mqtt_options(port, FAC, "thief"), 256);
    thief
        .subscribe(topic("victim"), QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (c, f, rt) = (thief.clone(), forged.clone(), receipt_topic.clone());
    let thief_task = tokio::spawn(async move {
        let own_key = test_key(FAC, "thief");
        while let Ok(ev) = el.poll().await {
            let Event::Incoming(Packet::Publish(p)) = ev else {
                continue;
            };
            let Some(event_id) = protocol::peek_event_id(&p.payload) else {
                continue;
            };
            let r = protocol::Receipt {
                schema: protocol::RECEIPT_SCHEMA.into(),
                facility_id: FAC.into(),
                sensor_id: "victim".into(),
                committed_at: time::OffsetDateTime::now_utc(),
                items: vec![protocol::ReceiptItem {
                    event_id,
                    outcome: protocol::Outcome::Stored,
                    sha256: protocol::payload_sha256(&p.payload),
                    reason: None,
                }],
            };
            let bare = serde_json::to_vec(&r).expect("json");
            let signed = protocol::receipt::seal_receipt(&own_key, &rt, 1, &r).expect("seal");
            for payload in [bare, signed] {
                let c = c.clone();
                let rt = rt.clone();
                tokio::spawn(async move {
                    let _ = c.publish(rt, QoS::AtLeastOnce, false, payload).await;
                });
            }
            f.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut victim = live::Feeder::start(
        &dir.path().join("outbox"),
        port,
        FAC,
        "victim",
        Duration::from_secs(3),
    );
    victim.push_paced(0..30).await;
    wait_for(
        "the thief to forge receipts for every event",
        Duration::from_secs(15),
        || async { forged.load(std::sync::atomic::Ordering::Relaxed) >= 30 },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        victim.outbox.len(),
        30,
        "forged receipts made the agent forget events the server has not committed"
    );
    let h = victim.status.status(protocol::SensorState::Online).health;
    assert!(
        h.receipts_refused >= 60,
        "every forged receipt (bare and signed by another key) is counted: {h:?}"
    );
    stall.release().await;
    wait_for(
        "every event stored once the database frees up",
        Duration::from_secs(60),
        || async { victim.outbox.is_empty() },
    )
    .await;
    thief_task.abort();
    let (_, ids) = victim.finish().await;
    server.stop().await;
    let stored = live::stored_ids(&db, "gap").await;
    live::assert_exactly_once(&stored, &ids, "forged receipts");
}
