/**
 * Cap status, thresholds and the caps report (SPEC §5, §7, §8). Pure functions over decimal strings; every amount
 * returned is a canonical decimal string.
 */
import type { Product, SeatTier } from "@usage/events";
import { formatMoney, limitToMoney, type Money, parseMoney } from "@usage/money";
import { gatesProducts, productsOf } from "./access.js";
import { effectiveUserLimit, ownValue } from "./limits.js";
import type { Policy } from "./policy.js";

export type Status = "ok" | "warning" | "blocked";

export interface UserCap {
  /** The effective limit: a canonical decimal string, `"unlimited"`, or `null` (no per-user limit). */
  limit: string | "unlimited" | null;
  /** `individual`, `group:<name>`, `seat_tier:<tier>` or `none`. */
  source: string;
  spend: string;
  /** See {@link remainingFor}. */
  remaining: string | null;
  /**
   * `blocked` whenever the user's requests are refused (`blocked_by` is not null: own limit, org ceiling or exhausted
   * credits), else the user's own status against its own effective limit (`warning` or `ok`). For the status against
   * the own limit alone (the user's own threshold and blocked signals), see {@link entityStatus}.
   */
  status: Status;
  /**
   * `"user"` when the user's own limit is reached, else `"org"` when the org ceiling is, else `"credits"` when a
   * prepaid org's balance is at or below zero, else `null`.
   */
  blocked_by: BlockedBy;
  /** The products the user may use (SPEC §5), listed when the org's policy gates any product. */
  products?: Product[];
}

export type BlockedBy = "user" | "org" | "credits" | "access" | null;

export interface CapsReport {
  org: { limit: string | "unlimited" | null; spend: string; status: Status };
  /** A prepaid org's credits: its balance, and `blocked` at or below zero. Absent for other orgs. */
  credits?: { balance: string; status: "ok" | "blocked" };
  /** Sorted by user id. */
  users: Record<string, UserCap>;
}

export interface SpendSnapshot {
  org_total: string;
  users: Record<string, string>;
}

/** The answer to "may this user make a request now?" (`GET …/users/{user}/allowance`). */
export interface Allowance {
  allowed: boolean;
  limit: string | "unlimited" | null;
  spend: string;
  remaining: string | null;
  blocked_by: BlockedBy;
}

/** A finite limit as a decimal, or undefined for `null` / `"unlimited"`. */
function finiteLimit(limit: string | "unlimited" | null | undefined): Money | undefined {
  if (limit === null || limit === undefined || limit === "unlimited") return undefined;
  return limitToMoney(limit);
}

function parseThresholds(thresholds: readonly string[]): { text: string; value: Money }[] {
  return thresholds.map((t) => {
    const value = parseMoney(t, "threshold");
    return { text: formatMoney(value), value };
  });
}

/**
 * Status of an entity (org or user): `blocked` when spend ≥ limit (a limit of 0 blocks at once, whatever the
 * spend), else `warning` when spend ≥ the lowest threshold × limit, else `ok`. No limit or `"unlimited"` is `ok`.
 */
export function entityStatus(spend: string, limit: string | "unlimited" | null, thresholds: string[]): Status {
  const cap = finiteLimit(limit);
  if (cap === undefined) return "ok";
  const spent = parseMoney(spend, "spend");
  if (cap.isZero() || spent.gte(cap)) return "blocked";
  let lowest: Money | undefined;
  for (const t of parseThresholds(thresholds)) if (lowest === undefined || t.value.lt(lowest)) lowest = t.value;
  return lowest !== undefined && spent.gte(lowest.times(cap)) ? "warning" : "ok";
}

/**
 * The highest threshold `t` with spend ≥ t × limit (canonical text), so a jump from 40 % to 95 % reports `"0.9"`
 * only (SPEC §7). `null` when none is reached or there is no finite limit; a limit of 0 reaches every threshold.
 */
export function highestThresholdReached(
  spend: string,
  limit: string | "unlimited" | null,
  thresholds: string[],
): string | null {
  const cap = finiteLimit(limit);
  if (cap === undefined) return null;
  const spent = parseMoney(spend, "spend");
  let best: { text: string; value: Money } | undefined;
  for (const t of parseThresholds(thresholds)) {
    if ((cap.isZero() || spent.gte(t.value.times(cap))) && (best === undefined || t.value.gt(best.value))) best = t;
  }
  return best === undefined ? null : best.text;
}

/**
 * What the user can still spend before being blocked: the smaller of (own limit − own spend) and
 * (org limit − org total), over whichever of the two limits is finite, clamped at "0". `null` when neither a
 * finite own limit nor a finite org limit applies (nothing caps the user).
 */
