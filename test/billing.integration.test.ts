/**
 * Seats, invoices, product access and limit requests (SPEC §5, §8, §13), end to end on the real broker and the
 * embedded ClickHouse (`usagectl start`), every figure recomputed here independently (bigint fractions, the rules as
 * the SPEC states them):
 *
 *  - the operator sets a sales-assisted contract (seat prices, a 12.5 % discount); seats added mid-term last month
 *    and one upgraded this month are charged prorated by day; last month's invoice has those seat lines and one usage
 *    line per user × product × model, net of the discount, each amount half-up to cents and the total their sum;
 *  - the operator finalizes last month; late events of last month arrive after that: the final invoice does not
 *    change by one byte, this month's draft carries them as adjustment lines naming last month, and the
 *    reconciliation of both months balances exactly (raw = rollup = usage lines + adjustments);
 *  - product access: a user outside `engineering` is refused `claude_code` (blocked_by access) and allowed `chat`;
 *    an individual grant opens it at once; usage that arrives anyway is billed and counted as a violation;
 *  - limit requests: a blocked member files a request with its own key, the group owner cannot approve above the
 *    group's limit, the owner approves and the user's allowance has changed by the time the answer arrives; one
 *    digest alert reaches the webhook, once, across a restart with every topic replayed; requests disabled → 409.
 */
import { randomUUID } from "node:crypto";
import { type UsageEvent, validateUsageEvent } from "@usage/events";
import { createPricer, loadRateCard } from "@usage/pricing";
import { createUsageProducer } from "@usage/producer";
import { generateEventArray } from "@usage/workload";
import { beforeAll, describe, expect, it } from "vitest";
import { Exact } from "./harness/exact.js";
import {
  freePort,
  metricSum,
  resetTopics,
  runCli,
  spawnCli,
  tempDir,
  testBrokers,
  testKafka,
  waitFor,
} from "./harness/index.js";
import { startReceiver } from "./harness/receiver.js";

const KEY = "billing-operator-key-0123456789";
const WEBHOOK_SECRET = "billing-webhook-secret-0123456789";
const ORG = "org_billing";
const DAY = 86_400_000;
const PRICES = { chat: "30", premium: "150.25" };
const DISCOUNT = "12.5";

interface Line {
  kind: string;
  quantity: number;
  user_id: string | null;
  product: string | null;
  model: string | null;
  tier: string | null;
  from_tier: string | null;
  date: string | null;
  period: string | null;
  amount_exact: string;
  amount: string;
}
interface Invoice {
  org_id: string;
  period: string;
  status: "draft" | "final";
  number: string | null;
  lines: Line[];
  total: string;
}

const ymd = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const periodOf = (ms: number) => new Date(ms).toISOString().slice(0, 7);
const monthStartOf = (ms: number) => Date.UTC(new Date(ms).getUTCFullYear(), new Date(ms).getUTCMonth(), 1);
/** Half-up to cents, as text with two decimals. */
const cents = (x: Exact) => {
  const r = x.round(2, "half_up").toFixed();
  const [w, f = ""] = r.split(".");
  return `${w}.${f.padEnd(2, "0")}`;
};
/** A prorated amount: exact when finite, else half-up at 12 places (SPEC §13). */
const prorated = (x: Exact) => {
  try {
    return x.toFixed();
  } catch {
    return x.round(12, "half_up").toFixed();
  }
};

