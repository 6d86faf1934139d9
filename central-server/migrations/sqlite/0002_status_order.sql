-- The time of the last status applied (the sensor's clock) and the start of the connection it
-- belongs to: a status changes the state only when newer, and a Last Will only when it belongs
-- to the current connection or a newer one. `last_seen` is now the server's clock (liveness).
ALTER TABLE sensors ADD COLUMN status_at TEXT NOT NULL DEFAULT '';
ALTER TABLE sensors ADD COLUMN connected_at TEXT;
UPDATE sensors SET status_at = last_seen;
