/**
 * Analytics and finance routes (SPEC §8). Money is an exact canonical decimal string everywhere ("12.5", "0");
 * `spend` is net (after the org's discount: what it pays), `gross_spend`/`gross` list price. Counts are JSON
 * integers. Every day is a UTC calendar day, every period a UTC calendar month.
 *
 *   GET /v1/orgs/:org/top-users?window=mtd|qtd|ytd&at=YYYY-MM-DD&by=spend|tokens&limit=1..100
 *   GET /v1/orgs/:org/trends?from=YYYY-MM-DD&to=YYYY-MM-DD&group_by=product|model|context_window|region|group
 *                            &product=chat|claude_code|cowork
 *   GET /v1/orgs/:org/export.csv?range=mtd|last_month|last_90_days   or   ?from=YYYY-MM-DD&to=YYYY-MM-DD
 *
 * Trends (and spend, server.ts) take `product=` (only that product's requests; 400 invalid_product for another value)
 * and `group_by=group`: one row per policy group (SPEC §5 `groups`), folded here from per-user rows with exact
 * decimal addition. A user in several groups counts in each of them (the answer says so: `overlapping: true` and a
 * `note`), so group rows may add up to more than the org's total; users in no group are under the key "(none)" (a
 * policy group literally named "(none)" shares that row).
 *
 * Top users and trends read the spend_daily rollup; the CSV and the reconciliation's raw figures read usage_events
 * FINAL; the invoice figures read the invoice_lines view (packages/clickhouse/src/analytics.ts says how each stays
 * exact). Errors are `{ error: { code, message } }`, the code naming the rule that was broken.
 */
import {
  type ClickHouseClient,
  dailyTrends,
  type ExportRow,
  exportRows,
  TOP_USERS_BY,
  type TopUsersBy,
  TREND_GROUPS,
  type TrendGroup,
  type TrendRow,
  topUsers,
} from "@usage/clickhouse";
import { PRODUCTS, type Product } from "@usage/events";
import { addMoney, decimalPlaces, parseScaled } from "@usage/money";
import { dayOf, dayStart, monthStart, parseDay, WINDOWS, type Window, windowAsOf } from "@usage/periods";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";

/** The policy groups `group_by=group` folds users into: `{ name: { members } }` (SPEC §5). */
export type PolicyGroups = Readonly<Record<string, { readonly members: readonly string[] }>>;

export interface AnalyticsRouteDeps {
  clickhouse: ClickHouseClient;
  /** The org's policy groups, for trends with group_by=group; no groups (everyone under "(none)") when not given. */
  groups?: (orgId: string) => PolicyGroups;
  /** Checks the bearer key against the `:org` route parameter; throws (as an API error) when it may not. */
  authorize: (request: FastifyRequest) => { orgId: string };
  now: () => number;
}

const DAY = 86_400_000;

/** Trends: a request spans at most this many days, both ends included. */
export const TRENDS_MAX_DAYS = 31;
/** Trends: `from` may be at most this many days before today (today − 365 days is still allowed). */
export const TRENDS_MAX_AGE_DAYS = 365;
/** Trends: no trend starts before this day. */
export const TRENDS_EARLIEST_DAY = "2026-01-01";
/** Trends: the span when `from` is not given: the 7 days ending on `to`. */
const TRENDS_DEFAULT_DAYS = 7;
/** Export: a custom range's `from` may be at most this many days before today (today − 90 days is still allowed). */
export const EXPORT_MAX_AGE_DAYS = 90;
export const EXPORT_RANGES = ["mtd", "last_month", "last_90_days"] as const;
export type ExportRange = (typeof EXPORT_RANGES)[number];
export const CSV_HEADER =
  "user_email,user_id,account_uuid,product,model,request_count,prompt_tokens,completion_tokens,net_spend_usd,gross_spend_usd";
const CSV_COLUMNS: readonly (keyof ExportRow)[] = CSV_HEADER.split(",") as (keyof ExportRow)[];
/** Reconciliation lists at most this many late events (late_totals always covers all of them). */

/** The key of the row of users in no policy group (group_by=group). */
export const NO_GROUP = "(none)";
/** What an answer grouped by policy group says about overlapping groups. */
export const GROUP_NOTE =
  "a user in several groups counts in each group, so the group rows may add up to more than the total";

type Problem = { ok: false; status: number; code: string; message: string };
type Checked<T> = { ok: true; value: T } | Problem;
const problem = (code: string, message: string, status = 400): Problem => ({ ok: false, status, code, message });

