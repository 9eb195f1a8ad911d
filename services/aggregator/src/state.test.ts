import type { UsageEvent } from "@usage/events";
import { netCost } from "@usage/money";
import { applyPurchase, emptyAccount, parsePolicy } from "@usage/policy";
import { createPricer, loadRateCard } from "@usage/pricing";
import { describe, expect, it } from "vitest";
import { creditView } from "./credits.js";
import { SpendState } from "./state.js";

function policy(json: object) {
  const p = parsePolicy({ org_id: "org_1", ...json });
  if (!p.ok) throw new Error(JSON.stringify(p.errors));
  return p.policy;
}

describe("SpendState", () => {
  it("resets caps when the UTC month turns (injected clock)", () => {
    let now = Date.parse("2026-11-30T23:59:00Z");
    const state = new SpendState(() => now);
    state.setPolicy("org_1", policy({ users: { u1: { limit: "10" } } }), 1);
    state.addSpend("org_1", "u1", "2026-11", "10");
    expect(state.allowance("org_1", "u1")).toMatchObject({ allowed: false, spend: "10", blocked_by: "user" });
    // An event 2 minutes in the future lands in December and does not count toward November's cap.
    state.addSpend("org_1", "u1", "2026-12", "3");
    expect(state.allowance("org_1", "u1").spend).toBe("10");
    now = Date.parse("2026-12-01T00:00:00Z");
    expect(state.allowance("org_1", "u1")).toMatchObject({
      allowed: true,
      spend: "3",
      remaining: "7",
      blocked_by: null,
    });
  });

  it("signals each crossing once, the highest of a jump, and blocked", () => {
    const state = new SpendState(() => Date.parse("2026-11-15T00:00:00Z"));
    state.setPolicy("org_1", policy({ users: { u1: { limit: "100" } } }), 1);
    state.addSpend("org_1", "u1", "2026-11", "40");
    expect(state.evaluate("org_1", ["u1"])).toEqual([]);
    state.addSpend("org_1", "u1", "2026-11", "55");
    expect(state.evaluate("org_1", ["u1"]).map((t) => [t.entity.id, t.kind, t.threshold])).toEqual([
      ["u1", "threshold", "0.9"],
    ]);
    expect(state.evaluate("org_1", ["u1"])).toEqual([]);
    state.addSpend("org_1", "u1", "2026-11", "5");
    expect(state.evaluate("org_1", ["u1"]).map((t) => [t.kind, t.threshold, t.status])).toEqual([
      ["blocked", "1", "blocked"],
    ]);
  });

  it("re-evaluates every user of the org on a policy change: a raised cap unblocks at once", () => {
    const state = new SpendState(() => Date.parse("2026-11-15T00:00:00Z"));
    state.setPolicy("org_1", policy({ org_limit: "50", users: { u1: { limit: "10" } } }), 1);
    state.addSpend("org_1", "u1", "2026-11", "12");
    state.addSpend("org_1", "u2", "2026-11", "40");
    const first = state.evaluate("org_1").map((t) => `${t.entity.type}:${t.entity.id}:${t.kind}`);
    expect(first.sort()).toEqual(["org:org_1:blocked", "user:u1:blocked"]);
    expect(state.allowance("org_1", "u2")).toMatchObject({ allowed: false, blocked_by: "org" });
    state.setPolicy("org_1", policy({ org_limit: "500", users: { u1: { limit: "100" } } }), 2);
    const after = state.evaluate("org_1").map((t) => `${t.entity.type}:${t.entity.id}:${t.kind}:${t.policyVersion}`);
    expect(after.sort()).toEqual(["org:org_1:unblocked:2", "user:u1:unblocked:2"]);
    expect(state.allowance("org_1", "u2")).toMatchObject({ allowed: true, blocked_by: null });
  });

  it("caps: users refused on the org ceiling or on exhausted credits show blocked, as their allowance says", () => {
    const state = new SpendState(() => Date.parse("2026-11-15T00:00:00Z"));
    state.setPolicy("org_1", policy({ org_limit: "50", users: { u1: { limit: "100" } } }), 1);
    state.addSpend("org_1", "u1", "2026-11", "20");
    state.addSpend("org_1", "u2", "2026-11", "30");
    // 20 + 30 = 50, the org limit: u1 (20 of its own 100) and u2 (no own limit) are both refused.
    const caps = state.caps("org_1");
    expect(Object.entries(caps.users).map(([id, c]) => [id, c.status, c.blocked_by])).toEqual([
      ["u1", "blocked", "org"],
      ["u2", "blocked", "org"],
    ]);
    for (const id of ["u1", "u2"]) expect(state.allowance("org_1", id).allowed).toBe(false);
    // The user's own transitions stay against its own limit: no blocked signal for u1 or u2, the org's only.
    expect(state.evaluate("org_1").map((t) => `${t.entity.type}:${t.entity.id}:${t.kind}`)).toEqual([
      "org:org_1:blocked",
    ]);

    // A prepaid org with 30 bought and 30 spent since: balance 0, everyone refused on credits.
    state.setPolicy("org_1", policy({ users: { u1: { limit: "100" } } }), 2);
    const org = state.org("org_1");
    org.credits = emptyAccount(0);
    applyPurchase(org.credits, "30");
    state.addCreditSpend("org_1", 1, "30");
    const prepaid = state.caps("org_1");
    expect(prepaid.credits).toEqual({ balance: "0", status: "blocked" });
    expect(Object.entries(prepaid.users).map(([id, c]) => [id, c.status, c.blocked_by])).toEqual([
      ["u1", "blocked", "credits"],
      ["u2", "blocked", "credits"],
    ]);
    expect(state.allowance("org_1", "u2")).toMatchObject({ allowed: false, blocked_by: "credits" });
    // A purchase lifts the balance above zero: u1 is back to its own status (20 of 100 is below 0.5 × 100).
    applyPurchase(org.credits, "0.01");
    expect(state.caps("org_1").users.u1).toMatchObject({ status: "ok", blocked_by: null });
  });

  it("contract terms: credits gate only a self-serve org; the contract's discount; the assigned seat's tier", () => {
    const state = new SpendState(() => Date.parse("2026-11-15T00:00:00Z"));
    state.setPolicy(
      "org_1",
      policy({
        discount_pct: "5",
        seat_tier_limits: { chat: "10", premium: "300" },
        users: { u1: { seat_tier: "chat" } },
      }),
      1,
    );
    const org = state.org("org_1");
    org.credits = emptyAccount(0);
    applyPurchase(org.credits, "1");
    state.addCreditSpend("org_1", 1, "1");
    expect(state.creditsExhausted("org_1")).toBe(true);
    expect(state.discountOf("org_1")).toBe("5");
    // Sales-assisted: billed in arrears, the exhausted credits refuse nobody; the contract's discount applies.
    state.setContract("org_1", { plan: "sales_assisted", discount_pct: "12.5", version: 2 });
    expect(state.creditsExhausted("org_1")).toBe(false);
    expect(state.allowance("org_1", "u1")).toMatchObject({ allowed: true, blocked_by: null });
    expect(state.caps("org_1").credits).toBeUndefined();
    expect(state.discountOf("org_1")).toBe("12.5");
    state.setContract("org_1", { plan: "self_serve", discount_pct: "0", version: 3 });
    expect(state.allowance("org_1", "u1")).toMatchObject({ allowed: false, blocked_by: "credits" });
    // The seat in force decides the tier before the policy's seat_tier; one that starts later does not yet.
    expect(state.caps("org_1").users.u1).toMatchObject({ limit: "10", source: "seat_tier:chat" });
    state.setSeats("org_1", [
      { user_id: "u1", tier: "premium", at: Date.parse("2026-11-01T00:00:00Z") },
      { user_id: "u2", tier: "premium", at: Date.parse("2026-12-01T00:00:00Z") },
    ]);
    expect(state.caps("org_1").users.u1).toMatchObject({ limit: "300", source: "seat_tier:premium" });
    expect(state.userCap("org_1", "u1").limit).toBe("300");
    // u2's seat starts next month: not a known user of this month yet.
    expect(state.caps("org_1").users).not.toHaveProperty("u2");
  });

  it("never counts a late event toward the current month's caps", () => {
    const state = new SpendState(() => Date.parse("2026-11-15T00:00:00Z"));
    state.setPolicy("org_1", policy({ users: { u1: { limit: "50" } } }), 1);
    expect(state.recordSpend("org_1", "u1", Date.parse("2026-10-31T23:59:59.999Z"), "99")).toBe(false);
    expect(state.recordSpend("org_1", "u1", Date.parse("2026-11-01T00:00:00Z"), "1")).toBe(true);
    // Five minutes ahead at a month's end lands in the next month, which is not closed.
    expect(state.recordSpend("org_1", "u1", Date.parse("2026-12-01T00:04:00Z"), "7")).toBe(true);
    expect(state.caps("org_1").org.spend).toBe("1");
    expect(state.allowance("org_1", "u1")).toMatchObject({ allowed: true, spend: "1", remaining: "49" });
    expect(state.evaluate("org_1")).toEqual([]);
  });

  it("forgets a month once it is over (memory stays bounded by the current month)", () => {
    let now = Date.parse("2026-11-30T23:00:00Z");
    const state = new SpendState(() => now);
    state.setPolicy("org_1", policy({ users: { u1: { limit: "10" } } }), 1);
    state.recordSpend("org_1", "u1", now, "12");
    expect(state.evaluate("org_1").map((t) => t.kind)).toEqual(["blocked"]);
    state.prune();
    expect([...state.org("org_1").periods.keys()]).toEqual(["2026-11"]);
    now = Date.parse("2026-12-01T00:00:00Z");
    state.prune();
    expect([...state.org("org_1").periods.keys()]).toEqual([]);
    expect([...state.org("org_1").marks.keys()]).toEqual([]);
  });
});

