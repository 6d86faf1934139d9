//! The national load bench (not a timed test): N facilities × M sensors of simulated agents
//! with the production message mix, signed with each sensor's key, through Mosquitto into 1, 2
//! and 3 `central-server` processes sharing ingest on PostgreSQL, and into one on SQLite. Each
//! configuration is measured against the broker alone in the same run.
//!
//! ```sh
//! cargo build --release -p central-server
//! CENTINELA_SERVER_BIN=target/release/central-server cargo bench -p centinela-tests --bench load
//! #  LOAD_FACILITIES=125 LOAD_SENSORS=8 LOAD_CONFIGS=pg1,pg2,pg3,sqlite1 LOAD_MIX_S=60
//! #  LOAD_FLOOD=20 (messages per sensor in the capacity phase) LOAD_KILL=mix|flood (SIGKILL one
//! #  server of a group half-way through the mix, or during the flood)
//! ```
//!
//! Each facility's sensors speak over one connection, as through the facility's bridge, and
//! keep every gap and jammer event until the server's receipt for it comes (sent again after
//! 15 s without one, as agents do). Per configuration:
//! - **base**: the broker alone: the flood into one plain QoS 1 subscriber, messages/s;
//! - **capacity**: the same flood (heartbeats, spectrum summaries and gap events in the
//!   national proportions, every message signed, all QoS 1) into the servers: messages
//!   stored per second, and the CPU each part of the system spent meanwhile (which one limits);
//! - **mix**: `LOAD_MIX_S` seconds of the national mix at its real rate (a heartbeat every 5 s,
//!   a spectrum summary every 10 s at QoS 0, a gap update per sensor a minute, and every 10 s a
//!   facility whose jammer fails: each of its sensors reports the band down and a critical gap
//!   at once, and the recovery 5 s later): receipt latency of gap and jammer events (publish
//!   to receipt, p50/p99), the database's growth per day at that mix, and the latency of the
//!   national overview (`/api/overview`, an administrator, once a second);
//! - **kill** (`LOAD_KILL=mix` or `flood`, groups of 2 or more): one server killed with SIGKILL
//!   half-way through the mix, or 0.7 s into the flood; every gap and jammer event sent (the
//!   flood's too) is then stored once, and the alerts said again by another server (their first
//!   server died before settling them) are counted.
//!
//! One JSON line per configuration on stdout; progress on stderr.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use centinela_tests::Mosquitto;
use centinela_tests::live::{ServerProcess, test_key};
use centinela_tests::pg::{Cluster, Durability};
use centinela_tests::testdb::{Backend, TestDb};
use central_server::config::{Facility, SensorSite, ServerConfig, ServerSection};
use central_server::db::Database;
use protocol::signed::SensorKey;
use protocol::{
    BandSummary, Detector, GAP_SCHEMA, GapEvent, GapState, JAMMER_SCHEMA, JammerEvent,
    JammerStateWire, Kind, Receipt, STATUS_SCHEMA, SensorHealth, SensorState, Severity,
    SpectrumSummary, StatusEvent, Technology, event_id,
};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::json;
use time::OffsetDateTime;

/// Colombia's departments (and Bogotá), facilities spread over them in turn.
const REGIONS: [&str; 12] = [
    "Antioquia",
    "Atlántico",
    "Bogotá D.C.",
    "Bolívar",
    "Boyacá",
    "Caldas",
    "Cauca",
    "Cundinamarca",
    "Meta",
    "Nariño",
    "Santander",
    "Valle del Cauca",
];

/// How long a simulated agent waits for a receipt before it sends an event again (the agent's
/// default).
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(15);

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn fac_id(f: usize) -> String {
    format!("nat-{f:03}")
}

fn sensor_id(s: usize) -> String {
    format!("s{s}")
}

/// One simulated sensor.
struct Sensor {
    id: String,
    key: SensorKey,
    seq: AtomicU64,
}

/// An event waiting for its receipt.
struct Pending {
    first_sent: Instant,
    last_sent: Instant,
    topic: String,
    payload: Vec<u8>,
}

