/**
 * control_changes (schemas/clickhouse/009): every change of the control log, one row per version. A row written
 * twice (redelivery, replay) is one row to every reader: reads go through FINAL.
 */
import type { ClickHouseClient } from "@clickhouse/client";

export interface ControlChangeRow {
  version: number;
  org_id: string;
  kind: string;
  key: string;
  /** The change JSON as published. */
  change: string;
  actor: string;
  /** `YYYY-MM-DD HH:mm:ss.SSS` in UTC (see chDateTime). */
  at: string;
}

export async function insertControlChanges(client: ClickHouseClient, rows: ControlChangeRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: "control_changes", values: rows, format: "JSONEachRow" });
}

/** An org's changes, oldest first, optionally only those after a version. */
export async function controlChangesOf(
  client: ClickHouseClient,
  orgId: string,
  options: { afterVersion?: number } = {},
): Promise<ControlChangeRow[]> {
  const rs = await client.query({
    query: `SELECT version, org_id, kind, key, change, actor, toString(at) AS at
            FROM control_changes FINAL
            WHERE org_id = {org:String} AND version > {after:UInt64}
            ORDER BY version`,
    query_params: { org: orgId, after: options.afterVersion ?? 0 },
    format: "JSONEachRow",
  });
  return (await rs.json<ControlChangeRow & { version: string }>()).map((r) => ({ ...r, version: Number(r.version) }));
}