describe("threshold crossings against the state", () => {
  it("signals a threshold reached exactly, not a cent before", () => {
    const state = new SpendState(() => Date.parse("2026-11-15T00:00:00Z"));
    state.setPolicy("org_1", policy({ users: { u1: { limit: "100" } } }), 1);
    state.addSpend("org_1", "u1", "2026-11", "49.999999");
    expect(state.evaluate("org_1", ["u1"])).toEqual([]);
    state.addSpend("org_1", "u1", "2026-11", "0.000001");
    expect(state.evaluate("org_1", ["u1"]).map((t) => [t.kind, t.threshold, t.spend])).toEqual([
      ["threshold", "0.5", "50"],
    ]);
  });

  it("signals the thresholds again in a new month, once each", () => {
    let now = Date.parse("2026-11-30T12:00:00Z");
    const state = new SpendState(() => now);
    state.setPolicy("org_1", policy({ users: { u1: { limit: "100" } } }), 1);
    state.addSpend("org_1", "u1", "2026-11", "60");
    expect(state.evaluate("org_1", ["u1"]).map((t) => [t.period, t.threshold])).toEqual([["2026-11", "0.5"]]);
    now = Date.parse("2026-12-01T00:00:01Z");
    state.addSpend("org_1", "u1", "2026-12", "55");
    expect(state.evaluate("org_1", ["u1"]).map((t) => [t.period, t.threshold])).toEqual([["2026-12", "0.5"]]);
    expect(state.evaluate("org_1", ["u1"])).toEqual([]);
  });
});

