-- usage_events with index granules of 1,024 rows instead of 8,192 (index_granularity cannot be changed in place, so
-- the table is rebuilt: copied into a new table that then takes its name).
--
-- Why: the aggregator's dedup confirms in ClickHouse the ids its Bloom filter cannot rule out (about 1% of new ids,
-- and every resent one). Each such id reads the granule of the (org_id, event_id) key range it falls in, in every
-- part; with 8,192-row granules a lookup of a few hundred ids read a number of rows that grew with the table
-- (test/bench/aggregator-growth.mjs: CPU per event 1.44 times as high with 20 M rows as with 1 M). With 1,024-row
-- granules a lookup reads at most 1,024 rows an id a part, whatever the table holds. The primary index grows eight
-- times (20 M rows: about 20,000 marks, around a megabyte), which the engine keeps in memory.
--
-- Idempotent: a crash anywhere in between leaves usage_events whole (the copy only takes the name with EXCHANGE),
-- and running the migration again starts the copy afresh.
DROP TABLE IF EXISTS usage_events_rebuilt;

CREATE TABLE usage_events_rebuilt
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
SETTINGS index_granularity = 1024, non_replicated_deduplication_window = 10000;

ALTER TABLE usage_events_rebuilt ADD INDEX IF NOT EXISTS idx_event_id event_id TYPE bloom_filter(0.001) GRANULARITY 4;

INSERT INTO usage_events_rebuilt SELECT * FROM usage_events;

EXCHANGE TABLES usage_events AND usage_events_rebuilt;

DROP TABLE IF EXISTS usage_events_rebuilt;
