import { parsePolicy } from "@usage/policy";
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

  it("counts a late event's month apart from the current one", () => {
    const state = new SpendState(() => Date.parse("2026-11-15T00:00:00Z"));
    state.addSpend("org_1", "u1", "2026-10", "99");
    state.prune();
    expect(state.caps("org_1").org.spend).toBe("0");
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
