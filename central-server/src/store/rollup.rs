//! Aggregates for years of history: per facility, zone, band and hour, how long each jammer
//! state was seen, how many minutes gaps were open by severity, and how long sensors were up;
//! summed per day. The raw events they come from are pruned long before.
//!
//! One server rolls up at a time (the maintenance round). Each round recomputes, from the
//! events, every hour from two hours before the last hour it finished (events arrive late: a
//! facility's link may be cut) and any older hour an event arrived late for (`rollup_dirty`),
//! up to the last whole hour. The state at the start of the first hour recomputed is carried
//! from the previous round; without it (the first round, or a late event for an older hour), it
//! is each key's last event within two days before, or the current state when that changed
//! before the hour (a key with neither is not counted for that hour).
//!
//! A sensor is up from an `online` status for the heartbeat sample interval plus three of its
//! heartbeats (the history keeps one heartbeat per sample), until the next status; down from an
//! `offline` one. Jammer times are sensor-seconds: a band seen by two sensors of a zone for a
//! whole hour counts 7,200 s.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use protocol::{
    GapEvent, GapState, JammerEvent, JammerStateWire, SensorState, Severity, StatusEvent,
};
use serde::{Deserialize, Serialize};
use sqlx::Row as _;
use time::OffsetDateTime;

use super::{ROWS_PER_STATEMENT, Rows, Store, parse_ts, ts};

/// Hours recomputed behind the last one finished, for events that arrive late.
const REDO_HOURS: i64 = 2;
/// How far back a key's last event is looked for when no state is carried.
const LOOKBACK: time::Duration = time::Duration::days(2);
/// Most hours one round recomputes (the oldest late events wait for the next rounds).
const MAX_HOURS: i64 = 7 * 24;

/// What a key was doing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Doing {
    Jammer(JammerStateWire),
    /// A gap open at this severity.
    Gap(Severity),
    /// A gap closed.
    NoGap,
    /// A sensor up until this unix time (at most).
    Up(i64),
}

/// A key of the state: kind, facility, sensor, and the gap key, band or nothing.
type Key = (u8, String, String, String);

/// A key's state and where it counts.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Track {
    zone: String,
    band: String,
    doing: Doing,
}

/// One hourly row's sums.
#[derive(Debug, Clone, Default)]
struct Sums {
    effective_s: f64,
    degraded_s: f64,
    down_s: f64,
    low_min: f64,
    high_min: f64,
    critical_min: f64,
    up_s: f64,
    sensors: BTreeSet<String>,
}

/// What the round carries to the next: the state at `at`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Carry {
    /// The last whole hour finished.
    done: String,
    /// When the carried state holds.
    at: String,
    states: Vec<(Key, Track)>,
}

fn hour_start(t: OffsetDateTime) -> OffsetDateTime {
    t.replace_minute(0)
        .and_then(|t| t.replace_second(0))
        .and_then(|t| t.replace_nanosecond(0))
        .unwrap_or(t)
}

/// A stored event, read for the roll-up.
struct Seen {
    at: OffsetDateTime,
    key: Key,
    track: Track,
}

/// What a stored payload says, as a key and its new state (`None` for a message the roll-up
/// does not count).
fn read_event(kind: &str, payload: &str, sample_s: f64) -> Option<Seen> {
    let msg = protocol::signed::message_bytes(payload.as_bytes());
    match kind {
        "jammer" => {
            let j: JammerEvent = serde_json::from_slice(msg).ok()?;
            Some(Seen {
                at: j.observed_at,
                key: (1, j.facility_id, j.sensor_id, j.band.clone()),
                track: Track {
                    zone: j.zone,
                    band: j.band,
                    doing: Doing::Jammer(j.state),
                },
            })
        }
        "gap" => {
            let g: GapEvent = serde_json::from_slice(msg).ok()?;
            Some(Seen {
                at: g.observed_at,
                key: (2, g.facility_id, g.sensor_id, g.gap_key),
                track: Track {
                    zone: g.zone,
                    band: g.band,
                    doing: if g.state == GapState::Closed {
                        Doing::NoGap
                    } else {
                        Doing::Gap(g.severity)
                    },
                },
            })
        }
        "status" => {
            let s: StatusEvent = serde_json::from_slice(msg).ok()?;
            let until = if s.state == SensorState::Online {
                s.observed_at.unix_timestamp() + (sample_s + 3.0 * s.heartbeat_s).ceil() as i64
            } else {
                s.observed_at.unix_timestamp()
            };
            Some(Seen {
                at: s.observed_at,
                key: (3, s.facility_id, s.sensor_id, String::new()),
                track: Track {
                    zone: s.zone,
                    band: String::new(),
                    doing: Doing::Up(until),
                },
            })
        }
        _ => None,
    }
}

