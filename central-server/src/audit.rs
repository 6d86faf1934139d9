//! `central-server audit`: re-verifies, offline and read-only, what a database holds. Every
//! stored event must be the signed envelope it arrived as: it opens, its signature verifies for
//! the topic its row names, its key and number are those of the row (and, given the server's
//! configuration, the key registered for the sensor), its message decodes to the row's event,
//! and its digest is the one recorded with its number. Every number recorded for an event must
//! still have its event. Numbers a sensor used that never arrived are listed as missing
//! messages. The report is text for people (Spanish, then English) or JSON.
//!
//! Run it on a copy of a SQLite file (it opens the file read-only and changes nothing), or on
//! a PostgreSQL database while servers write to it: it reads one snapshot, in a read-only
//! transaction.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use protocol::signed::Envelope;
use serde::Serialize;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyConnection, Row};
use time::OffsetDateTime;

use crate::ServerError;
use crate::db::{Database, sqlite_url};
use crate::store::{parse_ts, ts};
use crate::trust::Registry;

/// What to audit.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The database: a copy of a SQLite file, or a PostgreSQL URL.
    pub db: Database,
    /// Only this facility.
    pub facility: Option<String>,
    /// Only messages received at or after this time.
    pub since: Option<OffsetDateTime>,
    /// The server's registry, to check that each key is the sensor's registered key.
    pub registry: Option<Registry>,
}

/// One thing that does not verify.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Failure {
    /// The event, when the failure is an event's.
    pub event_id: Option<String>,
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// Kind.
    pub kind: String,
    /// Sequence number.
    pub seq: Option<i64>,
    /// What is wrong (English; the text report gives Spanish too).
    pub problem: String,
    /// What is wrong, in Spanish.
    pub problema: String,
}

/// One sensor key's sequence.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SensorSequence {
    /// Facility.
    pub facility_id: String,
    /// Sensor.
    pub sensor_id: String,
    /// Key.
    pub key: String,
    /// Lowest and highest number received.
    pub first: i64,
    /// Highest number received.
    pub last: i64,
    /// Numbers received.
    pub received: i64,
    /// Ranges of numbers never received (inclusive), below `last`.
    pub missing: Vec<(i64, i64)>,
    /// How many numbers are missing.
    pub missing_count: i64,
}

/// The audit's findings.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The database audited.
    pub db: String,
    /// SHA-256 of the SQLite file's bytes when audited (none for PostgreSQL).
    pub db_sha256: Option<String>,
    /// When the audit ran.
    pub audited_at: String,
    /// Facility filter.
    pub facility: Option<String>,
    /// Time filter.
    pub since: Option<String>,
    /// Events examined.
    pub events: u64,
    /// Events that verified.
    pub verified: u64,
    /// Per sensor and key.
    pub sequences: Vec<SensorSequence>,
    /// What does not verify.
    pub failures: Vec<Failure>,
}

impl Report {
    /// Whether everything verified.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }

    /// Messages missing, all sensors.
    #[must_use]
    pub fn missing(&self) -> i64 {
        self.sequences.iter().map(|s| s.missing_count).sum()
    }

