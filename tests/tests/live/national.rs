//! The national overview (`/api/overview`) over a running server on both databases: every
//! facility the user may see, worst first, with its worst active gap, its jammer bands down and
//! its sensors offline; filtered by region or name, sorted on request; a supervisor's overview
//! holds her facilities only, whatever the database holds of others.

use centinela_tests::live::{self, Fleet, client_with};
use centinela_tests::testdb::Backend;
use central_server::auth::{Role, Scope, Users};
use central_server::store::{Item, Seal};
use protocol::{
    JammerEvent, JammerStateWire, Message, STATUS_SCHEMA, SensorHealth, SensorState, Severity,
    StatusEvent, event_id,
};
use serde_json::Value;
use time::OffsetDateTime;

centinela_tests::on_both_databases!(the_national_overview_puts_the_worst_facility_first,);

fn status(facility: &str, sensor: &str, state: SensorState) -> Message {
    let now = OffsetDateTime::now_utc();
    Message::Status(StatusEvent {
        schema: STATUS_SCHEMA.into(),
        event_id: event_id(now, format!("{facility} {sensor} {state:?}").as_bytes()),
        facility_id: facility.into(),
        sensor_id: sensor.into(),
        observed_at: now,
        state,
        connected_at: Some(now),
        zone: "patio".into(),
        position_m: None,
        agent_version: "test".into(),
        heartbeat_s: 60.0,
        unreachable_bands: vec![],
        health: SensorHealth::default(),
        will_seq: None,
    })
}

fn jammer_down(facility: &str, sensor: &str, band: &str) -> Message {
    let at = OffsetDateTime::now_utc();
    Message::Jammer(JammerEvent {
        schema: protocol::JAMMER_SCHEMA.into(),
        event_id: event_id(at, format!("{facility} {sensor} {band} down").as_bytes()),
        facility_id: facility.into(),
        sensor_id: sensor.into(),
        observed_at: at,
        zone: "patio".into(),
        band: band.into(),
        state: JammerStateWire::Down,
        noise_rise_db: 0.4,
        floor_dbm_per_hz: -167.0,
        covered_fraction: 0.0,
    })
}

fn gap(facility: &str, sensor: &str, margin_db: f64) -> Message {
    let mut g = live::gap(facility, sensor, 1);
    g.margin_db = margin_db;
    g.severity = Severity::from_margin_db(margin_db);
    g.event_id = event_id(
        g.observed_at,
        format!("{facility} {sensor} {margin_db}").as_bytes(),
    );
    Message::Gap(g)
}

fn ids(v: &Value) -> Vec<String> {
    v["facilities"]
        .as_array()
        .unwrap_or_else(|| panic!("an overview: {v}"))
        .iter()
        .filter_map(|f| f["facility_id"].as_str().map(str::to_string))
        .collect()
}

