/**
 * Spend forecasts (GET /v1/orgs/{org}/forecast) over real storage. The forecasting method itself is unit-tested in
 * packages/forecast; here the point is the plumbing: the daily series read from spend_daily, each entity's first
 * usage of the month read from usage_events (where the forecast's observation starts), and the limits taken from the
 * live caps.
 *
 * 1. The route at a fixed instant over spend_daily and usage_events rows written directly: one org's rows only, this
 *    month's only (a day stamped just after today included), a (user, day) split over several batches summed, each
 *    user's first usage (a duplicate event, and events of last month, next month and another org, ignored), the
 *    org's the earliest of its users', every user of the caps report listed (one without spend too), each with its
 *    own limit.
 * 2. The real pipeline: a small generated workload with a policy goes through the broker, `usagectl run pricing`
 *    and `usagectl run aggregator`; the aggregator's API answers, for the org and every user, exactly what
 *    @usage/forecast gives on the daily series and first usages recomputed from the generated events, with the
 *    limits the policy sets, at the answer's own `as_of`. A key of another org gets 403.
 */
import {
  type ClickHouse,
  dailyNetSpend,
  firstUsageBetween,
  insertSpendDaily,
  insertUsageEvents,
  migrate,
  type SpendDailyRow,
  type UsageEventRow,
} from "@usage/clickhouse";
import { type DailySpend, forecast } from "@usage/forecast";
import { netCost } from "@usage/money";
import { dayOf, monthStart, nextMonthStart, periodOf } from "@usage/periods";
import { evaluateCaps, parsePolicy } from "@usage/policy";
import { generateEventArray } from "@usage/workload";
import Fastify, { type FastifyInstance, type FastifyRequest } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type OrgForecast, registerForecastRoutes } from "../services/api/src/forecast-routes.js";
import { Exact } from "./harness/exact.js";
import {
  freePort,
  pipelineEnv,
  priceDistinct,
  resetTopics,
  runCli,
  spawnCli,
  testClickHouse,
  testKafka,
  waitFor,
} from "./harness/index.js";

const KEY = "test-forecast-key-0123456789";

// ---------------------------------------------------------------------------------------------------------
// 1. The route over rows written directly, at a fixed instant.

const NOW = Date.parse("2026-11-20T12:00:00Z");

function row(org: string, user: string, day: string, net: string, batch: string): SpendDailyRow {
  return {
    org_id: org,
    day,
    user_id: user,
    seat_tier: "premium",
    product: "chat",
    model: "claude-sonnet-4-5",
    region: "",
    long_context: false,
    batch_id: batch,
    requests: 1,
    input_tokens: 10,
    output_tokens: 10,
    cache_write_tokens: 0,
    cache_read_tokens: 0,
    gross_cost: net,
    net_cost: net,
  };
}

/** An event row of usage_events: only its org, user and instant matter to the first usage. */
function event(id: string, org: string, user: string, at: string, batch: string): UsageEventRow {
  return {
    event_id: id,
    org_id: org,
    user_id: user,
    user_email: "",
    account_uuid: "",
    request_id: "",
    region: "",
    seat_tier: "premium",
    product: "chat",
    model: "claude-sonnet-4-5",
    model_base: "claude-sonnet-4-5",
    occurred_at: at.replace("T", " ").replace("Z", ""),
    input_tokens: 10,
    output_tokens: 10,
    cache_write_tokens: 0,
    cache_read_tokens: 0,
    prompt_tokens: 10,
    long_context: false,
    rate_card_version: "v1",
    input_cost: "0",
    output_cost: "0",
    cache_write_cost: "0",
    cache_read_cost: "0",
    gross_cost: "0",
    discount_pct: "0",
    net_cost: "0",
    priced_at: at.replace("T", " ").replace("Z", ""),
    batch_id: batch,
    is_late: false,
  };
}

