import { describe, expect, it } from "vitest";
import { allowanceFor, entityStatus, evaluateCaps, highestThresholdReached, userCap } from "./caps.js";
import { defaultPolicy, type Policy } from "./policy.js";

const T = ["0.5", "0.75", "0.9", "1"];

function policy(overrides: Partial<Policy>): Policy {
  return { ...defaultPolicy("org_1"), ...overrides };
}

const MODES = ["override", "strict"] as const;

describe("entityStatus", () => {
  it("is blocked exactly at the limit and one cent above", () => {
    expect(entityStatus("100", "100", T)).toBe("blocked");
    expect(entityStatus("100.00", "100", T)).toBe("blocked");
    expect(entityStatus("100.01", "100", T)).toBe("blocked");
    expect(entityStatus("99.99", "100", T)).toBe("warning");
  });

  it("warns exactly at the lowest threshold × limit and is ok one cent below", () => {
    expect(entityStatus("50", "100", T)).toBe("warning");
    expect(entityStatus("49.99", "100", T)).toBe("ok");
    // Unsorted thresholds: the lowest still counts.
    expect(entityStatus("30", "100", ["0.9", "0.3"])).toBe("warning");
    expect(entityStatus("29.99", "100", ["0.9", "0.3"])).toBe("ok");
    // Exact with fractions: 0.75 × 33.33 = 24.9975.
    expect(entityStatus("24.9975", "33.33", ["0.75"])).toBe("warning");
    expect(entityStatus("24.997499", "33.33", ["0.75"])).toBe("ok");
  });

  it('a limit of "0" blocks at once, even at spend 0', () => {
    expect(entityStatus("0", "0", T)).toBe("blocked");
  });

  it('is ok without a limit or with "unlimited"', () => {
    expect(entityStatus("1000000", null, T)).toBe("ok");
    expect(entityStatus("1000000", "unlimited", T)).toBe("ok");
  });

  it("never warns without thresholds", () => {
    expect(entityStatus("99", "100", [])).toBe("ok");
  });

  it("rejects a spend that is not a plain decimal", () => {
    expect(() => entityStatus("1e3", "100", T)).toThrow(RangeError);
  });
});

describe("highestThresholdReached", () => {
  it("reports the highest threshold across a jump (40% → 95% gives 0.9)", () => {
    expect(highestThresholdReached("40", "100", T)).toBeNull();
    expect(highestThresholdReached("95", "100", T)).toBe("0.9");
  });

  it("is exact at each threshold", () => {
    expect(highestThresholdReached("50", "100", T)).toBe("0.5");
    expect(highestThresholdReached("74.99", "100", T)).toBe("0.5");
    expect(highestThresholdReached("75", "100", T)).toBe("0.75");
    expect(highestThresholdReached("100", "100", T)).toBe("1");
    expect(highestThresholdReached("250", "100", T)).toBe("1");
  });

  it('is null without a finite limit and the highest threshold for limit "0"', () => {
    expect(highestThresholdReached("95", null, T)).toBeNull();
    expect(highestThresholdReached("95", "unlimited", T)).toBeNull();
    expect(highestThresholdReached("0", "0", T)).toBe("1");
    expect(highestThresholdReached("0", "0", ["0.5", "0.8"])).toBe("0.8");
  });
});

