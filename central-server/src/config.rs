//! Server configuration (TOML): where the broker, database and HTTP listener are, alert
//! settings, and the facilities with their floor plans.

use std::net::SocketAddr;
use std::path::PathBuf;

use protocol::parse_broker_url;
use serde::{Deserialize, Serialize};

/// A point in a facility's plan, metres (x east, y north).
pub type Point = [f64; 2];

/// The whole server configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Listeners, storage, alerts.
    #[serde(default)]
    pub server: ServerSection,
    /// Facilities the server maps.
    #[serde(default, rename = "facility")]
    pub facilities: Vec<Facility>,
}

/// Listeners, storage and alert settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// External broker (`mqtt://HOST:PORT`, or `mqtts://HOST:PORT` for TLS); absent: run the
    /// embedded broker.
    pub broker: Option<String>,
    /// CA certificate(s) (PEM) that sign the external broker's certificate: when set, the
    /// ingest link is TLS (rustls) and checks the broker's certificate and host name.
    pub broker_tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a broker that authenticates clients by certificate.
    pub broker_tls_cert: Option<PathBuf>,
    /// Its private key (PEM; mode 0600: a key others can read is refused).
    pub broker_tls_key: Option<PathBuf>,
    /// Listen address of the embedded broker (MQTT v5).
    pub embedded_broker: SocketAddr,
    /// Username and password for the external broker.
    pub broker_username: Option<String>,
    /// Password for the external broker.
    pub broker_password: Option<protocol::Secret>,
    /// MQTT client id of the ingest session (persistent: the broker keeps events while the
    /// server is down). In a group (`shared_group`) each server's id is this and its
    /// `instance`.
    pub client_id: String,
    /// Several servers sharing ingest: each subscribes as a member of this MQTT v5 shared
    /// subscription group (`$share/{group}/…`), and the broker hands each message to one of
    /// them. They must share one PostgreSQL database. Their sessions end with their connection
    /// (Mosquitto hands a group's messages in turn to every member that has a session,
    /// connected or not: a dead member's share would wait for it), so what a server that dies
    /// had in flight is sent again by the agents, which keep every event until its receipt.
    pub shared_group: Option<String>,
    /// This server's name in a group: its client id's suffix, and the name it claims alerts
    /// under (default: the host name and the process id).
    pub instance: Option<String>,
    /// The database: a SQLite file (the default), or `postgres://user@host:port/dbname` (no
    /// password in the URL: PostgreSQL's `PGPASSWORD` or `~/.pgpass` gives it).
    pub db: crate::db::Database,
    /// The server's own files (the broker's password and ACL files, its secrets); default: the
    /// SQLite file's directory, or the working directory with PostgreSQL.
    pub data_dir: Option<PathBuf>,
    /// The key that signs commit receipts (Ed25519, PKCS#8 PEM, mode 0600; made when missing).
    /// Default: `{data_dir}/keys/receipt.key`. Servers of a group may share one key, or each
    /// have its own (agents then list every public key in `server_key`).
    pub receipt_key: Option<PathBuf>,
    /// HTTP listen address. Off loopback it must be HTTPS (`tls_cert`, `tls_key`): the
    /// dashboard's passwords, cookies and tokens never cross a network in the clear.
    pub http: SocketAddr,
    /// The HTTPS certificate chain (PEM). With `tls_key`, the API and the dashboard speak only
    /// HTTPS and the session cookie is `Secure`.
    pub tls_cert: Option<PathBuf>,
    /// The HTTPS private key (PEM, PKCS#8, SEC1 or PKCS#1; mode 0600: a key others can read is
    /// refused).
    pub tls_key: Option<PathBuf>,
    /// The names clients reach the API and dashboard by (`centinela.example.gov`, or an
    /// address): a request whose `Host` is none of them is refused (421), so a page of another
    /// site that resolves its own name to this server (DNS rebinding) gets nothing. On loopback
    /// the default is `localhost`, `127.0.0.1` and `::1`; off loopback they must be given.
    pub hostnames: Vec<String>,
    /// Reverse proxies in front of the server (addresses or networks, `10.0.0.5`,
    /// `10.0.0.0/24`): only from them is `X-Forwarded-For` believed, and then a request's
    /// address is the last one there that is not a proxy's. The login throttle and the
    /// security log use that address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Webhook that receives alerts as JSON (http:// only in this build).
    pub webhook: Option<String>,
    /// A sensor whose last message is older than this many heartbeats is offline.
    pub offline_after_heartbeats: f64,
    /// How far ahead of this server's clock an observation may be, seconds. Later ones are
    /// refused for now (the agent keeps them and sends them again): a message dated in the
    /// future must not rewrite the present.
    pub max_clock_skew_s: f64,
    /// How old an observation may be, days (an agent's outbox keeps events through long
    /// outages; older ones are refused for good).
    pub max_event_age_days: f64,
    /// At most one `tamper` alert per sensor in this many seconds (every refusal is counted and
    /// listed all the same).
    pub tamper_alert_interval_s: f64,
    /// How long the history is kept, and its aggregates (`[server.retention]`).
    pub retention: Retention,
}

