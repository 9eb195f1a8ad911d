/**
 * alerts (schemas/clickhouse/004): one row version per alert per delivery-state change. Reads of the delivery state
 * use FINAL (see the migration for why that is exact); reads of an alert's immutable fields may read any version.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import type { SignalKind } from "./cap-signals.js";

export const ALERT_STATES = ["pending", "retrying", "delivered", "dead", "no_webhook"] as const;
export type AlertState = (typeof ALERT_STATES)[number];

export interface AlertRow {
  alert_id: string;
  org_id: string;
  period: string;
  entity_type: "org" | "user";
  entity_id: string;
  kind: SignalKind;
  threshold: string | null;
  limit_value: string;
  spend: string;
  status: "ok" | "warning" | "blocked";
  policy_version: number;
  cause_event_id: string;
  signal_id: string;
  /** Timestamps are `YYYY-MM-DD HH:mm:ss.SSS` in UTC (see chDateTime). */
  created_at: string;
  payload: string;
  source_group: string;
  source_partition: number;
  source_offset: string;
  state: AlertState;
  attempts: number;
  last_error: string;
  next_attempt_at: string;
  delivered_at: string | null;
  updated_at: string;
}

/** What never changes between the versions of an alert: enough to tell whether it exists and what it named. */
export type AlertIdentity = Pick<
  AlertRow,
  | "alert_id"
  | "org_id"
  | "period"
  | "entity_type"
  | "entity_id"
  | "kind"
  | "threshold"
  | "source_group"
  | "source_partition"
  | "source_offset"
>;

const IDENTITY_COLUMNS =
  "alert_id, org_id, period, entity_type, entity_id, kind, threshold, source_group, source_partition, source_offset";

/** `YYYY-MM-DD HH:mm:ss.SSS` (UTC) for a DateTime64(3, 'UTC') column. */
export function chDateTime(ms: number): string {
  return new Date(ms).toISOString().replace("T", " ").replace("Z", "");
}

/** Milliseconds since the epoch of a DateTime64(3, 'UTC') value as ClickHouse returns it. */
export function parseChDateTime(value: string): number {
  return Date.parse(`${value.replace(" ", "T")}Z`);
}

export async function insertAlerts(client: ClickHouseClient, rows: AlertRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: "alerts", values: rows, format: "JSONEachRow" });
}

/**
 * What the notifier must know of the alerts table to decide a batch of signals (each alert once): in the batch's
 * orgs and periods, the alerts with the batch's ids (does this alert exist, and which message created it) and every
 * alert of the batch's entities (the highest threshold already alerted: SPEC §7's "passed"). Bounded by what the batch
 * names, not by how many alerts the orgs have had this period. `orgEntity`: the batch has a signal about an org as a
 * whole; `users`: the users it has signals about. Rows beyond those (another org's org-level alerts, say) are true
 * facts too and do no harm.
 */
export async function alertIdentities(
  client: ClickHouseClient,
  orgIds: string[],
  periods: string[],
  scope: { alertIds: string[]; orgEntity: boolean; users: string[] },
): Promise<AlertIdentity[]> {
  if (orgIds.length === 0 || periods.length === 0) return [];
  const rs = await client.query({
    query: `SELECT ${IDENTITY_COLUMNS} FROM alerts
            WHERE org_id IN {orgs:Array(String)} AND period IN {periods:Array(String)}
              AND (alert_id IN {ids:Array(String)}
                   OR (entity_type = 'org' AND {org_entity:Bool})
                   OR (entity_type = 'user' AND entity_id IN {users:Array(String)}))
            LIMIT 1 BY alert_id`,
    query_params: {
      orgs: orgIds,
      periods,
      ids: scope.alertIds,
      org_entity: scope.orgEntity,
      users: scope.users,
    },
    format: "JSONEachRow",
  });
  return (await rs.json<AlertIdentity>()).map(identity);
}

/** Every alert of the periods from `fromPeriod` on (each once): what the notifier loads into memory at start. */
export async function alertIdentitiesSince(client: ClickHouseClient, fromPeriod: string): Promise<AlertIdentity[]> {
  const rs = await client.query({
    query: `SELECT ${IDENTITY_COLUMNS} FROM alerts WHERE period >= {from:String} LIMIT 1 BY alert_id`,
    query_params: { from: fromPeriod },
    format: "JSONEachRow",
  });
  return (await rs.json<AlertIdentity>()).map(identity);
}

