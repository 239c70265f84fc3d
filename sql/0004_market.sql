-- 0004_market.sql: the market's orders, auction results (with the full
-- merit-order stacks), trades and settlement. See docs/database.md
-- ("Market tables") and docs/settlement.md.
--
-- Ids are the market core's (market/include/market/types.h): zones,
-- participants and DERs are its integer ids; order ids are
-- (arrival sequence << 24 | pool slot) and trade ids count 1, 2, ... per
-- market, both stable under a journal replay, so every write is keyed by
-- them and a replay stores nothing twice (INSERT ... ON CONFLICT DO NOTHING).
-- Quantities are integers of 0.001 MW ("_kw" columns), prices integers of
-- 0.01 GBP/MWh (utilisation) or 0.01 GBP/MW/h (availability), money in pence.

CREATE TABLE market_orders (
    order_id           bigint PRIMARY KEY CHECK (order_id > 0),
    client_order_id    numeric(20, 0) NOT NULL CHECK (client_order_id >= 0),
    participant        bigint NOT NULL CHECK (participant BETWEEN 0 AND 4294967295),
    der                bigint CHECK (der BETWEEN 0 AND 4294967294), -- NULL: a requirement
    zone               bigint NOT NULL CHECK (zone BETWEEN 0 AND 4294967295),
    period_start       timestamptz NOT NULL,
    side               text NOT NULL CHECK (side IN ('offer', 'bid', 'requirement')),
    price_ticks        integer NOT NULL,
    availability_ticks integer NOT NULL CHECK (availability_ticks >= 0),
    quantity_kw        bigint NOT NULL CHECK (quantity_kw > 0),
    min_quantity_kw    bigint NOT NULL CHECK (min_quantity_kw >= 0 AND min_quantity_kw <= quantity_kw),
    valid_until        timestamptz,                  -- NULL: never lapses
    submitted_at       timestamptz NOT NULL
);
CREATE INDEX market_orders_product ON market_orders (zone, period_start);

-- One row per gate-closure auction of one product. auction_id is chosen by
-- the caller and must be stable under replay (the service uses the journal
-- position of the auction event).
CREATE TABLE market_auctions (
    auction_id                  bigint PRIMARY KEY CHECK (auction_id > 0),
    zone                        bigint NOT NULL CHECK (zone BETWEEN 0 AND 4294967295),
    period_start                timestamptz NOT NULL,
    cleared_at                  timestamptz NOT NULL,
    pricing                     text NOT NULL CHECK (pricing IN ('pay_as_bid', 'uniform')),
    pro_rata                    boolean NOT NULL,
    n_bids                      integer NOT NULL CHECK (n_bids >= 0),
    n_offers                    integer NOT NULL CHECK (n_offers >= 0),
    unconstrained_volume_kw     bigint NOT NULL CHECK (unconstrained_volume_kw >= 0),
    accepted_volume_kw          bigint NOT NULL CHECK (accepted_volume_kw >= 0),
    has_price                   boolean NOT NULL,
    clearing_rank               bigint,               -- NULL when nothing traded
    clearing_price_ticks        integer,
    clearing_availability_ticks integer,
    price_setting_order_id      bigint,
    limiting_constraint         integer,              -- NULL: no constraint cut a pair
    n_trades                    integer NOT NULL CHECK (n_trades >= 0)
);
CREATE INDEX market_auctions_product ON market_auctions (zone, period_start);

-- The full merit-order stacks of an auction (figure 6.1.1b), one row per
-- order in merit order: offers ascending, bids and requirements descending.
CREATE TABLE market_stack_entries (
    auction_id         bigint NOT NULL REFERENCES market_auctions (auction_id) ON DELETE CASCADE,
    side               smallint NOT NULL CHECK (side IN (0, 1)), -- 0 offers, 1 bids/requirements
    position           integer NOT NULL CHECK (position >= 0),   -- 0 = first in merit order
    order_id           bigint NOT NULL,
    rank               bigint NOT NULL,
    price_ticks        integer NOT NULL,
    availability_ticks integer NOT NULL,
    quantity_kw        bigint NOT NULL CHECK (quantity_kw > 0),
    accepted_kw        bigint NOT NULL CHECK (accepted_kw >= 0 AND accepted_kw <= quantity_kw),
    PRIMARY KEY (auction_id, side, position)
);

