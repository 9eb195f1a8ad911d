/** credit_ledger and credit_auto_reload (schemas/clickhouse/007): prepaid credits. Every read counts an entry once. */
import { createHash } from "node:crypto";
import type { ClickHouseClient } from "@clickhouse/client";
import { latestVersions } from "./policy-versions.js";

export interface CreditLedgerRow {
  entry_id: string;
  org_id: string;
  kind: "purchase" | "reload";
  amount: string;
  reference: string;
  sequence: number;
  period: string;
  balance_after: string;
  created_at: string;
  created_by: string;
}

/** The id of a purchase (from its reference) or of the n-th reload of an org. */
export function creditEntryId(orgId: string, kind: "purchase" | "reload", key: string): string {
  return createHash("sha256").update(["credit.v1", orgId, kind, key].join("\u0000")).digest("hex").slice(0, 32);
}

export async function insertCreditEntries(client: ClickHouseClient, rows: CreditLedgerRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: "credit_ledger", values: rows, format: "JSONEachRow" });
}

/** An org's ledger, oldest first, each entry once. */
export async function creditLedger(client: ClickHouseClient, orgId: string): Promise<CreditLedgerRow[]> {
  const rs = await client.query({
    query: `SELECT * FROM credit_ledger FINAL WHERE org_id = {org:String} ORDER BY created_at, entry_id`,
    query_params: { org: orgId },
    format: "JSONEachRow",
  });
  return (await rs.json<CreditLedgerRow>()).map((r) => ({ ...r, sequence: Number(r.sequence) }));
}

/** One entry by id, if recorded. */
export async function creditEntry(
  client: ClickHouseClient,
  orgId: string,
  entryId: string,
): Promise<CreditLedgerRow | undefined> {
  const rs = await client.query({
    query: `SELECT * FROM credit_ledger FINAL WHERE org_id = {org:String} AND entry_id = {id:String}`,
    query_params: { org: orgId, id: entryId },
    format: "JSONEachRow",
  });
  const row = (await rs.json<CreditLedgerRow>())[0];
  return row && { ...row, sequence: Number(row.sequence) };
}

/** Per prepaid org: what the aggregator rebuilds its credit account from. */
export interface CreditSummary {
  org_id: string;
  opened_at: string;
  purchased: string;
  reloaded: string;
  entries: number;
  reloads: number;
  latest_kind: "purchase" | "reload";
  latest_balance_after: string;
  /** Net spend of the org's events that occurred at or after opened_at. */
  spent: string;
}

export async function creditSummaries(client: ClickHouseClient, orgId?: string | string[]): Promise<CreditSummary[]> {
  if (Array.isArray(orgId) && orgId.length === 0) return [];
  const where =
    orgId === undefined
      ? ""
      : Array.isArray(orgId)
        ? "WHERE org_id IN {org:Array(String)}"
        : "WHERE org_id = {org:String}";
  const rs = await client.query({
    query: `WITH ledger AS (
              SELECT org_id, min(created_at) AS opened_at,
                     sumIf(amount, kind = 'purchase') AS purchased, sumIf(amount, kind = 'reload') AS reloaded,
                     count() AS entries, countIf(kind = 'reload') AS reloads,
                     argMax(kind, (created_at, sequence, entry_id)) AS latest_kind,
                     argMax(balance_after, (created_at, sequence, entry_id)) AS latest_balance_after
              FROM credit_ledger FINAL ${where}
              GROUP BY org_id
            ),
            spent AS (
              SELECT e.org_id AS org_id, sum(e.net_cost) AS spent
              FROM usage_events AS e FINAL
              INNER JOIN ledger AS l ON e.org_id = l.org_id
              WHERE e.occurred_at >= l.opened_at
              GROUP BY e.org_id
            )
            SELECT l.org_id AS org_id, toString(l.opened_at) AS opened_at, l.purchased AS purchased,
                   l.reloaded AS reloaded, l.entries AS entries, l.reloads AS reloads, l.latest_kind AS latest_kind,
                   l.latest_balance_after AS latest_balance_after, ifNull(s.spent, toDecimal128(0, 18)) AS spent
            FROM ledger AS l LEFT JOIN spent AS s ON s.org_id = l.org_id
            SETTINGS join_use_nulls = 1`,
    query_params: orgId === undefined ? {} : { org: orgId },
    format: "JSONEachRow",
  });
  return (await rs.json<CreditSummary & { entries: string; reloads: string }>()).map((r) => ({
    ...r,
    entries: Number(r.entries),
    reloads: Number(r.reloads),
  }));
}