describe("seats, invoices, product access and limit requests", () => {
  const kafka = testKafka("billing-test");
  beforeAll(async () => {
    await resetTopics(kafka);
  });

  it("bills seats and usage, freezes a final invoice, carries late usage as adjustments, gates products and handles requests", async () => {
    const now = Date.now();
    const thisMonth = monthStartOf(now);
    const lastMonth = monthStartOf(thisMonth - 1);
    const last = periodOf(lastMonth);
    const current = periodOf(thisMonth);
    // The term started two months before last month: last month's additions are mid-term.
    const termStart = monthStartOf(monthStartOf(lastMonth - 1) - 1);
    const termStartDay = ymd(termStart);
    const termEndDate = new Date(termStart);
    termEndDate.setUTCFullYear(termEndDate.getUTCFullYear() + 1);
    const termEnd = termEndDate.getTime();
    const daysInTerm = (termEnd - termStart) / DAY;

    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const dataDir = tempDir("usage-billing-");
    const receiver = await startReceiver({ secret: WEBHOOK_SECRET });
    const call = async <T>(method: string, path: string, body?: unknown, key = KEY) => {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${key}`,
          ...(body === undefined ? {} : { "content-type": "application/json" }),
        },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      return { status: res.status, text, body: (text.startsWith("{") ? JSON.parse(text) : {}) as T };
    };
    const api = async <T>(method: string, path: string, body?: unknown, key = KEY): Promise<T> => {
      const r = await call<T>(method, path, body, key);
      if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${r.text}`);
      return r.body;
    };
    const envFor = (run: string) => ({
      KAFKA_BROKERS: testBrokers().join(","),
      LOG_LEVEL: "warn",
      USAGE_DATA_DIR: dataDir,
      USAGE_API_PORT: String(port),
      USAGE_API_KEY: KEY,
      USAGE_PRICING_GROUP: `billing-pricing-${run}`,
      USAGE_AGGREGATOR_GROUP: `billing-aggregator-${run}`,
      USAGE_NOTIFIER_GROUP: `billing-notifier-${run}`,
      USAGE_INSTANCE_ID: `billing-${run}`,
      // Last month is finalized by hand here, not on its own.
      USAGE_INVOICE_GRACE_DAYS: "60",
      // Any day of last month is still accepted, whatever today's date.
      USAGE_BACKFILL_DAYS: "70",
    });

    // Events, priced here independently at the packaged rate card.
    const price = createPricer(loadRateCard());
    const template = generateEventArray({ seed: 11, count: 1, now })[0]!;
    const makeEvent = (user: string, product: string, model: string, at: number, k: number): UsageEvent => ({
      ...template,
      event_id: randomUUID(),
      request_id: `req_billing_${randomUUID()}`,
      occurred_at: new Date(at).toISOString(),
      org_id: ORG,
      user_id: user,
      user_email: undefined,
      product: product as UsageEvent["product"],
      model,
      seat_tier: "chat",
      input_tokens: 1_000 * k + 7,
      output_tokens: 333 * k,
      cache_write_tokens: 11 * k,
      cache_read_tokens: 2_001 * k,
    });
    const grossOf = (e: UsageEvent): string => {
      const v = validateUsageEvent(e, { now: Date.now(), backfillDays: 70 });
      if (!v.ok) throw new Error(v.rejection.message);
      const p = price(v.value);
      if (!p.ok) throw new Error(p.rejection.message);
      return p.value.total_cost;
    };
    const netOf = (e: UsageEvent) => Exact.of(grossOf(e)).times(Exact.of(100).minus(DISCOUNT)).div(100);
    /** Expected usage per user × product × model (the invoice's usage or adjustment lines). */
    const linesOf = (events: UsageEvent[]) => {
      const m = new Map<string, { net: Exact; n: number }>();
      for (const e of events) {
        const key = [e.user_id, e.product, e.model].join("|");
        const l = m.get(key) ?? { net: Exact.of(0), n: 0 };
        m.set(key, { net: l.net.plus(netOf(e)), n: l.n + 1 });
      }
      return new Map([...m].map(([k, v]) => [k, { amount_exact: v.net.toFixed(), amount: cents(v.net), n: v.n }]));
    };
    const usageOf = (lines: Line[], kind: string) =>
      new Map(
        lines
          .filter((l) => l.kind === kind)
          .map((l) => [
            [l.user_id, l.product, l.model].join("|"),
            { amount_exact: l.amount_exact, amount: l.amount, n: l.quantity },
          ]),
      );

    const producer = createUsageProducer({ brokers: testBrokers(), lingerMs: 0, backfillDays: 70 });
    let pipeline = spawnCli(["start"], envFor("first"));
    try {
      await waitFor("the API", async () => (await fetch(`${base}/healthz`)).ok, 120_000);
      await producer.connect();
      const publish = async (events: UsageEvent[]) => {
        for (const e of events) {
          const r = await producer.publish(e);
          expect(r.ok, JSON.stringify(r)).toBe(true);
        }
        await producer.flush();
      };
      // A month's events as stored: the fewer of usage_events' count and the spend_daily rollup's (the aggregator
      // writes a batch's rollup after its events and signals), so a wait on it covers every figure read below.
      const rawRequests = async (period: string) => {
        const rec = await api<{ raw: { requests: number }; rollup: { requests: number } }>(
          "GET",
          `/v1/orgs/${ORG}/reconciliation?period=${period}`,
        );
        return Math.min(rec.raw.requests, rec.rollup.requests);
      };

      // --- Terms: the operator's contract; an owner's policy, webhook and seats.
      const contract = await call<{ error: { code: string } }>("PUT", `/v1/orgs/${ORG}/contract`, {
        plan: "sales_assisted",
        term_start: termStartDay,
        seat_prices: PRICES,
        discount_pct: DISCOUNT,
      });
      expect(contract.status, contract.text).toBe(200);
      const owner = (await api<{ key: string }>("POST", `/v1/orgs/${ORG}/keys`, { role: "owner" })).key;
      const lead = (await api<{ key: string }>("POST", `/v1/orgs/${ORG}/keys`, { role: "group_owner", group: "sales" }))
        .key;
      const member = (await api<{ key: string }>("POST", `/v1/orgs/${ORG}/keys`, { role: "member", user: "s1" })).key;
      // An owner sets caps and access, never the contract.
      const refused = await call<{ error: { code: string } }>(
        "PUT",
        `/v1/orgs/${ORG}/contract`,
        { plan: "self_serve", term_start: termStartDay },
        owner,
      );
      expect([refused.status, refused.body.error.code]).toEqual([403, "forbidden_role"]);
      const policy = {
        groups: { engineering: { members: ["eng1"] }, sales: { limit: "40", members: ["s1", "s2"] } },
        product_access: { claude_code: ["engineering"] },
        users: { s1: { limit: "0.01" } },
        seat_tier_limits: { chat: "20", premium: "500" },
      };
      await api("PUT", `/v1/orgs/${ORG}/policy`, policy, owner);
      await api("PUT", `/v1/orgs/${ORG}/webhook`, { url: receiver.url, secret: WEBHOOK_SECRET }, owner);
      // Seats: two chat seats and one premium added on the 15th of last month; one chat seat upgraded to premium on
      // this month's 1st.
      const added = lastMonth + 14 * DAY;
      for (const [user, tier] of [
        ["eng1", "chat"],
        ["s1", "chat"],
        ["s2", "premium"],
      ]) {
        await api("PUT", `/v1/orgs/${ORG}/seats/${user}`, { tier, effective_at: new Date(added).toISOString() }, owner);
      }
      await api(
        "PUT",
        `/v1/orgs/${ORG}/seats/eng1`,
        { tier: "premium", effective_at: new Date(thisMonth).toISOString() },
        owner,
      );
      const seats = await api<{ assigned: number; by_tier: Record<string, number>; history: unknown[] }>(
        "GET",
        `/v1/orgs/${ORG}/seats`,
      );
      expect(seats).toMatchObject({ assigned: 3, by_tier: { premium: 2, chat: 1 } });
      expect(seats.history).toHaveLength(4);
      // The seat decides the tier for caps before the tier on the user's events ("chat" on every event here).
      const capsBySeat = await api<{ users: Record<string, { limit: string; source: string }> }>(
        "GET",
        `/v1/orgs/${ORG}/caps`,
      );
      expect(capsBySeat.users.eng1).toMatchObject({ limit: "500", source: "seat_tier:premium" });

      // --- Product access (SPEC §5).
      const allowance = (user: string, product?: string) =>
        api<{ allowed: boolean; blocked_by: string | null }>(
          "GET",
          `/v1/orgs/${ORG}/users/${user}/allowance${product ? `?product=${product}` : ""}`,
        );
      expect(await allowance("s2", "claude_code")).toMatchObject({ allowed: false, blocked_by: "access" });
      expect(await allowance("s2", "chat")).toMatchObject({ allowed: true, blocked_by: null });
      expect(await allowance("eng1", "claude_code")).toMatchObject({ allowed: true, blocked_by: null });
      const caps = await api<{ users: Record<string, { products?: string[] }> }>("GET", `/v1/orgs/${ORG}/caps`);
      expect(caps.users.s2?.products).toEqual(["chat", "cowork"]);
      expect(caps.users.eng1?.products).toEqual(["chat", "claude_code", "cowork"]);
      // An individual grant opens it at once (the PUT answers once it is in force).
      await api(
        "PUT",
        `/v1/orgs/${ORG}/policy`,
        { ...policy, users: { ...policy.users, s2: { products: ["claude_code"] } } },
        owner,
      );
      expect(await allowance("s2", "claude_code")).toMatchObject({ allowed: true, blocked_by: null });
      await api("PUT", `/v1/orgs/${ORG}/policy`, policy, owner);
      expect(await allowance("s2", "claude_code")).toMatchObject({ allowed: false, blocked_by: "access" });

      // --- Last month's usage (late: it arrives now), among it claude_code by s2, who may not use it.
      const at = (day: number, hour: number) => lastMonth + day * DAY + hour * 3_600_000;
      const first = [
        makeEvent("eng1", "claude_code", "claude-opus-4-5", at(15, 1), 3),
        makeEvent("eng1", "claude_code", "claude-opus-4-5", at(16, 2), 5),
        makeEvent("eng1", "chat", "claude-sonnet-4-5", at(17, 3), 2),
        makeEvent("s2", "chat", "claude-haiku-4-5", at(18, 4), 7),
        makeEvent("s2", "claude_code", "claude-sonnet-4-5", at(19, 5), 1),
        makeEvent("s2", "cowork", "claude-opus-4-1", at(20, 6), 4),
      ];
      const violationsBefore = await metricSum(base, "usage_aggregator_access_violations_total");
      await publish(first);
      await waitFor("last month's events", async () => (await rawRequests(last)) === first.length, 60_000);
      // Counted once the batch is through (after its rollup and totals): waited for, then asserted exact.
      const violations = () => metricSum(base, "usage_aggregator_access_violations_total");
      await waitFor("the access violation counted", async () => (await violations()) > violationsBefore, 30_000);
      expect(await violations()).toBe(violationsBefore + 1);

      // --- Last month's draft: seat lines + usage lines, exactly.
      const draft = await api<Invoice>("GET", `/v1/orgs/${ORG}/invoices?period=${last}`);
      expect(draft.status).toBe("draft");
      const daysLeft = (termEnd - added) / DAY;
      const seatAmount = (price: string, n: number, days: number) =>
        prorated(
          Exact.of(price)
            .times(12 * n)
            .times(days)
            .div(daysInTerm),
        );
      const seatLines = draft.lines.filter((l) => l.kind === "seat");
      expect(
        seatLines.map((l) => [l.tier, l.from_tier, l.quantity, l.date, l.amount_exact, l.amount]),
        `term ${termStartDay}, ${daysLeft}/${daysInTerm} days left on ${ymd(added)}`,
      ).toEqual([
        [
          "chat",
          null,
          2,
          ymd(added),
          seatAmount(PRICES.chat, 2, daysLeft),
          cents(Exact.of(seatAmount(PRICES.chat, 2, daysLeft))),
        ],
        [
          "premium",
          null,
          1,
          ymd(added),
          seatAmount(PRICES.premium, 1, daysLeft),
          cents(Exact.of(seatAmount(PRICES.premium, 1, daysLeft))),
        ],
      ]);
      expect(usageOf(draft.lines, "usage")).toEqual(linesOf(first));
      const sumAmounts = (lines: Line[]) => cents(lines.reduce((s, l) => s.plus(l.amount), Exact.of(0)));
      expect(draft.total).toBe(sumAmounts(draft.lines));

      // --- Finalize (the operator only); the document is frozen.
      const notYours = await call<{ error: { code: string } }>(
        "POST",
        `/v1/orgs/${ORG}/invoices/${last}/finalize`,
        undefined,
        owner,
      );
      expect(notYours.status).toBe(403);
      const open = await call<{ error: { code: string } }>("POST", `/v1/orgs/${ORG}/invoices/${current}/finalize`);
      expect([open.status, open.body.error.code]).toEqual([409, "period_not_ended"]);
      const finalized = await call<Invoice>("POST", `/v1/orgs/${ORG}/invoices/${last}/finalize`);
      expect(finalized.status, finalized.text).toBe(201);
      expect(finalized.body).toMatchObject({ status: "final", total: draft.total });
      expect(finalized.body.number).toMatch(/^INV-\d{6}-[0-9A-F]{10}$/);
      expect(finalized.body.lines).toEqual(draft.lines);
      const frozen = (await call("GET", `/v1/orgs/${ORG}/invoices?period=${last}`)).text;
      expect(frozen).toBe(finalized.text);
      // usagectl prints the same document, and a table ending with its total.
      const cliEnv = { USAGE_API_KEY: KEY, USAGE_API_PORT: String(port) };
      const printed = await runCli(["invoice", "--org", ORG, "--period", last, "--json"], { env: cliEnv });
      expect(printed.code, printed.stderr).toBe(0);
      expect(JSON.parse(printed.stdout)).toEqual(JSON.parse(frozen));
      const table = await runCli(["invoice", "--org", ORG, "--period", last], { env: cliEnv });
      expect(table.stdout).toContain(`${ORG} invoice ${last}: final ${finalized.body.number}`);
      expect(table.stdout.trimEnd().endsWith(`${draft.total}  total USD`)).toBe(true);
      // Finalizing again answers the same document.
      const again = await call("POST", `/v1/orgs/${ORG}/invoices/${last}/finalize`);
      expect([again.status, again.text]).toEqual([200, frozen]);

      // --- More late events of last month, and this month's usage.
      const late = [
        makeEvent("eng1", "claude_code", "claude-opus-4-5", at(21, 7), 9),
        makeEvent("s2", "chat", "claude-haiku-4-5", at(22, 8), 6),
        makeEvent("s2", "chat", "claude-haiku-4-5", at(23, 9), 1),
      ];
      const now2 = Date.now();
      const currentEvents = [
        makeEvent("eng1", "chat", "claude-sonnet-4-5", Math.max(thisMonth, now2 - 60_000), 8),
        makeEvent("s2", "cowork", "claude-opus-4-1", Math.max(thisMonth, now2 - 30_000), 2),
      ];
      await publish([...late, ...currentEvents]);
      await waitFor("the late events", async () => (await rawRequests(last)) === first.length + late.length, 60_000);
      await waitFor("this month's events", async () => (await rawRequests(current)) >= currentEvents.length, 60_000);

      // The final invoice does not move by one byte; this month's draft carries the late usage as adjustments.
      expect((await call("GET", `/v1/orgs/${ORG}/invoices?period=${last}`)).text).toBe(frozen);
      const next = await api<Invoice>("GET", `/v1/orgs/${ORG}/invoices?period=${current}`);
      expect(next.status).toBe("draft");
      expect(next.lines.filter((l) => l.kind === "adjustment").every((l) => l.period === last)).toBe(true);
      expect(usageOf(next.lines, "adjustment")).toEqual(linesOf(late));
      expect(usageOf(next.lines, "usage")).toEqual(linesOf(currentEvents));
      // eng1's upgrade chat → premium on this month's 1st: the price difference, prorated the same way.
      const upgradeDays = (termEnd - thisMonth) / DAY;
      const upgrade = prorated(
        Exact.of(PRICES.premium).minus(PRICES.chat).times(12).times(upgradeDays).div(daysInTerm),
      );
      expect(
        next.lines.filter((l) => l.kind === "seat").map((l) => [l.tier, l.from_tier, l.quantity, l.amount_exact]),
      ).toEqual([["premium", "chat", 1, upgrade]]);
      expect(next.total).toBe(sumAmounts(next.lines));
      // The CSV of the lines, in order.
      const csv = (await call("GET", `/v1/orgs/${ORG}/invoices/${current}/lines.csv`)).text.trim().split("\n");
      expect(csv[0]).toBe(
        "line_no,kind,description,quantity,unit_price,user_id,product,model,tier,from_tier,date,period,amount_exact,amount",
      );
      expect(csv.slice(1).map((r) => r.split(",").at(-1))).toEqual(next.lines.map((l) => l.amount));

      // Reconciliation: both months balance exactly; last month's invoice side is its usage lines + the adjustments.
      interface Rec {
        balanced: boolean;
        raw: { requests: number; net: string };
        rollup: { requests: number; net: string };
        invoice: {
          status: string;
          net: string;
          usage_lines: { net: string };
          adjustments: { invoice_period: string; status: string; net: string }[];
        };
      }
      const sum = (events: UsageEvent[]) => events.reduce((s, e) => s.plus(netOf(e)), Exact.of(0)).toFixed();
      const recLast = await api<Rec>("GET", `/v1/orgs/${ORG}/reconciliation?period=${last}`);
      expect(recLast).toMatchObject({
        balanced: true,
        raw: { requests: first.length + late.length, net: sum([...first, ...late]) },
        rollup: { requests: first.length + late.length, net: sum([...first, ...late]) },
        invoice: {
          status: "final",
          net: sum([...first, ...late]),
          usage_lines: { net: sum(first) },
          adjustments: [{ invoice_period: current, status: "draft", net: sum(late) }],
        },
      });
      const recCurrent = await api<Rec>("GET", `/v1/orgs/${ORG}/reconciliation?period=${current}`);
      expect(recCurrent).toMatchObject({
        balanced: true,
        raw: { net: sum(currentEvents) },
        invoice: { status: "draft" },
      });

      // --- Limit requests: s1 is over its own limit (0.01).
      await publish([makeEvent("s1", "chat", "claude-haiku-4-5", Date.now() - 5_000, 50)]);
      await waitFor("s1 blocked", async () => (await allowance("s1")).blocked_by === "user", 60_000);
      const filed = await call<{ request_id: string; status: string }>(
        "POST",
        `/v1/orgs/${ORG}/users/s1/limit-requests`,
        { note: "release week" },
        member,
      );
      expect([filed.status, filed.body.status]).toEqual([201, "pending"]);
      const forOther = await call("POST", `/v1/orgs/${ORG}/users/s2/limit-requests`, {}, member);
      expect(forOther.status).toBe(403);
      const listed = await api<{ requests: { request_id: string }[] }>(
        "GET",
        `/v1/orgs/${ORG}/limit-requests?status=pending`,
        undefined,
        lead,
      );
      expect(listed.requests.map((r) => r.request_id)).toEqual([filed.body.request_id]);
      // The group owner approves up to the group's own limit (40).
      const tooMuch = await call<{ error: { code: string } }>(
        "POST",
        `/v1/orgs/${ORG}/limit-requests/${filed.body.request_id}/approve`,
        { limit: "41" },
        lead,
      );
      expect([tooMuch.status, tooMuch.body.error.code]).toEqual([403, "forbidden_role"]);
      const digest = () => [...receiver.payloads.values()].filter((p) => p.kind === "limit_requests_digest");
      await waitFor("the day's digest", async () => digest().length === 1, 30_000);
      const approvedAt = Date.now();
      const approved = await call<{ status: string; limit: string }>(
        "POST",
        `/v1/orgs/${ORG}/limit-requests/${filed.body.request_id}/approve`,
        { limit: "25" },
        owner,
      );
      expect([approved.status, approved.body.status, approved.body.limit]).toEqual([200, "approved", "25"]);
      // In force by the time the answer arrived.
      expect(await allowance("s1")).toMatchObject({ allowed: true, blocked_by: null });
      console.log(`[billing] approval to allowance: ${Date.now() - approvedAt} ms (answer included)`);
      expect(
        (await api<{ users: Record<string, { limit?: string }> }>("GET", `/v1/orgs/${ORG}/policy`)).users.s1?.limit,
      ).toBe("25");
      const decided = await call<{ error: { code: string } }>(
        "POST",
        `/v1/orgs/${ORG}/limit-requests/${filed.body.request_id}/deny`,
        {},
        owner,
      );
      expect([decided.status, decided.body.error.code]).toEqual([409, "request_decided"]);
      // A second pending request the same day: no second digest that day.
      const second = await api<{ request_id: string }>("POST", `/v1/orgs/${ORG}/users/s2/limit-requests`, {}, owner);
      await new Promise((r) => setTimeout(r, 1500));
      expect(digest()).toHaveLength(1);

      // --- Stop; start again with new consumer groups: every topic replayed.
      const before = {
        last: frozen,
        current: (await call("GET", `/v1/orgs/${ORG}/invoices?period=${current}`)).text,
        received: new Map(receiver.received),
      };
      pipeline.child.kill("SIGTERM");
      expect(await pipeline.exited).toBe(0);
      pipeline = spawnCli(["start"], envFor("replay"));
      await waitFor("the API after the restart", async () => (await fetch(`${base}/healthz`)).ok, 120_000);
      const total = first.length + late.length + currentEvents.length + 1;
      await waitFor(
        "the replay",
        async () => (await metricSum(base, "usage_aggregator_duplicates_total")) >= total,
        120_000,
      );
      await new Promise((r) => setTimeout(r, 3000));
      expect((await call("GET", `/v1/orgs/${ORG}/invoices?period=${last}`)).text).toBe(before.last);
      expect((await call("GET", `/v1/orgs/${ORG}/invoices?period=${current}`)).text).toBe(before.current);
      expect(receiver.received).toEqual(before.received);
      expect(digest()).toHaveLength(1);
      expect(receiver.badSignatures).toBe(0);

      // Requests can be switched off: a new one is refused.
      await api("POST", `/v1/orgs/${ORG}/limit-requests/${second.request_id}/deny`, { note: "not now" }, owner);
      await api("PUT", `/v1/orgs/${ORG}/policy`, { ...policy, limit_requests: "disabled" }, owner);
      const off = await call<{ error: { code: string } }>(
        "POST",
        `/v1/orgs/${ORG}/users/s1/limit-requests`,
        {},
        member,
      );
      expect([off.status, off.body.error.code]).toEqual([409, "limit_requests_disabled"]);
      // Credits are for self-serve plans.
      const credits = await call<{ error: { code: string } }>("POST", `/v1/orgs/${ORG}/credits/purchases`, {
        amount: "10",
      });
      expect([credits.status, credits.body.error.code]).toEqual([409, "plan_sales_assisted"]);
    } finally {
      await producer.close().catch(() => undefined);
      pipeline.child.kill("SIGTERM");
      await pipeline.exited;
      await receiver.close();
    }
  });
});
