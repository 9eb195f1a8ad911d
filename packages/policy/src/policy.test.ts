import { describe, expect, it } from "vitest";
import { defaultPolicy, type Policy, parsePolicy } from "./policy.js";

/** The example policy of SPEC §5. */
const SPEC_EXAMPLE = {
  org_id: "org_1",
  mode: "override",
  multi_group: "lowest",
  discount_pct: "0",
  thresholds: ["0.5", "0.75", "0.9", "1"],
  org_limit: "5000",
  seat_tier_limits: { chat: "20", chat_code: "85" },
  groups: { engineering: { limit: "200", members: ["u1", "u2"] } },
  users: { u1: { limit: "unlimited", seat_tier: "chat_code" }, u3: { products: ["claude_code"] } },
  product_access: { claude_code: ["engineering"] },
  limit_requests: "enabled",
};

function errorsOf(input: unknown, orgId?: string) {
  const r = parsePolicy(input, orgId);
  if (r.ok) throw new Error(`expected errors, got ${JSON.stringify(r.policy)}`);
  return r.errors;
}

function policyOf(input: unknown, orgId?: string): Policy {
  const r = parsePolicy(input, orgId);
  if (!r.ok) throw new Error(`expected a policy, got ${JSON.stringify(r.errors)}`);
  return r.policy;
}

describe("defaultPolicy", () => {
  it("has no limits, override mode, lowest group, no discount and the default thresholds", () => {
    expect(defaultPolicy("org_9")).toEqual({
      org_id: "org_9",
      mode: "override",
      multi_group: "lowest",
      discount_pct: "0",
      thresholds: ["0.5", "0.75", "0.9", "1"],
      seat_tier_limits: {},
      groups: {},
      users: {},
      product_access: {},
      limit_requests: "enabled",
    });
  });

  it("parses to itself", () => {
    expect(policyOf(defaultPolicy("org_9"))).toEqual(defaultPolicy("org_9"));
  });
});

