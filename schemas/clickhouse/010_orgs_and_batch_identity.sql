-- orgs: every org that has recorded usage. An aggregator member that is assigned a usage.priced.v1 partition loads
-- the state of that partition's orgs only; which orgs those are it derives from the key with Kafka's default
-- partitioner (murmur2 of org_id modulo the partition count), over this small table, rather than recording a
-- partition number with every row: the derivation stays right when an operator adds partitions, and reading one
-- row per org costs what the org count costs, not what the event tables hold. The aggregator writes an org here
-- before the org's first usage_events row (ReplacingMergeTree: a repeated write is one row).
CREATE TABLE IF NOT EXISTS orgs
(
    org_id      String,
    first_seen  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree
ORDER BY org_id;

INSERT INTO orgs (org_id, first_seen) SELECT org_id, min(recorded_at) FROM usage_events GROUP BY org_id;

-- Batch identity: each batch's inserts carry insert_deduplication_token derived from (topic, partition, first and
-- last offset), so ClickHouse itself drops a repeated insert of the same batch (as the ClickHouse Kafka Connect
-- sink does). Non-replicated MergeTree tables keep the tokens of their last N inserts only when this window is set.
ALTER TABLE usage_events MODIFY SETTING non_replicated_deduplication_window = 10000;

ALTER TABLE spend_daily MODIFY SETTING non_replicated_deduplication_window = 10000;
