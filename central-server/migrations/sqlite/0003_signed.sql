-- Signed messages (centinela.signed/1). Each message a sensor signs carries its own sequence
-- number; every number the server accepts is kept with the digest of the bytes that used it,
-- so that the same bytes again are a resend and other bytes under a used number a replay.
CREATE TABLE sequences (
    facility_id TEXT NOT NULL,
    sensor_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (facility_id, sensor_id, key, seq)
) WITHOUT ROWID;

-- Per sensor and key: the highest number seen and how many numbers were seen. A sensor counts
-- from 1, so max_seq - seen is how many of its messages never arrived.
CREATE TABLE sequence_counts (
    facility_id TEXT NOT NULL,
    sensor_id   TEXT NOT NULL,
    key         TEXT NOT NULL,
    max_seq     INTEGER NOT NULL,
    seen        INTEGER NOT NULL,
    PRIMARY KEY (facility_id, sensor_id, key)
);

-- The stored payload is the envelope as received; its key and number, for the audit.
ALTER TABLE events ADD COLUMN key TEXT;
ALTER TABLE events ADD COLUMN seq INTEGER;
