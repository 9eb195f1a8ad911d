-- Invoices as documents (SPEC §13). A month's invoice is computed while it is a draft; finalization freezes it: the
-- finalizer computes it once, writes the document and its lines here under a fresh finalization_id, and only then
-- publishes an `invoice_final` record on the control log naming that id. The first such record of an org and period
-- in log order is the final invoice (control_changes holds the records); a document no record names, or whose record
-- came second (two finalizers racing), is never read. A document is written once and never recomputed: usage of its
-- month that arrives later becomes an adjustment line on a later invoice.
--
-- document is the invoice JSON exactly as the API serves it, so a final invoice reads back byte for byte.
CREATE TABLE IF NOT EXISTS invoice_documents
(
    org_id          String,
    period          String COMMENT 'YYYY-MM',
    finalization_id String,
    number          String,
    finalized_at    DateTime64(3, 'UTC'),
    finalized_by    String COMMENT 'operator, or invoice-finalizer (on its own after the grace days)',
    total           Decimal(76, 2),
    document        String
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, period, finalization_id);

-- One row per line of a document, in its order. amount_exact is the exact decimal (usage nets have at most 18
-- decimal places, prorated seat fees 12); amount is amount_exact rounded half-up to cents. adjusts_period names the
-- month an adjustment line's usage belongs to.
CREATE TABLE IF NOT EXISTS invoice_document_lines
(
    org_id          String,
    period          String,
    finalization_id String,
    line_no         UInt32,
    kind            LowCardinality(String) COMMENT 'seat, usage, adjustment or credits_applied',
    description     String,
    quantity        UInt64,
    user_id         String,
    product         String,
    model           String,
    tier            String,
    from_tier       String,
    charge_day      String COMMENT 'seat lines: YYYY-MM-DD',
    adjusts_period  String,
    amount_exact    Decimal(76, 18),
    amount          Decimal(76, 2)
)
ENGINE = ReplacingMergeTree
ORDER BY (org_id, period, finalization_id, line_no);

-- invoice_lines (SPEC §6): the lines of every FINAL invoice, as frozen. A draft has no rows here (the API computes
-- it); the winning finalization of an org and period is the one with the lowest control version.
CREATE OR REPLACE VIEW invoice_lines AS
SELECT
    l.org_id AS org_id,
    l.period AS period,
    d.number AS number,
    l.line_no AS line_no,
    l.kind AS kind,
    l.description AS description,
    l.quantity AS quantity,
    l.user_id AS user_id,
    l.product AS product,
    l.model AS model,
    l.tier AS tier,
    l.from_tier AS from_tier,
    l.charge_day AS charge_day,
    l.adjusts_period AS adjusts_period,
    l.amount_exact AS amount_exact,
    l.amount AS amount
FROM invoice_document_lines AS l FINAL
INNER JOIN
(
    SELECT org_id,
           JSONExtractString(change, 'period') AS period,
           argMin(JSONExtractString(change, 'finalization_id'), version) AS finalization_id
    FROM control_changes FINAL
    WHERE kind = 'invoice_final'
    GROUP BY org_id, period
) AS w ON l.org_id = w.org_id AND l.period = w.period AND l.finalization_id = w.finalization_id
INNER JOIN invoice_documents AS d FINAL
    ON l.org_id = d.org_id AND l.period = d.period AND l.finalization_id = d.finalization_id;
