/**
 * Analytics and finance acceptance (SPEC §8, §9): top users, daily trends, the spend report CSV and the month-end
 * reconciliation, checked against an independent recomputation with decimal.js, exactly.
 *
 * 1. The routes on a fastify app of this file's own over embedded ClickHouse, with rows inserted directly: awkward
 *    amounts, duplicates written twice, late events, an email that changes, CSV quoting, a rollup missing one
 *    event (reconciliation must name the user), and every window rule of trends and export at a chosen instant.
 * 2. The real pipeline: a generated workload with duplicates and late events goes through the broker, `usagectl run
 *    pricing` and `usagectl run aggregator`; the aggregator's API (with the analytics routes wired into buildApi)
 *    and `usagectl report|export|reconcile` then answer figures equal to the recomputation from the generated events.
 */
import { readFileSync } from "node:fs";
import {
  type ClickHouse,
  chDateTime,
  insertControlChanges,
  insertInvoiceDocument,
  insertSpendDaily,
  insertUsageEvents,
  migrate,
  rebuildRollup,
  type SpendDailyRow,
  type UsageEventRow,
} from "@usage/clickhouse";
import type { InvoiceFinalState } from "@usage/control";
import type { UsageEvent } from "@usage/events";
import { validateUsageEvent } from "@usage/events";
import { netCost } from "@usage/money";
import { dayOf, dayStart, monthStart, periodOf, windowAsOf } from "@usage/periods";
import { createPricer, loadRateCard, resolveModelId } from "@usage/pricing";
import { generateEventArray } from "@usage/workload";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { registerAnalyticsRoutes } from "../services/api/src/analytics-routes.js";
import { finalizeInvoice, startInvoiceFinalizer } from "../services/api/src/invoices.js";
import { registerReconciliationRoutes } from "../services/api/src/reconciliation-routes.js";
import type { ControlChangeInput } from "../services/api/src/server.js";
import { Exact } from "./harness/exact.js";
import {
  freePort,
  quietLogger,
  resetTopics,
  runCli,
  spawnCli,
  tempDir,
  testBrokers,
  testClickHouse,
  testKafka,
  waitFor,
} from "./harness/index.js";

const KEY = "test-analytics-key-0123456789";
const DAY = 86_400_000;
const CSV_HEADER =
  "user_email,user_id,account_uuid,product,model,request_count,prompt_tokens,completion_tokens,net_spend_usd,gross_spend_usd";

// ---------------------------------------------------------------------------------------------------------
// The independent recomputation: plain arrays of priced events, decimal.js sums.

interface Priced {
  event_id: string;
  org: string;
  user: string;
  email: string;
  account: string;
  seat_tier: string;
  product: string;
  model: string;
  base: string;
  region: string;
  long: boolean;
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
  gross: Exact;
  net: Exact;
  at: number;
  arrived: number;
}

// Exact rationals, sharing no code with the Money the services use.
const dec = (s: string) => Exact.of(s);
const tokensOf = (e: Priced) => e.input + e.output + e.cacheWrite + e.cacheRead;
const promptOf = (e: Priced) => e.input + e.cacheWrite + e.cacheRead;
const sum = (xs: Priced[], f: (e: Priced) => Exact) => xs.reduce((t, e) => t.plus(f(e)), Exact.of(0));
const isLate = (e: Priced) => periodOf(e.at) < periodOf(e.arrived);
const inRange = (xs: Priced[], org: string, fromMs: number, toMs: number) =>
  xs.filter((e) => e.org === org && e.at >= fromMs && e.at < toMs);
const byKey = <T>(xs: T[], key: (x: T) => string) => {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    const list = m.get(k);
    if (list) list.push(x);
    else m.set(k, [x]);
  }
  return m;
};
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
/** The latest non-empty value by (occurred_at, event_id), as invoice_lines and the CSV pick it. */
const latest = (xs: Priced[], f: (e: Priced) => string) =>
  xs
    .filter((e) => f(e) !== "")
    .sort((a, b) => a.at - b.at || cmp(a.event_id, b.event_id))
    .map(f)
    .at(-1) ?? "";

function expectedTopUsers(xs: Priced[], org: string, fromMs: number, toMs: number, by: "spend" | "tokens", n: number) {
  const rows = [...byKey(inRange(xs, org, fromMs, toMs), (e) => e.user)].map(([user, es]) => ({
    user_id: user,
    user_email: latest(es, (e) => e.email),
    spend: sum(es, (e) => e.net),
    gross_spend: sum(es, (e) => e.gross),
    requests: es.length,
    tokens: es.reduce((t, e) => t + tokensOf(e), 0),
  }));
  rows.sort((a, b) => {
    const spend = b.spend.cmp(a.spend);
    const tokens = b.tokens - a.tokens;
    const first = by === "spend" ? spend : tokens;
    const second = by === "spend" ? tokens : spend;
    return first || second || cmp(a.user_id, b.user_id);
  });
  return rows.slice(0, n);
}

const TREND_KEY = {
  product: (e: Priced) => e.product,
  model: (e: Priced) => e.base,
  context_window: (e: Priced) => (e.long ? "long" : "standard"),
  region: (e: Priced) => e.region || "unknown",
} as const;

