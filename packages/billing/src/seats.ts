/**
 * Seat fees (SPEC §13), billed annually in advance from the contract's `seat_prices` (USD per seat per month):
 *
 *   - The seat a user holds on a UTC day is the one in force at the end of that day: their latest assignment with
 *     effective_at before the next midnight, "latest" by (effective_at, version), the higher version winning a tie
 *     (assignments equal in both keep their order in the input). Several changes within one day count as the last.
 *   - Annual charge: at each term start day T (see terms.ts), every seat in force on day T (assigned on or before
 *     T, including before term_start) is billed 12 × price: one line per tier, quantity n, unit_price 12 × price,
 *     amount n × 12 × price, dated T. Assignments on day T itself are part of it.
 *   - During the term, on a day d after T: a user with no seat yet in the term who gets one (a new seat), or whose
 *     seat moves to a tier dearer than the highest price already charged for their seat in this term (an upgrade),
 *     is charged at once, prorated by day for the rest of the term:
 *         (price, or new price − highest price charged) × 12 × days_left / days_in_term,
 *     days_left counting from d (included) to the term's end (excluded). A move to a tier that is not dearer than
 *     what was charged charges nothing and does not lower what was charged: seats are neither removed nor refunded
 *     mid-term, so a downgrade and a later re-upgrade charge only above the highest price charged.
 *   - Changes with the same (day, from tier, to tier) are one line, quantity = count; `from_tier` is the tier
 *     whose price was the highest charged before (null for a new seat), so one line has one price difference.
 *     amount = count × difference × 12 × days_left / days_in_term as ONE exact fraction; unit_price the same for
 *     one seat. Each stays exact when it is a finite decimal (any number of places), and is otherwise rounded
 *     half-up at 12 decimal places; the amount is never count × a rounded unit price.
 *   - A tier missing from seat_prices costs 0; a line whose amount would be 0 is not written. A seat on such a
 *     tier still is a seat: moving it to a priced tier later is an upgrade from it (from_tier set), at the full price.
 *   - Seat prices are not discounted: discount_pct applies to usage (SPEC §4), which arrives net of it. The plan
 *     does not change the rule.
 *   - The month's seat lines: annual lines of a term start inside the month, and prorated lines of the changes whose
 *     day is inside the month (the state they start from is worked out from the whole term before). A month may
 *     touch two terms (a renewal mid-month): each term's changes are prorated against that term.
 *   - Sorted by date, then annual before prorated, then tier, then from_tier (new seats first).
 */
import { PLAIN_DECIMAL } from "@usage/money";
import { dayOf, periodRange } from "@usage/periods";
import {
  canonical,
  compareDecimals,
  fractionOf,
  quotient,
  roundCents,
  subtractDecimals,
  timesInteger,
} from "./amounts.js";
import { DAY_MS, dayMs, type TermSpan, termNumber, termSpanAt } from "./terms.js";
import type { Contract, InvoiceLine, SeatAssignment } from "./types.js";

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

interface Held {
  ms: number;
  version: number;
  tier: string;
}

interface Charged {
  tier: string;
  price: string;
}

const seats = (n: number) => (n === 1 ? "1 seat" : `${n} seats`);

/** The prorated amount for `count` seats: count × difference × 12 × daysLeft / daysInTerm (SPEC §13). */
export function proratedAmount(difference: string, count: number, daysLeft: number, daysInTerm: number): string {
  const { n, d } = fractionOf(difference, "price difference");
  return quotient(n * BigInt(count) * 12n * BigInt(daysLeft), d * BigInt(daysInTerm));
}

function priceTable(seatPrices: Record<string, string>): Map<string, string> {
  const prices = new Map<string, string>();
  for (const [tier, price] of Object.entries(seatPrices ?? {})) {
    if (typeof price !== "string" || !PLAIN_DECIMAL.test(price) || price.startsWith("-")) {
      throw new RangeError(`seat_prices.${tier} must be a non-negative decimal string, got ${JSON.stringify(price)}`);
    }
    prices.set(tier, canonical(price, `seat_prices.${tier}`));
  }
  return prices;
}

/** Each user's assignments in order of record: (effective_at, version). */
function histories(assignments: SeatAssignment[]): Map<string, Held[]> {
  const byUser = new Map<string, Held[]>();
  assignments.forEach((a, i) => {
    const where = `assignments[${i}]`;
    if (typeof a.user_id !== "string" || a.user_id === "") throw new RangeError(`${where}.user_id must be a string`);
    if (typeof a.tier !== "string" || a.tier === "") throw new RangeError(`${where}.tier must be a string`);
    const ms = typeof a.effective_at === "string" && RFC3339.test(a.effective_at) ? Date.parse(a.effective_at) : NaN;
    if (Number.isNaN(ms)) {
      throw new RangeError(`${where}.effective_at must be an RFC 3339 instant, got ${JSON.stringify(a.effective_at)}`);
    }
    if (!Number.isSafeInteger(a.version)) throw new RangeError(`${where}.version must be an integer`);
    const list = byUser.get(a.user_id) ?? [];
    list.push({ ms, version: a.version, tier: a.tier });
    byUser.set(a.user_id, list);
  });
  for (const list of byUser.values()) list.sort((x, y) => x.ms - y.ms || x.version - y.version);
  return byUser;
}

interface Keyed {
  line: InvoiceLine;
  prorated: boolean;
}

