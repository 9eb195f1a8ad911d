/**
 * Cap transitions (SPEC §5, §7): given what was last signalled for an entity in a period and where it stands now,
 * which signal (if any) to emit. Pure.
 *
 * - becoming blocked → `blocked`; leaving blocked (a raised cap or a lifted limit) → `unblocked`;
 * - otherwise reaching a threshold above the highest already signalled → `threshold`, for the highest one reached:
 *   a jump from 40% to 95% signals 0.9 once, and 0.5 and 0.75 count as passed for the rest of the period.
 * The threshold mark never goes down within a period, so a threshold is signalled at most once per period whatever
 * the policy does.
 */
import { Money } from "@usage/money";
import type { Status } from "@usage/policy";

export interface Mark {
  /** Highest threshold signalled in the period, as a decimal string, or null. */
  threshold: string | null;
  status: Status;
}

export const NO_MARK: Mark = { threshold: null, status: "ok" };

export type TransitionKind = "threshold" | "blocked" | "unblocked";

export interface Transition {
  kind: TransitionKind;
  threshold: string | null;
  status: Status;
  previousStatus: Status;
  next: Mark;
}

export function transition(previous: Mark, now: { threshold: string | null; status: Status }): Transition | undefined {
  const threshold = maxThreshold(previous.threshold, now.threshold);
  const next: Mark = { threshold, status: now.status };
  const base = { threshold: now.threshold, status: now.status, previousStatus: previous.status, next };
  if (now.status === "blocked" && previous.status !== "blocked") return { kind: "blocked", ...base };
  if (previous.status === "blocked" && now.status !== "blocked") return { kind: "unblocked", ...base };
  if (now.threshold !== null && (previous.threshold === null || new Money(now.threshold).gt(previous.threshold))) {
    return { kind: "threshold", ...base };
  }
  // Anything else (warning → ok after a raised cap, say) is no signal; the caller keeps quietMark().
  return undefined;
}

/** The mark to keep when no signal is emitted: status follows, the threshold never decreases. */
export function quietMark(previous: Mark, now: { threshold: string | null; status: Status }): Mark {
  return { threshold: maxThreshold(previous.threshold, now.threshold), status: now.status };
}

function maxThreshold(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return new Money(a).gte(b) ? a : b;
}
