import { SEAT_TIERS, type SeatTier } from "@usage/events";
import { formatMoney, formatScaled, Money } from "@usage/money";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { allowanceFor, evaluateCaps, type SpendSnapshot, userCap } from "./caps.js";
import { effectiveUserLimit, userSeatTier } from "./limits.js";
import { type LimitValue, type Policy, parsePolicy } from "./policy.js";

const USERS = ["u0", "u1", "u2", "u3", "u4"];
const GROUPS = ["g0", "g1", "g2", "g3"];

/** Cents from 0 to 300.00: small enough that limits and spends often coincide, so boundaries get hit. */
const amount = fc.integer({ min: 0, max: 30_000 }).map((cents) => formatScaled(BigInt(cents), 2));
/** Sometimes with micro-dollar precision too. */
const limitAmount = fc.oneof(
  { weight: 4, arbitrary: amount },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 300_000_000 }).map((m) => formatScaled(BigInt(m), 6)) },
);
const limit: fc.Arbitrary<LimitValue | undefined> = fc.oneof(
  { weight: 2, arbitrary: fc.constant(undefined) },
  { weight: 1, arbitrary: fc.constant("unlimited") },
  { weight: 4, arbitrary: limitAmount },
);
const tier = fc.constantFrom(...SEAT_TIERS);
const optionalTier: fc.Arbitrary<SeatTier | undefined> = fc.option(tier, { nil: undefined });

function withLimit<T extends object>(base: T, value: LimitValue | undefined): T & { limit?: LimitValue } {
  return value === undefined ? base : { ...base, limit: value };
}

const policyArb: fc.Arbitrary<Policy> = fc
  .record({
    mode: fc.constantFrom("override" as const, "strict" as const),
    multi_group: fc.constantFrom("lowest" as const, "highest" as const),
    thresholds: fc.subarray(["0.25", "0.5", "0.75", "0.9", "1"], { minLength: 1 }),
    org_limit: limit,
    seat_tier_limits: fc.tuple(...SEAT_TIERS.map(() => limit)),
    groups: fc.tuple(
      ...GROUPS.map(() => fc.option(fc.record({ limit, members: fc.subarray(USERS) }), { nil: undefined })),
    ),
    users: fc.tuple(...USERS.map(() => fc.option(fc.record({ limit, seat_tier: optionalTier }), { nil: undefined }))),
  })
  .map((r): Policy => {
    const policy: Policy = {
      org_id: "org_p",
      mode: r.mode,
      multi_group: r.multi_group,
      discount_pct: "0",
      thresholds: r.thresholds,
      seat_tier_limits: {},
      groups: {},
      users: {},
      product_access: {},
      limit_requests: "enabled",
    };
    if (r.org_limit !== undefined) policy.org_limit = r.org_limit;
    SEAT_TIERS.forEach((t, i) => {
      const value = r.seat_tier_limits[i];
      if (value !== undefined) policy.seat_tier_limits[t] = value;
    });
    GROUPS.forEach((name, i) => {
      const g = r.groups[i];
      if (g !== undefined) policy.groups[name] = withLimit({ members: g.members }, g.limit);
    });
    USERS.forEach((id, i) => {
      const u = r.users[i];
      if (u === undefined) return;
      const entry = withLimit({}, u.limit) as { limit?: LimitValue; seat_tier?: SeatTier };
      if (u.seat_tier !== undefined) entry.seat_tier = u.seat_tier;
      policy.users[id] = entry;
    });
    return policy;
  });

const spendArb: fc.Arbitrary<SpendSnapshot> = fc.record({
  org_total: amount,
  users: fc
    .tuple(...USERS.map(() => fc.option(amount, { nil: undefined })))
    .map((spends) =>
      Object.fromEntries(USERS.flatMap((id, i) => (spends[i] === undefined ? [] : [[id, spends[i]] as const]))),
    ),
});

const seatTiersArb: fc.Arbitrary<Record<string, SeatTier>> = fc
  .tuple(...USERS.map(() => optionalTier))
  .map((tiers) =>
    Object.fromEntries(USERS.flatMap((id, i) => (tiers[i] === undefined ? [] : [[id, tiers[i]] as const]))),
  );

const userArb = fc.constantFrom(...USERS, "outsider");

const value = (l: LimitValue): Money => (l === "unlimited" ? new Money(Number.POSITIVE_INFINITY) : new Money(l));

/** Every level set for the user, in tie order: individual, groups by name, seat tier. */
function setLevels(policy: Policy, userId: string, latest?: SeatTier): { source: string; limit: LimitValue }[] {
  const levels: { source: string; limit: LimitValue }[] = [];
  const own = policy.users[userId]?.limit;
  if (own !== undefined) levels.push({ source: "individual", limit: own });
  for (const name of Object.keys(policy.groups).sort()) {
    const g = policy.groups[name]!;
    if (g.limit !== undefined && g.members.includes(userId)) levels.push({ source: `group:${name}`, limit: g.limit });
  }
  const t = userSeatTier(policy, userId, latest);
  const tierLimit = t === undefined ? undefined : policy.seat_tier_limits[t];
  if (tierLimit !== undefined) levels.push({ source: `seat_tier:${t}`, limit: tierLimit });
  return levels;
}

const RUNS = { numRuns: 500 };

