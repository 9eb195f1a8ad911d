/**
 * The daily series spend forecasts start from (@usage/forecast): net spend per org, user and UTC day, from the
 * spend_daily rollup. spend_daily is a SummingMergeTree keyed down to the batch, so a (org, user, day) has as many
 * rows as batches wrote to it until merges fold them, and merges never cross batches: the read sums with GROUP BY
 * (schemas/clickhouse/002), exact whether or not merges have run. No FINAL: it is not a ReplacingMergeTree, and
 * FINAL would only fold what sum() already adds. Money comes back as an exact Decimal(38, 18) string.
 */
import type { ClickHouseClient } from "@clickhouse/client";

export interface DailyNetSpendRow {
  org_id: string;
  user_id: string;
  /** YYYY-MM-DD (UTC). */
  day: string;
  /** Net spend (after the org's discount), an exact decimal string. */
  net: string;
}

/**
 * Net spend per org, user and day between two days inclusive (YYYY-MM-DD), of one org or of every org; days without
 * spend are absent. Sorted by org, user and day.
 */
export async function dailyNetSpend(
  client: ClickHouseClient,
  args: { orgId?: string; fromDay: string; toDay: string },
): Promise<DailyNetSpendRow[]> {
  const rs = await client.query({
    query: `SELECT org_id, user_id, toString(day) AS on_day, sum(net_cost) AS net
            FROM spend_daily
            WHERE day >= {from:Date} AND day <= {to:Date}${args.orgId === undefined ? "" : " AND org_id = {org:String}"}
            GROUP BY org_id, user_id, on_day
            ORDER BY org_id, user_id, on_day`,
    query_params: { from: args.fromDay, to: args.toDay, ...(args.orgId === undefined ? {} : { org: args.orgId }) },
    format: "JSONEachRow",
  });
  const rows = await rs.json<Omit<DailyNetSpendRow, "day"> & { on_day: string }>();
  return rows.map(({ on_day, ...r }) => ({ org_id: r.org_id, user_id: r.user_id, day: on_day, net: r.net }));
}
