-- As migrations/sqlite/0003_signed.sql: every sequence number accepted, with the digest of
-- the bytes that used it, and per sensor and key the highest number and how many were seen.
CREATE TABLE sequences (
    facility_id TEXT NOT NULL,
    sensor_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    seq         BIGINT NOT NULL,
    kind        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    received_at TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (facility_id, sensor_id, key, seq)
);

CREATE TABLE sequence_counts (
    facility_id TEXT NOT NULL,
    sensor_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    max_seq     BIGINT NOT NULL,
    seen        BIGINT NOT NULL,
    PRIMARY KEY (facility_id, sensor_id, key)
);

ALTER TABLE events ADD COLUMN key TEXT;
ALTER TABLE events ADD COLUMN seq BIGINT;
