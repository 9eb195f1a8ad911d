/** cap_signals (schemas/clickhouse/003): every change of cap status or threshold reached. */
import type { ClickHouseClient } from "@clickhouse/client";

export interface CapSignalRow {
  signal_id: string;
  org_id: string;
  entity_type: "org" | "user";
  entity_id: string;
  period: string;
  kind: SignalKind;
  threshold: string | null;
  limit_value: string;
  spend: string;
  status: "ok" | "warning" | "blocked";
  policy_version: number;
  cause_event_id: string;
  created_at: string;
  /** Credit signals: the ledger size (exhausted, restored) or reload number (reload); 0 otherwise. */
  sequence?: number;
  /** A reload's amount. */
  amount?: string | null;
  /** The credit balance a credit signal reports. */
  balance?: string | null;
}

/** Cap signals (threshold, blocked, unblocked), credit signals (credits_*) and forecast signals. */
export type SignalKind =
  | "threshold"
  | "blocked"
  | "unblocked"
  | "credits_exhausted"
  | "credits_restored"
  | "credits_reload"
  | "credits_reload_limit"
  | "forecast"
  | "limit_requests_digest";

export async function insertCapSignals(client: ClickHouseClient, rows: CapSignalRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: "cap_signals", values: rows, format: "JSONEachRow" });
}

/** Every signal of a period, oldest first, each once. */
export async function capSignalsOfPeriod(
  client: ClickHouseClient,
  period: string,
  orgIds?: string[],
): Promise<CapSignalRow[]> {
  if (orgIds?.length === 0) return [];
  const rs = await client.query({
    query: `SELECT * FROM cap_signals FINAL WHERE period = {period:String}
            ${orgIds ? "AND org_id IN {orgs:Array(String)}" : ""} ORDER BY created_at, signal_id`,
    query_params: { period, orgs: orgIds ?? [] },
    format: "JSONEachRow",
  });
  return (await rs.json<CapSignalRow>()).map((r) => ({
    ...r,
    policy_version: Number(r.policy_version),
    sequence: Number(r.sequence ?? 0),
  }));
}
