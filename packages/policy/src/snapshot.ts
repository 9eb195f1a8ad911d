/**
 * Caps and allowance of an org from a snapshot of its figures: the one computation behind the aggregator's own
 * answers and every API instance's read model (spend.totals.v1 + the control plane), so both answer alike.
 */
import type { SeatTier } from "@usage/events";
import { parseMoney } from "@usage/money";
import { productAllowed } from "./access.js";
import { type Allowance, allowanceFor, type CapsReport, evaluateCaps, userCap } from "./caps.js";
import type { Policy } from "./policy.js";

export interface OrgSnapshot {
  policy: Policy;
  /** The org's net spend in the current period. */
  orgTotal: string;
  /** Each user's net spend in the current period. */
  users: Record<string, string>;
  /** Each user's seat tier on their latest event. */
  seatTiers: Record<string, SeatTier>;
  /** A prepaid org's balance; undefined for an org without credits. */
  creditBalance?: string;
  /** The seat assigned to each user now (SPEC §13): it decides the user's seat tier before anything else. */
  seats?: Record<string, SeatTier>;
}

function creditsExhausted(s: OrgSnapshot): boolean {
  return s.creditBalance !== undefined && parseMoney(s.creditBalance, "balance").lte(0);
}

/** `GET …/caps`: every user's cap and the org's; a prepaid org also gets its credits line. */
export function snapshotCaps(s: OrgSnapshot): CapsReport {
  const exhausted = creditsExhausted(s);
  const report = evaluateCaps(s.policy, { org_total: s.orgTotal, users: s.users }, s.seatTiers, exhausted, s.seats);
  if (s.creditBalance === undefined) return report;
  return { ...report, credits: { balance: s.creditBalance, status: exhausted ? "blocked" : "ok" } };
}

/** `GET …/users/{user}/allowance?product=`: access to the product (when given) first, then caps. */
export function snapshotAllowance(s: OrgSnapshot, userId: string, product?: string): Allowance {
  const own = Object.hasOwn(s.users, userId) ? s.users[userId]! : "0";
  const tier = Object.hasOwn(s.seatTiers, userId) ? s.seatTiers[userId] : undefined;
  const assigned = s.seats && Object.hasOwn(s.seats, userId) ? s.seats[userId] : undefined;
  const cap = userCap(s.policy, userId, own, s.orgTotal, tier, creditsExhausted(s), assigned);
  return allowanceFor(cap, product !== undefined && !productAllowed(s.policy, userId, product));
}

/** A seat assignment as caps need it: the user holds `tier` from instant `at` (ms) on. */
export interface SeatInForce {
  user_id: string;
  tier: SeatTier;
  at: number;
}

/**
 * Each user's seat tier at instant `t` from assignments in effect order (by `at`, ties in record order), and until
 * when that answer holds (the next assignment's instant after `t`, or Infinity): callers keep it until then.
 */
export function seatsInForce(
  seats: readonly SeatInForce[],
  t: number,
): { tiers: Record<string, SeatTier>; until: number } {
  const tiers = new Map<string, SeatTier>();
  let until = Number.POSITIVE_INFINITY;
  for (const s of seats) {
    if (s.at <= t) tiers.set(s.user_id, s.tier);
    else if (s.at < until) until = s.at;
  }
  // fromEntries defines own properties: any user id is a plain key.
  return { tiers: Object.fromEntries(tiers), until };
}
