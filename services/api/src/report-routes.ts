/**
 * The Claude Admin API's usage and cost report shapes (SPEC §8, turn 2):
 *
 *   GET /v1/orgs/:org/usage_report/messages?starting_at=&ending_at=&bucket_width=1m|1h|1d
 *       &group_by[]=model|product|user_id|context_window|region&limit=&page=
 *   GET /v1/orgs/:org/cost_report?starting_at=&ending_at=&group_by[]=model|product|user_id|description&limit=&page=
 *
 * Both read usage_events FINAL (priced, each event_id once) through packages/clickhouse/src/reports.ts. The rules:
 *
 * - Buckets. `starting_at` (required) and `ending_at` (optional, exclusive) are RFC 3339 times with `Z` or an offset,
 *   between 1970 and 2200. Buckets are UTC minutes, hours or days (`bucket_width`, default 1d; the cost report is
 *   daily only: `bucket_width` may be absent or `1d`). As in the Admin API, `starting_at` is truncated to the start
 *   of its bucket; every bucket is whole, so the last one is the bucket holding the instant just before `ending_at`
 *   (a bucket is listed when it starts before `ending_at`) and `ending_at` ≤ `starting_at` is `invalid_range`.
 *   Without `ending_at` the buckets run to the one holding now (included, still filling). Each bucket's figures are
 *   the events with starting_at ≤ occurred_at < ending_at of that bucket.
 * - Empty buckets are listed, with `results: []`, as the Admin API does: a page holds every bucket of its span, in
 *   order, so a chart needs no gap filling. A starting_at after the current bucket without ending_at gives no buckets.
 * - Results. One per combination of the grouped fields present in the bucket (no group_by: one result with the
 *   bucket's totals), ordered by the grouped fields. Every result carries every group field of its report, `null`
 *   when not grouped by. `model` is the base model id the event was priced as (dated ids fold into it, as in trends,
 *   the CSV and invoices); `context_window` is `standard` or `long` and an event without region is `unknown`, the
 *   labels of trends. Token counts and `requests` are JSON integers (as every count of this API: exact up to 2^53 − 1
 *   in one result). `uncached_input_tokens` is the events' input_tokens (cache writes and reads are counted apart).
 *   `group_by[]` may repeat (`group_by[]=model&group_by[]=region`); `group_by=` is taken as the same; a value given
 *   twice counts once.
 * - Cost results. For each group combination present in the bucket, one result per token type, always all four
 *   (`uncached_input_tokens`, `output_tokens`, `cache_creation_input_tokens`, `cache_read_input_tokens`, an amount
 *   of "0" included), `cost_type: "tokens"`, `currency: "USD"`. `amount` is a canonical decimal string in US cents,
 *   exact, and NET: what the org pays after its discount — per token type, the event's gross cost column
 *   (input_cost, output_cost, cache_write_cost, cache_read_cost) × (100 − discount_pct) / 100 with the discount the
 *   event was recorded with (usage_events.discount_pct), computed with the aggregator's own `netCost`; the event's
 *   four gross columns sum to its gross cost and the discount is linear, so the four nets sum exactly to its
 *   net_cost (nothing rounds anywhere), then × 100 for cents. `model`, `product`, `user_id` are null when not grouped
 *   by. `description` (group_by[]=description) is "<model> Usage - <token kind>[, Long Context]", e.g.
 *   "claude-sonnet-4-5 Usage - Input Tokens, Cache Write, Long Context"; grouping by it also fills `model`, as the
 *   Admin API does.
 * - Limits (buckets per page): 1d default 7, max 31; 1h default 24, max 168; 1m default 60, max 1440 (the cost report
 *   1d: 7 and 31). `limit` is a whole number from 1 to the max of the width.
 * - Pages. A page holds at most `limit` buckets; `has_more` tells whether buckets follow and `next_page` (else null)
 *   is an opaque token to send back as `page=` WITH THE SAME QUERY: base64url of a JSON
 *   `{ v, k: report, o: org, b: first bucket, s: next bucket, e: ending_at or null, w: width, g: group_by, l: limit }`,
 *   "." and a base64url HMAC-SHA256 of it under a fixed key. The MAC is an integrity check, not a secret (the API's
 *   instances share no key through this module, and a token grants nothing: it names buckets the caller may ask for
 *   directly); together with a strict format check and the match against the request, a token we did not issue —
 *   garbage, edited, for another org, report or query — is refused with 400 `invalid_page`.
 * - Errors: 400 with `invalid_starting_at`, `invalid_ending_at`, `invalid_range`, `invalid_bucket_width`,
 *   `invalid_limit`, `invalid_group_by`, `invalid_page`; a parameter given twice is invalid. Roles: "read" (owner,
 *   analyst, operator; access.ts).
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import {
  type ClickHouseClient,
  COST_REPORT_GROUPS,
  type CostReportGroup,
  costReport,
  USAGE_REPORT_GROUPS,
  type UsageReportGroup,
  usageReport,
} from "@usage/clickhouse";
import { addMoney, formatMoney, Money, netCost } from "@usage/money";
import type {
  FastifyBaseLogger,
  FastifyInstance,
  FastifyRequest,
  RawReplyDefaultExpression,
  RawRequestDefaultExpression,
  RawServerDefault,
} from "fastify";
import { ApiError } from "./server.js";

export interface ReportRouteDeps {
  clickhouse: ClickHouseClient;
  /** Checks the bearer key against the `:org` route parameter; throws (as an API error) when it may not. */
  authorize: (request: FastifyRequest) => { orgId: string };
  now: () => number;
}

