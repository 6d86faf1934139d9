//! Helpers for scenarios over a running system: synthetic gap events, a simulated agent's link
//! (the real outbox and publisher), the `central-server` binary as a child process that a test
//! can kill, and reading what the SQLite file holds.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::testdb::TestDb;
use central_server::Server;
use central_server::config::{Facility, SensorSite, ServerConfig, ServerSection, Zone};
use protocol::signed::{PublicKey, SensorKey};
use protocol::{Detector, GAP_SCHEMA, GapEvent, GapState, Kind, Severity, Technology, event_id};
use sensor_agent::daemon::outbox::{Entry, Outbox};
use sensor_agent::daemon::publisher::{self, LinkOptions, LinkStats, StatusSource};
use sensor_agent::daemon::sequence::Sequence;
use sensor_agent::daemon::signer::Signer;
use time::OffsetDateTime;
use tokio::sync::{Notify, mpsc, watch};

/// Polls `f` every 100 ms until it is true.
///
/// # Panics
/// After `timeout`, naming `what`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}

/// The key of a test sensor: derived from its names, so a test, its server's registry and a
/// forger's "stolen key" can all be made from them.
#[must_use]
pub fn test_key(facility: &str, sensor: &str) -> SensorKey {
    let hex =
        protocol::payload_sha256(format!("centinela test key\n{facility}\n{sensor}").as_bytes());
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or_default();
    }
    SensorKey::from_seed(&seed)
}

/// The receipt key of every test server (written into its data directory by
/// [`Fleet::write_broker`], where the server finds it), so that test agents can pin its public
/// half before the server starts.
#[must_use]
pub fn test_receipt_key() -> SensorKey {
    SensorKey::from_seed(&[0x52; 32])
}

/// Writes [`test_receipt_key`] as the server's receipt key in `data_dir` (replacing one that
/// `broker-config` may have made there).
///
/// # Panics
/// When it cannot be written.
pub fn write_receipt_key(data_dir: &Path) {
    let path = data_dir.join(central_server::credentials::RECEIPT_KEY_FILE);
    if let Some(d) = path.parent() {
        central_server::credentials::private_dir(d).expect("keys directory");
    }
    let pem = test_receipt_key().to_pkcs8_pem().expect("pem");
    central_server::credentials::write_private(&path, pem.as_bytes()).expect("receipt key");
}

/// A test sensor's broker password (the test fleet's users are written with it).
#[must_use]
pub fn test_password(facility: &str, sensor: &str) -> protocol::Secret {
    protocol::Secret::new(format!("test-password-{facility}-{sensor}"))
}

/// A test sensor's broker login: user, password and the client id the embedded broker lets it
/// use.
#[must_use]
pub fn login(facility: &str, sensor: &str) -> (String, protocol::Secret, String) {
    (
        central_server::credentials::sensor_user(facility, sensor),
        test_password(facility, sensor),
        central_server::credentials::sensor_client_id(facility, sensor),
    )
}

/// MQTT options of a raw client logged in as a test sensor.
#[must_use]
pub fn mqtt_options(port: u16, facility: &str, sensor: &str) -> rumqttc::v5::MqttOptions {
    let (user, password, id) = login(facility, sensor);
    let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
    o.set_credentials(user, password.expose());
    o
}

/// A test sensor's signer: its [`test_key`] and a message counter in `dir`.
///
/// # Panics
/// When the counter cannot be opened.
#[must_use]
pub fn test_signer(dir: &Path, facility: &str, sensor: &str) -> Signer {
    std::fs::create_dir_all(dir).expect("counter directory");
    Signer::new(
        test_key(facility, sensor),
        Sequence::open(dir).expect("counter"),
    )
}

/// The sensors a test server registers: the demo facility (its sensors with their test keys
/// unless given other keys) and, for any other facility named, a square facility with the demo's
/// zones holding its sensors.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    sensors: Vec<(String, String, String, PublicKey, bool)>,
}

