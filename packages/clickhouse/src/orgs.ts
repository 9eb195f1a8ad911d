/** orgs (schemas/clickhouse/010): every org with recorded usage; partition owners derive their orgs from it. */
import type { ClickHouseClient } from "@clickhouse/client";

export async function insertOrgs(client: ClickHouseClient, orgIds: string[]): Promise<void> {
  if (orgIds.length === 0) return;
  await client.insert({ table: "orgs", values: orgIds.map((org_id) => ({ org_id })), format: "JSONEachRow" });
}

/** Every org id with recorded usage. */
export async function allOrgIds(client: ClickHouseClient): Promise<string[]> {
  const rs = await client.query({ query: "SELECT DISTINCT org_id FROM orgs", format: "JSONEachRow" });
  return (await rs.json<{ org_id: string }>()).map((r) => r.org_id);
}