describe("forecast route over spend_daily", () => {
  let ch: ClickHouse;
  let app: FastifyInstance;
  const parsed = parsePolicy(
    { org_limit: "100", users: { u1: { limit: "28" }, u2: { limit: "unlimited" }, u3: { limit: "5" } } },
    "org_a",
  );
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  const policy = parsed.policy;

  beforeAll(async () => {
    ch = await testClickHouse("forecast");
    await migrate(ch.client);
    const rows: SpendDailyRow[] = [];
    // u1: 1.5 a day from Nov 1 to 19, and 0.75 by noon on the 20th; Nov 3 written by two batches.
    for (let d = 1; d <= 19; d++) rows.push(row("org_a", "u1", `2026-11-${String(d).padStart(2, "0")}`, "1.5", "b1"));
    rows.push(row("org_a", "u1", "2026-11-03", "0.25", "b2"));
    rows.push(row("org_a", "u1", "2026-11-20", "0.75", "b2"));
    // u2: two awkward amounts, one stamped on the 21st (an event a few minutes ahead).
    rows.push(row("org_a", "u2", "2026-11-10", "0.000000000000000001", "b1"));
    rows.push(row("org_a", "u2", "2026-11-21", "2.2", "b3"));
    // Outside the month, and another org: not read.
    rows.push(row("org_a", "u1", "2026-10-31", "1000", "b0"));
    rows.push(row("org_a", "u1", "2026-12-01", "1000", "b4"));
    rows.push(row("org_b", "u1", "2026-11-05", "1000", "b1"));
    // Each batch its own insert: separate, unmerged parts.
    for (const batch of ["b0", "b1", "b2", "b3", "b4"]) {
      await insertSpendDaily(
        ch.client,
        rows.filter((r) => r.batch_id === batch),
      );
    }
    // First usages: u1 at 08:00 on Nov 1 (its event repeated in a later batch, not yet merged away), u2 at 18:00 on
    // Nov 10. Last month's, next month's and another org's events are not read.
    const events = [
      event("e1", "org_a", "u1", "2026-11-01T08:00:00.000Z", "b1"),
      event("e2", "org_a", "u1", "2026-11-19T09:30:00.000Z", "b1"),
      event("e3", "org_a", "u2", "2026-11-10T18:00:00.000Z", "b1"),
      event("e4", "org_a", "u2", "2026-11-21T00:02:00.000Z", "b3"),
      event("e0", "org_a", "u1", "2026-10-31T23:59:59.999Z", "b0"),
      event("e5", "org_a", "u1", "2026-12-01T00:00:00.000Z", "b4"),
      event("e6", "org_b", "u1", "2026-11-01T00:00:00.000Z", "b1"),
    ];
    for (const batch of ["b0", "b1", "b3", "b4"]) {
      await insertUsageEvents(
        ch.client,
        events.filter((e) => e.batch_id === batch),
      );
    }
    await insertUsageEvents(ch.client, [{ ...events[0]!, batch_id: "b2" }]);
    app = Fastify();
    app.setErrorHandler((err: Error & { status?: number; code?: string }, _request, reply) =>
      reply.code(err.status ?? 500).send({ error: { code: err.code ?? "internal", message: err.message } }),
    );
    const authorize = (request: FastifyRequest) => {
      const orgId = (request.params as { org: string }).org;
      if (request.headers.authorization !== `Bearer ${KEY}` || orgId !== "org_a") {
        throw Object.assign(new Error("this key cannot reach that org"), { status: 403, code: "forbidden" });
      }
      return { orgId };
    };
    // The caps report as the aggregator builds it, over this month's spend (u3 is named in the policy only).
    const caps = () =>
      evaluateCaps(policy, { org_total: "31.700000000000000001", users: { u1: "29.5", u2: "2.200000000000000001" } });
    registerForecastRoutes(app, { clickhouse: ch.client, reader: { caps }, authorize, now: () => NOW });
    await app.ready();
  });
  afterAll(async () => {
    await app?.close();
    await ch?.close();
  });

  it("reads net spend per org, user and day, summed over batches", async () => {
    const nov = await dailyNetSpend(ch.client, { orgId: "org_a", fromDay: "2026-11-01", toDay: "2026-11-30" });
    expect(nov.length).toBe(22);
    expect(nov.find((r) => r.user_id === "u1" && r.day === "2026-11-03")?.net).toMatch(/^1\.750*$/);
    expect(nov.find((r) => r.user_id === "u2" && r.day === "2026-11-10")?.net).toBe("0.000000000000000001");
    expect(nov.every((r) => r.org_id === "org_a")).toBe(true);
    const all = await dailyNetSpend(ch.client, { fromDay: "2026-10-01", toDay: "2026-12-31" });
    expect(all.map((r) => `${r.org_id}/${r.user_id}/${r.day}`)).toEqual(
      [...all.map((r) => `${r.org_id}/${r.user_id}/${r.day}`)].sort(),
    );
    expect(all.length).toBe(25);
  });

  it("reads each user's first usage of the month, of one org or of every org", async () => {
    const nov = { from: Date.parse("2026-11-01T00:00:00Z"), to: Date.parse("2026-12-01T00:00:00Z") };
    expect(await firstUsageBetween(ch.client, { orgId: "org_a", ...nov })).toEqual([
      { org_id: "org_a", user_id: "u1", first_at: Date.parse("2026-11-01T08:00:00Z") },
      { org_id: "org_a", user_id: "u2", first_at: Date.parse("2026-11-10T18:00:00Z") },
    ]);
    expect(await firstUsageBetween(ch.client, nov)).toEqual([
      { org_id: "org_a", user_id: "u1", first_at: Date.parse("2026-11-01T08:00:00Z") },
      { org_id: "org_a", user_id: "u2", first_at: Date.parse("2026-11-10T18:00:00Z") },
      { org_id: "org_b", user_id: "u1", first_at: Date.parse("2026-11-01T00:00:00Z") },
    ]);
  });

  it("forecasts the org and every user of the caps report with its own limit", async () => {
    const res = await app.inject({ url: "/v1/orgs/org_a/forecast", headers: { authorization: `Bearer ${KEY}` } });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as OrgForecast;
    expect([body.org_id, body.period, body.as_of, body.method]).toEqual([
      "org_a",
      "2026-11",
      "2026-11-20T12:00:00.000Z",
      "weighted-recent-days",
    ]);
    const u1: DailySpend[] = Array.from({ length: 19 }, (_, i) => ({
      day: `2026-11-${String(i + 1).padStart(2, "0")}`,
      spend: i === 2 ? "1.75" : "1.5",
    }));
    u1.push({ day: "2026-11-20", spend: "0.75" });
    const u2 = [
      { day: "2026-11-10", spend: "0.000000000000000001" },
      { day: "2026-11-21", spend: "2.2" },
    ];
    const u1First = Date.parse("2026-11-01T08:00:00Z");
    const u2First = Date.parse("2026-11-10T18:00:00Z");
    const at = (daily: DailySpend[], firstUsage: number | null, limit: string | null) =>
      forecast({ period: "2026-11", now: NOW, daily, firstUsage, limit });
    // The org's first usage is its earliest user's: u1's.
    expect(body.org).toEqual(at([...u1, ...u2], u1First, "100"));
    expect(body.org.spend_to_date).toBe("31.700000000000000001");
    expect(Object.keys(body.users)).toEqual(["u1", "u2", "u3"]);
    expect(body.users.u1).toEqual(at(u1, u1First, "28"));
    expect(body.users.u1).toMatchObject({ limit_reached: true, reaches_limit_on: "2026-11-19", days_of_data: 20 });
    expect(body.users.u2).toEqual(at(u2, u2First, "unlimited"));
    // Observed from Nov 10 to Nov 20, not from Nov 1: 11 days.
    expect(body.users.u2?.days_of_data).toBe(11);
    expect(body.users.u2).not.toEqual(at(u2, Date.parse("2026-11-01T00:00:00Z"), "unlimited"));
    expect(body.users.u3).toEqual(at([], null, "5"));
    expect(body.users.u3).toMatchObject({ spend_to_date: "0", projected: "0", will_reach_limit: false });

    const denied = await app.inject({ url: "/v1/orgs/org_b/forecast", headers: { authorization: `Bearer ${KEY}` } });
    expect(denied.statusCode).toBe(403);
  });
});

