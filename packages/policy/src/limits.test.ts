import { describe, expect, it } from "vitest";
import { effectiveUserLimit, userSeatTier } from "./limits.js";
import { defaultPolicy, type Policy } from "./policy.js";

function policy(overrides: Partial<Policy>): Policy {
  return { ...defaultPolicy("org_1"), ...overrides };
}

/** u1 is in two groups (eng 200, ops 50); chat_code seats default to 85. */
const twoGroups = (mode: Policy["mode"], multi_group: Policy["multi_group"]) =>
  policy({
    mode,
    multi_group,
    seat_tier_limits: { chat: "20", chat_code: "85" },
    groups: { eng: { limit: "200", members: ["u1", "u2"] }, ops: { limit: "50", members: ["u1"] } },
  });

describe("effectiveUserLimit — override mode", () => {
  it("an individual limit wins when lower than the group", () => {
    const p = policy({ groups: { eng: { limit: "200", members: ["u1"] } }, users: { u1: { limit: "10" } } });
    expect(effectiveUserLimit(p, "u1")).toEqual({ limit: "10", source: "individual" });
  });

  it("an individual limit wins when higher than the group and the seat tier", () => {
    const p = policy({
      seat_tier_limits: { chat: "20" },
      groups: { eng: { limit: "200", members: ["u1"] } },
      users: { u1: { limit: "1000", seat_tier: "chat" } },
    });
    expect(effectiveUserLimit(p, "u1")).toEqual({ limit: "1000", source: "individual" });
  });

  it('an individual "unlimited" wins over every group and tier', () => {
    const p = policy({
      seat_tier_limits: { chat_code: "85" },
      groups: { eng: { limit: "200", members: ["u1"] } },
      users: { u1: { limit: "unlimited", seat_tier: "chat_code" } },
    });
    expect(effectiveUserLimit(p, "u1")).toEqual({ limit: "unlimited", source: "individual" });
  });

  it("multi_group lowest picks the lowest of two groups and the seat tier", () => {
    expect(effectiveUserLimit(twoGroups("override", "lowest"), "u1", "chat_code")).toEqual({
      limit: "50",
      source: "group:ops",
    });
    expect(effectiveUserLimit(twoGroups("override", "lowest"), "u1", "chat")).toEqual({
      limit: "20",
      source: "seat_tier:chat",
    });
  });

  it("multi_group highest picks the highest of two groups and the seat tier", () => {
    expect(effectiveUserLimit(twoGroups("override", "highest"), "u1", "chat_code")).toEqual({
      limit: "200",
      source: "group:eng",
    });
    const p = twoGroups("override", "highest");
    p.seat_tier_limits.premium = "unlimited";
    expect(effectiveUserLimit(p, "u1", "premium")).toEqual({ limit: "unlimited", source: "seat_tier:premium" });
  });

  it("a group without a limit is ignored", () => {
    const p = policy({
      multi_group: "highest",
      seat_tier_limits: { chat: "20" },
      groups: { everyone: { members: ["u1"] }, eng: { limit: "30", members: ["u1"] } },
    });
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "30", source: "group:eng" });
    const onlyUnlimited = policy({ groups: { everyone: { members: ["u1"] } } });
    expect(effectiveUserLimit(onlyUnlimited, "u1")).toEqual({ limit: null, source: "none" });
  });

  it("ties go to groups in name order, then the seat tier", () => {
    const p = policy({
      seat_tier_limits: { chat: "50" },
      groups: { zeta: { limit: "50", members: ["u1"] }, alpha: { limit: "50", members: ["u1"] } },
    });
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "50", source: "group:alpha" });
    expect(effectiveUserLimit({ ...p, multi_group: "highest" }, "u1", "chat")).toEqual({
      limit: "50",
      source: "group:alpha",
    });
    const tierOnly = policy({ seat_tier_limits: { chat: "50" }, groups: { g: { limit: "50", members: ["u2"] } } });
    expect(effectiveUserLimit(tierOnly, "u1", "chat")).toEqual({ limit: "50", source: "seat_tier:chat" });
  });

  it("no candidate anywhere gives limit null and source none", () => {
    const p = policy({ seat_tier_limits: { premium: "100" }, groups: { eng: { limit: "200", members: ["u2"] } } });
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: null, source: "none" });
    expect(effectiveUserLimit(p, "u1")).toEqual({ limit: null, source: "none" });
    expect(effectiveUserLimit(defaultPolicy("o"), "constructor")).toEqual({ limit: null, source: "none" });
  });

  it("applies the SPEC §5 example", () => {
    const p = policy({
      org_limit: "5000",
      seat_tier_limits: { chat: "20", chat_code: "85" },
      groups: { engineering: { limit: "200", members: ["u1", "u2"] } },
      users: { u1: { limit: "unlimited", seat_tier: "chat_code" } },
    });
    expect(effectiveUserLimit(p, "u1")).toEqual({ limit: "unlimited", source: "individual" });
    expect(effectiveUserLimit(p, "u2", "chat")).toEqual({ limit: "20", source: "seat_tier:chat" });
    expect(effectiveUserLimit(p, "u2", "chat_code")).toEqual({ limit: "85", source: "seat_tier:chat_code" });
    expect(effectiveUserLimit(p, "u2")).toEqual({ limit: "200", source: "group:engineering" });
    expect(effectiveUserLimit(p, "u3", "chat")).toEqual({ limit: "20", source: "seat_tier:chat" });
  });
});

