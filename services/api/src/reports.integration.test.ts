/**
 * The Admin API's usage and cost reports (SPEC §8, turn 2) on a real API instance (startTestApi: the control plane on
 * the test broker, keys and roles as deployed) over embedded ClickHouse, rows inserted into usage_events directly:
 * priced by the packaged rate card, duplicates written twice, several discounts, events on bucket boundaries and
 * outside the range, another org's events in the same buckets.
 *
 * Every bucket the API answers is compared with an independent recomputation: plain loops over the inserted events,
 * token sums as integers and money as exact rationals (test/harness/exact.ts, no code shared with @usage/money).
 */
import { type ClickHouse, insertUsageEvents, migrate, type UsageEventRow } from "@usage/clickhouse";
import type { Product, UsageEvent } from "@usage/events";
import { netCost } from "@usage/money";
import { createPricer, loadRateCard, resolveModelId } from "@usage/pricing";
import { createLogger } from "@usage/runtime";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi } from "../../../test/harness/api.js";
import { Exact } from "../../../test/harness/exact.js";
import { resetTopics, testClickHouse, testKafka } from "../../../test/harness/index.js";
import type { Api } from "./server.js";

const KEY = "reports-operator-key-0123456789";
const NOW = Date.parse("2026-03-10T12:00:00Z");
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;
const ORG = "org_rep";
const OTHER = "org_other";
const logger = createLogger({ level: "warn", name: "test" });
const kafka = testKafka("api-reports");

// ---------------------------------------------------------------------------------------------------------
// The events, and the independent recomputation.

interface Ev {
  id: string;
  org: string;
  user: string;
  product: string;
  /** Base model id (the model as sent may be dated). */
  base: string;
  region: string;
  long: boolean;
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
  at: number;
  pct: string;
  /** Gross per-kind costs as priced. */
  cost: { input: string; output: string; cache_write: string; cache_read: string };
  row: UsageEventRow;
}

const MODELS = [
  "claude-sonnet-4-5-20250929",
  "claude-haiku-4-5",
  "claude-opus-4-1",
  "claude-sonnet-4",
  "claude-3-5-haiku",
];
const PRODUCTS: Product[] = ["chat", "claude_code", "cowork"];
const USERS = ["u1", "u2", "u3", "u4"];
const REGIONS = ["us-east", "eu-west", ""];
const DISCOUNTS = ["12.5", "7.3333", "0"];
const price = createPricer(loadRateCard());
const chTime = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");

