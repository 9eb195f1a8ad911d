/**
 * The shapes of billing (SPEC §13): a contract's seat prices, seat assignments, usage rows and invoice lines.
 *
 * Every amount is an exact decimal string (never a JS number). An invoice line carries `amount_exact`, the exact
 * decimal, and `amount`, that rounded half-up (away from zero) to cents and written with exactly two decimals; the
 * invoice's `total` is the sum of the lines' `amount`.
 */

/** The contract's plan. It does not change how seats are billed (SPEC §13 has one rule for both). */
export type Plan = "sales_assisted" | "self_serve";

export interface Contract {
  plan: Plan;
  /** YYYY-MM-DD, a UTC day: the first day of the first term. */
  term_start: string;
  /** tier → USD per seat per month, a plain decimal string ≥ 0. A tier not listed costs 0. */
  seat_prices: Record<string, string>;
  /** Negotiated discount, percent. Usage rows arrive net of it already (SPEC §4); seat prices are not discounted. */
  discount_pct: string;
}

export interface SeatAssignment {
  user_id: string;
  tier: string;
  /** RFC 3339 UTC instant from which the assignment holds. */
  effective_at: string;
  /** Order of record: ties on effective_at are broken by version, the higher one being the later. */
  version: number;
}

export interface UsageRow {
  user_id: string;
  product: string;
  model: string;
  /** Exact decimal USD, net of the contract's discount. */
  net: string;
  requests: number;
}

export type LineKind = "seat" | "usage" | "adjustment";

export interface InvoiceLine {
  kind: LineKind;
  /** Human text, e.g. "10 seats added 2026-04-01 (chat_code), 275/365 of the term". */
  description: string;
  /** Seats for seat lines; requests for usage and adjustment lines. */
  quantity: number;
  /** Seat lines: the per-seat amount charged (exact); otherwise null. */
  unit_price: string | null;
  user_id: string | null;
  product: string | null;
  model: string | null;
  /** Seat lines: the tier charged. */
  tier: string | null;
  /** Prorated upgrade lines: the tier whose price had been charged (the highest in the term); else null. */
  from_tier: string | null;
  /** Seat lines: the UTC day (YYYY-MM-DD) of the charge. */
  date: string | null;
  /** Adjustment lines: the month (YYYY-MM) the usage belongs to. */
  period: string | null;
  /** The exact amount, a canonical decimal string. */
  amount_exact: string;
  /** `amount_exact` rounded half-up (away from zero) to cents, with exactly 2 decimals ("12.30"). */
  amount: string;
}

export interface Term {
  /** First day of the term, YYYY-MM-DD. */
  start: string;
  /** The day after the term's last day (exclusive end), YYYY-MM-DD. */
  end: string;
  /** Days in the term: 365 or 366. */
  days: number;
}

export interface Invoice {
  /** Seat lines, then usage lines, then adjustment lines. */
  lines: InvoiceLine[];
  /** Exact sum of the lines' `amount_exact`. */
  subtotal_exact: string;
  /** Sum of the lines' `amount` (each already in cents), 2 decimals. */
  total: string;
}