/** Registers the routes on any fastify instance, whatever its logger type (buildApi's uses pino's). */
export function registerAnalyticsRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: AnalyticsRouteDeps,
): void {
  app.get("/v1/orgs/:org/top-users", async (request, reply) => {
    const { orgId } = deps.authorize(request);
    const q = queryOf(request);
    const window = (q.window ?? "mtd") as Window;
    if (!WINDOWS.includes(window))
      return sendError(reply, problem("invalid_window", "window must be one of mtd, qtd, ytd"));
    const at = q.at === undefined ? deps.now() : parseDay(q.at);
    if (at === undefined) return sendError(reply, problem("invalid_at", "at must be a date YYYY-MM-DD"));
    const by = (q.by ?? "spend") as TopUsersBy;
    if (!Object.hasOwn(TOP_USERS_BY, by)) return sendError(reply, problem("invalid_by", "by must be spend or tokens"));
    const limit = q.limit === undefined ? 10 : /^\d{1,3}$/.test(q.limit) ? Number(q.limit) : 0;
    if (limit < 1 || limit > 100) {
      return sendError(reply, problem("invalid_limit", "limit must be a whole number from 1 to 100"));
    }
    const range = windowAsOf(window, at);
    const rows = await topUsers(deps.clickhouse, { orgId, from: range.from, to: range.to, by, limit });
    return reply.send({
      org_id: orgId,
      window,
      from: range.from,
      to: range.to,
      by,
      users: rows.map((r, i) => ({
        rank: i + 1,
        user_id: r.user_id,
        user_email: r.user_email,
        spend: money(r.spend),
        gross_spend: money(r.gross_spend),
        requests: Number(r.requests),
        tokens: Number(r.tokens),
      })),
    });
  });

  app.get("/v1/orgs/:org/trends", async (request, reply) => {
    const { orgId } = deps.authorize(request);
    const q = queryOf(request);
    const groupBy = (q.group_by ?? "product") as TrendGroup | "group";
    if (groupBy !== "group" && !Object.hasOwn(TREND_GROUPS, groupBy)) {
      return sendError(
        reply,
        problem("invalid_group_by", `group_by must be one of ${[...Object.keys(TREND_GROUPS), "group"].join(", ")}`),
      );
    }
    const product = productFilter(q.product);
    if (!product.ok) return sendError(reply, product);
    const checked = trendsWindow(q.from, q.to, deps.now());
    if (!checked.ok) return sendError(reply, checked);
    const { from, to } = checked.value;
    const byGroup = groupBy === "group";
    const fetched = await dailyTrends(deps.clickhouse, {
      orgId,
      fromDay: from,
      toDay: to,
      groupBy: byGroup ? "user" : groupBy,
      product: product.value,
    });
    let rows = fetched;
    if (byGroup) {
      // Per user and day from ClickHouse, folded into groups per day here (exact: addMoney and bigint counts).
      const groups = deps.groups?.(orgId) ?? {};
      const perDay = new Map<string, TrendRow[]>();
      for (const r of fetched) {
        const list = perDay.get(r.day);
        if (list) list.push(r);
        else perDay.set(r.day, [r]);
      }
      rows = [];
      for (const [day, dayRows] of perDay) {
        const folded = foldByGroup(dayRows, groups, ["spend", "gross_spend"], ["requests", "tokens"], false);
        for (const g of folded) rows.push({ ...g, day });
      }
    }
    const days = new Map<
      string,
      { key: string; spend: string; gross_spend: string; requests: number; tokens: number }[]
    >();
    // Every day of the window is listed, a day without spend with no groups, so a chart needs no gap filling.
    for (let d = parseDay(from)!; d <= parseDay(to)!; d += DAY) days.set(dayOf(d), []);
    for (const r of rows) {
      days.get(r.day)?.push({
        key: r.key,
        spend: money(r.spend),
        gross_spend: money(r.gross_spend),
        requests: Number(r.requests),
        tokens: Number(r.tokens),
      });
    }
    return reply.send({
      org_id: orgId,
      from,
      to,
      group_by: groupBy,
      ...(product.value === undefined ? {} : { product: product.value }),
      ...(byGroup ? { overlapping: true, note: GROUP_NOTE } : {}),
      days: [...days].map(([day, groups]) => ({ day, groups })),
    });
  });

  /*
   * The spend report CSV (SPEC §8): RFC 4180 (CRLF line ends; a field holding a comma, quote, CR or LF is quoted,
   * its quotes doubled), one row per user × product × base model, sorted by user_id, product, model. Values are
   * written exactly as stored: a spreadsheet user opening it should import as text, not evaluate it.
   *
   * Ranges are UTC calendar days, both ends included, up to the end of the last day:
   *   mtd           the first day of the current month through today (the default)
   *   last_month    the whole previous calendar month
   *   last_90_days  the 90 days ending today (today and the 89 days before it)
   *   from=&to=     a custom range; `from` at most 90 days before today, `to` (default today) not before `from`
   */
  app.get("/v1/orgs/:org/export.csv", async (request, reply) => {
    const { orgId } = deps.authorize(request);
    const checked = exportRange(queryOf(request), deps.now());
    if (!checked.ok) return sendError(reply, checked);
    const { fromMs, toExclusiveMs } = checked.value;
    const rows = await exportRows(deps.clickhouse, { orgId, fromMs, toMs: toExclusiveMs });
    const lines = [CSV_HEADER];
    for (const r of rows) {
      lines.push(
        CSV_COLUMNS.map((c) =>
          c === "net_spend_usd" || c === "gross_spend_usd"
            ? csvField(money(r[c]))
            : TEXT_COLUMNS.has(c)
              ? csvField(neutralizeFormula(r[c]))
              : csvField(r[c]),
        ).join(","),
      );
    }
    const filename = `usage-${orgId.replace(/[^A-Za-z0-9._-]/g, "_")}-${dayOf(fromMs)}-to-${dayOf(toExclusiveMs - DAY)}.csv`;
    return reply
      .header("content-type", "text/csv; charset=utf-8")
      .header("content-disposition", `attachment; filename="${filename}"`)
      .header("cache-control", "no-store")
      .send(`${lines.join("\r\n")}\r\n`);
  });
}