function makeEvent(i: number, at: number, org = ORG): Ev {
  const model = MODELS[i % MODELS.length]!;
  const bigPrompt = i % 4 === 0;
  const event: UsageEvent = {
    event_id: `${org === ORG ? "00000000" : "11111111"}-0000-4000-8000-${String(i).padStart(12, "0")}`,
    occurred_at: new Date(at).toISOString(),
    org_id: org,
    user_id: USERS[(i * 3 + Math.floor(i / 7)) % USERS.length]!,
    region: REGIONS[Math.floor(i / 2) % REGIONS.length]!,
    seat_tier: "standard",
    product: PRODUCTS[(i + Math.floor(i / 3)) % PRODUCTS.length]!,
    model,
    input_tokens: bigPrompt ? 150_000 + i * 37 : 1 + ((i * 311) % 50_000),
    output_tokens: 1 + ((i * 97) % 8000),
    cache_write_tokens: bigPrompt ? 40_000 + i : (i * 7) % 3000,
    cache_read_tokens: bigPrompt ? 20_000 + i * 3 : (i * 13) % 5000,
  };
  const priced = price(event);
  if (!priced.ok) throw new Error(priced.rejection.message);
  const p = priced.value;
  const pct = DISCOUNTS[Math.floor(i / 5) % DISCOUNTS.length]!;
  const row: UsageEventRow = {
    event_id: p.event_id,
    org_id: org,
    user_id: p.user_id,
    user_email: "",
    account_uuid: "",
    request_id: "",
    region: p.region ?? "",
    seat_tier: p.seat_tier,
    product: p.product,
    model: p.model,
    model_base: resolveModelId(p.model),
    occurred_at: chTime(at),
    input_tokens: p.input_tokens,
    output_tokens: p.output_tokens,
    cache_write_tokens: p.cache_write_tokens,
    cache_read_tokens: p.cache_read_tokens,
    prompt_tokens: p.prompt_tokens,
    long_context: p.long_context,
    rate_card_version: p.rate_card_version,
    input_cost: p.input_cost,
    output_cost: p.output_cost,
    cache_write_cost: p.cache_write_cost,
    cache_read_cost: p.cache_read_cost,
    gross_cost: p.total_cost,
    discount_pct: pct,
    // As the aggregator records it (services/aggregator/src/steps.ts).
    net_cost: netCost(p.total_cost, pct),
    priced_at: chTime(at + 1000),
    batch_id: `b-${p.event_id}`,
    is_late: false,
  };
  return {
    id: row.event_id,
    org,
    user: row.user_id,
    product: row.product,
    base: row.model_base,
    region: row.region,
    long: row.long_context,
    input: row.input_tokens,
    output: row.output_tokens,
    cacheWrite: row.cache_write_tokens,
    cacheRead: row.cache_read_tokens,
    at,
    pct,
    cost: {
      input: p.input_cost,
      output: p.output_cost,
      cache_write: p.cache_write_cost,
      cache_read: p.cache_read_cost,
    },
    row,
  };
}

function makeEvents(): Ev[] {
  const out: Ev[] = [];
  let i = 0;
  // Days: 2026-03-01 … 03-09, none on 03-04 and 03-08 (empty daily buckets).
  for (let k = 0; k < 45; k++, i++) {
    const day = [0, 1, 2, 4, 5, 6, 8][k % 7]!;
    out.push(makeEvent(i, Date.UTC(2026, 2, 1 + day, (k * 7) % 24, (k * 13) % 60, (k * 17) % 60, (k * 31) % 1000)));
  }
  // Minutes: 2026-03-05 10:00 to 13:00, several events in some minutes, none in most.
  for (let k = 0; k < 60; k++, i++) {
    out.push(makeEvent(i, Date.UTC(2026, 2, 5, 10) + ((k * 7) % 180) * MINUTE + ((k * 1013) % 60_000)));
  }
  // Boundaries: first and last instants of buckets, today (03-10) before NOW, and one just before the range.
  for (const at of [
    "2026-03-01T00:00:00.000Z",
    "2026-03-05T10:59:59.999Z",
    "2026-03-05T11:00:00.000Z",
    "2026-03-05T11:00:00.000Z",
    "2026-03-09T23:59:59.999Z",
    "2026-03-10T00:00:00.000Z",
    "2026-03-10T11:30:00.000Z",
    "2026-02-28T23:59:59.999Z",
  ]) {
    out.push(makeEvent(i++, Date.parse(at)));
  }
  // Another org in the same buckets: never in org_rep's figures.
  for (let k = 0; k < 12; k++, i++) out.push(makeEvent(i, out[k * 9]!.at, OTHER));
  return out;
}

const EVENTS = makeEvents();

const USAGE_FIELDS = ["model", "product", "user_id", "context_window", "region"] as const;
type UsageField = (typeof USAGE_FIELDS)[number];
const usageField: Record<UsageField, (e: Ev) => string> = {
  model: (e) => e.base,
  product: (e) => e.product,
  user_id: (e) => e.user,
  context_window: (e) => (e.long ? "long" : "standard"),
  region: (e) => (e.region === "" ? "unknown" : e.region),
};
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const cmpKeys = (a: string[], b: string[]) => a.reduce((r, x, i) => r || cmp(x, b[i]!), 0);
const iso = (ms: number) => new Date(ms).toISOString().replace(".000Z", "Z");

