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

/// When a batch last heard from each sensor, written once per sensor at its end (or before the
/// sensor's status is applied).
type Touches = std::collections::BTreeMap<(String, String), OffsetDateTime>;

fn touch(touches: &mut Touches, facility: &str, sensor: &str, heard: OffsetDateTime) {
    touches
        .entry((facility.to_string(), sensor.to_string()))
        .and_modify(|t| *t = (*t).max(heard))
        .or_insert(heard);
}

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
        // The batch's sequence numbers and events go in a statement per chunk each, not one per
        // message: with the database's own thread behind every statement, the round trips were
        // most of ingest's time.
        let seqs = Self::sequences(&mut tx, batch, received_at).await?;
        let inserted = Self::insert_events(&mut tx, batch, &seqs, received_at).await?;
        let mut gaps = Self::read_gaps(&mut tx, batch).await?;
        let mut out = Vec::with_capacity(batch.len());
        let mut rejected = false;
        let mut counts = SeqCounts::new();
        let mut touches = Touches::new();
        for ((item, seq), inserted) in batch.iter().zip(&seqs).zip(&inserted) {
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
                            Applied {
                                msg,
                                payload,
                                seal,
                                retained,
                                new_seq: *seq,
                                inserted: *inserted,
                            },
                            received_at,
                            &mut counts,
                            &mut touches,
                            &mut gaps,
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
        Self::write_gaps(&mut tx, &gaps).await?;
        let sensors: Vec<(String, String)> = touches.keys().cloned().collect();
        for (facility, sensor) in sensors {
            Self::flush_touch(&mut tx, &mut touches, &facility, &sensor).await?;
        }
        if rejected {
            sqlx::query("DELETE FROM rejects WHERE id <= (SELECT max(id) - 1000 FROM rejects)")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(out)
    }

    /// Records the sequence number of every accepted message of `batch`, in order: per item,
    /// `Some(true)` when it is new, `Some(false)` when these same bytes used it before (a
    /// resend), `None` when other bytes did (a replay) or the item is a reject.
    async fn sequences(
        tx: &mut sqlx::SqliteConnection,
        batch: &[Item<'_>],
        received_at: OffsetDateTime,
    ) -> Result<Vec<Option<bool>>, sqlx::Error> {
        let accepted: Vec<(&Message, Seal<'_>)> = batch
            .iter()
            .filter_map(|i| match *i {
                Item::Accept { msg, seal, .. } => Some((msg, seal)),
                Item::Reject { .. } => None,
            })
            .collect();
        let at = ts(received_at);
        let mut fresh: std::collections::HashSet<(String, String, String, i64)> =
            std::collections::HashSet::new();
        for chunk in accepted.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO sequences (facility_id, sensor_id, key, seq, kind, sha256, received_at) ",
            );
            q.push_values(chunk, |mut b, (msg, seal)| {
                let (facility, sensor) = msg.source();
                b.push_bind(facility)
                    .push_bind(sensor)
                    .push_bind(seal.key)
                    .push_bind(seal.seq)
                    .push_bind(msg.kind().as_str())
                    .push_bind(seal.sha256)
                    .push_bind(&at);
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
                out.push(Some(true));
                continue;
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
            out.push(same.is_some_and(|(s,)| s).then_some(false));
        }
        Ok(out)
    }

    /// Inserts the events that `seqs` admits (every accepted message but spectra and replays),
    /// in order: per item, whether its event was stored now (the first of the batch with its
    /// `event_id`, and none stored before).
    async fn insert_events(
        tx: &mut sqlx::SqliteConnection,
        batch: &[Item<'_>],
        seqs: &[Option<bool>],
        received_at: OffsetDateTime,
    ) -> Result<Vec<bool>, sqlx::Error> {
        // Per item, the event it would store: every accepted message but spectra and replays.
        let admitted: Vec<Option<(&Message, &str, Seal<'_>)>> = batch
            .iter()
            .zip(seqs)
            .map(|(i, seq)| match *i {
                Item::Accept {
                    msg, payload, seal, ..
                } if seq.is_some() && !matches!(msg, Message::Spectrum(_)) => {
                    Some((msg, payload, seal))
                }
                _ => None,
            })
            .collect();
        let events: Vec<(&Message, &str, Seal<'_>)> = admitted.iter().flatten().copied().collect();
        let at = ts(received_at);
        let mut fresh: std::collections::HashSet<String> = std::collections::HashSet::new();
        for chunk in events.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO events (event_id, kind, facility_id, sensor_id, observed_at, received_at, payload, key, seq) ",
            );
            q.push_values(chunk, |mut b, (msg, payload, seal)| {
                let (facility, sensor) = msg.source();
                b.push_bind(msg.event_id().to_string())
                    .push_bind(msg.kind().as_str())
                    .push_bind(facility)
                    .push_bind(sensor)
                    .push_bind(ts(msg.observed_at()))
                    .push_bind(&at)
                    .push_bind(*payload)
                    .push_bind(seal.key)
                    .push_bind(seal.seq);
            });
            q.push(" ON CONFLICT (event_id) DO NOTHING RETURNING event_id");
            for r in q.build().fetch_all(&mut *tx).await? {
                fresh.insert(r.get("event_id"));
            }
        }
        Ok(admitted
            .iter()
            .map(|a| a.is_some_and(|(msg, _, _)| fresh.remove(&msg.event_id().to_string())))
            .collect())
    }

    async fn apply(
        &self,
        tx: &mut sqlx::SqliteConnection,
        a: Applied<'_>,
        received_at: OffsetDateTime,
        counts: &mut SeqCounts,
        touches: &mut Touches,
        gaps: &mut GapRows,
    ) -> Result<Ingested, sqlx::Error> {
        let Applied {
            msg,
            payload,
            seal,
            retained,
            new_seq,
            inserted,
        } = a;
        let (facility, sensor) = msg.source();
        match new_seq {
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
            touch(touches, facility, sensor, heard);
            return Ok(Ingested::New(Vec::new()));
        }
        let event_id = msg.event_id().to_string();
        if !inserted {
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
                Self::apply_gap(gaps, g, &mut alerts);
                touch(touches, facility, sensor, heard);
            }
            Message::Jammer(j) => {
                self.apply_jammer(tx, j, &mut alerts).await?;
                touch(touches, facility, sensor, heard);
            }
            Message::Status(s) => {
                // The events before it in the batch touched the sensor first.
                Self::flush_touch(tx, touches, facility, sensor).await?;
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

    /// Writes what the batch heard of sensor (`facility`, `sensor`) so far: events prove it
    /// alive only if it has said hello (the status carries its zone).
    async fn flush_touch(
        tx: &mut sqlx::SqliteConnection,
        touches: &mut Touches,
        facility: &str,
        sensor: &str,
    ) -> Result<(), sqlx::Error> {
        let Some(heard) = touches.remove(&(facility.to_string(), sensor.to_string())) else {
            return Ok(());
        };
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

    /// Reads the current state of every gap the batch's gap events name, one statement per
    /// sensor.
    async fn read_gaps(
        tx: &mut sqlx::SqliteConnection,
        batch: &[Item<'_>],
    ) -> Result<GapRows, sqlx::Error> {
        let mut wanted: std::collections::BTreeMap<(String, String), Vec<String>> =
            std::collections::BTreeMap::new();
        for item in batch {
            if let Item::Accept {
                msg: Message::Gap(g),
                ..
            } = *item
            {
                let keys = wanted
                    .entry((g.facility_id.clone(), g.sensor_id.clone()))
                    .or_default();
                if !keys.contains(&g.gap_key) {
                    keys.push(g.gap_key.clone());
                }
            }
        }
        let mut out = GapRows::default();
        for ((facility, sensor), keys) in wanted {
            for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                    "SELECT gap_key, state, severity, updated_at, opened_at FROM gaps WHERE facility_id = ",
                );
                q.push_bind(&facility)
                    .push(" AND sensor_id = ")
                    .push_bind(&sensor)
                    .push(" AND gap_key IN (");
                let mut sep = q.separated(", ");
                for k in chunk {
                    sep.push_bind(k);
                }
                sep.push_unseparated(")");
                for k in chunk {
                    out.rows
                        .insert((facility.clone(), sensor.clone(), k.clone()), None);
                }
                for r in q.build().fetch_all(&mut *tx).await? {
                    let key: String = r.get("gap_key");
                    out.rows.insert(
                        (facility.clone(), sensor.clone(), key),
                        Some(GapNow {
                            state: from_wire(&r, "state")?,
                            severity: from_wire(&r, "severity")?,
                            updated_at: r.get("updated_at"),
                            opened_at: r.get("opened_at"),
                            closed_at: None,
                            event: None,
                        }),
                    );
                }
            }
        }
        Ok(out)
    }

    /// Writes the gaps the batch changed, in a statement per chunk.
    async fn write_gaps(
        tx: &mut sqlx::SqliteConnection,
        gaps: &GapRows,
    ) -> Result<(), sqlx::Error> {
        let rows: Vec<(&GapNow, &GapEvent)> = gaps
            .changed
            .iter()
            .filter_map(|k| gaps.rows.get(k).and_then(Option::as_ref))
            .filter_map(|r| r.event.as_ref().map(|e| (r, e)))
            .collect();
        for chunk in rows.chunks(ROWS_PER_STATEMENT) {
            let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO gaps (facility_id, sensor_id, gap_key, state, zone, band, technology, detector,
                 center_hz, bandwidth_hz, pci, earfcn, nr_arfcn, arfcn, bsic, power_dbm, floor_dbm, margin_db,
                 severity, opened_at, updated_at, closed_at, last_event_id) ",
            );
            q.push_values(chunk, |mut b, (r, g)| {
                let cell = g.cell.clone().unwrap_or_default();
                b.push_bind(g.facility_id.clone())
                    .push_bind(g.sensor_id.clone())
                    .push_bind(g.gap_key.clone())
                    .push_bind(wire(&r.state))
                    .push_bind(g.zone.clone())
                    .push_bind(g.band.clone())
                    .push_bind(g.technology.as_str())
                    .push_bind(wire(&g.detector))
                    .push_bind(g.center_hz)
                    .push_bind(g.bandwidth_hz)
                    .push_bind(cell.pci.map(i64::from))
                    .push_bind(cell.earfcn.map(i64::from))
                    .push_bind(cell.nr_arfcn.map(i64::from))
                    .push_bind(cell.arfcn.map(i64::from))
                    .push_bind(cell.bsic.map(i64::from))
                    .push_bind(g.power_dbm)
                    .push_bind(g.floor_dbm)
                    .push_bind(g.margin_db)
                    .push_bind(wire(&r.severity))
                    .push_bind(r.opened_at.clone())
                    .push_bind(r.updated_at.clone())
                    .push_bind(r.closed_at.clone())
                    .push_bind(g.event_id.to_string());
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
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("s.db")).await.expect("open");
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
        let got = store.ingest_batch(&batch, at).await.expect("batch");
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
            .expect("batch");
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
        let dir = tempfile::tempdir().expect("tmp");
        let store = Store::open(&dir.path().join("s.db")).await.expect("open");
        let ev = |n: i64, state: GapState| -> &'static Message {
            let Message::Gap(mut g) = gap(1, 12.0) else {
                unreachable!()
            };
            g.observed_at = OffsetDateTime::from_unix_timestamp(1_800_000_000 + n).expect("t");
            g.state = state;
            g.event_id = protocol::event_id(g.observed_at, format!("{n}").as_bytes());
            Box::leak(Box::new(Message::Gap(g)))
        };
        let msgs = [
            ev(10, GapState::Open),
            ev(20, GapState::Closed),
            ev(30, GapState::Open),
            ev(40, GapState::Update),
            ev(25, GapState::Closed),
        ];
        let batch: Vec<Item<'_>> = msgs
            .iter()
            .enumerate()
            .map(|(k, m)| Item::Accept {
                topic: "centinela/v1/f/s/gap",
                msg: m,
                payload: Box::leak(format!("payload {k}").into_boxed_str()),
                seal: Seal {
                    key: "ed25519:k",
                    seq: k as i64 + 1,
                    sha256: Box::leak(format!("sha {k}").into_boxed_str()),
                },
                retained: false,
            })
            .collect();
        let at = OffsetDateTime::from_unix_timestamp(1_800_000_100).expect("t");
        let got = store.ingest_batch(&batch, at).await.expect("batch");
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

    fn msgs_time(n: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + n).expect("t")
    }
}
