/**
 * control_rejects (schemas/clickhouse/009): the control-log records the recorder dead-lettered, one row per
 * version; what lets a replay skip a record already sent to the DLQ. Reads go through FINAL.
 */
import type { ClickHouseClient } from "@clickhouse/client";

export interface ControlRejectRow {
  version: number;
  key: string;
  reason: string;
  field: string;
  message: string;
  /** `YYYY-MM-DD HH:mm:ss.SSS` in UTC (see chDateTime). */
  dead_lettered_at: string;
}

export async function insertControlRejects(client: ClickHouseClient, rows: ControlRejectRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: "control_rejects", values: rows, format: "JSONEachRow" });
}

/** Which of the given versions were dead-lettered already. */
export async function deadLetteredVersions(client: ClickHouseClient, versions: number[]): Promise<Set<number>> {
  if (versions.length === 0) return new Set();
  const rs = await client.query({
    query: "SELECT version FROM control_rejects FINAL WHERE version IN {versions:Array(UInt64)}",
    query_params: { versions },
    format: "JSONEachRow",
  });
  return new Set((await rs.json<{ version: string }>()).map((r) => Number(r.version)));
}

/** Every reject, oldest first. */
export async function controlRejects(client: ClickHouseClient): Promise<ControlRejectRow[]> {
  const rs = await client.query({
    query: `SELECT version, key, reason, field, message, toString(dead_lettered_at) AS dead_lettered_at
            FROM control_rejects FINAL ORDER BY version`,
    format: "JSONEachRow",
  });
  return (await rs.json<ControlRejectRow & { version: string }>()).map((r) => ({ ...r, version: Number(r.version) }));
}
