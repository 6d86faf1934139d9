-- Alerts are rows before they are sent: the transaction that changes the state that raises an
-- alert records it, so an alert exists once however many servers share the database, and the
-- server that recorded it claims its sending (claimed_by, claimed_until, unix seconds). A claim
-- that runs out unsent (its server died) is taken by another server; outcome says how it ended
-- (`sent` to the webhook, `logged` with no webhook configured, `failed` after every attempt).
CREATE TABLE alerts (
    id            INTEGER PRIMARY KEY,
    raised_at     TEXT NOT NULL,
    kind          TEXT NOT NULL,
    facility_id   TEXT NOT NULL,
    sensor_id     TEXT NOT NULL,
    body          TEXT NOT NULL,
    claimed_by    TEXT,
    claimed_until INTEGER NOT NULL DEFAULT 0,
    attempts      INTEGER NOT NULL DEFAULT 0,
    sent_at       TEXT,
    outcome       TEXT
);
CREATE INDEX alerts_unsent ON alerts (claimed_until) WHERE outcome IS NULL;
CREATE INDEX alerts_by_facility ON alerts (facility_id, raised_at);

-- The last tamper alert per sensor: at most one per interval across every server.
CREATE TABLE tamper_alerts (
    facility_id TEXT NOT NULL,
    sensor_id   TEXT NOT NULL,
    last_at     INTEGER NOT NULL,
    PRIMARY KEY (facility_id, sensor_id)
) WITHOUT ROWID;