function groupEvents(es: Ev[], key: (e: Ev) => string[]): [string[], Ev[]][] {
  const m = new Map<string, [string[], Ev[]]>();
  for (const e of es) {
    const k = key(e);
    const id = JSON.stringify(k);
    const entry = m.get(id);
    if (entry) entry[1].push(e);
    else m.set(id, [k, [e]]);
  }
  return [...m.values()].sort((a, b) => cmpKeys(a[0], b[0]));
}

/** The usage report's buckets of [fromMs, toMs) (both bucket boundaries), recomputed. */
function expectedUsage(org: string, fromMs: number, toMs: number, widthMs: number, fields: UsageField[]) {
  const order = USAGE_FIELDS.filter((f) => fields.includes(f));
  const buckets = [];
  for (let t = fromMs; t < toMs; t += widthMs) {
    const es = EVENTS.filter((e) => e.org === org && e.at >= t && e.at < t + widthMs);
    const results = groupEvents(es, (e) => order.map((f) => usageField[f](e))).map(([k, g]) => {
      const r: Record<string, number | string | null> = {
        uncached_input_tokens: g.reduce((s, e) => s + e.input, 0),
        cache_creation_input_tokens: g.reduce((s, e) => s + e.cacheWrite, 0),
        cache_read_input_tokens: g.reduce((s, e) => s + e.cacheRead, 0),
        output_tokens: g.reduce((s, e) => s + e.output, 0),
        requests: g.length,
      };
      for (const f of USAGE_FIELDS) r[f] = order.includes(f) ? k[order.indexOf(f)]! : null;
      return r;
    });
    buckets.push({ starting_at: iso(t), ending_at: iso(t + widthMs), results });
  }
  return buckets;
}

const TOKEN_TYPES = [
  ["uncached_input_tokens", "input", "Input Tokens"],
  ["output_tokens", "output", "Output Tokens"],
  ["cache_creation_input_tokens", "cache_write", "Input Tokens, Cache Write"],
  ["cache_read_input_tokens", "cache_read", "Input Tokens, Cache Read"],
] as const;
type CostField = "model" | "product" | "user_id" | "description";

/** Net cents of one event's token type: gross × (100 − pct) / 100 × 100, exact. */
const netCents = (e: Ev, kind: (typeof TOKEN_TYPES)[number][1]) =>
  Exact.of(e.cost[kind]).times(Exact.of(100).minus(e.pct)).div(100).times(100);

/** The cost report's daily buckets, recomputed; results sorted by their JSON (the API's order is not asserted). */
function expectedCost(org: string, fromMs: number, toMs: number, fields: CostField[]) {
  const buckets = [];
  for (let t = fromMs; t < toMs; t += DAY) {
    const es = EVENTS.filter((e) => e.org === org && e.at >= t && e.at < t + DAY);
    const key = (e: Ev) => [
      fields.includes("model") || fields.includes("description") ? e.base : "",
      fields.includes("product") ? e.product : "",
      fields.includes("user_id") ? e.user : "",
      fields.includes("description") ? String(e.long) : "",
    ];
    const results = [];
    for (const [k, g] of groupEvents(es, key)) {
      for (const [type, kind, label] of TOKEN_TYPES) {
        results.push({
          amount: Exact.sum(g.map((e) => netCents(e, kind))).toFixed(),
          currency: "USD",
          cost_type: "tokens",
          token_type: type,
          model: fields.includes("model") || fields.includes("description") ? k[0]! : null,
          product: fields.includes("product") ? k[1]! : null,
          user_id: fields.includes("user_id") ? k[2]! : null,
          description: fields.includes("description")
            ? `${k[0]} Usage - ${label}${k[3] === "true" ? ", Long Context" : ""}`
            : null,
        });
      }
    }
    buckets.push({ starting_at: iso(t), ending_at: iso(t + DAY), results: sortResults(results) });
  }
  return buckets;
}

const sortResults = <T>(results: T[]) => [...results].sort((a, b) => cmp(JSON.stringify(a), JSON.stringify(b)));

