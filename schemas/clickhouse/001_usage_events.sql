-- usage_events: one row per priced usage event (SPEC §6), the ground truth every rollup and invoice derives from.
--
-- Exactness: the aggregator writes an event only after checking its event_id against this table (the check and
-- the insert happen for one org partition owner at a time), so each event_id is written once. is_late: the event
-- arrived after the month of occurred_at had closed (it counts in its own month, never toward current caps). ReplacingMergeTree on
-- (org_id, event_id) is a second line of defence: should a copy ever be written twice, a read with FINAL (or a
-- GROUP BY event_id) still counts it once, whether or not the background merge has run. Finance reads use FINAL.
--
-- Money columns are Decimal(38, 18): per-event costs have at most 12 decimal places at list price, and the org
-- discount (up to 4 decimal places of a percent) adds at most 6 more, so every figure is stored exactly.
CREATE TABLE IF NOT EXISTS usage_events
(
    event_id            String,
    org_id              String,
    user_id             String,
    user_email          String,
    account_uuid        String,
    request_id          String,
    region              LowCardinality(String),
    seat_tier           LowCardinality(String),
    product             LowCardinality(String),
    model               LowCardinality(String) COMMENT 'model id as sent, possibly dated',
    model_base          LowCardinality(String) COMMENT 'model id the rate card priced it as',
    occurred_at         DateTime64(3, 'UTC'),
    input_tokens        UInt64,
    output_tokens       UInt64,
    cache_write_tokens  UInt64,
    cache_read_tokens   UInt64,
    prompt_tokens       UInt64,
    long_context        Bool,
    rate_card_version   LowCardinality(String),
    input_cost          Decimal(38, 18),
    output_cost         Decimal(38, 18),
    cache_write_cost    Decimal(38, 18),
    cache_read_cost     Decimal(38, 18),
    gross_cost          Decimal(38, 18) COMMENT 'total_cost of the priced event: list price',
    discount_pct        Decimal(9, 4) COMMENT 'the org discount in force when the event was recorded',
    net_cost            Decimal(38, 18) COMMENT 'gross_cost less discount_pct',
    priced_at           DateTime64(3, 'UTC') COMMENT 'when the priced event reached usage.priced.v1',
    recorded_at         DateTime64(3, 'UTC') DEFAULT now64(3),
    batch_id            String COMMENT 'the aggregator batch that wrote the row; spend_daily rows carry the same id',
    is_late             Bool
)
ENGINE = ReplacingMergeTree(recorded_at)
PARTITION BY toYYYYMM(occurred_at)
ORDER BY (org_id, event_id)
SETTINGS index_granularity = 8192;

ALTER TABLE usage_events ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4;
