//! Storage: every accepted message once (by `event_id`), and the current state derived from
//! them: gaps, jammer health and sensors. SQLite by default, PostgreSQL for a national
//! deployment, both through sqlx's `Any` driver with the same queries ([`crate::db`]).

use protocol::{
    Detector, GapEvent, GapState, JammerEvent, JammerStateWire, Message, SensorState, Severity,
    Technology,
};
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, Row};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::alerts::{Alert, Raised};

mod retention;
mod rollup;

use crate::db::{Database, Engine, Rows};
pub use retention::{Cutoffs, Pruned};

fn unix(t: OffsetDateTime) -> i64 {
    t.unix_timestamp()
}

/// Fixed-width UTC timestamps, so that text order is time order.
#[must_use]
pub fn ts(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.microsecond()
    )
}

/// Parses an RFC 3339 timestamp (query parameters).
///
/// # Errors
/// The parser's message.
pub fn parse_ts(s: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("`{s}` is not RFC 3339: {e}"))
}

/// The schema's migrations for each engine, embedded in the binary: version, the description
/// sqlx derives from the file name, and the SQL (checksummed by sqlx as its `migrate!` macro
/// would, so databases made by earlier builds open unchanged; a test compares them with the
/// directories). Both engines have the same versions, meaning the same schema.
type Migrations = [(i64, &'static str, &'static str); 7];

/// The migrations of one engine's directory, in order: version, name, file.
macro_rules! migrations {
    ($dir:literal: $($version:literal $name:literal $file:literal),+ $(,)?) => {
        [$(($version, $name, include_str!(concat!("../migrations/", $dir, "/", $file)))),+]
    };
}

const SQLITE_MIGRATIONS: Migrations = migrations!("sqlite":
    1 "init" "0001_init.sql",
    2 "status order" "0002_status_order.sql",
    3 "signed" "0003_signed.sql",
    4 "users" "0004_users.sql",
    5 "columns" "0005_columns.sql",
    6 "alerts" "0006_alerts.sql",
    7 "retention" "0007_retention.sql",
);

const POSTGRES_MIGRATIONS: Migrations = migrations!("postgres":
    1 "init" "0001_init.sql",
    2 "status order" "0002_status_order.sql",
    3 "signed" "0003_signed.sql",
    4 "users" "0004_users.sql",
    5 "columns" "0005_columns.sql",
    6 "alerts" "0006_alerts.sql",
    7 "retention" "0007_retention.sql",
);

fn migrations(engine: Engine) -> &'static Migrations {
    match engine {
        Engine::Sqlite => &SQLITE_MIGRATIONS,
        Engine::Postgres => &POSTGRES_MIGRATIONS,
    }
}

fn migrator(engine: Engine) -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        migrations(engine)
            .iter()
            .map(|&(version, description, sql)| {
                Migration::new(
                    version,
                    description.into(),
                    MigrationType::Simple,
                    sqlx::SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

/// The store.
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    /// The name this server claims alerts under (several servers may share the database).
    claimant: std::sync::Arc<str>,
    /// One `online` heartbeat per sensor is kept in the history per this many seconds.
    heartbeat_sample_s: f64,
    /// The months of events whose partition is known to exist (PostgreSQL).
    partitions: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<String>>>,
}

/// How long a server's claim on an alert it is sending lasts: past it, another server says the
/// alert (the first one died before settling it).
pub const ALERT_LEASE: std::time::Duration = std::time::Duration::from_secs(30);

/// What ingesting a message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Stored; the alerts it raised (recorded, claimed by this server).
    New(Vec<Raised>),
    /// Already stored under this `event_id`, with the same bytes: nothing changed.
    Duplicate,
    /// Already stored under this `event_id` with other bytes: nothing changed, and this delivery
    /// can never be stored.
    Conflict,
    /// Its sequence number was used before by other bytes: refused, and recorded as a reject.
    Replayed,
}

/// New sequence numbers of a batch per sensor and key: the highest, and how many.
type SeqCounts = std::collections::HashMap<(String, String, String), (i64, i64)>;

/// A gap as the batch sees it: its current state, and the event that made it so.
#[derive(Debug, Clone)]
struct GapNow {
    state: GapState,
    severity: Severity,
    opened_at: String,
    updated_at: String,
    closed_at: Option<String>,
    /// The event that set it in this batch (`None` as read from the table).
    event: Option<GapEvent>,
}

/// The batch's gaps by (facility, sensor, key): `None` for one the table does not hold yet;
/// `changed` are those to write back.
#[derive(Debug, Default)]
struct GapRows {
    rows: std::collections::HashMap<(String, String, String), Option<GapNow>>,
    changed: std::collections::BTreeSet<(String, String, String)>,
}

/// What a message did, before its alerts are recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    New,
    Duplicate,
    Conflict,
    Replayed,
}

/// A jammer band as the batch sees it: its state, and the event that set it in this batch.
#[derive(Debug, Clone)]
struct JammerNow {
    state: JammerStateWire,
    updated_at: String,
    event: Option<JammerEvent>,
}

/// The batch's jammer bands by (facility, sensor, band): `None` for one the table does not
/// hold yet; `changed` are those to write back.
#[derive(Debug, Default)]
struct JammerRows {
    rows: std::collections::HashMap<(String, String, String), Option<JammerNow>>,
    changed: std::collections::BTreeSet<(String, String, String)>,
}

/// A sensor's row as the batch sees it.
#[derive(Debug, Clone)]
struct SensorNow {
    zone: String,
    state: SensorState,
    position: Option<(f64, f64)>,
    heartbeat_s: f64,
    last_seen: String,
    status: String,
    status_at: String,
    connected_at: Option<String>,
    will_seq: Option<i64>,
    /// When the last status kept in the history was observed.
    status_kept_at: Option<String>,
}

/// What a sensor says it lost since its previous status (events dropped from its outbox,
/// evidence clips not kept), as an alert; `None` when nothing new was lost. Its counters run
/// from the agent's start: a status whose uptime is below the previous one's starts from zero.
fn losses(prev_payload: Option<&str>, s: &protocol::StatusEvent) -> Option<Alert> {
    let prev = prev_payload
        .and_then(|p| {
            serde_json::from_slice::<protocol::StatusEvent>(protocol::signed::message_bytes(
                p.as_bytes(),
            ))
            .ok()
        })
        .map(|p| p.health)
        .filter(|h| h.uptime_s <= s.health.uptime_s)
        .unwrap_or_default();
    let events = s.health.outbox_dropped.saturating_sub(prev.outbox_dropped);
    let clips = s.health.clips_lost.saturating_sub(prev.clips_lost);
    (events > 0 || clips > 0).then(|| Alert::SensorLoss {
        facility_id: s.facility_id.clone(),
        sensor_id: s.sensor_id.clone(),
        zone: s.zone.clone(),
        events,
        clips,
        in_memory: s.health.outbox_in_memory,
    })
}

/// The batch's sensors by (facility, sensor): `None` for one the table does not hold yet.
#[derive(Debug, Default)]
struct SensorRows {
    rows: std::collections::HashMap<(String, String), Option<SensorNow>>,
    changed: std::collections::BTreeSet<(String, String)>,
}

/// The current state one batch reads once, changes in memory in the order of its messages, and
/// writes once.
#[derive(Debug, Default)]
struct Current {
    gaps: GapRows,
    jammers: JammerRows,
    sensors: SensorRows,
    /// The latest spectrum summary per sensor: its time and payload.
    spectra: std::collections::BTreeMap<(String, String), (String, String)>,
    /// New sequence numbers per sensor and key: the highest, and how many.
    counts: SeqCounts,
}

impl Current {
    /// A message proves its sensor alive, if the sensor has said hello (its status carries its
    /// zone): liveness moves forward only.
    fn touch(&mut self, facility: &str, sensor: &str, heard: OffsetDateTime) {
        let key = (facility.to_string(), sensor.to_string());
        if let Some(Some(r)) = self.sensors.rows.get_mut(&key) {
            let heard = ts(heard);
            if heard > r.last_seen {
                r.last_seen = heard;
                self.sensors.changed.insert(key);
            }
        }
    }

    /// A status changes the sensor's state only when it is newer than the last one applied: an
    /// `online` status by its time, an `offline` one (a clean shutdown or the Last Will) by the
    /// start of the connection it belongs to, so that the Will of an older connection, delivered
    /// late, never marks a newer connection offline.
    fn apply_status(
        &mut self,
        s: &protocol::StatusEvent,
        payload: &str,
        heard: OffsetDateTime,
        kept: bool,
        alerts: &mut Vec<Alert>,
    ) {
        let key = (s.facility_id.clone(), s.sensor_id.clone());
        let at = ts(s.observed_at);
        if kept
            && let Some(Some(r)) = self.sensors.rows.get_mut(&key)
            && r.status_kept_at.as_ref().is_none_or(|k| at > *k)
        {
            r.status_kept_at = Some(at.clone());
            self.sensors.changed.insert(key.clone());
        }
        let prev = self.sensors.rows.get(&key).cloned().flatten();
        let connected = s.connected_at.map(ts);
        let online = s.state == SensorState::Online;
        let applies = match &prev {
            None => true,
            Some(p) if online => at >= p.status_at,
            Some(p) => {
                let c = connected.clone().unwrap_or_else(|| at.clone());
                p.connected_at.as_ref().is_none_or(|pc| c >= *pc)
            }
        };
        if !applies {
            return; // history only
        }
        let heard = ts(heard);
        let row = SensorNow {
            zone: s.zone.clone(),
            state: s.state,
            position: s.position_m.map(|p| (p[0], p[1])),
            heartbeat_s: s.heartbeat_s,
            last_seen: match &prev {
                Some(p) if p.last_seen > heard => p.last_seen.clone(),
                _ => heard,
            },
            status: payload.to_string(),
            status_at: match &prev {
                Some(p) if p.status_at > at => p.status_at.clone(),
                _ => at.clone(),
            },
            connected_at: match (&prev, online) {
                (_, true) => {
                    connected.or_else(|| prev.as_ref().and_then(|p| p.connected_at.clone()))
                }
                (Some(p), false) => p.connected_at.clone(),
                (None, false) => None,
            },
            will_seq: s.will_seq.and_then(|n| i64::try_from(n).ok()),
            status_kept_at: match &prev {
                Some(p) => p.status_kept_at.clone(),
                None => kept.then(|| at.clone()),
            },
        };
        if online && let Some(lost) = losses(prev.as_ref().map(|p| p.status.as_str()), s) {
            alerts.push(lost);
        }
        if !online
            && prev
                .as_ref()
                .is_some_and(|p| p.state == SensorState::Online)
        {
            alerts.push(Alert::SensorOffline {
                facility_id: s.facility_id.clone(),
                sensor_id: s.sensor_id.clone(),
                zone: s.zone.clone(),
                reason: "the sensor said so (clean shutdown or Last Will)".into(),
            });
        }
        self.sensors.rows.insert(key.clone(), Some(row));
        self.sensors.changed.insert(key);
    }

    /// A jammer event changes its band unless an older one is delivered late (history only);
    /// a band going down raises an alert.
    fn apply_jammer(&mut self, j: &JammerEvent, alerts: &mut Vec<Alert>) {
        let key = (j.facility_id.clone(), j.sensor_id.clone(), j.band.clone());
        let at = ts(j.observed_at);
        let prev = self.jammers.rows.get(&key).and_then(Option::as_ref);
        if prev.is_some_and(|p| p.updated_at > at) {
            return;
        }
        if j.state == JammerStateWire::Down && prev.is_none_or(|p| p.state != JammerStateWire::Down)
        {
            alerts.push(Alert::JammerDown {
                facility_id: j.facility_id.clone(),
                sensor_id: j.sensor_id.clone(),
                zone: j.zone.clone(),
                band: j.band.clone(),
                noise_rise_db: j.noise_rise_db,
            });
        }
        self.jammers.rows.insert(
            key.clone(),
            Some(JammerNow {
                state: j.state,
                updated_at: at,
                event: Some(j.clone()),
            }),
        );
        self.jammers.changed.insert(key);
    }
}

/// Most rows of one multi-row statement (SQLite allows 32,766 bound values).
const ROWS_PER_STATEMENT: usize = 500;

/// An accepted message on its way into the store, with what the batch statements said of it.
#[derive(Debug, Clone, Copy)]
struct Applied<'a> {
    msg: &'a Message,
    payload: &'a str,
    seal: Seal<'a>,
    retained: bool,
    /// Its sequence number: new, used before by these bytes, or by other bytes (`None`).
    new_seq: Option<bool>,
    /// Its event was stored by this batch.
    inserted: bool,
    /// Its event is to be kept in the history (false for a heartbeat between two samples).
    kept: bool,
}

/// The signature's part of an accepted message: the key, the sequence number and the digest of
/// the whole payload.
#[derive(Debug, Clone, Copy)]
pub struct Seal<'a> {
    /// The key, as the envelope names it (`ed25519:…`).
    pub key: &'a str,
    /// The sensor's sequence number (1 or more).
    pub seq: i64,
    /// SHA-256 of the payload, hex.
    pub sha256: &'a str,
}

/// One message of a batch, as ingest hands it to the store.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    /// A decoded, checked message and its payload as received.
    Accept {
        /// Topic it came on.
        topic: &'a str,
        /// The message.
        msg: &'a Message,
        /// Its payload, as received (the signed envelope).
        payload: &'a str,
        /// Its signature's key and number.
        seal: Seal<'a>,
        /// Delivered as a retained message (a status kept by the broker, maybe long ago).
        retained: bool,
    },
    /// A rejected message, recorded in the rejects list.
    Reject {
        /// Topic (truncated on storage).
        topic: &'a str,
        /// Reason label.
        reason: &'static str,
        /// Sentence.
        detail: &'a str,
    },
}

