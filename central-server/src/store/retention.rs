//! Retention: what the history keeps and for how long, pruned by one server at a time.
//!
//! PostgreSQL keeps events in a partition per month of their observed time and drops a month
//! whole once all of it is older than `events_days` (an event stays up to a month longer than
//! that); statuses, and everything SQLite holds, go in batches of [`BATCH`] rows, a statement
//! each, so that no delete holds the database for long. Sequence numbers go by the time they
//! were received. The cutoffs applied are recorded (`maintenance`, `retention`), so that the
//! audit tells an event pruned from one deleted.

use std::time::Duration;

use sqlx::Row as _;
use time::OffsetDateTime;

use super::{Engine, Store, create_partitions, lock_partitions, next_month, ts, unix};
use crate::config::Retention;

/// Rows deleted by one statement.
pub const BATCH: i64 = 5_000;

/// What one round of maintenance did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Pruned {
    /// Events older than `events_days` deleted (SQLite), or in the months dropped.
    pub events: u64,
    /// Statuses older than `statuses_days` deleted.
    pub statuses: u64,
    /// Sequence numbers deleted.
    pub sequences: u64,
    /// Partitions dropped (PostgreSQL).
    pub partitions_dropped: Vec<String>,
    /// Settled alerts deleted.
    pub alerts: u64,
    /// Aggregate rows deleted (hourly and daily).
    pub aggregates: u64,
    /// Hours rolled up.
    pub hours_rolled_up: u64,
}

/// The cutoffs the last pruning applied: an event observed before them may be gone.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cutoffs {
    /// Gap and jammer events and status changes observed before this may be pruned.
    pub events_before: String,
    /// Statuses observed, and sequence numbers of statuses and spectra received, before this
    /// may be pruned.
    pub statuses_before: String,
}

