-- control_changes: the history of every change on the control log usage.control.v1 (policy, auto-reload, credit
-- purchase notices, webhook and API key notices), written by the control recorder. `version` is the record's offset
-- + 1 in that single-partition log: unique and ordered across every org and kind. The recorder writes a batch's
-- rows, then commits its offset; a redelivery or a replay by a new group writes the same rows again, and
-- ReplacingMergeTree on (org_id, version) keeps one: every reader goes through FINAL, so a copy is never seen twice
-- even before the background merge has run.
CREATE TABLE IF NOT EXISTS control_changes
(
    version     UInt64 COMMENT 'offset in usage.control.v1 + 1',
    org_id      String,
    kind        LowCardinality(String) COMMENT 'policy, auto_reload, credit_purchase, webhook or api_key',
    key         String COMMENT 'the record key (its compaction key), e.g. org_1/policy',
    change      String COMMENT 'the validated change JSON, as published',
    actor       String COMMENT 'operator, key:<key id>, or the service that made the change',
    at          DateTime64(3, 'UTC') COMMENT 'when the change was made, as the publisher stamped it'
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, version);

-- control_rejects: the records of usage.control.v1 that did not validate, dead-lettered to usage.dlq.v1 by the
-- recorder. The recorder sends a reject to the DLQ, then writes its row here, then commits; a record whose version
-- already has a row is not sent again, so a replay (offsets reset, a new group) dead-letters nothing twice, and a
-- crash between the send and this insert repeats at most that batch's rejects. ReplacingMergeTree on version: FINAL.
CREATE TABLE IF NOT EXISTS control_rejects
(
    version          UInt64 COMMENT 'offset in usage.control.v1 + 1',
    key              String,
    reason           LowCardinality(String) COMMENT 'invalid_encoding or invalid_field',
    field            String,
    message          String,
    dead_lettered_at DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY version;
