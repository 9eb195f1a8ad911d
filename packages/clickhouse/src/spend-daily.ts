/** spend_daily (schemas/clickhouse/002): the daily rollup; every read sums, so totals are exact before merges. */
import { randomUUID } from "node:crypto";
import type { ClickHouseClient } from "@clickhouse/client";

export interface SpendDailyRow {
  org_id: string;
  day: string;
  user_id: string;
  seat_tier: string;
  product: string;
  model: string;
  region: string;
  long_context: boolean;
  batch_id: string;
  requests: number;
  input_tokens: number;
  output_tokens: number;
  cache_write_tokens: number;
  cache_read_tokens: number;
  gross_cost: string;
  net_cost: string;
}

const SPEND_DAILY_COLUMNS = [
  "org_id",
  "day",
  "user_id",
  "seat_tier",
  "product",
  "model",
  "region",
  "long_context",
  "batch_id",
  "requests",
  "input_tokens",
  "output_tokens",
  "cache_write_tokens",
  "cache_read_tokens",
  "gross_cost",
  "net_cost",
] as const satisfies readonly (keyof SpendDailyRow)[];

/**
 * The query id prefix of every rollup insert (insertSpendDaily), by which a partition load finds those still running
 * on the server (runningRollupInserts).
 */
export const ROLLUP_QUERY_PREFIX = "spend_daily_rollup:";

/**
 * `dedupToken` (the batch's deterministic identity): ClickHouse drops a repeated insert of the same token
 * (non_replicated_deduplication_window, migration 010), so a batch written twice is one part. The insert's query id
 * starts with ROLLUP_QUERY_PREFIX.
 */
export async function insertSpendDaily(
  client: ClickHouseClient,
  rows: SpendDailyRow[],
  dedupToken?: string,
): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({
    table: "spend_daily",
    columns: [...SPEND_DAILY_COLUMNS],
    values: rows.map((r) => SPEND_DAILY_COLUMNS.map((c) => r[c])),
    format: "JSONCompactEachRow",
    query_id: `${ROLLUP_QUERY_PREFIX}${randomUUID()}`,
    ...(dedupToken ? { clickhouse_settings: { insert_deduplication_token: `spend_daily:${dedupToken}` } } : {}),
  });
}

/** The query ids of the rollup inserts the server is running now. */
export async function runningRollupInserts(client: ClickHouseClient): Promise<string[]> {
  const rs = await client.query({
    query: "SELECT query_id FROM system.processes WHERE startsWith(query_id, {prefix:String})",
    query_params: { prefix: ROLLUP_QUERY_PREFIX },
    format: "JSONEachRow",
  });
  return (await rs.json<{ query_id: string }>()).map((r) => r.query_id);
}

/**
 * Waits until every rollup insert running when it was called has ended (inserts that start later do not extend the
 * wait); answers how many there were. A partition load calls it before it looks for batches whose rollup is missing:
 * an insert the client gave up on (its request timeout) may still be running on the server, and a rebuild beside it
 * would count that batch twice. `onWaiting` is told every `reportMs` while some are left.
 */
export async function awaitRunningRollupInserts(
  client: ClickHouseClient,
  options: { pollMs?: number; reportMs?: number; onWaiting?: (left: string[], waitedMs: number) => void } = {},
): Promise<number> {
  const pollMs = options.pollMs ?? 100;
  const reportMs = options.reportMs ?? 10_000;
  const first = await runningRollupInserts(client);
  let left = first;
  const started = performance.now();
  let reported = started;
  while (left.length > 0) {
    await new Promise((r) => setTimeout(r, pollMs));
    const running = new Set(await runningRollupInserts(client));
    left = left.filter((id) => running.has(id));
    if (left.length > 0 && performance.now() - reported >= reportMs) {
      reported = performance.now();
      options.onWaiting?.(left, Math.round(reported - started));
    }
  }
  return first.length;
}

/** Rebuilds one batch's rollup from its usage_events rows (a load's repair after a crash or failure between the two). */
export async function rebuildRollup(client: ClickHouseClient, batchId: string): Promise<void> {
  await client.command({
    query: `INSERT INTO spend_daily
            SELECT org_id, toDate(occurred_at, 'UTC') AS day, user_id, seat_tier, product, model_base AS model, region,
                   long_context, batch_id, count() AS requests, sum(input_tokens), sum(output_tokens),
                   sum(cache_write_tokens), sum(cache_read_tokens), sum(gross_cost), sum(net_cost)
            FROM usage_events WHERE batch_id = {batch:String}
            GROUP BY org_id, day, user_id, seat_tier, product, model, region, long_context, batch_id`,
    query_params: { batch: batchId },
  });
}

export interface UserPeriodSpend {
  org_id: string;
  user_id: string;
  gross: string;
  net: string;
}

/** Every user's spend between two days inclusive (YYYY-MM-DD): what the aggregator's running totals start from. */
export async function userSpendBetween(
  client: ClickHouseClient,
  from: string,
  to: string,
  orgIds?: string[],
): Promise<UserPeriodSpend[]> {
  if (orgIds?.length === 0) return [];
  const rs = await client.query({
    query: `SELECT org_id, user_id, sum(gross_cost) AS gross, sum(net_cost) AS net FROM spend_daily
            WHERE day >= {from:Date} AND day <= {to:Date} ${orgIds ? "AND org_id IN {orgs:Array(String)}" : ""}
            GROUP BY org_id, user_id`,
    query_params: { from, to, orgs: orgIds ?? [] },
    format: "JSONEachRow",
  });
  return rs.json();
}

export const SPEND_GROUPS = {
  user: "user_id",
  model: "model",
  product: "product",
  seat_tier: "seat_tier",
} as const;
export type SpendGroup = keyof typeof SPEND_GROUPS;

export interface SpendRow {
  key: string;
  spend: string;
  gross_spend: string;
  requests: string;
  input_tokens: string;
  output_tokens: string;
  cache_write_tokens: string;
  cache_read_tokens: string;
}

/**
 * An org's spend between two days inclusive, grouped by one dimension (or one row keyed "total"), of one product
 * when `product` is given. `spend` is net (what the org pays); `gross_spend` is list price. The grouping column comes
 * from a fixed map, never from input; the product is a query parameter.
 */
export async function orgSpend(
  client: ClickHouseClient,
  params: { orgId: string; from: string; to: string; groupBy?: SpendGroup; product?: string },
): Promise<SpendRow[]> {
  const key = params.groupBy ? SPEND_GROUPS[params.groupBy] : "'total'";
  const rs = await client.query({
    query: `SELECT toString(${key}) AS key, sum(net_cost) AS spend, sum(gross_cost) AS gross_spend,
                   sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
                   sum(cache_write_tokens) AS cache_write_tokens, sum(cache_read_tokens) AS cache_read_tokens
            FROM spend_daily
            WHERE org_id = {org:String} AND day >= {from:Date} AND day <= {to:Date}
              ${params.product === undefined ? "" : "AND product = {product:String}"}
            GROUP BY key ORDER BY spend DESC, key ASC`,
    query_params: { org: params.orgId, from: params.from, to: params.to, product: params.product ?? "" },
    format: "JSONEachRow",
  });
  return rs.json();
}
