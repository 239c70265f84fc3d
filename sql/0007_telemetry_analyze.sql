-- 0007_telemetry_analyze.sql: no insert-triggered ANALYZE of the telemetry
-- day partitions while ingest writes them. See docs/database.md ("Telemetry
-- indexes") and docs/performance.md ("Ingest").
--
-- Autovacuum analyzes a table once 10 % of it is new: today's partition, at
-- hundreds of thousands of rows a second, every minute or so. Each ANALYZE
-- reads 30,000 random heap pages; on the 2-core test machine (whose page
-- cache is reclaimed eagerly) those reads from disk slowed the WAL fsyncs of
-- every COMMIT, and ingest stalled for several seconds each time (sampled:
-- "autovacuum: ANALYZE public.telemetry_YYYYMMDD" in DataFileRead while the
-- writers' COMMITs waited in WALSync). Day partitions are now created with
-- an analyze threshold no day reaches; `anm db partitions --analyze` (or a
-- nightly ANALYZE) gathers a finished day's statistics once. Vacuum
-- settings are unchanged (0006).
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
                           ' WITH (autovacuum_vacuum_insert_threshold = -1,'
                           ' autovacuum_analyze_threshold = 2000000000,'
                           ' autovacuum_analyze_scale_factor = 100)',
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
        EXECUTE format('ALTER TABLE %s SET (autovacuum_analyze_threshold = 2000000000,'
                       ' autovacuum_analyze_scale_factor = 100)', part);
    END LOOP;
END
$$;

-- ANALYZE each day partition that has ended (UTC) and has no statistics
-- from after its end; returns how many it analyzed. Run by
-- `anm db partitions --analyze` (e.g. nightly, with the partitions ahead).
CREATE OR REPLACE FUNCTION anm_analyze_finished_telemetry_days()
RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part     regclass;
    day_end  timestamptz;
    analyzed integer := 0;
BEGIN
    FOR part, day_end IN
        SELECT i.inhrelid::regclass,
               (to_date(substr(c.relname, 11), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'telemetry'::regclass AND c.relname ~ '^telemetry_[0-9]{8}$'
        ORDER BY c.relname
    LOOP
        IF day_end <= now() AND NOT EXISTS (
            SELECT 1 FROM pg_stat_user_tables s
            WHERE s.relid = part
              AND greatest(s.last_analyze, s.last_autoanalyze) >= day_end) THEN
            EXECUTE format('ANALYZE %s', part);
            analyzed := analyzed + 1;
        END IF;
    END LOOP;
    RETURN analyzed;
END
$$;
