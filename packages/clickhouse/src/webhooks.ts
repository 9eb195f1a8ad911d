/**
 * webhooks (schemas/clickhouse/004): one webhook per org, the newest write in force (read with FINAL). The secret is
 * returned only to the notifier, which signs with it; nothing here logs.
 */
import type { ClickHouseClient } from "@clickhouse/client";

export interface WebhookRow {
  org_id: string;
  url: string;
  secret: string;
  /** `YYYY-MM-DD HH:mm:ss.SSS` in UTC. */
  updated_at: string;
}

export async function upsertWebhook(client: ClickHouseClient, row: WebhookRow): Promise<void> {
  await client.insert({ table: "webhooks", values: [row], format: "JSONEachRow" });
}

/** The webhook in force for each of the given orgs that has one. */
export async function webhooksOf(client: ClickHouseClient, orgIds: string[]): Promise<Map<string, WebhookRow>> {
  if (orgIds.length === 0) return new Map();
  const rs = await client.query({
    query: "SELECT org_id, url, secret, updated_at FROM webhooks FINAL WHERE org_id IN {orgs:Array(String)}",
    query_params: { orgs: orgIds },
    format: "JSONEachRow",
  });
  return new Map((await rs.json<WebhookRow>()).map((r) => [r.org_id, r]));
}
