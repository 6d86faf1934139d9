//! The hostile and crash runs of the ingest issue, against any `central-server` binary (not a
//! timed test): what a hostile or unlucky user meets, counted. It speaks only MQTT, HTTP and
//! reads the SQLite file, so the same runs measure an older build and this one.
//!
//! ```sh
//! CENTINELA_SERVER_BIN=target/release/central-server cargo bench -p centinela-tests --bench hostile
//! #  HOSTILE_RUNS=sign,forge,wedge,flood,future,heartbeat,takeover,kill-embedded,kill-mosquitto,load,queue
//! #  HOSTILE_DELIVERY=puback,receipts   (how the publisher counts an event delivered)
//! ```
//!
//! Payloads are signed (`centinela.signed/1`, each sensor's test key) and the server is given a
//! configuration registering the bench's sensors; `HOSTILE_UNSIGNED=1` sends bare messages and
//! no configuration, for builds from before signatures (then use `HOSTILE_DELIVERY=puback`: the
//! agent's link always signs). The `sign` run measures what signing and checking cost per
//! message.
//!
//! `puback` is how agents counted before commit receipts (an event leaves the outbox on the
//! broker's PUBACK, 0x10 included); `receipts` is the agent's link today. One JSON line per run
//! on stdout.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use centinela_tests::live::{
    Feeder, Fleet, Sealer, ServerProcess, count_in_db, gap, stored_ids, test_key,
};
use centinela_tests::testdb::{Backend, TestDb};
use centinela_tests::{Mosquitto, free_port};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::{Packet, PubAckReason};
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use serde_json::json;

const FAC: &str = "bench-prison";

/// Whether payloads are signed (the default) or bare (`HOSTILE_UNSIGNED=1`).
static SIGNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// The sensors' counters, shared by every publisher of the run.
static SEALER: std::sync::LazyLock<Sealer> = std::sync::LazyLock::new(Sealer::default);

/// What goes on the wire for `msg` on `topic`.
fn payload(topic: &str, msg: Vec<u8>) -> Vec<u8> {
    if SIGNED.load(Ordering::Relaxed) {
        SEALER.seal(topic, &msg)
    } else {
        msg
    }
}

/// Every sensor the runs speak for.
fn fleet() -> Fleet {
    let mut names: Vec<String> = ["mix", "flood", "yard", "sleeper"]
        .into_iter()
        .map(str::to_string)
        .collect();
    for d in ["puback", "receipts"] {
        names.push(format!("victim-{d}"));
        for run in 0..3 {
            names.push(format!("kill-{d}-{run}"));
            names.push(format!("mq-{d}-{run}"));
        }
    }
    for a in 0..8 {
        for tag in ["srv", "q", "base"] {
            names.push(format!("{tag}-{a}"));
        }
    }
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    Fleet::new().with(FAC, &refs)
}

/// A publisher that counts an event delivered on its PUBACK (success or 0x10), as agents did.
struct PubackPublisher {
    client: AsyncClient,
    delivered: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl PubackPublisher {
    /// Logged in as the bench's sensor `sensor` (an older server's broker ignores the login).
    fn connect(port: u16, sensor: &str) -> Self {
        let mut o = centinela_tests::live::mqtt_options(port, FAC, sensor);
        o.set_keep_alive(Duration::from_secs(5));
        let (client, mut el) = AsyncClient::new(o, 4096);
        let delivered = Arc::new(AtomicU64::new(0));
        let d = delivered.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(a)))
                        if matches!(
                            a.reason,
                            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                        ) =>
                    {
                        d.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    // rumqttc reconnects on the next poll and sends again what had no PUBACK.
                    Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
                }
            }
        });
        Self {
            client,
            delivered,
            task,
        }
    }

    async fn publish(&self, topic: String, msg: Vec<u8>) {
        let p = payload(&topic, msg);
        let _ = self.client.publish(topic, QoS::AtLeastOnce, false, p).await;
    }

    fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }
}

impl Drop for PubackPublisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn topic(sensor: &str, kind: &str) -> String {
    format!("centinela/v1/{FAC}/{sensor}/{kind}")
}

fn gap_bytes(sensor: &str, n: u32) -> Vec<u8> {
    serde_json::to_vec(&gap(FAC, sensor, n)).expect("json")
}