function expectedTrends(xs: Priced[], org: string, from: string, to: string, groupBy: keyof typeof TREND_KEY) {
  const fromMs = Date.parse(`${from}T00:00:00Z`);
  const toMs = Date.parse(`${to}T00:00:00Z`) + DAY;
  const perDay = byKey(inRange(xs, org, fromMs, toMs), (e) => dayOf(e.at));
  const days = [];
  for (let d = fromMs; d < toMs; d += DAY) {
    const groups = [...byKey(perDay.get(dayOf(d)) ?? [], TREND_KEY[groupBy])].map(([key, es]) => ({
      key,
      spend: sum(es, (e) => e.net),
      gross_spend: sum(es, (e) => e.gross),
      requests: es.length,
      tokens: es.reduce((t, e) => t + tokensOf(e), 0),
    }));
    groups.sort((a, b) => b.spend.cmp(a.spend) || cmp(a.key, b.key));
    days.push({ day: dayOf(d), groups });
  }
  return days;
}

function expectedExport(xs: Priced[], org: string, fromMs: number, toMs: number) {
  const lines = [...byKey(inRange(xs, org, fromMs, toMs), (e) => `${e.user}\u0000${e.product}\u0000${e.base}`)];
  const users = byKey(inRange(xs, org, fromMs, toMs), (e) => e.user);
  return lines
    .map(([, es]) => {
      const first = es[0]!;
      const all = users.get(first.user)!;
      return {
        user_email: latest(all, (e) => e.email),
        user_id: first.user,
        account_uuid: latest(all, (e) => e.account),
        product: first.product,
        model: first.base,
        request_count: es.length,
        prompt_tokens: es.reduce((t, e) => t + promptOf(e), 0),
        completion_tokens: es.reduce((t, e) => t + e.output, 0),
        net: sum(es, (e) => e.net),
        gross: sum(es, (e) => e.gross),
      };
    })
    .sort((a, b) => cmp(a.user_id, b.user_id) || cmp(a.product, b.product) || cmp(a.model, b.model));
}

function periodMs(period: string): [number, number] {
  const from = Date.parse(`${period}-01T00:00:00Z`);
  return [from, Date.UTC(new Date(from).getUTCFullYear(), new Date(from).getUTCMonth() + 1, 1)];
}

/** RFC 4180: CRLF records, quoted fields with doubled quotes. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let field = "";
  let record: string[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '"' && field === "") {
      i++;
      for (;;) {
        if (text[i] === '"' && text[i + 1] === '"') {
          field += '"';
          i += 2;
        } else if (text[i] === '"') {
          i++;
          break;
        } else {
          if (i >= text.length) throw new Error("unterminated quoted field");
          field += text[i++];
        }
      }
    } else if (c === ",") {
      record.push(field);
      field = "";
      i++;
    } else if (c === "\r" && text[i + 1] === "\n") {
      record.push(field);
      records.push(record);
      record = [];
      field = "";
      i += 2;
    } else {
      field += c;
      i++;
    }
  }
  if (field !== "" || record.length > 0) throw new Error("the last record does not end with CRLF");
  return records;
}

type Figures = { requests: number; gross: string; net: string };
interface ReconciliationBody {
  org_id: string;
  period: string;
  raw: Figures;
  rollup: Figures;
  invoice: { status: string; requests: number; net: string; usage_lines: { requests: number; net: string } };
  differences: { user_id: string; raw: Figures; rollup: Figures; invoice: { requests: number; net: string } }[];
  balanced: boolean;
  late_events: {
    event_id: string;
    occurred_at: string;
    arrived_at: string;
    user_id: string;
    gross: string;
    net: string;
  }[];
}

/** An invoice document's total. */
function docTotal(json: string): string {
  return (JSON.parse(json) as { total: string }).total;
}

