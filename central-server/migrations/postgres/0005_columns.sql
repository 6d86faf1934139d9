-- As migrations/sqlite/0005_columns.sql: the gap history's filters and the Last Will's
-- number as columns.
ALTER TABLE events ADD COLUMN band TEXT;
ALTER TABLE events ADD COLUMN technology TEXT;
ALTER TABLE events ADD COLUMN zone TEXT;
ALTER TABLE sensors ADD COLUMN will_seq BIGINT;
