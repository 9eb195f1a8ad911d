/**
 * Activity and group views (SPEC §8 turn 2, §5 groups, §13 seats) on a real API instance (startTestApi: the control
 * plane on the test broker, keys and roles as deployed) over embedded ClickHouse, spend_daily rows inserted directly:
 *
 *  - GET …/activity: DAU / WAU / MAU at several days, users active exactly on each window's first day and on the day
 *    before it, a row with zero requests (not active), rows after `at` (never counted), the same user-day written in
 *    several rows and batches, another org's rows; seats assigned at the end of day `at` (an assignment at
 *    23:59:59.999 counts, one at the next 00:00 does not, a tier change is the same seat), seats active in 30 days,
 *    utilization exact ("0.75") or half-up at 4 places ("0.6667"), null without seats; by_product.
 *  - spend and trends with group_by=group (overlapping groups, "(none)") and product=, compared with a recomputation
 *    here from the inserted rows: plain loops, money as exact rationals (test/harness/exact.ts), counts as integers.
 *  - 400 invalid_at, invalid_product, invalid_group_by; roles: analyst reads activity, a member may not; a member's
 *    spend by group is refused (403 forbidden_role), by user with product= answers its own row.
 */
import { type ClickHouse, insertSpendDaily, migrate, type SpendDailyRow } from "@usage/clickhouse";
import { createLogger } from "@usage/runtime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApi } from "../../../test/harness/api.js";
import { Exact } from "../../../test/harness/exact.js";
import { resetTopics, testClickHouse, testKafka } from "../../../test/harness/index.js";
import type { Api } from "./server.js";

const KEY = "activity-operator-key-0123456789";
const NOW = Date.parse("2026-03-20T12:00:00Z");
const DAY = 86_400_000;
const ORG = "org_act";
const OTHER = "org_act_other";
const PRODUCTS = ["chat", "claude_code", "cowork"] as const;
const logger = createLogger({ level: "warn", name: "test" });
const kafka = testKafka("api-activity");

const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const dayMs = (day: string) => Date.parse(`${day}T00:00:00Z`);
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

// ---------------------------------------------------------------------------------------------------------
// The rows

const ROWS: SpendDailyRow[] = [];
let serial = 0;
function row(org: string, day: string, user: string, product: string, requests: number, model = "claude-sonnet-4-5") {
  serial++;
  const gross = `${serial % 9}.${String((serial * 7_919_000_003_711) % 10 ** 15).padStart(15, "0")}123`;
  // Net: a different awkward decimal, up to 18 places.
  const net = `${serial % 5}.${String((serial * 104_729_000_001) % 10 ** 17).padStart(17, "0")}7`;
  ROWS.push({
    org_id: org,
    day,
    user_id: user,
    seat_tier: "standard",
    product,
    model,
    region: serial % 3 === 0 ? "" : "us-east",
    long_context: serial % 4 === 0,
    batch_id: `b-${serial % 6}`,
    requests,
    input_tokens: requests * 1000 + serial,
    output_tokens: requests * 300 + (serial % 17),
    cache_write_tokens: serial % 11,
    cache_read_tokens: (serial * 13) % 29,
    gross_cost: requests === 0 ? "0" : gross,
    net_cost: requests === 0 ? "0" : net,
  });
}