/// What the history keeps, and for how long. One server of a group prunes at a time (claimed
/// in the database): PostgreSQL drops whole months of events, SQLite deletes in small batches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// Gap and jammer events, and status changes, are kept this many days (at least
    /// `max_event_age_days`: an event accepted must not be pruned at once).
    pub events_days: f64,
    /// Statuses (heartbeats, and the spectrum summaries' sequence numbers) are kept this many
    /// days; an `online` status or a spectrum summary older than this is refused (what it says
    /// of the sensor's liveness is stale).
    pub statuses_days: f64,
    /// Of a sensor's `online` heartbeats, one is kept in the history per this many seconds; a
    /// change (online after offline, offline, another zone) always is. 0 keeps every heartbeat.
    /// Each one still updates the sensor's state, and its sequence number is recorded.
    pub heartbeat_sample_s: f64,
    /// Hourly aggregates are kept this many days.
    pub hourly_days: f64,
    /// Daily aggregates are kept this many days.
    pub daily_days: f64,
    /// How often, seconds, a server looks for work: pruning, partitions, aggregates.
    pub every_s: f64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            events_days: 400.0,
            statuses_days: 30.0,
            heartbeat_sample_s: 300.0,
            hourly_days: 90.0,
            daily_days: 3650.0,
            every_s: 600.0,
        }
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            broker: None,
            broker_tls_ca: None,
            broker_tls_cert: None,
            broker_tls_key: None,
            embedded_broker: SocketAddr::from(([127, 0, 0, 1], 1883)),
            broker_username: None,
            broker_password: None,
            client_id: "centinela-server".into(),
            shared_group: None,
            instance: None,
            db: crate::db::Database::Sqlite(PathBuf::from("centinela.db")),
            data_dir: None,
            receipt_key: None,
            http: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert: None,
            tls_key: None,
            hostnames: Vec::new(),
            trusted_proxies: Vec::new(),
            webhook: None,
            offline_after_heartbeats: 3.0,
            max_clock_skew_s: 300.0,
            max_event_age_days: 90.0,
            tamper_alert_interval_s: 600.0,
            retention: Retention::default(),
        }
    }
}

/// A facility: its outline, zones, sensors and jammers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Facility {
    /// Identifier (topic level).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Region (department, state, province) the national overview groups and filters by.
    #[serde(default)]
    pub region: Option<String>,
    /// Latitude and longitude of the plan's origin, for GeoJSON in WGS 84. Without it the
    /// GeoJSON is in plan metres.
    #[serde(default)]
    pub origin_latlon: Option<[f64; 2]>,
    /// Outline polygon, metres.
    pub outline: Vec<Point>,
    /// Named zones.
    #[serde(default, rename = "zone")]
    pub zones: Vec<Zone>,
    /// Sensors and where they stand.
    #[serde(default, rename = "sensor")]
    pub sensors: Vec<SensorSite>,
    /// Jammers and where they stand.
    #[serde(default, rename = "jammer")]
    pub jammers: Vec<JammerSite>,
}

/// A named zone of a facility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    /// Identifier (as the agents' `zone`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Polygon, metres.
    pub polygon: Vec<Point>,
}

/// A sensor: its place, and its identity in the registry (only a sensor with a public key
/// that is not revoked is heard).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorSite {
    /// Sensor id.
    pub id: String,
    /// Zone it covers.
    pub zone: String,
    /// Position, metres.
    pub position: Point,
    /// Its public key (`ed25519:…`, as `sensor-agent keygen` prints it). Without one, every
    /// message naming the sensor is refused.
    #[serde(default)]
    pub public_key: Option<protocol::signed::PublicKey>,
    /// A revoked sensor's messages are refused (a stolen or retired sensor), and counted.
    #[serde(default)]
    pub revoked: bool,
}