/// One facility: its sensors, speaking over one connection, and their events awaiting
/// receipts.
struct Fac {
    id: String,
    sensors: Vec<Sensor>,
    client: AsyncClient,
    pending: Mutex<HashMap<uuid::Uuid, Pending>>,
    latencies_ms: Mutex<Vec<f64>>,
    resent: AtomicU64,
    refused: AtomicU64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fac {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fac {
    /// Seals `msg` as sensor `s` for `kind`: (topic, payload).
    fn seal(&self, s: usize, kind: Kind, msg: &[u8]) -> (String, Vec<u8>) {
        let sensor = &self.sensors[s];
        let topic = protocol::topic(&self.id, &sensor.id, kind).expect("topic");
        let n = sensor.seq.fetch_add(1, Ordering::Relaxed) + 1;
        let p = sensor.key.seal(&topic, n, msg).expect("sealable");
        (topic, p)
    }

    /// Publishes; a gap or jammer event waits for its receipt.
    async fn send(&self, topic: String, payload: Vec<u8>, id: Option<uuid::Uuid>, qos: QoS) {
        if let Some(id) = id {
            let now = Instant::now();
            self.pending.lock().expect("pending").insert(
                id,
                Pending {
                    first_sent: now,
                    last_sent: now,
                    topic: topic.clone(),
                    payload: payload.clone(),
                },
            );
        }
        let _ = self.client.publish(topic, qos, false, payload).await;
    }

    /// Sends again what has had no receipt for [`RECEIPT_TIMEOUT`].
    async fn resend_overdue(&self) {
        let now = Instant::now();
        let due: Vec<(String, Vec<u8>)> = {
            let mut p = self.pending.lock().expect("pending");
            p.values_mut()
                .filter(|e| now - e.last_sent >= RECEIPT_TIMEOUT)
                .map(|e| {
                    e.last_sent = now;
                    (e.topic.clone(), e.payload.clone())
                })
                .collect()
        };
        for (t, p) in due {
            self.resent.fetch_add(1, Ordering::Relaxed);
            let _ = self.client.publish(t, QoS::AtLeastOnce, false, p).await;
        }
    }
}

/// Connects facility `f` (one connection for its sensors, subscribed to their receipts).
async fn connect(port: u16, f: usize, sensors: usize, run: &str) -> Arc<Fac> {
    let id = fac_id(f);
    let mut o = MqttOptions::new(format!("bench-{run}-{id}"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(Some(256 * 1024));
    let (client, mut el) = AsyncClient::new(o, 20_000);
    let fac = Arc::new_cyclic(|weak: &std::sync::Weak<Fac>| {
        let weak = weak.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let Some(fac) = weak.upgrade() else { return };
                        let Ok(r) = serde_json::from_slice::<Receipt>(
                            protocol::signed::message_bytes(&p.payload),
                        ) else {
                            continue;
                        };
                        let now = Instant::now();
                        let mut pending = fac.pending.lock().expect("pending");
                        let mut lat = fac.latencies_ms.lock().expect("latencies");
                        for item in r.items {
                            use protocol::receipt::Outcome;
                            match item.outcome {
                                Outcome::Stored | Outcome::Duplicate => {
                                    if let Some(e) = pending.remove(&item.event_id) {
                                        lat.push((now - e.first_sent).as_secs_f64() * 1e3);
                                    }
                                }
                                Outcome::Conflict | Outcome::Rejected => {
                                    if pending.remove(&item.event_id).is_some() {
                                        fac.refused.fetch_add(1, Ordering::Relaxed);
                                    }
                                }
                                Outcome::Deferred => {}
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
                }
            }
        });
        Fac {
            id: id.clone(),
            sensors: (0..sensors)
                .map(|s| Sensor {
                    id: sensor_id(s),
                    key: test_key(&id, &sensor_id(s)),
                    seq: AtomicU64::new(0),
                })
                .collect(),
            client: client.clone(),
            pending: Mutex::new(HashMap::new()),
            latencies_ms: Mutex::new(Vec::new()),
            resent: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            task,
        }
    });
    let _ = client
        .subscribe(
            format!("{}/{id}/+", protocol::receipt::RECEIPT_ROOT),
            QoS::AtLeastOnce,
        )
        .await;
    fac
}

fn status(f: &str, s: &str, state: SensorState, up_s: f64) -> StatusEvent {
    let now = OffsetDateTime::now_utc();
    StatusEvent {
        schema: STATUS_SCHEMA.into(),
        event_id: event_id(now, format!("{f} {s} {up_s} {:?}", now).as_bytes()),
        facility_id: f.into(),
        sensor_id: s.into(),
        observed_at: now,
        state,
        connected_at: Some(now - time::Duration::seconds_f64(up_s)),
        zone: "patio".into(),
        position_m: Some([120.0, 90.0]),
        agent_version: "bench".into(),
        heartbeat_s: 5.0,
        unreachable_bands: vec![],
        health: SensorHealth {
            uptime_s: up_s,
            sweeps: (up_s / 2.0) as u64,
            ..SensorHealth::default()
        },
        will_seq: None,
    }
}

fn spectrum(f: &str, s: &str, n: u64) -> SpectrumSummary {
    let now = OffsetDateTime::now_utc();
    SpectrumSummary {
        schema: protocol::SPECTRUM_SCHEMA.into(),
        event_id: event_id(now, format!("{f} {s} spectrum {n}").as_bytes()),
        facility_id: f.into(),
        sensor_id: s.into(),
        observed_at: now,
        bands: ["B28", "B5", "B2", "B4", "B7", "n78"]
            .iter()
            .enumerate()
            .map(|(i, b)| BandSummary {
                band: (*b).into(),
                unit: "dbm".into(),
                floor_db_per_hz: -150.0 + i as f64,
                noise_rise_db: Some(22.0 - i as f64),
                carriers: Vec::new(),
            })
            .collect(),
    }
}

fn gap(f: &str, s: &str, n: u64, state: GapState, margin_db: f64) -> GapEvent {
    let now = OffsetDateTime::now_utc();
    GapEvent {
        schema: GAP_SCHEMA.into(),
        event_id: event_id(now, format!("{f} {s} gap {n} {state:?}").as_bytes()),
        facility_id: f.into(),
        sensor_id: s.into(),
        observed_at: now,
        gap_key: format!("B7/lte/pci{}/2655.0MHz", n % 4),
        state,
        zone: "patio".into(),
        band: "B7".into(),
        technology: Technology::Lte,
        center_hz: 2.655e9,
        bandwidth_hz: 9e6,
        cell: None,
        power_dbm: Some(-80.0),
        floor_dbm: Some(-95.0),
        power_dbfs: -40.0,
        floor_dbfs: -65.0,
        margin_db,
        severity: Severity::from_margin_db(margin_db),
        detector: Detector::Energy,
        evidence: None,
    }
}

fn jammer(f: &str, s: &str, state: JammerStateWire) -> JammerEvent {
    let now = OffsetDateTime::now_utc();
    JammerEvent {
        schema: JAMMER_SCHEMA.into(),
        event_id: event_id(now, format!("{f} {s} jammer {state:?}").as_bytes()),
        facility_id: f.into(),
        sensor_id: s.into(),
        observed_at: now,
        zone: "patio".into(),
        band: "B28".into(),
        state,
        noise_rise_db: if state == JammerStateWire::Down {
            0.5
        } else {
            24.0
        },
        floor_dbm_per_hz: -150.0,
        covered_fraction: if state == JammerStateWire::Down {
            0.0
        } else {
            1.0
        },
    }
}

/// The server configuration of the bench: every facility with its sensors' test keys, a region
/// each, the demo facility's plan.
fn config(facilities: usize, sensors: usize) -> ServerConfig {
    let demo = centinela_demo::facility();
    ServerConfig {
        server: ServerSection::default(),
        facilities: (0..facilities)
            .map(|f| {
                let id = fac_id(f);
                Facility {
                    id: id.clone(),
                    name: format!("Establecimiento {f:03}"),
                    region: Some(REGIONS[f % REGIONS.len()].into()),
                    sensors: (0..sensors)
                        .map(|s| SensorSite {
                            id: sensor_id(s),
                            zone: "patio".into(),
                            position: [120.0, 90.0],
                            public_key: Some(test_key(&id, &sensor_id(s)).public()),
                            revoked: false,
                        })
                        .collect(),
                    ..demo.clone()
                }
            })
            .collect(),
    }
}

/// CPU seconds (user + system) spent so far by the processes named `comm`.
fn cpu_of(comm: &str) -> f64 {
    let tick = 100.0; // USER_HZ on Linux
    let mut total = 0.0;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0.0;
    };
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if &stat[open + 1..close] != comm {
            continue;
        }
        let f: Vec<&str> = stat[close + 2..].split(' ').collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields after the name: state is 0; utime 11, stime 12.
        total += (t(11) + t(12)) / tick;
    }
    total
}