    /// The report as text, Spanish first and English after each line.
    #[must_use]
    pub fn text(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "Auditoría de Centinela / Centinela audit");
        let _ = writeln!(o, "  base de datos / database: {}", self.db);
        if let Some(sha) = &self.db_sha256 {
            let _ = writeln!(o, "  SHA-256 del archivo / file SHA-256: {sha}");
        }
        let _ = writeln!(o, "  auditada / audited at: {}", self.audited_at);
        if let Some(f) = &self.facility {
            let _ = writeln!(o, "  establecimiento / facility: {f}");
        }
        if let Some(s) = &self.since {
            let _ = writeln!(o, "  desde / since: {s}");
        }
        let _ = writeln!(
            o,
            "  eventos verificados / events verified: {} de / of {}",
            self.verified, self.events
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Secuencias por sensor / sequences per sensor (un sensor conectado reserva un número para su Last Will hasta desconectarse / a connected sensor holds one number for its Last Will until it disconnects):"
        );
        if self.sequences.is_empty() {
            let _ = writeln!(o, "  (ninguna / none)");
        }
        for s in &self.sequences {
            let _ = writeln!(
                o,
                "  {}/{} {}: números / numbers {}–{}, recibidos / received {}, faltan / missing {}",
                s.facility_id, s.sensor_id, s.key, s.first, s.last, s.received, s.missing_count
            );
            if !s.missing.is_empty() {
                let shown: Vec<String> = s
                    .missing
                    .iter()
                    .take(20)
                    .map(|&(a, b)| {
                        if a == b {
                            a.to_string()
                        } else {
                            format!("{a}–{b}")
                        }
                    })
                    .collect();
                let more = if s.missing.len() > 20 {
                    format!(" (+{} más / more)", s.missing.len() - 20)
                } else {
                    String::new()
                };
                let _ = writeln!(
                    o,
                    "    mensajes que nunca llegaron / messages that never arrived: {}{more}",
                    shown.join(", ")
                );
            }
        }
        let _ = writeln!(o);
        if self.failures.is_empty() {
            let _ = writeln!(
                o,
                "Resultado / result: CORRECTO / PASS: cada evento guardado verifica / every stored event verifies"
            );
        } else {
            let _ = writeln!(
                o,
                "Resultado / result: FALLA / FAIL: {} problema(s) / problem(s)",
                self.failures.len()
            );
            for f in &self.failures {
                let _ = writeln!(
                    o,
                    "  evento / event {} ({} {}/{}{}): {} / {}",
                    f.event_id.as_deref().unwrap_or("-"),
                    f.kind,
                    f.facility_id,
                    f.sensor_id,
                    f.seq.map(|s| format!(", seq {s}")).unwrap_or_default(),
                    f.problema,
                    f.problem
                );
            }
        }
        o
    }
}

/// One read-only connection: a SQLite file opened read-only, or a PostgreSQL session whose
/// transactions are read-only.
async fn open_read_only(db: &Database) -> Result<sqlx::AnyPool, ServerError> {
    let bad = |e: sqlx::Error| ServerError::Database {
        path: db.to_string(),
        source: e,
    };
    sqlx::any::install_default_drivers();
    match db {
        Database::Sqlite(path) => {
            if !path.is_file() {
                return Err(ServerError::Config(vec![format!(
                    "{}: no such database file",
                    path.display()
                )]));
            }
            AnyPoolOptions::new()
                .max_connections(1)
                .connect(&sqlite_url(path, "ro"))
                .await
                .map_err(bad)
        }
        Database::Postgres(url) => AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|c, _| {
                Box::pin(async move {
                    sqlx::raw_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
                        .execute(c)
                        .await
                        .map(|_| ())
                })
            })
            .connect(url)
            .await
            .map_err(bad),
    }
}

