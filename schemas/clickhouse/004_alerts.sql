-- alerts: the notifier's alerts (SPEC §7) and their webhook delivery state.
--
-- One alert per alert_id, which is derived from what the alert is (org, entity, period, kind, and the threshold
-- for a threshold alert or the policy version for blocked/unblocked), never from when it was made. Every change of
-- delivery state (pending → retrying → delivered | dead, or no_webhook) is a new row version of the same
-- alert_id with a later updated_at; the alert's own fields and `payload` never change between versions. The
-- notifier keeps updated_at strictly increasing per alert, so no two versions tie.
--
-- Exactness: ReplacingMergeTree(updated_at) keeps the newest version only after a merge, and merges run when
-- ClickHouse pleases. So every read that cares about the delivery state reads `FROM alerts FINAL` (the newest
-- version per sorting key, merged at query time; the filter on state is applied after FINAL, not before, so an old
-- `pending` version never shows through) or an equivalent argMax(..., updated_at) GROUP BY alert_id. Reads of the
-- immutable fields (does this alert_id exist, which threshold did it name) may read any version. Counting alerts
-- is `count(DISTINCT alert_id)` or `count() FROM alerts FINAL`.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id          String,
    org_id            String,
    period            String COMMENT 'YYYY-MM',
    entity_type       LowCardinality(String) COMMENT 'org or user',
    entity_id         String,
    kind              LowCardinality(String) COMMENT 'threshold, blocked or unblocked',
    threshold         Nullable(Decimal(9, 6)) COMMENT 'the threshold reached, as a fraction of the limit',
    limit_value       String COMMENT 'decimal string, unlimited, or empty for none',
    spend             Decimal(38, 18),
    status            LowCardinality(String) COMMENT 'ok, warning or blocked',
    policy_version    UInt64,
    cause_event_id    String,
    signal_id         String COMMENT 'the spend.signals.v1 signal that created the alert',
    created_at        DateTime64(3, 'UTC'),
    payload           String COMMENT 'the exact JSON published on spend.alerts.v1 and POSTed to the webhook',
    source_group      String COMMENT 'consumer group, partition and offset of the signal that created the alert',
    source_partition  UInt32,
    source_offset     UInt64,
    state             LowCardinality(String) COMMENT 'pending, retrying, delivered, dead or no_webhook',
    attempts          UInt32 COMMENT 'webhook POSTs made so far',
    last_error        String,
    next_attempt_at   DateTime64(3, 'UTC'),
    delivered_at      Nullable(DateTime64(3, 'UTC')),
    updated_at        DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (org_id, period, alert_id);

-- webhooks: one webhook per org, the newest PUT in force. Read with FINAL (or argMax(url, updated_at)) for the same
-- reason as above. The secret signs deliveries; it is never returned by the API nor logged.
CREATE TABLE IF NOT EXISTS webhooks
(
    org_id      String,
    url         String,
    secret      String,
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY org_id;