/**
 * The trends window (SPEC §8), checked rule by rule; the error code names the rule. `to` defaults to today (UTC) and
 * `from` to the 7 days ending on `to`. "Within the last 365 days" counts back from today: today − 365 is allowed.
 */
export function trendsWindow(
  fromText: string | undefined,
  toText: string | undefined,
  now: number,
): Checked<{ from: string; to: string }> {
  const today = dayStart(now);
  const to = toText === undefined ? today : parseDay(toText);
  if (to === undefined) return problem("invalid_range", "to must be a real date YYYY-MM-DD");
  const from = fromText === undefined ? to - (TRENDS_DEFAULT_DAYS - 1) * DAY : parseDay(fromText);
  if (from === undefined) return problem("invalid_range", "from must be a real date YYYY-MM-DD");
  if (from > to) return problem("invalid_range", `from (${dayOf(from)}) must not be after to (${dayOf(to)})`);
  const oldest = today - TRENDS_MAX_AGE_DAYS * DAY;
  if (from < oldest) {
    return problem(
      "trends_start_too_old",
      `a trend must start within the last ${TRENDS_MAX_AGE_DAYS} days: from must be on or after ${dayOf(oldest)}`,
    );
  }
  if (from < parseDay(TRENDS_EARLIEST_DAY)!) {
    return problem("trends_start_before_2026", `a trend cannot start before ${TRENDS_EARLIEST_DAY}`);
  }
  const days = (to - from) / DAY + 1;
  if (days > TRENDS_MAX_DAYS) {
    return problem(
      "trends_window_too_wide",
      `a trend spans at most ${TRENDS_MAX_DAYS} days, from and to included; this one spans ${days}`,
    );
  }
  return { ok: true, value: { from: dayOf(from), to: dayOf(to) } };
}

/** The `product=` filter of spend and trends: absent (every product) or one of PRODUCTS. */
export function productFilter(value: string | undefined): Checked<Product | undefined> {
  if (value === undefined) return { ok: true, value: undefined };
  if (!(PRODUCTS as readonly string[]).includes(value)) {
    return problem("invalid_product", `product must be one of ${PRODUCTS.join(", ")}`);
  }
  return { ok: true, value: value as Product };
}

/**
 * Folds per-user rows (`key` = user id) into one row per policy group: a user's figures count in every group that
 * lists the user, and in NO_GROUP when none does. Money fields are added exactly (addMoney), count fields (integer
 * strings) as bigints. With `everyGroup`, every policy group has a row, zeros when its members have none; NO_GROUP has
 * a row only when some user is in no group. Rows come out by money field [0] descending, then key.
 */