const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

/** Bucket widths and their page limits, as the Admin API's. */
export const BUCKET_WIDTHS = {
  "1m": { ms: MINUTE, defaultLimit: 60, maxLimit: 1440 },
  "1h": { ms: HOUR, defaultLimit: 24, maxLimit: 168 },
  "1d": { ms: DAY, defaultLimit: 7, maxLimit: 31 },
} as const;
export type BucketWidth = keyof typeof BUCKET_WIDTHS;

/** Times accepted: 1970-01-01 to 2200-01-01 (exclusive), well within ClickHouse's DateTime64. */
const EARLIEST_MS = 0;
const LATEST_MS = Date.UTC(2200, 0, 1);
const MAX_PAGE_TOKEN = 2048;
/** The page tokens' MAC key: an integrity check (see the header), not a secret. */
const PAGE_MAC_KEY = "usage-metering/report-page/v1";

const USAGE_GROUP_NAMES = Object.keys(USAGE_REPORT_GROUPS) as UsageReportGroup[];
const COST_GROUP_NAMES = Object.keys(COST_REPORT_GROUPS) as CostReportGroup[];

/** The four token types of the cost report, in the order each group's results list them. */
const TOKEN_TYPES = [
  { type: "uncached_input_tokens", column: "input_cost", label: "Input Tokens" },
  { type: "output_tokens", column: "output_cost", label: "Output Tokens" },
  { type: "cache_creation_input_tokens", column: "cache_write_cost", label: "Input Tokens, Cache Write" },
  { type: "cache_read_input_tokens", column: "cache_read_cost", label: "Input Tokens, Cache Read" },
] as const;

type Query = Record<string, unknown>;

/** What one page of a report covers, after every parameter was checked. */
interface ReportWindow {
  width: BucketWidth;
  widthMs: number;
  /** The first bucket of the request (starting_at truncated). */
  firstMs: number;
  /** This page's first bucket. */
  pageMs: number;
  /** This page's end (exclusive): at most `limit` buckets after pageMs, never past endMs. */
  pageEndMs: number;
  /** The request's end (exclusive, a bucket boundary). */
  endMs: number;
  /** ending_at as given (ceil to the ms), or null when absent: what page tokens carry. */
  endingAt: number | null;
  limit: number;
  groupBy: string[];
}

interface PageToken {
  v: 1;
  k: "usage" | "cost";
  o: string;
  b: number;
  s: number;
  e: number | null;
  w: BucketWidth;
  g: string[];
  l: number;
}