async fn the_national_overview_puts_the_worst_facility_first(b: Backend) {
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    let fleet = Fleet::new()
        .with("norte", &["n1", "n2"])
        .with("sur", &["s1", "s2"])
        .with("centro", &["c1", "c2"])
        .with("oriente", &["o1"]);
    let mut cfg = live::server_config(None, &db, "srv-national", &fleet);
    for f in &mut cfg.facilities {
        f.region = Some(
            match f.id.as_str() {
                "norte" => "Antioquia",
                "sur" => "Nariño",
                _ => "Cundinamarca",
            }
            .into(),
        );
    }
    let server = live::start_configured(cfg).await;
    // What the sensors said: norte leaks (a critical gap) and its B28 jammer is down; sur has a
    // high gap and a sensor that said goodbye; centro is quiet; oriente never spoke.
    let msgs: Vec<Message> = vec![
        status("norte", "n1", SensorState::Online),
        status("norte", "n2", SensorState::Online),
        gap("norte", "n1", 14.0),
        gap("norte", "n2", 4.0),
        jammer_down("norte", "n2", "B28"),
        status("sur", "s1", SensorState::Online),
        status("sur", "s2", SensorState::Online),
        gap("sur", "s1", 5.0),
        status("sur", "s2", SensorState::Offline),
        status("centro", "c1", SensorState::Online),
        status("centro", "c2", SensorState::Online),
    ];
    let payloads: Vec<String> = (0..msgs.len()).map(|i| format!("payload {i}")).collect();
    let shas: Vec<String> = (0..msgs.len()).map(|i| format!("sha {i}")).collect();
    let topics: Vec<String> = msgs
        .iter()
        .map(|m| {
            let (f, s) = m.source();
            protocol::topic(f, s, m.kind()).expect("topic")
        })
        .collect();
    let items: Vec<Item<'_>> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| Item::Accept {
            topic: &topics[i],
            msg: m,
            payload: &payloads[i],
            seal: Seal {
                key: "ed25519:test",
                seq: i as i64 + 1,
                sha256: &shas[i],
            },
            retained: false,
        })
        .collect();
    let _committed = server
        .store
        .ingest_batch(&items, OffsetDateTime::now_utc())
        .await
        .expect("stored");

    let admin = live::api(&server).await;
    let url = |q: &str| format!("{}api/overview{q}", server.url());
    let get = |c: &reqwest::Client, q: &str| {
        let (c, u) = (c.clone(), url(q));
        async move {
            let r = c.get(&u).send().await.expect("http");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (code, all) = get(&admin, "").await;
    assert_eq!(code, 200, "{all}");
    // Worst first: a critical gap, a high gap with a sensor offline, then the facilities that
    // never spoke (oriente, and the demo facility the fleet is built on: nothing is known of
    // them, which is worse than quiet), and quiet last.
    let order = ids(&all);
    assert_eq!(order[..2], ["norte", "sur"], "{all}");
    assert_eq!(order.last().map(String::as_str), Some("centro"), "{all}");
    let norte = &all["facilities"][0];
    assert_eq!(norte["status"], "critical");
    assert_eq!(norte["worst_gap"]["severity"], "critical", "{norte}");
    assert_eq!(norte["worst_gap"]["sensor_id"], "n1", "{norte}");
    assert_eq!(norte["gaps_critical"], 1);
    assert_eq!(norte["gaps_high"], 1);
    assert_eq!(norte["jammer_bands_down"], serde_json::json!(["B28"]));
    assert_eq!(norte["region"], "Antioquia");
    let sur = &all["facilities"][1];
    assert_eq!(sur["status"], "high");
    assert_eq!(sur["sensors_offline"], 1, "{sur}");
    assert_eq!(sur["sensors_online"], 1, "{sur}");
    let centro = &all["facilities"][order.len() - 1];
    assert_eq!(centro["status"], "ok", "{centro}");
    assert!(centro["worst_gap"].is_null());
    let oriente = all["facilities"]
        .as_array()
        .expect("list")
        .iter()
        .find(|f| f["facility_id"] == "oriente")
        .expect("a configured facility that never spoke is listed");
    assert_eq!(oriente["status"], "no_data");
    assert_eq!(all["totals"]["critical"], 1);
    assert_eq!(all["totals"]["jammer_down"], 1);
    assert_eq!(all["totals"]["sensors_offline"], 1);
    assert_eq!(
        all["regions"],
        serde_json::json!(["Antioquia", "Cundinamarca", "Nariño"])
    );

    let (_, r) = get(&admin, "?region=Nari%C3%B1o").await;
    assert_eq!(ids(&r), ["sur"], "{r}");
    let (_, r) = get(&admin, "?q=NOR").await;
    assert_eq!(ids(&r), ["norte"], "{r}");
    let (_, r) = get(&admin, "?sort=offline").await;
    assert_eq!(ids(&r)[0], "sur", "{r}");
    let (_, r) = get(&admin, "?sort=down").await;
    assert_eq!(ids(&r)[0], "norte", "{r}");
    let (_, r) = get(&admin, "?sort=status&order=desc").await;
    assert_eq!(ids(&r).last().map(String::as_str), Some("norte"), "{r}");
    for bad in ["?sort=colour", "?order=up", "?limit=3"] {
        let (code, r) = get(&admin, bad).await;
        assert_eq!(code, 400, "{bad}: {r}");
        assert!(r["error"].as_str().is_some_and(|e| !e.is_empty()), "{r}");
    }

    // A supervisor of sur: sur alone, and only its region.
    let users = Users::new(&server.store);
    users
        .add(
            "sofia",
            Role::Supervisor,
            &["sur".to_string()],
            &protocol::Secret::new("sofia-long-password"),
            "test",
        )
        .await
        .expect("user");
    let (_, token) = users
        .add_token("sofia", "script", Scope::Read, "test")
        .await
        .expect("token");
    let (code, mine) = get(&client_with(token.expose()), "").await;
    assert_eq!(code, 200);
    assert_eq!(ids(&mine), ["sur"], "{mine}");
    assert_eq!(mine["regions"], serde_json::json!(["Nariño"]));
    assert_eq!(
        mine["totals"]["critical"], 0,
        "nothing of norte leaks into her totals"
    );
    // Her facility's aggregates, by hour and by day, filtered; norte's are not hers.
    let pool = db.reader().await;
    for (f, zone, band, hour, down) in [
        ("sur", "patio", "B28", "2026-11-30T10:00:00.000000Z", 900.0),
        ("sur", "patio", "B28", "2026-11-30T11:00:00.000000Z", 3600.0),
        ("sur", "patio", "n78", "2026-11-30T11:00:00.000000Z", 0.0),
        (
            "norte",
            "patio",
            "B28",
            "2026-11-30T11:00:00.000000Z",
            3600.0,
        ),
    ] {
        sqlx::query(
            "INSERT INTO hourly (facility_id, zone, band, hour, jammer_effective_s, jammer_down_s, sensors)
             VALUES ($1, $2, $3, $4, $5, $6, 1)",
        )
        .bind(f)
        .bind(zone)
        .bind(band)
        .bind(hour)
        .bind(3600.0 - down)
        .bind(down)
        .execute(&pool)
        .await
        .expect("hourly");
    }
    pool.close().await;
    let sofia = client_with(token.expose());
    let agg = |c: &reqwest::Client, f: &str, q: &str| {
        let (c, u) = (
            c.clone(),
            format!(
                "{}api/facilities/{f}/aggregates?since=2026-11-30T00:00:00Z{q}",
                server.url()
            ),
        );
        async move {
            let r = c.get(&u).send().await.expect("http");
            (r.status().as_u16(), r.json::<Value>().await.expect("json"))
        }
    };
    let (code, a) = agg(&sofia, "sur", "&band=B28").await;
    assert_eq!(code, 200, "{a}");
    let rows = a["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{a}");
    assert_eq!(rows[0]["jammer_down_fraction"], 0.25, "{a}");
    assert_eq!(rows[1]["hour"], "2026-11-30T11:00:00.000000Z");
    let (code, r) = agg(&sofia, "norte", "").await;
    assert_eq!(code, 404, "{r}");
    let (code, r) = agg(&sofia, "sur", "&period=week").await;
    assert_eq!(code, 400, "{r}");
    // Without credentials: refused.
    let anon = reqwest::Client::new()
        .get(url(""))
        .send()
        .await
        .expect("http");
    assert_eq!(anon.status(), 401);
    server.stop().await;
}

centinela_tests::on_both_databases!(a_facility_cut_from_the_centre_delivers_everything_once,);

/// The recommended topology for a facility whose link to the centre may fail: a broker at the
/// facility (the files of `central-server broker-config --facility-broker`) bridged to the
/// central one. Its sensors talk to it; the link is cut for `CENTINELA_BRIDGE_CUT_S` seconds
/// (30 by default; the closing note of the national issue reports a 600 s run) while they go
/// on reporting; once it is back every event arrives, each stored once.
async fn a_facility_cut_from_the_centre_delivers_everything_once(b: Backend) {
    use centinela_tests::live::{Feeder, assert_exactly_once, stored_ids, wait_for};
    use centinela_tests::{LinkProxy, Mosquitto};
    use std::time::Duration;
    let cut_s: u64 = std::env::var("CENTINELA_BRIDGE_CUT_S")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().expect("dir");
    let Some(db) = b.open(dir.path()).await else {
        return;
    };
    const FAC: &str = "penal";
    let sensors = ["p1", "p2"];
    let fleet = Fleet::new().with(FAC, &sensors);
    let broker_dir = dir.path().join("broker");
    fleet.write_broker(&broker_dir);
    let mut cfg = live::server_config(None, &db, "srv-bridge", &fleet);
    central_server::credentials::broker_config(&cfg, &broker_dir).expect("broker-config");
    let link = LinkProxy::start().await;
    let facility_dir = central_server::credentials::facility_broker_config(
        &cfg,
        &broker_dir,
        FAC,
        &format!("127.0.0.1:{}", link.port),
        None,
    )
    .expect("the facility broker's files");
    let read = |p: std::path::PathBuf| std::fs::read_to_string(&p).expect("fragment");
    let Some(central) = Mosquitto::start_with(&read(
        broker_dir.join(central_server::credentials::CONF_FILE),
    )) else {
        return;
    };
    link.connect_to(central.port);
    let Some(facility) = Mosquitto::start_with(&format!(
        "{}\n{}",
        read(facility_dir.join(central_server::credentials::CONF_FILE)),
        read(facility_dir.join(central_server::credentials::BRIDGE_FILE))
    )) else {
        return;
    };
    cfg.server.broker = Some(format!("mqtt://127.0.0.1:{}", central.port));
    let server = live::start_configured(cfg).await;
    let mut feeders: Vec<Feeder> = sensors
        .iter()
        .map(|s| {
            Feeder::start(
                &dir.path().join(s),
                facility.port,
                FAC,
                s,
                Duration::from_secs(3),
            )
        })
        .collect();
    let stored = || async { stored_ids(&db, "gap").await.len() };
    for n in 0..50 {
        for f in &mut feeders {
            f.push(n);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_for(
        "the events before the cut",
        Duration::from_secs(30),
        || async { stored().await == 100 },
    )
    .await;
    // The link is cut; the sensors go on, five events a second each.
    link.cut();
    let t0 = std::time::Instant::now();
    let mut n = 50;
    while t0.elapsed() < Duration::from_secs(cut_s) {
        for f in &mut feeders {
            f.push(n);
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(stored().await, 100, "nothing crosses a cut link");
    let waiting: usize = feeders.iter().map(|f| f.outbox.len()).sum();
    assert!(waiting > 0, "the agents hold what has no receipt");
    link.restore();
    wait_for(
        "every outbox emptied once the link is back",
        Duration::from_secs(cut_s + 120),
        || async { feeders.iter().all(|f| f.outbox.is_empty()) },
    )
    .await;
    let mut sent = Vec::new();
    let mut resent = 0;
    for f in feeders {
        let (stats, ids) = f.finish().await;
        resent += stats.resent;
        sent.extend(ids);
    }
    assert_exactly_once(&stored_ids(&db, "gap").await, &sent, "after a cut link");
    eprintln!(
        "bridge: {} events over a {cut_s} s cut, {resent} sent again by the agents, each stored once",
        sent.len()
    );
    server.stop().await;
    drop(facility);
    drop(central);
}
