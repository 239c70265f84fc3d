-- 0001_registry.sql: the registry of ANM zones, loaded from the zone files by
-- `anm db load ZONES.json` (upserts by id). See docs/database.md.
--
-- Ids are the zone file's own: a zone id is unique; monitored element ids
-- are unique within their zone; DER and signal ids are unique across all
-- zones (a DER or signal belongs to one zone). Each signal also has a small
-- integer key, stable across reloads, that the telemetry table stores
-- instead of the text id.

CREATE TABLE zones (
    zone_id           text PRIMARY KEY CHECK (zone_id <> ''),
    name              text NOT NULL,
    case_name         text NOT NULL,       -- the MATPOWER case ("case33bw")
    case_file         text NOT NULL,       -- the case file as given to anm db load
    zone_file         text NOT NULL,       -- the zone file it was loaded from
    access            text NOT NULL CHECK (access IN ('lifo', 'pro_rata', 'min_mw')),
    curtailment_mode  text NOT NULL CHECK (curtailment_mode IN ('corrective', 'preventive')),
    all_contingencies boolean NOT NULL,    -- "all that do not island the network"
    contingencies     integer[] NOT NULL,  -- resolved 1-based branch numbers
    loaded_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE monitored_elements (
    zone_id          text NOT NULL REFERENCES zones (zone_id) ON DELETE CASCADE,
    element_id       text NOT NULL CHECK (element_id <> ''),
    branch           integer NOT NULL CHECK (branch >= 1), -- 1-based, file order
    from_bus         integer NOT NULL,
    to_bus           integer NOT NULL,
    direction        smallint NOT NULL CHECK (direction IN (-1, 1)), -- +1: from->to is export
    normal_mw        double precision NOT NULL CHECK (normal_mw >= 0),
    post_fault_mw    double precision NOT NULL CHECK (post_fault_mw >= 0),
    -- [{"season": "winter", "start": "11-01", "end": "03-31",
    --   "normal_mw": 8.5, "post_fault_mw": 10.2}, ...]
    seasonal_ratings jsonb NOT NULL DEFAULT '[]',
    PRIMARY KEY (zone_id, element_id)
);

CREATE TABLE ders (
    der_id          text PRIMARY KEY CHECK (der_id <> ''),
    zone_id         text NOT NULL REFERENCES zones (zone_id) ON DELETE CASCADE,
    bus             integer NOT NULL,
    technology      text NOT NULL CHECK (technology IN ('wind', 'solar', 'battery', 'demand', 'other')),
    capacity_mw     double precision NOT NULL CHECK (capacity_mw >= 0),
    connection_date date,
    lifo_position   integer NOT NULL CHECK (lifo_position >= 1),
    under_anm       boolean NOT NULL,
    UNIQUE (zone_id, lifo_position) DEFERRABLE INITIALLY DEFERRED
);
CREATE INDEX ders_zone ON ders (zone_id);

CREATE TABLE signals (
    signal_key integer GENERATED ALWAYS AS IDENTITY UNIQUE,
    signal_id  text PRIMARY KEY CHECK (signal_id <> ''),
    zone_id    text NOT NULL REFERENCES zones (zone_id) ON DELETE CASCADE,
    kind       text NOT NULL CHECK (kind IN ('branch_mw', 'branch_mva', 'branch_a', 'bus_kv',
                                             'der_mw', 'transformer_temp_c', 'breaker_state')),
    unit       text NOT NULL,
    element    text NOT NULL,                  -- "branch:7", "bus:18" or a DER id
    scale      double precision NOT NULL DEFAULT 1, -- engineering = raw * scale + offset
    "offset"   double precision NOT NULL DEFAULT 0
);
CREATE INDEX signals_zone ON signals (zone_id);