/** The same assertions for both parts: every route against the recomputation. */
async function checkRoutes(
  get: (path: string) => Promise<{ status: number; headers: Record<string, string>; text: string }>,
  xs: Priced[],
  org: string,
  now: number,
): Promise<void> {
  const json = async <T>(path: string): Promise<T> => {
    const res = await get(path);
    expect(res.status, `${path}: ${res.text}`).toBe(200);
    return JSON.parse(res.text) as T;
  };

  // Top users, by spend and by tokens, the default limit and the largest.
  for (const window of ["mtd", "qtd", "ytd"] as const) {
    for (const by of ["spend", "tokens"] as const) {
      for (const limit of [undefined, 100]) {
        const range = windowAsOf(window, now);
        const body = await json<{
          from: string;
          to: string;
          users: {
            rank: number;
            user_id: string;
            user_email: string;
            spend: string;
            gross_spend: string;
            requests: number;
            tokens: number;
          }[];
        }>(`/v1/orgs/${org}/top-users?window=${window}&by=${by}${limit ? `&limit=${limit}` : ""}`);
        expect([body.from, body.to]).toEqual([range.from, range.to]);
        const expected = expectedTopUsers(xs, org, range.fromMs, range.toExclusiveMs, by, limit ?? 10);
        expect(body.users.map((u) => u.user_id)).toEqual(expected.map((u) => u.user_id));
        body.users.forEach((u, i) => {
          const x = expected[i]!;
          expect(u.rank).toBe(i + 1);
          expect(u.user_email).toBe(x.user_email);
          expect(dec(u.spend).eq(x.spend) && dec(u.gross_spend).eq(x.gross_spend), `${u.user_id} spend`).toBe(true);
          expect(u.spend).toBe(x.spend.toFixed());
          expect([u.requests, u.tokens]).toEqual([x.requests, x.tokens]);
        });
      }
    }
  }

  // Trends: the 31 days ending today, every grouping.
  const from = dayOf(dayStart(now) - 30 * DAY);
  const to = dayOf(now);
  for (const groupBy of ["product", "model", "context_window", "region"] as const) {
    const body = await json<{
      from: string;
      to: string;
      group_by: string;
      days: {
        day: string;
        groups: { key: string; spend: string; gross_spend: string; requests: number; tokens: number }[];
      }[];
    }>(`/v1/orgs/${org}/trends?from=${from}&to=${to}&group_by=${groupBy}`);
    expect([body.from, body.to, body.group_by]).toEqual([from, to, groupBy]);
    const expected = expectedTrends(xs, org, from, to, groupBy);
    expect(body.days.map((d) => d.day)).toEqual(expected.map((d) => d.day));
    expect(body.days.length).toBe(31);
    body.days.forEach((d, i) => {
      const x = expected[i]!;
      expect(
        d.groups.map((g) => g.key),
        `${d.day} ${groupBy}`,
      ).toEqual(x.groups.map((g) => g.key));
      d.groups.forEach((g, j) => {
        const y = x.groups[j]!;
        expect(g.spend, `${d.day} ${g.key}`).toBe(y.spend.toFixed());
        expect(g.gross_spend).toBe(y.gross_spend.toFixed());
        expect([g.requests, g.tokens]).toEqual([y.requests, y.tokens]);
      });
    });
  }

  // The CSV, for every named range: header exact, rows exact, totals exact.
  const today = dayStart(now);
  const ranges = {
    mtd: [monthStart(now), today + DAY],
    last_month: [monthStart(monthStart(now) - 1), monthStart(now)],
    last_90_days: [today - 89 * DAY, today + DAY],
  } as const;
  for (const [range, [fromMs, toMs]] of Object.entries(ranges)) {
    const res = await get(`/v1/orgs/${org}/export.csv?range=${range}`);
    expect(res.status, res.text).toBe(200);
    expect(res.headers["content-type"]).toBe("text/csv; charset=utf-8");
    expect(res.headers["content-disposition"]).toBe(
      `attachment; filename="usage-${org}-${dayOf(fromMs)}-to-${dayOf(toMs - DAY)}.csv"`,
    );
    expect(res.text.startsWith(`${CSV_HEADER}\r\n`)).toBe(true);
    const [header, ...records] = parseCsv(res.text);
    expect(header!.join(",")).toBe(CSV_HEADER);
    const expected = expectedExport(xs, org, fromMs, toMs);
    expect(records.length, range).toBe(expected.length);
    records.forEach((r, i) => {
      const x = expected[i]!;
      expect(r).toEqual([
        x.user_email,
        x.user_id,
        x.account_uuid,
        x.product,
        x.model,
        String(x.request_count),
        String(x.prompt_tokens),
        String(x.completion_tokens),
        x.net.toFixed(),
        x.gross.toFixed(),
      ]);
    });
    const csvGross = records.reduce((t, r) => t.plus(r[9]!), Exact.of(0));
    expect(csvGross.eq(sum(inRange(xs, org, fromMs, toMs), (e) => e.gross)), `${range} gross`).toBe(true);
  }

  // Reconciliation: last month (with the late events) and this month, balanced to the last digit.
  for (const period of [periodOf(monthStart(now) - 1), periodOf(now)]) {
    const [fromMs, toMs] = periodMs(period);
    const events = inRange(xs, org, fromMs, toMs);
    const body = await json<ReconciliationBody>(`/v1/orgs/${org}/reconciliation?period=${period}`);
    const expected = {
      requests: events.length,
      gross: sum(events, (e) => e.gross).toFixed(),
      net: sum(events, (e) => e.net).toFixed(),
    };
    expect(body.raw, `${period} raw`).toEqual(expected);
    expect(body.rollup, `${period} rollup`).toEqual(expected);
    expect(body.invoice, `${period} invoice`).toMatchObject({ requests: expected.requests, net: expected.net });
    expect(body.differences).toEqual([]);
    expect(body.balanced).toBe(true);
    const late = events.filter(isLate);
    expect(body.late_events.map((e) => e.event_id).sort()).toEqual(late.map((e) => e.event_id).sort());
    const lateById = new Map(late.map((e) => [e.event_id, e]));
    for (const e of body.late_events) {
      const x = lateById.get(e.event_id)!;
      expect([e.user_id, e.gross, e.net]).toEqual([x.user, x.gross.toFixed(), x.net.toFixed()]);
      expect(Date.parse(e.occurred_at)).toBe(x.at);
      expect(periodOf(Date.parse(e.arrived_at)) > period).toBe(true);
    }
  }
}