impl Store {
    /// Claims a piece of work named `name` for `lease`, unless another server holds it: `true`
    /// when this server may do it now.
    ///
    /// # Errors
    /// Database failures.
    pub async fn claim_work(
        &self,
        name: &str,
        now: OffsetDateTime,
        lease: Duration,
    ) -> Result<bool, sqlx::Error> {
        let until = unix(now) + i64::try_from(lease.as_secs()).unwrap_or(600);
        let n = sqlx::query(
            "INSERT INTO maintenance (name, claimed_by, claimed_until) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET claimed_by = excluded.claimed_by,
             claimed_until = excluded.claimed_until WHERE maintenance.claimed_until < $4",
        )
        .bind(name)
        .bind(self.claimant.to_string())
        .bind(until)
        .bind(unix(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// The cutoffs the last pruning applied (`None` before any).
    ///
    /// # Errors
    /// Database failures.
    pub async fn cutoffs(&self) -> Result<Option<Cutoffs>, sqlx::Error> {
        let v: Option<String> =
            sqlx::query_scalar("SELECT value FROM maintenance WHERE name = 'retention'")
                .fetch_optional(&self.pool)
                .await?;
        Ok(v.and_then(|v| serde_json::from_str(&v).ok()))
    }

    /// One round of maintenance if no other server is doing it: partitions for this month and
    /// the next (PostgreSQL), the pruning `retention` asks for, the hours to roll up. `None`
    /// when another server holds the round.
    ///
    /// # Errors
    /// Database failures (what was done stays done).
    pub async fn maintain(
        &self,
        now: OffsetDateTime,
        retention: &Retention,
    ) -> Result<Option<Pruned>, sqlx::Error> {
        let every = Duration::from_secs_f64(retention.every_s.max(1.0));
        if !self
            .claim_work("retention", now, every.max(Duration::from_secs(60)))
            .await?
        {
            return Ok(None);
        }
        let mut out = Pruned::default();
        if self.engine == Engine::Postgres {
            let this = ts(now)[..7].to_string();
            let next = next_month(&this).unwrap_or_else(|| this.clone());
            self.make_partitions(&[this, next]).await?;
        }
        let days = |d: f64| time::Duration::seconds_f64(d * 86_400.0);
        let cut = Cutoffs {
            events_before: ts(now - days(retention.events_days)),
            statuses_before: ts(now - days(retention.statuses_days)),
        };
        // The cutoffs first: an audit running meanwhile must not count an event pruned from
        // here on as deleted.
        sqlx::query("UPDATE maintenance SET value = $1 WHERE name = 'retention'")
            .bind(serde_json::to_string(&cut).unwrap_or_default())
            .execute(&self.pool)
            .await?;
        let (status_sql, seq_sql, old_sql) = match self.engine {
            Engine::Sqlite => (
                "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events
                 WHERE kind = 'status' AND observed_at < $1 LIMIT $2)",
                "DELETE FROM sequences WHERE (facility_id, sensor_id, key, seq) IN
                 (SELECT facility_id, sensor_id, key, seq FROM sequences WHERE received_at < $1
                  AND kind IN ('status', 'heartbeat', 'spectrum') LIMIT $2)",
                "DELETE FROM events WHERE rowid IN (SELECT rowid FROM events
                 WHERE kind <> 'status' AND observed_at < $1 LIMIT $2)",
            ),
            Engine::Postgres => (
                "DELETE FROM events WHERE (event_id, observed_at) IN (SELECT event_id, observed_at
                 FROM events WHERE kind = 'status' AND observed_at < $1 LIMIT $2)",
                "DELETE FROM sequences WHERE ctid IN (SELECT ctid FROM sequences
                 WHERE received_at < $1 AND kind IN ('status', 'heartbeat', 'spectrum') LIMIT $2)",
                "",
            ),
        };
        out.statuses = self.in_batches(status_sql, &cut.statuses_before).await?;
        out.sequences = self.in_batches(seq_sql, &cut.statuses_before).await?;
        let seq_old = match self.engine {
            Engine::Sqlite => {
                "DELETE FROM sequences WHERE (facility_id, sensor_id, key, seq) IN
                 (SELECT facility_id, sensor_id, key, seq FROM sequences WHERE received_at < $1
                  LIMIT $2)"
            }
            Engine::Postgres => {
                "DELETE FROM sequences WHERE ctid IN (SELECT ctid FROM sequences
                 WHERE received_at < $1 LIMIT $2)"
            }
        };
        out.sequences += self.in_batches(seq_old, &cut.events_before).await?;
        match self.engine {
            Engine::Sqlite => out.events = self.in_batches(old_sql, &cut.events_before).await?,
            Engine::Postgres => {
                let (n, dropped) = self.drop_months(&cut.events_before).await?;
                out.events = n;
                out.partitions_dropped = dropped;
            }
        }
        out.alerts = sqlx::query("DELETE FROM alerts WHERE outcome IS NOT NULL AND raised_at < $1")
            .bind(&cut.events_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        out.aggregates = sqlx::query("DELETE FROM hourly WHERE hour < $1")
            .bind(ts(now - days(retention.hourly_days)))
            .execute(&self.pool)
            .await?
            .rows_affected()
            + sqlx::query("DELETE FROM daily WHERE day < $1")
                .bind(ts(now - days(retention.daily_days)))
                .execute(&self.pool)
                .await?
                .rows_affected();
        out.hours_rolled_up = self.roll_up(now).await?;
        // The round is done: the next one in `every`.
        sqlx::query("UPDATE maintenance SET claimed_until = $1 WHERE name = 'retention'")
            .bind(unix(now) + i64::try_from(every.as_secs()).unwrap_or(600))
            .execute(&self.pool)
            .await?;
        Ok(Some(out))
    }

    /// Runs a `DELETE … LIMIT $2` with `$1` bound to `before` until it deletes fewer than a
    /// batch; the rows deleted.
    async fn in_batches(&self, sql: &'static str, before: &str) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        loop {
            let n = sqlx::query(sql)
                .bind(before)
                .bind(BATCH)
                .execute(&self.pool)
                .await?
                .rows_affected();
            total += n;
            if n < u64::try_from(BATCH).unwrap_or(0) {
                return Ok(total);
            }
            // Leave room for ingest between two batches.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Makes the partitions of `months` (`YYYY-MM`) unless they exist.
    async fn make_partitions(&self, months: &[String]) -> Result<(), sqlx::Error> {
        let mut tx = crate::db::begin(&self.pool).await?;
        create_partitions(&mut tx, months).await?;
        tx.commit().await?;
        self.known_partitions(months.iter().cloned());
        Ok(())
    }

    /// Drops the event partitions whose whole month is before `before`: the rows they held and
    /// their names.
    async fn drop_months(&self, before: &str) -> Result<(u64, Vec<String>), sqlx::Error> {
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'events' ORDER BY 1",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut rows = 0;
        let mut dropped = Vec::new();
        for name in names {
            let Some(month) = name
                .strip_prefix("events_y")
                .and_then(|r| r.split_once('m'))
                .map(|(y, m)| format!("{y}-{m}"))
            else {
                continue;
            };
            // The month ends where the next begins: gone when that is not after the cutoff.
            let Some(end) = next_month(&month) else {
                continue;
            };
            if end.as_str() > &before[..7] {
                continue;
            }
            let mut tx = crate::db::begin(&self.pool).await?;
            lock_partitions(&mut tx).await?;
            let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT count(*) FROM {}",
                super::partition_name(&month)
            )))
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP TABLE IF EXISTS {}",
                super::partition_name(&month)
            )))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            self.partitions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .remove(&month);
            rows += u64::try_from(n).unwrap_or(0);
            dropped.push(name);
        }
        Ok((rows, dropped))
    }
}
