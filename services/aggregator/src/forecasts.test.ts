import { parsePolicy } from "@usage/policy";
import { describe, expect, it } from "vitest";
import { firstUsageByEntity, forecastSignals, seriesByEntity } from "./forecasts.js";
import { SpendState } from "./state.js";

const NOW = Date.parse("2026-11-10T12:00:00Z");

function stateWith(policy: unknown): SpendState {
  const state = new SpendState(() => NOW);
  const parsed = parsePolicy(policy, "org_1");
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.errors));
  state.setPolicy("org_1", parsed.policy, 1);
  return state;
}

describe("forecast series", () => {
  it("sums an org's users per day, exactly, sorted by day", () => {
    const series = seriesByEntity([
      { org_id: "org_1", user_id: "a", day: "2026-11-02", net: "0.1" },
      { org_id: "org_1", user_id: "b", day: "2026-11-02", net: "0.2" },
      { org_id: "org_1", user_id: "a", day: "2026-11-01", net: "1" },
    ]);
    expect(series.get("org_1")?.get("org")).toEqual([
      { day: "2026-11-01", spend: "1" },
      { day: "2026-11-02", spend: "0.3" },
    ]);
    expect(series.get("org_1")?.get("user:b")).toEqual([{ day: "2026-11-02", spend: "0.2" }]);
  });

  it("sums a day past $10 million to the last digit", () => {
    // 120 users at 83400.029930499975 and 300 at 0.00000007413336 on one day: 10008003.591659997 + 0.000022240008
    // (by hand). Decimal's default 20 significant digits made this 10008003.5916822369.
    const rows = [
      ...Array.from({ length: 120 }, (_, i) => ({ user_id: `big${i}`, net: "83400.029930499975" })),
      ...Array.from({ length: 300 }, (_, i) => ({ user_id: `small${i}`, net: "0.00000007413336" })),
    ].map((r) => ({ ...r, org_id: "org_1", day: "2026-11-02" }));
    expect(seriesByEntity(rows).get("org_1")?.get("org")).toEqual([
      { day: "2026-11-02", spend: "10008003.591682237008" },
    ]);
  });
});

describe("first usage per entity", () => {
  it("keeps each user's and, for the org, the earliest of its users'", () => {
    const firsts = firstUsageByEntity([
      { org_id: "org_1", user_id: "a", first_at: 3000 },
      { org_id: "org_1", user_id: "b", first_at: 1000 },
      { org_id: "org_2", user_id: "a", first_at: 2000 },
    ]);
    expect([...(firsts.get("org_1") ?? [])].sort()).toEqual([
      ["org", 1000],
      ["user:a", 3000],
      ["user:b", 1000],
    ]);
    expect(firsts.get("org_2")?.get("org")).toBe(2000);
  });
});

describe("forecast signals", () => {
  const rows = Array.from({ length: 10 }, (_, i) => ({
    org_id: "org_1",
    user_id: "fast",
    day: `2026-11-${String(i + 1).padStart(2, "0")}`,
    net: "10",
  }));
  // Active since the 1st.
  const firsts = [{ org_id: "org_1", user_id: "fast", first_at: Date.parse("2026-11-01T00:00:00Z") }];

  it("signals an entity projected to reach its cap this month once per period, and not one that is not", () => {
    const state = stateWith({ users: { fast: { limit: "250" }, slow: { limit: "1000" } } });
    state.addSpend("org_1", "fast", "2026-11", "100");
    const caps = (org: string) => state.caps(org);
    const first = forecastSignals(state, rows, firsts, NOW, caps);
    // 100 spent; today's 10 in half a day weighs as 20 a day: rate = (10 + Σ 0.8^k·10, k=1..9) / (0.5 + Σ 0.8^k)
    // ≈ 11.26 a day; the 150 left take ≈ 13.3 days from Nov 10 12:00, i.e. Nov 23. The slow user spends nothing.
    expect(first.map((s) => [s.kind, s.entity.id, s.limit])).toEqual([["forecast", "fast", "250"]]);
    expect(first[0]?.forecast?.reaches_limit_on).toBe("2026-11-23");
    expect(forecastSignals(state, rows, firsts, NOW, caps)).toEqual([]);
  });

  it("projects a user who started today from their first event, not from the 1st", () => {
    const state = stateWith({ users: { newbie: { limit: "1000" } } });
    state.addSpend("org_1", "newbie", "2026-11", "100");
    const today = [{ org_id: "org_1", user_id: "newbie", day: "2026-11-10", net: "100" }];
    // 100 in the hour since 11:00: 2,400 a day; the 900 left take 9 hours, reached at 21:00 today. Counted from the
    // 1st (Nov 1–9 as zero days) it would be 100 / (0.8 + … + 0.8^9 + 0.5) ≈ 25.24 a day: 900 take ≈ 35.7 days,
    // past the month's end, and no signal.
    const started = [{ org_id: "org_1", user_id: "newbie", first_at: Date.parse("2026-11-10T11:00:00Z") }];
    const signals = forecastSignals(state, today, started, NOW, (org) => state.caps(org));
    expect(signals.map((s) => [s.entity.id, s.forecast?.daily_rate, s.forecast?.reaches_limit_on])).toEqual([
      ["newbie", "2400", "2026-11-10"],
    ]);
    const fromFirst = stateWith({ users: { newbie: { limit: "1000" } } });
    fromFirst.addSpend("org_1", "newbie", "2026-11", "100");
    const sinceFirst = [{ ...started[0]!, first_at: Date.parse("2026-11-01T00:00:00Z") }];
    expect(forecastSignals(fromFirst, today, sinceFirst, NOW, (org) => fromFirst.caps(org))).toEqual([]);
  });

  it("does not signal a cap already reached (the blocked signal covers it)", () => {
    const state = stateWith({ users: { fast: { limit: "100" } } });
    state.addSpend("org_1", "fast", "2026-11", "100");
    expect(forecastSignals(state, rows, firsts, NOW, (org) => state.caps(org))).toEqual([]);
  });
});
