-- spend_daily: the daily rollup dashboards and finance read (SPEC §6).
--
-- Exactness: the aggregator writes each batch's rollup rows once, tagged with the batch_id of the usage_events rows
-- they summarise, right after those rows (order: usage_events, then spend_daily, then offsets). batch_id is part of
-- the sorting key, so SummingMergeTree only ever folds rows of the same batch together and a batch's rollup stays
-- identifiable: at start the aggregator finds batches present in usage_events but absent here (a crash between the
-- two inserts) and rebuilds their rollup from usage_events. The table is not partitioned, so one batch's insert is
-- one part, written whole or not at all. Every read aggregates with sum() and GROUP BY, so a total is exact whether
-- or not background merges have run.
CREATE TABLE IF NOT EXISTS spend_daily
(
    org_id              String,
    day                 Date,
    user_id             String,
    seat_tier           LowCardinality(String),
    product             LowCardinality(String),
    model               LowCardinality(String) COMMENT 'base model id',
    region              LowCardinality(String),
    long_context        Bool,
    batch_id            String,
    requests            UInt64,
    input_tokens        UInt64,
    output_tokens       UInt64,
    cache_write_tokens  UInt64,
    cache_read_tokens   UInt64,
    gross_cost          Decimal(38, 18),
    net_cost            Decimal(38, 18)
)
ENGINE = SummingMergeTree((requests, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens, gross_cost, net_cost))
ORDER BY (org_id, day, user_id, product, model, seat_tier, region, long_context, batch_id);

-- Month, quarter and year to date as of today (UTC), per org, user, product, model and seat tier.
-- For another as-of day, query spend_daily with day BETWEEN the window's bounds.
CREATE VIEW IF NOT EXISTS spend_mtd AS
SELECT org_id, user_id, product, model, seat_tier,
       sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(cache_read_tokens) AS cache_read_tokens,
       sum(gross_cost) AS gross_spend, sum(net_cost) AS net_spend
FROM spend_daily
WHERE day >= toStartOfMonth(toDate(now(), 'UTC')) AND day <= toDate(now(), 'UTC')
GROUP BY org_id, user_id, product, model, seat_tier;

CREATE VIEW IF NOT EXISTS spend_qtd AS
SELECT org_id, user_id, product, model, seat_tier,
       sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(cache_read_tokens) AS cache_read_tokens,
       sum(gross_cost) AS gross_spend, sum(net_cost) AS net_spend
FROM spend_daily
WHERE day >= toStartOfQuarter(toDate(now(), 'UTC')) AND day <= toDate(now(), 'UTC')
GROUP BY org_id, user_id, product, model, seat_tier;

CREATE VIEW IF NOT EXISTS spend_ytd AS
SELECT org_id, user_id, product, model, seat_tier,
       sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(cache_write_tokens) AS cache_write_tokens, sum(cache_read_tokens) AS cache_read_tokens,
       sum(gross_cost) AS gross_spend, sum(net_cost) AS net_spend
FROM spend_daily
WHERE day >= toStartOfYear(toDate(now(), 'UTC')) AND day <= toDate(now(), 'UTC')
GROUP BY org_id, user_id, product, model, seat_tier;