/// Adds `track`'s state over `[from, to)` to the hours it covers.
fn accrue(
    sums: &mut BTreeMap<(String, String, String, i64), Sums>,
    key: &Key,
    track: &Track,
    from: i64,
    to: i64,
) {
    let mut t = from;
    while t < to {
        let hour = t - t.rem_euclid(3600);
        let end = (hour + 3600).min(to);
        let mut secs = (end - t) as f64;
        let band = if key.0 == 3 {
            String::new()
        } else {
            track.band.clone()
        };
        let s = sums
            .entry((key.1.clone(), track.zone.clone(), band, hour))
            .or_default();
        match track.doing {
            Doing::Jammer(JammerStateWire::Effective) => s.effective_s += secs,
            Doing::Jammer(JammerStateWire::Degraded) => s.degraded_s += secs,
            Doing::Jammer(JammerStateWire::Down) => s.down_s += secs,
            Doing::Gap(Severity::Low) => s.low_min += secs / 60.0,
            Doing::Gap(Severity::High) => s.high_min += secs / 60.0,
            Doing::Gap(Severity::Critical) => s.critical_min += secs / 60.0,
            Doing::Up(until) => {
                secs = (end.min(until) - t).max(0) as f64;
                s.up_s += secs;
            }
            _ => secs = 0.0,
        }
        if secs > 0.0 {
            s.sensors.insert(key.2.clone());
        }
        t = end;
    }
}