-- The chart's steps: the stacks aggregated by rank, with the cumulative
-- quantity at the end of each step, in merit order.
CREATE VIEW market_stack_steps AS
SELECT auction_id, side, rank, quantity_kw, accepted_kw,
       sum(quantity_kw) OVER (PARTITION BY auction_id, side
                              ORDER BY CASE WHEN side = 0 THEN rank ELSE -rank END) AS cumulative_kw
FROM (SELECT auction_id, side, rank, sum(quantity_kw)::bigint AS quantity_kw,
             sum(accepted_kw)::bigint AS accepted_kw
      FROM market_stack_entries
      GROUP BY auction_id, side, rank) steps;

CREATE TABLE market_trades (
    trade_id                  bigint PRIMARY KEY CHECK (trade_id > 0),
    auction_id                bigint REFERENCES market_auctions (auction_id) ON DELETE CASCADE,
    kind                      text NOT NULL CHECK (kind IN ('continuous', 'auction')),
    buy_order_id              bigint NOT NULL,
    sell_order_id             bigint NOT NULL,
    buyer                     bigint NOT NULL,
    seller                    bigint NOT NULL,
    buy_der                   bigint,                 -- NULL: a requirement
    sell_der                  bigint NOT NULL,
    zone                      bigint NOT NULL,
    period_start              timestamptz NOT NULL,
    volume_kw                 bigint NOT NULL CHECK (volume_kw > 0),
    buyer_price_ticks         integer NOT NULL,
    buyer_availability_ticks  integer NOT NULL,
    seller_price_ticks        integer NOT NULL,
    seller_availability_ticks integer NOT NULL,
    executed_at               timestamptz NOT NULL
);
CREATE INDEX market_trades_period ON market_trades (period_start, zone);

-- Settlement (docs/settlement.md): one line per trade, replaced when the
-- trade is settled again (later meter data supersedes earlier).
CREATE TABLE settlement_lines (
    trade_id                  bigint PRIMARY KEY,
    settlement_date           date NOT NULL,
    period                    integer NOT NULL CHECK (period BETWEEN 1 AND 50),
    period_start              timestamptz NOT NULL,
    zone                      bigint NOT NULL,
    buyer                     bigint NOT NULL,
    seller                    bigint NOT NULL,
    sell_der                  bigint NOT NULL,
    status                    text NOT NULL CHECK (status IN ('settled', 'no_metering', 'no_baseline')),
    metering_source           text NOT NULL CHECK (metering_source IN ('meter', 'telemetry', 'none')),
    baseline_kind             text NOT NULL CHECK (baseline_kind IN ('nominated', 'historical', 'fixed')),
    instructed_mwh            double precision NOT NULL,
    baseline_mwh              double precision,
    metered_mwh               double precision,
    delivered_mwh             double precision NOT NULL,
    shortfall_mwh             double precision NOT NULL,
    seller_availability_pence bigint NOT NULL,
    seller_utilisation_pence  bigint NOT NULL,
    seller_penalty_pence      bigint NOT NULL,
    seller_total_pence        bigint NOT NULL,
    buyer_availability_pence  bigint NOT NULL,
    buyer_utilisation_pence   bigint NOT NULL,
    buyer_total_pence         bigint NOT NULL,
    settled_at                timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX settlement_lines_date ON settlement_lines (settlement_date, period);

-- Telemetry against imported meter data, where both exist.
CREATE TABLE settlement_reconciliation (
    der             bigint NOT NULL,
    period_start    timestamptz NOT NULL,
    settlement_date date NOT NULL,
    period          integer NOT NULL,
    telemetry_mwh   double precision NOT NULL,
    meter_mwh       double precision NOT NULL,
    difference_mwh  double precision NOT NULL,  -- telemetry - meter
    PRIMARY KEY (der, period_start)
);

-- The reports as sent: one per settlement date, party and format.
CREATE TABLE settlement_reports (
    settlement_date date NOT NULL,
    party_kind      text NOT NULL CHECK (party_kind IN ('participant', 'dso', 'neso')),
    party           bigint NOT NULL,                -- participant id (the DSO/NESO's own)
    format          text NOT NULL CHECK (format IN ('csv', 'json')),
    body            text NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (settlement_date, party_kind, party, format)
);
