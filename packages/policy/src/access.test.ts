import { describe, expect, it } from "vitest";
import { productAllowed, productsOf } from "./access.js";
import { type Policy, parsePolicy } from "./policy.js";
import { seatsInForce, snapshotAllowance, snapshotCaps } from "./snapshot.js";

function policy(input: object): Policy {
  const r = parsePolicy({ org_id: "o", ...input });
  if (!r.ok) throw new Error(JSON.stringify(r.errors));
  return r.policy;
}

const GATED = policy({
  groups: { engineering: { members: ["eng1"] }, sales: { limit: "50", members: ["s1"] } },
  product_access: { claude_code: ["engineering"], cowork: ["engineering", "sales"] },
  users: { granted: { products: ["claude_code"] } },
});

describe("product access (SPEC §5)", () => {
  it("opens a listed product to its groups' members and to individual grants only", () => {
    expect(productAllowed(GATED, "eng1", "claude_code")).toBe(true);
    expect(productAllowed(GATED, "s1", "claude_code")).toBe(false);
    expect(productAllowed(GATED, "s1", "cowork")).toBe(true);
    expect(productAllowed(GATED, "nobody", "cowork")).toBe(false);
    expect(productAllowed(GATED, "granted", "claude_code")).toBe(true);
    expect(productAllowed(GATED, "granted", "cowork")).toBe(false);
    // A product not listed is open to everyone.
    expect(productAllowed(GATED, "nobody", "chat")).toBe(true);
    expect(productsOf(GATED, "nobody")).toEqual(["chat"]);
    expect(productsOf(GATED, "eng1")).toEqual(["chat", "claude_code", "cowork"]);
    // An id that is a property of Object.prototype grants nothing.
    expect(productAllowed(GATED, "constructor", "claude_code")).toBe(false);
  });

  it("answers blocked_by access before caps, and allowed for an open product", () => {
    const snap = { policy: GATED, orgTotal: "0", users: {}, seatTiers: {} };
    expect(snapshotAllowance(snap, "nobody", "claude_code")).toEqual({
      allowed: false,
      limit: null,
      spend: "0",
      remaining: null,
      blocked_by: "access",
    });
    expect(snapshotAllowance(snap, "nobody", "chat")).toMatchObject({ allowed: true, blocked_by: null });
    expect(snapshotAllowance(snap, "nobody")).toMatchObject({ allowed: true, blocked_by: null });
    // Over its own limit and closed: access is checked first.
    const over = { ...snap, users: { s1: "60" } };
    expect(snapshotAllowance(over, "s1", "claude_code").blocked_by).toBe("access");
    expect(snapshotAllowance(over, "s1", "cowork").blocked_by).toBe("user");
  });

  it("lists each user's products in the caps report when the policy gates any", () => {
    const caps = snapshotCaps({ policy: GATED, orgTotal: "0", users: { u9: "1" }, seatTiers: {} });
    expect(caps.users.u9?.products).toEqual(["chat"]);
    expect(caps.users.granted?.products).toEqual(["chat", "claude_code"]);
    const open = snapshotCaps({ policy: policy({}), orgTotal: "0", users: { u9: "1" }, seatTiers: {} });
    expect(open.users.u9).not.toHaveProperty("products");
  });

  it("takes the assigned seat's tier before the policy's and the event's", () => {
    const p = policy({ seat_tier_limits: { chat: "20", premium: "500" }, users: { u1: { seat_tier: "chat" } } });
    const base = { policy: p, orgTotal: "0", users: {}, seatTiers: { u1: "chat" as const } };
    expect(snapshotAllowance(base, "u1").limit).toBe("20");
    expect(snapshotAllowance({ ...base, seats: { u1: "premium" } }, "u1").limit).toBe("500");
    expect(snapshotCaps({ ...base, seats: { u2: "premium" } }).users.u2).toMatchObject({
      limit: "500",
      source: "seat_tier:premium",
    });
  });
});

describe("seats in force (SPEC §13)", () => {
  it("gives each user's latest assignment at an instant, and until when that holds", () => {
    const seats = [
      { user_id: "u1", tier: "chat" as const, at: 100 },
      { user_id: "u1", tier: "premium" as const, at: 200 },
      { user_id: "__proto__", tier: "chat" as const, at: 150 },
      { user_id: "u2", tier: "standard" as const, at: 300 },
    ];
    expect(seatsInForce(seats, 99)).toEqual({ tiers: {}, until: 100 });
    const at150 = seatsInForce(seats, 150);
    expect(at150.until).toBe(200);
    expect(Object.entries(at150.tiers)).toEqual([
      ["u1", "chat"],
      ["__proto__", "chat"],
    ]);
    expect(seatsInForce(seats, 200).tiers.u1).toBe("premium");
    expect(seatsInForce(seats, 300)).toMatchObject({ tiers: { u1: "premium", u2: "standard" }, until: Infinity });
  });
});
