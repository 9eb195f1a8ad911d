-- credit_ledger: prepaid credits. Every purchase (by an admin or the operator, through the API) and every
-- auto-reload (recorded by the aggregator) is one entry. An org with at least one entry is a prepaid org: its
-- balance is the sum of its entries minus its net spend on events that occurred at or after its first entry, and
-- at or below zero the org is blocked (blocked_by "credits").
--
-- entry_id is derived from what the entry is: a purchase from the org and the caller's purchase reference (a
-- retried purchase is the same entry), a reload from the org and its sequence number (the n-th reload of the org
-- ever; a reload recorded again after a crash is the same entry). ReplacingMergeTree on (org_id, entry_id) keeps
-- one row per entry; every read goes through FINAL or GROUP BY entry_id, so a copy never counts twice even before
-- the background merge has run.
CREATE TABLE IF NOT EXISTS credit_ledger
(
    entry_id       String,
    org_id         String,
    kind           LowCardinality(String) COMMENT 'purchase or reload',
    amount         Decimal(38, 18) COMMENT 'USD added to the balance, > 0',
    reference      String COMMENT 'purchase reference given by the caller; reload-<sequence> for reloads',
    sequence       UInt64 COMMENT 'the n-th reload of the org (reloads), 0 for purchases',
    period         String COMMENT 'YYYY-MM of created_at: the month a reload counts against the monthly maximum',
    balance_after  Decimal(38, 18) COMMENT 'the balance right after a reload, as the aggregator computed it (informational for purchases)',
    created_at     DateTime64(3, 'UTC'),
    created_by     String COMMENT 'operator, key:<key id>, or aggregator (auto-reload)'
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, entry_id);

-- credit_auto_reload: every accepted PUT of an org's auto-reload settings, the newest version in force (the same
-- versioning as policy_versions).
CREATE TABLE IF NOT EXISTS credit_auto_reload
(
    org_id      String,
    version     UInt64,
    settings    String COMMENT 'the validated settings JSON: enabled, when_below, amount, monthly_max',
    created_at  DateTime64(3, 'UTC') DEFAULT now64(3),
    created_by  String
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, version);

-- Credit and forecast signals share cap_signals with the cap signals. `sequence` tells apart the repeated credit
-- events of one org (the ledger size at an exhaustion or a restore, the reload number of a reload); `amount` and
-- `balance` carry a reload's amount and the balance a credit signal reports.
ALTER TABLE cap_signals ADD COLUMN IF NOT EXISTS sequence UInt64 DEFAULT 0;
ALTER TABLE cap_signals ADD COLUMN IF NOT EXISTS amount Nullable(Decimal(38, 18));
ALTER TABLE cap_signals ADD COLUMN IF NOT EXISTS balance Nullable(Decimal(38, 18));