// Regular users u1…u6 on many days from 2026-02-01 to 2026-03-25 (some after NOW's day: never counted as of it).
for (let d = dayMs("2026-02-01"); d <= dayMs("2026-03-25"); d += DAY) {
  const k = (d - dayMs("2026-02-01")) / DAY;
  for (let u = 1; u <= 6; u++) {
    if ((k + u) % (u + 1) !== 0) continue;
    row(
      ORG,
      ymd(d),
      `u${u}`,
      PRODUCTS[(k + u) % 3]!,
      1 + ((k * u) % 4),
      u % 2 ? "claude-sonnet-4-5" : "claude-haiku-4-5",
    );
  }
}
// Window edges as of 2026-03-20: wau from 03-14, mau from 02-19.
row(ORG, "2026-03-14", "u7", "cowork", 2); // first day of the wau window
row(ORG, "2026-03-13", "u8", "chat", 1); // the day before it: mau only
row(ORG, "2026-02-19", "u12", "claude_code", 3); // first day of the mau window
row(ORG, "2026-02-18", "u13", "chat", 1); // the day before it: never
row(ORG, "2026-03-20", "u14", "chat", 0); // a row without requests: not active
row(ORG, "2026-03-21", "u15", "chat", 5); // after at: not as of 03-20
// The same user-day in several rows: once per user.
row(ORG, "2026-03-20", "u1", "chat", 1);
row(ORG, "2026-03-20", "u1", "claude_code", 2);
row(ORG, "2026-03-20", "u1", "chat", 1, "claude-opus-4-1");
// Another org on the same days, with users of the same names and a few of its own.
for (const [day, user] of [
  ["2026-03-20", "u1"],
  ["2026-03-19", "x1"],
  ["2026-03-02", "x2"],
  ["2026-03-20", "x3"],
] as const) {
  row(OTHER, day, user, "chat", 2);
}

/** Seat assignments (PUT …/seats/:user with effective_at), in order. */
const SEATS: [string, string, string][] = [
  ["u1", "standard", "2026-01-01T00:00:00Z"],
  ["u2", "chat", "2026-02-01T00:00:00Z"],
  ["u3", "chat", "2026-02-10T09:30:00Z"],
  ["u3", "premium", "2026-03-05T00:00:00Z"], // an upgrade: the same seat
  ["u9", "standard", "2026-02-01T00:00:00Z"], // never active
  ["u13", "chat", "2026-01-15T00:00:00Z"], // active only before the mau window
  ["u10", "chat", "2026-03-20T23:59:59.999Z"], // counts at the end of 03-20
  ["u11", "chat", "2026-03-21T00:00:00Z"], // counts from 03-21
  ["u7", "standard", "2026-03-01T00:00:00Z"],
];

const POLICY = {
  groups: {
    eng: { limit: "100", members: ["u1", "u2", "u3"] },
    research: { members: ["u3", "u4", "u7"] },
    idle: { members: ["u_nobody"] },
  },
};

// ---------------------------------------------------------------------------------------------------------
// The independent recomputation

function activeUsers(org: string, from: string, to: string, product?: string): Set<string> {
  const out = new Set<string>();
  for (const r of ROWS) {
    if (r.org_id !== org || r.day < from || r.day > to || r.requests <= 0) continue;
    if (product !== undefined && r.product !== product) continue;
    out.add(r.user_id);
  }
  return out;
}

function expectedActivity(org: string, at: string) {
  const atMs = dayMs(at);
  const week = ymd(atMs - 6 * DAY);
  const month = ymd(atMs - 29 * DAY);
  const holders = new Set<string>();
  if (org === ORG) for (const [user, , eff] of SEATS) if (Date.parse(eff) < atMs + DAY) holders.add(user);
  const mau = activeUsers(org, month, at);
  const active = [...holders].filter((u) => mau.has(u)).length;
  let utilization: string | null = null;
  if (holders.size > 0) {
    const q = Exact.of(active).div(holders.size);
    try {
      utilization = q.toFixed();
    } catch {
      utilization = q.round(4, "half_up").toFixed();
    }
  }
  const by_product: Record<string, { dau: number; wau: number; mau: number }> = {};
  for (const p of PRODUCTS) {
    by_product[p] = {
      dau: activeUsers(org, at, at, p).size,
      wau: activeUsers(org, week, at, p).size,
      mau: activeUsers(org, month, at, p).size,
    };
  }
  return {
    org_id: org,
    at,
    windows: { dau: { from: at, to: at }, wau: { from: week, to: at }, mau: { from: month, to: at } },
    dau: activeUsers(org, at, at).size,
    wau: activeUsers(org, week, at).size,
    mau: mau.size,
    seats_assigned: holders.size,
    seats_active_30d: active,
    utilization,
    by_product,
  };
}

