/** api_keys (schemas/clickhouse/006): per-org API keys, stored hashed. */
import type { ClickHouseClient } from "@clickhouse/client";

export interface ApiKeyRow {
  key_id: string;
  org_id: string;
  secret_hash: string;
  revoked: boolean;
}

export async function insertApiKey(client: ClickHouseClient, row: ApiKeyRow): Promise<void> {
  await client.insert({ table: "api_keys", values: [row], format: "JSONEachRow" });
}

/** The newest state of a key, or undefined when no such key exists. */
export async function findApiKey(client: ClickHouseClient, keyId: string): Promise<ApiKeyRow | undefined> {
  const rs = await client.query({
    query: "SELECT key_id, org_id, secret_hash, revoked FROM api_keys FINAL WHERE key_id = {id:String}",
    query_params: { id: keyId },
    format: "JSONEachRow",
  });
  const [row] = await rs.json<ApiKeyRow>();
  return row ? { ...row, revoked: Boolean(row.revoked) } : undefined;
}