/** Amount reloaded per org in a period (YYYY-MM), against the monthly maximum. */
export async function reloadedInPeriod(
  client: ClickHouseClient,
  period: string,
  orgIds?: string[],
): Promise<Map<string, string>> {
  if (orgIds?.length === 0) return new Map();
  const rs = await client.query({
    query: `SELECT org_id, sum(amount) AS reloaded FROM credit_ledger FINAL
            WHERE kind = 'reload' AND period = {period:String} ${orgIds ? "AND org_id IN {orgs:Array(String)}" : ""}
            GROUP BY org_id`,
    query_params: { period, orgs: orgIds ?? [] },
    format: "JSONEachRow",
  });
  return new Map((await rs.json<{ org_id: string; reloaded: string }>()).map((r) => [r.org_id, r.reloaded]));
}

export interface AutoReloadRow {
  org_id: string;
  version: number;
  settings: string;
  created_at: string;
  created_by: string;
}

export async function insertAutoReload(
  client: ClickHouseClient,
  row: { org_id: string; version: number; settings: string; created_by: string },
): Promise<void> {
  await client.insert({ table: "credit_auto_reload", values: [row], format: "JSONEachRow" });
}

/** Auto-reload versions with their own `created_at` (the control recorder's history; see insertPolicyVersions). */
export async function insertAutoReloads(client: ClickHouseClient, rows: AutoReloadRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: "credit_auto_reload", values: rows, format: "JSONEachRow" });
}

/** The newest auto-reload settings of every org (or of one org). */
export async function latestAutoReloads(client: ClickHouseClient, orgId?: string): Promise<AutoReloadRow[]> {
  return (await latestVersions(client, "credit_auto_reload", "settings", orgId)).map(({ value, ...r }) => ({
    ...r,
    settings: value,
  }));
}

/** The latest exhausted/restored signal of every org: the credit status last signalled. */
export async function latestCreditStatuses(
  client: ClickHouseClient,
  orgIds?: string[],
): Promise<{ org_id: string; kind: "credits_exhausted" | "credits_restored" }[]> {
  if (orgIds?.length === 0) return [];
  const rs = await client.query({
    query: `SELECT org_id, argMax(kind, (sequence, kind = 'credits_exhausted')) AS latest
            FROM cap_signals FINAL WHERE kind IN ('credits_exhausted', 'credits_restored')
            ${orgIds ? "AND org_id IN {orgs:Array(String)}" : ""}
            GROUP BY org_id`,
    query_params: { orgs: orgIds ?? [] },
    format: "JSONEachRow",
  });
  const rows = await rs.json<{ org_id: string; latest: "credits_exhausted" | "credits_restored" }>();
  return rows.map((r) => ({ org_id: r.org_id, kind: r.latest }));
}

/** Ledger entries per prepaid org: a cheap check for purchases stored by another process. */
export async function creditEntryCounts(client: ClickHouseClient): Promise<Map<string, number>> {
  const rs = await client.query({
    query: "SELECT org_id, count() AS entries FROM credit_ledger FINAL GROUP BY org_id",
    format: "JSONEachRow",
  });
  return new Map((await rs.json<{ org_id: string; entries: string }>()).map((r) => [r.org_id, Number(r.entries)]));
}