/// CPU seconds of the servers, PostgreSQL and Mosquitto so far.
fn cpu_snapshot() -> [f64; 3] {
    [
        cpu_of("central-server"),
        cpu_of("postgres"),
        cpu_of("mosquitto"),
    ]
}

fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let Some(close) = stat.rfind(')') else {
        return 0.0;
    };
    let f: Vec<&str> = stat[close + 2..].split(' ').collect();
    let t = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (t(11) + t(12)) / 100.0
}

fn percentile(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() - 1) as f64 * p).round() as usize;
    (v[i] * 10.0).round() / 10.0
}

/// Messages every sensor of every facility sends in the capacity phase, pre-sealed:
/// heartbeats, spectrum summaries and gap updates in the national proportions (12 : 6 : 1 a
/// minute), all QoS 1 so that each one counts.
/// One message of the flood: topic, payload, and the id of a gap event (which awaits its
/// receipt).
type Sealed = (String, Vec<u8>, Option<uuid::Uuid>);

fn flood(facs: &[Arc<Fac>], per_sensor: usize, round: u64) -> Vec<Vec<Sealed>> {
    facs.iter()
        .map(|fac| {
            let mut out = Vec::new();
            for n in 0..per_sensor {
                for (s, sensor) in fac.sensors.iter().enumerate() {
                    let k = (round * 1_000_000) + n as u64;
                    let mut id = None;
                    let (kind, msg) = match n % 19 {
                        0..=11 => (
                            Kind::Status,
                            serde_json::to_vec(&status(
                                &fac.id,
                                &sensor.id,
                                SensorState::Online,
                                k as f64,
                            )),
                        ),
                        12..=17 => (
                            Kind::Spectrum,
                            serde_json::to_vec(&spectrum(&fac.id, &sensor.id, k)),
                        ),
                        _ => {
                            let g = gap(
                                &fac.id,
                                &sensor.id,
                                k,
                                GapState::Update,
                                5.0 + (k % 4) as f64,
                            );
                            id = Some(g.event_id);
                            (Kind::Gap, serde_json::to_vec(&g))
                        }
                    };
                    let (t, p) = fac.seal(s, kind, &msg.expect("json"));
                    out.push((t, p, id));
                }
            }
            out
        })
        .collect()
}