/// A column holding one of the protocol's lowercase names (`open`, `critical`, `lte`, …),
/// decoded as its enum: a row the protocol cannot name is a decoding error of that column, not a
/// string for every reader to match.
fn from_wire<T: serde::de::DeserializeOwned>(r: &AnyRow, column: &str) -> Result<T, sqlx::Error> {
    let text: String = r.try_get(column)?;
    serde_json::from_value(serde_json::Value::String(text)).map_err(|e| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(e),
    })
}

/// A gap's current state.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GapRow {
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// Key of the gap.
    pub gap_key: String,
    /// Open, updated or closed.
    pub state: GapState,
    /// Zone.
    pub zone: String,
    /// Band.
    pub band: String,
    /// Technology.
    pub technology: Technology,
    /// Detector.
    pub detector: Detector,
    /// Centre, hertz.
    pub center_hz: f64,
    /// Bandwidth, hertz.
    pub bandwidth_hz: f64,
    /// PCI.
    pub pci: Option<i64>,
    /// EARFCN.
    pub earfcn: Option<i64>,
    /// NR-ARFCN.
    pub nr_arfcn: Option<i64>,
    /// ARFCN.
    pub arfcn: Option<i64>,
    /// BSIC.
    pub bsic: Option<i64>,
    /// Power, dBm.
    pub power_dbm: Option<f64>,
    /// Floor, dBm.
    pub floor_dbm: Option<f64>,
    /// Margin, dB.
    pub margin_db: f64,
    /// Severity.
    pub severity: Severity,
    /// First seen.
    pub opened_at: String,
    /// Last changed.
    pub updated_at: String,
    /// When closed.
    pub closed_at: Option<String>,
}

/// Jammer health of a band at a sensor.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JammerRow {
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// Band.
    pub band: String,
    /// Zone.
    pub zone: String,
    /// Effective, degraded or down.
    pub state: JammerStateWire,
    /// Noise rise, dB.
    pub noise_rise_db: f64,
    /// Covered fraction.
    pub covered_fraction: f64,
    /// Last changed.
    pub updated_at: String,
}

/// A sensor.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SensorRow {
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// Zone.
    pub zone: String,
    /// Online or offline.
    pub state: SensorState,
    /// Position, metres, as the sensor reported it.
    pub position_m: Option<[f64; 2]>,
    /// Heartbeat period, seconds.
    pub heartbeat_s: f64,
    /// Last message.
    pub last_seen: String,
    /// Last status message.
    pub status: serde_json::Value,
    /// Highest sequence number received from the sensor.
    pub last_seq: Option<i64>,
    /// Messages the sensor numbered that never arrived (gaps in its sequence numbers).
    pub missing_messages: i64,
}

/// Which facilities a query may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every facility (administrators and auditors).
    All,
    /// The facilities assigned to this user (`user_facilities`).
    User(i64),
}

/// The worst active gap of a facility.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WorstGap {
    /// Sensor.
    pub sensor_id: String,
    /// Zone.
    pub zone: String,
    /// Band.
    pub band: String,
    /// Technology.
    pub technology: Technology,
    /// Severity.
    pub severity: Severity,
    /// Margin, dB.
    pub margin_db: f64,
    /// Cell, when named.
    pub pci: Option<i64>,
    /// Open since.
    pub opened_at: String,
}

/// One facility in the national overview, as its sensors' data say.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct FacilityOverview {
    /// Facility.
    pub facility_id: String,
    /// Sensors online.
    pub sensors_online: i64,
    /// Sensors offline.
    pub sensors_offline: i64,
    /// When a sensor of it was last heard.
    pub last_heard: Option<String>,
    /// Active critical gaps.
    pub gaps_critical: i64,
    /// Active high gaps.
    pub gaps_high: i64,
    /// Active low gaps.
    pub gaps_low: i64,
    /// The active gap with the largest margin.
    pub worst_gap: Option<WorstGap>,
    /// Jammer bands a sensor sees down.
    pub jammer_bands_down: Vec<String>,
    /// Jammer bands a sensor sees degraded.
    pub jammer_bands_degraded: Vec<String>,
}

/// Filters of gap queries.
#[derive(Debug, Clone, Default)]
pub struct GapFilter {
    /// Band name.
    pub band: Option<String>,
    /// Technology.
    pub technology: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// From (inclusive).
    pub since: Option<OffsetDateTime>,
    /// Until (exclusive).
    pub until: Option<OffsetDateTime>,
    /// Most rows.
    pub limit: Option<u32>,
}

fn wire<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

impl Store {
    /// Opens the database (creating a SQLite file when missing) and runs the migrations. Several
    /// servers may open one PostgreSQL database at once: sqlx's migrator takes a lock while it
    /// migrates.
    ///
    /// # Errors
    /// Opening or migrating the database.
    pub async fn open(db: &Database) -> Result<Self, sqlx::Error> {
        let connections = match db.engine() {
            Engine::Sqlite => 4,
            Engine::Postgres => 8,
        };
        let pool = db.connect(connections).await?;
        migrator(db.engine()).run(&pool).await?;
        Ok(Self {
            pool,
            engine: db.engine(),
            claimant: std::sync::Arc::from("centinela-server"),
            heartbeat_sample_s: crate::config::Retention::default().heartbeat_sample_s,
            partitions: std::sync::Arc::default(),
        })
    }

    /// The same store, keeping the history as `retention` says.
    #[must_use]
    pub fn retaining(mut self, retention: &crate::config::Retention) -> Self {
        self.heartbeat_sample_s = retention.heartbeat_sample_s;
        self
    }

    /// The same store, claiming alerts under `name` (each server of a group its own).
    #[must_use]
    pub fn claiming_as(mut self, name: &str) -> Self {
        self.claimant = std::sync::Arc::from(name);
        self
    }

    /// The name this store claims alerts under.
    #[must_use]
    pub fn claimant(&self) -> &str {
        &self.claimant
    }

