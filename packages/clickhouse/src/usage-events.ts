/** usage_events (schemas/clickhouse/001): one row per priced event; see the migration for how it stays exact. */
import type { ClickHouseClient } from "@clickhouse/client";

export interface UsageEventRow {
  event_id: string;
  org_id: string;
  user_id: string;
  user_email: string;
  account_uuid: string;
  request_id: string;
  region: string;
  seat_tier: string;
  product: string;
  model: string;
  model_base: string;
  /** `YYYY-MM-DD HH:mm:ss.SSS` in UTC. */
  occurred_at: string;
  input_tokens: number;
  output_tokens: number;
  cache_write_tokens: number;
  cache_read_tokens: number;
  prompt_tokens: number;
  long_context: boolean;
  rate_card_version: string;
  input_cost: string;
  output_cost: string;
  cache_write_cost: string;
  cache_read_cost: string;
  gross_cost: string;
  discount_pct: string;
  net_cost: string;
  priced_at: string;
  batch_id: string;
  is_late: boolean;
}

/** The columns the aggregator writes, in the order of its JSONCompactEachRow inserts. */
export const USAGE_EVENT_COLUMNS = [
  "event_id",
  "org_id",
  "user_id",
  "user_email",
  "account_uuid",
  "request_id",
  "region",
  "seat_tier",
  "product",
  "model",
  "model_base",
  "occurred_at",
  "input_tokens",
  "output_tokens",
  "cache_write_tokens",
  "cache_read_tokens",
  "prompt_tokens",
  "long_context",
  "rate_card_version",
  "input_cost",
  "output_cost",
  "cache_write_cost",
  "cache_read_cost",
  "gross_cost",
  "discount_pct",
  "net_cost",
  "priced_at",
  "batch_id",
  "is_late",
] as const satisfies readonly (keyof UsageEventRow)[];

/**
 * `dedupToken`: as insertSpendDaily's, so a batch written twice with the same identity is one part. Rows go as
 * JSONCompactEachRow (positional arrays under an explicit column list): no key names built and parsed per row,
 * 20.9 µs of CPU an event against JSONEachRow's 27.6 at 10,000 rows an insert (test/bench/insert-formats.mjs).
 */
export async function insertUsageEvents(
  client: ClickHouseClient,
  rows: UsageEventRow[],
  dedupToken?: string,
): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({
    table: "usage_events",
    columns: [...USAGE_EVENT_COLUMNS],
    values: rows.map((r) => USAGE_EVENT_COLUMNS.map((c) => r[c])),
    format: "JSONCompactEachRow",
    ...(dedupToken ? { clickhouse_settings: { insert_deduplication_token: `usage_events:${dedupToken}` } } : {}),
  });
}

/** The event ids among `ids` (of the given orgs) already recorded: the aggregator's deduplication check. */
export async function existingEventIds(
  client: ClickHouseClient,
  orgIds: string[],
  ids: string[],
): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rs = await client.query({
    query: "SELECT event_id FROM usage_events WHERE org_id IN {orgs:Array(String)} AND event_id IN {ids:Array(String)}",
    query_params: { orgs: orgIds, ids },
    format: "JSONEachRow",
  });
  return new Set((await rs.json<{ event_id: string }>()).map((r) => r.event_id));
}

/** How many usage_events rows of these orgs occurred since `sinceMs` (sizes the aggregator's id filter). */
export async function countEventsSince(client: ClickHouseClient, orgIds: string[], sinceMs: number): Promise<number> {
  if (orgIds.length === 0) return 0;
  const rs = await client.query({
    query: `SELECT toString(count()) AS n FROM usage_events
            WHERE org_id IN {orgs:Array(String)} AND occurred_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')`,
    query_params: { orgs: orgIds, since: sinceMs },
    format: "JSONEachRow",
  });
  return Number((await rs.json<{ n: string }>())[0]?.n ?? 0);
}

/**
 * Every event id of these orgs that occurred since `sinceMs`, handed to `each` page by page (in key order, `page`
 * ids a query), so the engine never materialises a partition's ids as one result.
 */
export async function forEachEventIdSince(
  client: ClickHouseClient,
  orgIds: string[],
  sinceMs: number,
  each: (ids: string[]) => void,
  page = 100_000,
): Promise<void> {
  for (const org of orgIds) {
    let after = "";
    for (;;) {
      const rs = await client.query({
        query: `SELECT event_id FROM usage_events
                WHERE org_id = {org:String} AND event_id > {after:String}
                  AND occurred_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
                ORDER BY event_id LIMIT {page:UInt32}`,
        query_params: { org, after, since: sinceMs, page },
        format: "JSONCompactEachRow",
      });
      const ids = (await rs.json<[string]>()).map((r) => r[0]);
      if (ids.length === 0) break;
      each(ids);
      if (ids.length < page) break;
      after = ids[ids.length - 1]!;
    }
  }
}

/** Each user's seat tier on their latest event since `sinceMs`. */
export async function latestSeatTiers(
  client: ClickHouseClient,
  sinceMs: number,
  orgIds?: string[],
): Promise<{ org_id: string; user_id: string; seat_tier: string }[]> {
  if (orgIds?.length === 0) return [];
  const rs = await client.query({
    query: `SELECT org_id, user_id, argMax(seat_tier, occurred_at) AS seat_tier
            FROM usage_events WHERE occurred_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
            ${orgIds ? "AND org_id IN {orgs:Array(String)}" : ""}
            GROUP BY org_id, user_id`,
    query_params: { since: sinceMs, orgs: orgIds ?? [] },
    format: "JSONEachRow",
  });
  return rs.json();
}

/** Batches written to usage_events (in the day before the newest write) whose rollup is missing from spend_daily. */
export async function batchesMissingRollup(client: ClickHouseClient, orgIds?: string[]): Promise<string[]> {
  if (orgIds?.length === 0) return [];
  const orgs = orgIds ? "AND org_id IN {orgs:Array(String)}" : "";
  const rs = await client.query({
    query: `SELECT DISTINCT batch_id FROM usage_events
            WHERE recorded_at >= (SELECT max(recorded_at) FROM usage_events WHERE 1 ${orgs}) - INTERVAL 1 DAY ${orgs}
              AND batch_id NOT IN (SELECT DISTINCT batch_id FROM spend_daily WHERE 1 ${orgs})`,
    query_params: { orgs: orgIds ?? [] },
    format: "JSONEachRow",
  });
  return (await rs.json<{ batch_id: string }>()).map((r) => r.batch_id);
}
