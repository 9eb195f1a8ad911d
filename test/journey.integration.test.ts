/**
 * The journey every release must support (DEVELOPERS.md): `usagectl start` with USAGE_MEMBERS=3 on a fresh data
 * dir; the operator sets the contract; an owner sets a policy and a webhook and assigns seats; surfaces publish
 * events, some twice, some late from last month; within seconds spend, caps, allowance (asked of every API instance),
 * the CSV export and the draft invoices show exact figures and signed alerts reach the webhook once each. Everything
 * stops and starts again with USAGE_MEMBERS=2 and every event replayed from offset 0 (new consumer groups): no figure
 * moves and no alert is sent again.
 */

import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { type UsageEvent, validateUsageEvent } from "@usage/events";
import { netCost } from "@usage/money";
import { createPricer, loadRateCard, resolveModelId } from "@usage/pricing";
import { generateEventArray } from "@usage/workload";
import { beforeAll, describe, expect, it } from "vitest";
import { Exact } from "./harness/exact.js";
import { freePorts, resetTopics, runCli, spawnCli, tempDir, testBrokers, testKafka, waitFor } from "./harness/index.js";
import { startReceiver } from "./harness/receiver.js";

const KEY = "journey-operator-key-0123456789";
const SECRET = "journey-webhook-secret-0123456789";
const COUNT = 20_000;

/** The operator's contract of org_1: its discount applies to org_1's usage; seats are billed from term_start. */
const CONTRACT = {
  plan: "sales_assisted",
  term_start: "2026-01-01",
  seat_prices: { chat: "25", chat_code: "60.5" },
  discount_pct: "10",
};
const SEATS = { u_1_1: "chat_code", u_1_2: "chat" } as const;

/** The owner's policy (the discount is the contract's, not the owner's). */
const POLICY = {
  thresholds: ["0.5", "0.75", "0.9", "1"],
  org_limit: "100000",
  seat_tier_limits: { chat: "2", chat_code: "20", standard: "10", premium: "60" },
  groups: { platform: { limit: "30", members: ["u_1_1", "u_1_2"] } },
  users: { u_1_3: { limit: "1" }, u_1_4: { limit: "unlimited" } },
};