/// A jammer's place.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JammerSite {
    /// Name.
    pub name: String,
    /// Position, metres.
    pub position: Point,
    /// Bands it should cover.
    #[serde(default)]
    pub bands: Vec<String>,
}

impl ServerSection {
    /// This server's name in its group: `instance`, else the host name and the process id.
    #[must_use]
    pub fn instance_name(&self) -> String {
        self.instance.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "server".into());
            let host: String = host
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                        c
                    } else {
                        '-'
                    }
                })
                .collect();
            format!("{host}-{}", std::process::id())
        })
    }

    /// The ingest session's client id: `client_id`, and in a group its instance name too.
    #[must_use]
    pub fn ingest_client_id(&self) -> String {
        match &self.shared_group {
            Some(_) => format!("{}-{}", self.client_id, self.instance_name()),
            None => self.client_id.clone(),
        }
    }

    /// The data directory: `data_dir`, or the SQLite file's directory (the working directory
    /// with PostgreSQL).
    #[must_use]
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            self.db
                .file()
                .and_then(std::path::Path::parent)
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), std::path::Path::to_path_buf)
        })
    }

    /// Whether `host` (a request's `Host` without its port) names this server: one of
    /// `hostnames`, or on loopback by default `localhost`, `127.0.0.1` or `::1`.
    #[must_use]
    pub fn serves_host(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if self.hostnames.is_empty() {
            return matches!(host, "localhost" | "127.0.0.1" | "::1")
                || host == self.http.ip().to_string();
        }
        self.hostnames.iter().any(|h| h.eq_ignore_ascii_case(host))
    }

    /// The receipt key's file: `receipt_key`, or `{data_dir}/keys/receipt.key`.
    #[must_use]
    pub fn receipt_key_path(&self) -> PathBuf {
        self.receipt_key
            .clone()
            .unwrap_or_else(|| self.data_dir().join(crate::credentials::RECEIPT_KEY_FILE))
    }

    /// Where the broker's password file, ACL and the server's broker password live.
    #[must_use]
    pub fn broker_dir(&self) -> PathBuf {
        self.data_dir().join("broker")
    }
}

impl ServerConfig {
    /// Parses and checks a configuration, reporting every problem at once.
    ///
    /// # Errors
    /// A list of problems, each naming the file and the setting.
    pub fn from_toml(text: &str, origin: &str) -> Result<Self, Vec<String>> {
        let c: Self = toml::from_str(text).map_err(|e| vec![format!("{origin}: {e}")])?;
        let p = c.problems(origin);
        if p.is_empty() { Ok(c) } else { Err(p) }
    }