    /// The pool, for health checks and the user registry.
    #[must_use]
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// The engine behind the store.
    #[must_use]
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// Writes and commits one small row (this server's probe in `maintenance`): whether the
    /// database takes a write now, through a full disk or a lock held too long.
    ///
    /// # Errors
    /// The write or its commit failed.
    pub async fn probe_write(&self) -> Result<(), sqlx::Error> {
        let now = unix(OffsetDateTime::now_utc());
        let mut tx = crate::db::begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO maintenance (name, claimed_by, claimed_until, value) VALUES ($1, $2, $3, 'health probe')
             ON CONFLICT (name) DO UPDATE SET claimed_until = excluded.claimed_until",
        )
        .bind(format!("probe:{}", self.claimant))
        .bind(&*self.claimant)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // Probes of servers gone for a day.
        sqlx::query("DELETE FROM maintenance WHERE name LIKE 'probe:%' AND claimed_until < $1")
            .bind(now - 86_400)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Stores a batch in one transaction (one commit), in order: accepted messages once each
    /// with the current state they change, rejected ones in the rejects list. Returns one
    /// result per item (`None` for rejects).
    ///
    /// The batch reads the current state it touches (gaps, jammer bands, sensors) once, applies
    /// its messages to it in memory in the order they arrived, as if one at a time, and writes
    /// what changed once: a fixed number of statements whatever the batch holds, since every
    /// statement is a round trip to the database (its own thread for SQLite, a socket for
    /// PostgreSQL) and the round trips were most of ingest's time.
    ///
    /// The results come [`Committed`](crate::db::Committed): only after the database said the
    /// batch's transaction committed, so no receipt can be built for a batch that was not.
    ///
    /// # Errors
    /// Database failures: then nothing of the batch is stored.
    pub async fn ingest_batch(
        &self,
        batch: &[Item<'_>],
        received_at: OffsetDateTime,
    ) -> Result<crate::db::Committed<Vec<Option<Ingested>>>, sqlx::Error> {
        let mut tx = crate::db::begin(&self.pool).await?;
        self.lock_sensors(&mut tx, batch).await?;
        let sensors = Self::read_sensors(&mut tx, batch).await?;
        let kept = self.kept(batch, &sensors);
        let seqs = Self::sequences(&mut tx, batch, &kept, received_at).await?;
        let made = self.ensure_partitions(&mut tx, batch, &seqs, &kept).await?;
        let inserted =
            Self::insert_events(&mut tx, self.engine, batch, &seqs, &kept, received_at).await?;
        let stored = Self::stored_payloads(&mut tx, batch, &seqs, &inserted).await?;
        Self::mark_late(&mut tx, batch, &inserted, received_at).await?;
        let mut now = Current {
            gaps: Self::read_gaps(&mut tx, batch).await?,
            jammers: Self::read_jammers(&mut tx, batch).await?,
            sensors,
            ..Current::default()
        };
        let mut out = Vec::with_capacity(batch.len());
        let mut alerts_of: Vec<Vec<Alert>> = Vec::with_capacity(batch.len());
        let mut rejects: Vec<(String, &'static str, String)> = Vec::new();
        let mut conflicts: Vec<(&str, &str, Seal<'_>)> = Vec::new();
        for (((item, seq), inserted), kept) in batch.iter().zip(&seqs).zip(&inserted).zip(&kept) {
            match *item {
                Item::Accept {
                    topic,
                    msg,
                    payload,
                    seal,
                    retained,
                } => {
                    let mut alerts = Vec::new();
                    let r = Self::apply(
                        &mut now,
                        Applied {
                            msg,
                            payload,
                            seal,
                            retained,
                            new_seq: *seq,
                            inserted: *inserted,
                            kept: *kept,
                        },
                        stored.get(&msg.event_id().to_string()).map(String::as_str),
                        received_at,
                        &mut alerts,
                    );
                    match r {
                        Outcome::Replayed => {
                            let e = crate::trust::TrustError::Replayed {
                                topic: topic.to_string(),
                                seq: seal.seq.unsigned_abs(),
                            };
                            rejects.push((topic.to_string(), e.reason(), e.to_string()));
                        }
                        Outcome::Conflict => {
                            let (facility, sensor) = msg.source();
                            conflicts.push((facility, sensor, seal));
                        }
                        Outcome::New | Outcome::Duplicate => {}
                    }
                    out.push(Some(r));
                    alerts_of.push(alerts);
                }
                Item::Reject {
                    topic,
                    reason,
                    detail,
                } => {
                    rejects.push((topic.to_string(), reason, detail.to_string()));
                    out.push(None);
                    alerts_of.push(Vec::new());
                }
            }
        }
        for (facility, sensor, seal) in conflicts {
            // Received and refused: its number is not missing, and no event holds it.
            sqlx::query(
                "UPDATE sequences SET kind = 'conflict'
                 WHERE facility_id = $1 AND sensor_id = $2 AND key = $3 AND seq = $4 AND sha256 = $5",
            )
            .bind(facility)
            .bind(sensor)
            .bind(seal.key)
            .bind(seal.seq)
            .bind(seal.sha256)
            .execute(&mut *tx)
            .await?;
        }
        Self::write_counts(&mut tx, &now.counts).await?;
        Self::write_gaps(&mut tx, &now.gaps).await?;
        Self::write_jammers(&mut tx, &now.jammers).await?;
        Self::write_sensors(&mut tx, &now.sensors).await?;
        Self::write_spectra(&mut tx, &now.spectra).await?;
        Self::write_rejects(&mut tx, &rejects, received_at).await?;
        let mut results = Vec::with_capacity(out.len());
        for (r, alerts) in out.into_iter().zip(alerts_of) {
            results.push(match r {
                None => None,
                Some(Outcome::New) => Some(Ingested::New(
                    self.record_alerts(&mut tx, alerts, received_at).await?,
                )),
                Some(Outcome::Duplicate) => Some(Ingested::Duplicate),
                Some(Outcome::Conflict) => Some(Ingested::Conflict),
                Some(Outcome::Replayed) => Some(Ingested::Replayed),
            });
        }
        let committed = crate::db::commit(tx, results).await?;
        self.known_partitions(made);
        Ok(committed)
    }

    /// Applies one accepted message to the batch's picture of the current state.
    fn apply(
        now: &mut Current,
        a: Applied<'_>,
        stored: Option<&str>,
        received_at: OffsetDateTime,
        alerts: &mut Vec<Alert>,
    ) -> Outcome {
        let Applied {
            msg,
            payload,
            seal,
            retained,
            new_seq,
            inserted,
            kept,
        } = a;
        let (facility, sensor) = msg.source();
        match new_seq {
            None => return Outcome::Replayed,
            Some(true) => {
                let c = now
                    .counts
                    .entry((
                        facility.to_string(),
                        sensor.to_string(),
                        seal.key.to_string(),
                    ))
                    .or_insert((seal.seq, 0));
                c.0 = c.0.max(seal.seq);
                c.1 += 1;
            }
            // The same bytes again: the event's own dedup answers (a spectrum is not kept).
            Some(false) if matches!(msg, Message::Spectrum(_)) => return Outcome::Duplicate,
            Some(_) => {}
        }
        // Liveness is the server's own clock: when it heard from the sensor, not what the
        // sensor claims. A retained status may be old news kept by the broker.
        let heard = if retained {
            msg.observed_at().min(received_at)
        } else {
            received_at
        };
        if let Message::Spectrum(s) = msg {
            let at = ts(s.observed_at);
            let key = (facility.to_string(), sensor.to_string());
            if now.spectra.get(&key).is_none_or(|(t, _)| at >= *t) {
                now.spectra.insert(key, (at, payload.to_string()));
            }
            now.touch(facility, sensor, heard);
            return Outcome::New;
        }
        if kept && !inserted {
            return if stored == Some(payload) {
                Outcome::Duplicate
            } else {
                Outcome::Conflict
            };
        }
        if !kept && new_seq == Some(false) {
            // A heartbeat not kept in the history, delivered again: these very bytes used its
            // number.
            return Outcome::Duplicate;
        }
        match msg {
            Message::Gap(g) => {
                Self::apply_gap(&mut now.gaps, g, alerts);
                now.touch(facility, sensor, heard);
            }
            Message::Jammer(j) => {
                now.apply_jammer(j, alerts);
                now.touch(facility, sensor, heard);
            }
            Message::Status(s) => now.apply_status(s, payload, heard, kept, alerts),
            _ => {}
        }
        Outcome::New
    }

    /// Events stored now for an hour already rolled up (observed more than two hours before
    /// they arrived: a facility's link was cut) mark that hour to be rolled up again.
    async fn mark_late(
        tx: &mut AnyConnection,
        batch: &[Item<'_>],
        inserted: &[bool],
        received_at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        let late_before = received_at - time::Duration::hours(2);
        let hours: std::collections::BTreeSet<(String, String)> = batch
            .iter()
            .zip(inserted)
            .filter_map(|(i, ins)| match *i {
                Item::Accept { msg, .. } if *ins && msg.observed_at() < late_before => {
                    let t = msg.observed_at();
                    let h = t
                        - time::Duration::seconds(t.unix_timestamp().rem_euclid(3600))
                        - time::Duration::nanoseconds(i64::from(t.nanosecond()));
                    Some((msg.source().0.to_string(), ts(h)))
                }
                _ => None,
            })
            .collect();
        let hours: Vec<_> = hours.into_iter().collect();
        for chunk in hours.chunks(ROWS_PER_STATEMENT) {
            let mut q = Rows::new("INSERT INTO rollup_dirty (facility_id, hour) ");
            q.values(chunk, |b, (f, h)| {
                b.bind(f.clone()).bind(h.clone());
            });
            q.push(" ON CONFLICT DO NOTHING");
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// The stored payloads of the batch's events that were not inserted now (resends and
    /// conflicts), by event id, in one statement per chunk.
    async fn stored_payloads(
        tx: &mut AnyConnection,
        batch: &[Item<'_>],
        seqs: &[Option<bool>],
        inserted: &[bool],
    ) -> Result<std::collections::HashMap<String, String>, sqlx::Error> {
        let mut ids: Vec<String> = batch
            .iter()
            .zip(seqs)
            .zip(inserted)
            .filter_map(|((i, seq), ins)| match *i {
                Item::Accept { msg, .. }
                    if seq.is_some() && !ins && !matches!(msg, Message::Spectrum(_)) =>
                {
                    Some(msg.event_id().to_string())
                }
                _ => None,
            })
            .collect();
        ids.sort();
        ids.dedup();
        let mut out = std::collections::HashMap::new();
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut q = Rows::new("SELECT event_id, payload FROM events WHERE event_id IN (");
            for (i, id) in chunk.iter().enumerate() {
                if i > 0 {
                    q.push(", ");
                }
                q.bind(id.clone());
            }
            q.push(")");
            for r in q.build().fetch_all(&mut *tx).await? {
                out.insert(r.try_get("event_id")?, r.try_get("payload")?);
            }
        }
        Ok(out)
    }

    /// Each sensor's and key's count of new numbers, once per batch.
    async fn write_counts(tx: &mut AnyConnection, counts: &SeqCounts) -> Result<(), sqlx::Error> {
        let rows: Vec<_> = counts.iter().collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = Rows::new(
                "INSERT INTO sequence_counts (facility_id, sensor_id, key, max_seq, seen) ",
            );
            q.values(chunk, |b, ((facility, sensor, key), (max_seq, seen))| {
                b.bind(facility.clone())
                    .bind(sensor.clone())
                    .bind(key.clone())
                    .bind(*max_seq)
                    .bind(*seen);
            });
            q.push(
                " ON CONFLICT (facility_id, sensor_id, key) DO UPDATE SET
                 max_seq = CASE WHEN excluded.max_seq > sequence_counts.max_seq
                                THEN excluded.max_seq ELSE sequence_counts.max_seq END,
                 seen = sequence_counts.seen + excluded.seen",
            );
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// The rejected messages of the batch, and the list trimmed to its newest 1,000.
    async fn write_rejects(
        tx: &mut AnyConnection,
        rejects: &[(String, &'static str, String)],
        received_at: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        if rejects.is_empty() {
            return Ok(());
        }
        let at = ts(received_at);
        for chunk in rejects.chunks(ROWS_PER_STATEMENT) {
            let mut q = Rows::new("INSERT INTO rejects (received_at, topic, reason, detail) ");
            q.values(chunk, |b, (topic, reason, detail)| {
                b.bind(at.clone())
                    .bind(topic.chars().take(256).collect::<String>())
                    .bind((*reason).to_string())
                    .bind(detail.clone());
            });
            q.build().execute(&mut *tx).await?;
        }
        sqlx::query("DELETE FROM rejects WHERE id <= (SELECT max(id) - 1000 FROM rejects)")
            .execute(&mut *tx)
            .await?;
        Ok(())
    }

    /// The latest spectrum summary of each sensor of the batch (an older one than stored
    /// changes nothing).
    async fn write_spectra(
        tx: &mut AnyConnection,
        spectra: &std::collections::BTreeMap<(String, String), (String, String)>,
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<_> = spectra.iter().collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q =
                Rows::new("INSERT INTO spectra (facility_id, sensor_id, observed_at, payload) ");
            q.values(chunk, |b, ((facility, sensor), (at, payload))| {
                b.bind(facility.clone())
                    .bind(sensor.clone())
                    .bind(at.clone())
                    .bind(payload.clone());
            });
            q.push(
                " ON CONFLICT (facility_id, sensor_id) DO UPDATE SET observed_at = excluded.observed_at,
                 payload = excluded.payload WHERE excluded.observed_at >= spectra.observed_at",
            );
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Reads the rows of the jammer bands the batch's jammer events name, in one statement per
    /// chunk.
    async fn read_jammers(
        tx: &mut AnyConnection,
        batch: &[Item<'_>],
    ) -> Result<JammerRows, sqlx::Error> {
        let mut keys: Vec<(String, String, String)> = batch
            .iter()
            .filter_map(|i| match *i {
                Item::Accept {
                    msg: Message::Jammer(j),
                    ..
                } => Some((j.facility_id.clone(), j.sensor_id.clone(), j.band.clone())),
                _ => None,
            })
            .collect();
        keys.sort();
        keys.dedup();
        let mut out = JammerRows::default();
        for chunk in keys.chunks(ROWS_PER_STATEMENT / 3) {
            let mut q = Rows::new("WITH v(f, s, b) AS (");
            q.values(chunk, |b, (f, s, band)| {
                b.bind(f.clone()).bind(s.clone()).bind(band.clone());
            });
            q.push(
                ") SELECT j.facility_id, j.sensor_id, j.band, j.state, j.updated_at FROM v
                 JOIN jammers j ON j.facility_id = v.f AND j.sensor_id = v.s AND j.band = v.b",
            );
            for k in chunk {
                out.rows.insert(k.clone(), None);
            }
            for r in q.build().fetch_all(&mut *tx).await? {
                out.rows.insert(
                    (
                        r.try_get("facility_id")?,
                        r.try_get("sensor_id")?,
                        r.try_get("band")?,
                    ),
                    Some(JammerNow {
                        state: from_wire(&r, "state")?,
                        updated_at: r.try_get("updated_at")?,
                        event: None,
                    }),
                );
            }
        }
        Ok(out)
    }

    /// Writes the jammer bands the batch changed.
    async fn write_jammers(
        tx: &mut AnyConnection,
        jammers: &JammerRows,
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<&JammerEvent> = jammers
            .changed
            .iter()
            .filter_map(|k| jammers.rows.get(k).and_then(Option::as_ref))
            .filter_map(|r| r.event.as_ref())
            .collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = Rows::new(
                "INSERT INTO jammers (facility_id, sensor_id, band, zone, state, noise_rise_db,
                 covered_fraction, updated_at, last_event_id) ",
            );
            q.values(chunk, |b, j| {
                b.bind(j.facility_id.clone())
                    .bind(j.sensor_id.clone())
                    .bind(j.band.clone())
                    .bind(j.zone.clone())
                    .bind(wire(&j.state))
                    .bind(j.noise_rise_db)
                    .bind(j.covered_fraction)
                    .bind(ts(j.observed_at))
                    .bind(j.event_id.to_string());
            });
            q.push(
                " ON CONFLICT (facility_id, sensor_id, band) DO UPDATE SET zone = excluded.zone,
                 state = excluded.state, noise_rise_db = excluded.noise_rise_db,
                 covered_fraction = excluded.covered_fraction, updated_at = excluded.updated_at,
                 last_event_id = excluded.last_event_id",
            );
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Reads the rows of every sensor the batch hears from, in one statement per chunk.
    async fn read_sensors(
        tx: &mut AnyConnection,
        batch: &[Item<'_>],
    ) -> Result<SensorRows, sqlx::Error> {
        let mut keys: Vec<(String, String)> = batch
            .iter()
            .filter_map(|i| match *i {
                Item::Accept { msg, .. } => {
                    let (f, s) = msg.source();
                    Some((f.to_string(), s.to_string()))
                }
                Item::Reject { .. } => None,
            })
            .collect();
        keys.sort();
        keys.dedup();
        let mut out = SensorRows::default();
        for chunk in keys.chunks(ROWS_PER_STATEMENT / 2) {
            let mut q = Rows::new("WITH v(f, s) AS (");
            q.values(chunk, |b, (f, s)| {
                b.bind(f.clone()).bind(s.clone());
            });
            q.push(
                ") SELECT x.facility_id, x.sensor_id, x.zone, x.state, x.position_x, x.position_y,
                 x.heartbeat_s, x.last_seen, x.status, x.status_at, x.connected_at, x.will_seq,
                 x.status_kept_at FROM v JOIN sensors x ON x.facility_id = v.f AND x.sensor_id = v.s",
            );
            for k in chunk {
                out.rows.insert(k.clone(), None);
            }
            for r in q.build().fetch_all(&mut *tx).await? {
                out.rows.insert(
                    (r.try_get("facility_id")?, r.try_get("sensor_id")?),
                    Some(SensorNow {
                        zone: r.try_get("zone")?,
                        state: from_wire(&r, "state")?,
                        position: r
                            .try_get::<Option<f64>, _>("position_x")?
                            .zip(r.try_get::<Option<f64>, _>("position_y")?),
                        heartbeat_s: r.try_get("heartbeat_s")?,
                        last_seen: r.try_get("last_seen")?,
                        status: r.try_get("status")?,
                        status_at: r.try_get("status_at")?,
                        connected_at: r.try_get("connected_at")?,
                        will_seq: r.try_get("will_seq")?,
                        status_kept_at: r.try_get("status_kept_at")?,
                    }),
                );
            }
        }
        Ok(out)
    }

    /// Writes the sensors the batch changed, whole: this batch holds their lock (PostgreSQL) or
    /// the database's only writer (SQLite), so what it read is what it overwrites.
    async fn write_sensors(
        tx: &mut AnyConnection,
        sensors: &SensorRows,
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<(&(String, String), &SensorNow)> = sensors
            .changed
            .iter()
            .filter_map(|k| sensors.rows.get(k).and_then(Option::as_ref).map(|r| (k, r)))
            .collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT / 2) {
            let mut q = Rows::new(
                "INSERT INTO sensors (facility_id, sensor_id, zone, state, position_x, position_y,
                 heartbeat_s, last_seen, status, status_at, connected_at, will_seq, status_kept_at) ",
            );
            q.values(chunk, |b, ((facility, sensor), r)| {
                b.bind(facility.clone())
                    .bind(sensor.clone())
                    .bind(r.zone.clone())
                    .bind(wire(&r.state))
                    .bind(r.position.map(|p| p.0))
                    .bind(r.position.map(|p| p.1))
                    .bind(r.heartbeat_s)
                    .bind(r.last_seen.clone())
                    .bind(r.status.clone())
                    .bind(r.status_at.clone())
                    .bind(r.connected_at.clone())
                    .bind(r.will_seq)
                    .bind(r.status_kept_at.clone());
            });
            q.push(
                " ON CONFLICT (facility_id, sensor_id) DO UPDATE SET zone = excluded.zone,
                 state = excluded.state, position_x = excluded.position_x,
                 position_y = excluded.position_y, heartbeat_s = excluded.heartbeat_s,
                 last_seen = excluded.last_seen, status = excluded.status,
                 status_at = excluded.status_at, connected_at = excluded.connected_at,
                 will_seq = excluded.will_seq, status_kept_at = excluded.status_kept_at",
            );
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// Per item, whether its event is kept in the history: every accepted message but
    /// spectrum summaries and the `online` heartbeats between two samples of a sensor (one per
    /// `heartbeat_sample_s`; a sensor coming online, going offline or never sampled is kept).
    fn kept(&self, batch: &[Item<'_>], sensors: &SensorRows) -> Vec<bool> {
        // Per sensor as the batch goes: online, and when its last kept status was observed.
        let mut seen: std::collections::HashMap<(&str, &str), (bool, Option<String>)> =
            std::collections::HashMap::new();
        let sample = time::Duration::seconds_f64(self.heartbeat_sample_s.max(0.0));
        batch
            .iter()
            .map(|i| match *i {
                Item::Accept {
                    msg: Message::Status(st),
                    ..
                } => {
                    let k = (st.facility_id.as_str(), st.sensor_id.as_str());
                    let e = seen.entry(k).or_insert_with(|| {
                        sensors
                            .rows
                            .get(&(k.0.to_string(), k.1.to_string()))
                            .and_then(Option::as_ref)
                            .map_or((false, None), |r| {
                                (r.state == SensorState::Online, r.status_kept_at.clone())
                            })
                    });
                    let online = st.state == SensorState::Online;
                    let at = ts(st.observed_at);
                    let keep = self.heartbeat_sample_s <= 0.0
                        || !online
                        || !e.0
                        || e.1
                            .as_ref()
                            .is_none_or(|last| ts(st.observed_at - sample) >= *last);
                    e.0 = online;
                    if keep && e.1.as_ref().is_none_or(|last| at > *last) {
                        e.1 = Some(at);
                    }
                    keep
                }
                Item::Accept {
                    msg: Message::Spectrum(_),
                    ..
                } => false,
                Item::Accept { .. } => true,
                Item::Reject { .. } => false,
            })
            .collect()
    }

    /// PostgreSQL keeps events in a partition per month of their observed time: the months this
    /// batch writes into must exist. Made here, in the batch's transaction, when a month is new
    /// to this server; returns them, to be known once the transaction commits (a batch rolled
    /// back takes its partitions with it).
    async fn ensure_partitions(
        &self,
        tx: &mut AnyConnection,
        batch: &[Item<'_>],
        seqs: &[Option<bool>],
        kept: &[bool],
    ) -> Result<Vec<String>, sqlx::Error> {
        if self.engine != Engine::Postgres {
            return Ok(Vec::new());
        }
        let months: std::collections::BTreeSet<String> = batch
            .iter()
            .zip(seqs)
            .zip(kept)
            .filter_map(|((i, seq), k)| match *i {
                Item::Accept { msg, .. } if seq.is_some() && *k => {
                    Some(ts(msg.observed_at())[..7].to_string())
                }
                _ => None,
            })
            .collect();
        let missing: Vec<String> = {
            let known = self
                .partitions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            months.into_iter().filter(|m| !known.contains(m)).collect()
        };
        if !missing.is_empty() {
            create_partitions(tx, &missing).await?;
        }
        Ok(missing)
    }

    /// Months whose partition exists now (their transaction committed).
    fn known_partitions(&self, months: impl IntoIterator<Item = String>) {
        self.partitions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend(months);
    }

    /// Several servers share a PostgreSQL database: each sensor's current state (gaps, jammer
    /// bands, liveness, sequence counts) is read and written by one transaction at a time. A
    /// batch takes a transaction-scoped advisory lock per sensor it holds, in one order (so two
    /// batches never wait on each other in a circle), before it reads anything; another
    /// server's batch of the same sensor waits for this one's commit. SQLite has one writer.
    async fn lock_sensors(
        &self,
        tx: &mut AnyConnection,
        batch: &[Item<'_>],
    ) -> Result<(), sqlx::Error> {
        if self.engine != Engine::Postgres {
            return Ok(());
        }
        let mut keys: Vec<i64> = batch
            .iter()
            .filter_map(|i| match *i {
                Item::Accept { msg, .. } => {
                    let (facility, sensor) = msg.source();
                    Some(sensor_lock_key(facility, sensor))
                }
                Item::Reject { .. } => None,
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            // Volatile functions of the select list run after ORDER BY (PostgreSQL 9.6 on):
            // the locks are taken in key order.
            let mut q = Rows::new("SELECT pg_advisory_xact_lock(k) FROM (");
            q.values(chunk, |r, k| {
                r.bind(*k);
            });
            q.push(") AS v(k) ORDER BY k");
            q.build().fetch_all(&mut *tx).await?;
        }
        Ok(())
    }

    /// Records the sequence number of every accepted message of `batch`, in order: per item,
    /// `Some(true)` when it is new, `Some(false)` when these same bytes used it before (a
    /// resend), `None` when other bytes did (a replay) or the item is a reject.
    async fn sequences(
        tx: &mut AnyConnection,
        batch: &[Item<'_>],
        kept: &[bool],
        received_at: OffsetDateTime,
    ) -> Result<Vec<Option<bool>>, sqlx::Error> {
        let accepted: Vec<(&Message, Seal<'_>, bool)> = batch
            .iter()
            .zip(kept)
            .filter_map(|(i, k)| match *i {
                Item::Accept { msg, seal, .. } => Some((msg, seal, *k)),
                Item::Reject { .. } => None,
            })
            .collect();
        let at = ts(received_at);
        let mut fresh: std::collections::HashSet<(String, String, String, i64)> =
            std::collections::HashSet::new();
        for chunk in accepted.chunks(ROWS_PER_STATEMENT) {
            let mut q = Rows::new(
                "INSERT INTO sequences (facility_id, sensor_id, key, seq, kind, sha256, received_at,
                 observed_at) ",
            );
            q.values(chunk, |b, (msg, seal, kept)| {
                let (facility, sensor) = msg.source();
                // A heartbeat not kept in the history: its number was received, no event
                // holds it.
                let kind = match msg {
                    Message::Status(_) if !kept => "heartbeat",
                    _ => msg.kind().as_str(),
                };
                b.bind(facility.to_string())
                    .bind(sensor.to_string())
                    .bind(seal.key.to_string())
                    .bind(seal.seq)
                    .bind(kind.to_string())
                    .bind(seal.sha256.to_string())
                    .bind(at.clone())
                    .bind(ts(msg.observed_at()));
            });
            q.push(" ON CONFLICT DO NOTHING RETURNING facility_id, sensor_id, key, seq");
            for r in q.build().fetch_all(&mut *tx).await? {
                fresh.insert((
                    r.get("facility_id"),
                    r.get("sensor_id"),
                    r.get("key"),
                    r.get("seq"),
                ));
            }
        }
        // Numbers used before (not taken now): the digest they were used with, read once.
        let mut used: Vec<(String, String, String, i64)> = accepted
            .iter()
            .map(|(msg, seal, _)| {
                let (facility, sensor) = msg.source();
                (
                    facility.to_string(),
                    sensor.to_string(),
                    seal.key.to_string(),
                    seal.seq,
                )
            })
            .filter(|k| !fresh.contains(k))
            .collect();
        used.sort();
        used.dedup();
        let mut digests: std::collections::HashMap<(String, String, String, i64), String> =
            std::collections::HashMap::new();
        for chunk in used.chunks(ROWS_PER_STATEMENT / 4) {
            // A join on the keys, not a row-value IN: SQLite scans the whole table for that.
            let mut q = Rows::new("WITH v(f, s, k, n) AS (");
            q.values(chunk, |b, (f, s, k, n)| {
                b.bind(f.clone()).bind(s.clone()).bind(k.clone()).bind(*n);
            });
            q.push(
                ") SELECT q.facility_id, q.sensor_id, q.key, q.seq, q.sha256 FROM v JOIN sequences q
                 ON q.facility_id = v.f AND q.sensor_id = v.s AND q.key = v.k AND q.seq = v.n",
            );
            for r in q.build().fetch_all(&mut *tx).await? {
                digests.insert(
                    (
                        r.try_get("facility_id")?,
                        r.try_get("sensor_id")?,
                        r.try_get("key")?,
                        r.try_get("seq")?,
                    ),
                    r.try_get("sha256")?,
                );
            }
        }
        let mut out = Vec::with_capacity(batch.len());
        for item in batch {
            let Item::Accept { msg, seal, .. } = *item else {
                out.push(None);
                continue;
            };
            let (facility, sensor) = msg.source();
            // The first message of the batch with a new number took it.
            let key = (
                facility.to_string(),
                sensor.to_string(),
                seal.key.to_string(),
                seal.seq,
            );
            if fresh.remove(&key) {
                digests.insert(key, seal.sha256.to_string());
                out.push(Some(true));
                continue;
            }
            // Used before, by this batch or an earlier one: by these bytes (a resend) or others.
            out.push(
                digests
                    .get(&key)
                    .is_some_and(|d| d == seal.sha256)
                    .then_some(false),
            );
        }
        Ok(out)
    }

    /// Inserts the events that `seqs` admits (every accepted message but spectra and replays),
    /// in order: per item, whether its event was stored now (the first of the batch with its
    /// `event_id`, and none stored before).
    async fn insert_events(
        tx: &mut AnyConnection,
        engine: Engine,
        batch: &[Item<'_>],
        seqs: &[Option<bool>],
        kept: &[bool],
        received_at: OffsetDateTime,
    ) -> Result<Vec<bool>, sqlx::Error> {
        // Per item, the event it would store: every accepted message the history keeps, but
        // replays.
        let admitted: Vec<Option<(&Message, &str, Seal<'_>)>> = batch
            .iter()
            .zip(seqs)
            .zip(kept)
            .map(|((i, seq), k)| match *i {
                Item::Accept {
                    msg, payload, seal, ..
                } if seq.is_some() && *k => Some((msg, payload, seal)),
                _ => None,
            })
            .collect();
        let events: Vec<(&Message, &str, Seal<'_>)> = admitted.iter().flatten().copied().collect();
        let at = ts(received_at);
        let mut fresh: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut q = Rows::new(
                "INSERT INTO events (event_id, kind, facility_id, sensor_id, observed_at, received_at, payload, key, seq,
                 band, technology, zone) ",
            );
            q.values(chunk, |b, (msg, payload, seal)| {
                let (facility, sensor) = msg.source();
                let (band, technology, zone) = filtered_by(msg);
                b.bind(msg.event_id().to_string())
                    .bind(msg.kind().as_str().to_string())
                    .bind(facility.to_string())
                    .bind(sensor.to_string())
                    .bind(ts(msg.observed_at()))
                    .bind(at.clone())
                    .bind(payload.to_string())
                    .bind(seal.key.to_string())
                    .bind(seal.seq)
                    .bind(band.map(str::to_string))
                    .bind(technology.map(str::to_string))
                    .bind(zone.map(str::to_string));
            });
            // PostgreSQL's events are partitioned by time: their key holds it.
            q.push(match engine {
                Engine::Sqlite => " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
                Engine::Postgres => {
                    " ON CONFLICT (event_id, observed_at) DO NOTHING RETURNING event_id"
                }
            });
            for r in q.build().fetch_all(&mut *tx).await? {
                fresh.insert(r.get("event_id"));
            }
        }
        Ok(admitted
            .iter()
            .map(|a| a.is_some_and(|(msg, _, _)| fresh.remove(&msg.event_id().to_string())))
            .collect())
    }

    /// Records alerts in the transaction that raised them, claimed by this server.
    async fn record_alerts(
        &self,
        tx: &mut AnyConnection,
        alerts: Vec<Alert>,
        now: OffsetDateTime,
    ) -> Result<Vec<Raised>, sqlx::Error> {
        let mut out = Vec::with_capacity(alerts.len());
        let lease = unix(now) + i64::try_from(ALERT_LEASE.as_secs()).unwrap_or(30);
        for alert in alerts {
            let (facility, sensor) = alert.source();
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO alerts (raised_at, kind, facility_id, sensor_id, body, claimed_by,
                 claimed_until, attempts) VALUES ($1, $2, $3, $4, $5, $6, $7, 1) RETURNING id",
            )
            .bind(ts(now))
            .bind(alert.label())
            .bind(facility)
            .bind(sensor)
            .bind(serde_json::to_string(&alert).unwrap_or_default())
            .bind(self.claimant.to_string())
            .bind(lease)
            .fetch_one(&mut *tx)
            .await?;
            out.push(Raised {
                id,
                attempt: 1,
                alert,
            });
        }
        Ok(out)
    }

    /// Applies a gap event to the batch's picture of its gap (`gaps`, read from the table
    /// once per batch and written back at its end): an older event delivered late is history
    /// only; a gap that opens critical, or becomes critical, raises an alert.
    fn apply_gap(gaps: &mut GapRows, g: &GapEvent, alerts: &mut Vec<Alert>) {
        let key = (
            g.facility_id.clone(),
            g.sensor_id.clone(),
            g.gap_key.clone(),
        );
        let at = ts(g.observed_at);
        let prev = gaps.rows.get(&key).and_then(Option::as_ref);
        if prev.is_some_and(|p| p.updated_at > at) {
            return; // an older event delivered late: history only
        }
        let was_critical_open =
            prev.is_some_and(|p| p.state != GapState::Closed && p.severity == Severity::Critical);
        // A gap's opening is kept through its updates; a closed gap that comes back opens anew.
        let opened_at = match prev {
            Some(p) if !(p.state == GapState::Closed && g.state != GapState::Closed) => {
                p.opened_at.clone()
            }
            _ => at.clone(),
        };
        let cell = g.cell.clone().unwrap_or_default();
        if g.state != GapState::Closed && g.severity == Severity::Critical && !was_critical_open {
            alerts.push(Alert::CriticalGap {
                facility_id: g.facility_id.clone(),
                sensor_id: g.sensor_id.clone(),
                zone: g.zone.clone(),
                band: g.band.clone(),
                technology: g.technology.as_str().to_string(),
                pci: cell.pci,
                margin_db: g.margin_db,
            });
        }
        gaps.rows.insert(
            key.clone(),
            Some(GapNow {
                state: g.state,
                severity: g.severity,
                opened_at,
                closed_at: (g.state == GapState::Closed).then(|| at.clone()),
                updated_at: at,
                event: Some(g.clone()),
            }),
        );
        gaps.changed.insert(key);
    }

    /// Reads the current state of every gap the batch's gap events name, in one statement per
    /// chunk.
    async fn read_gaps(tx: &mut AnyConnection, batch: &[Item<'_>]) -> Result<GapRows, sqlx::Error> {
        let mut keys: Vec<(String, String, String)> = batch
            .iter()
            .filter_map(|i| match *i {
                Item::Accept {
                    msg: Message::Gap(g),
                    ..
                } => Some((
                    g.facility_id.clone(),
                    g.sensor_id.clone(),
                    g.gap_key.clone(),
                )),
                _ => None,
            })
            .collect();
        keys.sort();
        keys.dedup();
        let mut out = GapRows::default();
        for chunk in keys.chunks(ROWS_PER_STATEMENT / 3) {
            let mut q = Rows::new("WITH v(f, s, k) AS (");
            q.values(chunk, |b, (f, s, k)| {
                b.bind(f.clone()).bind(s.clone()).bind(k.clone());
            });
            q.push(
                ") SELECT g.facility_id, g.sensor_id, g.gap_key, g.state, g.severity, g.updated_at,
                 g.opened_at FROM v JOIN gaps g
                 ON g.facility_id = v.f AND g.sensor_id = v.s AND g.gap_key = v.k",
            );
            for k in chunk {
                out.rows.insert(k.clone(), None);
            }
            for r in q.build().fetch_all(&mut *tx).await? {
                out.rows.insert(
                    (
                        r.try_get("facility_id")?,
                        r.try_get("sensor_id")?,
                        r.try_get("gap_key")?,
                    ),
                    Some(GapNow {
                        state: from_wire(&r, "state")?,
                        severity: from_wire(&r, "severity")?,
                        updated_at: r.try_get("updated_at")?,
                        opened_at: r.try_get("opened_at")?,
                        closed_at: None,
                        event: None,
                    }),
                );
            }
        }
        Ok(out)
    }

    /// Writes the gaps the batch changed, in a statement per chunk.
    async fn write_gaps(tx: &mut AnyConnection, gaps: &GapRows) -> Result<(), sqlx::Error> {
        let rows: Vec<(&GapNow, &GapEvent)> = gaps
            .changed
            .iter()
            .filter_map(|k| gaps.rows.get(k).and_then(Option::as_ref))
            .filter_map(|r| r.event.as_ref().map(|e| (r, e)))
            .collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = Rows::new(
                "INSERT INTO gaps (facility_id, sensor_id, gap_key, state, zone, band, technology, detector,
                 center_hz, bandwidth_hz, pci, earfcn, nr_arfcn, arfcn, bsic, power_dbm, floor_dbm, margin_db,
                 severity, opened_at, updated_at, closed_at, last_event_id) ",
            );
            q.values(chunk, |b, (r, g)| {
                let cell = g.cell.clone().unwrap_or_default();
                b.bind(g.facility_id.clone())
                    .bind(g.sensor_id.clone())
                    .bind(g.gap_key.clone())
                    .bind(wire(&r.state))
                    .bind(g.zone.clone())
                    .bind(g.band.clone())
                    .bind(g.technology.as_str().to_string())
                    .bind(wire(&g.detector))
                    .bind(g.center_hz)
                    .bind(g.bandwidth_hz)
                    .bind(cell.pci.map(i64::from))
                    .bind(cell.earfcn.map(i64::from))
                    .bind(cell.nr_arfcn.map(i64::from))
                    .bind(cell.arfcn.map(i64::from))
                    .bind(cell.bsic.map(i64::from))
                    .bind(g.power_dbm)
                    .bind(g.floor_dbm)
                    .bind(g.margin_db)
                    .bind(wire(&r.severity))
                    .bind(r.opened_at.clone())
                    .bind(r.updated_at.clone())
                    .bind(r.closed_at.clone())
                    .bind(g.event_id.to_string());
            });
            q.push(
                " ON CONFLICT (facility_id, sensor_id, gap_key) DO UPDATE SET state = excluded.state,
                 zone = excluded.zone, band = excluded.band, technology = excluded.technology,
                 detector = excluded.detector, center_hz = excluded.center_hz,
                 bandwidth_hz = excluded.bandwidth_hz, pci = excluded.pci, earfcn = excluded.earfcn,
                 nr_arfcn = excluded.nr_arfcn, arfcn = excluded.arfcn, bsic = excluded.bsic,
                 power_dbm = excluded.power_dbm, floor_dbm = excluded.floor_dbm,
                 margin_db = excluded.margin_db, severity = excluded.severity,
                 opened_at = excluded.opened_at, updated_at = excluded.updated_at,
                 closed_at = excluded.closed_at, last_event_id = excluded.last_event_id",
            );
            q.build().execute(&mut *tx).await?;
        }
        Ok(())
    }

    /// The newest rejected messages.
    ///
    /// # Errors
    /// Database failures.
    pub async fn rejects(&self, limit: u32) -> Result<Vec<serde_json::Value>, sqlx::Error> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT received_at, topic, reason, detail FROM rejects ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(at, topic, reason, detail)| {
                serde_json::json!({"received_at": at, "topic": topic, "reason": reason, "detail": detail})
            })
            .collect())
    }

    /// Gaps of a facility: the active ones (`active`), or all current rows.
    ///
    /// # Errors
    /// Database failures.
    pub async fn gaps(
        &self,
        facility: &str,
        active: bool,
        f: &GapFilter,
    ) -> Result<Vec<GapRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT * FROM gaps WHERE facility_id = $1 AND ($2 = 0 OR state != 'closed')
             AND ($3 IS NULL OR band = $3) AND ($4 IS NULL OR technology = $4)
             AND ($5 IS NULL OR zone = $5) AND ($6 IS NULL OR updated_at >= $6)
             AND ($7 IS NULL OR updated_at < $7)
             ORDER BY margin_db DESC, sensor_id, gap_key LIMIT $8",
        )
        .bind(facility)
        .bind(i64::from(active))
        .bind(&f.band)
        .bind(&f.technology)
        .bind(&f.zone)
        .bind(f.since.map(ts))
        .bind(f.until.map(ts))
        .bind(i64::from(f.limit.unwrap_or(10_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(GapRow {
                    facility_id: r.get("facility_id"),
                    sensor_id: r.get("sensor_id"),
                    gap_key: r.get("gap_key"),
                    state: from_wire(r, "state")?,
                    zone: r.get("zone"),
                    band: r.get("band"),
                    technology: from_wire(r, "technology")?,
                    detector: from_wire(r, "detector")?,
                    center_hz: r.get("center_hz"),
                    bandwidth_hz: r.get("bandwidth_hz"),
                    pci: r.get("pci"),
                    earfcn: r.get("earfcn"),
                    nr_arfcn: r.get("nr_arfcn"),
                    arfcn: r.get("arfcn"),
                    bsic: r.get("bsic"),
                    power_dbm: r.get("power_dbm"),
                    floor_dbm: r.get("floor_dbm"),
                    margin_db: r.get("margin_db"),
                    severity: from_wire(r, "severity")?,
                    opened_at: r.get("opened_at"),
                    updated_at: r.get("updated_at"),
                    closed_at: r.get("closed_at"),
                })
            })
            .collect()
    }

    /// Gap events of a facility, newest first, as they arrived.
    ///
    /// # Errors
    /// Database failures.
    pub async fn gap_history(
        &self,
        facility: &str,
        f: &GapFilter,
    ) -> Result<Vec<serde_json::Value>, sqlx::Error> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT payload FROM events WHERE facility_id = $1 AND kind = 'gap'
             AND ($2 IS NULL OR observed_at >= $2) AND ($3 IS NULL OR observed_at < $3)
             AND ($4 IS NULL OR band = $4) AND ($5 IS NULL OR technology = $5)
             AND ($6 IS NULL OR zone = $6)
             ORDER BY observed_at DESC, event_id DESC LIMIT $7",
        )
        .bind(facility)
        .bind(f.since.map(ts))
        .bind(f.until.map(ts))
        .bind(&f.band)
        .bind(&f.technology)
        .bind(&f.zone)
        .bind(i64::from(f.limit.unwrap_or(1000)))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(p,)| message_json(&p))
            .collect())
    }

    /// Jammer health rows of a facility.
    ///
    /// # Errors
    /// Database failures.
    pub async fn jammers(&self, facility: &str) -> Result<Vec<JammerRow>, sqlx::Error> {
        let rows =
            sqlx::query("SELECT * FROM jammers WHERE facility_id = $1 ORDER BY band, sensor_id")
                .bind(facility)
                .fetch_all(&self.pool)
                .await?;
        rows.iter()
            .map(|r| {
                Ok(JammerRow {
                    facility_id: r.get("facility_id"),
                    sensor_id: r.get("sensor_id"),
                    band: r.get("band"),
                    zone: r.get("zone"),
                    state: from_wire(r, "state")?,
                    noise_rise_db: r.get("noise_rise_db"),
                    covered_fraction: r.get("covered_fraction"),
                    updated_at: r.get("updated_at"),
                })
            })
            .collect()
    }

    /// Sensors of a facility (all facilities when `None`).
    ///
    /// # Errors
    /// Database failures.
    pub async fn sensors(&self, facility: Option<&str>) -> Result<Vec<SensorRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT s.*,
               (SELECT max(c.max_seq) FROM sequence_counts c
                 WHERE c.facility_id = s.facility_id AND c.sensor_id = s.sensor_id) AS last_seq,
               CAST((SELECT coalesce(sum(c.max_seq - c.seen), 0) FROM sequence_counts c
                 WHERE c.facility_id = s.facility_id AND c.sensor_id = s.sensor_id) AS BIGINT)
               -- An online sensor's Last Will holds a number in reserve until it is sent.
               - (CASE WHEN s.state = 'online'
                       AND s.will_seq IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM sequences q
                            WHERE q.facility_id = s.facility_id AND q.sensor_id = s.sensor_id
                              AND q.seq = s.will_seq)
                       AND s.will_seq < (SELECT max(c.max_seq)
                            FROM sequence_counts c WHERE c.facility_id = s.facility_id
                              AND c.sensor_id = s.sensor_id)
                  THEN 1 ELSE 0 END) AS missing
             FROM sensors s WHERE ($1 IS NULL OR s.facility_id = $1) ORDER BY s.facility_id, s.sensor_id",
        )
        .bind(facility)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let x: Option<f64> = r.get("position_x");
                let y: Option<f64> = r.get("position_y");
                let status: String = r.get("status");
                Ok(SensorRow {
                    facility_id: r.get("facility_id"),
                    sensor_id: r.get("sensor_id"),
                    zone: r.get("zone"),
                    state: from_wire(r, "state")?,
                    position_m: x.zip(y).map(|(x, y)| [x, y]),
                    heartbeat_s: r.get("heartbeat_s"),
                    last_seen: r.get("last_seen"),
                    status: message_json(&status).unwrap_or_default(),
                    last_seq: r.get("last_seq"),
                    missing_messages: r.get("missing"),
                })
            })
            .collect()
    }

    /// Marks offline the online sensors not heard from for `factor` heartbeats; returns their
    /// alerts, recorded and claimed by this server. Every server of a group runs it: a sensor
    /// goes offline, and its alert is recorded, by the one whose update finds it still online
    /// and unheard since it looked.
    ///
    /// # Errors
    /// Database failures.
    pub async fn expire_sensors(
        &self,
        now: OffsetDateTime,
        factor: f64,
    ) -> Result<Vec<Raised>, sqlx::Error> {
        let online: Vec<(String, String, String, f64, String)> = sqlx::query_as(
            "SELECT facility_id, sensor_id, zone, heartbeat_s, last_seen FROM sensors
             WHERE state = 'online'",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut alerts = Vec::new();
        for (facility_id, sensor_id, zone, heartbeat_s, last_seen) in online {
            let Ok(seen) = parse_ts(&last_seen) else {
                continue;
            };
            let silent = (now - seen).as_seconds_f64();
            if silent <= factor * heartbeat_s {
                continue;
            }
            let mut tx = crate::db::begin(&self.pool).await?;
            if self.engine == Engine::Postgres {
                // Ingest writes a sensor's row whole under this lock: the watchdog takes it too.
                sqlx::query("SELECT pg_advisory_xact_lock($1)")
                    .bind(sensor_lock_key(&facility_id, &sensor_id))
                    .fetch_all(&mut *tx)
                    .await?;
            }
            let n = sqlx::query(
                "UPDATE sensors SET state = 'offline' WHERE facility_id = $1 AND sensor_id = $2 AND state = 'online' AND last_seen = $3",
            )
            .bind(&facility_id)
            .bind(&sensor_id)
            .bind(&last_seen)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n > 0 {
                let alert = Alert::SensorOffline {
                    facility_id,
                    sensor_id,
                    zone,
                    reason: format!("silent for {silent:.0} s"),
                };
                alerts.extend(self.record_alerts(&mut tx, vec![alert], now).await?);
            }
            tx.commit().await?;
        }
        Ok(alerts)
    }

    /// Records a tamper alert for the sensor it names unless one was recorded, by any server,
    /// within `interval`; `None` when one was.
    ///
    /// # Errors
    /// Database failures.
    pub async fn claim_tamper(
        &self,
        alert: Alert,
        now: OffsetDateTime,
        interval: std::time::Duration,
    ) -> Result<Option<Raised>, sqlx::Error> {
        let (facility, sensor) = alert.source();
        let t = unix(now);
        let before = t - i64::try_from(interval.as_secs()).unwrap_or(i64::MAX / 2);
        let mut tx = crate::db::begin(&self.pool).await?;
        let won = sqlx::query(
            "INSERT INTO tamper_alerts (facility_id, sensor_id, last_at) VALUES ($1, $2, $3)
             ON CONFLICT (facility_id, sensor_id) DO UPDATE SET last_at = excluded.last_at
             WHERE tamper_alerts.last_at <= $4",
        )
        .bind(facility.to_string())
        .bind(sensor.to_string())
        .bind(t)
        .bind(before)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if !won {
            return Ok(None);
        }
        let raised = self.record_alerts(&mut tx, vec![alert], now).await?;
        tx.commit().await?;
        Ok(raised.into_iter().next())
    }

    /// Claims, for this server, up to `limit` alerts that no server has said and whose claim
    /// has run out (their server died, or their webhook failed and their wait is over).
    ///
    /// # Errors
    /// Database failures.
    pub async fn claim_alerts(
        &self,
        now: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<Raised>, sqlx::Error> {
        let t = unix(now);
        let lease = t + i64::try_from(ALERT_LEASE.as_secs()).unwrap_or(30);
        // PostgreSQL: rows another server is claiming right now are skipped, not waited for.
        let pick = match self.engine {
            Engine::Postgres => {
                "SELECT id FROM alerts WHERE outcome IS NULL AND claimed_until < $3
                 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED"
            }
            Engine::Sqlite => {
                "SELECT id FROM alerts WHERE outcome IS NULL AND claimed_until < $3
                 ORDER BY id LIMIT $4"
            }
        };
        let rows: Vec<(i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE alerts SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1
             WHERE id IN ({pick}) RETURNING id, attempts, body"
        )))
        .bind(self.claimant.to_string())
        .bind(lease)
        .bind(t)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (id, attempt, body) in rows {
            match serde_json::from_str(&body) {
                Ok(alert) => out.push(Raised { id, attempt, alert }),
                Err(e) => {
                    tracing::error!("alert {id}: its stored body does not read as an alert: {e}");
                    let _ = self.settle_alert(id, crate::alerts::Outcome::Failed).await;
                }
            }
        }
        out.sort_by_key(|r| r.id);
        Ok(out)
    }

    /// Records how saying alert `id` ended.
    ///
    /// # Errors
    /// Database failures.
    pub async fn settle_alert(
        &self,
        id: i64,
        outcome: crate::alerts::Outcome,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE alerts SET outcome = $1, sent_at = $2 WHERE id = $3")
            .bind(outcome.as_str())
            .bind(ts(OffsetDateTime::now_utc()))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The national overview: per facility with data, its sensors online and offline, its
    /// active gaps by severity and the worst of them, and its jammer bands not effective; in a
    /// fixed number of statements whatever the number of facilities. Only the facilities of
    /// `scope` are read: the principal's rights are part of every query.
    ///
    /// # Errors
    /// Database failures.
    pub async fn overview(&self, scope: &Scope) -> Result<Vec<FacilityOverview>, sqlx::Error> {
        let (all, user) = match scope {
            Scope::All => (1_i64, 0_i64),
            Scope::User(id) => (0, *id),
        };
        let mine = "($1 = 1 OR facility_id IN (SELECT facility_id FROM user_facilities WHERE user_id = $2))";
        let mut out: std::collections::BTreeMap<String, FacilityOverview> =
            std::collections::BTreeMap::new();
        let entry = |out: &mut std::collections::BTreeMap<String, FacilityOverview>, id: String| {
            out.entry(id.clone())
                .or_insert_with(|| FacilityOverview {
                    facility_id: id,
                    ..FacilityOverview::default()
                })
                .facility_id
                .clone()
        };
        let sensors: Vec<(String, String, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT facility_id, state, count(*), max(last_seen) FROM sensors WHERE {mine}
             GROUP BY facility_id, state"
            )))
            .bind(all)
            .bind(user)
            .fetch_all(&self.pool)
            .await?;
        for (f, state, n, last) in sensors {
            let id = entry(&mut out, f);
            let o = out.get_mut(&id).expect("entered");
            if state == "online" {
                o.sensors_online += n;
            } else {
                o.sensors_offline += n;
            }
            if o.last_heard.as_ref().is_none_or(|l| *l < last) {
                o.last_heard = Some(last);
            }
        }
        let counts: Vec<(String, String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT facility_id, severity, count(*) FROM gaps WHERE state != 'closed' AND {mine}
             GROUP BY facility_id, severity"
        )))
        .bind(all)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        for (f, severity, n) in counts {
            let id = entry(&mut out, f);
            let o = out.get_mut(&id).expect("entered");
            match severity.as_str() {
                "critical" => o.gaps_critical += n,
                "high" => o.gaps_high += n,
                _ => o.gaps_low += n,
            }
        }
        let worst = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT * FROM (SELECT facility_id, sensor_id, zone, band, technology, severity,
                margin_db, pci, opened_at,
                row_number() OVER (PARTITION BY facility_id
                                   ORDER BY margin_db DESC, sensor_id, gap_key) AS pos
              FROM gaps WHERE state != 'closed' AND {mine}) AS t WHERE pos = 1"
        )))
        .bind(all)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        for r in worst {
            let id = entry(&mut out, r.try_get("facility_id")?);
            let o = out.get_mut(&id).expect("entered");
            o.worst_gap = Some(WorstGap {
                sensor_id: r.try_get("sensor_id")?,
                zone: r.try_get("zone")?,
                band: r.try_get("band")?,
                technology: from_wire(&r, "technology")?,
                severity: from_wire(&r, "severity")?,
                margin_db: r.try_get("margin_db")?,
                pci: r.try_get("pci")?,
                opened_at: r.try_get("opened_at")?,
            });
        }
        let jammers: Vec<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT DISTINCT facility_id, band, state FROM jammers
             WHERE state != 'effective' AND {mine} ORDER BY facility_id, band"
        )))
        .bind(all)
        .bind(user)
        .fetch_all(&self.pool)
        .await?;
        for (f, band, state) in jammers {
            let id = entry(&mut out, f);
            let o = out.get_mut(&id).expect("entered");
            let list = if state == "down" {
                &mut o.jammer_bands_down
            } else {
                &mut o.jammer_bands_degraded
            };
            if !list.contains(&band) {
                list.push(band);
            }
        }
        Ok(out.into_values().collect())
    }

    /// The aggregates of a facility by hour or by day (`daily`), oldest first, filtered by zone
    /// and band; time from `since` (default: a week of hours, or 90 days) to `until`. A row of
    /// band `""` holds the zone's sensor uptime.
    ///
    /// # Errors
    /// Database failures.
    pub async fn aggregates(
        &self,
        facility: &str,
        daily: bool,
        f: &GapFilter,
    ) -> Result<Vec<serde_json::Value>, sqlx::Error> {
        let (table, at, period_s) = if daily {
            ("daily", "day", 86_400.0)
        } else {
            ("hourly", "hour", 3_600.0)
        };
        let since = f.since.unwrap_or_else(|| {
            OffsetDateTime::now_utc() - time::Duration::days(if daily { 90 } else { 7 })
        });
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT zone, band, {at} AS at, jammer_effective_s, jammer_degraded_s, jammer_down_s,
             gap_low_min, gap_high_min, gap_critical_min, sensor_up_s, sensors FROM {table}
             WHERE facility_id = $1 AND ($2 IS NULL OR zone = $2) AND ($3 IS NULL OR band = $3)
             AND {at} >= $4 AND ($5 IS NULL OR {at} < $5)
             ORDER BY {at}, zone, band LIMIT $6"
        )))
        .bind(facility)
        .bind(&f.zone)
        .bind(&f.band)
        .bind(ts(since))
        .bind(f.until.map(ts))
        .bind(i64::from(f.limit.unwrap_or(10_000)))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let eff: f64 = r.try_get("jammer_effective_s")?;
                let deg: f64 = r.try_get("jammer_degraded_s")?;
                let down: f64 = r.try_get("jammer_down_s")?;
                let up: f64 = r.try_get("sensor_up_s")?;
                let sensors: i64 = r.try_get("sensors")?;
                let band: String = r.try_get("band")?;
                let seen = eff + deg + down;
                let frac = |x: f64, of: f64| (of > 0.0).then(|| (x / of * 1000.0).round() / 1000.0);
                Ok(serde_json::json!({
                    "zone": r.try_get::<String, _>("zone")?,
                    "band": (!band.is_empty()).then_some(band),
                    if daily { "day" } else { "hour" }: r.try_get::<String, _>("at")?,
                    "jammer_effective_s": eff,
                    "jammer_degraded_s": deg,
                    "jammer_down_s": down,
                    "jammer_down_fraction": frac(down, seen),
                    "gap_low_min": r.try_get::<f64, _>("gap_low_min")?,
                    "gap_high_min": r.try_get::<f64, _>("gap_high_min")?,
                    "gap_critical_min": r.try_get::<f64, _>("gap_critical_min")?,
                    "sensor_up_s": up,
                    "sensor_up_fraction": if seen > 0.0 { None } else { frac(up, sensors as f64 * period_s) },
                    "sensors": sensors,
                }))
            })
            .collect()
    }

    /// Number of stored events of each kind.
    ///
    /// # Errors
    /// Database failures.
    pub async fn event_counts(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as("SELECT kind, count(*) FROM events GROUP BY kind ORDER BY kind")
            .fetch_all(&self.pool)
            .await
    }

    /// Latest spectrum summary of each sensor of a facility.
    ///
    /// # Errors
    /// Database failures.
    pub async fn spectra(&self, facility: &str) -> Result<Vec<serde_json::Value>, sqlx::Error> {
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT payload FROM spectra WHERE facility_id = $1 ORDER BY sensor_id")
                .bind(facility)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(p,)| message_json(&p))
            .collect())
    }
}

