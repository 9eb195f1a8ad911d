/**
 * Analytics and finance reads (SPEC §8): top users, daily trends, the spend report CSV rows and the month-end
 * reconciliation. Named queries with typed parameters only; a grouping or ordering expression comes from a fixed
 * map below, never from input.
 *
 * Exactness: every figure is count() or sum() at read time. Reads of spend_daily sum over its rows (exact before and
 * after SummingMergeTree merges, schemas/clickhouse/002); reads of usage_events use FINAL (one row per event_id,
 * schemas/clickhouse/001). Money comes back as Decimal(38, 18) strings and counts as UInt64 strings (see client.ts),
 * never as floating-point numbers.
 */
import type { ClickHouseClient } from "@clickhouse/client";

const DAY_MS = 86_400_000;

// ---------------------------------------------------------------------------------------------------------
// Top users

export const TOP_USERS_BY = {
  spend: "spend DESC, tokens DESC",
  tokens: "tokens DESC, spend DESC",
} as const;
export type TopUsersBy = keyof typeof TOP_USERS_BY;

export interface TopUserRow {
  user_id: string;
  /** The user's email on their latest event in the window that carried one; empty when none did. */
  user_email: string;
  /** Net: after the org's discount. */
  spend: string;
  /** Gross: list price. */
  gross_spend: string;
  requests: string;
  /** input + output + cache write + cache read tokens. */
  tokens: string;
}

/**
 * An org's users ranked by net spend or by tokens between two days inclusive (YYYY-MM-DD), from spend_daily. Ties
 * are broken by the other measure, then by user_id, so the order is stable.
 */
export async function topUsers(
  client: ClickHouseClient,
  params: { orgId: string; from: string; to: string; by: TopUsersBy; limit: number },
): Promise<TopUserRow[]> {
  const order = TOP_USERS_BY[params.by];
  const rs = await client.query({
    query: `SELECT user_id, sum(net_cost) AS spend, sum(gross_cost) AS gross_spend, sum(requests) AS requests,
                   sum(input_tokens + output_tokens + cache_write_tokens + cache_read_tokens) AS tokens
            FROM spend_daily
            WHERE org_id = {org:String} AND day >= {from:Date} AND day <= {to:Date}
            GROUP BY user_id
            ORDER BY ${order}, user_id ASC
            LIMIT {limit:UInt32}`,
    query_params: { org: params.orgId, from: params.from, to: params.to, limit: params.limit },
    format: "JSONEachRow",
  });
  const ranked = await rs.json<Omit<TopUserRow, "user_email">>();
  if (ranked.length === 0) return [];
  const emails = await latestEmails(client, {
    orgId: params.orgId,
    userIds: ranked.map((r) => r.user_id),
    fromMs: Date.parse(`${params.from}T00:00:00Z`),
    toMs: Date.parse(`${params.to}T00:00:00Z`) + DAY_MS,
  });
  return ranked.map((r) => ({ ...r, user_email: emails.get(r.user_id) ?? "" }));
}

/** Each user's email on their latest event in [fromMs, toMs) that carried one. */
async function latestEmails(
  client: ClickHouseClient,
  params: { orgId: string; userIds: string[]; fromMs: number; toMs: number },
): Promise<Map<string, string>> {
  const rs = await client.query({
    query: `SELECT user_id, argMaxIf(user_email, (occurred_at, event_id), user_email != '') AS email
            FROM usage_events
            WHERE org_id = {org:String} AND user_id IN {users:Array(String)}
              AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
              AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
            GROUP BY user_id`,
    query_params: { org: params.orgId, users: params.userIds, from: params.fromMs, to: params.toMs },
    format: "JSONEachRow",
  });
  return new Map((await rs.json<{ user_id: string; email: string }>()).map((r) => [r.user_id, r.email]));
}

// ---------------------------------------------------------------------------------------------------------
// Daily trends

/** What a trend is grouped by: a spend_daily column or an expression over one. An empty region reads "unknown". */
export const TREND_GROUPS = {
  product: "product",
  model: "model",
  context_window: "if(long_context, 'long', 'standard')",
  region: "if(region = '', 'unknown', region)",
} as const;
export type TrendGroup = keyof typeof TREND_GROUPS;
/**
 * What dailyTrends may group by: a trend group, or `user` (per-user rows, which the API folds into policy groups for
 * `group_by=group`; not a grouping the trends route offers on its own).
 */