impl Fleet {
    /// An empty fleet (the demo facility without keys).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Test sensors of `facility`, each in zone `patio` with its [`test_key`].
    #[must_use]
    pub fn with(mut self, facility: &str, sensors: &[&str]) -> Self {
        for s in sensors {
            self = self.key(facility, s, "patio", test_key(facility, s).public());
        }
        self
    }

    /// A sensor with the given zone and key.
    #[must_use]
    pub fn key(mut self, facility: &str, sensor: &str, zone: &str, key: PublicKey) -> Self {
        self.sensors
            .push((facility.into(), sensor.into(), zone.into(), key, false));
        self
    }

    /// A revoked sensor (its test key).
    #[must_use]
    pub fn revoked(mut self, facility: &str, sensor: &str) -> Self {
        let k = test_key(facility, sensor).public();
        self.sensors
            .push((facility.into(), sensor.into(), "patio".into(), k, true));
        self
    }

    /// Writes the fleet's broker users (with their [`test_password`]; users already there are
    /// kept) into the password file of `broker_dir`, where the embedded broker reads them, and
    /// the test receipt key ([`test_receipt_key`]) into the data directory above it.
    ///
    /// # Panics
    /// When the file cannot be written.
    pub fn write_broker(&self, broker_dir: &Path) {
        use central_server::credentials::{
            PASSWD_FILE, PasswordFile, hash, private_dir, sensor_user,
        };
        private_dir(broker_dir).expect("broker directory");
        if let Some(data_dir) = broker_dir.parent() {
            write_receipt_key(data_dir);
        }
        let path = broker_dir.join(PASSWD_FILE);
        let mut f = PasswordFile::load(&path).expect("password file");
        for (facility, sensor, ..) in &self.sensors {
            let user = sensor_user(facility, sensor);
            f.users
                .entry(user)
                .or_insert_with(|| hash(test_password(facility, sensor).expose()).expect("hash"));
        }
        f.save(&path).expect("password file");
    }

    /// The facilities of the configuration.
    #[must_use]
    pub fn facilities(&self) -> Vec<Facility> {
        let demo = centinela_demo::facility();
        let mut out = vec![demo.clone()];
        for (facility, sensor, zone, key, revoked) in &self.sensors {
            let i = match out.iter().position(|f| f.id == *facility) {
                Some(i) => i,
                None => {
                    out.push(Facility {
                        id: facility.clone(),
                        name: format!("{facility} (test)"),
                        sensors: Vec::new(),
                        jammers: Vec::new(),
                        ..demo.clone()
                    });
                    out.len() - 1
                }
            };
            let f = &mut out[i];
            f.sensors.retain(|s| s.id != *sensor);
            f.sensors.push(SensorSite {
                id: sensor.clone(),
                zone: zone.clone(),
                position: [120.0, 90.0],
                public_key: Some(*key),
                revoked: *revoked,
            });
        }
        out
    }

    /// A server configuration file's text: these facilities, default settings.
    ///
    /// # Panics
    /// Never in practice (serialising a configuration).
    #[must_use]
    pub fn toml(&self) -> String {
        // The facilities only: the server's defaults are left out, so that builds that know
        // fewer settings (a bench against an older binary) read it too.
        let mut t = toml::Table::new();
        t.insert(
            "facility".into(),
            toml::Value::try_from(self.facilities()).expect("facilities as TOML"),
        );
        toml::to_string(&t).expect("configuration as TOML")
    }
}

/// The demo facility's zones (tests' facilities copy them).
#[must_use]
pub fn zones() -> Vec<Zone> {
    centinela_demo::facility().zones
}