/** Every window rule of trends and export is a 400 whose code names the rule. */
async function checkRules(
  get: (path: string) => Promise<{ status: number; text: string }>,
  org: string,
  now: number,
): Promise<void> {
  const today = dayStart(now);
  const d = (daysBack: number) => dayOf(today - daysBack * DAY);
  const expectError = async (path: string, code: string, words: RegExp) => {
    const res = await get(path);
    expect(res.status, path).toBe(400);
    const body = JSON.parse(res.text) as { error: { code: string; message: string } };
    expect(body.error.code, path).toBe(code);
    expect(body.error.message, path).toMatch(words);
  };
  const trends = `/v1/orgs/${org}/trends`;
  await expectError(`${trends}?from=${d(31)}&to=${d(0)}`, "trends_window_too_wide", /at most 31 days/);
  expect((await get(`${trends}?from=${d(30)}&to=${d(0)}`)).status).toBe(200);
  await expectError(`${trends}?from=${d(366)}&to=${d(360)}`, "trends_start_too_old", /last 365 days/);
  if (today - 365 * DAY <= Date.parse("2025-12-31T00:00:00Z")) {
    await expectError(`${trends}?from=2025-12-31&to=2026-01-05`, "trends_start_before_2026", /before 2026-01-01/);
  }
  await expectError(`${trends}?from=${d(1)}&to=${d(2)}`, "invalid_range", /must not be after/);
  await expectError(`${trends}?from=2026-02-30&to=${d(0)}`, "invalid_range", /real date/);
  await expectError(`${trends}?from=${d(3)}&to=yesterday`, "invalid_range", /real date/);
  await expectError(`${trends}?from=${d(3)}&group_by=seat_tier`, "invalid_group_by", /product, model/);

  const csv = `/v1/orgs/${org}/export.csv`;
  await expectError(`${csv}?from=${d(91)}&to=${d(0)}`, "export_start_too_old", /at most 90 days back/);
  expect((await get(`${csv}?from=${d(90)}&to=${d(0)}`)).status).toBe(200);
  expect((await get(`${csv}?from=${d(5)}`)).status).toBe(200);
  await expectError(`${csv}?from=${d(2)}&to=${d(5)}`, "invalid_range", /must not be before/);
  await expectError(`${csv}?to=${d(5)}`, "invalid_range", /from is required/);
  await expectError(`${csv}?from=2026-13-01`, "invalid_range", /real date/);
  await expectError(`${csv}?range=last_year`, "invalid_export_range", /mtd, last_month, last_90_days/);
  await expectError(`${csv}?range=mtd&from=${d(3)}`, "export_range_conflict", /either range or from\/to/);

  await expectError(`/v1/orgs/${org}/top-users?limit=0`, "invalid_limit", /1 to 100/);
  await expectError(`/v1/orgs/${org}/top-users?limit=101`, "invalid_limit", /1 to 100/);
  await expectError(`/v1/orgs/${org}/top-users?by=requests`, "invalid_by", /spend or tokens/);
  await expectError(`/v1/orgs/${org}/top-users?window=wtd`, "invalid_window", /mtd, qtd, ytd/);
  await expectError(`/v1/orgs/${org}/reconciliation?period=2026-13`, "invalid_period", /YYYY-MM/);
  await expectError(`/v1/orgs/${org}/reconciliation`, "invalid_period", /YYYY-MM/);
}

// ---------------------------------------------------------------------------------------------------------
// 1. The routes over rows written directly.

const NOW = Date.parse("2026-11-23T12:00:00Z");
/** At most 12 decimal places, as per-event list prices have; 0.1 + 0.2 and 1e-12 catch any float on the way. */
const AMOUNTS = ["0.1", "0.2", "0.000000000001", "1234567890.123456789012", "3.3", "0"];
const DISCOUNT = "12.5";

function craftedEvents(): Priced[] {
  const users = [
    { user: "u1", emails: ['ann "the, analyst"@a.example'], account: "acc-1" },
    { user: "u2", emails: ["", "bob@a.example", "robert@a.example"], account: "" },
    { user: "u3", emails: ["carol\r\nlines@a.example"], account: "acc,3" },
  ];
  const products = ["chat", "claude_code", "cowork"];
  const models = ["claude-opus-4-5", "claude-sonnet-4-5-20250929", "claude-haiku-4-5"];
  const regions = ["us-east-1", "eu-west-1", ""];
  const start = Date.parse("2026-10-20T03:00:00Z");
  const out: Priced[] = [];
  for (let i = 0; i < 60; i++) {
    const u = users[i % 3]!;
    const at = start + i * 13 * 3_600_000 + i * 1000;
    const gross = dec(AMOUNTS[i % AMOUNTS.length]!);
    // Odd October events arrive in November: late. Even ones arrive a minute later.
    const arrived = periodOf(at) === "2026-10" && i % 2 === 1 ? Date.parse("2026-11-02T08:00:00Z") + i : at + 60_000;
    const long = i % 5 === 0;
    out.push({
      event_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
      org: "org_a",
      user: u.user,
      email: u.emails[Math.min(Math.floor(i / 3) % 4, u.emails.length - 1)]!,
      account: u.account,
      seat_tier: "premium",
      product: products[(i + Math.floor(i / 3)) % 3]!,
      model: models[(i + Math.floor(i / 9)) % 3]!,
      base: resolveModelId(models[(i + Math.floor(i / 9)) % 3]!),
      region: regions[Math.floor(i / 2) % 3]!,
      long,
      input: long ? 150_000 + i : 1000 * i,
      output: 17 * i,
      cacheWrite: long ? 40_000 : 3 * i,
      cacheRead: long ? 20_000 : 0,
      gross,
      net: dec(netCost(gross.toFixed(), DISCOUNT)),
      at,
      arrived,
    });
  }
  // Another org, to show nothing leaks across orgs.
  out.push({ ...out[40]!, event_id: "00000000-0000-4000-9000-000000000001", org: "org_b", user: "u9", email: "" });
  return out;
}

function usageRow(e: Priced): UsageEventRow {
  const ch = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");
  return {
    event_id: e.event_id,
    org_id: e.org,
    user_id: e.user,
    user_email: e.email,
    account_uuid: e.account,
    request_id: "",
    region: e.region,
    seat_tier: e.seat_tier,
    product: e.product,
    model: e.model,
    model_base: e.base,
    occurred_at: ch(e.at),
    input_tokens: e.input,
    output_tokens: e.output,
    cache_write_tokens: e.cacheWrite,
    cache_read_tokens: e.cacheRead,
    prompt_tokens: promptOf(e),
    long_context: e.long,
    rate_card_version: "test",
    input_cost: e.gross.toFixed(),
    output_cost: "0",
    cache_write_cost: "0",
    cache_read_cost: "0",
    gross_cost: e.gross.toFixed(),
    discount_pct: DISCOUNT,
    net_cost: e.net.toFixed(),
    priced_at: ch(e.arrived),
    batch_id: `b-${e.event_id}`,
    is_late: isLate(e),
  };
}