/** The current version of some alerts. */
export async function alertsByIds(client: ClickHouseClient, orgIds: string[], ids: string[]): Promise<AlertRow[]> {
  if (ids.length === 0) return [];
  const rs = await client.query({
    query: `SELECT * FROM alerts FINAL WHERE org_id IN {orgs:Array(String)} AND alert_id IN {ids:Array(String)}`,
    query_params: { orgs: orgIds, ids },
    format: "JSONEachRow",
  });
  return (await rs.json<AlertRow>()).map(row);
}

/** Records that these alerts were published to spend.alerts.v1 (schemas/clickhouse/008). */
export async function insertAlertPublications(
  client: ClickHouseClient,
  rows: { org_id: string; alert_id: string; published_at: string }[],
): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: "alert_publications", values: rows, format: "JSONEachRow" });
}

/** Which of these alerts have been published. */
export async function publishedAlertIds(
  client: ClickHouseClient,
  orgIds: string[],
  ids: string[],
): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rs = await client.query({
    query: `SELECT DISTINCT alert_id FROM alert_publications
            WHERE org_id IN {orgs:Array(String)} AND alert_id IN {ids:Array(String)}`,
    query_params: { orgs: orgIds, ids },
    format: "JSONEachRow",
  });
  return new Set((await rs.json<{ alert_id: string }>()).map((r) => r.alert_id));
}

const DUE = `state IN ('pending', 'retrying') AND next_attempt_at <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')`;

/** The orgs with an alert waiting for a webhook attempt whose time has come (a notifier keeps those it owns). */
export async function dueAlertOrgs(client: ClickHouseClient, nowMs: number): Promise<string[]> {
  const rs = await client.query({
    query: `SELECT DISTINCT org_id FROM alerts FINAL WHERE ${DUE} ORDER BY org_id`,
    query_params: { now: nowMs },
    format: "JSONEachRow",
  });
  return (await rs.json<{ org_id: string }>()).map((r) => r.org_id);
}

/**
 * Alerts waiting for a webhook attempt whose time has come, the longest-waiting first; of these orgs only when
 * `orgIds` is given (an empty list: none).
 */
export async function dueAlerts(
  client: ClickHouseClient,
  nowMs: number,
  limit: number,
  orgIds?: string[],
): Promise<AlertRow[]> {
  if (orgIds?.length === 0) return [];
  const rs = await client.query({
    query: `SELECT * FROM alerts FINAL
            WHERE ${orgIds === undefined ? "" : "org_id IN {orgs:Array(String)} AND "}${DUE}
            ORDER BY next_attempt_at, alert_id
            LIMIT {limit:UInt32}`,
    query_params: orgIds === undefined ? { now: nowMs, limit } : { now: nowMs, limit, orgs: orgIds },
    format: "JSONEachRow",
  });
  return (await rs.json<AlertRow>()).map(row);
}

/** An org's alerts of one period with their current delivery state, newest first. */
export async function alertsOfPeriod(client: ClickHouseClient, orgId: string, period: string): Promise<AlertRow[]> {
  const rs = await client.query({
    query: `SELECT * FROM alerts FINAL WHERE org_id = {org:String} AND period = {period:String}
            ORDER BY created_at DESC, alert_id DESC`,
    query_params: { org: orgId, period },
    format: "JSONEachRow",
  });
  return (await rs.json<AlertRow>()).map(row);
}

/** Alerts per delivery state (current versions), optionally of one org. */
export async function alertStateCounts(client: ClickHouseClient, orgId?: string): Promise<Record<string, number>> {
  const rs = await client.query({
    query: `SELECT state, count() AS n FROM alerts FINAL
            ${orgId === undefined ? "" : "WHERE org_id = {org:String}"} GROUP BY state`,
    query_params: orgId === undefined ? {} : { org: orgId },
    format: "JSONEachRow",
  });
  return Object.fromEntries((await rs.json<{ state: string; n: string }>()).map((r) => [r.state, Number(r.n)]));
}

function identity(r: AlertIdentity): AlertIdentity {
  return { ...r, source_partition: Number(r.source_partition), source_offset: String(r.source_offset) };
}

function row(r: AlertRow): AlertRow {
  return {
    ...r,
    policy_version: Number(r.policy_version),
    source_partition: Number(r.source_partition),
    source_offset: String(r.source_offset),
    attempts: Number(r.attempts),
  };
}