describe("parsePolicy", () => {
  it("accepts the SPEC §5 example unchanged", () => {
    expect(policyOf(SPEC_EXAMPLE)).toEqual(SPEC_EXAMPLE);
  });

  it("fills defaults for every omitted field", () => {
    expect(policyOf({ org_id: "org_1" })).toEqual(defaultPolicy("org_1"));
  });

  it("takes org_id from the argument when the document has none", () => {
    expect(policyOf({}, "org_2").org_id).toBe("org_2");
    expect(policyOf({ org_id: "org_2" }, "org_2").org_id).toBe("org_2");
  });

  it("rejects an org_id different from the argument on path org_id", () => {
    expect(errorsOf({ org_id: "org_1" }, "org_2")).toEqual([
      { path: "org_id", message: expect.stringContaining("org_2") },
    ]);
  });

  it("requires org_id when no org is given", () => {
    expect(errorsOf({})).toEqual([{ path: "org_id", message: "required" }]);
  });

  it("normalises decimals to canonical form and sorts thresholds", () => {
    const p = policyOf({
      org_id: "o",
      discount_pct: "12.50",
      thresholds: ["1.0", "0.50", "0.9"],
      org_limit: "05000.000",
      seat_tier_limits: { chat: "20.10", premium: "0.000000" },
      groups: { g: { limit: "200.5", members: ["u1", "u1", "u2"] } },
      users: { u1: { limit: "7.000001" } },
    });
    expect(p.discount_pct).toBe("12.5");
    expect(p.thresholds).toEqual(["0.5", "0.9", "1"]);
    expect(p.org_limit).toBe("5000");
    expect(p.seat_tier_limits).toEqual({ chat: "20.1", premium: "0" });
    expect(p.groups).toEqual({ g: { limit: "200.5", members: ["u1", "u2"] } });
    expect(p.users).toEqual({ u1: { limit: "7.000001" } });
  });

  it.each([["-1"], ["1e3"], ["abc"], [""], ["1.0000001"], [" 1"], [".5"], ["5."], ["Unlimited"]])(
    "rejects the limit %j with its path",
    (limit) => {
      expect(errorsOf({ org_id: "o", org_limit: limit })).toEqual([{ path: "org_limit", message: expect.any(String) }]);
      expect(errorsOf({ org_id: "o", users: { u1: { limit } } })).toEqual([
        { path: "users.u1.limit", message: expect.any(String) },
      ]);
      expect(errorsOf({ org_id: "o", groups: { eng: { limit, members: [] } } })).toEqual([
        { path: "groups.eng.limit", message: expect.any(String) },
      ]);
      expect(errorsOf({ org_id: "o", seat_tier_limits: { chat: limit } })).toEqual([
        { path: "seat_tier_limits.chat", message: expect.any(String) },
      ]);
    },
  );

  it("rejects a limit given as a JSON number", () => {
    expect(errorsOf({ org_id: "o", org_limit: 100 })).toEqual([{ path: "org_limit", message: expect.any(String) }]);
  });

  it.each([["0"], ["1.5"], ["-0.5"], ["1e-1"], ["0.0"]])("rejects the threshold %j with its path", (t) => {
    expect(errorsOf({ org_id: "o", thresholds: ["0.5", t] })).toEqual([
      { path: "thresholds[1]", message: expect.any(String) },
    ]);
  });

  it("rejects empty and duplicate thresholds", () => {
    expect(errorsOf({ org_id: "o", thresholds: [] })).toEqual([{ path: "thresholds", message: expect.any(String) }]);
    expect(errorsOf({ org_id: "o", thresholds: ["0.5", "0.50"] })).toEqual([
      { path: "thresholds[1]", message: expect.stringContaining("duplicate") },
    ]);
  });

  it("rejects an unknown mode or multi_group", () => {
    expect(errorsOf({ org_id: "o", mode: "lenient" })).toEqual([
      { path: "mode", message: 'expected "override" or "strict"' },
    ]);
    expect(errorsOf({ org_id: "o", multi_group: "average" })).toEqual([
      { path: "multi_group", message: 'expected "lowest" or "highest"' },
    ]);
  });

  it.each([["-1"], ["100.01"], ["1.23456"], ["1e2"]])("rejects discount_pct %j", (discount) => {
    expect(errorsOf({ org_id: "o", discount_pct: discount })).toEqual([
      { path: "discount_pct", message: expect.any(String) },
    ]);
  });

  it("accepts discount_pct 100 and 4 decimal places", () => {
    expect(policyOf({ org_id: "o", discount_pct: "100" }).discount_pct).toBe("100");
    expect(policyOf({ org_id: "o", discount_pct: "12.3456" }).discount_pct).toBe("12.3456");
  });

  it("rejects unknown keys at every level, each with its own path", () => {
    expect(
      errorsOf({
        org_id: "o",
        org_limt: "1",
        seat_tier_limits: { gold: "1" },
        groups: { g: { members: [], limt: "1" } },
        users: { u1: { limt: "1" } },
      }),
    ).toEqual(
      expect.arrayContaining([
        { path: "org_limt", message: "unknown key" },
        { path: "seat_tier_limits.gold", message: "unknown key" },
        { path: "groups.g.limt", message: "unknown key" },
        { path: "users.u1.limt", message: "unknown key" },
      ]),
    );
  });

  it("rejects a bad seat tier, empty or long names and member ids", () => {
    const long = "x".repeat(129);
    const errors = errorsOf({
      org_id: "o",
      groups: { "": { members: [] }, [long]: { members: [] }, g: { members: ["", 3] } },
      users: { u1: { seat_tier: "gold" }, [long]: {} },
    });
    expect(errors.map((e) => e.path).sort()).toEqual(
      [
        'groups[""]',
        `groups.${long}`,
        "groups.g.members[0]",
        "groups.g.members[1]",
        `users.${long}`,
        "users.u1.seat_tier",
      ].sort(),
    );
    expect(policyOf({ org_id: "o", users: { ["x".repeat(128)]: {} } }).users).toHaveProperty("x".repeat(128));
  });

  it("rejects __proto__ as a user id rather than dropping it", () => {
    const input = JSON.parse('{"org_id":"o","users":{"__proto__":{"limit":"1"}}}');
    expect(errorsOf(input)).toEqual([{ path: "users.__proto__", message: expect.stringContaining("__proto__") }]);
  });

  it("rejects a document that is not an object", () => {
    expect(errorsOf([])).toEqual([{ path: "(root)", message: expect.any(String) }]);
    expect(errorsOf(null)).toEqual([{ path: "(root)", message: expect.any(String) }]);
    expect(errorsOf("policy")).toEqual([{ path: "(root)", message: expect.any(String) }]);
  });

  it("reports every problem at once", () => {
    const errors = errorsOf({ org_id: "o", mode: "x", org_limit: "-1", thresholds: ["2"] });
    expect(errors.map((e) => e.path).sort()).toEqual(["mode", "org_limit", "thresholds[0]"]);
  });
});

describe("a discount that is not a decimal", () => {
  it.each(["", "abc", "-1", "1e3", "12.34567"])("%j is refused with the field named, never thrown", (discount) => {
    const r = parsePolicy({ org_id: "o", discount_pct: discount }, "o");
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map((e) => e.path)).toContain("discount_pct");
  });
});

describe("product access and limit requests (SPEC §5, §8)", () => {
  it("refuses a product gated by a group the policy does not have, an unknown product, and a bad switch", () => {
    expect(errorsOf({ org_id: "o", product_access: { claude_code: ["enginering"] } })).toEqual([
      { path: "product_access.claude_code[0]", message: 'unknown group "enginering" (not in groups)' },
    ]);
    expect(errorsOf({ org_id: "o", product_access: { api: [] } })[0]).toMatchObject({ path: "product_access.api" });
    expect(errorsOf({ org_id: "o", users: { u1: { products: ["chatt"] } } })[0]?.path).toBe("users.u1.products[0]");
    expect(errorsOf({ org_id: "o", limit_requests: "off" })).toEqual([
      { path: "limit_requests", message: 'expected "enabled" or "disabled"' },
    ]);
  });

  it("normalises grants in product order without duplicates", () => {
    const p = policyOf({ org_id: "o", users: { u1: { products: ["cowork", "chat", "cowork"] } } });
    expect(p.users.u1).toEqual({ products: ["chat", "cowork"] });
  });
});