describe.each(MODES)("userCap and the org ceiling — %s mode", (mode) => {
  const p = policy({
    mode,
    org_limit: "1000",
    seat_tier_limits: { chat: "20" },
    users: { big: { limit: "5000" }, small: { limit: "10" } },
  });
  const bigLimit = mode === "override" ? "5000" : "20";

  it("below the org limit nobody is blocked by the org", () => {
    const cap = userCap(p, "big", "3", "999.99", "chat");
    expect(cap.blocked_by).toBeNull();
    expect(allowanceFor(cap).allowed).toBe(true);
    expect(cap.remaining).toBe("0.01");
  });

  it("at and above the org limit everyone is blocked by the org", () => {
    for (const total of ["1000", "1200.5"]) {
      for (const [user, tier] of [
        ["big", "chat"],
        ["nobody", undefined],
        ["nobody", "chat"],
      ] as const) {
        const cap = userCap(p, user, "1", total, tier);
        expect(cap.blocked_by).toBe("org");
        // Refused on the org ceiling, so blocked, though 1 is far below the user's own limit (or no limit).
        expect(cap.status).toBe("blocked");
        expect(cap.remaining).toBe("0");
        expect(allowanceFor(cap)).toEqual({
          allowed: false,
          limit: cap.limit,
          spend: "1",
          remaining: "0",
          blocked_by: "org",
        });
      }
    }
    expect(userCap(p, "big", "1", "1000", "chat")).toEqual({
      limit: bigLimit,
      source: mode === "override" ? "individual" : "seat_tier:chat",
      spend: "1",
      remaining: "0",
      status: "blocked",
      blocked_by: "org",
    });
    // One cent below the ceiling the user is back to their own status: 15 of chat's 20 is the 0.5 threshold's
    // warning in strict mode (0.5 × 20 = 10 ≤ 15); 15 of 5000 is ok in override mode.
    expect(userCap(p, "big", "15", "999.99", "chat")).toMatchObject({
      status: mode === "override" ? "ok" : "warning",
      blocked_by: null,
    });
  });

  it("a user at their own warning level shows blocked, not warning, once the org ceiling is reached", () => {
    // small: limit 10, spend 9 (0.9 of it, a warning on its own); org 1000 of 1000.
    expect(userCap(p, "small", "9", "999")).toMatchObject({ status: "warning", blocked_by: null, remaining: "1" });
    expect(userCap(p, "small", "9", "1000")).toMatchObject({ status: "blocked", blocked_by: "org", remaining: "0" });
  });

  it("exhausted credits block a user that no cap blocks, and never hide a cap that does", () => {
    // small at 3 of 10, org at 100 of 1000: nothing but the credits refuses them.
    expect(userCap(p, "small", "3", "100", undefined, true)).toEqual({
      limit: "10",
      source: "individual",
      spend: "3",
      remaining: "7",
      status: "blocked",
      blocked_by: "credits",
    });
    expect(allowanceFor(userCap(p, "small", "3", "100", undefined, true)).allowed).toBe(false);
    // Own limit and org ceiling are named first.
    expect(userCap(p, "small", "10", "100", undefined, true)).toMatchObject({ status: "blocked", blocked_by: "user" });
    expect(userCap(p, "small", "3", "1000", undefined, true)).toMatchObject({ status: "blocked", blocked_by: "org" });
    // Credits not exhausted: the user's own status (3 of 10 is below 0.5 × 10).
    expect(userCap(p, "small", "3", "100", undefined, false)).toMatchObject({ status: "ok", blocked_by: null });
  });

  it("a user at their own limit is blocked by the user even when the org is blocked too", () => {
    const cap = userCap(p, "small", "10", "1000");
    expect(cap).toEqual({
      limit: "10",
      source: "individual",
      spend: "10",
      remaining: "0",
      status: "blocked",
      blocked_by: "user",
    });
    expect(userCap(p, "small", "12", "500").blocked_by).toBe("user");
  });

  it('a limit of "0" blocks at spend 0', () => {
    const zero = policy({ mode, users: { u: { limit: "0" } } });
    const cap = userCap(zero, "u", "0", "0");
    expect(cap).toMatchObject({ limit: "0", status: "blocked", blocked_by: "user", remaining: "0" });
    const zeroOrg = policy({ mode, org_limit: "0" });
    expect(userCap(zeroOrg, "u", "0", "0")).toMatchObject({ limit: null, status: "blocked", blocked_by: "org" });
  });

  it("warning and blocked statuses for a user are exact", () => {
    expect(userCap(p, "small", "5", "0").status).toBe("warning");
    expect(userCap(p, "small", "4.99", "0").status).toBe("ok");
    expect(userCap(p, "small", "9.99", "0")).toMatchObject({ status: "warning", blocked_by: null, remaining: "0.01" });
  });

  it("remaining is the smaller of own and org headroom, null when neither is finite", () => {
    expect(userCap(p, "small", "2.5", "995").remaining).toBe("5");
    expect(userCap(p, "small", "2.5", "100").remaining).toBe("7.5");
    expect(userCap(p, "nobody", "2.5", "100").remaining).toBe("900");
    const open = policy({ mode, users: { u: { limit: "unlimited" } } });
    expect(userCap(open, "u", "2.5", "100").remaining).toBeNull();
    expect(userCap(open, "v", "2.5", "100").remaining).toBeNull();
    expect(userCap({ ...open, org_limit: "unlimited" }, "v", "2.5", "100").remaining).toBeNull();
  });

  it("outputs canonical decimals", () => {
    expect(userCap(p, "small", "2.500", "0100.0")).toMatchObject({ spend: "2.5", remaining: "7.5" });
  });
});