/// The advisory lock under which a server makes or drops an events partition.
const PARTITION_LOCK: i64 = 0x6365_6e74_7061_7274; // "centpart"

/// Makes the partitions of `months` (`YYYY-MM`) unless they exist, one server at a time (a
/// transaction-scoped advisory lock).
async fn create_partitions(tx: &mut AnyConnection, months: &[String]) -> Result<(), sqlx::Error> {
    lock_partitions(tx).await?;
    for m in months {
        sqlx::raw_sql(sqlx::AssertSqlSafe(partition_ddl(m)))
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// Takes [`PARTITION_LOCK`] for the transaction.
async fn lock_partitions(tx: &mut AnyConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(PARTITION_LOCK)
        .fetch_all(&mut *tx)
        .await?;
    Ok(())
}

/// The month after `month` (`YYYY-MM`), as `YYYY-MM`; `None` for text that is not a month.
fn next_month(month: &str) -> Option<String> {
    let (y, m) = month.split_once('-')?;
    let (y, m): (u32, u32) = (y.parse().ok()?, m.parse().ok()?);
    if !(1..=12).contains(&m) || month.len() != 7 {
        return None;
    }
    Some(if m == 12 {
        format!("{:04}-01", y + 1)
    } else {
        format!("{y:04}-{:02}", m + 1)
    })
}

/// The partition of the events of `month` (`YYYY-MM`).
fn partition_name(month: &str) -> String {
    format!("events_y{}m{}", &month[..4], &month[5..7])
}

/// The statement that makes the partition of `month` unless it exists (the month's text is
/// made here from digits: nothing else reaches the statement).
fn partition_ddl(month: &str) -> String {
    let next = next_month(month).unwrap_or_else(|| "9999-12".into());
    format!(
        "CREATE TABLE IF NOT EXISTS {} PARTITION OF events FOR VALUES FROM ('{month}') TO ('{next}')",
        partition_name(month)
    )
}

/// The advisory lock of a sensor's state: the first eight bytes of the SHA-256 of
/// `centinela-sensor\0{facility}\0{sensor}` (a collision only makes two sensors wait for each
/// other).
fn sensor_lock_key(facility: &str, sensor: &str) -> i64 {
    use sha2_11::Digest as _;
    let mut h = sha2_11::Sha256::new();
    h.update(b"centinela-sensor\0");
    h.update(facility.as_bytes());
    h.update(b"\0");
    h.update(sensor.as_bytes());
    let d = h.finalize();
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    i64::from_be_bytes(b)
}

#[async_trait::async_trait]
impl crate::alerts::Ledger for Store {
    async fn settle(&self, id: i64, outcome: crate::alerts::Outcome) -> Result<(), String> {
        self.settle_alert(id, outcome)
            .await
            .map_err(|e| e.to_string())
    }

    async fn postpone(&self, id: i64, after: std::time::Duration) -> Result<(), String> {
        let until = unix(OffsetDateTime::now_utc()) + i64::try_from(after.as_secs()).unwrap_or(600);
        sqlx::query(
            "UPDATE alerts SET claimed_by = NULL, claimed_until = $1 WHERE id = $2 AND outcome IS NULL",
        )
        .bind(until)
        .bind(id)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
    }
}

/// The band, technology and zone a message is filtered by in the history (as columns).
fn filtered_by(msg: &Message) -> (Option<&str>, Option<&str>, Option<&str>) {
    match msg {
        Message::Gap(g) => (Some(&g.band), Some(g.technology.as_str()), Some(&g.zone)),
        Message::Jammer(j) => (Some(&j.band), None, Some(&j.zone)),
        Message::Status(s) => (None, None, Some(&s.zone)),
        _ => (None, None, None),
    }
}

/// The message of a stored payload (an envelope, verified when it arrived), as JSON.
fn message_json(payload: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(protocol::signed::message_bytes(payload.as_bytes())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded lists are the migrations directories as sqlx reads them: same versions,
    /// names and checksums (a migration added to a directory but not to its list fails here),
    /// and both engines have the same versions and names.
    #[tokio::test]
    async fn embedded_migrations_match_the_directories() {
        let key = |m: &sqlx::migrate::Migration| {
            (
                m.version,
                m.description.to_string(),
                m.checksum.to_vec(),
                m.no_tx,
                format!("{:?}", m.migration_type),
            )
        };
        let mut names = Vec::new();
        for (engine, dir) in [(Engine::Sqlite, "sqlite"), (Engine::Postgres, "postgres")] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("migrations")
                .join(dir);
            let from_dir = sqlx::migrate::Migrator::new(dir)
                .await
                .expect("migrations dir");
            let embedded = migrator(engine);
            let a: Vec<_> = embedded.iter().map(key).collect();
            let b: Vec<_> = from_dir.iter().map(key).collect();
            assert_eq!(a.len(), migrations(engine).len());
            assert_eq!(a, b, "{engine:?}");
            names.push(a.iter().map(|k| (k.0, k.1.clone())).collect::<Vec<_>>());
        }
        assert_eq!(names[0], names[1], "both engines have the same migrations");
    }

    /// A store on a new database of the engine: a SQLite file in `dir`, or a database in the
    /// test process's PostgreSQL cluster (`None` when PostgreSQL is not installed and not
    /// required).
    async fn open(engine: Engine, dir: &std::path::Path) -> Option<Store> {
        let db = match engine {
            Engine::Sqlite => Database::Sqlite(dir.join("s.db")),
            Engine::Postgres => Database::Postgres(centinela_tests::pg::test_database().await?),
        };
        Some(Store::open(&db).await.expect("open"))
    }

    fn gap(n: u32, margin_db: f64) -> Message {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000 + i64::from(n)).expect("t");
        Message::Gap(GapEvent {
            schema: protocol::GAP_SCHEMA.into(),
            event_id: protocol::event_id(at, format!("gap {n} {margin_db}").as_bytes()),
            facility_id: "f".into(),
            sensor_id: "s".into(),
            observed_at: at,
            gap_key: format!("B7/lte/{n}"),
            state: GapState::Open,
            zone: "z".into(),
            band: "B7".into(),
            technology: Technology::Lte,
            center_hz: 2.655e9,
            bandwidth_hz: 9e6,
            cell: None,
            power_dbm: None,
            floor_dbm: None,
            power_dbfs: -40.0,
            floor_dbfs: -70.0,
            margin_db,
            severity: Severity::from_margin_db(margin_db),
            detector: Detector::Energy,
            evidence: None,
        })
    }

    /// What a batch does with each message of it, whatever else the batch holds: a message is
    /// stored once, its resend is a duplicate, other bytes under a number already used are a
    /// replay, other bytes under a stored event id a conflict; and the next batch agrees.
    #[tokio::test]
    async fn a_batch_stores_each_message_once_and_refuses_replays_and_conflicts() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            batch_outcomes(engine).await;
        }
    }

    async fn batch_outcomes(engine: Engine) {
        let dir = tempfile::tempdir().expect("tmp");
        let Some(store) = open(engine, dir.path()).await else {
            return;
        };
        let (a, b) = (gap(1, 12.0), gap(2, 4.0));
        // Event `a` again under another number and other bytes: a conflict of event ids.
        let a_other = a.clone();
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("t");
        let item = |msg: &'static Message, payload: &'static str, seq: i64, sha: &'static str| {
            Item::Accept {
                topic: "centinela/v1/f/s/gap",
                msg,
                payload,
                seal: Seal {
                    key: "ed25519:k",
                    seq,
                    sha256: sha,
                },
                retained: false,
            }
        };
        let (a, b, a_other): (&'static Message, &'static Message, &'static Message) = (
            Box::leak(Box::new(a)),
            Box::leak(Box::new(b)),
            Box::leak(Box::new(a_other)),
        );
        let batch = [
            item(a, "bytes of a", 1, "sha-a"),
            item(a, "bytes of a", 1, "sha-a"),
            item(b, "bytes of b", 1, "sha-b"),
            item(b, "bytes of b", 2, "sha-b"),
            item(a_other, "other bytes of a", 3, "sha-a2"),
            Item::Reject {
                topic: "centinela/v1/f/s/gap",
                reason: "bad_signature",
                detail: "a forgery",
            },
        ];
        let got = store
            .ingest_batch(&batch, at)
            .await
            .expect("batch")
            .into_inner();
        let kinds: Vec<&str> = got
            .iter()
            .map(|r| match r {
                Some(Ingested::New(_)) => "new",
                Some(Ingested::Duplicate) => "duplicate",
                Some(Ingested::Conflict) => "conflict",
                Some(Ingested::Replayed) => "replayed",
                None => "rejected",
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "new",
                "duplicate",
                "replayed",
                "new",
                "conflict",
                "rejected"
            ]
        );
        let stored: Vec<(String,)> = sqlx::query_as("SELECT payload FROM events ORDER BY payload")
            .fetch_all(store.pool())
            .await
            .expect("events");
        assert_eq!(
            stored,
            [("bytes of a".to_string(),), ("bytes of b".to_string(),)]
        );
        let gaps = store
            .gaps("f", true, &GapFilter::default())
            .await
            .expect("gaps");
        assert_eq!(gaps.len(), 2);
        assert_eq!(gaps[0].severity, Severity::Critical);
        // The next batch: the same messages are duplicates, a new number of `b`'s bytes too.
        let again = store
            .ingest_batch(&[batch[0], batch[3], item(b, "bytes of b", 9, "sha-b")], at)
            .await
            .expect("batch")
            .into_inner();
        assert!(
            again.iter().all(|r| matches!(r, Some(Ingested::Duplicate))),
            "{again:?}"
        );
        let (max_seq, seen): (i64, i64) =
            sqlx::query_as("SELECT max_seq, seen FROM sequence_counts WHERE sensor_id = 's'")
                .fetch_one(store.pool())
                .await
                .expect("counts");
        assert_eq!(
            (max_seq, seen),
            (9, 4),
            "numbers 1, 2, 3 and 9 were received"
        );
    }

    /// One gap's events in one batch are applied in order, as if one batch each: a close and a
    /// reopening give the reopening's time as the gap's opening, each opening at `critical`
    /// alerts, and an older event delivered late changes nothing.
    #[tokio::test]
    async fn a_gap_opened_closed_and_reopened_in_one_batch_ends_as_the_last_event_left_it() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            gap_in_one_batch(engine).await;
        }
    }

    async fn gap_in_one_batch(engine: Engine) {
        let dir = tempfile::tempdir().expect("tmp");
        let Some(store) = open(engine, dir.path()).await else {
            return;
        };
        let ev = |n: i64, state: GapState| gap_at(state, 12.0, msgs_time(n));
        let msgs = [
            ev(10, GapState::Open),
            ev(20, GapState::Closed),
            ev(30, GapState::Open),
            ev(40, GapState::Update),
            ev(25, GapState::Closed),
        ];
        let got = store_all(&store, &msgs, 1, msgs_time(100)).await;
        let alerts: usize = got
            .iter()
            .map(|r| match r {
                Some(Ingested::New(a)) => a.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(alerts, 2, "the opening and the reopening: {got:?}");
        let rows = store
            .gaps("f", false, &GapFilter::default())
            .await
            .expect("gaps");
        assert_eq!(rows.len(), 1);
        let g = &rows[0];
        assert_eq!(g.state, GapState::Update);
        assert_eq!(g.opened_at, ts(msgs_time(30)));
        assert_eq!(g.updated_at, ts(msgs_time(40)));
        assert_eq!(g.closed_at, None);
    }

    /// Two servers on one PostgreSQL database store, at the same moment, batches of the same
    /// sensor: server A the opening of 40 critical gaps, server B a later update of each.
    /// Whatever the order of their commits, each gap ends as the later event left it and raises
    /// one alert, not one per server (without the per-sensor lock both read no gap, both alert,
    /// and the older event can overwrite the newer).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_servers_storing_one_sensor_at_once_raise_each_alert_once() {
        let Some(url) = centinela_tests::pg::test_database().await else {
            return;
        };
        let db = Database::Postgres(url);
        let a = Store::open(&db).await.expect("open").claiming_as("a");
        let b = Store::open(&db).await.expect("open").claiming_as("b");
        const KEYS: i64 = 40;
        let mut seq = 0i64;
        for round in 0..5i64 {
            let mut opens = Vec::new();
            let mut updates = Vec::new();
            for k in 0..KEYS {
                for (later, out) in [(0i64, &mut opens), (1, &mut updates)] {
                    let Message::Gap(mut g) = gap(1, 15.0) else {
                        unreachable!()
                    };
                    g.gap_key = format!("B7/lte/r{round}k{k}");
                    g.state = if later == 0 {
                        GapState::Open
                    } else {
                        GapState::Update
                    };
                    g.observed_at = msgs_time(round * 1000 + k * 2 + later);
                    g.event_id = protocol::event_id(
                        g.observed_at,
                        format!("{round} {k} {later}").as_bytes(),
                    );
                    seq += 1;
                    out.push((
                        Box::leak(Box::new(Message::Gap(g))) as &'static Message,
                        seq,
                    ));
                }
            }
            let items = |v: &[(&'static Message, i64)]| -> Vec<Item<'static>> {
                v.iter()
                    .map(|(m, n)| Item::Accept {
                        topic: "centinela/v1/f/s/gap",
                        msg: m,
                        payload: Box::leak(format!("payload {n}").into_boxed_str()),
                        seal: Seal {
                            key: "ed25519:k",
                            seq: *n,
                            sha256: Box::leak(format!("sha {n}").into_boxed_str()),
                        },
                        retained: false,
                    })
                    .collect()
            };
            let (ia, ib) = (items(&opens), items(&updates));
            let at = msgs_time(round * 1000 + 500);
            let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
            let (sa, sb) = (a.clone(), b.clone());
            let (ba, bb) = (barrier.clone(), barrier.clone());
            let ta = tokio::spawn(async move {
                ba.wait().await;
                sa.ingest_batch(&ia, at)
                    .await
                    .map(crate::db::Committed::into_inner)
            });
            let tb = tokio::spawn(async move {
                bb.wait().await;
                sb.ingest_batch(&ib, at)
                    .await
                    .map(crate::db::Committed::into_inner)
            });
            let (ra, rb) = (ta.await.expect("a"), tb.await.expect("b"));
            let alerts: usize = ra
                .expect("a stores")
                .into_iter()
                .chain(rb.expect("b stores"))
                .map(|r| match r {
                    Some(Ingested::New(a)) => a.len(),
                    _ => 0,
                })
                .sum();
            assert_eq!(
                alerts, KEYS as usize,
                "round {round}: one alert per gap, whichever server stored first"
            );
            let rows = a
                .gaps("f", true, &GapFilter::default())
                .await
                .expect("gaps");
            for k in 0..KEYS {
                let key = format!("B7/lte/r{round}k{k}");
                let g = rows.iter().find(|g| g.gap_key == key).expect("gap stored");
                assert_eq!(g.state, GapState::Update, "{key}: the later event wins");
                assert_eq!(
                    g.updated_at,
                    ts(msgs_time(round * 1000 + k * 2 + 1)),
                    "{key}"
                );
                // Opened by the opening, or by the update when it was stored first (the opening
                // then came late: history only).
                assert!(
                    [0, 1]
                        .map(|l| ts(msgs_time(round * 1000 + k * 2 + l)))
                        .contains(&g.opened_at),
                    "{key}: {}",
                    g.opened_at
                );
            }
        }
        let recorded: i64 = sqlx::query_scalar("SELECT count(*) FROM alerts")
            .fetch_one(a.pool())
            .await
            .expect("alerts");
        assert_eq!(recorded, 5 * KEYS, "one recorded alert per gap");
    }

    /// Every server's watchdog looks for silent sensors at once: each silent sensor goes
    /// offline once, with one alert, and a claim on it that ran out goes to one server.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn every_servers_watchdog_marks_a_silent_sensor_offline_once() {
        let Some(url) = centinela_tests::pg::test_database().await else {
            return;
        };
        let db = Database::Postgres(url);
        let a = Store::open(&db).await.expect("open").claiming_as("a");
        let b = Store::open(&db).await.expect("open").claiming_as("b");
        let long_ago = ts(msgs_time(0));
        for n in 0..30 {
            sqlx::query(
                "INSERT INTO sensors (facility_id, sensor_id, zone, state, heartbeat_s, last_seen,
                 status, status_at) VALUES ('f', $1, 'z', 'online', 5, $2, '{}', $2)",
            )
            .bind(format!("s{n}"))
            .bind(&long_ago)
            .execute(a.pool())
            .await
            .expect("sensor");
        }
        let now = msgs_time(3600);
        let (ra, rb) = tokio::join!(a.expire_sensors(now, 3.0), b.expire_sensors(now, 3.0));
        let (ra, rb) = (ra.expect("a"), rb.expect("b"));
        assert_eq!(
            ra.len() + rb.len(),
            30,
            "one alert per sensor: {} + {}",
            ra.len(),
            rb.len()
        );
        let mut sensors: Vec<String> = ra
            .iter()
            .chain(&rb)
            .map(|r| r.alert.source().1.to_string())
            .collect();
        sensors.sort();
        sensors.dedup();
        assert_eq!(sensors.len(), 30);
        // Neither settles its alerts (both died): once their claims run out, one server
        // claims each, and a second look finds nothing.
        let later = now + time::Duration::seconds(60);
        let (ca, cb) = tokio::join!(a.claim_alerts(later, 100), b.claim_alerts(later, 100));
        let (ca, cb) = (ca.expect("a"), cb.expect("b"));
        assert_eq!(
            ca.len() + cb.len(),
            30,
            "each claimed once: {} + {}",
            ca.len(),
            cb.len()
        );
        assert!(ca.iter().chain(&cb).all(|r| r.attempt == 2));
        assert!(a.claim_alerts(later, 100).await.expect("again").is_empty());
    }

    /// The overview reads only the facilities of its scope: a user's assigned facilities are
    /// part of the query, so a facility she may not see is not read at all.
    #[tokio::test]
    async fn the_overview_of_a_user_holds_only_her_facilities() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let dir = tempfile::tempdir().expect("tmp");
            let Some(store) = open(engine, dir.path()).await else {
                continue;
            };
            let msgs: Vec<Message> = ["f", "g", "h"]
                .iter()
                .map(|f| {
                    let Message::Gap(mut g) = gap(1, 12.0) else {
                        unreachable!()
                    };
                    g.facility_id = (*f).into();
                    g.event_id = protocol::event_id(g.observed_at, f.as_bytes());
                    Message::Gap(g)
                })
                .collect();
            store_all(&store, &msgs, 1, msgs_time(100)).await;
            for (user, facility) in [(7_i64, "g"), (8, "h")] {
                if user == 7 {
                    sqlx::query(
                        "INSERT INTO users (id, name, role, password, created_at)
                         VALUES (7, 'u', 'supervisor', 'x', 'now'), (8, 'v', 'supervisor', 'x', 'now')",
                    )
                    .execute(store.pool())
                    .await
                    .expect("users");
                }
                sqlx::query("INSERT INTO user_facilities (user_id, facility_id) VALUES ($1, $2)")
                    .bind(user)
                    .bind(facility)
                    .execute(store.pool())
                    .await
                    .expect("assignment");
            }
            let ids = |v: Vec<FacilityOverview>| -> Vec<String> {
                v.into_iter().map(|o| o.facility_id).collect()
            };
            assert_eq!(
                ids(store.overview(&Scope::All).await.expect("all")),
                ["f", "g", "h"]
            );
            assert_eq!(
                ids(store.overview(&Scope::User(7)).await.expect("7")),
                ["g"]
            );
            assert_eq!(
                ids(store.overview(&Scope::User(9)).await.expect("9")),
                Vec::<String>::new()
            );
        }
    }

    #[test]
    fn a_status_that_reports_new_losses_raises_one_alert_with_the_new_count() {
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_000).expect("t");
        let status = |uptime_s: f64, dropped: u64, clips: u64| {
            let Message::Status(mut st) = status_at("s", SensorState::Online, at) else {
                unreachable!()
            };
            st.health.uptime_s = uptime_s;
            st.health.outbox_dropped = dropped;
            st.health.clips_lost = clips;
            st
        };
        let text = |st: &protocol::StatusEvent| serde_json::to_string(st).expect("json");
        let lost = |a: Option<Alert>| match a {
            Some(Alert::SensorLoss { events, clips, .. }) => Some((events, clips)),
            Some(other) => panic!("{other:?}"),
            None => None,
        };
        assert_eq!(
            lost(losses(None, &status(10.0, 0, 0))),
            None,
            "nothing lost"
        );
        assert_eq!(lost(losses(None, &status(10.0, 3, 1))), Some((3, 1)));
        let before = status(10.0, 3, 1);
        assert_eq!(
            lost(losses(Some(&text(&before)), &status(20.0, 3, 1))),
            None,
            "the same counts: said already"
        );
        assert_eq!(
            lost(losses(Some(&text(&before)), &status(20.0, 5, 1))),
            Some((2, 0)),
            "only what is new"
        );
        assert_eq!(
            lost(losses(Some(&text(&before)), &status(5.0, 2, 0))),
            Some((2, 0)),
            "an agent that restarted counts from zero"
        );
    }

    /// A status of sensor `s` of facility `f`, observed at `at`.
    fn status_at(s: &str, state: SensorState, at: OffsetDateTime) -> Message {
        Message::Status(protocol::StatusEvent {
            schema: protocol::STATUS_SCHEMA.into(),
            event_id: protocol::event_id(at, format!("{s} {state:?} {at}").as_bytes()),
            facility_id: "f".into(),
            sensor_id: s.into(),
            observed_at: at,
            state,
            connected_at: Some(at - time::Duration::hours(1)),
            zone: "z".into(),
            position_m: None,
            agent_version: "test".into(),
            heartbeat_s: 60.0,
            unreachable_bands: vec![],
            health: protocol::SensorHealth::default(),
            will_seq: None,
        })
    }

    fn jammer_at(state: JammerStateWire, at: OffsetDateTime) -> Message {
        Message::Jammer(JammerEvent {
            schema: protocol::JAMMER_SCHEMA.into(),
            event_id: protocol::event_id(at, format!("jammer {state:?}").as_bytes()),
            facility_id: "f".into(),
            sensor_id: "s".into(),
            observed_at: at,
            zone: "z".into(),
            band: "B28".into(),
            state,
            noise_rise_db: 1.0,
            floor_dbm_per_hz: -150.0,
            covered_fraction: 0.5,
        })
    }

    fn gap_at(state: GapState, margin_db: f64, at: OffsetDateTime) -> Message {
        let Message::Gap(mut g) = gap(1, margin_db) else {
            unreachable!()
        };
        g.observed_at = at;
        g.state = state;
        g.event_id = protocol::event_id(at, format!("gap {state:?} {at}").as_bytes());
        Message::Gap(g)
    }

    /// Stores `msgs` in one batch, numbered from `first`, received at `at`.
    async fn store_all(
        store: &Store,
        msgs: &[Message],
        first: i64,
        at: OffsetDateTime,
    ) -> Vec<Option<Ingested>> {
        let payloads: Vec<String> = msgs.iter().map(payload_of).collect();
        let shas: Vec<String> = (0..msgs.len())
            .map(|k| format!("sha {}", first + k as i64))
            .collect();
        let items: Vec<Item<'_>> = msgs
            .iter()
            .enumerate()
            .map(|(k, m)| Item::Accept {
                topic: "t",
                msg: m,
                payload: &payloads[k],
                seal: Seal {
                    key: "ed25519:k",
                    seq: first + k as i64,
                    sha256: &shas[k],
                },
                retained: false,
            })
            .collect();
        store
            .ingest_batch(&items, at)
            .await
            .expect("batch")
            .into_inner()
    }

    /// The message itself as JSON (the roll-up reads stored payloads as messages).
    fn payload_of(m: &Message) -> String {
        match m {
            Message::Gap(g) => serde_json::to_string(g),
            Message::Jammer(j) => serde_json::to_string(j),
            Message::Status(s) => serde_json::to_string(s),
            Message::Spectrum(s) => serde_json::to_string(s),
            _ => unreachable!("a message kind the tests do not make"),
        }
        .expect("json")
    }

    /// A sensor's heartbeats every 5 s for 20 minutes: each one moves its liveness, every
    /// number is recorded, and the history keeps one per 300 s sample and every change; a
    /// heartbeat not kept, delivered again, is a duplicate.
    #[tokio::test]
    async fn the_history_keeps_one_heartbeat_per_sample_and_every_change() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let dir = tempfile::tempdir().expect("tmp");
            let Some(store) = open(engine, dir.path()).await else {
                continue;
            };
            let t0 = OffsetDateTime::now_utc() - time::Duration::hours(1);
            let mut msgs: Vec<Message> = (0..240)
                .map(|k| {
                    status_at(
                        "s",
                        SensorState::Online,
                        t0 + time::Duration::seconds(5 * k),
                    )
                })
                .collect();
            msgs.push(status_at(
                "s",
                SensorState::Offline,
                t0 + time::Duration::seconds(1200),
            ));
            msgs.push(status_at(
                "s",
                SensorState::Online,
                t0 + time::Duration::seconds(1205),
            ));
            // Two batches, as ingest would cut them.
            let now = t0 + time::Duration::seconds(1300);
            store_all(&store, &msgs[..100], 1, now).await;
            store_all(&store, &msgs[100..], 101, now).await;
            let kept: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE kind = 'status'")
                .fetch_one(store.pool())
                .await
                .expect("count");
            // 0, 300, 600, 900 s; the goodbye; coming back online.
            assert_eq!(kept, 6, "{engine:?}");
            let numbers: i64 = sqlx::query_scalar("SELECT count(*) FROM sequences")
                .fetch_one(store.pool())
                .await
                .expect("count");
            assert_eq!(numbers, 242, "{engine:?}: every number is recorded");
            let s = store.sensors(None).await.expect("sensors");
            assert_eq!(s[0].state, SensorState::Online);
            assert_eq!(s[0].missing_messages, 0, "{engine:?}");
            // A heartbeat that was not kept, delivered again with its bytes.
            let again = store_all(&store, &msgs[7..8], 8, now).await;
            assert_eq!(again, [Some(Ingested::Duplicate)], "{engine:?}");
        }
    }

    /// Retention prunes what is older than it keeps, and keeps the rest: gap events past
    /// `events_days` (on PostgreSQL with their month's partition), statuses past
    /// `statuses_days`, and their sequence numbers; and records the cutoffs it applied.
    #[tokio::test]
    async fn retention_prunes_old_history_and_keeps_the_recent() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let dir = tempfile::tempdir().expect("tmp");
            let Some(store) = open(engine, dir.path()).await else {
                continue;
            };
            let now = OffsetDateTime::now_utc();
            let days = |d: i64| now - time::Duration::days(d);
            let msgs = [
                gap_at(GapState::Open, 12.0, days(500)),
                gap_at(GapState::Update, 12.0, days(10)),
                status_at("s", SensorState::Online, days(45)),
                status_at("s", SensorState::Online, days(1)),
            ];
            // Received when observed (as the history would have them).
            for (k, m) in msgs.iter().enumerate() {
                store_all(
                    &store,
                    std::slice::from_ref(m),
                    k as i64 + 1,
                    m.observed_at(),
                )
                .await;
            }
            let retention = crate::config::Retention::default();
            let pruned = store
                .maintain(now, &retention)
                .await
                .expect("maintain")
                .expect("this server does the round");
            assert_eq!(pruned.events, 1, "{engine:?}: {pruned:?}");
            assert_eq!(pruned.statuses, 1, "{engine:?}: {pruned:?}");
            assert_eq!(pruned.sequences, 2, "{engine:?}: {pruned:?}");
            if engine == Engine::Postgres {
                assert_eq!(pruned.partitions_dropped.len(), 1, "{pruned:?}");
            }
            let left: Vec<String> =
                sqlx::query_scalar("SELECT observed_at FROM events ORDER BY observed_at")
                    .fetch_all(store.pool())
                    .await
                    .expect("events");
            assert_eq!(
                left,
                [ts(days(10)), ts(days(1))],
                "{engine:?}: the recent gap and status"
            );
            let cut = store.cutoffs().await.expect("cutoffs").expect("recorded");
            assert_eq!(cut.events_before, ts(days(400)));
            // Another server looking at once finds the round taken.
            assert!(
                store
                    .maintain(now, &retention)
                    .await
                    .expect("again")
                    .is_none()
            );
        }
    }

    /// An hour of one sensor rolled up: the B28 jammer effective, down from 10 to 40 minutes,
    /// effective again; a critical gap open from 5 to 25 minutes; heartbeats kept every 5
    /// minutes: 1,800 s effective and 1,800 s down, 20 critical minutes, an hour up; the day
    /// sums its hours.
    #[tokio::test]
    async fn an_hour_rolls_up_to_jammer_seconds_gap_minutes_and_uptime() {
        for engine in [Engine::Sqlite, Engine::Postgres] {
            let dir = tempfile::tempdir().expect("tmp");
            let Some(store) = open(engine, dir.path()).await else {
                continue;
            };
            let now = OffsetDateTime::now_utc();
            let this_hour = rollup_hour(now);
            let h = this_hour - time::Duration::hours(1);
            let at = |m: i64| h + time::Duration::minutes(m);
            let mut msgs = vec![
                jammer_at(JammerStateWire::Effective, at(0)),
                jammer_at(JammerStateWire::Down, at(10)),
                jammer_at(JammerStateWire::Effective, at(40)),
                gap_at(GapState::Open, 12.0, at(5)),
                gap_at(GapState::Closed, 12.0, at(25)),
            ];
            for m in (-10..=60).step_by(5) {
                msgs.push(status_at("s", SensorState::Online, at(m)));
            }
            msgs.sort_by_key(Message::observed_at);
            store_all(&store, &msgs, 1, at(61)).await;
            store
                .maintain(now, &crate::config::Retention::default())
                .await
                .expect("maintain")
                .expect("round");
            let row = sqlx::query(
                "SELECT jammer_effective_s, jammer_down_s, gap_critical_min, sensors FROM hourly
                 WHERE facility_id = 'f' AND zone = 'z' AND band = $1 AND hour = $2",
            );
            let jam = row
                .bind("B28")
                .bind(ts(h))
                .fetch_one(store.pool())
                .await
                .expect("the jammer's hour");
            assert_eq!(
                jam.get::<f64, _>("jammer_effective_s"),
                1800.0,
                "{engine:?}"
            );
            assert_eq!(jam.get::<f64, _>("jammer_down_s"), 1800.0, "{engine:?}");
            let gap_min: f64 = sqlx::query_scalar(
                "SELECT gap_critical_min FROM hourly WHERE band = 'B7' AND hour = $1",
            )
            .bind(ts(h))
            .fetch_one(store.pool())
            .await
            .expect("the gap's hour");
            assert!((gap_min - 20.0).abs() < 1e-9, "{engine:?}: {gap_min}");
            let up: f64 = sqlx::query_scalar(
                "SELECT sensor_up_s FROM hourly WHERE band = '' AND zone = 'z' AND hour = $1",
            )
            .bind(ts(h))
            .fetch_one(store.pool())
            .await
            .expect("uptime");
            assert_eq!(up, 3600.0, "{engine:?}");
            let day = h.replace_time(time::Time::MIDNIGHT);
            let down_day: f64 = sqlx::query_scalar(
                "SELECT jammer_down_s FROM daily WHERE band = 'B28' AND day = $1",
            )
            .bind(ts(day))
            .fetch_one(store.pool())
            .await
            .expect("the day");
            assert!(down_day >= 1800.0, "{engine:?}: {down_day}");
        }
    }

    fn rollup_hour(t: OffsetDateTime) -> OffsetDateTime {
        t.replace_minute(0)
            .and_then(|t| t.replace_second(0))
            .and_then(|t| t.replace_nanosecond(0))
            .expect("hour")
    }

    fn msgs_time(n: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + n).expect("t")
    }
}