function remainingFor(
  ownLimit: Money | undefined,
  ownSpend: Money,
  orgLimit: Money | undefined,
  orgTotal: Money,
): string | null {
  let remaining: Money | undefined;
  if (ownLimit !== undefined) remaining = ownLimit.minus(ownSpend);
  if (orgLimit !== undefined) {
    const orgRemaining = orgLimit.minus(orgTotal);
    if (remaining === undefined || orgRemaining.lt(remaining)) remaining = orgRemaining;
  }
  if (remaining === undefined) return null;
  return remaining.isNegative() ? "0" : formatMoney(remaining);
}

/**
 * One user's cap: effective limit, remaining, who blocks them and their status, `blocked` whenever something does
 * (SPEC §5: a user's status never says ok while their allowance says no). `creditsExhausted`: the user's org is
 * prepaid and its balance is at or below zero.
 */
export function userCap(
  policy: Policy,
  userId: string,
  userSpend: string,
  orgTotal: string,
  seatTier?: SeatTier,
  creditsExhausted = false,
  assignedTier?: SeatTier,
): UserCap {
  const effective = effectiveUserLimit(policy, userId, seatTier, assignedTier);
  const orgLimit = policy.org_limit ?? null;
  const spent = parseMoney(userSpend, "spend");
  const total = parseMoney(orgTotal, "org_total");
  const own = entityStatus(userSpend, effective.limit, policy.thresholds);
  const orgStatus = entityStatus(orgTotal, orgLimit, policy.thresholds);
  const blockedBy: BlockedBy =
    own === "blocked" ? "user" : orgStatus === "blocked" ? "org" : creditsExhausted ? "credits" : null;
  return {
    limit: effective.limit,
    source: effective.source,
    spend: formatMoney(spent),
    remaining: remainingFor(finiteLimit(effective.limit), spent, finiteLimit(orgLimit), total),
    status: blockedBy === null ? own : "blocked",
    blocked_by: blockedBy,
  };
}

/**
 * The caps of every user named in the policy (the `users` map and every group's members) or in the spend, sorted
 * by user id, plus the org's. A user without spend has spent "0". `seatTiers` holds each user's tier on their latest
 * event; a `seat_tier` in the policy takes precedence. `creditsExhausted`: a prepaid org at or below zero, which
 * blocks every user (see {@link userCap}).
 */
export function evaluateCaps(
  policy: Policy,
  spend: SpendSnapshot,
  seatTiers?: Record<string, SeatTier>,
  creditsExhausted = false,
  seats?: Record<string, SeatTier>,
): CapsReport {
  const ids = new Set<string>(Object.keys(policy.users));
  for (const id of Object.keys(seats ?? {})) ids.add(id);
  const listProducts = gatesProducts(policy);
  for (const group of Object.values(policy.groups)) for (const member of group.members) ids.add(member);
  for (const id of Object.keys(spend.users)) ids.add(id);
  const sorted = [...ids].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));

  const orgLimit = policy.org_limit ?? null;
  const orgTotal = formatMoney(parseMoney(spend.org_total, "org_total"));
  return {
    org: { limit: orgLimit, spend: orgTotal, status: entityStatus(orgTotal, orgLimit, policy.thresholds) },
    // Object.fromEntries defines own properties, so any user id (even "__proto__") is a plain key.
    users: Object.fromEntries(
      sorted.map((id) => {
        const cap = userCap(
          policy,
          id,
          ownValue(spend.users, id) ?? "0",
          orgTotal,
          ownValue(seatTiers, id),
          creditsExhausted,
          ownValue(seats, id),
        );
        return [id, listProducts ? { ...cap, products: productsOf(policy, id) } : cap];
      }),
    ),
  };
}

/**
 * The pre-request check: allowed exactly when nothing blocks the user, which is exactly when the user's status (from
 * {@link userCap}) is not `blocked`. `accessDenied`: the product asked about is closed to the user (SPEC §5), which
 * is checked before caps: then `blocked_by` is `"access"` whatever the caps say.
 */
export function allowanceFor(cap: UserCap, accessDenied = false): Allowance {
  if (accessDenied) {
    return { allowed: false, limit: cap.limit, spend: cap.spend, remaining: cap.remaining, blocked_by: "access" };
  }
  return {
    allowed: cap.blocked_by === null,
    limit: cap.limit,
    spend: cap.spend,
    remaining: cap.remaining,
    blocked_by: cap.blocked_by,
  };
}