interface Sums {
  spend: Exact;
  gross: Exact;
  requests: number;
  input: number;
  output: number;
  cacheWrite: number;
  cacheRead: number;
}
const empty = (): Sums => ({
  spend: Exact.of(0),
  gross: Exact.of(0),
  requests: 0,
  input: 0,
  output: 0,
  cacheWrite: 0,
  cacheRead: 0,
});
function add(s: Sums, r: SpendDailyRow): void {
  s.spend = s.spend.plus(r.net_cost);
  s.gross = s.gross.plus(r.gross_cost);
  s.requests += r.requests;
  s.input += r.input_tokens;
  s.output += r.output_tokens;
  s.cacheWrite += r.cache_write_tokens;
  s.cacheRead += r.cache_read_tokens;
}

/** The groups a user counts in: every policy group listing them, else "(none)". */
function groupsOf(user: string): string[] {
  const names = Object.entries(POLICY.groups)
    .filter(([, g]) => g.members.includes(user))
    .map(([n]) => n);
  return names.length ? names : ["(none)"];
}

function expectedGroupSpend(from: string, to: string, product?: string) {
  const groups = new Map<string, Sums>(Object.keys(POLICY.groups).map((g) => [g, empty()]));
  const total = empty();
  for (const r of ROWS) {
    if (r.org_id !== ORG || r.day < from || r.day > to) continue;
    if (product !== undefined && r.product !== product) continue;
    add(total, r);
    for (const g of groupsOf(r.user_id)) {
      if (!groups.has(g)) groups.set(g, empty());
      add(groups.get(g)!, r);
    }
  }
  const rows = [...groups]
    .sort(([a, x], [b, y]) => y.spend.cmp(x.spend) || cmp(a, b))
    .map(([key, s]) => ({
      key,
      spend: s.spend.toFixed(),
      gross_spend: s.gross.toFixed(),
      requests: s.requests,
      input_tokens: s.input,
      output_tokens: s.output,
      cache_write_tokens: s.cacheWrite,
      cache_read_tokens: s.cacheRead,
    }));
  return { total: total.spend.toFixed(), rows };
}

function expectedGroupTrends(from: string, to: string, product?: string) {
  const days = [];
  for (let d = dayMs(from); d <= dayMs(to); d += DAY) {
    const day = ymd(d);
    const groups = new Map<string, Sums>();
    for (const r of ROWS) {
      if (r.org_id !== ORG || r.day !== day) continue;
      if (product !== undefined && r.product !== product) continue;
      for (const g of groupsOf(r.user_id)) {
        if (!groups.has(g)) groups.set(g, empty());
        add(groups.get(g)!, r);
      }
    }
    days.push({
      day,
      groups: [...groups]
        .sort(([a, x], [b, y]) => y.spend.cmp(x.spend) || cmp(a, b))
        .map(([key, s]) => ({
          key,
          spend: s.spend.toFixed(),
          gross_spend: s.gross.toFixed(),
          requests: s.requests,
          tokens: s.input + s.output + s.cacheWrite + s.cacheRead,
        })),
    });
  }
  return days;
}

// ---------------------------------------------------------------------------------------------------------
// The API

let ch: ClickHouse;
let api: Api;
let stop: () => Promise<void>;
const keys = { analyst: "", member: "", groupOwner: "" };
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

async function call(method: "GET" | "PUT" | "POST", url: string, key = KEY, payload?: unknown) {
  const res = await api.inject({
    method,
    url,
    headers: bearer(key),
    ...(payload === undefined ? {} : { payload: payload as object }),
  });
  // biome-ignore lint/suspicious/noExplicitAny: response bodies asserted field by field
  return { status: res.statusCode, body: res.json() as Record<string, any> };
}
async function ok(method: "GET" | "PUT" | "POST", url: string, key = KEY, payload?: unknown) {
  const res = await call(method, url, key, payload);
  expect(res.status, `${method} ${url}: ${JSON.stringify(res.body)}`).toBeLessThan(300);
  return res.body;
}

