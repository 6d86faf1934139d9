//! The system end to end over real brokers on loopback: agents → broker (embedded rumqttd or
//! Mosquitto) → server → SQLite → HTTP API, with broker and server restarts, bad messages, the
//! demo's map against the simulator's truth, and the dashboard in headless Chromium.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use centinela_demo::{self as demo, Demo, DemoArgs};
use centinela_tests::live::{self, Feeder, Fleet, Sealer, wait_for};
use centinela_tests::testdb::{Backend, TestDb};
use centinela_tests::{Mosquitto, free_port};
use central_server::Server;
use central_server::config::{ServerConfig, ServerSection};
use central_server::db::Database;
use protocol::{Kind, event_id, topic};
use sensor_agent::daemon::outbox::{Entry, Outbox};
use sensor_agent::daemon::publisher::{self, LinkOptions, StatusSource};
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};

centinela_tests::on_both_databases!(
    broker_outage_every_event_arrives_once,
    server_restart_loses_and_doubles_nothing,
    malformed_and_mismatched_messages_are_rejected_and_counted,
    agent_to_api_through_the_embedded_broker,
    agent_to_api_through_mosquitto,
    demo_map_matches_the_simulators_truth_and_the_dashboard_shows_it,
    ingest_keeps_up_with_a_burst_larger_than_its_window,
    agent_and_server_links_over_tls,
    agent_runs_on_a_recorded_sweep,
    alerts_are_posted_to_the_webhook,
);

const FAC: &str = "test-prison";

fn loopback0() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

async fn start_server(broker_port: Option<u16>, db: &TestDb, client_id: &str) -> Server {
    start_with(broker_port, db, client_id, &fleet()).await
}

async fn start_with(
    broker_port: Option<u16>,
    db: &TestDb,
    client_id: &str,
    fleet: &Fleet,
) -> Server {
    live::start_server(broker_port, db, client_id, fleet).await
}

/// The test sensors of these scenarios, with their test keys.
fn fleet() -> Fleet {
    Fleet::new().with(
        FAC,
        &[
            "feeder-1", "feeder-2", "s1", "burst-0", "burst-1", "burst-2", "burst-3", "tls-1",
            "tls-2",
        ],
    )
}

/// A fleet with the demo sensor `id` (its key made by the demo's enrolment under `dir`).
fn with_demo_sensor(dir: &Path, id: &str, zone: &str) -> Fleet {
    let key = demo::enroll(dir, id).expect("demo key");
    fleet().key(demo::FACILITY, id, zone, key)
}

async fn get(server: &Server, path: &str) -> Value {
    live::get(server, path).await
}

async fn stored_gaps(server: &Server) -> i64 {
    live::stored_count(server, "gap").await
}

fn gap(sensor: &str, n: u32) -> protocol::GapEvent {
    live::gap(FAC, sensor, n)
}

fn feeder(dir: &Path, port: u16, sensor: &str) -> Feeder {
    Feeder::start(dir, port, FAC, sensor, Duration::from_secs(5))
}

async fn history_ids(server: &Server) -> Vec<String> {
    let v = get(
        server,
        &format!("/api/facilities/{FAC}/gaps/history?limit=100000"),
    )
    .await;
    v.as_array()
        .unwrap_or_else(|| panic!("the history is not a list: {v}"))
        .iter()
        .map(|e| e["event_id"].as_str().expect("id").to_string())
        .collect()
}

fn assert_exactly_once(stored: &[String], sent: &[uuid::Uuid]) {
    live::assert_exactly_once(stored, sent, "gap history");
}

async fn broker_outage_every_event_arrives_once(b: Backend) {
    let Some(mut mq) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let server = start_server(Some(mq.port), &db, "srv-outage").await;
    wait_for("the server's session", Duration::from_secs(10), || async {
        server.metrics.connected()
    })
    .await;
    let mut feeder = feeder(&dir.path().join("outbox"), mq.port, "feeder-1");
    feeder.push_paced(0..100).await;
    wait_for("the first 100 events", Duration::from_secs(20), || async {
        stored_gaps(&server).await == 100
    })
    .await;
    mq.stop();
    // The broker is down: events wait in the outbox.
    feeder.push_paced(100..250).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        feeder.outbox.len() >= 150,
        "events wait on disk while the broker is down ({} waiting)",
        feeder.outbox.len()
    );
    assert_eq!(stored_gaps(&server).await, 100);
    mq.restart();
    feeder.push_paced(250..300).await;
    wait_for("all 300 events", Duration::from_secs(40), || async {
        stored_gaps(&server).await == 300
    })
    .await;
    wait_for("an empty outbox", Duration::from_secs(10), || async {
        feeder.outbox.is_empty()
    })
    .await;
    let (stats, sent) = feeder.finish().await;
    assert!(stats.connects >= 2, "the link reconnected: {stats:?}");
    assert_exactly_once(&history_ids(&server).await, &sent);
    server.stop().await;
}