// ---------------------------------------------------------------------------------------------------------
// 2. Through the pipeline, against the aggregator's API.

describe("forecast through the pipeline", () => {
  const kafka = testKafka("forecast-test");
  beforeAll(async () => {
    await resetTopics(kafka);
  });

  it("answers what @usage/forecast gives on the recomputed daily series, with the policy's limits", async () => {
    const now = Date.now();
    const period = periodOf(now);
    const events = generateEventArray({
      seed: 4242,
      count: 3_000,
      now,
      duplicateRate: 0.05,
      lateRate: 0.02,
      orgs: 2,
      usersPerOrg: 6,
    });
    const discount = "10";

    // Independent recomputation: each distinct event priced offline, the discount applied per event (org_1 only),
    // summed per org, user and day of this month.
    // Each entity's first usage is the earliest occurred_at of its distinct events this month.
    const series = new Map<string, Map<string, Exact>>(); // "org" or "org/user" → day → net
    const firsts = new Map<string, number>(); // "org" or "org/user" → first usage (ms)
    const add = (key: string, at: number, net: string) => {
      const days = series.get(key) ?? new Map<string, Exact>();
      days.set(dayOf(at), (days.get(dayOf(at)) ?? Exact.of(0)).plus(net));
      series.set(key, days);
      firsts.set(key, Math.min(firsts.get(key) ?? at, at));
    };
    for (const { event: e, gross } of priceDistinct(events, now)) {
      const at = Date.parse(e.occurred_at);
      // Last month's (late) events, and any stamped into next month: not this month's forecast.
      if (at < monthStart(now) || at >= nextMonthStart(now)) continue;
      const net = e.org_id === "org_1" ? netCost(gross, discount) : gross;
      add(e.org_id, at, net);
      add(`${e.org_id}/${e.user_id}`, at, net);
    }
    const dailyOf = (key: string): DailySpend[] =>
      [...(series.get(key) ?? [])].map(([day, net]) => ({ day, spend: net.toFixed() }));
    const firstOf = (key: string): number | null => firsts.get(key) ?? null;
    const totalOf = (key: string) => dailyOf(key).reduce((t, d) => t.plus(d.spend), Exact.of(0));

    // Limits placed around each entity's projection now, so the answer covers every case: reached, will reach,
    // will not reach, unlimited, none, and a user named in the policy without spend.
    const projectionNow = (key: string) =>
      Exact.of(forecast({ period, now, daily: dailyOf(key), firstUsage: firstOf(key), limit: null }).projected);
    const midway = (key: string) => totalOf(key).plus(projectionNow(key)).div(2).round(2, "half_up").toFixed();
    const users = ["u_1_1", "u_1_2", "u_1_3", "u_1_4", "u_1_5", "u_1_6"];
    const [rising, ...rest] = [...users].sort((a, b) =>
      projectionNow(`org_1/${b}`)
        .minus(totalOf(`org_1/${b}`))
        .cmp(projectionNow(`org_1/${a}`).minus(totalOf(`org_1/${a}`))),
    ) as [string, ...string[]];
    const [reached, unlimited, grouped1, grouped2, none] = rest as [string, string, string, string, string];
    const groupLimit = Exact.max(projectionNow(`org_1/${grouped1}`), projectionNow(`org_1/${grouped2}`))
      .times(2)
      .plus(1)
      .round(2, "half_up")
      .toFixed();
    const policy = {
      discount_pct: discount,
      org_limit: midway("org_1"),
      groups: { team: { limit: groupLimit, members: [grouped1, grouped2] } },
      users: {
        [rising]: { limit: midway(`org_1/${rising}`) },
        [reached]: { limit: totalOf(`org_1/${reached}`).div(2).round(2, "half_up").toFixed() },
        [unlimited]: { limit: "unlimited" },
        u_1_99: { limit: "5" },
      },
    };
    const expectedLimit: Record<string, string | null> = {
      [rising]: policy.users[rising]!.limit,
      [reached]: policy.users[reached]!.limit,
      [unlimited]: "unlimited",
      [grouped1]: groupLimit,
      [grouped2]: groupLimit,
      [none]: null,
      u_1_99: "5",
    };

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = pipelineEnv("forecast", { port, key: KEY, now });
    const call = async (path: string, key = KEY, init: RequestInit = {}) => {
      const res = await fetch(`${base}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      });
      return { status: res.status, body: (await res.json()) as unknown };
    };
    const pricing = spawnCli(["run", "pricing"], env);
    const aggregator = spawnCli(["run", "aggregator"], env);
    try {
      await waitFor("the API", async () => (await fetch(`${base}/healthz`)).ok, 90_000);
      const put = await call("/v1/orgs/org_1/policy", KEY, { method: "PUT", body: JSON.stringify(policy) });
      expect(put.status, JSON.stringify(put.body)).toBe(200);
      const produced = await runCli(["produce"], { env, input: events.map((e) => JSON.stringify(e)).join("\n") });
      expect(produced.code, produced.stderr).toBe(0);

      const orgs = ["org_1", "org_2"];
      await waitFor(
        "this month's spend recorded, in ClickHouse and in the caps",
        async () => {
          for (const org of orgs) {
            const f = (await call(`/v1/orgs/${org}/forecast`)).body as OrgForecast;
            const caps = (await call(`/v1/orgs/${org}/caps`)).body as { org: { spend: string } };
            const expected = totalOf(org);
            if (!Exact.of(f.org.spend_to_date).eq(expected) || !Exact.of(caps.org.spend).eq(expected)) return false;
          }
          return true;
        },
        180_000,
      );

      for (const org of orgs) {
        const res = await call(`/v1/orgs/${org}/forecast`);
        expect(res.status).toBe(200);
        const body = res.body as OrgForecast;
        const at = Date.parse(body.as_of);
        expect([body.org_id, body.period, body.method]).toEqual([org, period, "weighted-recent-days"]);
        expect(at).toBeGreaterThanOrEqual(now);
        const expectedUsers = [...series.keys()]
          .filter((k) => k.startsWith(`${org}/`))
          .map((k) => k.slice(org.length + 1));
        if (org === "org_1") expectedUsers.push(...Object.keys(expectedLimit));
        expect(Object.keys(body.users).sort()).toEqual([...new Set(expectedUsers)].sort());
        const orgLimit = org === "org_1" ? policy.org_limit : null;
        expect(body.org, `${org}`).toEqual(
          forecast({ period, now: at, daily: dailyOf(org), firstUsage: firstOf(org), limit: orgLimit }),
        );
        for (const [user, f] of Object.entries(body.users)) {
          const limit = org === "org_1" ? (expectedLimit[user] ?? null) : null;
          const key = `${org}/${user}`;
          expect(f, key).toEqual(forecast({ period, now: at, daily: dailyOf(key), firstUsage: firstOf(key), limit }));
        }
        if (org === "org_1") {
          expect(body.org.will_reach_limit, "org projected to reach its limit").toBe(true);
          expect(body.users[rising]).toMatchObject({ will_reach_limit: true, limit_reached: false });
          expect(body.users[reached]).toMatchObject({ will_reach_limit: false, limit_reached: true });
          expect(body.users[grouped1]).toMatchObject({ will_reach_limit: false, limit_reached: false });
          expect(body.users[unlimited]).toMatchObject({ limit: "unlimited", reaches_limit_on: null });
          expect(body.users.u_1_99).toMatchObject({ spend_to_date: "0", limit: "5" });
        }
      }

      // Tenant isolation: a key of org_2 reaches org_2's forecast, not org_1's.
      const { key } = (await call("/v1/keys", KEY, { method: "POST", body: JSON.stringify({ org_id: "org_2" }) }))
        .body as { key: string };
      expect((await call("/v1/orgs/org_2/forecast", key)).status).toBe(200);
      const denied = await call("/v1/orgs/org_1/forecast", key);
      expect(denied.status).toBe(403);
      expect(denied.body).toMatchObject({ error: { code: "forbidden", message: expect.any(String) } });
      expect((await fetch(`${base}/v1/orgs/org_1/forecast`)).status).toBe(401);
    } finally {
      pricing.child.kill("SIGTERM");
      aggregator.child.kill("SIGTERM");
      await Promise.all([pricing.exited, aggregator.exited]);
    }
  });
});
