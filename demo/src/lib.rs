//! `centinela-demo`: the whole system on one machine. The embedded broker, the server and
//! four simulated sensors of a demo prison, each a full agent (simulated radio seen from its
//! position, scanning thread, outbox, MQTT link) in this process.
//!
//! The demo prison: two jammers (Pabellones covering B28, B5/GSM850, B2/B25, B4/B66 and
//! 2.6 GHz; a failing perimeter jammer on B28) and n78 left uncovered on purpose, two concrete
//! cell blocks that shield their inmates from it, operators' cells outside at known positions. [`truth`] computes from
//! the same channel model which zones leak, so the map can be checked against it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use hardware::sim::{Scene, SimCell};
use sensor_agent::daemon::config::{
    AgentConfig, MqttSection, OutboxSection, ScanSection, SensorSection, SourceSection,
};
use serde::Serialize;
use tokio::sync::watch;

use central_server::config::{Facility, JammerSite, SensorSite, ServerConfig, ServerSection, Zone};
use central_server::{Server, ServerError};

/// Facility id of the demo.
pub const FACILITY: &str = "demo-prison";

/// `demo` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// HTTP address of the dashboard and API.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub http: SocketAddr,
    /// Address of the embedded MQTT broker.
    #[arg(long, default_value = "127.0.0.1:1883")]
    pub mqtt: SocketAddr,
    /// Working directory for the SQLite file, the outboxes and the scene.
    #[arg(long, default_value = "centinela-demo")]
    pub dir: PathBuf,
    /// The database instead of `DIR/centinela.db`: another SQLite file, or
    /// postgres://user@host:port/dbname (the password in PGPASSWORD or ~/.pgpass).
    #[arg(long)]
    pub db: Option<central_server::db::Database>,
    /// Print the simulator's ground truth (which zones leak, per cell) as JSON and exit.
    #[arg(long)]
    pub truth: bool,
}

/// The demo prison's radio scene (the sensor position is set per sensor):
/// [`Scene::demo_facility`], defined with the simulator.
#[must_use]
pub fn scene() -> Scene {
    Scene::demo_facility()
}

/// The sensors: id, zone, position.
#[must_use]
pub fn sensors() -> Vec<(&'static str, &'static str, [f64; 2])> {
    vec![
        ("pab-a", "pabellon-a", [40.0, 30.0]),
        ("pab-b", "pabellon-b", [125.0, 30.0]),
        ("patio", "patio", [125.0, 90.0]),
        ("perimetro", "perimetro", [40.0, 100.0]),
    ]
}

/// The demo facility as the server sees it.
#[must_use]
pub fn facility() -> Facility {
    let rect = |x0: f64, y0: f64, x1: f64, y1: f64| vec![[x0, y0], [x1, y0], [x1, y1], [x0, y1]];
    let s = scene();
    Facility {
        id: FACILITY.into(),
        name: "Demo prison (simulated)".into(),
        region: Some("Cundinamarca".into()),
        origin_latlon: Some([4.5709, -74.1371]),
        outline: rect(0.0, 0.0, 160.0, 120.0),
        zones: vec![
            Zone {
                id: "pabellon-a".into(),
                name: "Pabellón A".into(),
                polygon: rect(5.0, 5.0, 75.0, 55.0),
            },
            Zone {
                id: "pabellon-b".into(),
                name: "Pabellón B".into(),
                polygon: rect(85.0, 5.0, 155.0, 55.0),
            },
            Zone {
                id: "patio".into(),
                name: "Patio".into(),
                polygon: rect(85.0, 65.0, 155.0, 115.0),
            },
            Zone {
                id: "perimetro".into(),
                name: "Perímetro norte".into(),
                polygon: rect(5.0, 65.0, 75.0, 115.0),
            },
        ],
        sensors: sensors()
            .into_iter()
            .map(|(id, zone, position)| SensorSite {
                id: id.into(),
                zone: zone.into(),
                position,
                public_key: None,
                revoked: false,
            })
            .collect(),
        jammers: s
            .jammers
            .iter()
            .map(|j| JammerSite {
                name: j.name.clone(),
                position: j.position_m,
                bands: j
                    .bands_hz
                    .iter()
                    .map(|b| format!("{:.0}-{:.0} MHz", b[0] / 1e6, b[1] / 1e6))
                    .collect(),
            })
            .collect(),
    }
}

