-- 0002_telemetry.sql: telemetry samples, partitioned by UTC day, and the
-- ingest journal position. See docs/database.md.
--
-- A sample is (signal_key, time, value, quality). There is deliberately no
-- unique index on (signal_key, time): the ingest service stores each sample
-- once by committing its journal position in the same transaction as the
-- rows (ingest_journal_position), so no row pays for a uniqueness check.
-- There is no foreign key to signals either (it would cost a lookup per row):
-- ingest validates signals before it writes.
--
-- Columns are ordered for alignment (4 + 4 + 8 + 8 bytes, no padding).

CREATE TABLE telemetry (
    signal_key integer NOT NULL,           -- signals.signal_key
    quality    integer NOT NULL,           -- quality flags (0: good)
    time       timestamptz NOT NULL,       -- measurement time (UTC)
    value      double precision NOT NULL   -- engineering units of the signal
) PARTITION BY RANGE (time);

-- One btree serves both hot queries: "last value of each signal" (a
-- backward scan per signal, newest partition first) and "one signal over a
-- day" (one partition, one index range).
CREATE INDEX telemetry_signal_time ON telemetry (signal_key, time);

-- Creates the daily partitions telemetry_YYYYMMDD for the UTC days
-- [p_from, p_from + p_days) that do not exist yet; returns how many it
-- created. Safe to call concurrently and repeatedly: services call it at
-- start and daily to stay ahead of the clock (and a replay calls it for the
-- days it replays).
CREATE FUNCTION anm_ensure_telemetry_partitions(p_from date, p_days integer)
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day     date;
    created integer := 0;
    part    text;
BEGIN
    IF p_from IS NULL OR p_days IS NULL OR p_days < 0 OR p_days > 3660 THEN
        RAISE EXCEPTION 'invalid partition range: from % for % days', p_from, p_days
            USING ERRCODE = '22023';
    END IF;
    -- serialise creators: the key is "anm telemetry partitions"
    PERFORM pg_advisory_xact_lock(hashtext('anm_telemetry_partitions'));
    FOR i IN 0 .. p_days - 1 LOOP
        day := p_from + i;
        part := 'telemetry_' || to_char(day, 'YYYYMMDD');
        IF to_regclass(quote_ident(part)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)',
                           part, (day::timestamp AT TIME ZONE 'UTC'),
                           ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

-- The last sample of each signal (one index probe per signal).
CREATE VIEW telemetry_last AS
SELECT s.signal_key, s.signal_id, s.zone_id, last.time, last.value, last.quality
FROM signals s
CROSS JOIN LATERAL (
    SELECT t.time, t.value, t.quality
    FROM telemetry t
    WHERE t.signal_key = s.signal_key
    ORDER BY t.time DESC
    LIMIT 1
) last;

-- Where each ingest stream has got to: the journal position of the last
-- committed batch, written in the same transaction as its rows.
CREATE TABLE ingest_journal_position (
    stream     text PRIMARY KEY,
    position   bigint NOT NULL CHECK (position >= 0),
    updated_at timestamptz NOT NULL DEFAULT now()
);
