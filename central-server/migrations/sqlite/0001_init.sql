-- Every accepted message, once (ingest is idempotent by event_id).
CREATE TABLE events (
    event_id    TEXT PRIMARY KEY NOT NULL,
    kind        TEXT NOT NULL,
    facility_id TEXT NOT NULL,
    sensor_id   TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    payload     TEXT NOT NULL
);
CREATE INDEX events_by_facility_time ON events (facility_id, kind, observed_at);

-- Current state of each gap a sensor has reported.
CREATE TABLE gaps (
    facility_id  TEXT NOT NULL,
    sensor_id    TEXT NOT NULL,
    gap_key      TEXT NOT NULL,
    state        TEXT NOT NULL,
    zone         TEXT NOT NULL,
    band         TEXT NOT NULL,
    technology   TEXT NOT NULL,
    detector     TEXT NOT NULL,
    center_hz    REAL NOT NULL,
    bandwidth_hz REAL NOT NULL,
    pci          INTEGER,
    earfcn       INTEGER,
    nr_arfcn     INTEGER,
    arfcn        INTEGER,
    bsic         INTEGER,
    power_dbm    REAL,
    floor_dbm    REAL,
    margin_db    REAL NOT NULL,
    severity     TEXT NOT NULL,
    opened_at    TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    closed_at    TEXT,
    last_event_id TEXT NOT NULL,
    PRIMARY KEY (facility_id, sensor_id, gap_key)
);
CREATE INDEX gaps_active ON gaps (facility_id, state);

-- Jammer health per sensor and band.
CREATE TABLE jammers (
    facility_id      TEXT NOT NULL,
    sensor_id        TEXT NOT NULL,
    band             TEXT NOT NULL,
    zone             TEXT NOT NULL,
    state            TEXT NOT NULL,
    noise_rise_db    REAL NOT NULL,
    covered_fraction REAL NOT NULL,
    updated_at       TEXT NOT NULL,
    last_event_id    TEXT NOT NULL,
    PRIMARY KEY (facility_id, sensor_id, band)
);

-- Sensors as their status messages and heartbeats say.
CREATE TABLE sensors (
    facility_id TEXT NOT NULL,
    sensor_id   TEXT NOT NULL,
    zone        TEXT NOT NULL,
    state       TEXT NOT NULL,
    position_x  REAL,
    position_y  REAL,
    heartbeat_s REAL NOT NULL,
    last_seen   TEXT NOT NULL,
    status      TEXT NOT NULL,
    PRIMARY KEY (facility_id, sensor_id)
);

-- Rejected messages, newest kept for inspection.
CREATE TABLE rejects (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    topic       TEXT NOT NULL,
    reason      TEXT NOT NULL,
    detail      TEXT NOT NULL
);

-- Latest spectrum summary per sensor (summaries are QoS 0 and not kept as history).
CREATE TABLE spectra (
    facility_id TEXT NOT NULL,
    sensor_id   TEXT NOT NULL,
    observed_at TEXT NOT NULL,
    payload     TEXT NOT NULL,
    PRIMARY KEY (facility_id, sensor_id)
);
