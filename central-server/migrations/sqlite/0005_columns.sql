-- What the gap history filters on, and the Last Will's number, as columns instead of inside
-- the stored JSON: both engines read them with the same plain SQL.
ALTER TABLE events ADD COLUMN band TEXT;
ALTER TABLE events ADD COLUMN technology TEXT;
ALTER TABLE events ADD COLUMN zone TEXT;
UPDATE events SET
    band = coalesce(json_extract(payload, '$.msg.band'), json_extract(payload, '$.band')),
    technology = coalesce(json_extract(payload, '$.msg.technology'), json_extract(payload, '$.technology')),
    zone = coalesce(json_extract(payload, '$.msg.zone'), json_extract(payload, '$.zone'));
ALTER TABLE sensors ADD COLUMN will_seq INTEGER;
UPDATE sensors SET will_seq = json_extract(status, '$.msg.will_seq');