/// Starts a server in this process on the test database `db`, the sensors of `fleet`
/// registered, HTTP on a free loopback port, ingesting from Mosquitto on `broker_port` or from
/// its own embedded broker (on a free port) when `None`.
///
/// # Panics
/// When it does not start.
pub async fn start_server(
    broker_port: Option<u16>,
    db: &TestDb,
    client_id: &str,
    fleet: &Fleet,
) -> Server {
    start_configured(server_config(broker_port, db, client_id, fleet)).await
}

/// The configuration [`start_server`] uses: the broker on `broker_port` (or the embedded one),
/// the database `db`, the registry of `fleet` (whose broker files it writes in the test
/// database's directory, the server's data directory).
#[must_use]
pub fn server_config(
    broker_port: Option<u16>,
    db: &TestDb,
    client_id: &str,
    fleet: &Fleet,
) -> ServerConfig {
    let loopback0 = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    fleet.write_broker(&db.dir.join("broker"));
    ServerConfig {
        server: ServerSection {
            broker: broker_port.map(|p| format!("mqtt://127.0.0.1:{p}")),
            embedded_broker: loopback0,
            client_id: client_id.into(),
            db: db.db.clone(),
            data_dir: Some(db.dir.clone()),
            http: loopback0,
            ..ServerSection::default()
        },
        facilities: fleet.facilities(),
    }
}

/// Starts a server and waits until its ingest session is connected.
///
/// # Panics
/// When it does not start, or its session does not connect within 10 s.
pub async fn start_configured(cfg: ServerConfig) -> Server {
    let server = Server::start(cfg).await.expect("server starts");
    wait_for("the server's session", Duration::from_secs(10), || async {
        server.metrics.connected()
    })
    .await;
    server
}

/// An admin's read token for `server` (user `test-admin`, made at the first call for that
/// server).
///
/// # Panics
/// When the user or the token cannot be made.
pub async fn admin_token(server: &Server) -> String {
    use central_server::auth::{Role, Scope, Users};
    static TOKENS: std::sync::LazyLock<
        tokio::sync::Mutex<std::collections::HashMap<(std::net::SocketAddr, PathBuf), String>>,
    > = std::sync::LazyLock::new(Default::default);
    let mut tokens = TOKENS.lock().await;
    let key = (server.http_addr, PathBuf::from(server.url()));
    if let Some(t) = tokens.get(&key) {
        // A server that stopped may have left its address to another one, on another database.
        let known = client_with(t)
            .get(format!("http://{}/api/me", server.http_addr))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if known {
            return t.clone();
        }
    }
    let users = Users::new(&server.store);
    if !users.exists("test-admin").await.expect("users") {
        users
            .add(
                "test-admin",
                Role::Admin,
                &[],
                &protocol::Secret::new("test-admin-password"),
                "test",
            )
            .await
            .expect("test admin");
    }
    let (_, t) = users
        .add_token("test-admin", "test", Scope::Read, "test")
        .await
        .expect("token");
    tokens.insert(key, t.expose().to_string());
    t.expose().to_string()
}

/// An HTTP client that sends `token` with every request.
///
/// # Panics
/// When the client cannot be built.
#[must_use]
pub fn client_with(token: &str) -> reqwest::Client {
    let mut h = reqwest::header::HeaderMap::new();
    h.insert(
        reqwest::header::AUTHORIZATION,
        format!("Bearer {token}").parse().expect("header"),
    );
    reqwest::Client::builder()
        .default_headers(h)
        .build()
        .expect("client")
}

/// An HTTP client of `server`'s API, signed in as its test admin.
pub async fn api(server: &Server) -> reqwest::Client {
    client_with(&admin_token(server).await)
}

/// GET `path` of a server's API as JSON (as its test admin).
///
/// # Panics
/// When the request fails or the answer is not JSON.
pub async fn get(server: &Server, path: &str) -> serde_json::Value {
    let url = format!("http://{}{path}", server.http_addr);
    api(server)
        .await
        .get(&url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("{url}: {e}"))
}