/**
 * A month past $10 million: 120 events of 1e9 input + 999,999,999 output tokens on claude-opus-4-1 and 300 one-token
 * cache reads on claude-3-5-haiku, at a 7.3333 % discount. Running totals kept at decimal.js's default 20 significant
 * digits showed 10008003.5916822369 here while ClickHouse's sum() says 10008003.591682237008.
 */
describe("running totals at any magnitude", () => {
  const NOW = Date.parse("2026-11-20T12:00:00Z");
  const DISCOUNT = "7.3333";
  // Worked by hand from SPEC §4 rates: opus 15 and 75 per MTok, haiku cache read 0.08 per MTok.
  // 1e9 × 15 / 1e6 + 999,999,999 × 75 / 1e6 = 15000 + 74999.999925 = 89999.999925; × 0.926667 = 83400.029930499975.
  const OPUS_NET = "83400.029930499975";
  // 0.08 / 1e6 = 0.00000008; × 0.926667 = 0.00000007413336.
  const HAIKU_NET = "0.00000007413336";
  // 120 × 83400.029930499975 + 300 × 0.00000007413336 (checked with bigints below).
  const TOTAL = "10008003.591682237008";

  function netCosts(): string[] {
    const price = createPricer(loadRateCard());
    const event = (i: number, model: string, tokens: Partial<UsageEvent>): UsageEvent => ({
      event_id: `00000000-0000-4000-8000-${String(i).padStart(12, "0")}`,
      occurred_at: "2026-11-20T11:00:00.000Z",
      org_id: "org_1",
      user_id: "u1",
      seat_tier: "premium",
      product: "chat",
      model,
      input_tokens: 0,
      output_tokens: 0,
      cache_write_tokens: 0,
      cache_read_tokens: 0,
      ...tokens,
    });
    const events = [
      ...Array.from({ length: 120 }, (_, i) =>
        event(i, "claude-opus-4-1", { input_tokens: 1_000_000_000, output_tokens: 999_999_999 }),
      ),
      ...Array.from({ length: 300 }, (_, i) => event(120 + i, "claude-3-5-haiku", { cache_read_tokens: 1 })),
    ];
    return events.map((e) => {
      const priced = price(e);
      if (!priced.ok) throw new Error(priced.rejection.message);
      return netCost(priced.value.total_cost, DISCOUNT);
    });
  }

  it("the expected total, by bigint arithmetic", () => {
    // In units of 10^-14: 83400.029930499975 is 8340002993049997500, 0.00000007413336 is 7413336.
    const units = 120n * 8_340_002_993_049_997_500n + 300n * 7_413_336n;
    expect(units).toBe(1_000_800_359_168_223_700_800n);
    expect(`${units / 10n ** 14n}.${(units % 10n ** 14n).toString().padStart(14, "0")}`).toBe(`${TOTAL}00`);
    const nets = netCosts();
    expect(new Set(nets.slice(0, 120))).toEqual(new Set([OPUS_NET]));
    expect(new Set(nets.slice(120))).toEqual(new Set([HAIKU_NET]));
  });

  it("caps, allowance and signals carry the exact sum", () => {
    const state = new SpendState(() => NOW);
    // Limits have at most 6 decimal places: the org's is 0.000000237008 below the total.
    const limits = { discount_pct: DISCOUNT, org_limit: "10008003.591682", users: { u1: { limit: "20000000" } } };
    state.setPolicy("org_1", policy(limits), 1);
    for (const net of netCosts()) expect(state.recordSpend("org_1", "u1", NOW, net)).toBe(true);

    // The snapshot the API's read model answers from carries the same exact figures.
    expect(state.snapshot("org_1")).toMatchObject({ orgTotal: TOTAL, users: { u1: TOTAL } });
    const caps = state.caps("org_1");
    expect(caps.org).toEqual({ limit: "10008003.591682", spend: TOTAL, status: "blocked" });
    // Past half of their own limit, and blocked by the org's (SPEC §5: a refused user shows blocked).
    expect(caps.users.u1).toMatchObject({ spend: TOTAL, remaining: "0", status: "blocked", blocked_by: "org" });
    expect(state.allowance("org_1", "u1")).toEqual({
      allowed: false,
      limit: "20000000",
      spend: TOTAL,
      remaining: "0",
      blocked_by: "org",
    });
    // The org is past its limit; the user past half of theirs.
    const signals = state.evaluate("org_1");
    expect(signals.map((t) => [t.entity.type, t.kind, t.threshold, t.spend])).toEqual([
      ["org", "blocked", "1", TOTAL],
      ["user", "threshold", "0.5", TOTAL],
    ]);

    // Without the org limit, what is left is the user's own: 20000000 − 10008003.591682237008.
    state.setPolicy("org_1", policy({ discount_pct: DISCOUNT, users: { u1: { limit: "20000000" } } }), 2);
    expect(state.allowance("org_1", "u1")).toMatchObject({
      allowed: true,
      spend: TOTAL,
      remaining: "9991996.408317762992",
    });
  });

  it("a prepaid balance drawn down by the same events is exact", () => {
    const state = new SpendState(() => NOW);
    state.setPolicy("org_1", policy({ discount_pct: DISCOUNT }), 1);
    const org = state.org("org_1");
    org.credits = emptyAccount(Date.parse("2026-11-01T00:00:00Z"));
    applyPurchase(org.credits, "10008004");
    for (const net of netCosts()) state.addCreditSpend("org_1", NOW, net);
    // 10008004 − 10008003.591682237008
    expect(state.caps("org_1").credits).toEqual({ balance: "0.408317762992", status: "ok" });
    expect(state.snapshot("org_1").creditBalance).toBe("0.408317762992");
    expect(creditView(org, "2026-11")).toMatchObject({
      balance: "0.408317762992",
      spent: TOTAL,
      purchased: "10008004",
    });
    expect(state.creditsExhausted("org_1")).toBe(false);
  });
});