function rollupRow(e: Priced): SpendDailyRow {
  return {
    org_id: e.org,
    day: dayOf(e.at),
    user_id: e.user,
    seat_tier: e.seat_tier,
    product: e.product,
    model: e.base,
    region: e.region,
    long_context: e.long,
    batch_id: `b-${e.event_id}`,
    requests: 1,
    input_tokens: e.input,
    output_tokens: e.output,
    cache_write_tokens: e.cacheWrite,
    cache_read_tokens: e.cacheRead,
    gross_cost: e.gross.toFixed(),
    net_cost: e.net.toFixed(),
  };
}

describe("analytics routes over ClickHouse", () => {
  let ch: ClickHouse;
  let app: FastifyInstance;
  let now = NOW;
  const events = craftedEvents();
  // The control plane's part of invoices, in memory: finalizations in publish order, the first per month wins; each
  // is also written to control_changes as the recorder would (the invoice_lines view reads the winners there).
  const finals = new Map<string, InvoiceFinalState>();
  let version = 0;
  const billing = {
    get clickhouse() {
      return ch.client;
    },
    now: () => now,
    control: {
      contract: () => undefined,
      seats: () => [],
      invoiceFinal: (org: string, period: string) => finals.get(`${org}/${period}`),
      invoiceFinals: (org: string) => [...finals.values()].filter((f) => f.org_id === org),
      orgIds: () => [],
    },
    writer: {
      async publish(change: ControlChangeInput) {
        version++;
        if (change.kind !== "invoice_final") throw new Error(`unexpected ${change.kind}`);
        const key = `${change.org_id}/invoice_final/${change.period}/${change.finalization_id}`;
        await insertControlChanges(ch.client, [
          {
            version,
            org_id: change.org_id,
            kind: change.kind,
            key,
            change: JSON.stringify(change),
            actor: change.actor,
            at: chDateTime(Date.parse(change.at)),
          },
        ]);
        if (!finals.has(`${change.org_id}/${change.period}`)) {
          finals.set(`${change.org_id}/${change.period}`, { ...change, version });
        }
        return version;
      },
      waitFor: async () => undefined,
    },
  };

  beforeAll(async () => {
    ch = await testClickHouse("analytics");
    await migrate(ch.client);
    // Duplicates: the first ten events are written twice, in separate inserts (separate parts, unmerged).
    await insertUsageEvents(ch.client, events.slice(0, 30).map(usageRow));
    await insertUsageEvents(ch.client, [...events.slice(0, 10), ...events.slice(30)].map(usageRow));
    await insertSpendDaily(ch.client, events.map(rollupRow));
    // org_c: one event whose rollup never got written; reconciliation must name its user.
    const broken = events.slice(40, 43).map((e, i) => ({ ...e, org: "org_c", event_id: `c-${i}` }));
    await insertUsageEvents(ch.client, broken.map(usageRow));
    await insertSpendDaily(ch.client, broken.slice(0, 2).map(rollupRow));

    app = Fastify();
    app.setErrorHandler((err: Error & { status?: number; code?: string }, _request, reply) =>
      reply.code(err.status ?? 500).send({ error: { code: err.code ?? "internal", message: err.message } }),
    );
    const authorize = (request: FastifyRequest) => {
      if (request.headers.authorization !== `Bearer ${KEY}`) {
        throw Object.assign(new Error("unknown API key"), { status: 401, code: "unauthorized" });
      }
      return { orgId: (request.params as { org: string }).org };
    };
    registerAnalyticsRoutes(app, { clickhouse: ch.client, authorize, now: () => now });
    registerReconciliationRoutes(app, { ...billing, authorize });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await ch?.close();
  });

  const get = async (path: string) => {
    const res = await app.inject({ url: path, headers: { authorization: `Bearer ${KEY}` } });
    return { status: res.statusCode, headers: res.headers as Record<string, string>, text: res.body };
  };

  it("answers every route exactly as the recomputation, duplicates counted once", async () => {
    now = NOW;
    await checkRoutes(get, events, "org_a", NOW);
    await checkRoutes(get, events, "org_b", NOW);
    // The awkward emails are quoted as RFC 4180 says; u2's is the latest one given.
    const csv = (await get("/v1/orgs/org_a/export.csv?range=last_90_days")).text;
    expect(csv).toContain('"ann ""the, analyst""@a.example",u1,acc-1,');
    expect(csv).toContain('"carol\r\nlines@a.example",u3,"acc,3",');
    expect(csv).toContain("robert@a.example,u2,,");
  });

  it("freezes a final invoice whose usage lines hold each event once; invoice_lines shows the first finalization only", async () => {
    const period = "2026-10";
    const made = await finalizeInvoice(billing, "org_a", period, "operator");
    expect(made.created).toBe(true);
    const doc = JSON.parse(made.json) as {
      status: string;
      lines: Record<string, string | number | null>[];
      total: string;
    };
    expect(doc.status).toBe("final");
    // Usage lines: one per user × product × base model, net, each event once (the duplicates are not counted twice).
    const perLine = new Map<string, { net: Exact; n: number }>();
    for (const x of expectedExport(events, "org_a", ...periodMs(period))) {
      const k = [x.user_id, x.product, x.model].join("|");
      const held = perLine.get(k) ?? { net: Exact.of(0), n: 0 };
      perLine.set(k, { net: held.net.plus(x.net), n: held.n + x.request_count });
    }
    const usage = doc.lines.filter((l) => l.kind === "usage");
    expect(usage.length).toBeGreaterThan(3);
    expect(
      new Map(
        usage.map((l) => [
          [l.user_id, l.product, l.model].join("|"),
          { net: Exact.of(String(l.amount_exact)), n: l.quantity },
        ]),
      ),
    ).toEqual(perLine);
    // A second finalizer that lost the race: its document and record exist, and nobody reads them.
    await insertInvoiceDocument(
      ch.client,
      {
        org_id: "org_a",
        period,
        finalization_id: "loser",
        number: "INV-LOSER",
        finalized_at: chDateTime(now),
        finalized_by: "operator",
        total: "1.00",
        document: "{}",
      },
      [
        {
          line_no: 1,
          kind: "usage",
          description: "x",
          quantity: 1,
          user_id: "zz",
          product: "chat",
          model: "m",
          tier: "",
          from_tier: "",
          charge_day: "",
          adjusts_period: "",
          amount_exact: "1",
          amount: "1.00",
        },
      ],
    );
    await billing.writer.publish({
      kind: "invoice_final",
      org_id: "org_a",
      period,
      finalization_id: "loser",
      number: "INV-LOSER",
      actor: "operator",
      at: new Date(now).toISOString(),
    });
    const rs = await ch.client.query({
      query: `SELECT kind, user_id, product, model, quantity, toString(amount_exact) AS exact, toString(amount) AS amount
              FROM invoice_lines WHERE org_id = {org:String} AND period = {period:String} ORDER BY line_no`,
      query_params: { org: "org_a", period },
      format: "JSONEachRow",
    });
    const rows = await rs.json<Record<string, string>>();
    expect(
      rows.map((r) => [r.kind, r.user_id, r.product, r.model, Number(r.quantity), Exact.of(r.exact!).toFixed()]),
    ).toEqual(
      doc.lines.map((l) => [
        l.kind,
        l.user_id ?? "",
        l.product ?? "",
        l.model ?? "",
        l.quantity,
        String(l.amount_exact),
      ]),
    );
    // docs/month-end-close.md's queries, as finance runs them: sections 1 to 4 against this final month.
    const close = readFileSync(new URL("../docs/month-end-close.md", import.meta.url), "utf8");
    /** The `nth` SQL block of a section (0: the first). */
    const sqlOf = (section: string, nth = 0) => {
      const at = close.indexOf(`## ${section}`);
      const blocks = [...close.slice(at).matchAll(/```sql\n([\s\S]*?)```/g)];
      if (at < 0 || !blocks[nth]) throw new Error(`no SQL block ${nth} under "## ${section}"`);
      return blocks[nth][1]!;
    };
    const run = async (section: string, nth = 0, params: Record<string, string> = {}) =>
      (
        await ch.client.query({
          query: sqlOf(section, nth),
          query_params: { period, org: "org_a", ...params },
          format: "JSONEachRow",
        })
      ).json<Record<string, string | number>>();
    const totals = (await run("1.")).find((r) => r.org_id === "org_a")!;
    expect(Exact.of(String(totals.total_usd)).toFixed()).toBe(Exact.of(docTotal(made.json)).toFixed());
    expect(await run("2.")).toHaveLength(JSON.parse(made.json).lines.length);
    const closed = (await run("3.")).find((r) => r.org_id === "org_a")!;
    expect([Number(closed.balanced), Exact.of(String(closed.pending_net)).toFixed()]).toEqual([1, "0"]);
    expect(await run("4.")).toEqual([]);
    // The reconciliation of a final month: balanced, its invoice side the frozen usage lines.
    const rec = JSON.parse((await get(`/v1/orgs/org_a/reconciliation?period=${period}`)).text) as ReconciliationBody & {
      invoice: { status: string };
    };
    expect(rec.balanced).toBe(true);
    expect(rec.invoice.status).toBe("final");
    expect(rec.invoice.usage_lines.net).toBe(rec.raw.net);
    // Section 4's per-batch query finds a batch rolled up twice, and its repair (delete the batch's rollup, build it
    // again from usage_events) restores it. Doubled as it happens: a load's rebuild lands beside the batch's own
    // rollup (whose insert the client had given up on), so the repair's insert builds a block ClickHouse has seen.
    const user = String(usage[0]!.user_id);
    expect(await run("4.", 1, { user })).toEqual([]);
    const batches = await (
      await ch.client.query({
        query: `SELECT batch_id FROM usage_events
                WHERE org_id = 'org_a' AND user_id = {user:String} AND formatDateTime(occurred_at, '%Y-%m') = {period:String}
                GROUP BY batch_id HAVING count() = 1 ORDER BY batch_id LIMIT 1`,
        query_params: { user, period },
        format: "JSONEachRow",
      })
    ).json<{ batch_id: string }>();
    const doubled = batches[0]!.batch_id;
    await rebuildRollup(ch.client, doubled);
    expect((await run("4.")).map((r) => r.user_id)).toEqual([user]);
    const found = await run("4.", 1, { user });
    expect(found.map((r) => r.batch_id)).toEqual([doubled]);
    expect(Exact.of(String(found[0]!.rollup_net)).eq(Exact.of(String(found[0]!.raw_net)).times(2))).toBe(true);
    // The rebuild twice (as if a load had rebuilt the batch between the two statements): the second adds nothing.
    for (const step of [2, 3, 3]) {
      await ch.client.command({ query: sqlOf("4.", step), query_params: { batch: doubled } });
    }
    expect(await run("4.", 1, { user })).toEqual([]);
    expect((await run("4.")).length).toBe(0);
  });

  it("finalizes ended months on their own after the grace days, once, and never the current month", async () => {
    now = NOW;
    // Two orgs with usage in September, ended long before NOW: one event each.
    const september = ["org_f", "org_g"].map((org, i) => ({
      ...events[0]!,
      org,
      event_id: `00000000-0000-4000-9000-00000000009${i}`,
      at: Date.parse("2026-09-15T10:00:00Z"),
    }));
    await insertUsageEvents(ch.client, september.map(usageRow));
    await insertSpendDaily(ch.client, september.map(rollupRow));
    const finalizer = startInvoiceFinalizer({
      ...billing,
      logger: quietLogger,
      graceDays: 3,
      everyMs: 3_600_000,
    });
    try {
      const months = async () => {
        const rs = await ch.client.query({
          query: "SELECT DISTINCT org_id, formatDateTime(day, '%Y-%m') AS p FROM spend_daily ORDER BY org_id, p",
          format: "JSONEachRow",
        });
        return (await rs.json<{ org_id: string; p: string }>()).map((r) => `${r.org_id}/${r.p}`);
      };
      // Every org and month with usage before 2026-11 (ended more than 3 days before NOW), but org_a 2026-10, final.
      const due = (await months()).filter((m) => m.split("/")[1]! < "2026-11" && !finals.has(m));
      expect(due).toEqual(expect.arrayContaining(["org_f/2026-09", "org_g/2026-09"]));
      expect(await finalizer.runOnce()).toBe(due.length);
      for (const m of due) expect(finals.get(m)?.actor, m).toBe("invoice-finalizer");
      expect([...finals.keys()].some((k) => k.endsWith("/2026-11"))).toBe(false);
      // Nothing is due on the next run; org_f's September invoice holds its one event.
      expect(await finalizer.runOnce()).toBe(0);
      const sept = JSON.parse((await get("/v1/orgs/org_f/reconciliation?period=2026-09")).text) as ReconciliationBody;
      expect(sept).toMatchObject({ balanced: true, invoice: { status: "final", usage_lines: { requests: 1 } } });
    } finally {
      finalizer.stop();
    }
  });

  it("reconciliation names the user whose rollup is missing an event", async () => {
    const body = JSON.parse((await get("/v1/orgs/org_c/reconciliation?period=2026-11")).text) as ReconciliationBody;
    expect(body.balanced).toBe(false);
    expect(body.raw.requests).toBe(3);
    expect(body.rollup.requests).toBe(2);
    // The invoice figure against the three events themselves: the month's draft holds each of them once.
    const three = events.slice(40, 43);
    expect(body.invoice).toMatchObject({
      status: "draft",
      requests: 3,
      net: three.reduce((t, e) => t.plus(e.net), Exact.of(0)).toFixed(),
    });
    const missing = events[42]!;
    expect(body.differences).toEqual([
      {
        user_id: missing.user,
        raw: { requests: 1, gross: missing.gross.toFixed(), net: missing.net.toFixed() },
        rollup: { requests: 0, gross: "0", net: "0" },
        invoice: { requests: 1, net: missing.net.toFixed() },
      },
    ]);
  });

  it("refuses every broken window rule with a 400 naming it", async () => {
    now = NOW;
    await checkRules(get, "org_a", NOW);
    // A year on, 2026 dates are more than 365 days back: the age rule, not the 2026 rule, is broken.
    now = Date.parse("2027-03-15T09:00:00Z");
    await checkRules(get, "org_a", now);
    const res = await get("/v1/orgs/org_a/trends?from=2026-03-01&to=2026-03-10");
    expect(JSON.parse(res.text).error.code).toBe("trends_start_too_old");
    now = NOW;
    expect((await app.inject({ url: "/v1/orgs/org_a/top-users" })).statusCode).toBe(401);
  });
});