beforeAll(async () => {
  ch = await testClickHouse("api-activity");
  await migrate(ch.client);
  await resetTopics(kafka);
  ({ app: api, stop } = await startTestApi({
    kafka,
    clickhouse: ch.client,
    logger,
    operatorKey: KEY,
    now: () => NOW,
    name: "activity",
  }));
  // In three inserts (three parts, unmerged), so a user-day may span parts.
  const third = Math.ceil(ROWS.length / 3);
  for (let i = 0; i < ROWS.length; i += third) await insertSpendDaily(ch.client, ROWS.slice(i, i + third));
  await ok("PUT", `/v1/orgs/${ORG}/policy`, KEY, POLICY);
  for (const [user, tier, effective_at] of SEATS) {
    await ok("PUT", `/v1/orgs/${ORG}/seats/${user}`, KEY, { tier, effective_at });
  }
  const make = async (spec: Record<string, unknown>) =>
    (await ok("POST", `/v1/orgs/${ORG}/keys`, KEY, spec)).key as string;
  keys.analyst = await make({ role: "analyst" });
  keys.member = await make({ role: "member", user: "u3" });
  keys.groupOwner = await make({ role: "group_owner", group: "eng" });
});
afterAll(async () => {
  await stop?.();
  await ch?.close();
});

describe("GET /v1/orgs/{org}/activity", () => {
  it("answers DAU, WAU, MAU, seats and utilization exactly, at several days", async () => {
    const figures: string[] = [];
    for (const at of [
      "2026-03-20",
      "2026-03-21",
      "2026-03-14",
      "2026-03-01",
      "2026-02-15",
      "2026-01-10",
      "2025-12-31",
    ]) {
      const body = await ok("GET", `/v1/orgs/${ORG}/activity?at=${at}`);
      const expected = expectedActivity(ORG, at);
      expect(body, at).toEqual(expected);
      figures.push(
        `${at}: dau ${body.dau} wau ${body.wau} mau ${body.mau} seats ${body.seats_active_30d}/${body.seats_assigned} = ${body.utilization}`,
      );
    }
    process.stderr.write(`activity test:\n  ${figures.join("\n  ")}\n`);
    // The edges, spelled out as of 2026-03-20.
    const at = await ok("GET", `/v1/orgs/${ORG}/activity?at=2026-03-20`);
    const expected = expectedActivity(ORG, "2026-03-20");
    expect(activeUsers(ORG, "2026-03-14", "2026-03-20").has("u7")).toBe(true);
    expect(activeUsers(ORG, "2026-03-14", "2026-03-20").has("u8")).toBe(false);
    expect(activeUsers(ORG, "2026-02-19", "2026-03-20").has("u12")).toBe(true);
    expect(activeUsers(ORG, "2026-02-19", "2026-03-20").has("u13")).toBe(false);
    expect(activeUsers(ORG, "2026-03-20", "2026-03-20").has("u14")).toBe(false);
    // u1, u2, u3, u9, u13, u10 (23:59:59.999), u7: seven seats; u11 from the next day.
    expect(at.seats_assigned).toBe(7);
    expect(expected.seats_assigned).toBe(7);
    expect((await ok("GET", `/v1/orgs/${ORG}/activity?at=2026-03-21`)).seats_assigned).toBe(8);
    // A repeating quotient is rounded half-up at 4 places; a finite one is exact.
    expect(at.utilization).toMatch(/^0\.\d{1,4}$|^1$|^0$/);
  });

  it("gives a finite utilization exactly and a repeating one half-up at 4 places; null without seats", async () => {
    // 2026-01-10: only u1 holds a seat (u13's starts on 01-15); nobody was active yet.
    const jan = await ok("GET", `/v1/orgs/${ORG}/activity?at=2026-01-10`);
    expect(jan.seats_assigned).toBe(1);
    expect(jan).toEqual(expectedActivity(ORG, "2026-01-10"));
    const none = await ok("GET", `/v1/orgs/${ORG}/activity?at=2025-12-31`);
    expect(none.seats_assigned).toBe(0);
    expect(none.utilization).toBeNull();
    const values = new Set<string | null>();
    for (let d = dayMs("2026-02-01"); d <= dayMs("2026-03-25"); d += DAY) {
      const body = await ok("GET", `/v1/orgs/${ORG}/activity?at=${ymd(d)}`);
      expect(body, ymd(d)).toEqual(expectedActivity(ORG, ymd(d)));
      values.add(body.utilization);
    }
    // Among those days both kinds occur: a quotient with a finite expansion and a repeating one.
    const repeating = [...values].filter((v) => v !== null && v.length === 6);
    expect(repeating.length, [...values].join(" ")).toBeGreaterThan(0);
  });

  it("defaults to today (UTC) and counts no other org", async () => {
    const body = await ok("GET", `/v1/orgs/${ORG}/activity`);
    expect(body).toEqual(expectedActivity(ORG, "2026-03-20"));
    const other = await ok("GET", `/v1/orgs/${OTHER}/activity`);
    expect(other).toEqual(expectedActivity(OTHER, "2026-03-20"));
    expect(other.dau).toBe(2);
    expect(other.utilization).toBeNull();
  });

  it("refuses a bad at with 400 invalid_at; analysts read it, members may not", async () => {
    for (const bad of ["2026-02-30", "2026-3-01", "yesterday", "", "1999-12-31", "2026-03-20T00:00:00Z"]) {
      const res = await call("GET", `/v1/orgs/${ORG}/activity?at=${encodeURIComponent(bad)}`);
      expect(res.status, bad).toBe(400);
      expect(res.body.error.code, bad).toBe("invalid_at");
    }
    expect((await call("GET", `/v1/orgs/${ORG}/activity?at=2026-03-20&at=2026-03-19`)).body.error.code).toBe(
      "invalid_at",
    );
    expect((await call("GET", `/v1/orgs/${ORG}/activity`, keys.analyst)).status).toBe(200);
    for (const key of [keys.member, keys.groupOwner]) {
      const res = await call("GET", `/v1/orgs/${ORG}/activity`, key);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("forbidden_role");
    }
  });
});