const TREND_KEYS: Record<TrendGroup | "user", string> = { ...TREND_GROUPS, user: "user_id" };

export interface TrendRow {
  /** YYYY-MM-DD (UTC). */
  day: string;
  key: string;
  spend: string;
  gross_spend: string;
  requests: string;
  /** input + output + cache write + cache read tokens. */
  tokens: string;
}

/**
 * An org's spend per day and group between two days inclusive, from spend_daily; days without spend are absent.
 * With `product`, only that product's rows count.
 */
export async function dailyTrends(
  client: ClickHouseClient,
  params: { orgId: string; fromDay: string; toDay: string; groupBy: TrendGroup | "user"; product?: string },
): Promise<TrendRow[]> {
  const key = TREND_KEYS[params.groupBy];
  const rs = await client.query({
    query: `SELECT toString(day) AS on_day, toString(${key}) AS group_key, sum(net_cost) AS spend,
                   sum(gross_cost) AS gross_spend, sum(requests) AS requests,
                   sum(input_tokens + output_tokens + cache_write_tokens + cache_read_tokens) AS tokens
            FROM spend_daily
            WHERE org_id = {org:String} AND day >= {from:Date} AND day <= {to:Date}
              ${params.product === undefined ? "" : "AND product = {product:String}"}
            GROUP BY on_day, group_key
            ORDER BY on_day ASC, spend DESC, group_key ASC`,
    query_params: { org: params.orgId, from: params.fromDay, to: params.toDay, product: params.product ?? "" },
    format: "JSONEachRow",
  });
  const rows = await rs.json<Omit<TrendRow, "day" | "key"> & { on_day: string; group_key: string }>();
  return rows.map(({ on_day, group_key, ...r }) => ({ day: on_day, key: group_key, ...r }));
}

// ---------------------------------------------------------------------------------------------------------
// Active users

export interface ActiveUserCounts {
  /** Distinct users with a request on day `at`. */
  dau: number;
  /** Distinct users with a request in [`weekFrom`, `at`]. */
  wau: number;
  /** Distinct users with a request in [`monthFrom`, `at`]. */
  mau: number;
}

export interface ActiveUsers {
  total: ActiveUserCounts & {
    /** Of `seatHolders`, those with a request in [`monthFrom`, `at`]. */
    seatsActive: number;
  };
  /** Per product present in the month window (a product without requests there is absent). */
  byProduct: Record<string, ActiveUserCounts>;
}

/**
 * Distinct active users (a user with at least one request) of an org on day `at`, in [`weekFrom`, `at`] and in
 * [`monthFrom`, `at`] (UTC days of occurred_at, YYYY-MM-DD, both ends included), overall and per product, from
 * spend_daily: a user-day is active when its rows sum to at least one request (counts are never negative, so that is
 * "some row has requests > 0", whether or not SummingMergeTree has merged). `seatHolders` are the users the caller
 * counts as holding a seat; `seatsActive` is how many of them were active in the month window. Every value is a query
 * parameter.
 */