function seatLine(
  fields: Pick<InvoiceLine, "description" | "quantity" | "unit_price" | "tier" | "from_tier" | "date">,
  amountExact: string,
): InvoiceLine {
  return {
    kind: "seat",
    ...fields,
    user_id: null,
    product: null,
    model: null,
    period: null,
    amount_exact: amountExact,
    amount: roundCents(amountExact),
  };
}

/** The seat lines one term contributes to the month [from, to). */
function termLines(
  term: TermSpan,
  users: Map<string, Held[]>,
  priceOf: (tier: string) => string,
  from: number,
  to: number,
): Keyed[] {
  const out: Keyed[] = [];
  const firstDayEnd = term.startMs + DAY_MS;
  const annual = new Map<string, number>();
  const changes = new Map<string, { day: string; from: string | null; to: string; diff: string; count: number }>();
  const dayInMonth = (ms: number) => ms >= from && ms < to;

  for (const list of users.values()) {
    let charged: Charged | undefined;
    let i = 0;
    // The seat in force at the end of the term's first day.
    while (i < list.length && list[i]!.ms < firstDayEnd) i++;
    const initial = i > 0 ? list[i - 1] : undefined;
    if (initial) {
      charged = { tier: initial.tier, price: priceOf(initial.tier) };
      annual.set(initial.tier, (annual.get(initial.tier) ?? 0) + 1);
    }
    // Later days of the term, each day's last assignment.
    for (; i < list.length && list[i]!.ms < term.endMs; i++) {
      const held = list[i]!;
      const next = list[i + 1];
      const dayStart = Math.floor(held.ms / DAY_MS) * DAY_MS;
      if (next && next.ms < dayStart + DAY_MS && next.ms < term.endMs) continue;
      const price = priceOf(held.tier);
      let fromTier: string | null = null;
      let diff: string;
      if (!charged) {
        diff = price;
      } else if (compareDecimals(price, charged.price) > 0) {
        fromTier = charged.tier;
        diff = subtractDecimals(price, charged.price);
      } else {
        continue;
      }
      charged = { tier: held.tier, price };
      if (!dayInMonth(dayStart) || compareDecimals(diff, "0") === 0) continue;
      const day = dayOf(dayStart);
      const key = JSON.stringify([day, fromTier, held.tier]);
      const group = changes.get(key);
      if (group) group.count++;
      else changes.set(key, { day, from: fromTier, to: held.tier, diff, count: 1 });
    }
  }

  if (dayInMonth(term.startMs)) {
    const lastDay = dayOf(term.endMs - DAY_MS);
    for (const [tier, n] of annual) {
      const price = priceOf(tier);
      if (compareDecimals(price, "0") === 0) continue;
      const line = seatLine(
        {
          description: `${seats(n)} (${tier}), term ${term.start} to ${lastDay}: 12 × ${price} per seat, billed annually in advance`,
          quantity: n,
          unit_price: timesInteger(price, 12n),
          tier,
          from_tier: null,
          date: term.start,
        },
        timesInteger(price, 12n * BigInt(n)),
      );
      out.push({ line, prorated: false });
    }
  }

  for (const c of changes.values()) {
    const daysLeft = Math.round((term.endMs - dayMs(c.day, "day")) / DAY_MS);
    const share = `${daysLeft}/${term.days} of the term`;
    const description =
      c.from === null
        ? `${seats(c.count)} added ${c.day} (${c.to}), ${share}`
        : `${seats(c.count)} upgraded ${c.from} → ${c.to} ${c.day}, ${share}`;
    const line = seatLine(
      {
        description,
        quantity: c.count,
        unit_price: proratedAmount(c.diff, 1, daysLeft, term.days),
        tier: c.to,
        from_tier: c.from,
        date: c.day,
      },
      proratedAmount(c.diff, c.count, daysLeft, term.days),
    );
    out.push({ line, prorated: true });
  }
  return out;
}

const cmp = (a: string | null, b: string | null): number => {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
};

/**
 * The seat fees charged in `period` (YYYY-MM, UTC): annual lines at a term start inside it, prorated lines for seats
 * added or upgraded on its days. Pure: the full assignment history goes in, the month's lines come out.
 */
export function seatLines(contract: Contract, assignments: SeatAssignment[], period: string): InvoiceLine[] {
  const range = periodRange(period);
  if (!range) throw new RangeError(`period must be YYYY-MM, got ${JSON.stringify(period)}`);
  const startMs = dayMs(contract.term_start, "term_start");
  const prices = priceTable(contract.seat_prices);
  const priceOf = (tier: string) => prices.get(tier) ?? "0";
  const users = histories(assignments);

  let k: number;
  const first = termSpanAt(startMs, range.from);
  if (first) k = first.k;
  else if (startMs < range.to) k = 0;
  else return [];

  const keyed: Keyed[] = [];
  for (; ; k++) {
    const term = termNumber(startMs, k);
    if (term.startMs >= range.to) break;
    keyed.push(...termLines(term, users, priceOf, range.from, range.to));
  }
  keyed.sort(
    (x, y) =>
      cmp(x.line.date, y.line.date) ||
      Number(x.prorated) - Number(y.prorated) ||
      cmp(x.line.tier, y.line.tier) ||
      cmp(x.line.from_tier, y.line.from_tier),
  );
  return keyed.map((x) => x.line);
}