/// One cell as a sensor's position receives it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CellTruth {
    /// Cell label.
    pub cell: String,
    /// Centre, hertz.
    pub center_hz: f64,
    /// Received power, dBm.
    pub power_dbm: f64,
    /// SINR over thermal noise and jammers in the cell's bandwidth, dB.
    pub sinr_db: f64,
    /// SINR over the technology's sync threshold, dB.
    pub margin_db: f64,
}

/// A zone's ground truth.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ZoneTruth {
    /// Zone.
    pub zone: String,
    /// Sensor standing in it.
    pub sensor: String,
    /// Every cell, strongest margin first.
    pub cells: Vec<CellTruth>,
}

impl ZoneTruth {
    /// Whether any cell is usable (margin above zero).
    #[must_use]
    pub fn leaks(&self) -> bool {
        self.cells.iter().any(|c| c.margin_db > 0.0)
    }
}

/// The SINR a phone needs to sync to the cell: the agent's own threshold (one definition).
fn sync_threshold_db(c: &SimCell) -> f64 {
    sensor_agent::analysis::sync_threshold_db(c.technology)
}

/// The simulator's ground truth at each sensor: the same path loss, walls, jammer powers and
/// thermal noise the simulated radio hears.
#[must_use]
pub fn truth() -> Vec<ZoneTruth> {
    let base = scene();
    sensors()
        .into_iter()
        .map(|(id, zone, pos)| {
            let mut s = base.clone();
            s.radio.position_m = pos;
            let mut cells: Vec<CellTruth> = s
                .cells
                .iter()
                .map(|c| {
                    let sinr = s.cell_sinr_db(c);
                    CellTruth {
                        cell: c.name.clone(),
                        center_hz: c.center_hz,
                        power_dbm: s.cell_power_dbm(c),
                        sinr_db: sinr,
                        margin_db: sinr - sync_threshold_db(c),
                    }
                })
                .collect();
            cells.sort_by(|a, b| b.margin_db.total_cmp(&a.margin_db));
            ZoneTruth {
                zone: zone.into(),
                sensor: id.into(),
                cells,
            }
        })
        .collect()
}

/// Where a demo sensor's key lives under the demo's directory.
#[must_use]
pub fn key_path(dir: &std::path::Path, id: &str) -> std::path::PathBuf {
    dir.join("keys").join(id).join(sensor_agent::keys::KEY_FILE)
}

/// The demo sensor's key: made on first use (`sensor-agent keygen`), then reused, so the
/// sensor's message numbers go on across demo runs in one directory.
///
/// # Errors
/// A key that cannot be written or read.
pub fn enroll(dir: &std::path::Path, id: &str) -> Result<protocol::signed::PublicKey, String> {
    let path = key_path(dir, id);
    if path.exists() {
        return sensor_agent::keys::load_key(&path)
            .map(|k| k.public())
            .map_err(|e| e.to_string());
    }
    let key_dir = path.parent().unwrap_or(dir);
    sensor_agent::keys::keygen(key_dir)
        .map(|(_, public)| public)
        .map_err(|e| e.to_string())
}

/// The server configuration of the demo, its sensors registered with `keys` (by sensor id).
#[must_use]
pub fn server_config(
    args: &DemoArgs,
    keys: &[(&str, protocol::signed::PublicKey)],
) -> ServerConfig {
    let mut f = facility();
    for s in &mut f.sensors {
        s.public_key = keys.iter().find(|(id, _)| *id == s.id).map(|(_, k)| *k);
    }
    ServerConfig {
        server: ServerSection {
            broker: None,
            embedded_broker: args.mqtt,
            db: args.db.clone().unwrap_or_else(|| {
                central_server::db::Database::Sqlite(args.dir.join("centinela.db"))
            }),
            data_dir: Some(args.dir.clone()),
            http: args.http,
            ..ServerSection::default()
        },
        facilities: vec![f],
    }
}