export function registerReportRoutes<L extends FastifyBaseLogger>(
  app: FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, L>,
  deps: ReportRouteDeps,
): void {
  app.get("/v1/orgs/:org/usage_report/messages", async (request) => {
    const { orgId } = deps.authorize(request);
    const q = (request.query ?? {}) as Query;
    const width = (single(q, "bucket_width", "invalid_bucket_width") ?? "1d") as BucketWidth;
    if (!Object.hasOwn(BUCKET_WIDTHS, width)) {
      throw new ApiError(400, "invalid_bucket_width", "bucket_width must be one of 1m, 1h, 1d");
    }
    const groupBy = groupByOf(q, USAGE_GROUP_NAMES) as UsageReportGroup[];
    const w = reportWindow(q, "usage", orgId, width, groupBy, deps.now());
    const rows =
      w.pageEndMs > w.pageMs
        ? await usageReport(deps.clickhouse, {
            orgId,
            fromMs: w.pageMs,
            toMs: w.pageEndMs,
            widthMs: w.widthMs,
            groupBy,
          })
        : [];
    const buckets = bucketsOf(w);
    for (const r of rows) {
      const result: Record<string, number | string | null> = {
        uncached_input_tokens: Number(r.uncached_input_tokens),
        cache_creation_input_tokens: Number(r.cache_creation_input_tokens),
        cache_read_input_tokens: Number(r.cache_read_input_tokens),
        output_tokens: Number(r.output_tokens),
        requests: Number(r.requests),
      };
      for (const g of USAGE_GROUP_NAMES) result[g] = r.group[g] ?? null;
      buckets.get(r.bucket_ms)?.results.push(result);
    }
    return page(buckets, w, "usage", orgId);
  });

  app.get("/v1/orgs/:org/cost_report", async (request) => {
    const { orgId } = deps.authorize(request);
    const q = (request.query ?? {}) as Query;
    const width = single(q, "bucket_width", "invalid_bucket_width") ?? "1d";
    if (width !== "1d") throw new ApiError(400, "invalid_bucket_width", "the cost report's bucket_width is 1d only");
    const groupBy = groupByOf(q, COST_GROUP_NAMES) as CostReportGroup[];
    const w = reportWindow(q, "cost", orgId, "1d", groupBy, deps.now());
    const rows =
      w.pageEndMs > w.pageMs
        ? await costReport(deps.clickhouse, {
            orgId,
            fromMs: w.pageMs,
            toMs: w.pageEndMs,
            widthMs: w.widthMs,
            groupBy,
          })
        : [];
    const byDescription = groupBy.includes("description");
    // Per bucket and group combination: the net of each token type, summed over the discounts the events carried.
    const groups = new Map<string, { bucketMs: number; row: (typeof rows)[number]; net: string[] }>();
    for (const r of rows) {
      const key = JSON.stringify([r.bucket_ms, r.model_base, r.product, r.user_id, r.long_context]);
      let g = groups.get(key);
      if (!g) {
        g = { bucketMs: r.bucket_ms, row: r, net: TOKEN_TYPES.map(() => "0") };
        groups.set(key, g);
      }
      TOKEN_TYPES.forEach((t, i) => {
        g.net[i] = addMoney(g.net[i]!, netCost(canonical(r[t.column]), canonical(r.discount_pct)));
      });
    }
    const buckets = bucketsOf(w);
    for (const { bucketMs, row, net } of groups.values()) {
      const results = buckets.get(bucketMs)?.results;
      if (!results) continue;
      TOKEN_TYPES.forEach((t, i) => {
        results.push({
          amount: formatMoney(new Money(net[i]!).times(100)),
          currency: "USD",
          cost_type: "tokens",
          token_type: t.type,
          model: row.model_base ?? null,
          product: row.product ?? null,
          user_id: row.user_id ?? null,
          description: byDescription
            ? `${row.model_base} Usage - ${t.label}${row.long_context ? ", Long Context" : ""}`
            : null,
        });
      });
    }
    return page(buckets, w, "cost", orgId);
  });
}