describe("spend and trends by policy group, and for one product", () => {
  it("folds spend into overlapping groups exactly, with (none) and every policy group", async () => {
    for (const window of ["mtd", "qtd", "ytd"] as const) {
      for (const product of [undefined, ...PRODUCTS]) {
        const q = `window=${window}&at=2026-03-20&group_by=group${product ? `&product=${product}` : ""}`;
        const body = await ok("GET", `/v1/orgs/${ORG}/spend?${q}`);
        const from = window === "mtd" ? "2026-03-01" : "2026-01-01";
        const expected = expectedGroupSpend(from, "2026-03-20", product);
        expect(body.rows, q).toEqual(expected.rows);
        expect(body.total, q).toBe(expected.total);
        expect(body.overlapping).toBe(true);
        expect(body.note).toContain("several groups");
        expect(body.group_by).toBe("group");
        if (product) expect(body.product).toBe(product);
      }
    }
    const mtd = await ok("GET", `/v1/orgs/${ORG}/spend?at=2026-03-20&group_by=group`);
    expect(mtd.rows.map((r: { key: string }) => r.key).sort()).toEqual(["(none)", "eng", "idle", "research"]);
    expect(mtd.rows.find((r: { key: string }) => r.key === "idle").spend).toBe("0");
    // Overlap: the group rows add up to more than the total (u3 is in eng and research).
    const sumRows = mtd.rows.reduce((t: Exact, r: { spend: string }) => t.plus(r.spend), Exact.of(0));
    expect(sumRows.gt(mtd.total)).toBe(true);
    process.stderr.write(
      `activity test: spend MTD by group ${mtd.rows.map((r: { key: string; spend: string }) => `${r.key}=${r.spend}`).join(" ")}; total ${mtd.total}\n`,
    );
  });

  it("filters spend by product for every other grouping, exactly", async () => {
    for (const product of PRODUCTS) {
      const body = await ok("GET", `/v1/orgs/${ORG}/spend?at=2026-03-20&group_by=model&product=${product}`);
      const byModel = new Map<string, Sums>();
      for (const r of ROWS) {
        if (r.org_id !== ORG || r.product !== product || r.day < "2026-03-01" || r.day > "2026-03-20") continue;
        if (!byModel.has(r.model)) byModel.set(r.model, empty());
        add(byModel.get(r.model)!, r);
      }
      expect(
        body.rows.map((r: { key: string; spend: string; requests: number }) => [r.key, r.spend, r.requests]),
      ).toEqual(
        [...byModel]
          .sort(([a, x], [b, y]) => y.spend.cmp(x.spend) || cmp(a, b))
          .map(([k, s]) => [k, s.spend.toFixed(), s.requests]),
      );
      const all = await ok("GET", `/v1/orgs/${ORG}/spend?at=2026-03-20&product=${product}`);
      expect(all.total).toBe(
        ROWS.filter((r) => r.org_id === ORG && r.product === product && r.day >= "2026-03-01" && r.day <= "2026-03-20")
          .reduce((t, r) => t.plus(r.net_cost), Exact.of(0))
          .toFixed(),
      );
    }
  });

  it("folds daily trends into groups, with and without a product", async () => {
    for (const product of [undefined, ...PRODUCTS]) {
      const q = `from=2026-03-01&to=2026-03-20&group_by=group${product ? `&product=${product}` : ""}`;
      const body = await ok("GET", `/v1/orgs/${ORG}/trends?${q}`);
      expect(body.days, q).toEqual(expectedGroupTrends("2026-03-01", "2026-03-20", product));
      expect(body.overlapping).toBe(true);
      expect(body.note).toContain("several groups");
      expect(body.group_by).toBe("group");
    }
    // product= on an existing grouping: only that product's key.
    const chat = await ok("GET", `/v1/orgs/${ORG}/trends?from=2026-03-01&to=2026-03-20&group_by=product&product=chat`);
    const keysSeen = new Set(chat.days.flatMap((d: { groups: { key: string }[] }) => d.groups.map((g) => g.key)));
    expect([...keysSeen]).toEqual(["chat"]);
  });

  it("refuses a bad product or grouping with 400, keeps the trends window rules, scopes members", async () => {
    for (const path of [
      `/v1/orgs/${ORG}/spend?product=api`,
      `/v1/orgs/${ORG}/spend?group_by=group&product=Chat`,
      `/v1/orgs/${ORG}/trends?product=`,
      `/v1/orgs/${ORG}/trends?group_by=group&product=claude-code`,
    ]) {
      const res = await call("GET", path);
      expect(res.status, path).toBe(400);
      expect(res.body.error.code, path).toBe("invalid_product");
    }
    for (const path of [`/v1/orgs/${ORG}/spend?group_by=groups`, `/v1/orgs/${ORG}/trends?group_by=user`]) {
      const res = await call("GET", path);
      expect(res.status, path).toBe(400);
      expect(res.body.error.code, path).toBe("invalid_group_by");
    }
    const wide = await call("GET", `/v1/orgs/${ORG}/trends?from=2026-01-01&to=2026-03-20&group_by=group`);
    expect(wide.body.error.code).toBe("trends_window_too_wide");
    // A member reads its own row by user (with a product too); by group is refused like any other grouping.
    for (const key of [keys.member, keys.groupOwner]) {
      const refused = await call("GET", `/v1/orgs/${ORG}/spend?group_by=group`, key);
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe("forbidden_role");
    }
    const own = await ok("GET", `/v1/orgs/${ORG}/spend?at=2026-03-20&group_by=user&product=claude_code`, keys.member);
    expect(own.rows.map((r: { key: string }) => r.key)).toEqual(["u3"]);
    expect(own.total).toBe(
      ROWS.filter(
        (r) =>
          r.org_id === ORG &&
          r.user_id === "u3" &&
          r.product === "claude_code" &&
          r.day >= "2026-03-01" &&
          r.day <= "2026-03-20",
      )
        .reduce((t, r) => t.plus(r.net_cost), Exact.of(0))
        .toFixed(),
    );
    expect((await call("GET", `/v1/orgs/${ORG}/trends?group_by=group`, keys.member)).status).toBe(403);
  });
});
