//! Load benchmark (not a timed test): N simulated agents publish gap events (QoS 1) through a
//! Mosquitto started on loopback into the central server and its SQLite file. The base measured
//! in the same run is the broker alone: the same publishers into a plain QoS 1 subscriber.
//!
//! `cargo bench -p centinela-tests --bench load` (env `LOAD_AGENTS`, `LOAD_EVENTS`). Prints one
//! JSON line on stdout.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use centinela_tests::Mosquitto;
use central_server::Server;
use central_server::config::{ServerConfig, ServerSection};
use protocol::{GAP_SCHEMA, GapEvent, GapState, Severity, Technology, event_id};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use time::OffsetDateTime;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn payload(facility: &str, agent: usize, n: usize) -> Vec<u8> {
    let at = OffsetDateTime::now_utc();
    let sensor = format!("load-{agent}");
    let g = GapEvent {
        schema: GAP_SCHEMA.into(),
        event_id: event_id(at, format!("{sensor} {n}").as_bytes()),
        facility_id: facility.into(),
        sensor_id: sensor,
        observed_at: at,
        gap_key: format!("energy/lte/{}", n % 50),
        state: GapState::Update,
        zone: "patio".into(),
        band: "B7".into(),
        technology: Technology::Lte,
        center_hz: 2.655e9,
        bandwidth_hz: 9e6,
        cell: None,
        power_dbm: Some(-70.0),
        floor_dbm: Some(-95.0),
        power_dbfs: -40.0,
        floor_dbfs: -65.0,
        margin_db: (n % 30) as f64,
        severity: Severity::from_margin_db((n % 30) as f64),
        detector: protocol::Detector::Energy,
        evidence: None,
    };
    serde_json::to_vec(&g).expect("json")
}