describe("policy properties", () => {
  it("generated policies are valid and parse to themselves", () => {
    fc.assert(
      fc.property(policyArb, (policy) => {
        const parsed = parsePolicy(policy);
        expect(parsed).toEqual({ ok: true, policy });
      }),
      RUNS,
    );
  });

  it("override: an individual limit always wins", () => {
    fc.assert(
      fc.property(policyArb, userArb, optionalTier, (policy, userId, latest) => {
        const own = policy.users[userId]?.limit;
        fc.pre(own !== undefined);
        expect(effectiveUserLimit({ ...policy, mode: "override" }, userId, latest)).toEqual({
          limit: own,
          source: "individual",
        });
      }),
      RUNS,
    );
  });

  it("override without an individual limit: multi_group picks the lowest or highest group / tier candidate", () => {
    fc.assert(
      fc.property(policyArb, userArb, optionalTier, (policy, userId, latest) => {
        const p: Policy = { ...policy, mode: "override" };
        fc.pre(p.users[userId]?.limit === undefined);
        const candidates = setLevels(p, userId, latest);
        const effective = effectiveUserLimit(p, userId, latest);
        if (candidates.length === 0) {
          expect(effective).toEqual({ limit: null, source: "none" });
          return;
        }
        const values = candidates.map((c) => value(c.limit));
        const target = p.multi_group === "highest" ? Money.max(...values) : Money.min(...values);
        const first = candidates.find((c) => value(c.limit).eq(target))!;
        expect(effective).toEqual({ limit: first.limit, source: first.source });
      }),
      RUNS,
    );
  });

  it("strict: the effective limit is at most every finite set level, and is one of them", () => {
    fc.assert(
      fc.property(policyArb, userArb, optionalTier, (policy, userId, latest) => {
        const p: Policy = { ...policy, mode: "strict" };
        const levels = setLevels(p, userId, latest);
        const effective = effectiveUserLimit(p, userId, latest);
        if (levels.length === 0) {
          expect(effective).toEqual({ limit: null, source: "none" });
          return;
        }
        expect(effective.limit).not.toBeNull();
        const got = value(effective.limit!);
        for (const level of levels) expect(got.lte(value(level.limit))).toBe(true);
        expect(levels).toContainEqual({ source: effective.source, limit: effective.limit });
        if (levels.every((l) => l.limit === "unlimited")) expect(effective).toEqual(levels[0]);
      }),
      RUNS,
    );
  });

  it("caps: status, blocked_by, allowance and remaining are consistent", () => {
    fc.assert(
      fc.property(policyArb, spendArb, seatTiersArb, fc.boolean(), (policy, spend, seatTiers, creditsExhausted) => {
        const report = evaluateCaps(policy, spend, seatTiers, creditsExhausted);
        const orgLimit = policy.org_limit;
        const orgBlocked =
          orgLimit !== undefined && orgLimit !== "unlimited" && new Money(spend.org_total).gte(orgLimit);
        expect(report.org.status === "blocked").toBe(orgBlocked);

        const expectedIds = new Set([
          ...Object.keys(policy.users),
          ...Object.values(policy.groups).flatMap((g) => g.members),
          ...Object.keys(spend.users),
        ]);
        expect(Object.keys(report.users)).toEqual([...expectedIds].sort());

        for (const [id, cap] of Object.entries(report.users)) {
          const finite = cap.limit !== null && cap.limit !== "unlimited";
          const ownBlocked = finite && new Money(cap.spend).gte(cap.limit!);
          // status blocked iff refused: own spend >= a finite own limit, the org ceiling reached, or no credits
          expect(cap.status === "blocked").toBe(ownBlocked || orgBlocked || creditsExhausted);
          expect(cap.spend).toBe(formatMoney(new Money(spend.users[id] ?? "0")));
          expect(cap.blocked_by).toBe(ownBlocked ? "user" : orgBlocked ? "org" : creditsExhausted ? "credits" : null);

          const allowance = allowanceFor(cap);
          expect(allowance.allowed).toBe(cap.blocked_by === null);
          // the org ceiling blocks everyone
          if (orgBlocked) expect(allowance.allowed).toBe(false);

          // remaining (headroom under the caps) never negative; "0" exactly when refused on a cap; null only when
          // nothing finite applies
          if (cap.remaining === null) {
            expect(finite || (orgLimit !== undefined && orgLimit !== "unlimited")).toBe(false);
          } else {
            expect(new Money(cap.remaining).gte(0)).toBe(true);
            expect(cap.remaining === "0").toBe(ownBlocked || orgBlocked);
          }
        }
      }),
      RUNS,
    );
  });

  it("caps: a user's status is blocked exactly when their allowance is refused", () => {
    fc.assert(
      fc.property(
        policyArb,
        spendArb,
        seatTiersArb,
        fc.boolean(),
        userArb,
        (policy, spend, seatTiers, creditsExhausted, userId) => {
          const report = evaluateCaps(policy, spend, seatTiers, creditsExhausted);
          for (const cap of Object.values(report.users)) {
            expect(cap.status === "blocked").toBe(!allowanceFor(cap).allowed);
          }
          // The single-user path the allowance endpoint takes agrees, for users in the report and outside it.
          const cap = userCap(
            policy,
            userId,
            spend.users[userId] ?? "0",
            spend.org_total,
            seatTiers[userId],
            creditsExhausted,
          );
          expect(cap.status === "blocked").toBe(!allowanceFor(cap).allowed);
        },
      ),
      RUNS,
    );
  });
});