/// The broker credentials of a demo sensor: made by `broker-config` into the demo's broker
/// directory on first use, then read back (made again if their file is gone).
///
/// # Errors
/// The broker files cannot be written.
pub fn sensor_credentials(
    cfg: &ServerConfig,
    id: &str,
) -> Result<(String, protocol::Secret), String> {
    let dir = cfg.server.broker_dir();
    let user = central_server::credentials::sensor_user(FACILITY, id);
    let path = dir
        .join(central_server::credentials::CREDENTIALS_DIR)
        .join(&user);
    if let Some(c) = central_server::credentials::read_credentials(&path) {
        return Ok(c);
    }
    // Forget the user whose password is lost, and make a new one.
    let passwd = dir.join(central_server::credentials::PASSWD_FILE);
    let mut f = central_server::credentials::PasswordFile::load(&passwd)?;
    if f.users.remove(&user).is_some() {
        f.save(&passwd)?;
    }
    central_server::credentials::broker_config(cfg, &dir)?;
    central_server::credentials::read_credentials(&path)
        .ok_or_else(|| format!("{}: no credentials written", path.display()))
}

/// The agent configuration of one demo sensor (its key where [`enroll`] puts it), trusting
/// receipts signed with `server_key`.
#[must_use]
pub fn agent_config(
    dir: &std::path::Path,
    broker: (&str, u16),
    id: &str,
    zone: &str,
    pos: [f64; 2],
    server_key: protocol::signed::PublicKey,
) -> AgentConfig {
    AgentConfig {
        evidence: sensor_agent::daemon::config::EvidenceSection::default(),
        sensor: SensorSection {
            facility: FACILITY.into(),
            id: id.into(),
            zone: zone.into(),
            position_m: Some(pos),
            key: Some(key_path(dir, id)),
        },
        source: SourceSection {
            spec: format!("sim:{}", dir.join("scene.toml").display()),
            device: None,
            sample_rate_hz: None,
            gain_db: None,
        },
        scan: ScanSection {
            interval_s: 1.0,
            ..ScanSection::default()
        },
        pipeline: sensor_agent::config::PipelineConfig::default(),
        mqtt: MqttSection {
            broker: format!("mqtt://{}:{}", broker.0, broker.1),
            username: None,
            password: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            heartbeat_s: 5.0,
            spectrum: true,
            receipt_timeout_s: 10.0,
            server_key: vec![server_key],
        },
        outbox: OutboxSection {
            dir: dir.join("outbox").join(id),
            max_events: 10_000,
        },
    }
}

/// A running demo.
#[derive(Debug)]
pub struct Demo {
    /// The server.
    pub server: Server,
    /// The demo administrator's password, new at every start.
    pub admin_password: protocol::Secret,
    /// A read-only API token of the demo administrator, new at every start (the previous
    /// start's is revoked).
    pub token: protocol::Secret,
    stop: watch::Sender<bool>,
    agents: Vec<tokio::task::JoinHandle<()>>,
}

impl Demo {
    /// Starts the server and the simulated sensors.
    ///
    /// # Errors
    /// As [`Server::start`]; a working directory that cannot be written.
    pub async fn start(args: &DemoArgs) -> Result<Self, ServerError> {
        std::fs::create_dir_all(&args.dir)
            .map_err(|e| ServerError::Config(vec![format!("{}: {e}", args.dir.display())]))?;
        let scene_text = toml::to_string(&scene())
            .map_err(|e| ServerError::Config(vec![format!("demo scene: {e}")]))?;
        std::fs::write(args.dir.join("scene.toml"), scene_text)
            .map_err(|e| ServerError::Config(vec![format!("{}: {e}", args.dir.display())]))?;
        let mut keys = Vec::new();
        for (id, _, _) in sensors() {
            let k = enroll(&args.dir, id)
                .map_err(|e| ServerError::Config(vec![format!("demo sensor {id}: {e}")]))?;
            keys.push((id, k));
        }
        let cfg = server_config(args, &keys);
        let mut logins = Vec::new();
        for (id, _, _) in sensors() {
            logins.push(
                sensor_credentials(&cfg, id)
                    .map_err(|e| ServerError::Config(vec![format!("demo sensor {id}: {e}")]))?,
            );
        }
        // The demo's administrator exists before the server starts (which then has a user).
        let store = central_server::store::Store::open(&cfg.server.db)
            .await
            .map_err(|e| ServerError::Database {
                path: cfg.server.db.to_string(),
                source: e,
            })?;
        let admin = demo_admin(&store).await;
        store.pool().close().await;
        let (admin_password, token) = admin?;
        let server = Server::start(cfg).await?;
        let (stop, rx) = watch::channel(false);
        let mut agents = Vec::new();
        for ((id, zone, pos), (user, password)) in sensors().into_iter().zip(logins) {
            let mut cfg = agent_config(
                &args.dir,
                (&server.broker.0, server.broker.1),
                id,
                zone,
                pos,
                server.receipt_key,
            );
            cfg.mqtt.username = Some(user);
            cfg.mqtt.password = Some(password);
            let rx = rx.clone();
            agents.push(tokio::spawn(async move {
                if let Err(e) = sensor_agent::daemon::run(cfg, rx).await {
                    tracing::error!("demo sensor {id}: {e}");
                }
            }));
        }
        Ok(Self {
            server,
            admin_password,
            token,
            stop,
            agents,
        })
    }

