import { applyPurchase, emptyAccount, parsePolicy } from "@usage/policy";
import { describe, expect, it } from "vitest";
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
