/**
 * A user's effective limit (SPEC §5). Candidates are collected in a fixed order — the individual limit, then the
 * user's groups in name order (code-unit order), then the seat-tier default — and a later candidate replaces the
 * current pick only when strictly better, so ties go to the earlier one.
 */
import type { SeatTier } from "@usage/events";
import { canonicalLimit, limitToMoney, type Money } from "@usage/money";
import type { LimitValue, Policy } from "./policy.js";

export type EffectiveLimitSource = "individual" | `group:${string}` | `seat_tier:${SeatTier}` | "none";

export type EffectiveLimit = {
  /** A canonical decimal string, `"unlimited"`, or `null` (no per-user limit anywhere). */
  limit: string | "unlimited" | null;
  source: EffectiveLimitSource;
};

interface Candidate {
  limit: LimitValue;
  value: Money;
  source: Exclude<EffectiveLimitSource, "none">;
}

/** `record[key]` only when it is the record's own property, so ids like "constructor" never hit the prototype. */
export function ownValue<T>(record: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return record !== undefined && Object.hasOwn(record, key) ? record[key] : undefined;
}

/**
 * The user's seat tier (SPEC §5): the seat assigned to them (§13) where there is one, else `users[u].seat_tier` where
 * given, else the tier on the user's latest event.
 */
export function userSeatTier(
  policy: Policy,
  userId: string,
  latestSeatTier?: SeatTier,
  assignedTier?: SeatTier,
): SeatTier | undefined {
  return assignedTier ?? ownValue(policy.users, userId)?.seat_tier ?? latestSeatTier;
}

function candidate(limit: LimitValue, source: Candidate["source"]): Candidate {
  return { limit, value: limitToMoney(limit), source };
}

/** Group limits of every group the user is a member of (groups without a limit are ignored), by group name. */
function groupCandidates(policy: Policy, userId: string): Candidate[] {
  const out: Candidate[] = [];
  const names = Object.keys(policy.groups).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const name of names) {
    const group = policy.groups[name]!;
    if (group.limit !== undefined && group.members.includes(userId)) out.push(candidate(group.limit, `group:${name}`));
  }
  return out;
}

function seatTierCandidate(policy: Policy, tier: SeatTier | undefined): Candidate | undefined {
  if (tier === undefined) return undefined;
  const limit = ownValue<LimitValue | undefined>(policy.seat_tier_limits, tier);
  return limit === undefined ? undefined : candidate(limit, `seat_tier:${tier}`);
}

/** The lowest (or highest) candidate; ties keep the earliest. `"unlimited"` is infinite. */
function pick(candidates: readonly Candidate[], highest: boolean): Candidate | undefined {
  let best: Candidate | undefined;
  for (const c of candidates) {
    if (best === undefined || (highest ? c.value.gt(best.value) : c.value.lt(best.value))) best = c;
  }
  return best;
}

/**
 * The effective limit of `userId` under `policy`.
 *
 * - `override`: an individual limit (amount or `"unlimited"`) always wins. Otherwise the candidates are the limits
 *   of the user's groups plus the default of the user's seat tier, and `multi_group` picks the lowest or highest.
 * - `strict`: the lowest of every level that is set — individual, groups, seat tier; `"unlimited"` at one level
 *   lifts only that level (it is infinite in the minimum). `multi_group` does not apply. When every set level is
 *   `"unlimited"`, the source is the individual level if set, else the first group by name, else the seat tier.
 * - No candidate at all: `{ limit: null, source: "none" }`.
 *
 * `latestSeatTier` is the tier on the user's latest event; `users[u].seat_tier` takes precedence over it, and the
 * seat assigned to the user (`assignedTier`) over both.
 */
export function effectiveUserLimit(
  policy: Policy,
  userId: string,
  latestSeatTier?: SeatTier,
  assignedTier?: SeatTier,
): EffectiveLimit {
  const individualLimit = ownValue(policy.users, userId)?.limit;
  const individual = individualLimit === undefined ? undefined : candidate(individualLimit, "individual");
  if (policy.mode === "override" && individual !== undefined) {
    return { limit: canonicalLimit(individual.limit), source: "individual" };
  }

  const candidates = groupCandidates(policy, userId);
  const tier = seatTierCandidate(policy, userSeatTier(policy, userId, latestSeatTier, assignedTier));
  if (tier !== undefined) candidates.push(tier);

  const best =
    policy.mode === "strict"
      ? pick(individual === undefined ? candidates : [individual, ...candidates], false)
      : pick(candidates, policy.multi_group === "highest");
  return best === undefined
    ? { limit: null, source: "none" }
    : { limit: canonicalLimit(best.limit), source: best.source };
}