// ---------------------------------------------------------------------------------------------------------
// The API

let ch: ClickHouse;
let api: Api;
let stop: () => Promise<void>;
const keys: Record<"owner" | "analyst" | "member" | "otherOwner", string> = {
  owner: "",
  analyst: "",
  member: "",
  otherOwner: "",
};

beforeAll(async () => {
  ch = await testClickHouse("api-reports");
  await migrate(ch.client);
  await resetTopics(kafka);
  ({ app: api, stop } = await startTestApi({
    kafka,
    clickhouse: ch.client,
    logger,
    operatorKey: KEY,
    now: () => NOW,
    name: "reports",
  }));
  // Duplicates: the first 20 events are written twice, in separate inserts (separate parts, unmerged).
  await insertUsageEvents(
    ch.client,
    EVENTS.map((e) => e.row),
  );
  await insertUsageEvents(
    ch.client,
    EVENTS.slice(0, 20).map((e) => ({ ...e.row, batch_id: `again-${e.id}` })),
  );
  const make = async (org: string, spec: Record<string, unknown>) => {
    const res = await api.inject({ method: "POST", url: `/v1/orgs/${org}/keys`, headers: bearer(KEY), payload: spec });
    expect(res.statusCode, res.body).toBe(201);
    return (res.json() as { key: string }).key;
  };
  keys.owner = await make(ORG, { role: "owner" });
  keys.analyst = await make(ORG, { role: "analyst" });
  keys.member = await make(ORG, { role: "member", user: "u1" });
  keys.otherOwner = await make(OTHER, { role: "owner" });
});
afterAll(async () => {
  await stop?.();
  await ch?.close();
});

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });
type Params = [string, string][];
const url = (path: string, params: Params) =>
  `${path}?${params.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join("&")}`;
const USAGE = `/v1/orgs/${ORG}/usage_report/messages`;
const COST = `/v1/orgs/${ORG}/cost_report`;

async function get(path: string, key = KEY) {
  const res = await api.inject({ method: "GET", url: path, headers: bearer(key) });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies asserted field by field
  return { status: res.statusCode, body: res.json() as Record<string, any> };
}

interface Bucket {
  starting_at: string;
  ending_at: string;
  results: Record<string, unknown>[];
}

/** Follows next_page until has_more is false; every page at most `limit` buckets, the last one's next_page null. */
async function walk(
  path: string,
  params: Params,
  limit: number,
  key = KEY,
): Promise<{ pages: number; data: Bucket[] }> {
  const data: Bucket[] = [];
  let page: string | undefined;
  for (let pages = 1; ; pages++) {
    const res = await get(url(path, page === undefined ? params : [...params, ["page", page]]), key);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    expect(res.body.data.length).toBeLessThanOrEqual(limit);
    data.push(...res.body.data);
    if (!res.body.has_more) {
      expect(res.body.next_page).toBeNull();
      return { pages, data };
    }
    expect(res.body.data.length).toBe(limit);
    expect(typeof res.body.next_page).toBe("string");
    page = res.body.next_page as string;
  }
}

const groupParams = (fields: string[]): Params => fields.map((f) => ["group_by[]", f]);
const counted = { usageBuckets: 0, costBuckets: 0 };

