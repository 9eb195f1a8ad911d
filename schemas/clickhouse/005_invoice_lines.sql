-- invoice_lines: what an org is invoiced for a month (SPEC §6), one line per org, period, user, product and base model.
--
-- Exactness: the view reads usage_events FINAL, so each event_id counts once whether or not ClickHouse has merged the
-- parts holding a copy (the table's ReplacingMergeTree key is (org_id, event_id); FINAL merges at query time, across
-- partitions too). Every figure is count() or sum() over Decimal(38, 18) and UInt64 columns: no rounding anywhere,
-- and nothing is stored, so a line is exact at the moment it is read, including late events that arrived after the
-- month closed (they count in the month of occurred_at, like every event).
--
-- period is the UTC month of occurred_at, `YYYY-MM`. model is the base model id the rate card priced the event as
-- (usage_events.model_base; dated ids fold into their base). user_email and account_uuid are the user's values on
-- their latest event of the month that carried one (by occurred_at, then event_id; empty when none did): the same on
-- every line of the user, and a user is never split over two lines by a changed or missing email. gross_spend is
-- list price; net_spend is after the org's discount: what the org pays.
--
-- Read it with a filter on org_id (the first sorting key column of usage_events, pushed into the view) and period:
--   SELECT * FROM invoice_lines WHERE org_id = 'org_1' AND period = '2026-10' ORDER BY user_id, product, model
CREATE VIEW IF NOT EXISTS invoice_lines AS
SELECT
    org_id,
    period,
    user_id,
    argMax(line_user_email, line_user_email_at) OVER (PARTITION BY org_id, period, user_id) AS user_email,
    argMax(line_account_uuid, line_account_uuid_at) OVER (PARTITION BY org_id, period, user_id) AS account_uuid,
    product,
    base_model AS model,
    line_requests AS requests,
    line_input_tokens AS input_tokens,
    line_output_tokens AS output_tokens,
    line_cache_write_tokens AS cache_write_tokens,
    line_cache_read_tokens AS cache_read_tokens,
    line_prompt_tokens AS prompt_tokens,
    line_gross AS gross_spend,
    line_net AS net_spend
FROM
(
    SELECT
        org_id,
        formatDateTime(occurred_at, '%Y-%m', 'UTC') AS period,
        user_id,
        product,
        model_base AS base_model,
        -- The line's latest non-empty identity and when it was seen; the window above picks the user's latest.
        argMaxIf(user_email, (occurred_at, event_id), user_email != '') AS line_user_email,
        maxIf((occurred_at, event_id), user_email != '') AS line_user_email_at,
        argMaxIf(account_uuid, (occurred_at, event_id), account_uuid != '') AS line_account_uuid,
        maxIf((occurred_at, event_id), account_uuid != '') AS line_account_uuid_at,
        count() AS line_requests,
        sum(input_tokens) AS line_input_tokens,
        sum(output_tokens) AS line_output_tokens,
        sum(cache_write_tokens) AS line_cache_write_tokens,
        sum(cache_read_tokens) AS line_cache_read_tokens,
        sum(prompt_tokens) AS line_prompt_tokens,
        sum(gross_cost) AS line_gross,
        sum(net_cost) AS line_net
    FROM usage_events FINAL
    GROUP BY org_id, period, user_id, product, base_model
);
