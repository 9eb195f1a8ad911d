/**
 * What spend forecasts start from (@usage/forecast): the daily series, net spend per org, user and UTC day, from the
 * spend_daily rollup; and each user's first usage in the month, where the forecast's observation starts, from
 * usage_events (the rollup keeps days, not instants).
 *
 * spend_daily is a SummingMergeTree keyed down to the batch, so a (org, user, day) has as many rows as batches wrote
 * to it until merges fold them, and merges never cross batches: the read sums with GROUP BY (schemas/clickhouse/002),
 * exact whether or not merges have run. No FINAL: it is not a ReplacingMergeTree, and FINAL would only fold what
 * sum() already adds. Money comes back as an exact Decimal(38, 18) string.
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

export interface FirstUsageRow {
  org_id: string;
  user_id: string;
  /** The user's earliest event in the range: milliseconds since the epoch. */
  first_at: number;
}

/**
 * Each user's first usage between two instants (ms since the epoch, `to` exclusive: a month's bounds), of one org or
 * of every org: the earliest occurred_at of their events in usage_events. An org's is the earliest of its users'.
 * Exact without FINAL: a duplicate not yet merged away has its original's occurred_at, so min() is the same. Reads
 * three columns of the month's partition (of one org's part of it when `orgId` is given: the sorting key's prefix).
 * Read it after dailyNetSpend: usage_events is written before spend_daily, so every day with spend has its events.
 */
export async function firstUsageBetween(
  client: ClickHouseClient,
  args: { orgId?: string; from: number; to: number },
): Promise<FirstUsageRow[]> {
  const rs = await client.query({
    query: `SELECT org_id, user_id, toUnixTimestamp64Milli(min(occurred_at)) AS first_ms
            FROM usage_events
            WHERE occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
              AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')${args.orgId === undefined ? "" : " AND org_id = {org:String}"}
            GROUP BY org_id, user_id
            ORDER BY org_id, user_id`,
    query_params: { from: args.from, to: args.to, ...(args.orgId === undefined ? {} : { org: args.orgId }) },
    format: "JSONEachRow",
  });
  // Int64 comes back as a string in JSON; milliseconds of this era are well within a safe integer.
  const rows = await rs.json<{ org_id: string; user_id: string; first_ms: string | number }>();
  return rows.map((r) => ({ org_id: r.org_id, user_id: r.user_id, first_at: Number(r.first_ms) }));
}