describe("seat tier", () => {
  const p = policy({ seat_tier_limits: { chat: "20", premium: "300" }, users: { u1: { seat_tier: "premium" } } });

  it("comes from the policy when given, whatever the latest event says", () => {
    expect(userSeatTier(p, "u1", "chat")).toBe("premium");
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "300", source: "seat_tier:premium" });
    expect(effectiveUserLimit({ ...p, mode: "strict" }, "u1", "chat")).toEqual({
      limit: "300",
      source: "seat_tier:premium",
    });
  });

  it("comes from the latest event otherwise", () => {
    expect(userSeatTier(p, "u2", "chat")).toBe("chat");
    expect(effectiveUserLimit(p, "u2", "chat")).toEqual({ limit: "20", source: "seat_tier:chat" });
    expect(effectiveUserLimit({ ...p, mode: "strict" }, "u2", "chat")).toEqual({
      limit: "20",
      source: "seat_tier:chat",
    });
  });

  it("is none without either", () => {
    expect(userSeatTier(p, "u2")).toBeUndefined();
    expect(effectiveUserLimit(p, "u2")).toEqual({ limit: null, source: "none" });
  });
});

describe("effectiveUserLimit — strict mode", () => {
  it("takes the lowest of individual, groups and seat tier", () => {
    const p = twoGroups("strict", "highest");
    p.users.u1 = { limit: "100" };
    expect(effectiveUserLimit(p, "u1", "chat_code")).toEqual({ limit: "50", source: "group:ops" });
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "20", source: "seat_tier:chat" });
    p.users.u1 = { limit: "5" };
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "5", source: "individual" });
  });

  it("ignores multi_group", () => {
    expect(effectiveUserLimit(twoGroups("strict", "highest"), "u1", "chat_code")).toEqual(
      effectiveUserLimit(twoGroups("strict", "lowest"), "u1", "chat_code"),
    );
  });

  it('"unlimited" at one level lifts only that level', () => {
    const p = twoGroups("strict", "lowest");
    p.users.u1 = { limit: "unlimited" };
    expect(effectiveUserLimit(p, "u1", "chat_code")).toEqual({ limit: "50", source: "group:ops" });
    p.groups.ops = { limit: "unlimited", members: ["u1"] };
    expect(effectiveUserLimit(p, "u1", "chat_code")).toEqual({ limit: "85", source: "seat_tier:chat_code" });
    p.seat_tier_limits.chat_code = "unlimited";
    expect(effectiveUserLimit(p, "u1", "chat_code")).toEqual({ limit: "200", source: "group:eng" });
  });

  it("an individual limit does not win when higher, unlike override", () => {
    const p = policy({
      mode: "strict",
      groups: { eng: { limit: "200", members: ["u1"] } },
      users: { u1: { limit: "1000" } },
    });
    expect(effectiveUserLimit(p, "u1")).toEqual({ limit: "200", source: "group:eng" });
  });

  it('all set levels "unlimited" give "unlimited" from the individual, else the first group, else the tier', () => {
    const p = policy({
      mode: "strict",
      seat_tier_limits: { chat: "unlimited" },
      groups: { b: { limit: "unlimited", members: ["u1"] }, a: { limit: "unlimited", members: ["u1"] } },
      users: { u1: { limit: "unlimited" } },
    });
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "unlimited", source: "individual" });
    delete p.users.u1;
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "unlimited", source: "group:a" });
    p.groups = {};
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "unlimited", source: "seat_tier:chat" });
  });

  it("ties prefer the individual, then groups by name, then the tier", () => {
    const p = policy({
      mode: "strict",
      seat_tier_limits: { chat: "40" },
      groups: { b: { limit: "40", members: ["u1"] }, a: { limit: "40", members: ["u1"] } },
      users: { u1: { limit: "40" } },
    });
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "40", source: "individual" });
    delete p.users.u1;
    expect(effectiveUserLimit(p, "u1", "chat")).toEqual({ limit: "40", source: "group:a" });
  });

  it("no level set gives limit null and source none", () => {
    const p = policy({
      mode: "strict",
      groups: { everyone: { members: ["u1"] } },
      users: { u1: { seat_tier: "chat" } },
    });
    expect(effectiveUserLimit(p, "u1")).toEqual({ limit: null, source: "none" });
  });
});