async fn server_restart_loses_and_doubles_nothing(b: Backend) {
    let Some(mq) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let server = start_server(Some(mq.port), &db, "srv-restart").await;
    wait_for("the server's session", Duration::from_secs(10), || async {
        server.metrics.connected()
    })
    .await;
    let mut feeder = feeder(&dir.path().join("outbox"), mq.port, "feeder-2");
    feeder.push_paced(0..100).await;
    wait_for("100 events", Duration::from_secs(20), || async {
        stored_gaps(&server).await == 100
    })
    .await;
    server.stop().await;
    // The server is down: the broker queues for its persistent session, and the agent keeps
    // every event until the server's receipt says it is committed.
    feeder.push_paced(100..200).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        feeder.outbox.len(),
        100,
        "a broker's acknowledgement is not delivery: the events wait for their receipts"
    );
    let server = start_server(Some(mq.port), &db, "srv-restart").await;
    wait_for(
        "200 events after the restart",
        Duration::from_secs(30),
        || async { stored_gaps(&server).await == 200 },
    )
    .await;
    wait_for(
        "the receipts to empty the outbox",
        Duration::from_secs(30),
        || async { feeder.outbox.is_empty() },
    )
    .await;
    // The same events again (an agent that restarted before its acks): stored once. And one
    // with the id of a stored event but other bytes: never stored, counted as a conflict.
    let resend: Vec<(String, String)> = feeder.sent[..50].to_vec();
    let signer = feeder.status.signer.clone();
    let (_, sent) = feeder.finish().await;
    let mut raw = rumqttc::v5::MqttOptions::new("replayer", "127.0.0.1", mq.port);
    raw.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(raw, 100);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let counter = |text: &str, name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let d0 = counter(
        &server.metrics.render(),
        "centinela_events_duplicate_total ",
    );
    // The sensor's own key, a new number, the same event id, another margin.
    let mut forged: Value =
        serde_json::from_slice(protocol::signed::message_bytes(resend[0].1.as_bytes()))
            .expect("json");
    forged["margin_db"] = (-3.0).into();
    let forged = signer
        .seal_text(&resend[0].0, &forged.to_string())
        .expect("seal");
    for (t, p) in resend
        .iter()
        .cloned()
        .chain([(resend[0].0.clone(), forged)])
    {
        client
            .publish(t, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, p)
            .await
            .expect("publish");
    }
    wait_for(
        "the duplicates and the conflict to be seen",
        Duration::from_secs(20),
        || async {
            let m = server.metrics.render();
            counter(&m, "centinela_events_duplicate_total ") >= d0 + 50
                && counter(&m, "centinela_events_conflict_total ") == 1
        },
    )
    .await;
    assert_eq!(stored_gaps(&server).await, 200);
    assert_exactly_once(&history_ids(&server).await, &sent);
    server.stop().await;
}