/// Runs the audit.
///
/// # Errors
/// A file that cannot be opened or read as a Centinela database.
pub async fn audit(opts: &AuditOptions) -> Result<Report, ServerError> {
    let db_err = |e: sqlx::Error| ServerError::Database {
        path: opts.db.to_string(),
        source: e,
    };
    let db_sha256 = match opts.db.file() {
        Some(path) if path.is_file() => {
            let bytes = std::fs::read(path)
                .map_err(|e| ServerError::Config(vec![format!("{}: {e}", path.display())]))?;
            Some(protocol::payload_sha256(&bytes))
        }
        _ => None,
    };
    let pool = open_read_only(&opts.db).await?;
    let mut tx = pool.begin().await.map_err(db_err)?;
    if opts.db.engine() == crate::db::Engine::Postgres {
        // One snapshot for every query: servers may be writing while the audit reads.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
    }
    let since = opts.since.map(ts);
    let rows = sqlx::query(
        "SELECT e.event_id, e.kind, e.facility_id, e.sensor_id, e.observed_at, e.payload, e.key,
                e.seq, s.sha256 AS recorded_sha256
         FROM events e LEFT JOIN sequences s ON s.facility_id = e.facility_id
              AND s.sensor_id = e.sensor_id AND s.key = e.key AND s.seq = e.seq
         WHERE ($1 IS NULL OR e.facility_id = $1) AND ($2 IS NULL OR e.received_at >= $2)
         ORDER BY e.facility_id, e.sensor_id, e.seq, e.event_id",
    )
    .bind(&opts.facility)
    .bind(&since)
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    let mut failures = Vec::new();
    let mut verified = 0u64;
    for r in &rows {
        let event_id: String = r.get("event_id");
        let kind: String = r.get("kind");
        let facility: String = r.get("facility_id");
        let sensor: String = r.get("sensor_id");
        let seq: Option<i64> = r.get("seq");
        let fail = |en: String, es: String| Failure {
            event_id: Some(event_id.clone()),
            facility_id: facility.clone(),
            sensor_id: sensor.clone(),
            kind: kind.clone(),
            seq,
            problem: en,
            problema: es,
        };
        match check_event(r, opts.registry.as_ref()) {
            Ok(()) => verified += 1,
            Err((en, es)) => failures.push(fail(en, es)),
        }
    }
    // Every number recorded for an event still has its event, unless retention pruned it (it
    // was observed before the cutoff of its kind that the last pruning applied).
    let cut = cutoffs(&mut tx).await;
    let orphans = sqlx::query(
        "SELECT s.facility_id, s.sensor_id, s.key, s.seq, s.kind FROM sequences s
         LEFT JOIN events e ON e.facility_id = s.facility_id AND e.sensor_id = s.sensor_id
              AND e.key = s.key AND e.seq = s.seq
         WHERE e.event_id IS NULL AND s.kind IN ('gap', 'jammer', 'status')
           AND ($1 IS NULL OR s.facility_id = $1) AND ($2 IS NULL OR s.received_at >= $2)
           AND NOT (s.observed_at IS NOT NULL AND (
                (s.kind = 'status' AND s.observed_at < $3) OR s.observed_at < $4))
         ORDER BY s.facility_id, s.sensor_id, s.seq",
    )
    .bind(&opts.facility)
    .bind(&since)
    .bind(
        cut.as_ref()
            .map_or(String::new(), |c| c.statuses_before.clone()),
    )
    .bind(
        cut.as_ref()
            .map_or(String::new(), |c| c.events_before.clone()),
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(db_err)?;
    for r in &orphans {
        let seq: i64 = r.get("seq");
        failures.push(Failure {
            event_id: None,
            facility_id: r.get("facility_id"),
            sensor_id: r.get("sensor_id"),
            kind: r.get("kind"),
            seq: Some(seq),
            problem: format!(
                "message {seq} was received and stored, and its event is no longer in the database"
            ),
            problema: format!(
                "el mensaje {seq} se recibió y guardó, y su evento ya no está en la base de datos"
            ),
        });
    }
    let sequences = sequences(&mut tx, opts, cut.as_ref())
        .await
        .map_err(db_err)?;
    let _ = tx.rollback().await;
    pool.close().await;
    Ok(Report {
        db: opts.db.to_string(),
        db_sha256,
        audited_at: ts(OffsetDateTime::now_utc()),
        facility: opts.facility.clone(),
        since,
        events: rows.len() as u64,
        verified,
        sequences,
        failures,
    })
}

/// Checks one stored event; the problem in English and Spanish.
fn check_event(r: &sqlx::any::AnyRow, registry: Option<&Registry>) -> Result<(), (String, String)> {
    let event_id: String = r.get("event_id");
    let kind: String = r.get("kind");
    let facility: String = r.get("facility_id");
    let sensor: String = r.get("sensor_id");
    let observed_at: String = r.get("observed_at");
    let payload: String = r.get("payload");
    let key: Option<String> = r.get("key");
    let seq: Option<i64> = r.get("seq");
    let recorded: Option<String> = r.get("recorded_sha256");
    let kind_enum = protocol::Kind::parse(&kind).ok_or_else(|| {
        (
            format!("unknown kind `{kind}`"),
            format!("tipo desconocido `{kind}`"),
        )
    })?;
    let topic = protocol::topic(&facility, &sensor, kind_enum)
        .map_err(|e| (format!("bad row: {e}"), format!("fila inválida: {e}")))?;
    let env = Envelope::open(payload.as_bytes()).map_err(|e| {
        (
            format!("the stored payload is not a signed envelope: {e}"),
            format!("el contenido guardado no es un sobre firmado: {e}"),
        )
    })?;
    env.verify(&topic).map_err(|_| {
        (
            "the signature does not verify: the stored bytes are not those the sensor signed"
                .to_string(),
            "la firma no verifica: los bytes guardados no son los que firmó el sensor".to_string(),
        )
    })?;
    let env_key = env.key.to_string();
    if key.as_deref() != Some(env_key.as_str()) || seq != i64::try_from(env.seq).ok() {
        return Err((
            format!(
                "the row says key {} and number {}, the envelope {env_key} and {}",
                key.as_deref().unwrap_or("-"),
                seq.map_or("-".into(), |s| s.to_string()),
                env.seq
            ),
            format!(
                "la fila dice clave {} y número {}, el sobre {env_key} y {}",
                key.as_deref().unwrap_or("-"),
                seq.map_or("-".into(), |s| s.to_string()),
                env.seq
            ),
        ));
    }
    if let Some(reg) = registry {
        match reg.get(&facility, &sensor).and_then(|e| e.key) {
            Some(k) if env.key.is(&k) => {}
            _ => {
                return Err((
                    format!("{env_key} is not the key the configuration registers for this sensor"),
                    format!(
                        "{env_key} no es la clave que la configuración registra para este sensor"
                    ),
                ));
            }
        }
    }
    let m = protocol::decode(&topic, env.msg).map_err(|e| {
        (
            format!("the signed message does not decode: {e}"),
            format!("el mensaje firmado no se decodifica: {e}"),
        )
    })?;
    if m.event_id().to_string() != event_id || ts(m.observed_at()) != observed_at {
        return Err((
            format!(
                "the row's event id or time ({event_id}, {observed_at}) is not the message's ({}, {})",
                m.event_id(),
                ts(m.observed_at())
            ),
            format!(
                "el id o la hora de la fila ({event_id}, {observed_at}) no son los del mensaje ({}, {})",
                m.event_id(),
                ts(m.observed_at())
            ),
        ));
    }
    let digest = protocol::payload_sha256(payload.as_bytes());
    if recorded.as_deref() != Some(digest.as_str()) {
        return Err((
            "the digest recorded with its sequence number is missing or is not that of the stored bytes".into(),
            "el resumen guardado con su número de secuencia falta o no es el de los bytes guardados".into(),
        ));
    }
    Ok(())
}

/// The cutoffs the last pruning applied (none in a database never pruned, or older than
/// retention).
async fn cutoffs(tx: &mut AnyConnection) -> Option<crate::store::Cutoffs> {
    let v: Option<String> =
        sqlx::query_scalar("SELECT value FROM maintenance WHERE name = 'retention'")
            .fetch_optional(tx)
            .await
            .ok()
            .flatten();
    v.and_then(|v| serde_json::from_str(&v).ok())
}

async fn sequences(
    tx: &mut AnyConnection,
    opts: &AuditOptions,
    cut: Option<&crate::store::Cutoffs>,
) -> Result<Vec<SensorSequence>, sqlx::Error> {
    let since = opts.since.map(ts);
    let rows = sqlx::query(
        "SELECT facility_id, sensor_id, key, seq, received_at FROM sequences
         WHERE ($1 IS NULL OR facility_id = $1) AND ($2 IS NULL OR received_at >= $2)
         ORDER BY facility_id, sensor_id, key, seq",
    )
    .bind(&opts.facility)
    .bind(&since)
    .fetch_all(tx)
    .await?;
    // Numbers of statuses and spectrum summaries received before the statuses' cutoff are
    // pruned: a sensor's numbers are whole only above the highest number it has left from
    // before then.
    let pruned_before = cut.map(|c| c.statuses_before.clone());
    let mut by: BTreeMap<(String, String, String), (Vec<i64>, i64)> = BTreeMap::new();
    for r in rows {
        let e = by
            .entry((r.get("facility_id"), r.get("sensor_id"), r.get("key")))
            .or_default();
        let seq: i64 = r.get("seq");
        let received: String = r.get("received_at");
        if pruned_before.as_ref().is_some_and(|p| received < *p) {
            e.1 = e.1.max(seq);
        } else {
            e.0.push(seq);
        }
    }
    Ok(by
        .into_iter()
        .map(|((facility_id, sensor_id, key), (mut seqs, floor))| {
            seqs.retain(|&s| s > floor);
            // A sensor counts from 1; with a time filter, from the first number in the window;
            // after pruning, from the first number above what it left from before.
            let start = if opts.since.is_some() {
                seqs.first().copied().unwrap_or(1)
            } else {
                floor + 1
            };
            let mut missing = Vec::new();
            let mut expect = start;
            for &s in &seqs {
                if s > expect {
                    missing.push((expect, s - 1));
                }
                expect = expect.max(s + 1);
            }
            let missing_count = missing.iter().map(|(a, b)| b - a + 1).sum();
            SensorSequence {
                facility_id,
                sensor_id,
                key,
                first: seqs.first().copied().unwrap_or(0),
                last: seqs.last().copied().unwrap_or(0),
                received: seqs.len() as i64,
                missing,
                missing_count,
            }
        })
        .collect())
}

/// Reads `--since`.
///
/// # Errors
/// Not RFC 3339.
pub fn parse_since(s: &str) -> Result<OffsetDateTime, String> {
    parse_ts(s).map_err(|e| format!("--since: {e}"))
}