/** The checked parameters of a report request and the span of the page it asks for. */
function reportWindow(
  q: Query,
  kind: PageToken["k"],
  orgId: string,
  width: BucketWidth,
  groupBy: string[],
  now: number,
): ReportWindow {
  const spec = BUCKET_WIDTHS[width];
  const startText = single(q, "starting_at", "invalid_starting_at");
  if (startText === undefined) {
    throw new ApiError(
      400,
      "invalid_starting_at",
      "starting_at is required: an RFC 3339 time, e.g. 2026-03-01T00:00:00Z",
    );
  }
  const start = parseRfc3339(startText);
  if (start === undefined) {
    throw new ApiError(
      400,
      "invalid_starting_at",
      "starting_at must be an RFC 3339 time from 1970 to 2199, e.g. 2026-03-01T00:00:00Z",
    );
  }
  const endText = single(q, "ending_at", "invalid_ending_at");
  const end = endText === undefined ? undefined : parseRfc3339(endText);
  if (endText !== undefined && end === undefined) {
    throw new ApiError(
      400,
      "invalid_ending_at",
      "ending_at must be an RFC 3339 time from 1970 to 2199, e.g. 2026-03-08T00:00:00Z",
    );
  }
  // ending_at is exclusive: a fraction of a millisecond past a boundary still reaches the next bucket.
  const endingAt = end === undefined ? null : end.ms + (end.subMs ? 1 : 0);
  if (endingAt !== null && endingAt <= start.ms) {
    throw new ApiError(400, "invalid_range", "ending_at must be after starting_at");
  }
  const limitText = single(q, "limit", "invalid_limit");
  const limit = limitText === undefined ? spec.defaultLimit : /^\d{1,5}$/.test(limitText) ? Number(limitText) : 0;
  if (limit < 1 || limit > spec.maxLimit) {
    throw new ApiError(
      400,
      "invalid_limit",
      `limit must be a whole number from 1 to ${spec.maxLimit} for bucket_width ${width}`,
    );
  }
  const firstMs = Math.floor(start.ms / spec.ms) * spec.ms;
  const endMs =
    endingAt === null ? Math.floor(now / spec.ms) * spec.ms + spec.ms : Math.ceil(endingAt / spec.ms) * spec.ms;
  let pageMs = firstMs;
  const pageText = single(q, "page", "invalid_page");
  if (pageText !== undefined) {
    const token = readPageToken(pageText);
    const matches =
      token !== undefined &&
      token.k === kind &&
      token.o === orgId &&
      token.b === firstMs &&
      token.e === endingAt &&
      token.w === width &&
      token.l === limit &&
      token.g.length === groupBy.length &&
      token.g.every((g, i) => g === groupBy[i]) &&
      token.s % spec.ms === 0 &&
      token.s > firstMs &&
      token.s < endMs;
    if (!matches) {
      throw new ApiError(
        400,
        "invalid_page",
        "page must be a next_page token this report issued, sent with the same org and query parameters",
      );
    }
    pageMs = token.s;
  }
  const pageEndMs = Math.max(pageMs, Math.min(pageMs + limit * spec.ms, endMs));
  return { width, widthMs: spec.ms, firstMs, pageMs, pageEndMs, endMs, endingAt, limit, groupBy };
}

/** Every bucket of the page, in order, with no results yet. */
function bucketsOf(w: ReportWindow) {
  const buckets = new Map<number, { starting_at: string; ending_at: string; results: Record<string, unknown>[] }>();
  for (let t = w.pageMs; t < w.pageEndMs; t += w.widthMs) {
    buckets.set(t, { starting_at: iso(t), ending_at: iso(t + w.widthMs), results: [] });
  }
  return buckets;
}

function page(buckets: ReturnType<typeof bucketsOf>, w: ReportWindow, kind: PageToken["k"], orgId: string) {
  const hasMore = w.pageEndMs < w.endMs;
  return {
    data: [...buckets.values()],
    has_more: hasMore,
    next_page: hasMore
      ? writePageToken({
          v: 1,
          k: kind,
          o: orgId,
          b: w.firstMs,
          s: w.pageEndMs,
          e: w.endingAt,
          w: w.width,
          g: w.groupBy,
          l: w.limit,
        })
      : null,
  };
}

function mac(payload: string): Buffer {
  return createHmac("sha256", PAGE_MAC_KEY).update(payload).digest();
}

function writePageToken(token: PageToken): string {
  const payload = Buffer.from(JSON.stringify(token)).toString("base64url");
  return `${payload}.${mac(payload).toString("base64url")}`;
}