async fn malformed_and_mismatched_messages_are_rejected_and_counted(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let server = start_server(None, &db, "srv-bad").await;
    wait_for("the server's session", Duration::from_secs(10), || async {
        server.metrics.connected()
    })
    .await;
    let mut raw = live::mqtt_options(server.broker.1, FAC, "s1");
    raw.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(raw, 100);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let sealer = Sealer::default();
    let good = serde_json::to_value(gap("s1", 1)).expect("json");
    let mut other_facility = good.clone();
    other_facility["facility_id"] = "another-prison".into();
    let mut wrong_schema = good.clone();
    wrong_schema["schema"] = "centinela.jammer/1".into();
    let bad: Vec<(String, Vec<u8>)> = vec![
        (format!("centinela/v1/{FAC}/s1/gap"), b"{not json".to_vec()),
        (
            format!("centinela/v1/{FAC}/s1/gap"),
            other_facility.to_string().into_bytes(),
        ),
        (
            format!("centinela/v1/{FAC}/s1/gap"),
            wrong_schema.to_string().into_bytes(),
        ),
        (format!("centinela/v1/{FAC}/s1/gap"), vec![b' '; 70_000]),
        (
            format!("centinela/v1/{FAC}/s1/status"),
            good.to_string().into_bytes(),
        ),
    ];
    for (t, p) in &bad {
        client
            .publish(
                t.clone(),
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                sealer.seal(t, p),
            )
            .await
            .expect("publish");
    }
    let t = format!("centinela/v1/{FAC}/s1/gap");
    client
        .publish(
            t.clone(),
            rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
            false,
            sealer.seal(&t, good.to_string().as_bytes()),
        )
        .await
        .expect("publish");
    wait_for(
        "the good event after the bad ones",
        Duration::from_secs(10),
        || async { stored_gaps(&server).await == 1 },
    )
    .await;
    let r = get(&server, "/api/rejects").await;
    assert_eq!(r["rejected_total"], 5, "{r}");
    let reasons: Vec<&str> = r["latest"]
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|x| x["reason"].as_str())
        .collect();
    // Broken JSON breaks its envelope; 70,000 bytes of spaces cannot be sealed at all.
    for want in ["bad_envelope", "mismatch", "schema", "unsigned"] {
        assert!(reasons.contains(&want), "{want} in {reasons:?}");
    }
    assert!(
        r["latest"]
            .as_array()
            .expect("a")
            .iter()
            .any(|x| x["detail"]
                .as_str()
                .unwrap_or("")
                .contains("another-prison")),
        "the error names the facility: {r}"
    );
    let gaps = get(&server, &format!("/api/facilities/{FAC}/gaps")).await;
    assert_eq!(gaps.as_array().expect("a").len(), 1, "{gaps}");
    // Bad HTTP requests get a clear error too.
    let url = format!(
        "http://{}/api/facilities/{FAC}/gaps?colour=red",
        server.http_addr
    );
    let resp = live::api(&server)
        .await
        .get(&url)
        .send()
        .await
        .expect("http");
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.expect("json");
    assert!(
        body["error"].as_str().expect("e").contains("colour"),
        "{body}"
    );
    let health = get(&server, "/api/health").await;
    assert_eq!(health["status"], "ok", "{health}");
    server.stop().await;
}

/// A real agent (simulated radio at the demo's patio, n78 only) publishes through `broker_port`
/// (embedded when `None`); the API returns its gap with the cell the agent named.
async fn agent_to_api(b: Backend, broker_port: Option<u16>) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = with_demo_sensor(dir.path(), "patio", "patio");
    let server = start_with(broker_port, &db, "srv-agent", &fleet).await;
    let scene = toml::to_string(&demo::scene()).expect("scene");
    std::fs::write(dir.path().join("scene.toml"), scene).expect("write");
    let mut cfg = demo::agent_config(
        dir.path(),
        (&server.broker.0, server.broker.1),
        "patio",
        "patio",
        [125.0, 90.0],
        server.receipt_key,
    );
    cfg.scan.bands = vec!["n78".into()];
    cfg.scan.interval_s = 0.0;
    cfg.mqtt.heartbeat_s = 1.0;
    let (user, password, _) = live::login(demo::FACILITY, "patio");
    (cfg.mqtt.username, cfg.mqtt.password) = (Some(user), Some(password));
    let (stop, rx) = watch::channel(false);
    let agent = tokio::spawn(sensor_agent::daemon::run(cfg, rx));
    let path = format!("/api/facilities/{}/gaps?band=n78", demo::FACILITY);
    wait_for(
        "the agent's n78 gap in the API",
        Duration::from_secs(120),
        || async {
            get(&server, &path)
                .await
                .as_array()
                .is_some_and(|a| !a.is_empty())
        },
    )
    .await;
    let gaps = get(&server, &path).await;
    let g = &gaps[0];
    assert_eq!(g["zone"], "patio");
    assert_eq!(g["technology"], "nr");
    assert_eq!(g["severity"], "critical", "{g}");
    let sensors = get(
        &server,
        &format!("/api/facilities/{}/sensors", demo::FACILITY),
    )
    .await;
    assert_eq!(sensors[0]["state"], "online", "{sensors}");
    let _ = stop.send(true);
    let report = agent.await.expect("join").expect("agent ran");
    assert!(report.sweeps >= 2, "{report:?}");
    assert_eq!(report.waiting, 0, "everything was delivered: {report:?}");
    wait_for(
        "the sensor to say offline",
        Duration::from_secs(10),
        || async {
            get(
                &server,
                &format!("/api/facilities/{}/sensors", demo::FACILITY),
            )
            .await[0]["state"]
                == "offline"
        },
    )
    .await;
    server.stop().await;
}

async fn agent_to_api_through_the_embedded_broker(b: Backend) {
    agent_to_api(b, None).await;
}