export async function activeUsers(
  client: ClickHouseClient,
  params: { orgId: string; at: string; weekFrom: string; monthFrom: string; seatHolders: string[] },
): Promise<ActiveUsers> {
  const rs = await client.query({
    query: `SELECT 0 AS is_total, toString(product) AS product_key,
                   uniqExactIf(user_id, day = {at:Date}) AS dau,
                   uniqExactIf(user_id, day >= {week:Date}) AS wau,
                   uniqExact(user_id) AS mau,
                   0 AS seats_active
            FROM spend_daily
            WHERE org_id = {org:String} AND day >= {month:Date} AND day <= {at:Date} AND requests > 0
            GROUP BY product_key
            UNION ALL
            SELECT 1 AS is_total, '' AS product_key,
                   uniqExactIf(user_id, day = {at:Date}) AS dau,
                   uniqExactIf(user_id, day >= {week:Date}) AS wau,
                   uniqExact(user_id) AS mau,
                   uniqExactIf(user_id, has({seats:Array(String)}, user_id)) AS seats_active
            FROM spend_daily
            WHERE org_id = {org:String} AND day >= {month:Date} AND day <= {at:Date} AND requests > 0`,
    query_params: {
      org: params.orgId,
      at: params.at,
      week: params.weekFrom,
      month: params.monthFrom,
      seats: params.seatHolders,
    },
    format: "JSONEachRow",
  });
  type Raw = {
    is_total: number | string;
    product_key: string;
    dau: string;
    wau: string;
    mau: string;
    seats_active: number | string;
  };
  const out: ActiveUsers = { total: { dau: 0, wau: 0, mau: 0, seatsActive: 0 }, byProduct: {} };
  for (const r of await rs.json<Raw>()) {
    const counts = { dau: Number(r.dau), wau: Number(r.wau), mau: Number(r.mau) };
    if (Number(r.is_total) === 1) out.total = { ...counts, seatsActive: Number(r.seats_active) };
    else out.byProduct[r.product_key] = counts;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Spend report CSV rows

export interface ExportRow {
  user_email: string;
  user_id: string;
  account_uuid: string;
  product: string;
  /** Base model id. */
  model: string;
  request_count: string;
  /** input + cache write + cache read tokens. */
  prompt_tokens: string;
  /** output tokens. */
  completion_tokens: string;
  net_spend_usd: string;
  gross_spend_usd: string;
}

/**
 * The spend report (SPEC §8): one row per user × product × base model of the events that occurred in
 * [fromMs, toMs), from usage_events FINAL. user_email and account_uuid are the user's latest non-empty values in the
 * range (by occurred_at, then event_id), the same on each of the user's rows.
 */
export async function exportRows(
  client: ClickHouseClient,
  params: { orgId: string; fromMs: number; toMs: number },
): Promise<ExportRow[]> {
  const rs = await client.query({
    query: `SELECT argMax(line_email, line_email_at) OVER (PARTITION BY user_id) AS row_user_email,
                   user_id,
                   argMax(line_account, line_account_at) OVER (PARTITION BY user_id) AS row_account_uuid,
                   product, model_base, request_count, row_prompt_tokens, completion_tokens, net_spend_usd,
                   gross_spend_usd
            FROM
            (
                SELECT user_id, product, model_base,
                       argMaxIf(user_email, (occurred_at, event_id), user_email != '') AS line_email,
                       maxIf((occurred_at, event_id), user_email != '') AS line_email_at,
                       argMaxIf(account_uuid, (occurred_at, event_id), account_uuid != '') AS line_account,
                       maxIf((occurred_at, event_id), account_uuid != '') AS line_account_at,
                       count() AS request_count, sum(prompt_tokens) AS row_prompt_tokens,
                       sum(output_tokens) AS completion_tokens,
                       sum(net_cost) AS net_spend_usd, sum(gross_cost) AS gross_spend_usd
                FROM usage_events FINAL
                WHERE org_id = {org:String}
                  AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
                  AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
                GROUP BY user_id, product, model_base
            )
            ORDER BY user_id ASC, product ASC, model_base ASC`,
    query_params: { org: params.orgId, from: params.fromMs, to: params.toMs },
    format: "JSONEachRow",
  });
  type Raw = Omit<ExportRow, "user_email" | "account_uuid" | "model" | "prompt_tokens"> & {
    row_user_email: string;
    row_account_uuid: string;
    model_base: string;
    row_prompt_tokens: string;
  };
  return (await rs.json<Raw>()).map((r) => ({
    user_email: r.row_user_email,
    user_id: r.user_id,
    account_uuid: r.row_account_uuid,
    product: r.product,
    model: r.model_base,
    request_count: r.request_count,
    prompt_tokens: r.row_prompt_tokens,
    completion_tokens: r.completion_tokens,
    net_spend_usd: r.net_spend_usd,
    gross_spend_usd: r.gross_spend_usd,
  }));
}

// ---------------------------------------------------------------------------------------------------------
// Reconciliation

export interface SourceTotals {
  requests: string;
  gross: string;
  net: string;
}

export interface ReconciliationUserRow {
  user_id: string;
  raw: SourceTotals;
  rollup: SourceTotals;
}

export interface LateEventRow {
  event_id: string;
  /** `YYYY-MM-DD HH:mm:ss.SSS` (UTC). */
  occurred_at: string;
  /** When the priced event reached usage.priced.v1 (usage_events.priced_at), `YYYY-MM-DD HH:mm:ss.SSS` (UTC). */
  arrived_at: string;
  user_id: string;
  gross: string;
  net: string;
}

/** The three sources of a month's figures, per user, and the late events of that month. */
export interface ReconciliationData {
  /** One row per user present in any source, by user_id; a source without the user reads 0. */
  users: ReconciliationUserRow[];
  /** Events of the month that arrived after it had closed (is_late), oldest arrival first. */
  lateEvents: LateEventRow[];
  /** All the late events of the month (lateEvents lists at most `lateLimit` of them). */
  lateTotals: SourceTotals;
}

/** First instant, exclusive end, and first and last day of a `YYYY-MM` period (UTC). */
function periodBounds(period: string): { fromMs: number; toMs: number; firstDay: string; lastDay: string } {
  const m = /^(\d{4})-(0[1-9]|1[0-2])$/.exec(period);
  if (!m) throw new RangeError(`not a period YYYY-MM: ${JSON.stringify(period)}`);
  const fromMs = Date.UTC(Number(m[1]), Number(m[2]) - 1, 1);
  const toMs = Date.UTC(Number(m[1]), Number(m[2]), 1);
  const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
  return { fromMs, toMs, firstDay: day(fromMs), lastDay: day(toMs - DAY_MS) };
}

/**
 * A month's figures from two independent sources, per user: raw (usage_events FINAL: each event once) and rollup
 * (spend_daily, summed). They agree when every recorded event made it into the rollup exactly once; a difference
 * names the user it is in. The invoice side (the month's invoice and the adjustments naming it) is the API's
 * (services/api/src/invoices.ts), from the invoice documents.
 */
export async function reconciliation(
  client: ClickHouseClient,
  params: { orgId: string; period: string; lateLimit?: number },
): Promise<ReconciliationData> {
  const b = periodBounds(params.period);
  const query_params = {
    org: params.orgId,
    period: params.period,
    from: b.fromMs,
    to: b.toMs,
    firstDay: b.firstDay,
    lastDay: b.lastDay,
  };
  const perUser = await client.query({
    query: `SELECT user_id,
                   sumIf(requests, source = 'raw') AS raw_requests, sumIf(gross, source = 'raw') AS raw_gross,
                   sumIf(net, source = 'raw') AS raw_net,
                   sumIf(requests, source = 'rollup') AS rollup_requests,
                   sumIf(gross, source = 'rollup') AS rollup_gross, sumIf(net, source = 'rollup') AS rollup_net
            FROM
            (
                SELECT 'raw' AS source, user_id, count() AS requests, sum(gross_cost) AS gross, sum(net_cost) AS net
                FROM usage_events FINAL
                WHERE org_id = {org:String}
                  AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
                  AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
                GROUP BY user_id
                UNION ALL
                SELECT 'rollup' AS source, user_id, sum(requests) AS requests, sum(gross_cost) AS gross,
                       sum(net_cost) AS net
                FROM spend_daily
                WHERE org_id = {org:String} AND day >= {firstDay:Date} AND day <= {lastDay:Date}
                GROUP BY user_id
            )
            GROUP BY user_id
            ORDER BY user_id ASC`,
    query_params,
    format: "JSONEachRow",
  });
  type Raw = { user_id: string } & Record<`${"raw" | "rollup"}_${"requests" | "gross" | "net"}`, string>;
  const users = (await perUser.json<Raw>()).map((r) => ({
    user_id: r.user_id,
    raw: { requests: r.raw_requests, gross: r.raw_gross, net: r.raw_net },
    rollup: { requests: r.rollup_requests, gross: r.rollup_gross, net: r.rollup_net },
  }));

  const late = await client.query({
    query: `SELECT event_id, toString(occurred_at) AS occurred, toString(priced_at) AS arrived, user_id,
                   gross_cost AS gross, net_cost AS net, count() OVER () AS late_count,
                   sum(gross_cost) OVER () AS late_gross, sum(net_cost) OVER () AS late_net
            FROM usage_events FINAL
            WHERE org_id = {org:String} AND is_late
              AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
              AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
            ORDER BY priced_at ASC, event_id ASC
            LIMIT {limit:UInt32}`,
    query_params: { ...query_params, limit: params.lateLimit ?? 10_000 },
    format: "JSONEachRow",
  });
  const lateRows = await late.json<{
    event_id: string;
    occurred: string;
    arrived: string;
    user_id: string;
    gross: string;
    net: string;
    late_count: string;
    late_gross: string;
    late_net: string;
  }>();
  return {
    users,
    lateEvents: lateRows.map((r) => ({
      event_id: r.event_id,
      occurred_at: r.occurred,
      arrived_at: r.arrived,
      user_id: r.user_id,
      gross: r.gross,
      net: r.net,
    })),
    lateTotals: {
      requests: lateRows[0]?.late_count ?? "0",
      gross: lateRows[0]?.late_gross ?? "0",
      net: lateRows[0]?.late_net ?? "0",
    },
  };
}