/** The token when it is one we issued (MAC and strict shape), else undefined. */
function readPageToken(text: string): PageToken | undefined {
  if (text.length > MAX_PAGE_TOKEN) return undefined;
  const m = /^([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]{43})$/.exec(text);
  if (!m) return undefined;
  const given = Buffer.from(m[2]!, "base64url");
  const expected = mac(m[1]!);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return undefined;
  let t: unknown;
  try {
    t = JSON.parse(Buffer.from(m[1]!, "base64url").toString("utf8"));
  } catch {
    return undefined;
  }
  if (typeof t !== "object" || t === null || Array.isArray(t)) return undefined;
  const o = t as Record<string, unknown>;
  const keys = Object.keys(o).sort().join(",");
  const ok =
    keys === "b,e,g,k,l,o,s,v,w" &&
    o.v === 1 &&
    (o.k === "usage" || o.k === "cost") &&
    typeof o.o === "string" &&
    Number.isSafeInteger(o.b) &&
    Number.isSafeInteger(o.s) &&
    (o.e === null || Number.isSafeInteger(o.e)) &&
    typeof o.w === "string" &&
    Object.hasOwn(BUCKET_WIDTHS, o.w) &&
    Array.isArray(o.g) &&
    o.g.every((g) => typeof g === "string") &&
    Number.isSafeInteger(o.l);
  return ok ? (o as unknown as PageToken) : undefined;
}

/**
 * The `group_by[]` values (also accepted as `group_by`), each once, in the report's own order of fields (so the same
 * grouping always reads the same, and its page tokens match). Any other `group_by…` key is refused.
 */
function groupByOf(q: Query, allowed: readonly string[]): string[] {
  const values: unknown[] = [];
  for (const [key, value] of Object.entries(q)) {
    if (!key.startsWith("group_by")) continue;
    if (key !== "group_by[]" && key !== "group_by") {
      throw new ApiError(400, "invalid_group_by", `unknown parameter ${key}: give group_by[]=<field>, repeated`);
    }
    values.push(...(Array.isArray(value) ? value : [value]));
  }
  for (const v of values) {
    if (typeof v !== "string" || !allowed.includes(v)) {
      throw new ApiError(400, "invalid_group_by", `group_by[] must be one of ${allowed.join(", ")}`);
    }
  }
  return allowed.filter((g) => values.includes(g));
}

/** A parameter given at most once, as a string; given twice (an array) it is invalid with `code`. */
function single(q: Query, name: string, code: string): string | undefined {
  const v = q[name];
  if (v === undefined) return undefined;
  if (typeof v !== "string") throw new ApiError(400, code, `${name} must be given once`);
  return v;
}

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

/**
 * An RFC 3339 time (a real date and time, `Z` or a ±HH:MM offset, up to 9 fraction digits) as ms since the epoch,
 * truncated to the millisecond (`subMs`: fraction digits past the millisecond were not all zero); undefined when it
 * is not one or lies outside 1970–2199.
 */
export function parseRfc3339(text: string): { ms: number; subMs: boolean } | undefined {
  const m = RFC3339.exec(text);
  if (!m) return undefined;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  if (month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) return undefined;
  if (day > new Date(Date.UTC(year, month, 0)).getUTCDate()) return undefined;
  let offset = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offset = (m[9] === "-" ? -1 : 1) * (oh * HOUR + om * MINUTE);
  }
  const fraction = m[7] ?? "";
  const local = Date.UTC(year, month - 1, day, hour, minute, second, Number(fraction.slice(0, 3).padEnd(3, "0")));
  // Date.UTC maps years 0–99 to 1900–1999; such years are outside the accepted range anyway.
  const ms = local - offset;
  if (year < 1000 || ms < EARLIEST_MS || ms >= LATEST_MS) return undefined;
  return { ms, subMs: /[1-9]/.test(fraction.slice(3)) };
}

/** RFC 3339 of a bucket boundary, without milliseconds (`2026-03-01T00:00:00Z`), as the Admin API writes them. */
function iso(ms: number): string {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

/**
 * A Decimal from ClickHouse in canonical form (no trailing zeros): a cost as netCost takes it, and discount_pct with
 * at most the 4 decimal places netCost accepts (the column's scale).
 */
function canonical(value: string): string {
  return formatMoney(new Money(value));
}
