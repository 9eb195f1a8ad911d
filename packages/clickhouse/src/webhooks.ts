/**
 * webhooks (schemas/clickhouse/004, 013): one webhook per org, the newest write in force (read with FINAL). Secrets
 * are stored as the caller gives them — sealed by the API (@usage/webhooks secrets.ts) — and returned only to the
 * notifier, which opens them to sign; nothing here logs.
 */
import type { ClickHouseClient } from "@clickhouse/client";

export interface WebhookRow {
  org_id: string;
  url: string;
  secret: string;
  /** `YYYY-MM-DD HH:mm:ss.SSS` in UTC. */
  updated_at: string;
  /** The secret before the last rotation, still signing until previous_until ('' when none). */
  previous_secret?: string;
  previous_until?: string | null;
}

export async function upsertWebhook(client: ClickHouseClient, row: WebhookRow): Promise<void> {
  await client.insert({ table: "webhooks", values: [row], format: "JSONEachRow" });
}

/** The webhook in force for each of the given orgs that has one. */
export async function webhooksOf(client: ClickHouseClient, orgIds: string[]): Promise<Map<string, WebhookRow>> {
  if (orgIds.length === 0) return new Map();
  const rs = await client.query({
    query: `SELECT org_id, url, secret, updated_at, previous_secret, previous_until
            FROM webhooks FINAL WHERE org_id IN {orgs:Array(String)}`,
    query_params: { orgs: orgIds },
    format: "JSONEachRow",
  });
  return new Map((await rs.json<WebhookRow>()).map((r) => [r.org_id, r]));
}