/// Publishes every facility's share at once, as fast as QoS 1 allows; returns when all are
/// handed to the clients. With `receipts`, each gap event waits for its receipt (and is sent
/// again without one, as agents do).
async fn publish_flood(facs: &[Arc<Fac>], msgs: Vec<Vec<Sealed>>, receipts: bool) {
    let mut tasks = Vec::new();
    for (fac, list) in facs.iter().zip(msgs) {
        let fac = fac.clone();
        tasks.push(tokio::spawn(async move {
            for (t, p, id) in list {
                fac.send(t, p, id.filter(|_| receipts), QoS::AtLeastOnce)
                    .await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
}

/// Messages the database has received from the bench's sensors (every accepted message
/// counts, spectrum summaries too).
async fn received(pool: &sqlx::AnyPool) -> i64 {
    sqlx::query_scalar("SELECT CAST(coalesce(sum(seen), 0) AS BIGINT) FROM sequence_counts")
        .fetch_one(pool)
        .await
        .unwrap_or(0)
}

async fn db_bytes(db: &TestDb, pool: &sqlx::AnyPool) -> f64 {
    match &db.db {
        Database::Postgres(_) => {
            sqlx::query_scalar::<_, i64>("SELECT pg_database_size(current_database())")
                .fetch_one(pool)
                .await
                .unwrap_or(0) as f64
        }
        Database::Sqlite(p) => {
            let _ = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(pool)
                .await;
            std::fs::metadata(p).map(|m| m.len() as f64).unwrap_or(0.0)
        }
    }
}

/// The bytes of the history proper (events and sequence numbers, their indexes included), which
/// grow with time; the current-state tables (sensors, spectra, gaps) do not. PostgreSQL only.
async fn history_bytes(db: &TestDb, pool: &sqlx::AnyPool) -> Option<f64> {
    match &db.db {
        Database::Postgres(_) => sqlx::query_scalar::<_, i64>(
            "SELECT CAST(coalesce((SELECT sum(pg_total_relation_size(inhrelid)) FROM pg_inherits
               WHERE inhparent = 'events'::regclass), 0)
             + pg_total_relation_size('sequences') AS BIGINT)",
        )
        .fetch_one(pool)
        .await
        .ok()
        .map(|b| b as f64),
        Database::Sqlite(_) => None,
    }
}

/// A read token of an administrator in the database (for the overview's latency).
async fn admin_token(db: &Database) -> String {
    use central_server::auth::{Role, Scope, Users};
    let store = central_server::store::Store::open(db).await.expect("store");
    let users = Users::new(&store);
    if !users.exists("bench").await.expect("users") {
        users
            .add(
                "bench",
                Role::Admin,
                &[],
                &protocol::Secret::new("bench admin password"),
                "bench",
            )
            .await
            .expect("user");
    }
    let (_, t) = users
        .add_token("bench", "bench", Scope::Read, "bench")
        .await
        .expect("token");
    store.pool().close().await;
    t.expose().to_string()
}

/// When one server of a group is killed (`LOAD_KILL=mix|flood`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kill {
    None,
    /// Half-way through the national mix.
    Mix,
    /// 0.7 s into the capacity flood.
    Flood,
}

struct Setup {
    bin: PathBuf,
    facilities: usize,
    sensors: usize,
    flood: usize,
    mix_s: u64,
    kill: Kill,
    pg_bin: Option<PathBuf>,
}

async fn run_config(setup: &Setup, name: &str) -> serde_json::Value {
    let (engine, instances) = match name {
        "sqlite1" => (Backend::Sqlite, 1usize),
        n if n.starts_with("pg") => (Backend::Postgres, n[2..].parse().unwrap_or(1).clamp(1, 8)),
        other => return json!({"config": other, "error": "unknown configuration"}),
    };
    let dir = tempfile::tempdir().expect("dir");
    let db = match engine {
        Backend::Sqlite => TestDb {
            backend: engine,
            db: Database::Sqlite(dir.path().join("national.db")),
            dir: dir.path().to_path_buf(),
        },
        Backend::Postgres => {
            let Some(bin) = &setup.pg_bin else {
                return json!({"config": name, "skipped": "PostgreSQL is not installed"});
            };
            let cluster = Cluster::start(bin, Durability::Production).expect("PostgreSQL");
            let url = cluster.create_database().await.expect("database");
            // The cluster lives as long as this process (its directory is swept next run).
            std::mem::forget(cluster);
            TestDb {
                backend: engine,
                db: Database::Postgres(url),
                dir: dir.path().to_path_buf(),
            }
        }
    };
    let Some(mq) = Mosquitto::start() else {
        return json!({"config": name, "skipped": "no mosquitto"});
    };
    let (nf, ns) = (setup.facilities, setup.sensors);
    eprintln!("[{name}] {nf} facilities × {ns} sensors: connecting");
    let mut facs = Vec::new();
    for f in 0..nf {
        facs.push(connect(mq.port, f, ns, "base").await);
    }
    // Base: the broker alone into one plain QoS 1 subscriber.
    let got = Arc::new(AtomicU64::new(0));
    let mut o = MqttOptions::new("bench-base-sub", "127.0.0.1", mq.port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(Some(256 * 1024));
    let (sub, mut sel) = AsyncClient::new(o, 1024);
    sub.subscribe(central_server::ingest::FILTER, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let g = got.clone();
    let sub_task = tokio::spawn(async move {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(_))) = sel.poll().await {
                g.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let msgs = flood(&facs, setup.flood, 1);
    let total: usize = msgs.iter().map(Vec::len).sum();
    let t0 = Instant::now();
    publish_flood(&facs, msgs, false).await;
    while got.load(Ordering::Relaxed) < total as u64 && t0.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let base = got.load(Ordering::Relaxed) as f64 / t0.elapsed().as_secs_f64();
    sub_task.abort();
    let _ = sub.disconnect().await;
    drop(facs);
    eprintln!("[{name}] broker alone: {base:.0} messages/s");

    // The servers.
    let mut cfg = config(nf, ns);
    cfg.server.db = db.db.clone();
    cfg.server.data_dir = Some(dir.path().to_path_buf());
    cfg.server.broker = Some(format!("mqtt://127.0.0.1:{}", mq.port));
    cfg.server.client_id = format!("bench-{name}");
    if engine == Backend::Postgres {
        cfg.server.shared_group = Some("centinela".into());
    }
    let config_file = dir.path().join("server.toml");
    std::fs::write(&config_file, toml::to_string(&cfg).expect("toml")).expect("config");
    let mut servers: Vec<ServerProcess> = (0..instances)
        .map(|i| {
            ServerProcess::start(
                &setup.bin,
                &[
                    "--config".into(),
                    config_file.display().to_string(),
                    "--instance".into(),
                    format!("s{i}"),
                ],
                &dir.path().join(format!("server-{i}.log")),
            )
        })
        .collect();
    let token = admin_token(&db.db).await;
    let pool = db.reader().await;
    let mut facs = Vec::new();
    for f in 0..nf {
        facs.push(connect(mq.port, f, ns, name).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Capacity: the flood into the servers.
    let msgs = flood(&facs, setup.flood, 2);
    let total: usize = msgs.iter().map(Vec::len).sum();
    let flood_ids: Vec<uuid::Uuid> = msgs.iter().flatten().filter_map(|m| m.2).collect();
    let before = received(&pool).await;
    let cpu0 = (cpu_snapshot(), own_cpu());
    let t0 = Instant::now();
    let mut killed = None;
    if setup.kill == Kill::Flood && instances >= 2 {
        // One server killed while the flood pours in.
        let pour = {
            let facs = facs.clone();
            tokio::spawn(async move { publish_flood(&facs, msgs, true).await })
        };
        tokio::time::sleep(Duration::from_millis(700)).await;
        servers[0].kill();
        killed = Some(("flood", t0.elapsed().as_secs_f64()));
        eprintln!("[{name}] server s0 killed with SIGKILL during the flood");
        let _ = pour.await;
    } else {
        publish_flood(&facs, msgs, true).await;
    }
    let mut last = (before, Instant::now());
    loop {
        let n = received(&pool).await - before;
        if n >= total as i64 {
            break;
        }
        if n != last.0 {
            last = (n, Instant::now());
        }
        if last.1.elapsed() > Duration::from_secs(30) {
            eprintln!("[{name}] the servers stored {n} of {total} and no more for 30 s");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let wall = t0.elapsed().as_secs_f64();
    let stored = (received(&pool).await - before) as f64;
    let rate = stored / wall;
    let cpu1 = (cpu_snapshot(), own_cpu());
    let cpu = |i: usize| ((cpu1.0[i] - cpu0.0[i]) / wall * 100.0).round() / 100.0;
    let load_gen = ((cpu1.1 - cpu0.1) / wall * 100.0).round() / 100.0;
    eprintln!(
        "[{name}] capacity: {rate:.0} messages/s ({:.3} of the broker alone); cores busy: servers {} postgres {} mosquitto {} load generator {load_gen}",
        rate / base,
        cpu(0),
        cpu(1),
        cpu(2)
    );
    // Let the flood's gap events settle before the mix: their latencies are not the mix's.
    let settle = Instant::now();
    while facs
        .iter()
        .any(|f| !f.pending.lock().expect("pending").is_empty())
        && settle.elapsed() < Duration::from_secs(60)
    {
        for f in &facs {
            f.resend_overdue().await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let flood_resent: u64 = facs.iter().map(|f| f.resent.load(Ordering::Relaxed)).sum();
    for f in &facs {
        f.latencies_ms.lock().expect("latencies").clear();
    }

    // The national mix at its real rate.
    let size0 = db_bytes(&db, &pool).await;
    let history0 = history_bytes(&db, &pool).await;
    let received0 = received(&pool).await;
    let mix_t0 = Instant::now();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent_events = Arc::new(Mutex::new(Vec::<uuid::Uuid>::new()));
    let mut tasks = Vec::new();
    for (fi, fac) in facs.iter().enumerate() {
        let fac = fac.clone();
        let stop = stop.clone();
        let sent = sent_events.clone();
        let bursts_every = 10u64;
        let nfac = nf as u64;
        tasks.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut t = 0u64;
            let mut gap_n = 0u64;
            // Each facility's turn to lose its jammer: one facility every 10 s in turn.
            let my_turn =
                |t: u64| t.is_multiple_of(bursts_every) && (t / bursts_every) % nfac == fi as u64;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                t += 1;
                for s in 0..fac.sensors.len() {
                    let phase = (fi * 7 + s * 3) as u64;
                    let sid = fac.sensors[s].id.clone();
                    if (t + phase).is_multiple_of(5) {
                        let m = serde_json::to_vec(&status(
                            &fac.id,
                            &sid,
                            SensorState::Online,
                            t as f64,
                        ))
                        .expect("json");
                        let (tp, p) = fac.seal(s, Kind::Status, &m);
                        fac.send(tp, p, None, QoS::AtLeastOnce).await;
                    }
                    if (t + phase).is_multiple_of(10) {
                        let m = serde_json::to_vec(&spectrum(&fac.id, &sid, t)).expect("json");
                        let (tp, p) = fac.seal(s, Kind::Spectrum, &m);
                        fac.send(tp, p, None, QoS::AtMostOnce).await;
                    }
                    if (t + phase).is_multiple_of(60) {
                        gap_n += 1;
                        let g = gap(
                            &fac.id,
                            &sid,
                            gap_n,
                            GapState::Update,
                            4.0 + (gap_n % 5) as f64,
                        );
                        let m = serde_json::to_vec(&g).expect("json");
                        let (tp, p) = fac.seal(s, Kind::Gap, &m);
                        sent.lock().expect("sent").push(g.event_id);
                        fac.send(tp, p, Some(g.event_id), QoS::AtLeastOnce).await;
                    }
                }
                // The facility's jammer fails: every sensor at once; recovered 5 s later.
                let down = my_turn(t);
                let back = t >= 5 && my_turn(t - 5);
                if down || back {
                    for s in 0..fac.sensors.len() {
                        let sid = fac.sensors[s].id.clone();
                        let j = jammer(
                            &fac.id,
                            &sid,
                            if down {
                                JammerStateWire::Down
                            } else {
                                JammerStateWire::Effective
                            },
                        );
                        let g = gap(
                            &fac.id,
                            &sid,
                            1_000_000 + t,
                            if down {
                                GapState::Open
                            } else {
                                GapState::Closed
                            },
                            14.0,
                        );
                        for (kind, id, m) in [
                            (Kind::Jammer, j.event_id, serde_json::to_vec(&j)),
                            (Kind::Gap, g.event_id, serde_json::to_vec(&g)),
                        ] {
                            let (tp, p) = fac.seal(s, kind, &m.expect("json"));
                            sent.lock().expect("sent").push(id);
                            fac.send(tp, p, Some(id), QoS::AtLeastOnce).await;
                        }
                    }
                }
                fac.resend_overdue().await;
            }
        }));
    }
    // The national overview, once a second, as an administrator.
    let http = servers.iter().map(|s| s.http).collect::<Vec<_>>();
    let api_stop = stop.clone();
    let api_token = token.clone();
    let api = tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut lat = Vec::new();
        let mut k = 0usize;
        while !api_stop.load(Ordering::Relaxed) {
            // Each server in turn (a killed one is skipped).
            let addr = http[k % http.len()];
            k += 1;
            let t = Instant::now();
            let ok = client
                .get(format!("http://{addr}/api/overview"))
                .bearer_auth(&api_token)
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        lat
    });
    while mix_t0.elapsed() < Duration::from_secs(setup.mix_s) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        if setup.kill == Kill::Mix
            && instances >= 2
            && killed.is_none()
            && mix_t0.elapsed() >= Duration::from_secs(setup.mix_s / 2)
        {
            servers[0].kill();
            killed = Some(("mix", mix_t0.elapsed().as_secs_f64()));
            eprintln!("[{name}] server s0 killed with SIGKILL during the mix");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    let mix_wall = mix_t0.elapsed().as_secs_f64();
    let mix_received = (received(&pool).await - received0) as f64;
    let mut api_lat = api.await.unwrap_or_default();
    // Every gap and jammer event of the mix confirmed (resends after a kill included).
    let drain = Instant::now();
    while drain.elapsed() < Duration::from_secs(90) {
        let waiting: usize = facs
            .iter()
            .map(|f| f.pending.lock().expect("pending").len())
            .sum();
        if waiting == 0 {
            break;
        }
        for f in &facs {
            f.resend_overdue().await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let size1 = db_bytes(&db, &pool).await;
    let history1 = history_bytes(&db, &pool).await;
    let mut lat: Vec<f64> = facs
        .iter()
        .flat_map(|f| f.latencies_ms.lock().expect("latencies").clone())
        .collect();
    let waiting: usize = facs
        .iter()
        .map(|f| f.pending.lock().expect("pending").len())
        .sum();
    let resent: u64 = facs.iter().map(|f| f.resent.load(Ordering::Relaxed)).sum();
    let refused: u64 = facs.iter().map(|f| f.refused.load(Ordering::Relaxed)).sum();
    let mut sent: Vec<uuid::Uuid> = sent_events.lock().expect("sent").clone();
    sent.extend(&flood_ids);
    let stored_ids: std::collections::HashSet<String> =
        sqlx::query_scalar("SELECT event_id FROM events WHERE kind IN ('gap', 'jammer')")
            .fetch_all(&pool)
            .await
            .unwrap_or_default()
            .into_iter()
            .collect();
    let lost = sent
        .iter()
        .filter(|id| !stored_ids.contains(&id.to_string()))
        .count();
    let alerts: Vec<(i64, i64)> =
        sqlx::query_as("SELECT attempts, CASE WHEN outcome IS NULL THEN 0 ELSE 1 END FROM alerts")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    let per_day = (size1 - size0) / mix_wall * 86_400.0;
    let result = json!({
        "config": name,
        "database": match engine { Backend::Sqlite => "sqlite", Backend::Postgres => "postgres" },
        "instances": instances,
        "facilities": nf,
        "sensors": nf * ns,
        "broker_only_msgs_per_s": base.round(),
        "capacity": {
            "messages": total,
            "stored_msgs_per_s": rate.round(),
            "ratio_to_broker_only": (rate / base * 1000.0).round() / 1000.0,
            "cores_busy": {"servers": cpu(0), "postgres": cpu(1), "mosquitto": cpu(2), "load_generator": load_gen},
        },
        "mix": {
            "seconds": mix_wall.round(),
            "msgs_per_s": (mix_received / mix_wall).round(),
            "gap_jammer_events": sent.len(),
            "receipt_latency_ms": {"p50": percentile(&mut lat, 0.5), "p99": percentile(&mut lat, 0.99), "max": percentile(&mut lat, 1.0)},
            "db_growth_gb_per_day": (per_day / 1e9 * 100.0).round() / 100.0,
            "history_growth_gb_per_day": history0.zip(history1).map(|(a, b)| ((b - a) / mix_wall * 86_400.0 / 1e9 * 100.0).round() / 100.0),
            "overview_ms": {"p50": percentile(&mut api_lat, 0.5), "p99": percentile(&mut api_lat, 0.99), "requests": api_lat.len()},
            "resent": resent,
            "refused": refused,
            "unconfirmed": waiting,
            "lost": lost,
        },
        "kill": killed.map(|(phase, at)| json!({
            "phase": phase,
            "at_s": (at * 10.0).round() / 10.0,
            "lost": lost,
            "alerts": alerts.len(),
            "alerts_said_again": alerts.iter().filter(|(a, _)| *a >= 2).count(),
            "flood_gap_events": flood_ids.len(),
            "resent_after_the_flood": flood_resent,
            "alerts_unsettled": alerts.iter().filter(|(_, s)| *s == 0).count(),
        })),
    });
    println!("{result}");
    eprintln!(
        "[{name}] mix: {:.0} messages/s, receipts p50 {} ms p99 {} ms, growth {:.2} GB/day, overview p50 {} ms; lost {lost}, unconfirmed {waiting}",
        mix_received / mix_wall,
        result["mix"]["receipt_latency_ms"]["p50"],
        result["mix"]["receipt_latency_ms"]["p99"],
        per_day / 1e9,
        result["mix"]["overview_ms"]["p50"],
    );
    pool.close().await;
    for s in &mut servers {
        s.stop();
    }
    drop(facs);
    drop(mq);
    result
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let bin = std::env::var_os("CENTINELA_SERVER_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/central-server"),
        PathBuf::from,
    );
    if !bin.is_file() {
        eprintln!(
            "no server binary at {} (cargo build --release -p central-server, or set CENTINELA_SERVER_BIN)",
            bin.display()
        );
        return;
    }
    let setup = Setup {
        bin,
        facilities: env("LOAD_FACILITIES", 125),
        sensors: env("LOAD_SENSORS", 8),
        flood: env("LOAD_FLOOD", 20),
        mix_s: env("LOAD_MIX_S", 60) as u64,
        kill: match std::env::var("LOAD_KILL").as_deref() {
            Ok("mix" | "1") => Kill::Mix,
            Ok("flood") => Kill::Flood,
            _ => Kill::None,
        },
        pg_bin: centinela_tests::pg::bin_dir(),
    };
    let configs =
        std::env::var("LOAD_CONFIGS").unwrap_or_else(|_| "pg1,pg2,pg3,sqlite1".to_string());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        for c in configs.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            run_config(&setup, c).await;
        }
    });
}