describe("evaluateCaps", () => {
  /** The SPEC §5 example. */
  const example = policy({
    org_limit: "5000",
    seat_tier_limits: { chat: "20", chat_code: "85" },
    groups: { engineering: { limit: "200", members: ["u1", "u2"] } },
    users: { u1: { limit: "unlimited", seat_tier: "chat_code" } },
  });

  it("lists every user of the policy and of the spend, sorted, with the org", () => {
    const report = evaluateCaps(
      example,
      { org_total: "2600.50", users: { u3: "19.5", u2: "150", u1: "2400" } },
      { u3: "chat", u1: "chat" },
    );
    expect(Object.keys(report.users)).toEqual(["u1", "u2", "u3"]);
    expect(report).toEqual({
      org: { limit: "5000", spend: "2600.5", status: "warning" },
      users: {
        u1: {
          limit: "unlimited",
          source: "individual",
          spend: "2400",
          remaining: "2399.5",
          status: "ok",
          blocked_by: null,
        },
        u2: {
          limit: "200",
          source: "group:engineering",
          spend: "150",
          remaining: "50",
          status: "warning",
          blocked_by: null,
        },
        u3: {
          limit: "20",
          source: "seat_tier:chat",
          spend: "19.5",
          remaining: "0.5",
          status: "warning",
          blocked_by: null,
        },
      },
    });
  });

  it("includes policy users and group members without spend at spend 0", () => {
    const p = policy({ groups: { g: { members: ["m2", "m1"] } }, users: { z: {} } });
    const report = evaluateCaps(p, { org_total: "0", users: { a: "1" } });
    expect(Object.keys(report.users)).toEqual(["a", "m1", "m2", "z"]);
    expect(report.users.m1).toEqual({
      limit: null,
      source: "none",
      spend: "0",
      remaining: null,
      status: "ok",
      blocked_by: null,
    });
    expect(report.org).toEqual({ limit: null, spend: "0", status: "ok" });
  });

  it.each(MODES)("blocks everyone when the org total reaches the org limit (%s)", (mode) => {
    const report = evaluateCaps(
      { ...example, mode },
      { org_total: "5000", users: { u1: "4900", u2: "99", u4: "1" } },
      { u2: "chat", u4: "chat" },
    );
    expect(report.org.status).toBe("blocked");
    for (const cap of Object.values(report.users)) expect(allowanceFor(cap).allowed).toBe(false);
    expect(report.users.u2?.blocked_by).toBe("user"); // chat default 20 < 99 (both modes)
    expect(report.users.u4?.blocked_by).toBe("org");
    expect(report.users.u1?.blocked_by).toBe(mode === "override" ? "org" : "user");
    // Every user is blocked, whoever blocks them: u4 spent 1 of chat's 20, ok on its own.
    expect(Object.values(report.users).map((c) => c.status)).toEqual(["blocked", "blocked", "blocked"]);
  });

  it("blocks every user of a prepaid org whose credits are exhausted, caps named first", () => {
    // Org 2600.5 of 5000 (warning), u2 at 150 of 200 (warning), u3 at 20 of chat's 20 (blocked by the user).
    const report = evaluateCaps(
      example,
      { org_total: "2600.50", users: { u3: "20", u2: "150", u1: "2400" } },
      { u3: "chat", u1: "chat" },
      true,
    );
    expect(report.org).toEqual({ limit: "5000", spend: "2600.5", status: "warning" });
    expect(Object.entries(report.users).map(([id, c]) => [id, c.status, c.blocked_by])).toEqual([
      ["u1", "blocked", "credits"],
      ["u2", "blocked", "credits"],
      ["u3", "blocked", "user"],
    ]);
    // The same spend without exhausted credits: each user's own status.
    const funded = evaluateCaps(
      example,
      { org_total: "2600.50", users: { u3: "20", u2: "150", u1: "2400" } },
      { u3: "chat", u1: "chat" },
    );
    expect(Object.entries(funded.users).map(([id, c]) => [id, c.status, c.blocked_by])).toEqual([
      ["u1", "ok", null],
      ["u2", "warning", null],
      ["u3", "blocked", "user"],
    ]);
  });

  it("looks up ids like constructor and __proto__ safely", () => {
    const users = Object.fromEntries([
      ["constructor", "1"],
      ["__proto__", "2"],
    ]);
    const report = evaluateCaps(defaultPolicy("o"), { org_total: "3", users });
    expect(Object.keys(report.users)).toEqual(["__proto__", "constructor"]);
    expect(Object.hasOwn(report.users, "__proto__")).toBe(true);
    expect(Object.getOwnPropertyDescriptor(JSON.parse(JSON.stringify(report)).users, "__proto__")?.value.spend).toBe(
      "2",
    );
  });
});

describe("allowanceFor", () => {
  it("is allowed exactly when nothing blocks", () => {
    const p = policy({ users: { u: { limit: "10" } } });
    expect(allowanceFor(userCap(p, "u", "3", "3"))).toEqual({
      allowed: true,
      limit: "10",
      spend: "3",
      remaining: "7",
      blocked_by: null,
    });
    expect(allowanceFor(userCap(p, "u", "10", "10")).allowed).toBe(false);
  });
});