    /// Every problem of a configuration.
    #[must_use]
    pub fn problems(&self, origin: &str) -> Vec<String> {
        let mut p = Vec::new();
        if let Some(b) = &self.server.broker
            && let Err(e) = parse_broker_url(b)
        {
            p.push(format!("{origin}: server.broker: {e}"));
        }
        if self.server.broker.is_none() && !self.server.embedded_broker.ip().is_loopback() {
            p.push(format!(
                "{origin}: server.embedded_broker {} is not a loopback address: the embedded broker has no topic rights (a sensor could read others' topics and forge their receipts), so it serves only this machine; across a network use Mosquitto with the files of `central-server broker-config` (server.broker)",
                self.server.embedded_broker
            ));
        }
        let tls_files = [
            &self.server.broker_tls_ca,
            &self.server.broker_tls_cert,
            &self.server.broker_tls_key,
        ];
        match &self.server.broker {
            None if tls_files.iter().any(|f| f.is_some()) => p.push(format!(
                "{origin}: server.broker_tls_ca/cert/key are for an external broker (server.broker); the embedded broker listens on loopback"
            )),
            Some(b) if protocol::broker_url_is_tls(b) && self.server.broker_tls_ca.is_none() => {
                p.push(format!(
                    "{origin}: server.broker `{b}` is TLS: set server.broker_tls_ca (the CA that signs the broker's certificate)"
                ));
            }
            _ => {}
        }
        if self.server.broker_tls_cert.is_some() != self.server.broker_tls_key.is_some() {
            p.push(format!(
                "{origin}: server.broker_tls_cert and server.broker_tls_key go together (client authentication)"
            ));
        }
        if self.server.broker_tls_cert.is_some() && self.server.broker_tls_ca.is_none() {
            p.push(format!(
                "{origin}: server.broker_tls_cert needs server.broker_tls_ca (the CA that signs the broker)"
            ));
        }
        match (&self.server.tls_cert, &self.server.tls_key) {
            (Some(_), None) | (None, Some(_)) => p.push(format!(
                "{origin}: server.tls_cert and server.tls_key go together (give both, or neither for plain HTTP on loopback)"
            )),
            (None, None) if !self.server.http.ip().is_loopback() => p.push(format!(
                "{origin}: server.http {} is not a loopback address: off loopback the dashboard is served only over HTTPS (set server.tls_cert and server.tls_key), or bind 127.0.0.1 behind a TLS proxy",
                self.server.http
            )),
            _ => {}
        }
        if self.server.hostnames.is_empty() && !self.server.http.ip().is_loopback() {
            p.push(format!(
                "{origin}: server.hostnames is empty but server.http {} is not a loopback address: give the names clients reach the server by (e.g. hostnames = [\"centinela.example.gov\"]); every request's Host is checked against them",
                self.server.http
            ));
        }
        for h in &self.server.hostnames {
            if h.is_empty() || h.contains(['/', ' ', '@']) {
                p.push(format!(
                    "{origin}: server.hostnames: `{h}` is not a host name or address"
                ));
            }
        }
        if let Some(g) = &self.server.shared_group {
            if g.is_empty() || g.contains(['/', '+', '#']) {
                p.push(format!(
                    "{origin}: server.shared_group `{g}` must be a non-empty name without /, + or #"
                ));
            }
            if self.server.broker.is_none() {
                p.push(format!(
                    "{origin}: server.shared_group needs an external broker (server.broker): servers of a group share one broker, and the embedded one dies with its server"
                ));
            }
            if self.server.db.engine() != crate::db::Engine::Postgres {
                p.push(format!(
                    "{origin}: server.shared_group needs PostgreSQL (server.db = \"postgres://…\"): servers of a group share one database"
                ));
            }
        }
        if let Some(i) = &self.server.instance
            && (i.is_empty()
                || !i
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            p.push(format!(
                "{origin}: server.instance `{i}` must be letters, digits, -, _ or ."
            ));
        }
        let r = &self.server.retention;
        for (name, v) in [
            ("events_days", r.events_days),
            ("statuses_days", r.statuses_days),
            ("hourly_days", r.hourly_days),
            ("daily_days", r.daily_days),
        ] {
            if !(v.is_finite() && v <= MAX_RETENTION_DAYS) {
                let shown = if v.abs() < 1e9 {
                    v.to_string()
                } else {
                    format!("{v:e}")
                };
                p.push(format!(
                    "{origin}: server.retention.{name} ({shown}) must be a number of days up to {MAX_RETENTION_DAYS} (100 years)"
                ));
            }
        }
        if !(r.heartbeat_sample_s.is_finite() && r.heartbeat_sample_s <= 86_400.0) {
            p.push(format!(
                "{origin}: server.retention.heartbeat_sample_s must be at most 86400 seconds"
            ));
        }
        if !(r.every_s.is_finite() && r.every_s <= 86_400.0) {
            p.push(format!(
                "{origin}: server.retention.every_s must be at most 86400 seconds"
            ));
        }
        if !(self.server.offline_after_heartbeats.is_finite()
            && self.server.offline_after_heartbeats <= 1000.0)
        {
            p.push(format!(
                "{origin}: server.offline_after_heartbeats must be at most 1000"
            ));
        }
        if r.events_days.is_nan() || r.events_days < self.server.max_event_age_days {
            p.push(format!(
                "{origin}: server.retention.events_days ({}) must be at least server.max_event_age_days ({}): an event accepted must not be pruned at once",
                r.events_days, self.server.max_event_age_days
            ));
        }
        if r.statuses_days.is_nan() || r.statuses_days < 1.0 || r.statuses_days > r.events_days {
            p.push(format!(
                "{origin}: server.retention.statuses_days ({}) must be between 1 and events_days",
                r.statuses_days
            ));
        }
        if r.heartbeat_sample_s.is_nan() || r.heartbeat_sample_s < 0.0 {
            p.push(format!(
                "{origin}: server.retention.heartbeat_sample_s must be 0 or more"
            ));
        }
        if r.hourly_days.is_nan() || r.hourly_days < 2.0 || r.daily_days < r.hourly_days {
            p.push(format!(
                "{origin}: server.retention.hourly_days must be at least 2, and daily_days at least hourly_days"
            ));
        }
        if r.every_s.is_nan() || r.every_s < 1.0 {
            p.push(format!(
                "{origin}: server.retention.every_s must be at least 1"
            ));
        }
        if let Some(w) = &self.server.webhook
            && !w.starts_with("http://")
        {
            p.push(format!(
                "{origin}: server.webhook `{w}` must start with http://"
            ));
        }
        if self.server.offline_after_heartbeats.is_nan()
            || self.server.offline_after_heartbeats < 1.0
        {
            p.push(format!(
                "{origin}: server.offline_after_heartbeats must be at least 1"
            ));
        }
        if !(self.server.max_clock_skew_s.is_finite()
            && (0.0..=86_400.0).contains(&self.server.max_clock_skew_s))
        {
            p.push(format!(
                "{origin}: server.max_clock_skew_s must be 0–86400 seconds"
            ));
        }
        if !(self.server.max_event_age_days.is_finite()
            && (1.0..=3650.0).contains(&self.server.max_event_age_days))
        {
            p.push(format!(
                "{origin}: server.max_event_age_days must be 1–3650 days"
            ));
        }
        if self.server.client_id.is_empty() || self.server.client_id.len() > 64 {
            p.push(format!(
                "{origin}: server.client_id must be 1–64 characters"
            ));
        }
        if !(self.server.tamper_alert_interval_s.is_finite()
            && (0.0..=86_400.0).contains(&self.server.tamper_alert_interval_s))
        {
            p.push(format!(
                "{origin}: server.tamper_alert_interval_s must be 0–86400 seconds"
            ));
        }
        let mut ids = std::collections::HashSet::new();
        let mut keys = std::collections::HashMap::new();
        for f in &self.facilities {
            let at = format!("{origin}: facility `{}`", f.id);
            if protocol::check_id("facility_id", &f.id).is_err() {
                p.push(format!(
                    "{at}: id must be 1–64 characters of A–Z, a–z, 0–9, - or _"
                ));
            }
            if !ids.insert(&f.id) {
                p.push(format!("{at}: defined twice"));
            }
            check_polygon(&f.outline, &format!("{at}: outline"), &mut p);
            let mut zone_ids = std::collections::HashSet::new();
            for z in &f.zones {
                check_polygon(&z.polygon, &format!("{at}: zone `{}`", z.id), &mut p);
                if !zone_ids.insert(&z.id) {
                    p.push(format!("{at}: zone `{}` defined twice", z.id));
                }
            }
            let mut sensor_ids = std::collections::HashSet::new();
            for s in &f.sensors {
                if protocol::check_id("sensor_id", &s.id).is_err() {
                    p.push(format!("{at}: sensor `{}`: bad id", s.id));
                }
                if !sensor_ids.insert(&s.id) {
                    p.push(format!(
                        "{at}: sensor `{}` is defined twice (each sensor once, with its own key)",
                        s.id
                    ));
                }
                if !f.zones.iter().any(|z| z.id == s.zone) {
                    p.push(format!(
                        "{at}: sensor `{}` names zone `{}`, which is not defined",
                        s.id, s.zone
                    ));
                }
                if !s.position.iter().all(|v| v.is_finite()) {
                    p.push(format!("{at}: sensor `{}`: position must be finite", s.id));
                }
                if let Some(k) = s.public_key
                    && let Some(other) = keys.insert(k.to_bytes(), format!("{}/{}", f.id, s.id))
                {
                    p.push(format!(
                        "{at}: sensor `{}` has the public key of {other}: each sensor has its own key",
                        s.id
                    ));
                }
            }
            for j in &f.jammers {
                if !j.position.iter().all(|v| v.is_finite()) {
                    p.push(format!(
                        "{at}: jammer `{}`: position must be finite",
                        j.name
                    ));
                }
            }
        }
        p
    }