async fn wait(limit: Duration, mut f: impl AsyncFnMut() -> bool) -> bool {
    let t0 = Instant::now();
    while t0.elapsed() < limit {
        if f().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

/// The read token of the server the current run started (`None` for builds from before
/// users: their API is open).
static TOKEN: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    let token = TOKEN.lock().map(|t| t.clone()).unwrap_or_default();
    let mut req = reqwest::Client::new().get(format!("http://{addr}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    match req.send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// An administrator and a read token in `db`, made with the server binary's own `user`
/// commands; `None` when the binary has none (a build from before users).
fn bench_token(bin: &Path, db: &Path) -> Option<String> {
    let run = |args: &[&str]| {
        std::process::Command::new(bin)
            .args(args)
            .arg("--db")
            .arg(db)
            .stderr(std::process::Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
    };
    run(&["user", "add", "bench-admin", "--role", "admin"])?;
    let out = run(&["user", "token", "bench-admin", "--label", "bench"])?;
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .find(|w| w.starts_with("cnt_"))
        .map(str::to_string)
}

/// How many gaps the server shows active for the bench facility.
async fn active_gaps(http: std::net::SocketAddr) -> usize {
    let active = http_get(http, &format!("/api/facilities/{FAC}/gaps")).await;
    serde_json::from_str::<serde_json::Value>(&active)
        .ok()
        .and_then(|v| v.as_array().map(Vec::len))
        .unwrap_or(0)
}

struct Ctx {
    bin: PathBuf,
    dir: tempfile::TempDir,
    delivery: Vec<String>,
}

impl Ctx {
    fn server(&self, name: &str, broker: Option<u16>) -> (ServerProcess, TestDb, u16) {
        let db = self.dir.path().join(format!("{name}.db"));
        let mqtt = free_port();
        let mut args = vec!["--db".to_string(), db.display().to_string()];
        fleet().write_broker(&self.dir.path().join("broker"));
        if SIGNED.load(Ordering::Relaxed) {
            let config = self.dir.path().join(format!("{name}.toml"));
            std::fs::write(&config, fleet().toml()).expect("configuration");
            args.extend(["--config".into(), config.display().to_string()]);
        }
        match broker {
            Some(p) => args.extend(["--broker".into(), format!("mqtt://127.0.0.1:{p}")]),
            None => args.extend(["--mqtt".into(), format!("127.0.0.1:{mqtt}")]),
        }
        if let Ok(mut t) = TOKEN.lock() {
            *t = bench_token(&self.bin, &db);
        }
        let s = ServerProcess::start(
            &self.bin,
            &args,
            &self.dir.path().join(format!("{name}.log")),
        );
        let db = TestDb {
            backend: Backend::Sqlite,
            db: central_server::db::Database::Sqlite(db),
            dir: self.dir.path().to_path_buf(),
        };
        (s, db, broker.unwrap_or(mqtt))
    }
}

fn malformed(n: u32) -> (String, Vec<u8>) {
    let mut v = serde_json::to_value(gap(FAC, "mix", 1_000_000 + n)).expect("json");
    match n % 4 {
        0 => (topic("mix", "gap"), b"{not json".to_vec()),
        1 => {
            v["facility_id"] = "another-prison".into();
            (topic("mix", "gap"), v.to_string().into_bytes())
        }
        2 => {
            v["schema"] = "centinela.jammer/1".into();
            (topic("mix", "gap"), v.to_string().into_bytes())
        }
        _ => (topic("mix", &format!("k{n}")), v.to_string().into_bytes()),
    }
}

/// 500 (valid, malformed) pairs through the embedded broker, then one valid event 10 s later.
async fn wedge(ctx: &Ctx) -> serde_json::Value {
    let (mut s, db, port) = ctx.server("wedge", None);
    let p = PubackPublisher::connect(port, "mix");
    for n in 0..500 {
        p.publish(topic("mix", "gap"), gap_bytes("mix", n)).await;
        let (t, b) = malformed(n);
        p.publish(t, b).await;
    }
    wait(Duration::from_secs(30), async || p.delivered() >= 1000).await;
    wait(Duration::from_secs(30), async || {
        stored_ids(&db, "gap").await.len() >= 500
    })
    .await;
    let stored = stored_ids(&db, "gap").await.len();
    tokio::time::sleep(Duration::from_secs(10)).await;
    p.publish(topic("mix", "gap"), gap_bytes("mix", 9999)).await;
    let later = wait(Duration::from_secs(20), async || {
        stored_ids(&db, "gap").await.len() > stored
    })
    .await;
    let log = s.log_text();
    s.stop();
    json!({"run": "wedge", "valid_sent": 500, "stored": stored, "later_event_stored": later,
           "ingest_reconnects_logged": log.matches("ingest connected").count().saturating_sub(1)})
}

/// 20,000 messages on odd topics (and 200 valid ones) through the embedded broker.
async fn flood(ctx: &Ctx) -> serde_json::Value {
    let (mut s, db, port) = ctx.server("flood", None);
    let before = http_get(s.http, "/metrics").await.len();
    let p = PubackPublisher::connect(port, "flood");
    for n in 0..20_000u32 {
        if n % 100 == 50 {
            p.publish(topic("flood", "gap"), gap_bytes("flood", n))
                .await;
        }
        p.publish(topic("flood", &format!("odd-{n}")), b"{}".to_vec())
            .await;
    }
    let t0 = Instant::now();
    let all = wait(Duration::from_secs(120), async || {
        stored_ids(&db, "gap").await.len() >= 200
    })
    .await;
    let stored = stored_ids(&db, "gap").await.len();
    let after = http_get(s.http, "/metrics").await.len();
    s.stop();
    json!({"run": "flood", "odd_messages": 20000, "valid_sent": 200, "valid_stored": stored,
           "all_stored": all, "seconds": t0.elapsed().as_secs_f64(),
           "metrics_bytes_before": before, "metrics_bytes_after": after})
}

/// An open gap, a forged close dated 2199, then an honest update: is the leak still shown?
async fn future(ctx: &Ctx) -> serde_json::Value {
    let (mut s, db, port) = ctx.server("future", None);
    let p = PubackPublisher::connect(port, "yard");
    let open = gap(FAC, "yard", 0);
    p.publish(
        topic("yard", "gap"),
        serde_json::to_vec(&open).expect("json"),
    )
    .await;
    let mut forged = serde_json::to_value(&open).expect("json");
    forged["state"] = "closed".into();
    forged["observed_at"] = "2199-01-01T00:00:00Z".into();
    forged["event_id"] = "01a1b2c3-0000-7000-8000-000000002199".into();
    p.publish(topic("yard", "gap"), forged.to_string().into_bytes())
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut honest = gap(FAC, "yard", 0);
    honest.state = protocol::GapState::Update;
    honest.event_id = protocol::event_id(honest.observed_at, b"honest update");
    p.publish(
        topic("yard", "gap"),
        serde_json::to_vec(&honest).expect("json"),
    )
    .await;
    wait(Duration::from_secs(10), async || {
        stored_ids(&db, "gap").await.len() >= 2
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let shown = active_gaps(s.http).await;
    s.stop();
    json!({"run": "future", "forged_close_stored": stored_ids(&db, "gap").await.contains(&"01a1b2c3-0000-7000-8000-000000002199".to_string()),
           "leak_still_shown": shown == 1})
}

/// A retained status announcing a heartbeat of 86,400 s, then silence: offline after 20 s?
async fn heartbeat(ctx: &Ctx) -> serde_json::Value {
    let (mut s, _db, port) = ctx.server("heartbeat", None);
    let p = PubackPublisher::connect(port, "sleeper");
    let now = time::OffsetDateTime::now_utc();
    let st = protocol::StatusEvent {
        schema: protocol::STATUS_SCHEMA.into(),
        event_id: protocol::event_id(now, b"sleeper"),
        facility_id: FAC.into(),
        sensor_id: "sleeper".into(),
        observed_at: now,
        state: protocol::SensorState::Online,
        connected_at: Some(now),
        zone: "patio".into(),
        position_m: None,
        agent_version: "bench".into(),
        heartbeat_s: 86_400.0,
        unreachable_bands: vec![],
        health: protocol::SensorHealth::default(),
        will_seq: None,
    };
    let t = topic("sleeper", "status");
    let body = payload(&t, serde_json::to_vec(&st).expect("json"));
    let _ = p.client.publish(t, QoS::AtLeastOnce, true, body).await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let v = http_get(s.http, &format!("/api/facilities/{FAC}/sensors")).await;
    s.stop();
    json!({"run": "heartbeat", "announced_heartbeat_s": 86400, "online_after_20_s_of_silence": v.contains("\"online\"")})
}

/// 200 events while a client holds the server's client id for 3 s.
async fn takeover(ctx: &Ctx, delivery: &str) -> serde_json::Value {
    let (mut s, db, port) = ctx.server(&format!("takeover-{delivery}"), None);
    let sensor = format!("victim-{delivery}");
    let mut feeder = (delivery == "receipts").then(|| {
        Feeder::start(
            &ctx.dir.path().join(&sensor),
            port,
            FAC,
            &sensor,
            Duration::from_secs(5),
        )
    });
    let p = PubackPublisher::connect(port, &sensor);
    let mut imposter = None;
    for n in 0..200u32 {
        if n == 50 {
            let mut o = MqttOptions::new("centinela-server", "127.0.0.1", port);
            o.set_keep_alive(Duration::from_secs(5));
            let (c, mut el) = AsyncClient::new(o, 64);
            let _ = c.subscribe("centinela/v1/+/+/+", QoS::AtLeastOnce).await;
            imposter = Some((
                c,
                tokio::spawn(async move {
                    loop {
                        if el.poll().await.is_err() {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }),
            ));
        }
        match feeder.as_mut() {
            Some(f) => f.push(n),
            None => {
                p.publish(topic(&sensor, "gap"), gap_bytes(&sensor, n))
                    .await
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    if let Some((_, t)) = imposter.take() {
        t.abort();
    }
    let done = match feeder.as_ref() {
        Some(f) => wait(Duration::from_secs(90), async || f.outbox.is_empty()).await,
        None => wait(Duration::from_secs(30), async || p.delivered() >= 200).await,
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stored = stored_ids(&db, "gap").await.len();
    if let Some(f) = feeder {
        let _ = f.finish().await;
    }
    s.stop();
    json!({"run": "takeover", "delivery": delivery, "sent": 200, "publisher_done": done, "stored": stored})
}

/// 3,000 events, the server killed (SIGKILL) after the last PUBACK, restarted: three runs.
async fn kill_embedded(ctx: &Ctx, delivery: &str) -> serde_json::Value {
    let (mut s, db, port) = ctx.server(&format!("kill-embedded-{delivery}"), None);
    let mut lost = Vec::new();
    for run in 0..3u32 {
        let sensor = format!("kill-{delivery}-{run}");
        let before = stored_ids(&db, "gap").await.len();
        if delivery == "receipts" {
            let mut f = Feeder::start(
                &ctx.dir.path().join(&sensor),
                port,
                FAC,
                &sensor,
                Duration::from_secs(5),
            );
            for n in 0..3000 {
                f.push(n);
            }
            wait(Duration::from_secs(60), async || {
                f.status.link_stats().acked >= 3000
            })
            .await;
            s.kill();
            s.restart();
            wait(Duration::from_secs(120), async || f.outbox.is_empty()).await;
            let _ = f.finish().await;
        } else {
            let p = PubackPublisher::connect(port, &sensor);
            for n in 0..3000 {
                p.publish(topic(&sensor, "gap"), gap_bytes(&sensor, n))
                    .await;
            }
            wait(Duration::from_secs(60), async || p.delivered() >= 3000).await;
            s.kill();
            s.restart();
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let got = stored_ids(&db, "gap").await.len() - before;
        lost.push(3000 - got.min(3000));
    }
    s.stop();
    json!({"run": "kill-embedded", "delivery": delivery, "events_per_run": 3000, "lost": lost})
}

/// 3,000 events streamed through Mosquitto (the shipped settings), Mosquitto killed (SIGKILL)
/// mid-stream and restarted: three runs.
async fn kill_mosquitto(ctx: &Ctx, delivery: &str) -> serde_json::Value {
    let Some(mut mq) = Mosquitto::start() else {
        return json!({"run": "kill-mosquitto", "skipped": "no mosquitto"});
    };
    let (mut s, db, _) = ctx.server(&format!("kill-mosquitto-{delivery}"), Some(mq.port));
    let mut lost = Vec::new();
    for run in 0..3u32 {
        let sensor = format!("mq-{delivery}-{run}");
        let before = stored_ids(&db, "gap").await.len();
        let kill_at = [300, 1500, 2700][run as usize];
        if delivery == "receipts" {
            let mut f = Feeder::start(
                &ctx.dir.path().join(&sensor),
                mq.port,
                FAC,
                &sensor,
                Duration::from_secs(5),
            );
            for n in 0..3000u32 {
                if n == kill_at {
                    mq.kill();
                    mq.restart();
                }
                f.push(n);
                if n % 30 == 29 {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
            wait(Duration::from_secs(180), async || f.outbox.is_empty()).await;
            let _ = f.finish().await;
        } else {
            let p = PubackPublisher::connect(mq.port, &sensor);
            for n in 0..3000u32 {
                if n == kill_at {
                    mq.kill();
                    mq.restart();
                }
                p.publish(topic(&sensor, "gap"), gap_bytes(&sensor, n))
                    .await;
                if n % 30 == 29 {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                }
            }
            wait(Duration::from_secs(60), async || p.delivered() >= 3000).await;
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        let got = stored_ids(&db, "gap").await.len() - before;
        lost.push(3000 - got.min(3000));
    }
    s.stop();
    json!({"run": "kill-mosquitto", "delivery": delivery, "events_per_run": 3000, "lost": lost})
}

/// `agents` publishers (`{tag}-{n}`) each publishing `per` gap events as fast as QoS 1 allows;
/// returns once all are handed to the clients, with the publishers and the start time.
async fn publish_many(
    port: u16,
    tag: &str,
    agents: u32,
    per: u32,
) -> (Vec<PubackPublisher>, Instant) {
    let pubs: Vec<PubackPublisher> = (0..agents)
        .map(|a| PubackPublisher::connect(port, &format!("{tag}-{a}")))
        .collect();
    // Sealed before the clock starts: the rate is the broker's and the server's, not the
    // publishers' signing.
    let payloads: Vec<Vec<Vec<u8>>> = (0..agents)
        .map(|a| {
            let sensor = format!("{tag}-{a}");
            let t = topic(&sensor, "gap");
            (0..per)
                .map(|n| payload(&t, gap_bytes(&sensor, n)))
                .collect()
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for ((a, p), payloads) in pubs.iter().enumerate().zip(payloads) {
        let c = p.client.clone();
        let t = topic(&format!("{tag}-{a}"), "gap");
        tasks.push(tokio::spawn(async move {
            for p in payloads {
                let _ = c.publish(t.clone(), QoS::AtLeastOnce, false, p).await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    (pubs, t0)
}

/// Ingest rate through Mosquitto: 8 publishers × 2,500 events into a plain subscriber (the
/// broker alone, the base) and into the server.
async fn load(ctx: &Ctx) -> serde_json::Value {
    let Some(mq) = Mosquitto::start() else {
        return json!({"run": "load", "skipped": "no mosquitto"});
    };
    let (agents, per) = (8u32, 2500u32);
    let total = u64::from(agents * per);
    // Base: the broker alone, into one QoS 1 subscriber.
    let got = Arc::new(AtomicU64::new(0));
    let mut o = MqttOptions::new("base-sub", "127.0.0.1", mq.port);
    o.set_keep_alive(Duration::from_secs(10));
    let (c, mut el) = AsyncClient::new(o, 1024);
    c.subscribe("centinela/v1/+/+/+", QoS::AtLeastOnce)
        .await
        .expect("sub");
    let g = got.clone();
    let sub = tokio::spawn(async move {
        loop {
            if let Ok(Event::Incoming(Packet::Publish(_))) = el.poll().await {
                g.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_pubs, t0) = publish_many(mq.port, "base", agents, per).await;
    wait(Duration::from_secs(120), async || {
        got.load(Ordering::Relaxed) >= total
    })
    .await;
    let base = total as f64 / t0.elapsed().as_secs_f64();
    sub.abort();
    drop(c);
    let (mut s, db, _) = ctx.server("load", Some(mq.port));
    let (_pubs, t0) = publish_many(mq.port, "srv", agents, per).await;
    wait(Duration::from_secs(300), async || {
        count_in_db(&db, "gap").await >= total
    })
    .await;
    let rate = total as f64 / t0.elapsed().as_secs_f64();
    let m = http_get(s.http, "/metrics").await;
    let metric = |name: &str| {
        m.lines()
            .find_map(|l| {
                l.strip_prefix(name)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0)
    };
    let store_s = metric("centinela_ingest_batch_seconds_total");
    let batches = metric("centinela_ingest_batches_total");
    s.stop();
    json!({"run": "load", "events": total, "broker_only_events_per_s": base.round(),
           "server_events_per_s": rate.round(), "ratio": (rate / base * 1000.0).round() / 1000.0,
           "store_us_per_event": (store_s * 1e6 / total as f64).round(),
           "events_per_batch": (total as f64 / batches.max(1.0)).round()})
}

/// What Mosquitto's persistence costs while it queues for a stopped server: 20,000 events
/// (`HOSTILE_QUEUE_EVENTS`)
/// published (8 publishers) while the server's session is offline, then drained when it comes
/// back. Run with `CENTINELA_MOSQUITTO_EXTRA="autosave_interval 1800"` to weigh the shipped
/// one-second save against Mosquitto's default.
async fn queue(ctx: &Ctx) -> serde_json::Value {
    let Some(mq) = Mosquitto::start() else {
        return json!({"run": "queue", "skipped": "no mosquitto"});
    };
    let (mut s, db, _) = ctx.server("queue", Some(mq.port));
    s.stop();
    let agents = 8u32;
    let per: u32 = std::env::var("HOSTILE_QUEUE_EVENTS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .map_or(2500, |n| n / agents);
    let total = u64::from(agents * per);
    let (pubs, t0) = publish_many(mq.port, "q", agents, per).await;
    wait(Duration::from_secs(300), async || {
        pubs.iter().map(PubackPublisher::delivered).sum::<u64>() >= total
    })
    .await;
    let queued_rate = total as f64 / t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    s.restart();
    wait(Duration::from_secs(300), async || {
        count_in_db(&db, "gap").await >= total
    })
    .await;
    let drain = t1.elapsed().as_secs_f64();
    s.stop();
    json!({"run": "queue", "events": total,
           "mosquitto_extra": std::env::var("CENTINELA_MOSQUITTO_EXTRA").unwrap_or_default(),
           "queued_events_per_s": queued_rate.round(), "drain_s": (drain * 100.0).round() / 100.0})
}

/// Forgeries by an anonymous client: the honest sensor opens a gap; the forger, without its
/// key, sends a `closed` for it (the all-clear an insider wants) and a critical gap for a sensor
/// and facility that exist nowhere. Which of them does the server believe?
async fn forge(ctx: &Ctx) -> serde_json::Value {
    let (mut s, db, port) = ctx.server("forge", None);
    let honest = PubackPublisher::connect(port, "yard");
    let open = gap(FAC, "yard", 0);
    honest
        .publish(
            topic("yard", "gap"),
            serde_json::to_vec(&open).expect("json"),
        )
        .await;
    wait(Duration::from_secs(10), async || {
        !stored_ids(&db, "gap").await.is_empty()
    })
    .await;
    let mut closed = open.clone();
    closed.state = protocol::GapState::Closed;
    closed.observed_at = time::OffsetDateTime::now_utc();
    closed.event_id = protocol::event_id(closed.observed_at, b"forged close");
    let mut ghost = gap("nowhere", "ghost", 0);
    ghost.event_id = protocol::event_id(ghost.observed_at, b"ghost");
    let mut o = MqttOptions::new("anonymous", "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    let (c, mut el) = AsyncClient::new(o, 16);
    let task = tokio::spawn(async move { while el.poll().await.is_ok() {} });
    for (t, m) in [
        (topic("yard", "gap"), &closed),
        ("centinela/v1/nowhere/ghost/gap".to_string(), &ghost),
    ] {
        let _ = c
            .publish(
                t,
                QoS::AtLeastOnce,
                false,
                serde_json::to_vec(m).expect("json"),
            )
            .await;
    }
    // And an insider: a registered sensor's own login (not the yard's key), unsigned.
    let insider = PubackPublisher::connect(port, "mix");
    let mut closed2 = closed.clone();
    closed2.event_id = protocol::event_id(closed2.observed_at, b"insider close");
    let _ = insider
        .client
        .publish(
            topic("yard", "gap"),
            QoS::AtLeastOnce,
            false,
            serde_json::to_vec(&closed2).expect("json"),
        )
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let anonymous_connected = !task.is_finished();
    task.abort();
    let ids = stored_ids(&db, "gap").await;
    let shown = active_gaps(s.http).await;
    s.stop();
    json!({"run": "forge", "anonymous_client_stayed_connected": anonymous_connected,
           "forged_close_stored": ids.contains(&closed.event_id.to_string()),
           "insider_close_stored": ids.contains(&closed2.event_id.to_string()),
           "honest_leak_still_shown": shown == 1,
           "ghost_sensor_stored": ids.contains(&ghost.event_id.to_string())})
}

/// What signing and checking cost per message: the Ed25519 signature alone, the agent's seal
/// (the counter written and synced to disk first), and the server's registry and signature
/// check, each over a typical gap event.
fn sign() -> serde_json::Value {
    let msg = gap_bytes("mix", 1);
    let t = topic("mix", "gap");
    let key = test_key(FAC, "mix");
    let n = 5000u32;
    let t0 = Instant::now();
    let mut last = Vec::new();
    for i in 0..n {
        last = key.seal(&t, u64::from(i) + 1, &msg).expect("seal");
    }
    let sign_us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let dir = tempfile::tempdir().expect("dir");
    let signer = centinela_tests::live::test_signer(dir.path(), FAC, "mix");
    let m = 300u32;
    let t0 = Instant::now();
    for _ in 0..m {
        let _ = signer.seal(&t, &msg).expect("seal");
    }
    let seal_us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(m);
    let cfg = central_server::config::ServerConfig {
        server: central_server::config::ServerSection::default(),
        facilities: fleet().facilities(),
    };
    let registry = central_server::trust::Registry::from_config(&cfg);
    let t0 = Instant::now();
    for _ in 0..n {
        registry.check(&t, FAC, "mix", &last).expect("verifies");
    }
    let check_us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    let t0 = Instant::now();
    for _ in 0..n {
        let _ = protocol::decode(&t, &msg).expect("decodes");
    }
    let decode_us = t0.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    json!({"run": "sign", "message_bytes": msg.len(), "envelope_bytes": last.len(),
           "sign_us": (sign_us * 10.0).round() / 10.0,
           "agent_seal_with_synced_counter_us": seal_us.round(),
           "server_check_us": (check_us * 10.0).round() / 10.0,
           "server_decode_us": (decode_us * 10.0).round() / 10.0})
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("hostile runs: `cargo bench -p centinela-tests --bench hostile` (see its doc)");
        return;
    }
    let bin = std::env::var_os("CENTINELA_SERVER_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/central-server"),
        PathBuf::from,
    );
    assert!(
        bin.is_file(),
        "no server binary at {} (build it with `cargo build --release -p central-server` or set CENTINELA_SERVER_BIN)",
        bin.display()
    );
    if std::env::var("HOSTILE_UNSIGNED").is_ok_and(|v| v == "1") {
        SIGNED.store(false, Ordering::Relaxed);
    }
    let runs = std::env::var("HOSTILE_RUNS").unwrap_or_else(|_| {
        "sign,forge,wedge,flood,future,heartbeat,takeover,kill-embedded,kill-mosquitto,load,queue".into()
    });
    let ctx = Ctx {
        bin,
        dir: tempfile::tempdir().expect("dir"),
        delivery: std::env::var("HOSTILE_DELIVERY")
            .unwrap_or_else(|_| "puback,receipts".into())
            .split(',')
            .map(str::to_string)
            .collect(),
    };
    for run in runs.split(',') {
        eprintln!("== {run}");
        let out: Vec<serde_json::Value> = match run {
            "sign" => vec![sign()],
            "forge" => vec![forge(&ctx).await],
            "wedge" => vec![wedge(&ctx).await],
            "flood" => vec![flood(&ctx).await],
            "future" => vec![future(&ctx).await],
            "heartbeat" => vec![heartbeat(&ctx).await],
            "takeover" => {
                let mut v = Vec::new();
                for d in &ctx.delivery {
                    v.push(takeover(&ctx, d).await);
                }
                v
            }
            "kill-embedded" => {
                let mut v = Vec::new();
                for d in &ctx.delivery {
                    v.push(kill_embedded(&ctx, d).await);
                }
                v
            }
            "kill-mosquitto" => {
                let mut v = Vec::new();
                for d in &ctx.delivery {
                    v.push(kill_mosquitto(&ctx, d).await);
                }
                v
            }
            "load" => vec![load(&ctx).await],
            "queue" => vec![queue(&ctx).await],
            other => vec![json!({"run": other, "error": "unknown run"})],
        };
        for o in out {
            println!("{o}");
        }
    }
}