// ---------------------------------------------------------------------------------------------------------
// 2. Through the pipeline, against the aggregator's API and `usagectl`.

describe("analytics through the pipeline", () => {
  const kafka = testKafka("analytics-test");
  beforeAll(async () => {
    await resetTopics(kafka);
  });

  it("serves exact top users, trends, CSV and a balanced reconciliation listing the late events", async () => {
    const now = Date.now();
    const generated = generateEventArray({
      seed: 8128,
      count: 20_000,
      now,
      duplicateRate: 0.1,
      lateRate: 0.03,
      longContextRate: 0.05,
      orgs: 2,
      usersPerOrg: 15,
    });
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = {
      KAFKA_BROKERS: testBrokers().join(","),
      LOG_LEVEL: "warn",
      USAGE_DATA_DIR: tempDir("usage-analytics-test-"),
      USAGE_API_PORT: String(port),
      USAGE_API_KEY: KEY,
      USAGE_PRICING_GROUP: `test-analytics-pricing-${now}`,
      USAGE_AGGREGATOR_GROUP: `test-analytics-${now}`,
      USAGE_INSTANCE_ID: "analytics-test",
    };
    const get = async (path: string) => {
      const res = await fetch(`${base}${path}`, { headers: { authorization: `Bearer ${KEY}` } });
      return { status: res.status, headers: Object.fromEntries(res.headers), text: await res.text() };
    };
    const pricing = spawnCli(["run", "pricing"], env);
    const aggregator = spawnCli(["run", "aggregator"], env);
    try {
      await waitFor("the API", async () => (await fetch(`${base}/healthz`)).ok, 60_000);
      const policy = { discount_pct: "12.5", org_limit: "1000000" };
      const put = await fetch(`${base}/v1/orgs/org_1/policy`, {
        method: "PUT",
        headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
        body: JSON.stringify(policy),
      });
      expect(put.status).toBe(200);

      const produced = await runCli(["produce"], { env, input: generated.map((e) => JSON.stringify(e)).join("\n") });
      expect(produced.code, produced.stderr).toBe(0);

      // Independent recomputation: each distinct event priced offline, the discount applied per event.
      const price = createPricer(loadRateCard());
      const distinct = new Map<string, UsageEvent>();
      for (const e of generated) distinct.set(e.event_id, e);
      const xs: Priced[] = [...distinct.values()].map((e) => {
        const v = validateUsageEvent(e, { now });
        if (!v.ok) throw new Error(v.rejection.message);
        const p = price(v.value);
        if (!p.ok) throw new Error(p.rejection.message);
        const gross = p.value.total_cost;
        return {
          event_id: e.event_id,
          org: e.org_id,
          user: e.user_id,
          email: e.user_email ?? "",
          account: e.account_uuid ?? "",
          seat_tier: e.seat_tier,
          product: e.product,
          model: e.model,
          base: resolveModelId(e.model),
          region: e.region ?? "",
          long: p.value.long_context,
          input: e.input_tokens,
          output: e.output_tokens,
          cacheWrite: e.cache_write_tokens,
          cacheRead: e.cache_read_tokens,
          gross: dec(gross),
          net: dec(e.org_id === "org_1" ? netCost(gross, policy.discount_pct) : gross),
          at: Date.parse(e.occurred_at),
          // Everything was published now: what occurred before this month arrives late.
          arrived: now,
        };
      });
      const orgs = [...new Set(xs.map((e) => e.org))].sort();
      // The workload spans this month and the last: their two month-to-date totals cover every event.
      const months = [now, monthStart(now) - DAY].map((at) => ({ at: dayOf(at), range: windowAsOf("mtd", at) }));
      await waitFor(
        "every distinct event recorded",
        async () => {
          for (const org of orgs) {
            for (const { at, range } of months) {
              const body = JSON.parse((await get(`/v1/orgs/${org}/spend?window=mtd&at=${at}`)).text) as {
                total: string;
              };
              const expected = sum(inRange(xs, org, range.fromMs, range.toExclusiveMs), (e) => e.net);
              if (!dec(body.total).eq(expected)) return false;
            }
          }
          return true;
        },
        180_000,
      );
      expect(xs.some(isLate)).toBe(true);

      for (const org of orgs) await checkRoutes(get, xs, org, now);
      await checkRules(get, "org_1", now);

      // The CSV's gross total equals the MTD gross total of GET …/spend.
      const spend = JSON.parse((await get("/v1/orgs/org_1/spend?window=mtd&group_by=user")).text) as {
        rows: { gross_spend: string }[];
      };
      const mtdGross = spend.rows.reduce((t, r) => t.plus(r.gross_spend), Exact.of(0));
      const csv = (await get("/v1/orgs/org_1/export.csv?range=mtd")).text;
      const csvGross = parseCsv(csv)
        .slice(1)
        .reduce((t, r) => t.plus(r[9]!), Exact.of(0));
      expect(csvGross.toFixed()).toBe(mtdGross.toFixed());

      // usagectl: the same CSV byte for byte, the same reconciliation, readable tables, one-line errors.
      const cliEnv = { USAGE_API_PORT: String(port), USAGE_API_KEY: KEY };
      const exported = await runCli(["export", "--org", "org_1", "--range", "mtd"], { env: cliEnv });
      expect(exported.code, exported.stderr).toBe(0);
      expect(exported.stdout).toBe(csv);
      const out = `${tempDir("usage-analytics-out-")}/mtd.csv`;
      expect((await runCli(["export", "--org", "org_1", "--out", out], { env: cliEnv })).code).toBe(0);
      expect(readFileSync(out, "utf8")).toBe(csv);

      const lastPeriod = periodOf(monthStart(now) - 1);
      const reconciled = await runCli(["reconcile", "--org", "org_1", "--period", lastPeriod, "--json"], {
        env: cliEnv,
      });
      expect(reconciled.code, reconciled.stderr).toBe(0);
      expect(JSON.parse(reconciled.stdout)).toEqual(
        JSON.parse((await get(`/v1/orgs/org_1/reconciliation?period=${lastPeriod}`)).text),
      );
      const table = await runCli(["reconcile", "--org", "org_1", "--period", lastPeriod], { env: cliEnv });
      expect(table.code).toBe(0);
      expect(table.stdout).toContain(`org_1 ${lastPeriod}: balanced`);
      expect(table.stdout).toContain("differences: none");

      const report = await runCli(["report", "--org", "org_1", "--group-by", "user"], { env: cliEnv });
      expect(report.code, report.stderr).toBe(0);
      const mtd = windowAsOf("mtd", now);
      const mtdNet = sum(inRange(xs, "org_1", mtd.fromMs, mtd.toExclusiveMs), (e) => e.net).toFixed();
      expect(report.stdout).toContain(`total net spend: ${mtdNet} USD`);
      const reportJson = await runCli(["report", "--org", "org_1", "--json"], { env: cliEnv });
      expect(JSON.parse(reportJson.stdout).total).toBe(mtdNet);

      const tooOld = await runCli(["export", "--org", "org_1", "--from", dayOf(now - 120 * DAY)], { env: cliEnv });
      expect(tooOld.code).toBe(1);
      expect(tooOld.stderr.trim().split("\n")).toHaveLength(1);
      expect(tooOld.stderr).toContain("at most 90 days back");
      const badKey = await runCli(["report", "--org", "org_1"], {
        env: { ...cliEnv, USAGE_API_KEY: "not-the-key-0123456789" },
      });
      expect(badKey.code).toBe(1);
      expect(badKey.stderr.trim().split("\n")).toHaveLength(1);
      const badOption = await runCli(["reconcile", "--org", "org_1", "--period", "2026-13"], { env: cliEnv });
      expect(badOption.code).toBe(2);
      expect(badOption.stderr).toContain("--period");
    } finally {
      pricing.child.kill("SIGTERM");
      aggregator.child.kill("SIGTERM");
      await Promise.all([pricing.exited, aggregator.exited]);
    }
  });
});
