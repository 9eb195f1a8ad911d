/** policy_versions (schemas/clickhouse/003): every accepted policy, the newest in force. */
import type { ClickHouseClient } from "@clickhouse/client";

export interface PolicyVersionRow {
  org_id: string;
  version: number;
  policy: string;
  created_at: string;
  created_by: string;
}

export async function insertPolicyVersion(
  client: ClickHouseClient,
  row: { org_id: string; version: number; policy: string; created_by: string },
): Promise<void> {
  await client.insert({ table: "policy_versions", values: [row], format: "JSONEachRow" });
}

/**
 * Policy versions with their own `created_at` (the control recorder's history, version = control-log offset + 1):
 * a row written again is identical, and ReplacingMergeTree on (org_id, version) keeps one.
 */
export async function insertPolicyVersions(client: ClickHouseClient, rows: PolicyVersionRow[]): Promise<void> {
  if (rows.length === 0) return;
  await client.insert({ table: "policy_versions", values: rows, format: "JSONEachRow" });
}

/** The newest policy of every org (or of one org). */
export async function latestPolicies(client: ClickHouseClient, orgId?: string): Promise<PolicyVersionRow[]> {
  return (await latestVersions(client, "policy_versions", "policy", orgId)).map(({ value, ...r }) => ({
    ...r,
    policy: value,
  }));
}

/**
 * The newest version of every org's (or one org's) settings in a versioned table — `org_id`, `version`, the
 * settings column, `created_at`, `created_by` — as policy_versions and credit_auto_reload are.
 */
export async function latestVersions(
  client: ClickHouseClient,
  table: "policy_versions" | "credit_auto_reload",
  column: "policy" | "settings",
  orgId?: string,
): Promise<{ org_id: string; version: number; value: string; created_at: string; created_by: string }[]> {
  const rs = await client.query({
    query: `SELECT org_id, max(version) AS latest, argMax({column:Identifier}, version) AS current_value,
                   argMax(created_at, version) AS set_at, argMax(created_by, version) AS set_by
            FROM {table:Identifier} ${orgId === undefined ? "" : "WHERE org_id = {org:String}"}
            GROUP BY org_id`,
    query_params: { table, column, ...(orgId === undefined ? {} : { org: orgId }) },
    format: "JSONEachRow",
  });
  const rows = await rs.json<{
    org_id: string;
    latest: string;
    current_value: string;
    set_at: string;
    set_by: string;
  }>();
  return rows.map((r) => ({
    org_id: r.org_id,
    version: Number(r.latest),
    value: r.current_value,
    created_at: r.set_at,
    created_by: r.set_by,
  }));
}