describe("usage report (GET /v1/orgs/{org}/usage_report/messages)", () => {
  it("answers every daily bucket exactly, grouped by two fields and by none", async () => {
    const from = Date.UTC(2026, 2, 1);
    const to = Date.UTC(2026, 2, 11);
    for (const fields of [["model", "product"], [], ["user_id", "region"]] as UsageField[][]) {
      const res = await get(
        url(USAGE, [
          ["starting_at", iso(from)],
          ["ending_at", iso(to)],
          ["bucket_width", "1d"],
          ...groupParams(fields),
          ["limit", "31"],
        ]),
      );
      expect(res.status, JSON.stringify(res.body)).toBe(200);
      expect(res.body.has_more).toBe(false);
      expect(res.body.next_page).toBeNull();
      expect(res.body.data).toEqual(expectedUsage(ORG, from, to, DAY, fields));
      counted.usageBuckets += res.body.data.length;
    }
    // Empty days are listed with no results; the event just before the range is not counted.
    const days = (
      await get(
        url(USAGE, [
          ["starting_at", iso(from)],
          ["ending_at", iso(to)],
        ]),
      )
    ).body.data as Bucket[];
    expect(days.length).toBe(7); // the default limit
    expect(days[3]!.results).toEqual([]);
    expect(days[0]!.results[0]!.requests).toBe(
      EVENTS.filter((e) => e.org === ORG && e.at >= from && e.at < from + DAY).length,
    );
  });

  it("pages hourly buckets (216 of them, 50 a page) and minute buckets (180, the default 60 a page)", async () => {
    const from = Date.UTC(2026, 2, 1);
    const to = Date.UTC(2026, 2, 10);
    const hourly = await walk(
      USAGE,
      [
        ["starting_at", iso(from)],
        ["ending_at", iso(to)],
        ["bucket_width", "1h"],
        ["group_by[]", "context_window"],
        ["group_by[]", "region"],
        ["limit", "50"],
      ],
      50,
    );
    expect(hourly.pages).toBe(5);
    expect(hourly.data).toEqual(expectedUsage(ORG, from, to, HOUR, ["context_window", "region"]));
    expect(hourly.data.filter((b) => b.results.length > 0).length).toBeGreaterThan(40);
    counted.usageBuckets += hourly.data.length;

    const mFrom = Date.UTC(2026, 2, 5, 10);
    const mTo = Date.UTC(2026, 2, 5, 13);
    // group_by[] percent-encoded, and given in the other order: the same grouping.
    const minutes = await walk(
      USAGE,
      [
        ["starting_at", iso(mFrom)],
        ["ending_at", iso(mTo)],
        ["bucket_width", "1m"],
        ["group_by%5B%5D", "model"],
        ["group_by%5B%5D", "user_id"],
      ],
      60,
    );
    expect(minutes.pages).toBe(3);
    const expected = expectedUsage(ORG, mFrom, mTo, MINUTE, ["user_id", "model"]);
    expect(minutes.data).toEqual(expected);
    expect(expected.filter((b) => b.results.length > 1).length).toBeGreaterThan(0);
    expect(expected[59]!.results.length).toBeGreaterThan(0); // 10:59:59.999
    counted.usageBuckets += minutes.data.length;

    // Minute buckets, product only, one page of all 180 (limit up to 1440).
    const one = await get(
      url(USAGE, [
        ["starting_at", iso(mFrom)],
        ["ending_at", iso(mTo)],
        ["bucket_width", "1m"],
        ["group_by", "product"],
        ["limit", "1440"],
      ]),
    );
    expect(one.status).toBe(200);
    expect(one.body.has_more).toBe(false);
    expect(one.body.data).toEqual(expectedUsage(ORG, mFrom, mTo, MINUTE, ["product"]));
    counted.usageBuckets += one.body.data.length;
  });

  it("truncates starting_at to its bucket, keeps the last bucket whole, and runs to now without ending_at", async () => {
    // 10:17:42+02:00 is 08:17:42Z: the first hourly bucket is 08:00Z; 12:30Z ends in the 12:00 bucket.
    const res = await get(
      url(USAGE, [
        ["starting_at", "2026-03-05T10:17:42.123+02:00"],
        ["ending_at", "2026-03-05T12:30:00Z"],
        ["bucket_width", "1h"],
        ["group_by[]", "model"],
      ]),
    );
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual(
      expectedUsage(ORG, Date.UTC(2026, 2, 5, 8), Date.UTC(2026, 2, 5, 13), HOUR, ["model"]),
    );
    expect(res.body.data.length).toBe(5);
    // No ending_at: daily buckets up to the one holding now (2026-03-10, 12:00), that one included.
    const open = await get(url(USAGE, [["starting_at", "2026-03-08T05:00:00Z"]]));
    expect(open.body).toMatchObject({ has_more: false, next_page: null });
    expect(open.body.data).toEqual(expectedUsage(ORG, Date.UTC(2026, 2, 8), Date.UTC(2026, 2, 11), DAY, []));
    expect(open.body.data[2].results[0].requests).toBe(2);
    counted.usageBuckets += res.body.data.length + open.body.data.length;
  });
});