    /// Problems of the files the configuration names (checked at start and by `check-config`,
    /// not while parsing): TLS certificates and keys that must exist, private keys others may
    /// read, a receipt key others may read.
    #[must_use]
    pub fn file_problems(&self, origin: &str) -> Vec<String> {
        let mut p = Vec::new();
        let s = &self.server;
        for (name, f, private) in [
            ("tls_cert", &s.tls_cert, false),
            ("tls_key", &s.tls_key, true),
            ("broker_tls_ca", &s.broker_tls_ca, false),
            ("broker_tls_cert", &s.broker_tls_cert, false),
            ("broker_tls_key", &s.broker_tls_key, true),
        ] {
            if let Some(f) = f {
                file_problem(&mut p, origin, &format!("server.{name}"), f, private, true);
            }
        }
        // Made at start when missing; when there, it must be private.
        file_problem(
            &mut p,
            origin,
            "server.receipt_key",
            &s.receipt_key_path(),
            true,
            false,
        );
        p
    }

    /// A facility by id.
    #[must_use]
    pub fn facility(&self, id: &str) -> Option<&Facility> {
        self.facilities.iter().find(|f| f.id == id)
    }
}

/// Most days of history any retention setting may keep.
pub const MAX_RETENTION_DAYS: f64 = 36_500.0;