export function foldByGroup<R extends { key: string }>(
  rows: readonly R[],
  groups: PolicyGroups,
  moneyFields: readonly (keyof R & string)[],
  countFields: readonly (keyof R & string)[],
  everyGroup: boolean,
): R[] {
  const memberOf = new Map<string, string[]>();
  for (const [name, g] of Object.entries(groups)) {
    for (const member of new Set(g.members)) {
      const list = memberOf.get(member);
      if (list) list.push(name);
      else memberOf.set(member, [name]);
    }
  }
  const out = new Map<string, Record<string, string>>();
  const zero = (key: string) => {
    const row: Record<string, string> = { key };
    for (const f of [...moneyFields, ...countFields]) row[f] = "0";
    return row;
  };
  if (everyGroup) for (const name of Object.keys(groups)) out.set(name, zero(name));
  for (const r of rows) {
    const rec = r as unknown as Record<string, string>;
    for (const name of memberOf.get(r.key) ?? [NO_GROUP]) {
      let acc = out.get(name);
      if (!acc) {
        acc = zero(name);
        out.set(name, acc);
      }
      for (const f of moneyFields) acc[f] = addMoney(acc[f]!, String(rec[f]));
      for (const f of countFields) acc[f] = (BigInt(acc[f]!) + BigInt(String(rec[f]))).toString();
    }
  }
  const first = moneyFields[0];
  return [...out.values()]
    .sort(
      (a, b) => (first ? compareDecimal(b[first]!, a[first]!) : 0) || (a.key! < b.key! ? -1 : a.key! > b.key! ? 1 : 0),
    )
    .map((r) => r as unknown as R);
}

/** The sign of a − b for two decimal strings, exactly. */
function compareDecimal(a: string, b: string): number {
  const scale = Math.max(decimalPlaces(a), decimalPlaces(b));
  const d = parseScaled(a, scale) - parseScaled(b, scale);
  return d > 0n ? 1 : d < 0n ? -1 : 0;
}

/** The export's range as [fromMs, toExclusiveMs) — see the comment on the export route for what each means. */
export function exportRange(
  q: Record<string, string | undefined>,
  now: number,
): Checked<{ fromMs: number; toExclusiveMs: number }> {
  const today = dayStart(now);
  const custom = q.from !== undefined || q.to !== undefined;
  if (custom && q.range !== undefined) {
    return problem("export_range_conflict", "give either range or from/to, not both");
  }
  if (!custom) {
    const range = (q.range ?? "mtd") as ExportRange;
    switch (range) {
      case "mtd":
        return { ok: true, value: { fromMs: monthStart(today), toExclusiveMs: today + DAY } };
      case "last_month": {
        const thisMonth = monthStart(today);
        return { ok: true, value: { fromMs: monthStart(thisMonth - DAY), toExclusiveMs: thisMonth } };
      }
      case "last_90_days":
        return { ok: true, value: { fromMs: today - (EXPORT_MAX_AGE_DAYS - 1) * DAY, toExclusiveMs: today + DAY } };
      default:
        return problem("invalid_export_range", `range must be one of ${EXPORT_RANGES.join(", ")}`);
    }
  }
  if (q.from === undefined) return problem("invalid_range", "from is required with to (from=YYYY-MM-DD)");
  const from = parseDay(q.from);
  if (from === undefined) return problem("invalid_range", "from must be a real date YYYY-MM-DD");
  const to = q.to === undefined ? today : parseDay(q.to);
  if (to === undefined) return problem("invalid_range", "to must be a real date YYYY-MM-DD");
  if (to < from) return problem("invalid_range", `to (${dayOf(to)}) must not be before from (${dayOf(from)})`);
  const oldest = today - EXPORT_MAX_AGE_DAYS * DAY;
  if (from < oldest) {
    return problem(
      "export_start_too_old",
      `a custom range reaches at most ${EXPORT_MAX_AGE_DAYS} days back: from must be on or after ${dayOf(oldest)}`,
    );
  }
  return { ok: true, value: { fromMs: from, toExclusiveMs: to + DAY } };
}

/** Columns whose text comes from usage events (surfaces), not from the pipeline's own figures. */
const TEXT_COLUMNS = new Set(["user_email", "user_id", "account_uuid", "product", "model"]);

/**
 * A text cell a spreadsheet would run as a formula (it starts with =, +, -, @, a tab or a CR: CSV injection) gets a
 * leading apostrophe, which spreadsheets show as text; the figures columns are the pipeline's own and untouched.
 */
export function neutralizeFormula(value: string): string {
  return /^[=+\-@\t\r]/.test(value) ? `'${value}` : value;
}

/** One RFC 4180 field: quoted when it holds a comma, a quote, CR or LF; quotes doubled. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replaceAll('"', '""')}"` : value;
}

/** The canonical form of a decimal string from ClickHouse (no trailing zeros, "0" for zero). */
function money(value: string): string {
  return addMoney(value, "0");
}

/** Query parameters as strings; a repeated parameter arrives as its values joined, which no rule accepts. */
function queryOf(request: FastifyRequest): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries((request.query ?? {}) as Record<string, unknown>)) {
    out[k] = v === undefined ? undefined : Array.isArray(v) ? v.join(",") : String(v);
  }
  return out;
}

function sendError(reply: FastifyReply, p: Problem) {
  return reply.code(p.status).send({ error: { code: p.code, message: p.message } });
}
