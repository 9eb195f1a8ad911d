/**
 * api_keys (schemas/clickhouse/006): org keys made before keys carried roles (they act as `owner`); new keys are
 * control-plane records. api_key_usage (011): when each key was last used.
 */
import type { ClickHouseClient } from "@clickhouse/client";

export interface ApiKeyRow {
  key_id: string;
  org_id: string;
  secret_hash: string;
  revoked: boolean;
}

/** Every key of the api_keys table as it now stands (the newest row per key). */
export async function findApiKeys(client: ClickHouseClient): Promise<ApiKeyRow[]> {
  const rs = await client.query({
    query: "SELECT key_id, org_id, secret_hash, revoked FROM api_keys FINAL",
    format: "JSONEachRow",
  });
  return (await rs.json<ApiKeyRow>()).map((row) => ({ ...row, revoked: Boolean(row.revoked) }));
}

export async function insertApiKeyUsage(
  client: ClickHouseClient,
  rows: { key_id: string; org_id: string; last_used_at: number }[],
): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({
    table: "api_key_usage",
    values: rows.map((r) => ({
      ...r,
      last_used_at: new Date(r.last_used_at).toISOString().replace("T", " ").replace("Z", ""),
    })),
    format: "JSONEachRow",
  });
}

/** key id → when it was last used (ms), for the org's keys that were ever used. */
export async function keysLastUsed(client: ClickHouseClient, orgId: string): Promise<Map<string, number>> {
  const rs = await client.query({
    query: `SELECT key_id, toUnixTimestamp64Milli(max(last_used_at)) AS at FROM api_key_usage
            WHERE org_id = {org:String} GROUP BY key_id`,
    query_params: { org: orgId },
    format: "JSONEachRow",
  });
  return new Map((await rs.json<{ key_id: string; at: string }>()).map((r) => [r.key_id, Number(r.at)]));
}

/** Writes a row of the api_keys table (keys made before roles; the tests of that path make one). */
export async function insertApiKey(client: ClickHouseClient, row: ApiKeyRow): Promise<void> {
  await client.insert({ table: "api_keys", values: [row], format: "JSONEachRow" });
}