/// `path` must be a readable regular file (`required`: it must exist), and a `private` one
/// readable by its owner only.
fn file_problem(
    p: &mut Vec<String>,
    origin: &str,
    name: &str,
    path: &std::path::Path,
    private: bool,
    required: bool,
) {
    let at = path.display();
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if required {
                p.push(format!(
                    "{origin}: {name}: `{at}` does not exist (fix the path, or make the file)"
                ));
            }
        }
        Err(e) => p.push(format!("{origin}: {name}: `{at}`: {e}")),
        Ok(m) if !m.is_file() => p.push(format!("{origin}: {name}: `{at}` is not a regular file")),
        Ok(m) => {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let mode = m.permissions().mode() & 0o777;
                if private && mode & 0o077 != 0 {
                    p.push(format!(
                        "{origin}: {name}: `{at}` is open to others (mode {mode:04o}); a private key must be readable by its owner only: chmod 600 {at}"
                    ));
                }
            }
            #[cfg(not(unix))]
            let _ = (m, private);
            if let Err(e) = std::fs::File::open(path) {
                p.push(format!("{origin}: {name}: `{at}` cannot be read: {e}"));
            }
        }
    }
}

fn check_polygon(poly: &[Point], at: &str, p: &mut Vec<String>) {
    if poly.len() < 3 {
        p.push(format!("{at}: a polygon needs at least 3 points"));
    }
    if poly.iter().flatten().any(|v| !v.is_finite()) {
        p.push(format!("{at}: coordinates must be finite"));
    }
}

