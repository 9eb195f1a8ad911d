/**
 * Contract terms (SPEC §13): consecutive years from the contract's `term_start` (a UTC day). Term k runs from the
 * k-th anniversary of term_start (included) to the (k+1)-th (excluded), so it has 365 or 366 days (366 when it
 * holds a Feb 29).
 *
 * Anniversaries are counted from term_start itself, never chained from the previous term's end. A term_start of
 * Feb 29 has no anniversary in a non-leap year: there the term starts on Mar 1 (the day after Feb 28), and in a
 * leap year on Feb 29 again. So term_start 2028-02-29 gives [2028-02-29, 2029-03-01) of 366 days,
 * [2029-03-01, 2030-03-01), … and [2031-03-01, 2032-02-29) of 365 days, then [2032-02-29, 2033-03-01).
 * Before term_start there is no term.
 */
import { dayOf, parseDay } from "@usage/periods";
import type { Contract, Term } from "./types.js";

export const DAY_MS = 86_400_000;

/** A term with its bounds as UTC instants (start included, end excluded). */
export interface TermSpan extends Term {
  startMs: number;
  endMs: number;
}

/** Parses a YYYY-MM-DD day strictly; throws a RangeError naming `what` when it is not a real date. */
export function dayMs(day: string, what: string): number {
  const ms = typeof day === "string" ? parseDay(day) : undefined;
  if (ms === undefined) throw new RangeError(`${what} must be a YYYY-MM-DD day, got ${JSON.stringify(day)}`);
  return ms;
}

/** The k-th anniversary of a day (UTC ms); Feb 29 rolls over to Mar 1 in a non-leap year. */
function anniversary(startMs: number, k: number): number {
  const s = new Date(startMs);
  const d = new Date(0);
  // setUTCFullYear, not Date.UTC: Date.UTC maps years 0–99 to 1900–1999. Day 29 of a 28-day February is Mar 1.
  d.setUTCFullYear(s.getUTCFullYear() + k, s.getUTCMonth(), s.getUTCDate());
  return d.getTime();
}

/** Term k of a contract whose first term starts at `startMs`. */
export function termNumber(startMs: number, k: number): TermSpan {
  const from = anniversary(startMs, k);
  const to = anniversary(startMs, k + 1);
  return { start: dayOf(from), end: dayOf(to), days: Math.round((to - from) / DAY_MS), startMs: from, endMs: to };
}

/** The term holding the instant `ms` (k ≥ 0), or undefined before the first term. */
export function termSpanAt(startMs: number, ms: number): { k: number; term: TermSpan } | undefined {
  if (ms < startMs) return undefined;
  let k = new Date(ms).getUTCFullYear() - new Date(startMs).getUTCFullYear();
  while (k > 0 && anniversary(startMs, k) > ms) k--;
  while (anniversary(startMs, k + 1) <= ms) k++;
  return { k, term: termNumber(startMs, k) };
}

/**
 * The contract term holding `day` (YYYY-MM-DD): its first day, its exclusive end day and its number of days;
 * undefined before term_start.
 */
export function termOf(contract: Pick<Contract, "term_start">, day: string): Term | undefined {
  const startMs = dayMs(contract.term_start, "term_start");
  const found = termSpanAt(startMs, dayMs(day, "day"));
  if (!found) return undefined;
  const { start, end, days } = found.term;
  return { start, end, days };
}