describe("cost report (GET /v1/orgs/{org}/cost_report)", () => {
  it("answers net amounts in cents exactly, per token type, paged, for several groupings", async () => {
    const from = Date.UTC(2026, 2, 1);
    const to = Date.UTC(2026, 2, 11);
    for (const fields of [[], ["model", "user_id"], ["product", "description"]] as CostField[][]) {
      const walked = await walk(
        COST,
        [["starting_at", iso(from)], ["ending_at", iso(to)], ...groupParams(fields), ["limit", "4"]],
        4,
      );
      expect(walked.pages).toBe(3);
      const answered = walked.data.map((b) => ({ ...b, results: sortResults(b.results) }));
      expect(answered).toEqual(expectedCost(ORG, from, to, fields));
      counted.costBuckets += walked.data.length;
    }
  });

  it("sums to the events' net cost: the four token types of an event add up to its net_cost", async () => {
    const from = Date.UTC(2026, 2, 1);
    const to = Date.UTC(2026, 2, 11);
    const res = await get(
      url(COST, [
        ["starting_at", iso(from)],
        ["ending_at", iso(to)],
        ["limit", "31"],
      ]),
    );
    expect(res.status).toBe(200);
    const total = Exact.sum((res.body.data as Bucket[]).flatMap((b) => b.results.map((r) => r.amount as string)));
    const inRange = EVENTS.filter((e) => e.org === ORG && e.at >= from && e.at < to);
    expect(total.toFixed()).toBe(Exact.sum(inRange.map((e) => Exact.of(e.row.net_cost).times(100))).toFixed());
    for (const e of inRange) {
      const types = Exact.sum(TOKEN_TYPES.map(([, kind]) => netCents(e, kind)));
      expect(types.toFixed()).toBe(Exact.of(e.row.net_cost).times(100).toFixed());
    }
    // Amounts are canonical decimal strings; the second day holds an amount with a fraction of a cent.
    const amounts = (res.body.data as Bucket[]).flatMap((b) => b.results.map((r) => r.amount as string));
    expect(amounts.every((a) => /^(0|[1-9]\d*)(\.\d*[1-9])?$/.test(a))).toBe(true);
    expect(amounts.some((a) => a.includes("."))).toBe(true);
  });
});

