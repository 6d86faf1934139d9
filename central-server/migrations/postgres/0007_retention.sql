-- As migrations/sqlite/0007_retention.sql (the events are partitioned by month already).
ALTER TABLE sequences ADD COLUMN observed_at TEXT COLLATE "C";
CREATE INDEX sequences_by_time ON sequences (received_at);
CREATE INDEX events_by_kind_time ON events (kind, observed_at);

ALTER TABLE sensors ADD COLUMN status_kept_at TEXT COLLATE "C";

CREATE TABLE maintenance (
    name          TEXT PRIMARY KEY NOT NULL,
    claimed_by    TEXT,
    claimed_until BIGINT NOT NULL DEFAULT 0,
    value         TEXT NOT NULL DEFAULT ''
);

CREATE TABLE hourly (
    facility_id        TEXT NOT NULL,
    zone               TEXT NOT NULL,
    band               TEXT NOT NULL,
    hour               TEXT COLLATE "C" NOT NULL,
    jammer_effective_s DOUBLE PRECISION NOT NULL DEFAULT 0,
    jammer_degraded_s  DOUBLE PRECISION NOT NULL DEFAULT 0,
    jammer_down_s      DOUBLE PRECISION NOT NULL DEFAULT 0,
    gap_low_min        DOUBLE PRECISION NOT NULL DEFAULT 0,
    gap_high_min       DOUBLE PRECISION NOT NULL DEFAULT 0,
    gap_critical_min   DOUBLE PRECISION NOT NULL DEFAULT 0,
    sensor_up_s        DOUBLE PRECISION NOT NULL DEFAULT 0,
    sensors            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (facility_id, zone, band, hour)
);
CREATE INDEX hourly_by_hour ON hourly (hour);

CREATE TABLE daily (
    facility_id        TEXT NOT NULL,
    zone               TEXT NOT NULL,
    band               TEXT NOT NULL,
    day                TEXT COLLATE "C" NOT NULL,
    jammer_effective_s DOUBLE PRECISION NOT NULL DEFAULT 0,
    jammer_degraded_s  DOUBLE PRECISION NOT NULL DEFAULT 0,
    jammer_down_s      DOUBLE PRECISION NOT NULL DEFAULT 0,
    gap_low_min        DOUBLE PRECISION NOT NULL DEFAULT 0,
    gap_high_min       DOUBLE PRECISION NOT NULL DEFAULT 0,
    gap_critical_min   DOUBLE PRECISION NOT NULL DEFAULT 0,
    sensor_up_s        DOUBLE PRECISION NOT NULL DEFAULT 0,
    sensors            BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (facility_id, zone, band, day)
);

CREATE TABLE rollup_dirty (
    facility_id TEXT NOT NULL,
    hour        TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (facility_id, hour)
);