    /// Stops the sensors (they say offline), then the server.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for a in self.agents {
            let _ = a.await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.server.stop().await;
    }
}

/// The demo's administrator: user [`ADMIN`] with a new random password, and a new read-only
/// token labelled `demo` (the earlier ones are revoked).
async fn demo_admin(
    store: &central_server::store::Store,
) -> Result<(protocol::Secret, protocol::Secret), ServerError> {
    use central_server::auth::{Role, Scope, Users};
    let fail = |e: String| ServerError::Config(vec![format!("demo user: {e}")]);
    let users = Users::new(store);
    let pw = central_server::credentials::random_password().map_err(fail)?;
    let exists = users.exists(ADMIN).await.map_err(fail)?;
    if exists {
        users.set_password(ADMIN, &pw, "demo").await.map_err(fail)?;
    } else {
        users
            .add(ADMIN, Role::Admin, &[], &pw, "demo")
            .await
            .map_err(fail)?;
    }
    users
        .revoke_labelled(ADMIN, "demo", "demo")
        .await
        .map_err(fail)?;
    let (_, token) = users
        .add_token(ADMIN, "demo", Scope::Read, "demo")
        .await
        .map_err(fail)?;
    Ok((pw, token))
}

/// The demo administrator's user name.
pub const ADMIN: &str = "admin";

/// Runs the demo until `until` completes.
///
/// # Errors
/// As [`Demo::start`].
pub async fn run(
    args: DemoArgs,
    until: impl std::future::Future<Output = ()>,
) -> Result<(), ServerError> {
    if args.truth {
        let t = truth();
        println!("{}", serde_json::to_string_pretty(&t).unwrap_or_default());
        return Ok(());
    }
    let demo = Demo::start(&args).await?;
    println!(
        "Centinela demo: {} simulated sensors of `{FACILITY}`",
        sensors().len()
    );
    println!("dashboard: {}", demo.server.url());
    println!(
        "sign in:   user {ADMIN}, password {} (new at every start; shown once)",
        demo.admin_password.expose()
    );
    println!("API token (read-only): {}", demo.token.expose());
    println!(
        "gap map:   curl -H 'Authorization: Bearer TOKEN' {}api/facilities/{FACILITY}/map.png",
        demo.server.url()
    );
    println!(
        "MQTT:      mqtt://{}:{} (embedded broker)",
        demo.server.broker.0, demo.server.broker.1
    );
    println!("Zones that leak in the simulator's truth:");
    for z in truth() {
        let leaking: Vec<String> = z
            .cells
            .iter()
            .filter(|c| c.margin_db > 0.0)
            .map(|c| format!("{} ({:+.0} dB)", c.cell, c.margin_db))
            .collect();
        println!(
            "  {:<11} {}",
            z.zone,
            if leaking.is_empty() {
                "none".to_string()
            } else {
                leaking.join(", ")
            }
        );
    }
    println!("Ctrl-C stops it.");
    until.await;
    tracing::info!("stopping the demo");
    demo.stop().await;
    Ok(())
}
