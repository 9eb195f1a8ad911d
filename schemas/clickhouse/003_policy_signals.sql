-- policy_versions: every accepted PUT of an org's spend policy (SPEC §5), newest version in force.
-- Versions are assigned by the API from the org's current maximum; (org_id, version) is unique in practice, and
-- ReplacingMergeTree keeps one row should a write be retried.
CREATE TABLE IF NOT EXISTS policy_versions
(
    org_id      String,
    version     UInt64,
    policy      String COMMENT 'the validated policy JSON',
    created_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    created_by  String COMMENT 'the API key id that set it, or operator'
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, version);

-- cap_signals: every change of cap status or threshold reached, as emitted on spend.signals.v1.
-- signal_id is derived from (org, entity, period, kind, threshold, policy version), so a replay or a restart that
-- re-emits a signal writes the same id, and ReplacingMergeTree on it keeps one row; readers use FINAL or GROUP BY.
CREATE TABLE IF NOT EXISTS cap_signals
(
    signal_id       String,
    org_id          String,
    entity_type     LowCardinality(String) COMMENT 'org or user',
    entity_id       String,
    period          String COMMENT 'YYYY-MM',
    kind            LowCardinality(String) COMMENT 'threshold, blocked or unblocked',
    threshold       Nullable(Decimal(9, 6)) COMMENT 'highest threshold reached, as a fraction of the limit',
    limit_value     String COMMENT 'decimal string or unlimited',
    spend           Decimal(38, 18),
    status          LowCardinality(String),
    policy_version  UInt64,
    cause_event_id  String,
    created_at      DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, period, entity_type, entity_id, signal_id);
