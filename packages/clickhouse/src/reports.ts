/**
 * The Claude Admin API's usage and cost report reads (SPEC §8, turn 2), over usage_events FINAL (one row per
 * event_id, schemas/clickhouse/001, so a duplicate written twice counts once, merged or not).
 *
 * Named queries with typed parameters only; a grouping expression comes from a fixed map below, never from input.
 * Buckets are `intDiv(occurred_at in ms, width) × width`: UTC minutes, hours or days, aligned on the Unix epoch, so a
 * caller's bucket starts must be multiples of the width. Counts come back as UInt64 strings and money as Decimal
 * strings (see client.ts): nothing here is ever a floating-point number.
 */
import type { ClickHouseClient } from "@clickhouse/client";
import { TREND_GROUPS } from "./analytics.js";

// ---------------------------------------------------------------------------------------------------------
// Usage report

/** What the usage report groups by: the value each result shows. context_window and region as trends label them. */
export const USAGE_REPORT_GROUPS = {
  model: "toString(model_base)",
  product: "toString(product)",
  user_id: "user_id",
  context_window: TREND_GROUPS.context_window,
  region: TREND_GROUPS.region,
} as const;
export type UsageReportGroup = keyof typeof USAGE_REPORT_GROUPS;

export interface UsageReportRow {
  /** The bucket's first instant, ms since the epoch (a multiple of the width). */
  bucket_ms: number;
  /** The value of each grouped field. */
  group: Partial<Record<UsageReportGroup, string>>;
  uncached_input_tokens: string;
  cache_creation_input_tokens: string;
  cache_read_input_tokens: string;
  output_tokens: string;
  requests: string;
}

/**
 * Token sums and request counts of an org's events in [fromMs, toMs), per bucket of `widthMs` and per combination
 * of the grouped fields present; buckets and combinations without events are absent. Ordered by bucket, then by the
 * grouped fields in the order given.
 */
export async function usageReport(
  client: ClickHouseClient,
  params: { orgId: string; fromMs: number; toMs: number; widthMs: number; groupBy: readonly UsageReportGroup[] },
): Promise<UsageReportRow[]> {
  const groups = params.groupBy.map((g) => ({ name: g, alias: `g_${g}`, sql: USAGE_REPORT_GROUPS[g] }));
  const select = groups.map((g) => `, ${g.sql} AS ${g.alias}`).join("");
  const groupBy = groups.map((g) => `, ${g.alias}`).join("");
  const orderBy = groups.map((g) => `, ${g.alias} ASC`).join("");
  const rs = await client.query({
    query: `SELECT intDiv(toUnixTimestamp64Milli(occurred_at), {width:Int64}) * {width:Int64} AS bucket${select},
                   sum(input_tokens) AS uncached_input, sum(cache_write_tokens) AS cache_creation,
                   sum(cache_read_tokens) AS cache_read, sum(output_tokens) AS output, count() AS request_count
            FROM usage_events FINAL
            WHERE org_id = {org:String}
              AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
              AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
            GROUP BY bucket${groupBy}
            ORDER BY bucket ASC${orderBy}`,
    query_params: { org: params.orgId, from: params.fromMs, to: params.toMs, width: params.widthMs },
    format: "JSONEachRow",
  });
  const rows = await rs.json<Record<string, string>>();
  return rows.map((r) => ({
    bucket_ms: Number(r.bucket),
    group: Object.fromEntries(groups.map((g) => [g.name, String(r[g.alias])])),
    uncached_input_tokens: r.uncached_input!,
    cache_creation_input_tokens: r.cache_creation!,
    cache_read_input_tokens: r.cache_read!,
    output_tokens: r.output!,
    requests: r.request_count!,
  }));
}

// ---------------------------------------------------------------------------------------------------------
// Cost report

/**
 * What the cost report groups by. `description` names the model and the context window (the token type is the
 * route's own split), so it groups by both columns; the route composes the text.
 */
export const COST_REPORT_GROUPS = {
  model: ["model_base"],
  product: ["product"],
  user_id: ["user_id"],
  description: ["model_base", "long_context"],
} as const;
export type CostReportGroup = keyof typeof COST_REPORT_GROUPS;

const COST_COLUMN_SQL = {
  model_base: "toString(model_base)",
  product: "toString(product)",
  user_id: "user_id",
  long_context: "toUInt8(long_context)",
} as const;
type CostColumn = keyof typeof COST_COLUMN_SQL;

export interface CostReportRow {
  /** The bucket's first instant, ms since the epoch (a multiple of the width). */
  bucket_ms: number;
  /** The grouped columns: model_base, product, user_id and long_context, as the group_by asks for them. */
  model_base?: string;
  product?: string;
  user_id?: string;
  long_context?: boolean;
  /** The org discount the events were recorded with (usage_events.discount_pct), a decimal string. */
  discount_pct: string;
  /** Gross (list price) sums of the four per-kind cost columns, exact decimal strings. */
  input_cost: string;
  output_cost: string;
  cache_write_cost: string;
  cache_read_cost: string;
}

/**
 * Gross sums of the four per-kind cost columns of an org's events in [fromMs, toMs), per bucket of `widthMs`, per
 * combination of the grouped columns and per discount_pct (so the caller can apply each discount to its own sums:
 * the net of a sum is the sum of the nets, exactly). Ordered by bucket, then the grouped columns, then discount.
 */
export async function costReport(
  client: ClickHouseClient,
  params: { orgId: string; fromMs: number; toMs: number; widthMs: number; groupBy: readonly CostReportGroup[] },
): Promise<CostReportRow[]> {
  const columns = [...new Set(params.groupBy.flatMap((g) => COST_REPORT_GROUPS[g]))] as CostColumn[];
  const select = columns.map((c) => `, ${COST_COLUMN_SQL[c]} AS g_${c}`).join("");
  const groupBy = columns.map((c) => `, g_${c}`).join("");
  const orderBy = columns.map((c) => `, g_${c} ASC`).join("");
  const rs = await client.query({
    query: `SELECT intDiv(toUnixTimestamp64Milli(occurred_at), {width:Int64}) * {width:Int64} AS bucket${select},
                   toString(discount_pct) AS pct,
                   sum(input_cost) AS input_sum, sum(output_cost) AS output_sum,
                   sum(cache_write_cost) AS cache_write_sum, sum(cache_read_cost) AS cache_read_sum
            FROM usage_events FINAL
            WHERE org_id = {org:String}
              AND occurred_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
              AND occurred_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
            GROUP BY bucket${groupBy}, pct
            ORDER BY bucket ASC${orderBy}, pct ASC`,
    query_params: { org: params.orgId, from: params.fromMs, to: params.toMs, width: params.widthMs },
    format: "JSONEachRow",
  });
  const rows = await rs.json<Record<string, string | number>>();
  return rows.map((r) => {
    const row: CostReportRow = {
      bucket_ms: Number(r.bucket),
      discount_pct: String(r.pct),
      input_cost: String(r.input_sum),
      output_cost: String(r.output_sum),
      cache_write_cost: String(r.cache_write_sum),
      cache_read_cost: String(r.cache_read_sum),
    };
    for (const c of columns) {
      if (c === "long_context") row.long_context = Number(r.g_long_context) === 1;
      else row[c] = String(r[`g_${c}`]);
    }
    return row;
  });
}
