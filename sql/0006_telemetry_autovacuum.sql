-- 0006_telemetry_autovacuum.sql: no insert-triggered autovacuum on the
-- telemetry day partitions. See docs/database.md ("Telemetry indexes") and
-- docs/performance.md ("Ingest").

-- Day partitions are append-only: an insert-triggered autovacuum of today's
-- partition rescans its heap and index while ingest is writing (on 2 cores
-- one coincided with second-long commit stalls at 200,000 samples/s) and
-- finds nothing to clean. They are created with insert-triggered vacuum off;
-- vacuum after updates or deletes and anti-wraparound vacuum still run (a
-- VACUUM (FREEZE) of a finished day is the operator's choice).
CREATE OR REPLACE FUNCTION anm_ensure_telemetry_partitions(p_from date, p_days integer)
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
            EXECUTE format('CREATE TABLE %I PARTITION OF telemetry FOR VALUES FROM (%L) TO (%L)'
                           ' WITH (autovacuum_vacuum_insert_threshold = -1)',
                           part, (day::timestamp AT TIME ZONE 'UTC'),
                           ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END
$$;

DO $$
DECLARE
    part regclass;
BEGIN
    FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = 'telemetry'::regclass LOOP
        EXECUTE format('ALTER TABLE %s SET (autovacuum_vacuum_insert_threshold = -1)', part);
    END LOOP;
END
$$;
