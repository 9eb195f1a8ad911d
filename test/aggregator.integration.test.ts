/**
 * Aggregator acceptance: 100,000 generated events with 10% duplicates and 1% late events go through the real
 * broker, the pricing worker and the aggregator (killed with SIGKILL mid-stream and restarted) into ClickHouse.
 * Per-org and per-user MTD, QTD and YTD then equal an independent recomputation from the generated events, exactly,
 * and the caps the API reports equal `usagectl policy evaluate` on that independently computed spend.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { type UsageEvent, validateUsageEvent } from "@usage/events";
import { netCost } from "@usage/money";
import { periodOf, type Window, windowAsOf } from "@usage/periods";
import { createPricer, loadRateCard } from "@usage/pricing";
import { generateEventArray } from "@usage/workload";
import { beforeAll, describe, expect, it } from "vitest";
import { Exact } from "./harness/exact.js";
import { freePort, resetTopics, runCli, spawnCli, tempDir, testBrokers, testKafka, waitFor } from "./harness/index.js";

const COUNT = 100_000;
const KEY = "test-operator-key-0123456789";

async function api<T>(base: string, path: string, init: RequestInit = {}): Promise<T> {
  const res = await fetch(`${base}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json", ...(init.headers ?? {}) },
  });
  const body = await res.json();
  if (!res.ok) throw new Error(`${init.method ?? "GET"} ${path}: ${res.status} ${JSON.stringify(body)}`);
  return body as T;
}

async function recorded(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^usage_aggregator_events_recorded_total (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

const POLICY = {
  mode: "override",
  multi_group: "lowest",
  discount_pct: "12.5",
  thresholds: ["0.5", "0.75", "0.9", "1"],
  org_limit: "1000000",
  seat_tier_limits: { chat: "5", chat_code: "40", standard: "25", premium: "150", enterprise: "unlimited" },
  groups: {
    engineering: { limit: "60", members: ["u_1_1", "u_1_2", "u_1_3"] },
    research: { limit: "90", members: ["u_1_3", "u_1_4"] },
  },
  users: { u_1_2: { limit: "unlimited" }, u_1_5: { limit: "0.5", seat_tier: "enterprise" } },
};

describe("aggregator", () => {
  const kafka = testKafka("aggregator-test");
  beforeAll(async () => {
    await resetTopics(kafka);
  });

  it("keeps exact MTD/QTD/YTD totals and caps through duplicates, late events and a SIGKILL", async () => {
    const now = Date.now();
    const events = generateEventArray({
      seed: 5150,
      count: COUNT,
      now,
      duplicateRate: 0.1,
      lateRate: 0.01,
      orgs: 3,
      usersPerOrg: 20,
    });
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const dataDir = tempDir("usage-aggregator-test-");
    const env = {
      KAFKA_BROKERS: testBrokers().join(","),
      LOG_LEVEL: "warn",
      USAGE_DATA_DIR: dataDir,
      USAGE_API_PORT: String(port),
      USAGE_API_KEY: KEY,
      USAGE_PRICING_GROUP: `test-agg-pricing-${now}`,
      USAGE_AGGREGATOR_GROUP: `test-agg-${now}`,
      USAGE_INSTANCE_ID: "agg-test",
    };
    const pricing = spawnCli(["run", "pricing"], env);
    let aggregator = spawnCli(["run", "aggregator"], env);
    try {
      await waitFor("the API", async () => (await fetch(`${base}/healthz`)).ok, 60_000);
      await api(base, "/v1/orgs/org_1/policy", { method: "PUT", body: JSON.stringify(POLICY) });

      const produced = await runCli(["produce"], { env, input: events.map((e) => JSON.stringify(e)).join("\n") });
      expect(produced.code).toBe(0);

      await waitFor("a third of the events recorded", async () => (await recorded(base)) >= 30_000, 120_000);
      aggregator.child.kill("SIGKILL");
      await aggregator.exited;
      aggregator = spawnCli(["run", "aggregator"], env);
      await waitFor("the restarted API", async () => (await fetch(`${base}/healthz`)).ok, 60_000);

      // Independent recomputation: price each distinct event offline, apply the discount per event, sum exactly.
      const price = createPricer(loadRateCard());
      const distinct = new Map<string, UsageEvent>();
      for (const e of events) distinct.set(e.event_id, e);
      const expected = new Map<string, { gross: Exact; net: Exact; user: string; org: string; at: number }>();
      for (const e of distinct.values()) {
        const v = validateUsageEvent(e, { now });
        if (!v.ok) throw new Error(v.rejection.message);
        const p = price(v.value);
        if (!p.ok) throw new Error(p.rejection.message);
        const net = e.org_id === "org_1" ? netCost(p.value.total_cost, POLICY.discount_pct) : p.value.total_cost;
        expected.set(e.event_id, {
          gross: Exact.of(p.value.total_cost),
          net: Exact.of(net),
          user: e.user_id,
          org: e.org_id,
          at: Date.parse(e.occurred_at),
        });
      }
      const sumOf = (org: string, window: Window, user?: string) => {
        const range = windowAsOf(window, now);
        let total = Exact.of(0);
        for (const x of expected.values()) {
          if (
            x.org === org &&
            (user === undefined || x.user === user) &&
            x.at >= range.fromMs &&
            x.at < range.toExclusiveMs
          )
            total = total.plus(x.net);
        }
        return total;
      };
      const orgs = [...new Set([...expected.values()].map((x) => x.org))].sort();
      const grandTotal = orgs.reduce((t, org) => t.plus(sumOf(org, "ytd")), Exact.of(0));

      await waitFor(
        "every distinct event in the YTD totals",
        async () => {
          let total = Exact.of(0);
          for (const org of orgs)
            total = total.plus((await api<{ total: string }>(base, `/v1/orgs/${org}/spend?window=ytd`)).total);
          return total.eq(grandTotal);
        },
        180_000,
      );
      await new Promise((r) => setTimeout(r, 1500)); // a late double count would show up now

      for (const org of orgs) {
        for (const window of ["mtd", "qtd", "ytd"] as const) {
          const body = await api<{ total: string; rows: { key: string; spend: string }[] }>(
            base,
            `/v1/orgs/${org}/spend?window=${window}&group_by=user`,
          );
          expect(Exact.of(body.total).eq(sumOf(org, window)), `${org} ${window} total`).toBe(true);
          for (const row of body.rows) {
            expect(Exact.of(row.spend).eq(sumOf(org, window, row.key)), `${org} ${window} ${row.key}`).toBe(true);
          }
          const users = new Set([...expected.values()].filter((x) => x.org === org).map((x) => x.user));
          const withSpend = [...users].filter((u) => !sumOf(org, window, u).isZero());
          expect(body.rows.map((r) => r.key).sort()).toEqual(withSpend.sort());
        }
      }

      // Caps: the API's report equals `usagectl policy evaluate` on the current month's spend computed here.
      const period = periodOf(now);
      const userSpend: Record<string, string> = {};
      let orgTotal = Exact.of(0);
      const tiers: Record<string, string> = {};
      for (const e of distinct.values()) if (e.org_id === "org_1") tiers[e.user_id] = e.seat_tier;
      for (const x of expected.values()) {
        if (x.org !== "org_1" || periodOf(x.at) !== period) continue;
        userSpend[x.user] = Exact.of(userSpend[x.user] ?? 0)
          .plus(x.net)
          .toFixed();
        orgTotal = orgTotal.plus(x.net);
      }
      const dir = tempDir("usage-caps-");
      writeFileSync(join(dir, "policy.json"), JSON.stringify({ org_id: "org_1", ...POLICY }));
      writeFileSync(join(dir, "spend.json"), JSON.stringify({ org_total: orgTotal.toFixed(), users: userSpend }));
      writeFileSync(join(dir, "tiers.json"), JSON.stringify(tiers));
      const evaluated = await runCli([
        "policy",
        "evaluate",
        "--policy",
        join(dir, "policy.json"),
        "--spend",
        join(dir, "spend.json"),
        "--seat-tiers",
        join(dir, "tiers.json"),
      ]);
      expect(evaluated.code).toBe(0);
      const caps = await api<unknown>(base, "/v1/orgs/org_1/caps");
      expect(caps).toEqual(JSON.parse(evaluated.stdout));
      // The individual limit of 0.5 is reached by this workload: u_1_5 is refused, and says why.
      const allowance = await api<{ allowed: boolean; blocked_by: string | null }>(
        base,
        "/v1/orgs/org_1/users/u_1_5/allowance",
      );
      expect(allowance).toMatchObject({ allowed: false, blocked_by: "user" });

      // `usagectl run api` serves the same answers from ClickHouse alone (here once the aggregator has stopped: the
      // embedded engine's data dir belongs to one process at a time).
      const ytd = await api<unknown>(base, "/v1/orgs/org_1/spend?window=ytd&group_by=user");
      aggregator.child.kill("SIGTERM");
      await aggregator.exited;
      aggregator = spawnCli(["run", "api"], env);
      await waitFor("the API-only process", async () => (await fetch(`${base}/healthz`)).ok, 60_000);
      expect(await api<unknown>(base, "/v1/orgs/org_1/caps")).toEqual(caps);
      expect(await api<unknown>(base, "/v1/orgs/org_1/spend?window=ytd&group_by=user")).toEqual(ytd);
    } finally {
      pricing.child.kill("SIGTERM");
      aggregator.child.kill("SIGTERM");
      await Promise.all([pricing.exited, aggregator.exited]);
    }
  });
});