/// Each agent publishes its share, as fast as QoS 1 allows or at `rate` events/s in all;
/// returns when all are acknowledged.
async fn publish_all(
    port: u16,
    agents: usize,
    per_agent: usize,
    facility: &'static str,
    rate: Option<f64>,
) {
    let mut tasks = Vec::new();
    for a in 0..agents {
        tasks.push(tokio::spawn(async move {
            let mut o = MqttOptions::new(format!("load-agent-{a}"), "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(30));
            let (client, mut el) = AsyncClient::new(o, 256);
            let pubber = tokio::spawn(async move {
                let mut pace = rate.map(|r| {
                    let mut iv = tokio::time::interval(Duration::from_secs_f64(agents as f64 / r));
                    iv.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                    iv
                });
                for n in 0..per_agent {
                    if let Some(iv) = pace.as_mut() {
                        iv.tick().await;
                    }
                    client
                        .publish(
                            format!("centinela/v1/{facility}/load-{a}/gap"),
                            QoS::AtLeastOnce,
                            false,
                            payload(facility, a, n),
                        )
                        .await
                        .expect("publish");
                }
                client
            });
            let mut acked = 0;
            while acked < per_agent {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => acked += 1,
                    Ok(_) => {}
                    Err(e) => panic!("agent {a}: {e}"),
                }
            }
            let client = pubber.await.expect("join");
            let _ = client.disconnect().await;
            let _ = tokio::time::timeout(Duration::from_millis(200), el.poll()).await;
        }));
    }
    for t in tasks {
        t.await.expect("agent");
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `cargo test --benches` runs bench binaries with no arguments in test mode: skip there.
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("load benchmark: run with `cargo bench -p centinela-tests --bench load`");
        return;
    }
    let agents = env("LOAD_AGENTS", 8);
    let per_agent = env("LOAD_EVENTS", 20_000) / agents;
    let total = agents * per_agent;
    let Some(mq) = Mosquitto::start() else {
        return;
    };
    // Base: the broker alone, into a plain QoS 1 subscriber.
    let mut o = MqttOptions::new("load-base-sub", "127.0.0.1", mq.port);
    o.set_keep_alive(Duration::from_secs(30));
    let (sub, mut sel) = AsyncClient::new(o, 1024);
    sub.subscribe("centinela/v1/+/+/+", QoS::AtLeastOnce)
        .await
        .expect("sub");
    loop {
        if let Ok(Event::Incoming(Packet::SubAck(_))) = sel.poll().await {
            break;
        }
    }
    let t0 = Instant::now();
    let counter = tokio::spawn(async move {
        let mut got = 0;
        while got < total {
            match tokio::time::timeout(Duration::from_secs(20), sel.poll()).await {
                Ok(Ok(Event::Incoming(Packet::Publish(_)))) => got += 1,
                Ok(_) => {}
                Err(_) => panic!("broker-only subscriber stalled at {got} of {total}"),
            }
        }
        Instant::now()
    });
    tokio::time::timeout(
        Duration::from_secs(60),
        publish_all(mq.port, agents, per_agent, "load-prison", None),
    )
    .await
    .expect("publishers stalled (broker-only phase)");
    let base_done = counter.await.expect("counter");
    let base_rate = total as f64 / (base_done - t0).as_secs_f64();
    let _ = sub.disconnect().await;

    // The system: the same publishers into the server and SQLite.
    let dir = tempfile::tempdir().expect("dir");
    let server = Server::start(ServerConfig {
        server: ServerSection {
            broker: Some(format!("mqtt://127.0.0.1:{}", mq.port)),
            http: SocketAddr::from(([127, 0, 0, 1], 0)),
            db: central_server::db::Database::Sqlite(dir.path().join("load.db")),
            client_id: "load-server".into(),
            ..ServerSection::default()
        },
        facilities: Vec::new(),
    })
    .await
    .expect("server");
    while !server.metrics.connected() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t1 = Instant::now();
    publish_all(mq.port, agents, per_agent, "load-prison", None).await;
    let published = t1.elapsed().as_secs_f64();
    let mut last = (0i64, Instant::now());
    loop {
        let n: i64 = server
            .store
            .event_counts()
            .await
            .expect("counts")
            .iter()
            .map(|(_, n)| n)
            .sum();
        if n as usize >= total {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        assert!(
            last.1.elapsed() < Duration::from_secs(30),
            "the server stored {n} of {total} events and made no progress for 30 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stored_s = t1.elapsed().as_secs_f64();
    let rate = total as f64 / stored_s;
    let lat = latencies(&server, "load-prison").await;
    // Paced: a steady rate under the capacity, for the latency an operator sees day to day.
    let paced_rate = env("LOAD_RATE", 2000) as f64;
    let paced_per_agent = (paced_rate * 5.0) as usize / agents;
    publish_all(
        mq.port,
        agents,
        paced_per_agent,
        "load-paced",
        Some(paced_rate),
    )
    .await;
    let paced_total = (paced_per_agent * agents) as i64;
    let t2 = Instant::now();
    loop {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM events WHERE facility_id = 'load-paced'")
                .fetch_one(server.store.pool())
                .await
                .expect("count");
        if n >= paced_total {
            break;
        }
        assert!(
            t2.elapsed() < Duration::from_secs(60),
            "paced phase stalled at {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let paced = latencies(&server, "load-paced").await;
    let result = serde_json::json!({
        "agents": agents,
        "events": total,
        "broker_only_events_per_s": base_rate.round(),
        "server_sqlite_events_per_s": rate.round(),
        "ratio_to_broker_only": (rate / base_rate * 1000.0).round() / 1000.0,
        "publish_s": published,
        "burst_latency_ms": {
            "p50": percentile(&lat, 0.5),
            "p95": percentile(&lat, 0.95),
            "p99": percentile(&lat, 0.99),
        },
        "paced_events_per_s": paced_rate,
        "paced_latency_ms": {
            "p50": percentile(&paced, 0.5),
            "p95": percentile(&paced, 0.95),
            "p99": percentile(&paced, 0.99),
            "max": percentile(&paced, 1.0),
        }
    });
    println!("{result}");
    eprintln!(
        "{agents} agents, {total} events: broker alone {base_rate:.0}/s; server into SQLite {rate:.0}/s ({:.2}x the broker); at a steady {paced_rate:.0}/s latency p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms",
        rate / base_rate,
        percentile(&paced, 0.5),
        percentile(&paced, 0.95),
        percentile(&paced, 0.99)
    );
    server.stop().await;
    drop(mq);
}

async fn latencies(server: &Server, facility: &str) -> Vec<f64> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT observed_at, received_at FROM events WHERE facility_id = $1")
            .bind(facility)
            .fetch_all(server.store.pool())
            .await
            .expect("rows");
    let mut lat: Vec<f64> = rows
        .iter()
        .filter_map(|(o, r)| {
            let p = |s: &str| {
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            };
            Some((p(r)? - p(o)?).as_seconds_f64() * 1e3)
        })
        .collect();
    lat.sort_by(f64::total_cmp);
    lat
}
