-- As migrations/sqlite/0002_status_order.sql: the time of the last status applied and the
-- start of the connection it belongs to.
ALTER TABLE sensors ADD COLUMN status_at TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE sensors ADD COLUMN connected_at TEXT COLLATE "C";
UPDATE sensors SET status_at = last_seen;
