-- 0005_telemetry_indexes.sql: cheaper telemetry indexes and the
-- telemetry_latest table. See docs/database.md ("Telemetry indexes") and
-- docs/performance.md (the measurements behind the choice).
--
-- The (signal_key, time) btree of 0002 made every sample pay a btree insert
-- into one of 10,000 right edges, and the index grew to about as large as
-- the table (its leaf pages split half full). Now:
--   * "one signal over a day": a btree on signal_key alone, which PostgreSQL
--     deduplicates into posting lists (about 8 bytes a row instead of 48),
--     per day partition; the day's rows of a signal are fetched with a
--     bitmap scan and sorted by time (the ingest service writes each COPY
--     batch sorted by signal, so they sit on few heap pages);
--   * time ranges over all signals: a BRIN index on time (rows arrive in
--     time order, a few pages of index per day);
--   * "last value of each signal": telemetry_latest, one row per signal,
--     upserted by the ingest service once per COPY batch in the same
--     transaction as the rows; the view telemetry_last now reads it.

DROP INDEX telemetry_signal_time;
CREATE INDEX telemetry_signal ON telemetry (signal_key);
CREATE INDEX telemetry_time ON telemetry USING brin (time);

-- fillfactor 50: the upserts are HOT updates (no indexed column changes)
CREATE TABLE telemetry_latest (
    signal_key integer PRIMARY KEY,        -- signals.signal_key
    quality    integer NOT NULL,
    time       timestamptz NOT NULL,       -- the newest measurement time stored
    value      double precision NOT NULL
) WITH (fillfactor = 50);

INSERT INTO telemetry_latest (signal_key, quality, time, value)
SELECT DISTINCT ON (signal_key) signal_key, quality, time, value
FROM telemetry
ORDER BY signal_key, time DESC;

CREATE OR REPLACE VIEW telemetry_last AS
SELECT s.signal_key, s.signal_id, s.zone_id, l.time, l.value, l.quality
FROM signals s
JOIN telemetry_latest l ON l.signal_key = s.signal_key;

-- The ingest service upserts telemetry_latest at most every
-- latest_interval_ms (an upsert of 10,000 signals costs about as much as a
-- COPY of 15,000 rows, so not every batch). latest_position is the journal
-- position up to which telemetry_latest reflects the stored rows (NULL: up
-- to position); the service keeps its journal from there, so after a crash
-- it re-reads the records in between and upserts their latest values.
ALTER TABLE ingest_journal_position ADD COLUMN latest_position bigint
    CHECK (latest_position >= 0);
