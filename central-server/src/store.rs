//! Storage: every accepted message once (by `event_id`), and the current state derived from
//! them: gaps, jammer health and sensors. SQLite by default through sqlx, whose PostgreSQL
//! driver takes the same queries when the system scales out.

use std::path::Path;

use protocol::{
    Detector, GapEvent, GapState, JammerEvent, JammerStateWire, Message, SensorState, Severity,
    Technology,
};
use serde::Serialize;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::alerts::Alert;

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

/// The schema's migrations, embedded in the binary: version, the description sqlx derives from the
/// file name, and the SQL (checksummed by sqlx as its `migrate!` macro would, so databases made by
/// earlier builds open unchanged; a test compares them with the directory).
const MIGRATIONS: [(i64, &str, &str); 4] = [
    (1, "init", include_str!("../migrations/0001_init.sql")),
    (
        2,
        "status order",
        include_str!("../migrations/0002_status_order.sql"),
    ),
    (3, "signed", include_str!("../migrations/0003_signed.sql")),
    (4, "users", include_str!("../migrations/0004_users.sql")),
];

fn migrator() -> sqlx::migrate::Migrator {
    use sqlx::migrate::{Migration, MigrationType, Migrator};
    Migrator::with_migrations(
        MIGRATIONS
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
    pool: SqlitePool,
}

/// What ingesting a message did.
#[derive(Debug, Clone, PartialEq)]
pub enum Ingested {
    /// Stored; the alerts it raised.
    New(Vec<Alert>),
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
fn from_wire<T: serde::de::DeserializeOwned>(
    r: &sqlx::sqlite::SqliteRow,
    column: &str,
) -> Result<T, sqlx::Error> {
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

async fn reject(
    tx: &mut sqlx::SqliteConnection,
    received_at: OffsetDateTime,
    topic: &str,
    reason: &str,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO rejects (received_at, topic, reason, detail) VALUES (?, ?, ?, ?)")
        .bind(ts(received_at))
        .bind(topic.chars().take(256).collect::<String>())
        .bind(reason)
        .bind(detail.chars().take(1024).collect::<String>())
        .execute(&mut *tx)
        .await?;
    Ok(())
}

impl Store {
    /// Opens (creating if needed) the SQLite file and runs the migrations.
    ///
    /// # Errors
    /// Opening or migrating the database.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let opts = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts)
            .await?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// The pool, for health checks.
    #[must_use]
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Stores a batch in one transaction (one commit), in order: accepted messages once each
    /// with the current state they change, rejected ones in the rejects list. Returns one
    /// result per item (`None` for rejects).
    ///
    /// # Errors
    /// Database failures: then nothing of the batch is stored.
    pub async fn ingest_batch(
        &self,
        batch: &[Item<'_>],
        received_at: OffsetDateTime,
    ) -> Result<Vec<Option<Ingested>>, sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let mut out = Vec::with_capacity(batch.len());
        let mut rejected = false;
        let mut counts = SeqCounts::new();
        for item in batch {
            match *item {
                Item::Accept {
                    topic,
                    msg,
                    payload,
                    seal,
                    retained,
                } => {
                    let r = self
                        .apply(
                            &mut tx,
                            msg,
                            payload,
                            seal,
                            retained,
                            received_at,
                            &mut counts,
                        )
                        .await?;
                    if r == Ingested::Replayed {
                        let e = crate::trust::TrustError::Replayed {
                            topic: topic.to_string(),
                            seq: seal.seq.unsigned_abs(),
                        };
                        reject(&mut tx, received_at, topic, e.reason(), &e.to_string()).await?;
                        rejected = true;
                    }
                    out.push(Some(r));
                }
                Item::Reject {
                    topic,
                    reason,
                    detail,
                } => {
                    reject(&mut tx, received_at, topic, reason, detail).await?;
                    rejected = true;
                    out.push(None);
                }
            }
        }
        // Each sensor's count once per batch, not once per message.
        for ((facility, sensor, key), (max_seq, seen)) in counts {
            sqlx::query(
                "INSERT INTO sequence_counts (facility_id, sensor_id, key, max_seq, seen)
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT (facility_id, sensor_id, key) DO UPDATE SET
                 max_seq = max(sequence_counts.max_seq, excluded.max_seq),
                 seen = sequence_counts.seen + excluded.seen",
            )
            .bind(facility)
            .bind(sensor)
            .bind(key)
            .bind(max_seq)
            .bind(seen)
            .execute(&mut *tx)
            .await?;
        }
        if rejected {
            sqlx::query("DELETE FROM rejects WHERE id <= (SELECT max(id) - 1000 FROM rejects)")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records the sequence number of a message: `Some(true)` when it is new, `Some(false)` when
    /// these same bytes used it before (a resend), `None` when other bytes did (a replay).
    async fn sequence(
        tx: &mut sqlx::SqliteConnection,
        msg: &Message,
        seal: Seal<'_>,
        received_at: OffsetDateTime,
    ) -> Result<Option<bool>, sqlx::Error> {
        let (facility, sensor) = msg.source();
        let new = sqlx::query(
            "INSERT INTO sequences (facility_id, sensor_id, key, seq, kind, sha256, received_at)
             VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(facility)
        .bind(sensor)
        .bind(seal.key)
        .bind(seal.seq)
        .bind(msg.kind().as_str())
        .bind(seal.sha256)
        .bind(ts(received_at))
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if new {
            return Ok(Some(true));
        }
        let same: Option<(bool,)> = sqlx::query_as(
            "SELECT sha256 = ? FROM sequences
             WHERE facility_id = ? AND sensor_id = ? AND key = ? AND seq = ?",
        )
        .bind(seal.sha256)
        .bind(facility)
        .bind(sensor)
        .bind(seal.key)
        .bind(seal.seq)
        .fetch_optional(&mut *tx)
        .await?;
        Ok(same.is_some_and(|(s,)| s).then_some(false))
    }

    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        tx: &mut sqlx::SqliteConnection,
        msg: &Message,
        payload: &str,
        seal: Seal<'_>,
        retained: bool,
        received_at: OffsetDateTime,
        counts: &mut SeqCounts,
    ) -> Result<Ingested, sqlx::Error> {
        let (facility, sensor) = msg.source();
        match Self::sequence(tx, msg, seal, received_at).await? {
            None => return Ok(Ingested::Replayed),
            Some(true) => {
                let c = counts
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
            Some(false) if matches!(msg, Message::Spectrum(_)) => return Ok(Ingested::Duplicate),
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
            sqlx::query(
                "INSERT INTO spectra (facility_id, sensor_id, observed_at, payload) VALUES (?, ?, ?, ?)
                 ON CONFLICT (facility_id, sensor_id) DO UPDATE SET observed_at = excluded.observed_at,
                 payload = excluded.payload WHERE excluded.observed_at >= spectra.observed_at",
            )
            .bind(facility)
            .bind(sensor)
            .bind(ts(s.observed_at))
            .bind(payload)
            .execute(&mut *tx)
            .await?;
            self.touch_sensor(tx, facility, sensor, heard).await?;
            return Ok(Ingested::New(Vec::new()));
        }
        let event_id = msg.event_id().to_string();
        let inserted = sqlx::query(
            "INSERT INTO events (event_id, kind, facility_id, sensor_id, observed_at, received_at, payload, key, seq)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(&event_id)
        .bind(msg.kind().as_str())
        .bind(facility)
        .bind(sensor)
        .bind(ts(msg.observed_at()))
        .bind(ts(received_at))
        .bind(payload)
        .bind(seal.key)
        .bind(seal.seq)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            let same: Option<(bool,)> =
                sqlx::query_as("SELECT payload = ? FROM events WHERE event_id = ?")
                    .bind(payload)
                    .bind(&event_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            if same.is_some_and(|(s,)| s) {
                return Ok(Ingested::Duplicate);
            }
            // Received and refused: its number is not missing, and no event holds it.
            sqlx::query(
                "UPDATE sequences SET kind = 'conflict'
                 WHERE facility_id = ? AND sensor_id = ? AND key = ? AND seq = ? AND sha256 = ?",
            )
            .bind(facility)
            .bind(sensor)
            .bind(seal.key)
            .bind(seal.seq)
            .bind(seal.sha256)
            .execute(&mut *tx)
            .await?;
            return Ok(Ingested::Conflict);
        }
        let mut alerts = Vec::new();
        match msg {
            Message::Gap(g) => {
                self.apply_gap(tx, g, &mut alerts).await?;
                self.touch_sensor(tx, facility, sensor, heard).await?;
            }
            Message::Jammer(j) => {
                self.apply_jammer(tx, j, &mut alerts).await?;
                self.touch_sensor(tx, facility, sensor, heard).await?;
            }
            Message::Status(s) => {
                self.apply_status(tx, s, payload, heard, &mut alerts)
                    .await?;
            }
            _ => {}
        }
        Ok(Ingested::New(alerts))
    }

    /// A status changes the sensor's state only when it is newer than the last one applied: an
    /// `online` status by its time, an `offline` one (a clean shutdown or the Last Will) by the
    /// start of the connection it belongs to, so that the Will of an older connection, delivered
    /// late, never marks a newer connection offline.
    async fn apply_status(
        &self,
        tx: &mut sqlx::SqliteConnection,
        s: &protocol::StatusEvent,
        payload: &str,
        heard: OffsetDateTime,
        alerts: &mut Vec<Alert>,
    ) -> Result<(), sqlx::Error> {
        let prev: Option<(String, String, Option<String>)> = sqlx::query_as(
            "SELECT state, status_at, connected_at FROM sensors WHERE facility_id = ? AND sensor_id = ?",
        )
        .bind(&s.facility_id)
        .bind(&s.sensor_id)
        .fetch_optional(&mut *tx)
        .await?;
        let at = ts(s.observed_at);
        let connected = s.connected_at.map(ts);
        let applies = match (&prev, s.state) {
            (None, _) => true,
            (Some((_, status_at, _)), SensorState::Online) => at >= *status_at,
            (Some((_, _, prev_conn)), SensorState::Offline) => {
                let c = connected.clone().unwrap_or_else(|| at.clone());
                prev_conn.as_ref().is_none_or(|p| c >= *p)
            }
        };
        if !applies {
            return Ok(()); // history only
        }
        let state = wire(&s.state);
        let online = s.state == SensorState::Online;
        sqlx::query(
            "INSERT INTO sensors (facility_id, sensor_id, zone, state, position_x, position_y,
             heartbeat_s, last_seen, status, status_at, connected_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
             ON CONFLICT (facility_id, sensor_id) DO UPDATE SET zone = excluded.zone,
             state = excluded.state, position_x = excluded.position_x,
             position_y = excluded.position_y, heartbeat_s = excluded.heartbeat_s,
             last_seen = max(sensors.last_seen, excluded.last_seen), status = excluded.status,
             status_at = max(sensors.status_at, excluded.status_at),
             connected_at = CASE WHEN ?12 THEN coalesce(excluded.connected_at, sensors.connected_at)
                                 ELSE sensors.connected_at END",
        )
        .bind(&s.facility_id)
        .bind(&s.sensor_id)
        .bind(&s.zone)
        .bind(&state)
        .bind(s.position_m.map(|p| p[0]))
        .bind(s.position_m.map(|p| p[1]))
        .bind(s.heartbeat_s)
        .bind(ts(heard))
        .bind(payload)
        .bind(&at)
        .bind(if online { connected } else { None })
        .bind(online)
        .execute(&mut *tx)
        .await?;
        if !online && prev.as_ref().is_some_and(|(st, _, _)| st == "online") {
            alerts.push(Alert::SensorOffline {
                facility_id: s.facility_id.clone(),
                sensor_id: s.sensor_id.clone(),
                zone: s.zone.clone(),
                reason: "the sensor said so (clean shutdown or Last Will)".into(),
            });
        }
        Ok(())
    }

    async fn touch_sensor(
        &self,
        tx: &mut sqlx::SqliteConnection,
        facility: &str,
        sensor: &str,
        heard: OffsetDateTime,
    ) -> Result<(), sqlx::Error> {
        // Events prove the sensor alive only if it has said hello; the status carries its zone.
        sqlx::query(
            "UPDATE sensors SET last_seen = max(last_seen, ?) WHERE facility_id = ? AND sensor_id = ?",
        )
        .bind(ts(heard))
        .bind(facility)
        .bind(sensor)
        .execute(&mut *tx)
        .await?;
        Ok(())
    }

    async fn apply_gap(
        &self,
        tx: &mut sqlx::SqliteConnection,
        g: &GapEvent,
        alerts: &mut Vec<Alert>,
    ) -> Result<(), sqlx::Error> {
        let prev: Option<(String, String, String)> = sqlx::query_as(
            "SELECT state, severity, updated_at FROM gaps WHERE facility_id = ? AND sensor_id = ? AND gap_key = ?",
        )
        .bind(&g.facility_id)
        .bind(&g.sensor_id)
        .bind(&g.gap_key)
        .fetch_optional(&mut *tx)
        .await?;
        let at = ts(g.observed_at);
        if prev.as_ref().is_some_and(|(_, _, upd)| *upd > at) {
            return Ok(()); // an older event delivered late: history only
        }
        let cell = g.cell.clone().unwrap_or_default();
        let state = wire(&g.state);
        let severity = wire(&g.severity);
        let closed_at = (g.state == GapState::Closed).then(|| at.clone());
        sqlx::query(
            "INSERT INTO gaps (facility_id, sensor_id, gap_key, state, zone, band, technology, detector,
             center_hz, bandwidth_hz, pci, earfcn, nr_arfcn, arfcn, bsic, power_dbm, floor_dbm, margin_db,
             severity, opened_at, updated_at, closed_at, last_event_id)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (facility_id, sensor_id, gap_key) DO UPDATE SET state = excluded.state,
             zone = excluded.zone, band = excluded.band, technology = excluded.technology,
             detector = excluded.detector, center_hz = excluded.center_hz,
             bandwidth_hz = excluded.bandwidth_hz, pci = excluded.pci, earfcn = excluded.earfcn,
             nr_arfcn = excluded.nr_arfcn, arfcn = excluded.arfcn, bsic = excluded.bsic,
             power_dbm = excluded.power_dbm, floor_dbm = excluded.floor_dbm,
             margin_db = excluded.margin_db, severity = excluded.severity,
             opened_at = CASE WHEN gaps.state = 'closed' AND excluded.state != 'closed'
                              THEN excluded.opened_at ELSE gaps.opened_at END,
             updated_at = excluded.updated_at, closed_at = excluded.closed_at,
             last_event_id = excluded.last_event_id",
        )
        .bind(&g.facility_id)
        .bind(&g.sensor_id)
        .bind(&g.gap_key)
        .bind(&state)
        .bind(&g.zone)
        .bind(&g.band)
        .bind(g.technology.as_str())
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
        .bind(&severity)
        .bind(&at)
        .bind(&at)
        .bind(closed_at)
        .bind(g.event_id.to_string())
        .execute(&mut *tx)
        .await?;
        let was_critical_open = prev
            .as_ref()
            .is_some_and(|(st, sev, _)| st != "closed" && sev == "critical");
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
        Ok(())
    }

    async fn apply_jammer(
        &self,
        tx: &mut sqlx::SqliteConnection,
        j: &JammerEvent,
        alerts: &mut Vec<Alert>,
    ) -> Result<(), sqlx::Error> {
        let prev: Option<(String, String)> = sqlx::query_as(
            "SELECT state, updated_at FROM jammers WHERE facility_id = ? AND sensor_id = ? AND band = ?",
        )
        .bind(&j.facility_id)
        .bind(&j.sensor_id)
        .bind(&j.band)
        .fetch_optional(&mut *tx)
        .await?;
        let at = ts(j.observed_at);
        if prev.as_ref().is_some_and(|(_, upd)| *upd > at) {
            return Ok(());
        }
        let state = wire(&j.state);
        sqlx::query(
            "INSERT INTO jammers (facility_id, sensor_id, band, zone, state, noise_rise_db,
             covered_fraction, updated_at, last_event_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (facility_id, sensor_id, band) DO UPDATE SET zone = excluded.zone,
             state = excluded.state, noise_rise_db = excluded.noise_rise_db,
             covered_fraction = excluded.covered_fraction, updated_at = excluded.updated_at,
             last_event_id = excluded.last_event_id",
        )
        .bind(&j.facility_id)
        .bind(&j.sensor_id)
        .bind(&j.band)
        .bind(&j.zone)
        .bind(&state)
        .bind(j.noise_rise_db)
        .bind(j.covered_fraction)
        .bind(&at)
        .bind(j.event_id.to_string())
        .execute(&mut *tx)
        .await?;
        if j.state == JammerStateWire::Down && prev.as_ref().is_none_or(|(st, _)| st != "down") {
            alerts.push(Alert::JammerDown {
                facility_id: j.facility_id.clone(),
                sensor_id: j.sensor_id.clone(),
                zone: j.zone.clone(),
                band: j.band.clone(),
                noise_rise_db: j.noise_rise_db,
            });
        }
        Ok(())
    }

    /// The newest rejected messages.
    ///
    /// # Errors
    /// Database failures.
    pub async fn rejects(&self, limit: u32) -> Result<Vec<serde_json::Value>, sqlx::Error> {
        let rows: Vec<(String, String, String, String)> = sqlx::query_as(
            "SELECT received_at, topic, reason, detail FROM rejects ORDER BY id DESC LIMIT ?",
        )
        .bind(limit)
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
            "SELECT * FROM gaps WHERE facility_id = ?1 AND (?2 = 0 OR state != 'closed')
             AND (?3 IS NULL OR band = ?3) AND (?4 IS NULL OR technology = ?4)
             AND (?5 IS NULL OR zone = ?5) AND (?6 IS NULL OR updated_at >= ?6)
             AND (?7 IS NULL OR updated_at < ?7)
             ORDER BY margin_db DESC, sensor_id, gap_key LIMIT ?8",
        )
        .bind(facility)
        .bind(active)
        .bind(&f.band)
        .bind(&f.technology)
        .bind(&f.zone)
        .bind(f.since.map(ts))
        .bind(f.until.map(ts))
        .bind(f.limit.unwrap_or(10_000))
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
            "SELECT payload FROM events WHERE facility_id = ?1 AND kind = 'gap'
             AND (?2 IS NULL OR observed_at >= ?2) AND (?3 IS NULL OR observed_at < ?3)
             AND (?4 IS NULL OR coalesce(json_extract(payload, '$.msg.band'), json_extract(payload, '$.band')) = ?4)
             AND (?5 IS NULL OR coalesce(json_extract(payload, '$.msg.technology'), json_extract(payload, '$.technology')) = ?5)
             AND (?6 IS NULL OR coalesce(json_extract(payload, '$.msg.zone'), json_extract(payload, '$.zone')) = ?6)
             ORDER BY observed_at DESC, event_id DESC LIMIT ?7",
        )
        .bind(facility)
        .bind(f.since.map(ts))
        .bind(f.until.map(ts))
        .bind(&f.band)
        .bind(&f.technology)
        .bind(&f.zone)
        .bind(f.limit.unwrap_or(1000))
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
            sqlx::query("SELECT * FROM jammers WHERE facility_id = ? ORDER BY band, sensor_id")
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
               (SELECT coalesce(sum(c.max_seq - c.seen), 0) FROM sequence_counts c
                 WHERE c.facility_id = s.facility_id AND c.sensor_id = s.sensor_id)
               -- An online sensor's Last Will holds a number in reserve until it is sent.
               - (CASE WHEN s.state = 'online'
                       AND json_extract(s.status, '$.msg.will_seq') IS NOT NULL
                       AND NOT EXISTS (SELECT 1 FROM sequences q
                            WHERE q.facility_id = s.facility_id AND q.sensor_id = s.sensor_id
                              AND q.seq = json_extract(s.status, '$.msg.will_seq'))
                       AND json_extract(s.status, '$.msg.will_seq') < (SELECT max(c.max_seq)
                            FROM sequence_counts c WHERE c.facility_id = s.facility_id
                              AND c.sensor_id = s.sensor_id)
                  THEN 1 ELSE 0 END) AS missing
             FROM sensors s WHERE (?1 IS NULL OR s.facility_id = ?1) ORDER BY s.facility_id, s.sensor_id",
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

    /// Marks offline the online sensors not heard from for `factor` heartbeats; returns alerts.
    ///
    /// # Errors
    /// Database failures.
    pub async fn expire_sensors(
        &self,
        now: OffsetDateTime,
        factor: f64,
    ) -> Result<Vec<Alert>, sqlx::Error> {
        let mut alerts = Vec::new();
        for s in self.sensors(None).await? {
            if s.state != SensorState::Online {
                continue;
            }
            let Ok(seen) = parse_ts(&s.last_seen) else {
                continue;
            };
            let silent = (now - seen).as_seconds_f64();
            if silent > factor * s.heartbeat_s {
                let n = sqlx::query(
                    "UPDATE sensors SET state = 'offline' WHERE facility_id = ? AND sensor_id = ? AND state = 'online' AND last_seen = ?",
                )
                .bind(&s.facility_id)
                .bind(&s.sensor_id)
                .bind(&s.last_seen)
                .execute(&self.pool)
                .await?
                .rows_affected();
                if n > 0 {
                    alerts.push(Alert::SensorOffline {
                        facility_id: s.facility_id,
                        sensor_id: s.sensor_id,
                        zone: s.zone,
                        reason: format!("silent for {silent:.0} s"),
                    });
                }
            }
        }
        Ok(alerts)
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
            sqlx::query_as("SELECT payload FROM spectra WHERE facility_id = ? ORDER BY sensor_id")
                .bind(facility)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(p,)| message_json(&p))
            .collect())
    }
}

/// The message of a stored payload (an envelope, verified when it arrived), as JSON.
fn message_json(payload: &str) -> Option<serde_json::Value> {
    serde_json::from_slice(protocol::signed::message_bytes(payload.as_bytes())).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The embedded list is the migrations directory as sqlx reads it: same versions, names and
    /// checksums (a migration added to the directory but not to the list fails here).
    #[tokio::test]
    async fn embedded_migrations_match_the_directory() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let from_dir = sqlx::migrate::Migrator::new(dir)
            .await
            .expect("migrations dir");
        let embedded = migrator();
        let key = |m: &sqlx::migrate::Migration| {
            (
                m.version,
                m.description.to_string(),
                m.checksum.to_vec(),
                m.no_tx,
                format!("{:?}", m.migration_type),
            )
        };
        let a: Vec<_> = embedded.iter().map(key).collect();
        let b: Vec<_> = from_dir.iter().map(key).collect();
        assert_eq!(a.len(), MIGRATIONS.len());
        assert_eq!(a, b);
    }
}