/// Point-in-polygon by ray casting.
#[must_use]
pub fn contains(poly: &[Point], p: Point) -> bool {
    let mut inside = false;
    let n = poly.len();
    for i in 0..n {
        let a = poly[i];
        let b = poly[(i + 1) % n];
        if (a[1] > p[1]) != (b[1] > p[1]) {
            let x = a[0] + (p[1] - a[1]) / (b[1] - a[1]) * (b[0] - a[0]);
            if p[0] < x {
                inside = !inside;
            }
        }
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let text = r#"
[server]
broker = "tcp://x"
webhook = "ftp://y"
[[facility]]
id = "bad id"
name = "x"
outline = [[0,0],[1,0]]
[[facility.sensor]]
id = "s1"
zone = "nowhere"
position = [1, 2]
"#;
        let e = ServerConfig::from_toml(text, "server.toml").expect_err("bad");
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e.iter().all(|m| m.starts_with("server.toml: ")));
        let unknown = ServerConfig::from_toml("[server]\nhtpp = \"x\"\n", "s.toml").expect_err("u");
        assert!(unknown[0].contains("htpp"), "{unknown:?}");
    }

    #[test]
    fn a_tls_broker_link_needs_its_ca() {
        let e =
            ServerConfig::from_toml("[server]\nbroker = \"mqtts://broker.example\"\n", "s.toml")
                .expect_err("no CA");
        assert!(e[0].contains("broker_tls_ca"), "{e:?}");
        let e = ServerConfig::from_toml(
            "[server]\nbroker_tls_ca = \"ca.pem\"\nbroker_tls_cert = \"c.pem\"\n",
            "s.toml",
        )
        .expect_err("embedded broker, cert without key");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].contains("external broker") && e[1].contains("go together"));
        let ok = ServerConfig::from_toml(
            "[server]\nbroker = \"mqtts://broker.example:8884\"\nbroker_tls_ca = \"ca.pem\"\n",
            "s.toml",
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn the_embedded_broker_stays_on_loopback() {
        let e = ServerConfig::from_toml("[server]\nembedded_broker = \"0.0.0.0:1883\"\n", "s.toml")
            .expect_err("off loopback");
        assert!(
            e[0].contains("embedded_broker") && e[0].contains("Mosquitto"),
            "{e:?}"
        );
        let ok = ServerConfig::from_toml(
            "[server]\nembedded_broker = \"0.0.0.0:1883\"\nbroker = \"mqtt://10.0.0.2:1883\"\n",
            "s.toml",
        );
        assert!(
            ok.is_ok(),
            "an unused embedded address is no problem: {ok:?}"
        );
        assert!(
            ServerConfig::from_toml("[server]\nembedded_broker = \"[::1]:1883\"\n", "s").is_ok()
        );
    }

    #[test]
    fn the_committed_example_parses() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("server.example.toml");
        let text = std::fs::read_to_string(&path).expect("example");
        let c = ServerConfig::from_toml(&text, "server.example.toml")
            .unwrap_or_else(|e| panic!("{e:#?}"));
        let f = c.facility("demo-prison").expect("facility");
        assert_eq!(f.zones.len(), 4);
        assert!(contains(&f.zones[2].polygon, f.sensors[1].position));
    }

    #[test]
    fn the_broker_password_never_shows_in_debug() {
        let text = r#"
[server]
broker = "mqtt://127.0.0.1:1883"
broker_username = "centinela-server"
broker_password = "s3cret-broker-pass"
"#;
        let c = ServerConfig::from_toml(text, "x.toml").expect("valid");
        assert_eq!(
            c.server
                .broker_password
                .as_ref()
                .map(protocol::Secret::expose),
            Some("s3cret-broker-pass")
        );
        let shown = format!("{c:?} {c:#?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn absurd_settings_twice_defined_sensors_and_missing_or_open_key_files_are_named() {
        let text = r#"
[server]
http = "0.0.0.0:8443"
tls_cert = "/nonexistent/cert.pem"
tls_key = "/nonexistent/key.pem"
[server.retention]
events_days = 1e300
[[facility]]
id = "f"
name = "F"
outline = [[0,0],[10,0],[10,10],[0,10]]
[[facility.zone]]
id = "z"
name = "Z"
polygon = [[0,0],[10,0],[10,10],[0,10]]
[[facility.sensor]]
id = "s1"
zone = "z"
position = [1, 2]
[[facility.sensor]]
id = "s1"
zone = "z"
position = [3, 4]
"#;
        let e = ServerConfig::from_toml(text, "server.toml").expect_err("bad");
        let all = e.join("\n");
        for want in [
            "events_days (1e300)",
            "sensor `s1` is defined twice",
            "server.hostnames is empty",
        ] {
            assert!(all.contains(want), "{want} in {all}");
        }
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\n").expect("key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        }
        let c = ServerConfig {
            server: ServerSection {
                tls_cert: Some(dir.path().join("missing-cert.pem")),
                tls_key: Some(key.clone()),
                data_dir: Some(dir.path().to_path_buf()),
                ..ServerSection::default()
            },
            facilities: Vec::new(),
        };
        let files = c.file_problems("server.toml").join("\n");
        assert!(
            files.contains("tls_cert") && files.contains("does not exist"),
            "{files}"
        );
        #[cfg(unix)]
        assert!(
            files.contains("tls_key") && files.contains("chmod 600"),
            "{files}"
        );
    }

    #[test]
    fn polygon_containment() {
        let sq = [[0.0, 0.0], [10.0, 0.0], [10.0, 10.0], [0.0, 10.0]];
        assert!(contains(&sq, [5.0, 5.0]));
        assert!(!contains(&sq, [15.0, 5.0]));
    }
}