async fn agent_to_api_through_mosquitto(b: Backend) {
    let Some(mq) = Mosquitto::start() else {
        return;
    };
    agent_to_api(b, Some(mq.port)).await;
    drop(mq);
}

/// The demo: the map's zones against the simulator's truth, the map files, and the dashboard
/// in headless Chromium.
async fn demo_map_matches_the_simulators_truth_and_the_dashboard_shows_it(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let args = DemoArgs {
        http: loopback0(),
        mqtt: SocketAddr::from(([127, 0, 0, 1], free_port())),
        dir: dir.path().to_path_buf(),
        db: Some(db.db.clone()),
        truth: false,
    };
    let d = Demo::start(&args).await.expect("demo starts");
    // The read-only token the demo prints is what this test reads the API with.
    let c = live::client_with(d.token.expose());
    let truth = demo::truth();
    assert!(
        truth.iter().any(|z| z.leaks()) && truth.iter().any(|z| !z.leaks()),
        "the demo has both leaking and sealed zones"
    );
    let zones_path = format!("/api/facilities/{}/zones", demo::FACILITY);
    let agreement = |zones: &Value| -> usize {
        truth
            .iter()
            .filter(|t| {
                zones
                    .as_array()
                    .and_then(|a| a.iter().find(|z| z["id"] == t.zone.as_str()))
                    .is_some_and(|z| (z["status"] != "ok") == t.leaks())
            })
            .count()
    };
    let t0 = Instant::now();
    let mut best = 0;
    while t0.elapsed() < Duration::from_secs(240) {
        let zones = get(&d.server, &zones_path).await;
        best = agreement(&zones);
        let sensors = get(
            &d.server,
            &format!("/api/facilities/{}/sensors", demo::FACILITY),
        )
        .await;
        let swept = sensors.as_array().is_some_and(|a| {
            a.len() == 4
                && a.iter()
                    .all(|s| s["status"]["health"]["sweeps"].as_u64() >= Some(3))
        });
        if best == truth.len() && swept {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let zones = get(&d.server, &zones_path).await;
    eprintln!(
        "demo map after {:.0} s: {}/{} zones agree with the simulator; zones {zones}",
        t0.elapsed().as_secs_f64(),
        agreement(&zones),
        truth.len()
    );
    assert_eq!(best, truth.len(), "map zones {zones} vs truth {truth:?}");
    // Leaking zones name the uncovered band.
    for t in truth.iter().filter(|t| t.leaks()) {
        let z = zones
            .as_array()
            .and_then(|a| a.iter().find(|z| z["id"] == t.zone.as_str()))
            .expect("zone");
        assert!(
            z["bands"]
                .as_array()
                .expect("bands")
                .iter()
                .any(|b| b == "n78"),
            "{z}"
        );
    }
    // Map files.
    let base = format!(
        "http://{}/api/facilities/{}",
        d.server.http_addr,
        demo::FACILITY
    );
    let png = c
        .get(format!("{base}/map.png"))
        .send()
        .await
        .expect("png")
        .bytes()
        .await
        .expect("bytes");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert!(png.len() > 10_000, "a real picture: {} bytes", png.len());
    std::fs::write(dir.path().join("map.png"), &png).expect("write");
    let svg = c
        .get(format!("{base}/map.svg"))
        .send()
        .await
        .expect("svg")
        .text()
        .await
        .expect("text");
    assert!(svg.contains("<svg") && svg.contains("Patio"), "svg");
    let gj: Value = c
        .get(format!("{base}/map.geojson"))
        .send()
        .await
        .expect("gj")
        .json()
        .await
        .expect("json");
    assert_eq!(gj["type"], "FeatureCollection");
    let zone_features = gj["features"]
        .as_array()
        .expect("f")
        .iter()
        .filter(|f| f["properties"]["kind"] == "zone")
        .count();
    assert_eq!(zone_features, 4);
    let lon = gj["features"][0]["geometry"]["coordinates"][0][0][0]
        .as_f64()
        .expect("lon");
    assert!(
        (lon + 74.14).abs() < 0.01,
        "WGS 84 longitude near the origin: {lon}"
    );
    // Dashboard in headless Chromium: the newcomer signs in with the password the demo
    // printed and sees the map; the session cookie is HttpOnly and SameSite=Strict.
    if let Some(browser) = centinela_tests::browser::Browser::start().await {
        let url = d.server.url();
        browser.go(&url).await;
        assert!(
            browser.url().await.ends_with("/login"),
            "without a session the dashboard sends to the login page"
        );
        browser.type_into("#user", demo::ADMIN).await;
        browser
            .type_into("#password", &format!("{}wrong", d.admin_password.expose()))
            .await;
        browser.click("#submit").await;
        browser
            .wait_for_all(
                &["Usuario o contraseña incorrectos"],
                Duration::from_secs(10),
            )
            .await;
        assert!(
            browser.cookies().await.is_empty(),
            "no session for a wrong password"
        );
        browser.type_into("#user", demo::ADMIN).await;
        browser
            .type_into("#password", d.admin_password.expose())
            .await;
        browser.click("#submit").await;
        let dom = browser
            .wait_for_all(
                &[
                    "data-loaded=\"yes\"",
                    "sev-critical",
                    ">n78<",
                    "st-online",
                    "Demo prison",
                    "admin (admin)",
                    // The national overview: the demo facility, worst first, critical.
                    "Panorama nacional",
                    "ov-critical",
                    "Cundinamarca",
                ],
                Duration::from_secs(20),
            )
            .await;
        assert!(dom.contains("map.svg"), "the dashboard loads the map");
        let cookies = browser.cookies().await;
        let session = cookies
            .iter()
            .find(|c| c["name"] == central_server::auth::COOKIE)
            .unwrap_or_else(|| panic!("a session cookie: {cookies:?}"));
        assert_eq!(session["httpOnly"], true, "{session}");
        assert_eq!(session["sameSite"], "Strict", "{session}");
        assert_eq!(
            session["secure"], false,
            "plain HTTP on loopback: {session}"
        );
        browser.click("#logout").await;
        browser
            .wait_for_all(&["Iniciar sesión"], Duration::from_secs(10))
            .await;
        browser.go(&url).await;
        assert!(browser.url().await.ends_with("/login"), "signed out");
        browser.close().await;
    }
    // Security headers: no inline script anywhere (the page above ran under this policy), no
    // framing, and a map SVG in which nothing can run.
    let get_headers = |path: &str| {
        let url = format!("http://{}{path}", d.server.http_addr);
        let c = c.clone();
        async move { c.get(&url).send().await.expect("http").headers().clone() }
    };
    let page = get_headers("/").await;
    let csp = page["content-security-policy"].to_str().expect("csp");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page["x-frame-options"], "DENY");
    assert_eq!(page["x-content-type-options"], "nosniff");
    let html = c
        .get(format!("http://{}/", d.server.http_addr))
        .send()
        .await
        .expect("http")
        .text()
        .await
        .expect("text");
    assert!(
        !html.contains("<script>") && !html.contains("onload=") && !html.contains("<style>"),
        "no inline script or style in the page"
    );
    let svg = get_headers(&format!("/api/facilities/{}/map.svg", demo::FACILITY)).await;
    let svg_csp = svg["content-security-policy"].to_str().expect("csp");
    assert!(
        svg_csp.contains("default-src 'none'") && svg_csp.contains("sandbox"),
        "{svg_csp}"
    );
    d.stop().await;
}

/// A burst far larger than the ingest session's receive window (3,000 QoS 1 events from four
/// publishers at once): every event is stored. Before the fix, ingest waited forever on its own
/// ack channel after about 1,200 messages.
async fn ingest_keeps_up_with_a_burst_larger_than_its_window(b: Backend) {
    let Some(mq) = Mosquitto::start() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let server = start_server(Some(mq.port), &db, "srv-burst").await;
    wait_for("the server's session", Duration::from_secs(10), || async {
        server.metrics.connected()
    })
    .await;
    let per = 750u32;
    let mut tasks = Vec::new();
    for a in 0..4u32 {
        let port = mq.port;
        tasks.push(tokio::spawn(async move {
            let mut o = rumqttc::v5::MqttOptions::new(format!("burst-{a}"), "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(10));
            let (client, mut el) = rumqttc::v5::AsyncClient::new(o, 256);
            let sensor = format!("burst-{a}");
            let pubber = tokio::spawn(async move {
                let sealer = Sealer::default();
                for n in 0..per {
                    let g = gap(&sensor, n);
                    let t = format!("centinela/v1/{FAC}/{sensor}/gap");
                    let p = sealer.seal(&t, &serde_json::to_vec(&g).expect("json"));
                    client
                        .publish(t, rumqttc::v5::mqttbytes::QoS::AtLeastOnce, false, p)
                        .await
                        .expect("publish");
                }
            });
            let mut acked = 0;
            while acked < per {
                if let Ok(rumqttc::v5::Event::Incoming(
                    rumqttc::v5::mqttbytes::v5::Packet::PubAck(_),
                )) = el.poll().await
                {
                    acked += 1;
                }
            }
            pubber.await.expect("publisher");
        }));
    }
    for t in tasks {
        t.await.expect("burst");
    }
    wait_for(
        "all 3000 events of the burst",
        Duration::from_secs(60),
        || async { stored_gaps(&server).await == i64::from(4 * per) },
    )
    .await;
    server.stop().await;
}

/// Both links over TLS: Mosquitto with a certificate from a CA made by the test, its plain
/// listener unused; the agent and the server's ingest (`mqtts://`, `broker_tls_ca`) trust that
/// CA and check the broker's name. An agent or a server that trusts another CA never connects
/// (a broker in the middle gets nothing), and the server counts the refusal.
async fn agent_and_server_links_over_tls(b: Backend) {
    let Some((_mq, tls_port, ca)) = Mosquitto::start_with_tls() else {
        return;
    };
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let mut cfg = live::server_config(None, &db, "srv-tls", &fleet());
    cfg.server.broker = Some(format!("mqtts://127.0.0.1:{tls_port}"));
    cfg.server.broker_tls_ca = Some(ca.clone());
    let server = live::start_configured(cfg.clone()).await;
    assert_eq!(server.metrics.tls_failures(), 0);
    // The same server trusting the wrong CA (the broker's own certificate is not a CA).
    let dir2 = tempfile::tempdir().expect("dir");
    let mut wrong_cfg = cfg.clone();
    wrong_cfg.server.db = Database::Sqlite(dir2.path().join("w.db"));
    wrong_cfg.server.data_dir = Some(dir2.path().to_path_buf());
    wrong_cfg.server.client_id = "srv-tls-wrong".into();
    wrong_cfg.server.broker_tls_ca = Some(ca.with_file_name("server.pem"));
    let wrong_server = Server::start(wrong_cfg).await.expect("starts");
    wait_for(
        "the untrusted broker refused by TLS",
        Duration::from_secs(10),
        || async { wrong_server.metrics.tls_failures() >= 1 },
    )
    .await;
    assert!(!wrong_server.metrics.connected());
    // A TLS URL without a CA is a configuration problem, not a link that trusts anything.
    let mut no_ca = cfg.clone();
    no_ca.server.broker_tls_ca = None;
    match Server::start(no_ca).await {
        Err(e) => assert!(e.to_string().contains("broker_tls_ca"), "{e}"),
        Ok(_) => panic!("mqtts:// without a CA must not start"),
    }
    let start_link = |sensor: &str, ca_pem: Vec<u8>, sub: &str| {
        let outbox = Arc::new(Outbox::open(&dir.path().join(sub), 1000).expect("outbox"));
        let signer = Arc::new(live::test_signer(
            &dir.path().join(format!("{sub}.state")),
            FAC,
            sensor,
        ));
        let status = Arc::new(
            StatusSource::new(
                sensor_agent::config::Identity {
                    facility_id: FAC.into(),
                    sensor_id: sensor.into(),
                    zone: "patio".into(),
                },
                None,
                Vec::new(),
                1.0,
                outbox.clone(),
                signer.clone(),
            )
            .expect("status source"),
        );
        let (stop, rx) = watch::channel(false);
        let (_q, qrx) = mpsc::channel(1);
        let link = tokio::spawn(publisher::run(
            LinkOptions {
                host: "127.0.0.1".into(),
                port: tls_port,
                credentials: None,
                tls: Some(publisher::TlsFiles {
                    ca: ca_pem,
                    client: None,
                }),
                receipt_timeout: Duration::from_secs(5),
                server_keys: vec![live::test_receipt_key().public()],
            },
            status,
            outbox.clone(),
            Arc::new(Notify::new()),
            qrx,
            rx,
        ));
        (outbox, signer, stop, link)
    };
    let g = gap("tls-1", 1);
    let (outbox, signer, stop, link) = start_link("tls-1", std::fs::read(&ca).expect("ca"), "ob1");
    let t = topic(FAC, "tls-1", Kind::Gap).expect("topic");
    let payload = signer
        .seal_text(&t, &serde_json::to_string(&g).expect("json"))
        .expect("seal");
    outbox
        .push(&Entry { topic: t, payload }, false)
        .expect("push");
    wait_for("the gap sent over TLS", Duration::from_secs(20), || async {
        stored_gaps(&server).await == 1
    })
    .await;
    let sensors = get(&server, &format!("/api/facilities/{FAC}/sensors")).await;
    assert_eq!(sensors[0]["state"], "online", "{sensors}");
    let _ = stop.send(true);
    let stats = link.await.expect("link");
    assert!(
        stats.connects >= 1 && stats.acked >= 1 && stats.confirmed >= 1,
        "{stats:?}"
    );
    // A link that trusts a different CA (the broker's own certificate is not a CA) gets nowhere.
    let wrong = std::fs::read(ca.with_file_name("server.pem")).expect("server cert");
    let (outbox2, signer2, stop2, link2) = start_link("tls-2", wrong, "ob2");
    let t = topic(FAC, "tls-2", Kind::Gap).expect("topic");
    let payload = signer2
        .seal_text(&t, &serde_json::to_string(&gap("tls-2", 1)).expect("json"))
        .expect("seal");
    outbox2
        .push(&Entry { topic: t, payload }, false)
        .expect("push");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = stop2.send(true);
    let stats2 = link2.await.expect("link");
    assert_eq!(
        stats2.connects, 0,
        "an untrusted broker is refused: {stats2:?}"
    );
    assert_eq!(outbox2.len(), 1, "the event waits in the outbox");
    assert_eq!(stored_gaps(&server).await, 1);
    assert!(!wrong_server.metrics.connected());
    assert_eq!(live::stored_count(&wrong_server, "gap").await, 0);
    let metrics = wrong_server.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("centinela_ingest_tls_failures_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    wrong_server.stop().await;
    server.stop().await;
}

/// An agent that plays a recorded sweep (SigMF, made by `sensor-agent record --band`) instead of
/// a radio: the leak in the recording (the demo's uncovered AWS cell) reaches the API, with the
/// very time and margin the recording's own analysis gave (the agent runs the recording's plan
/// and settings on the recording's clock).
async fn agent_runs_on_a_recorded_sweep(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let rec = dir.path().join("b4");
    let args: Vec<std::ffi::OsString> = [
        "sensor-agent",
        "record",
        "--source",
        "sim",
        "--band",
        "B4",
        "--rate",
        "15.36e6",
        "--seconds",
        "0.02",
        "--analyse",
        "--json",
        "--facility",
        demo::FACILITY,
        "--sensor",
        "replayer",
        "--zone",
        "patio",
        "--out",
    ]
    .iter()
    .map(std::ffi::OsString::from)
    .chain([rec.clone().into_os_string()])
    .collect();
    let cli = <sensor_agent::cli::Cli as clap::Parser>::try_parse_from(args).expect("arguments");
    let mut printed = Vec::new();
    sensor_agent::cli::run(cli.command, &mut printed).expect("recording the sweep");
    let recorded_gap: serde_json::Value = String::from_utf8_lossy(&printed)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json"))
        .find(|v| v["kind"] == "gap" && v["payload"]["cell"]["pci"] == 45)
        .map(|v| v["payload"].clone())
        .expect("the recording's own analysis names PCI 45");
    let fleet = with_demo_sensor(dir.path(), "replayer", "patio");
    let server = start_with(None, &db, "srv-sigmf", &fleet).await;
    let mut cfg = demo::agent_config(
        dir.path(),
        (&server.broker.0, server.broker.1),
        "replayer",
        "patio",
        [125.0, 90.0],
        server.receipt_key,
    );
    cfg.source.spec = format!("sigmf:{}.sigmf-meta", rec.display());
    let (user, password, _) = live::login(demo::FACILITY, "replayer");
    (cfg.mqtt.username, cfg.mqtt.password) = (Some(user), Some(password));
    cfg.source.device = None;
    cfg.scan.bands = vec!["B4".into()];
    cfg.scan.interval_s = 0.0;
    let (stop, rx) = watch::channel(false);
    let agent = tokio::spawn(sensor_agent::daemon::run(cfg, rx));
    let path = format!("/api/facilities/{}/gaps?band=B4", demo::FACILITY);
    wait_for(
        "the recorded sweep's B4 gap",
        Duration::from_secs(90),
        || async {
            get(&server, &path)
                .await
                .as_array()
                .is_some_and(|a| a.iter().any(|g| g["pci"] == 45))
        },
    )
    .await;
    let gaps = get(&server, &path).await;
    let stored = gaps
        .as_array()
        .and_then(|a| a.iter().find(|g| g["pci"] == 45))
        .expect("stored");
    // The store keeps microseconds.
    let when = |v: &serde_json::Value| {
        let t = time::OffsetDateTime::parse(
            v.as_str().expect("a time"),
            &time::format_description::well_known::Rfc3339,
        )
        .expect("rfc3339");
        t.replace_nanosecond(t.nanosecond() / 1000 * 1000)
            .expect("microseconds")
    };
    assert_eq!(
        when(&stored["opened_at"]),
        when(&recorded_gap["observed_at"]),
        "the gap opened at the recorded sweep's time: {stored} / {recorded_gap}"
    );
    assert_eq!(stored["margin_db"], recorded_gap["margin_db"], "{stored}");
    let sensors = get(
        &server,
        &format!("/api/facilities/{}/sensors", demo::FACILITY),
    )
    .await;
    assert_eq!(
        sensors[0]["status"]["health"]["sweep_errors"], 0,
        "every hop of the plan is in the recording: {sensors}"
    );
    let _ = stop.send(true);
    let report = agent.await.expect("join").expect("agent ran");
    assert!(report.sweeps >= 1, "{report:?}");
    server.stop().await;
}

/// A taken port is a clear error at once (rumqttd itself would only log it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_taken_port_fails_fast_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("dir");
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let taken = squatter.local_addr().expect("addr");
    let t0 = Instant::now();
    let err = Server::start(ServerConfig {
        server: ServerSection {
            embedded_broker: taken,
            db: Database::Sqlite(dir.path().join("c.db")),
            http: loopback0(),
            ..ServerSection::default()
        },
        facilities: Vec::new(),
    })
    .await
    .expect_err("the port is taken");
    let msg = err.to_string();
    assert!(
        msg.contains("MQTT broker") && msg.contains(&taken.to_string()),
        "{msg}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    let err = Server::start(ServerConfig {
        server: ServerSection {
            embedded_broker: loopback0(),
            db: Database::Sqlite(dir.path().join("c.db")),
            http: taken,
            ..ServerSection::default()
        },
        facilities: Vec::new(),
    })
    .await
    .expect_err("the port is taken");
    assert!(err.to_string().contains("HTTP API"), "{err}");
}

/// Alerts reach a webhook: a critical gap and a jammer band going down, posted as JSON.
async fn alerts_are_posted_to_the_webhook(b: Backend) {
    let (hook, received) = live::webhook().await;
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    fleet().write_broker(&dir.path().join("broker"));
    let server = Server::start(ServerConfig {
        server: ServerSection {
            embedded_broker: loopback0(),
            db: db.db.clone(),
            data_dir: Some(db.dir.clone()),
            http: loopback0(),
            webhook: Some(hook),
            ..ServerSection::default()
        },
        facilities: fleet().facilities(),
    })
    .await
    .expect("server");
    wait_for("the server's session", Duration::from_secs(10), || async {
        server.metrics.connected()
    })
    .await;
    let mut raw = live::mqtt_options(server.broker.1, FAC, "s1");
    raw.set_keep_alive(Duration::from_secs(5));
    let (client, mut el) = rumqttc::v5::AsyncClient::new(raw, 10);
    tokio::spawn(async move { while el.poll().await.is_ok() {} });
    let sealer = Sealer::default();
    let g = gap("s1", 1);
    let at = OffsetDateTime::now_utc();
    let j = protocol::JammerEvent {
        schema: protocol::JAMMER_SCHEMA.into(),
        event_id: event_id(at, b"jammer down"),
        facility_id: FAC.into(),
        sensor_id: "s1".into(),
        observed_at: at,
        zone: "patio".into(),
        band: "B5".into(),
        state: protocol::JammerStateWire::Down,
        noise_rise_db: 0.3,
        floor_dbm_per_hz: -167.7,
        covered_fraction: 0.0,
    };
    for (kind, payload) in [
        ("gap", serde_json::to_string(&g).expect("json")),
        ("jammer", serde_json::to_string(&j).expect("json")),
    ] {
        let t = format!("centinela/v1/{FAC}/s1/{kind}");
        client
            .publish(
                t.clone(),
                rumqttc::v5::mqttbytes::QoS::AtLeastOnce,
                false,
                sealer.seal(&t, payload.as_bytes()),
            )
            .await
            .expect("publish");
    }
    wait_for("two webhook posts", Duration::from_secs(10), || async {
        received.lock().expect("lock").len() >= 2
    })
    .await;
    let got = received.lock().expect("lock").clone();
    assert!(
        got.iter()
            .any(|a| a["alert"] == "critical_gap" && a["band"] == "n78"),
        "{got:?}"
    );
    assert!(
        got.iter()
            .any(|a| a["alert"] == "jammer_down" && a["band"] == "B5"),
        "{got:?}"
    );
    server.stop().await;
}