describe("parameters and access", () => {
  const start: Params = [["starting_at", "2026-03-01T00:00:00Z"]];
  const cases: [string, Params, string][] = [
    [USAGE, [], "invalid_starting_at"],
    [USAGE, [["starting_at", "2026-03-01"]], "invalid_starting_at"],
    [USAGE, [["starting_at", "2026-02-30T00:00:00Z"]], "invalid_starting_at"],
    [USAGE, [["starting_at", "2026-03-01T24:00:00Z"]], "invalid_starting_at"],
    [USAGE, [["starting_at", "yesterday"]], "invalid_starting_at"],
    [USAGE, [["starting_at", "1969-12-31T23:59:59Z"]], "invalid_starting_at"],
    [USAGE, [...start, ...start], "invalid_starting_at"],
    [USAGE, [...start, ["ending_at", "2026-03-02T00:00:00"]], "invalid_ending_at"],
    [USAGE, [...start, ["ending_at", "soon"]], "invalid_ending_at"],
    [USAGE, [...start, ["ending_at", "2026-03-01T00:00:00Z"]], "invalid_range"],
    [USAGE, [...start, ["ending_at", "2026-02-01T00:00:00Z"]], "invalid_range"],
    [USAGE, [...start, ["bucket_width", "2h"]], "invalid_bucket_width"],
    [USAGE, [...start, ["bucket_width", ""]], "invalid_bucket_width"],
    [COST, [...start, ["bucket_width", "1h"]], "invalid_bucket_width"],
    [USAGE, [...start, ["limit", "0"]], "invalid_limit"],
    [USAGE, [...start, ["limit", "32"]], "invalid_limit"],
    [USAGE, [...start, ["bucket_width", "1h"], ["limit", "169"]], "invalid_limit"],
    [USAGE, [...start, ["bucket_width", "1m"], ["limit", "1441"]], "invalid_limit"],
    [USAGE, [...start, ["limit", "1.5"]], "invalid_limit"],
    [USAGE, [...start, ["limit", "-1"]], "invalid_limit"],
    [USAGE, [...start, ["limit", "seven"]], "invalid_limit"],
    [COST, [...start, ["limit", "32"]], "invalid_limit"],
    [USAGE, [...start, ["group_by[]", "seat_tier"]], "invalid_group_by"],
    [USAGE, [...start, ["group_by[]", "description"]], "invalid_group_by"],
    [USAGE, [...start, ["group_by[]", "model"], ["group_by[]", ""]], "invalid_group_by"],
    [USAGE, [...start, ["group_by[0]", "model"]], "invalid_group_by"],
    [COST, [...start, ["group_by[]", "region"]], "invalid_group_by"],
    [USAGE, [...start, ["page", "garbage"]], "invalid_page"],
    [USAGE, [...start, ["page", ""]], "invalid_page"],
    [COST, [...start, ["page", "eyJ2IjoxfQ.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"]], "invalid_page"],
  ];

  it("refuses each bad parameter with 400 and its code, never a 500", async () => {
    for (const [path, params, code] of cases) {
      const res = await get(url(path, params));
      expect(res.status, `${path} ${JSON.stringify(params)} → ${JSON.stringify(res.body)}`).toBe(400);
      expect(res.body.error.code, `${path} ${JSON.stringify(params)}`).toBe(code);
      expect(typeof res.body.error.message).toBe("string");
    }
  });

  it("answers any query string with 200 or a specific 400, never a 500 (seeded fuzz)", async () => {
    const value = fc.oneof(
      fc.constantFrom(
        "2026-03-01T00:00:00Z",
        "2026-03-05T10:17:42.5+02:00",
        "2199-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "2026-03-01",
        "1d",
        "1h",
        "1m",
        "0",
        "1",
        "31",
        "1440",
        "99999999999999999999",
        "model",
        "description",
        "region",
        "",
        "NaN",
        "e30.AAAA",
      ),
      fc.string({ maxLength: 30 }),
    );
    const key = fc.constantFrom("starting_at", "ending_at", "bucket_width", "limit", "page", "group_by[]", "group_by");
    const query = fc.array(fc.tuple(key, value), { maxLength: 6 });
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(USAGE, COST), query, fc.boolean(), async (path, params, withStart) => {
        const all: Params = withStart ? [["starting_at", "2026-03-04T00:00:00Z"], ...params] : params;
        const res = await get(url(path, all));
        if (res.status === 200) {
          expect(Array.isArray(res.body.data)).toBe(true);
          return;
        }
        expect(res.status, `${path} ${JSON.stringify(all)} → ${JSON.stringify(res.body)}`).toBe(400);
        expect(res.body.error.code).toMatch(/^invalid_(starting_at|ending_at|range|bucket_width|limit|group_by|page)$/);
      }),
      { numRuns: 300, seed: 20260310 },
    );
  });

  it("refuses a page token we did not issue for this org, report and query", async () => {
    const base: Params = [
      ["starting_at", "2026-03-01T00:00:00Z"],
      ["ending_at", "2026-03-10T00:00:00Z"],
      ["group_by[]", "model"],
      ["limit", "2"],
    ];
    const first = await get(url(USAGE, base));
    const token = first.body.next_page as string;
    expect(typeof token).toBe("string");
    expect((await get(url(USAGE, [...base, ["page", token]]))).status).toBe(200);
    const [payload, mac] = token.split(".") as [string, string];
    const json = JSON.parse(Buffer.from(payload, "base64url").toString()) as Record<string, unknown>;
    const forged = (change: Record<string, unknown>) =>
      `${Buffer.from(JSON.stringify({ ...json, ...change })).toString("base64url")}.${mac}`;
    const other = await get(url(`/v1/orgs/${OTHER}/usage_report/messages`, base));
    const costFirst = await get(url(COST, base));
    const refused: [string, Params][] = [
      // Edited: a later bucket with the old MAC, a flipped MAC character, a truncated token.
      [USAGE, [...base, ["page", forged({ s: Date.UTC(2026, 2, 7) })]]],
      [USAGE, [...base, ["page", `${payload}.${mac.startsWith("A") ? "B" : "A"}${mac.slice(1)}`]]],
      [USAGE, [...base, ["page", token.slice(0, -3)]]],
      // Another org's token, with the same query.
      [USAGE, [...base, ["page", other.body.next_page as string]]],
      // Another report's token.
      [USAGE, [...base, ["page", costFirst.body.next_page as string]]],
      [COST, [...base, ["page", token]]],
      // Another query: other group_by, limit, width, start, end.
      [USAGE, [...base.filter(([k]) => k !== "group_by[]"), ["page", token]]],
      [USAGE, [...base.filter(([k]) => k !== "limit"), ["limit", "3"], ["page", token]]],
      [USAGE, [...base, ["bucket_width", "1h"], ["page", token]]],
      [USAGE, [["starting_at", "2026-03-02T00:00:00Z"], ...base.slice(1), ["page", token]]],
      [USAGE, [...base.filter(([k]) => k !== "ending_at"), ["page", token]]],
    ];
    for (const [path, params] of refused) {
      const res = await get(url(path, params));
      expect(res.status, JSON.stringify(params)).toBe(400);
      expect(res.body.error.code, JSON.stringify(params)).toBe("invalid_page");
    }
    // The other org's token works for the other org.
    const otherNext = await get(
      url(`/v1/orgs/${OTHER}/usage_report/messages`, [...base, ["page", other.body.next_page as string]]),
    );
    expect(otherNext.status).toBe(200);
  });

  it("lets an owner and an analyst read, refuses a member (forbidden_role) and another org's key (403)", async () => {
    const q: Params = [
      ["starting_at", "2026-03-01T00:00:00Z"],
      ["ending_at", "2026-03-03T00:00:00Z"],
    ];
    for (const path of [USAGE, COST]) {
      const analyst = await get(url(path, q), keys.analyst);
      expect(analyst.status).toBe(200);
      expect(analyst.body.data.length).toBe(2);
      expect((await get(url(path, q), keys.owner)).body).toEqual(analyst.body);
      const member = await get(url(path, q), keys.member);
      expect(member.status).toBe(403);
      expect(member.body.error.code).toBe("forbidden_role");
      const other = await get(url(path, q), keys.otherOwner);
      expect(other.status).toBe(403);
      expect(other.body.error.code).toBe("forbidden");
      // The other org's owner reads its own org, which holds none of org_rep's events.
      const own = await get(url(path.replace(ORG, OTHER), q), keys.otherOwner);
      expect(own.status).toBe(200);
    }
    const own = await get(url(USAGE.replace(ORG, OTHER), q), keys.otherOwner);
    expect(own.body.data).toEqual(expectedUsage(OTHER, Date.UTC(2026, 2, 1), Date.UTC(2026, 2, 3), DAY, []));
  });

  afterAll(() => {
    // The figures compared, for the report.
    process.stderr.write(
      `reports: ${counted.usageBuckets} usage buckets and ${counted.costBuckets} cost buckets compared exactly\n`,
    );
  });
});