/// Events of a kind in a server's store.
///
/// # Panics
/// On a database failure.
pub async fn stored_count(server: &Server, kind: &str) -> i64 {
    server
        .store
        .event_counts()
        .await
        .expect("counts")
        .into_iter()
        .find(|(k, _)| k == kind)
        .map_or(0, |(_, n)| n)
}

/// A counter's value in a Prometheus exposition (`name` with its `_total` suffix, no labels).
#[must_use]
pub fn counter(exposition: &str, name: &str) -> u64 {
    exposition
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// A synthetic gap event of `sensor` at `facility`, numbered `n` (seven gap keys in turn).
#[must_use]
pub fn gap(facility: &str, sensor: &str, n: u32) -> GapEvent {
    let at = OffsetDateTime::now_utc();
    GapEvent {
        schema: GAP_SCHEMA.into(),
        event_id: event_id(at, format!("{facility} {sensor} test gap {n}").as_bytes()),
        facility_id: facility.into(),
        sensor_id: sensor.into(),
        observed_at: at,
        gap_key: format!("n78/nr/energy{}", n % 7),
        state: if n < 7 {
            GapState::Open
        } else {
            GapState::Update
        },
        zone: "patio".into(),
        band: "n78".into(),
        technology: Technology::Nr,
        center_hz: 3.5e9,
        bandwidth_hz: 38e6,
        cell: None,
        power_dbm: Some(-60.0),
        floor_dbm: Some(-90.0),
        power_dbfs: -50.0,
        floor_dbfs: -80.0,
        margin_db: 20.0 + f64::from(n % 5),
        severity: Severity::Critical,
        detector: Detector::Energy,
        evidence: None,
    }
}

/// A simulated agent's link: the real outbox and publisher, fed with synthetic gap events.
#[derive(Debug)]
pub struct Feeder {
    /// The outbox.
    pub outbox: Arc<Outbox>,
    /// What the status messages say (and the link's live counters).
    pub status: Arc<StatusSource>,
    wake: Arc<Notify>,
    stop: watch::Sender<bool>,
    link: tokio::task::JoinHandle<LinkStats>,
    /// Event ids pushed, in order.
    pub ids: Vec<uuid::Uuid>,
    /// Topics and payloads pushed, in order (the exact bytes sent).
    pub sent: Vec<(String, String)>,
    facility: String,
    sensor: String,
    _qos0: mpsc::Sender<(String, Vec<u8>)>,
}

impl Feeder {
    /// Starts the link of `facility`/`sensor` to the broker on loopback `port`, with its outbox
    /// in `dir` and receipts awaited for `receipt_timeout` before a resend.
    ///
    /// # Panics
    /// When the outbox cannot be opened.
    #[must_use]
    pub fn start(
        dir: &Path,
        port: u16,
        facility: &str,
        sensor: &str,
        receipt_timeout: Duration,
    ) -> Self {
        let signer = test_signer(&dir.join("state"), facility, sensor);
        Self::start_with(dir, port, facility, sensor, receipt_timeout, signer)
    }

    /// As [`Feeder::start`], signing with `signer`.
    ///
    /// # Panics
    /// When the outbox cannot be opened.
    #[must_use]
    pub fn start_with(
        dir: &Path,
        port: u16,
        facility: &str,
        sensor: &str,
        receipt_timeout: Duration,
        signer: Signer,
    ) -> Self {
        let outbox = Arc::new(Outbox::open(dir, 100_000).expect("outbox"));
        let signer = Arc::new(signer);
        let status = Arc::new(
            StatusSource::new(
                sensor_agent::config::Identity {
                    facility_id: facility.into(),
                    sensor_id: sensor.into(),
                    zone: "patio".into(),
                },
                Some([120.0, 90.0]),
                Vec::new(),
                2.0,
                outbox.clone(),
                signer.clone(),
            )
            .expect("status source"),
        );
        let wake = Arc::new(Notify::new());
        let (stop, rx) = watch::channel(false);
        let (qos0, qrx) = mpsc::channel(4);
        let link = tokio::spawn(publisher::run(
            LinkOptions {
                host: "127.0.0.1".into(),
                port,
                credentials: {
                    let (user, password, _) = login(facility, sensor);
                    Some((user, password))
                },
                tls: None,
                receipt_timeout,
                server_keys: vec![test_receipt_key().public()],
            },
            status.clone(),
            outbox.clone(),
            wake.clone(),
            qrx,
            rx,
        ));
        Self {
            outbox,
            status,
            wake,
            stop,
            link,
            ids: Vec::new(),
            sent: Vec::new(),
            facility: facility.into(),
            sensor: sensor.into(),
            _qos0: qos0,
        }
    }

    /// Writes event `n` to the outbox and wakes the link.
    ///
    /// # Panics
    /// When the outbox cannot be written.
    pub fn push(&mut self, n: u32) {
        let g = gap(&self.facility, &self.sensor, n);
        self.ids.push(g.event_id);
        let topic = protocol::topic(&self.facility, &self.sensor, Kind::Gap).expect("topic");
        let payload = self
            .status
            .signer
            .seal_text(&topic, &serde_json::to_string(&g).expect("json"))
            .expect("seal");
        let e = Entry { topic, payload };
        self.outbox
            .push(&e, g.state == GapState::Update)
            .expect("push");
        self.sent.push((e.topic, e.payload));
        self.wake.notify_one();
    }

    /// Pushes events `range`, 5 ms apart.
    pub async fn push_paced(&mut self, range: std::ops::Range<u32>) {
        for n in range {
            self.push(n);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Stops the link; its counters and the ids pushed.
    ///
    /// # Panics
    /// When the link task panicked.
    pub async fn finish(self) -> (LinkStats, Vec<uuid::Uuid>) {
        let _ = self.stop.send(true);
        (self.link.await.expect("link"), self.ids)
    }
}

/// Checks that `stored` holds each of `sent` exactly once and nothing else.
///
/// # Panics
/// Naming how many are missing or doubled.
pub fn assert_exactly_once(stored: &[String], sent: &[uuid::Uuid], what: &str) {
    let mut s = stored.to_vec();
    s.sort();
    let before = s.len();
    s.dedup();
    assert_eq!(before, s.len(), "{what}: an event is stored twice");
    let mut want: Vec<String> = sent.iter().map(ToString::to_string).collect();
    want.sort();
    want.dedup();
    let missing = want.iter().filter(|w| s.binary_search(w).is_err()).count();
    assert_eq!(
        missing,
        0,
        "{what}: {missing} of {} events were lost (stored {})",
        want.len(),
        s.len()
    );
    assert_eq!(s, want, "{what}: the stored events are the sent ones");
}

/// The `central-server` binary running `serve` as a child process, which a test can stop,
/// freeze or kill.
#[derive(Debug)]
pub struct ServerProcess {
    bin: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
    log: PathBuf,
    /// HTTP address.
    pub http: std::net::SocketAddr,
}

impl ServerProcess {
    /// Starts `bin serve` with `args` plus `--http 127.0.0.1:PORT`, logging to `log`, and
    /// waits until `/api/health` says the broker session is up.
    ///
    /// # Panics
    /// When it does not come up in 30 s.
    #[must_use]
    pub fn start(bin: &Path, args: &[String], log: &Path) -> Self {
        let http = std::net::SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        let mut s = Self {
            bin: bin.to_path_buf(),
            args: args.to_vec(),
            child: None,
            log: log.to_path_buf(),
            http,
        };
        s.restart();
        s
    }

    /// Starts it again with the same arguments and waits until it is ready.
    ///
    /// # Panics
    /// When it does not come up in 30 s.
    pub fn restart(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = Command::new(&self.bin)
            .arg("serve")
            .args(&self.args)
            .arg("--http")
            .arg(self.http.to_string())
            .env("RUST_LOG", "info,rumqttd=off,rumqttc=warn,sqlx=warn")
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("spawn central-server");
        self.child = Some(child);
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(30) {
            if self.healthy() {
                return;
            }
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(st)) = c.try_wait()
            {
                panic!("central-server exited with {st}: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("central-server did not become ready: {}", self.log_text());
    }

    /// Whether `/api/health` answers with the broker session up.
    #[must_use]
    pub fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) =
            std::net::TcpStream::connect_timeout(&self.http, Duration::from_millis(200))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /api/health HTTP/1.0\r\nHost: x\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        body.contains("\"broker_connected\":true")
    }

    /// Sends `signal` (`KILL`, `TERM`, `STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .arg(format!("-{signal}"))
                .arg(c.id().to_string())
                .status();
        }
    }

    /// SIGKILL, and waits for it to be gone.
    pub fn kill(&mut self) {
        crate::end_child(&mut self.child, false);
    }

    /// SIGTERM (a clean stop), and waits.
    pub fn stop(&mut self) {
        crate::end_child(&mut self.child, true);
    }

    /// What it logged.
    #[must_use]
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// How many events of the given kind a server's database holds (read while it runs).
///
/// # Panics
/// When the database cannot be read.
pub async fn count_in_db(db: &TestDb, kind: &str) -> u64 {
    let pool = db.reader().await;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = $1")
        .bind(kind)
        .fetch_one(&pool)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", db.db));
    pool.close().await;
    n.max(0) as u64
}

/// Event ids of the given kind stored in a server's database (read while it runs).
///
/// # Panics
/// When the database cannot be read.
pub async fn stored_ids(db: &TestDb, kind: &str) -> Vec<String> {
    let pool = db.reader().await;
    let rows: Vec<String> = sqlx::query_scalar("SELECT event_id FROM events WHERE kind = $1")
        .bind(kind)
        .fetch_all(&pool)
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", db.db));
    pool.close().await;
    rows
}

/// Seals messages as test sensors would: each sensor's [`test_key`] and its own counter (in
/// memory), the sensor read from the topic's fourth level. A message that cannot be sealed (not
/// a JSON object, too large) goes as it is: an unsigned message.
#[derive(Debug, Default)]
pub struct Sealer {
    seqs: std::sync::Mutex<std::collections::HashMap<(String, String), u64>>,
}

impl Sealer {
    /// The payload to publish on `topic` for `msg`.
    #[must_use]
    pub fn seal(&self, topic: &str, msg: &[u8]) -> Vec<u8> {
        let levels: Vec<&str> = topic.split('/').collect();
        let (Some(f), Some(s)) = (levels.get(2), levels.get(3)) else {
            return msg.to_vec();
        };
        if protocol::signed::sealable(topic, msg).is_err() {
            return msg.to_vec();
        }
        let mut seqs = self.seqs.lock().expect("counters");
        let n = seqs
            .entry(((*f).to_string(), (*s).to_string()))
            .or_insert(0);
        *n += 1;
        test_key(f, s).seal(topic, *n, msg).expect("sealable")
    }

    /// Moves a sensor's counter on by `n` without sending (a deliberate gap).
    pub fn skip(&self, facility: &str, sensor: &str, n: u64) {
        *self
            .seqs
            .lock()
            .expect("counters")
            .entry((facility.to_string(), sensor.to_string()))
            .or_insert(0) += n;
    }
}

/// A webhook on a free loopback port that keeps every JSON body posted to it: its URL and what
/// it received.
///
/// # Panics
/// When no port can be bound.
pub async fn webhook() -> (String, Arc<std::sync::Mutex<Vec<serde_json::Value>>>) {
    use axum::routing::post;
    let received: Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/hook",
        post(move |axum::Json(v): axum::Json<serde_json::Value>| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("lock").push(v);
                "ok"
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(l, app).await });
    (format!("http://{addr}/hook"), received)
}