describe("the operator journey", () => {
  const kafka = testKafka("journey-test");
  beforeAll(async () => {
    await resetTopics(kafka);
  });

  it("start, set policy and webhook, publish, read exact figures and alerts, restart with a full replay: nothing moves", async () => {
    const now = Date.now();
    const port = await freePorts(3);
    const base = `http://127.0.0.1:${port}`;
    const bases = [0, 1, 2].map((i) => `http://127.0.0.1:${port + i}`);
    const dataDir = tempDir("usage-journey-");
    const receiver = await startReceiver({ secret: SECRET });
    const api = async <T>(path: string, init: RequestInit = {}, at = base, key = KEY): Promise<T> => {
      const res = await fetch(`${at}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
      });
      const body = await res.json();
      if (!res.ok) throw new Error(`${path}: ${res.status} ${JSON.stringify(body)}`);
      return body as T;
    };
    const envFor = (run: string, members = 3) => ({
      USAGE_MEMBERS: String(members),
      KAFKA_BROKERS: testBrokers().join(","),
      // The first run logs everything (debug): no line may hold the webhook secret.
      LOG_LEVEL: run === "first" ? "debug" : "warn",
      USAGE_DATA_DIR: dataDir,
      USAGE_API_PORT: String(port),
      USAGE_API_KEY: KEY,
      USAGE_PRICING_GROUP: `journey-pricing-${run}`,
      USAGE_AGGREGATOR_GROUP: `journey-aggregator-${run}`,
      USAGE_NOTIFIER_GROUP: `journey-notifier-${run}`,
      USAGE_INSTANCE_ID: `journey-${run}`,
      // Last month's invoice stays a draft here: its figures are checked as they stand, not frozen mid-journey.
      USAGE_INVOICE_GRACE_DAYS: "60",
    });

    // 1. Start on a fresh data dir; the operator sets the contract; an owner sets a policy and a webhook and assigns
    // seats.
    let pipeline = spawnCli(["start"], envFor("first"));
    /** Waits for the start's API; a start that does not serve fails the test with the tail of its output. */
    const serving = async (what: string) => {
      try {
        await waitFor(what, async () => (await fetch(`${base}/healthz`)).ok);
      } catch (err) {
        throw new Error(`${(err as Error).message}; the start's last output:\n${pipeline.output().slice(-6000)}`);
      }
    };
    await serving("the API");
    await api("/v1/orgs/org_1/contract", { method: "PUT", body: JSON.stringify(CONTRACT) });
    const { key: owner } = await api<{ key: string }>("/v1/orgs/org_1/keys", {
      method: "POST",
      body: JSON.stringify({ role: "owner" }),
    });
    await api("/v1/orgs/org_1/policy", { method: "PUT", body: JSON.stringify(POLICY) }, base, owner);
    await api(
      "/v1/orgs/org_1/webhook",
      { method: "PUT", body: JSON.stringify({ url: receiver.url, secret: SECRET }) },
      base,
      owner,
    );
    const seatedAt = Date.now();
    for (const [user, tier] of Object.entries(SEATS)) {
      await api(`/v1/orgs/org_1/seats/${user}`, { method: "PUT", body: JSON.stringify({ tier }) }, base, owner);
    }

    // 2. Surfaces publish: generated duplicates and late events, and the first 500 lines sent a second time.
    const events = generateEventArray({
      seed: 424242,
      count: COUNT,
      now,
      duplicateRate: 0.05,
      lateRate: 0.02,
      orgs: 2,
      usersPerOrg: 12,
    });
    const lines = events.map((e) => JSON.stringify(e));
    const produced = await runCli(["produce"], {
      env: envFor("first"),
      input: [...lines, ...lines.slice(0, 500)].join("\n"),
    });
    expect(produced.code).toBe(0);

    // Independent recomputation of every figure from the generated events.
    const price = createPricer(loadRateCard());
    const distinct = new Map<string, UsageEvent>(events.map((e) => [e.event_id, e]));
    const perUser = new Map<string, Exact>();
    let lateCount = 0;
    for (const e of distinct.values()) {
      const v = validateUsageEvent(e, { now });
      if (!v.ok) throw new Error(v.rejection.message);
      const p = price(v.value);
      if (!p.ok) throw new Error(p.rejection.message);
      const net = e.org_id === "org_1" ? netCost(p.value.total_cost, CONTRACT.discount_pct) : p.value.total_cost;
      const key = `${e.org_id}/${e.user_id}`;
      perUser.set(key, (perUser.get(key) ?? Exact.of(0)).plus(net));
      if (e.occurred_at.slice(0, 7) < new Date(now).toISOString().slice(0, 7)) lateCount++;
    }
    expect(lateCount).toBeGreaterThan(0);
    const ytdOf = (org: string) =>
      [...perUser].filter(([k]) => k.startsWith(`${org}/`)).reduce((t, [, v]) => t.plus(v), Exact.of(0));

    type Spend = { total: string; rows: { key: string; spend: string }[] };
    await waitFor(
      "exact YTD totals",
      async () => {
        const [a, b] = await Promise.all([
          api<Spend>("/v1/orgs/org_1/spend?window=ytd"),
          api<Spend>("/v1/orgs/org_2/spend?window=ytd"),
        ]);
        return Exact.of(a.total).eq(ytdOf("org_1")) && Exact.of(b.total).eq(ytdOf("org_2"));
      },
      90_000,
    );
    for (const org of ["org_1", "org_2"]) {
      const byUser = await api<Spend>(`/v1/orgs/${org}/spend?window=ytd&group_by=user`);
      for (const row of byUser.rows)
        expect(Exact.of(row.spend).eq(perUser.get(`${org}/${row.key}`)!), `${org}/${row.key}`).toBe(true);
    }

    // 3. Signed alerts reach the webhook, once each, and the API lists them as delivered.
    type Alerts = { alerts: { alert_id: string; delivery: { state: string } }[] };
    // Alerts come in bursts (the notifier's fetch waits up to 250 ms for signals, a delivery tick 250 ms after a kick),
    // so "every alert listed is delivered" can hold between two bursts. Settled: every alert listed is delivered, the
    // webhook received exactly those, and the list has not changed for 2 s.
    let settled = { ids: "", since: Date.now() };
    await waitFor(
      "every alert delivered, and no new one for 2 s",
      async () => {
        const { alerts } = await api<Alerts>("/v1/orgs/org_1/alerts");
        const ids = alerts
          .map((a) => a.alert_id)
          .sort()
          .join(",");
        if (ids !== settled.ids) settled = { ids, since: Date.now() };
        return (
          alerts.length > 0 &&
          alerts.every((a) => a.delivery.state === "delivered") &&
          [...receiver.received.keys()].sort().join(",") === ids &&
          Date.now() - settled.since >= 2000
        );
      },
      60_000,
    );
    const alertsBefore = (await api<Alerts>("/v1/orgs/org_1/alerts")).alerts.map((a) => a.alert_id).sort();
    expect([...receiver.received.keys()].sort()).toEqual(alertsBefore);
    expect([...receiver.received.values()].every((n) => n === 1)).toBe(true);
    expect(receiver.badSignatures).toBe(0);
    // Any API instance answers allowance and caps, the same.
    for (const at of bases) {
      expect(await api("/v1/orgs/org_1/users/u_1_3/allowance", {}, at)).toMatchObject({
        allowed: false,
        limit: "1",
        blocked_by: "user",
      });
    }
    await waitFor("every API instance to answer the same caps", async () => {
      const all = await Promise.all(bases.map((at) => api("/v1/orgs/org_1/caps", {}, at)));
      return all.every((c) => JSON.stringify(c) === JSON.stringify(all[0]));
    });
    // Caps from the read model equal the recomputation: every user's month-to-date spend, exactly.
    const month = new Date(now).toISOString().slice(0, 7);
    const mtd = new Map<string, Exact>();
    for (const e of distinct.values()) {
      if (e.org_id !== "org_1" || e.occurred_at.slice(0, 7) !== month) continue;
      const v = validateUsageEvent(e, { now });
      const p = v.ok ? price(v.value) : undefined;
      if (!p?.ok) continue;
      mtd.set(e.user_id, (mtd.get(e.user_id) ?? Exact.of(0)).plus(netCost(p.value.total_cost, CONTRACT.discount_pct)));
    }
    const caps = await api<{ users: Record<string, { spend: string }> }>("/v1/orgs/org_1/caps");
    for (const [user, spend] of mtd) expect(Exact.of(caps.users[user]!.spend).eq(spend), user).toBe(true);
    // The CSV export: one row per user × product × model, the gross column adding up to the MTD gross.
    const csv = await (
      await fetch(`${base}/v1/orgs/org_2/export.csv?range=mtd`, { headers: { authorization: `Bearer ${KEY}` } })
    ).text();
    const csvRows = csv.trim().split(/\r?\n/).slice(1);
    let csvGross = Exact.of(0);
    for (const row of csvRows) csvGross = csvGross.plus(row.split(",").at(-1)!);
    let org2Gross = Exact.of(0);
    for (const e of distinct.values()) {
      if (e.org_id !== "org_2" || e.occurred_at.slice(0, 7) !== month) continue;
      const v = validateUsageEvent(e, { now });
      const p = v.ok ? price(v.value) : undefined;
      if (p?.ok) org2Gross = org2Gross.plus(p.value.total_cost);
    }
    expect(csvRows.length).toBeGreaterThan(0);
    expect(csvGross.eq(org2Gross), `CSV gross ${csvGross} = MTD gross ${org2Gross}`).toBe(true);

    // The draft invoices of org_1: this month's seat lines and usage lines, last month's usage lines (late events),
    // every line exact, each amount half-up to cents, the total their sum.
    type Invoice = {
      status: string;
      total: string;
      lines: {
        kind: string;
        user_id: string | null;
        product: string | null;
        model: string | null;
        tier: string | null;
        quantity: number;
        amount_exact: string;
        amount: string;
      }[];
    };
    const cents = (x: Exact) => {
      const [w, f = ""] = x.round(2, "half_up").toFixed().split(".");
      return `${w}.${f.padEnd(2, "0")}`;
    };
    const lastMonth = new Date(Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth() - 1, 1))
      .toISOString()
      .slice(0, 7);
    for (const period of [month, lastMonth]) {
      const invoice = await api<Invoice>(`/v1/orgs/org_1/invoices?period=${period}`);
      expect(invoice.status).toBe("draft");
      const want = new Map<string, { net: Exact; n: number }>();
      for (const e of distinct.values()) {
        if (e.org_id !== "org_1" || e.occurred_at.slice(0, 7) !== period) continue;
        const v = validateUsageEvent(e, { now });
        const p = v.ok ? price(v.value) : undefined;
        if (!p?.ok) continue;
        const k = [e.user_id, e.product, resolveModelId(e.model)].join("|");
        const held = want.get(k) ?? { net: Exact.of(0), n: 0 };
        want.set(k, { net: held.net.plus(netCost(p.value.total_cost, CONTRACT.discount_pct)), n: held.n + 1 });
      }
      const usage = invoice.lines.filter((l) => l.kind === "usage");
      expect(want.size, `${period} usage lines`).toBeGreaterThan(0);
      expect(
        new Map(usage.map((l) => [[l.user_id, l.product, l.model].join("|"), [l.amount_exact, l.amount, l.quantity]])),
        `${period} usage lines`,
      ).toEqual(new Map([...want].map(([k, v]) => [k, [v.net.toFixed(), cents(v.net), v.n]])));
      // Seats added today (mid-term unless today starts a term): price × 12 × days left / days in the term.
      const seatLines = invoice.lines.filter((l) => l.kind === "seat");
      if (period === month) {
        const day = Date.UTC(
          new Date(seatedAt).getUTCFullYear(),
          new Date(seatedAt).getUTCMonth(),
          new Date(seatedAt).getUTCDate(),
        );
        const termStart = Date.UTC(new Date(seatedAt).getUTCFullYear(), 0, 1);
        const termEnd = Date.UTC(new Date(seatedAt).getUTCFullYear() + 1, 0, 1);
        const share = (price: string) => {
          const x =
            day === termStart
              ? Exact.of(price).times(12)
              : Exact.of(price)
                  .times(12 * ((termEnd - day) / 86_400_000))
                  .div((termEnd - termStart) / 86_400_000);
          try {
            return x.toFixed();
          } catch {
            return x.round(12, "half_up").toFixed();
          }
        };
        expect(seatLines.map((l) => [l.tier, l.quantity, l.amount_exact]).sort()).toEqual(
          Object.values(SEATS)
            .map((tier) => [tier, 1, share(CONTRACT.seat_prices[tier])])
            .sort(),
        );
      } else {
        expect(seatLines).toEqual([]);
      }
      expect(invoice.total).toBe(cents(invoice.lines.reduce((t, l) => t.plus(l.amount), Exact.of(0))));
    }
    const invoicesNow = async () =>
      Promise.all(
        [month, lastMonth].map(async (period) =>
          (
            await fetch(`${base}/v1/orgs/org_1/invoices?period=${period}`, {
              headers: { authorization: `Bearer ${KEY}` },
            })
          ).text(),
        ),
      );

    const snapshot = async () => ({
      invoices: await invoicesNow(),
      spend: await Promise.all(
        ["org_1", "org_2"].flatMap((org) =>
          ["mtd", "qtd", "ytd"].flatMap((w) =>
            ["user", "model", "product", "seat_tier"].map((g) =>
              api(`/v1/orgs/${org}/spend?window=${w}&group_by=${g}`),
            ),
          ),
        ),
      ),
      caps: await api("/v1/orgs/org_1/caps"),
      allowance: await api("/v1/orgs/org_1/users/u_1_1/allowance"),
      alerts: alertsBefore,
    });
    const before = await snapshot();

    // 4. Stop everything; start again with new consumer groups, so every topic is replayed from offset 0.
    const stopAt = Date.now();
    pipeline.child.kill("SIGTERM");
    expect(await pipeline.exited).toBe(0);
    const firstOutput = pipeline.output();
    expect(Date.now() - stopAt).toBeLessThan(10_000);
    pipeline = spawnCli(["start"], envFor("replay", 2));
    try {
      await serving("the restarted API");
      const metric = async (name: string) => {
        const text = await (await fetch(`${base}/metrics`)).text();
        return Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1] ?? 0);
      };
      await waitFor(
        "the replay to reach the aggregator",
        async () => (await metric("usage_aggregator_duplicates_total")) >= distinct.size,
        120_000,
      );
      await new Promise((r) => setTimeout(r, 3000)); // time for any (wrong) alert to be created and sent

      const after = await snapshot();
      expect(after.spend).toEqual(before.spend);
      expect(after.caps).toEqual(before.caps);
      expect(after.allowance).toEqual(before.allowance);
      expect((await api<Alerts>("/v1/orgs/org_1/alerts")).alerts.map((a) => a.alert_id).sort()).toEqual(alertsBefore);
      expect([...receiver.received.keys()].sort()).toEqual(alertsBefore);
      expect([...receiver.received.values()].every((n) => n === 1)).toBe(true);
    } finally {
      pipeline.child.kill("SIGTERM");
      await pipeline.exited;
      await receiver.close();
    }
    // The webhook secret is in no log line of either run and in no file of the data dir (stored sealed).
    expect(firstOutput.length).toBeGreaterThan(10_000);
    expect(firstOutput.includes(SECRET)).toBe(false);
    expect(pipeline.output().includes(SECRET)).toBe(false);
    const files = readdirSync(dataDir, { recursive: true, withFileTypes: true }).filter((f) => f.isFile());
    expect(files.length).toBeGreaterThan(50);
    const holding = files
      .map((f) => join(f.parentPath, f.name))
      .filter((path) => readFileSync(path).includes(Buffer.from(SECRET)));
    expect(holding).toEqual([]);
  });
});
