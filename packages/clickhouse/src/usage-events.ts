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

/** `dedupToken`: as insertSpendDaily's, so a batch written twice with the same identity is one part. */
export async function insertUsageEvents(
  client: ClickHouseClient,
  rows: UsageEventRow[],
  dedupToken?: string,
): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({
    table: "usage_events",
    values: rows,
    format: "JSONEachRow",
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
