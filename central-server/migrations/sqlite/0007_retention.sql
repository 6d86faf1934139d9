-- Retention and history.
-- The time each sequence number's message was observed: an event pruned by retention (by its
-- observed time) leaves its number behind, and the audit tells such a number from a deleted
-- event by it.
ALTER TABLE sequences ADD COLUMN observed_at TEXT;
CREATE INDEX sequences_by_time ON sequences (received_at);
CREATE INDEX events_by_kind_time ON events (kind, observed_at);

-- When the last status of a sensor kept in the history was observed (heartbeats are kept one
-- per sample interval; changes always).
ALTER TABLE sensors ADD COLUMN status_kept_at TEXT;

-- Work any server may do but one should: who claims it until when, and what it has done
-- (the retention cutoffs applied, the last hour rolled up).
CREATE TABLE maintenance (
    name          TEXT PRIMARY KEY NOT NULL,
    claimed_by    TEXT,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    value         TEXT NOT NULL DEFAULT ''
);

-- Aggregates per facility, zone and band, by hour (kept `hourly_days`) and by day (kept for
-- years): seconds each jammer state was seen (sensor-seconds: a band seen by two sensors of a
-- zone for an hour counts 7,200 s), minutes of open gaps by severity, seconds of sensor uptime
-- (band '' holds the zone's uptime), and how many sensors reported.
CREATE TABLE hourly (
    facility_id        TEXT NOT NULL,
    zone               TEXT NOT NULL,
    band               TEXT NOT NULL,
    hour               TEXT NOT NULL,
    jammer_effective_s REAL NOT NULL DEFAULT 0,
    jammer_degraded_s  REAL NOT NULL DEFAULT 0,
    jammer_down_s      REAL NOT NULL DEFAULT 0,
    gap_low_min        REAL NOT NULL DEFAULT 0,
    gap_high_min       REAL NOT NULL DEFAULT 0,
    gap_critical_min   REAL NOT NULL DEFAULT 0,
    sensor_up_s        REAL NOT NULL DEFAULT 0,
    sensors            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (facility_id, zone, band, hour)
) WITHOUT ROWID;
CREATE INDEX hourly_by_hour ON hourly (hour);

CREATE TABLE daily (
    facility_id        TEXT NOT NULL,
    zone               TEXT NOT NULL,
    band               TEXT NOT NULL,
    day                TEXT NOT NULL,
    jammer_effective_s REAL NOT NULL DEFAULT 0,
    jammer_degraded_s  REAL NOT NULL DEFAULT 0,
    jammer_down_s      REAL NOT NULL DEFAULT 0,
    gap_low_min        REAL NOT NULL DEFAULT 0,
    gap_high_min       REAL NOT NULL DEFAULT 0,
    gap_critical_min   REAL NOT NULL DEFAULT 0,
    sensor_up_s        REAL NOT NULL DEFAULT 0,
    sensors            INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (facility_id, zone, band, day)
) WITHOUT ROWID;

-- Hours of a facility an event arrived late for, after they were rolled up: rolled up again.
CREATE TABLE rollup_dirty (
    facility_id TEXT NOT NULL,
    hour        TEXT NOT NULL,
    PRIMARY KEY (facility_id, hour)
) WITHOUT ROWID;