impl Store {
    /// Rolls up the hours due (see the module); how many hours it wrote.
    ///
    /// # Errors
    /// Database failures.
    pub(super) async fn roll_up(&self, now: OffsetDateTime) -> Result<u64, sqlx::Error> {
        let end = hour_start(now);
        let carried: Option<Carry> =
            sqlx::query_scalar::<_, String>("SELECT value FROM maintenance WHERE name = 'rollup'")
                .fetch_optional(&self.pool)
                .await?
                .and_then(|v| serde_json::from_str(&v).ok());
        let redo = time::Duration::hours(REDO_HOURS);
        let mut start = match &carried {
            Some(c) => parse_ts(&c.done).map_or(end - redo, |d| d - redo),
            None => end - redo,
        };
        let dirty: Vec<String> = sqlx::query_scalar("SELECT DISTINCT hour FROM rollup_dirty")
            .fetch_all(&self.pool)
            .await?;
        for h in &dirty {
            if let Ok(h) = parse_ts(h) {
                start = start.min(hour_start(h));
            }
        }
        start = start.max(end - time::Duration::hours(MAX_HOURS));
        if start >= end {
            return Ok(0);
        }
        let mut states: HashMap<Key, Track> = match &carried {
            Some(c) if parse_ts(&c.at).is_ok_and(|at| at == start) => {
                c.states.iter().cloned().collect()
            }
            _ => self.state_at(start).await?,
        };
        let carry_at = (end - redo).max(start);
        let rows = sqlx::query(
            "SELECT kind, observed_at, payload FROM events
             WHERE kind IN ('gap', 'jammer', 'status') AND observed_at >= $1 AND observed_at < $2
             ORDER BY observed_at",
        )
        .bind(ts(start))
        .bind(ts(end))
        .fetch_all(&self.pool)
        .await?;
        let mut sums: BTreeMap<(String, String, String, i64), Sums> = BTreeMap::new();
        let mut since: HashMap<Key, i64> = states
            .keys()
            .map(|k| (k.clone(), start.unix_timestamp()))
            .collect();
        let mut next_carry: Option<Vec<(Key, Track)>> = None;
        let snapshot = |states: &HashMap<Key, Track>| -> Vec<(Key, Track)> {
            states
                .iter()
                .filter(|(_, t)| t.doing != Doing::NoGap)
                .map(|(k, t)| (k.clone(), t.clone()))
                .collect()
        };
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let payload: String = r.try_get("payload")?;
            let Some(e) = read_event(&kind, &payload, self.heartbeat_sample_s) else {
                continue;
            };
            let t = e.at.unix_timestamp();
            if next_carry.is_none() && t >= carry_at.unix_timestamp() {
                // Close every key's time up to the carry point, and keep the state there.
                for (k, tr) in &states {
                    let from = since.get(k).copied().unwrap_or(t);
                    accrue(&mut sums, k, tr, from, carry_at.unix_timestamp());
                    since.insert(k.clone(), carry_at.unix_timestamp());
                }
                next_carry = Some(snapshot(&states));
            }
            if let Some(prev) = states.get(&e.key) {
                let from = since.get(&e.key).copied().unwrap_or(t);
                accrue(&mut sums, &e.key, prev, from, t);
            }
            since.insert(e.key.clone(), t);
            states.insert(e.key, e.track);
        }
        if next_carry.is_none() {
            for (k, tr) in &states {
                let from = since.get(k).copied().unwrap_or(carry_at.unix_timestamp());
                accrue(&mut sums, k, tr, from, carry_at.unix_timestamp());
                since.insert(k.clone(), carry_at.unix_timestamp());
            }
            next_carry = Some(snapshot(&states));
        }
        for (k, tr) in &states {
            let from = since.get(k).copied().unwrap_or(end.unix_timestamp());
            accrue(&mut sums, k, tr, from, end.unix_timestamp());
        }
        // Write the hours whole: each one recomputed for every facility.
        let mut tx = crate::db::begin(&self.pool).await?;
        sqlx::query("DELETE FROM hourly WHERE hour >= $1 AND hour < $2")
            .bind(ts(start))
            .bind(ts(end))
            .execute(&mut *tx)
            .await?;
        let list: Vec<_> = sums.into_iter().collect();
        for chunk in list.chunks(ROWS_PER_STATEMENT / 12) {
            let mut q = Rows::new(
                "INSERT INTO hourly (facility_id, zone, band, hour, jammer_effective_s,
                 jammer_degraded_s, jammer_down_s, gap_low_min, gap_high_min, gap_critical_min,
                 sensor_up_s, sensors) ",
            );
            q.values(chunk, |b, ((f, zone, band, hour), s)| {
                let h = OffsetDateTime::from_unix_timestamp(*hour).unwrap_or(start);
                b.bind(f.clone())
                    .bind(zone.clone())
                    .bind(band.clone())
                    .bind(ts(h))
                    .bind(s.effective_s)
                    .bind(s.degraded_s)
                    .bind(s.down_s)
                    .bind(s.low_min)
                    .bind(s.high_min)
                    .bind(s.critical_min)
                    .bind(s.up_s)
                    .bind(i64::try_from(s.sensors.len()).unwrap_or(0));
            });
            q.build().execute(&mut *tx).await?;
        }
        // The days those hours fall in, summed again from their hours.
        let mut day = start.replace_time(time::Time::MIDNIGHT);
        while day < end {
            let next = day + time::Duration::days(1);
            sqlx::query("DELETE FROM daily WHERE day = $1")
                .bind(ts(day))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO daily (facility_id, zone, band, day, jammer_effective_s,
                 jammer_degraded_s, jammer_down_s, gap_low_min, gap_high_min, gap_critical_min,
                 sensor_up_s, sensors)
                 SELECT facility_id, zone, band, $1, sum(jammer_effective_s),
                 sum(jammer_degraded_s), sum(jammer_down_s), sum(gap_low_min), sum(gap_high_min),
                 sum(gap_critical_min), sum(sensor_up_s), max(sensors)
                 FROM hourly WHERE hour >= $1 AND hour < $2 GROUP BY facility_id, zone, band",
            )
            .bind(ts(day))
            .bind(ts(next))
            .execute(&mut *tx)
            .await?;
            day = next;
        }
        let carry = Carry {
            done: ts(end),
            at: ts(carry_at),
            states: next_carry.unwrap_or_default(),
        };
        sqlx::query(
            "INSERT INTO maintenance (name, value) VALUES ('rollup', $1)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )
        .bind(serde_json::to_string(&carry).unwrap_or_default())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM rollup_dirty WHERE hour < $1")
            .bind(ts(end))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(u64::try_from((end - start).whole_hours()).unwrap_or(0))
    }

    /// Each key's state at `at` without a carried state: its last event within [`LOOKBACK`]
    /// before, or the current state when that changed before `at`.
    async fn state_at(&self, at: OffsetDateTime) -> Result<HashMap<Key, Track>, sqlx::Error> {
        let mut out: HashMap<Key, Track> = HashMap::new();
        let rows = sqlx::query(
            "SELECT kind, observed_at, payload FROM events
             WHERE kind IN ('gap', 'jammer', 'status') AND observed_at >= $1 AND observed_at < $2
             ORDER BY observed_at",
        )
        .bind(ts(at - LOOKBACK))
        .bind(ts(at))
        .fetch_all(&self.pool)
        .await?;
        for r in rows {
            let kind: String = r.try_get("kind")?;
            let payload: String = r.try_get("payload")?;
            if let Some(e) = read_event(&kind, &payload, self.heartbeat_sample_s) {
                out.insert(e.key, e.track);
            }
        }
        let before = ts(at);
        let jammers = sqlx::query(
            "SELECT facility_id, sensor_id, band, zone, state FROM jammers WHERE updated_at < $1",
        )
        .bind(&before)
        .fetch_all(&self.pool)
        .await?;
        for r in jammers {
            let key: Key = (
                1,
                r.try_get("facility_id")?,
                r.try_get("sensor_id")?,
                r.try_get("band")?,
            );
            let state: JammerStateWire = super::from_wire(&r, "state")?;
            out.entry(key.clone()).or_insert(Track {
                zone: r.try_get("zone")?,
                band: key.3.clone(),
                doing: Doing::Jammer(state),
            });
        }
        let gaps = sqlx::query(
            "SELECT facility_id, sensor_id, gap_key, zone, band, severity FROM gaps
             WHERE state != 'closed' AND updated_at < $1",
        )
        .bind(&before)
        .fetch_all(&self.pool)
        .await?;
        for r in gaps {
            let key: Key = (
                2,
                r.try_get("facility_id")?,
                r.try_get("sensor_id")?,
                r.try_get("gap_key")?,
            );
            out.entry(key).or_insert(Track {
                zone: r.try_get("zone")?,
                band: r.try_get("band")?,
                doing: Doing::Gap(super::from_wire(&r, "severity")?),
            });
        }
        Ok(out)
    }
}
