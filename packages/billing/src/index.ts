/**
 * @usage/billing: seat fees and invoice lines (SPEC §13), pure (no I/O). Seat fees are billed annually in advance
 * at each term start and prorated by day for seats added or upgraded mid-term (seats.ts, terms.ts); usage and
 * adjustment lines come from usage rows (lines.ts); every amount is an exact decimal string, rounded only to cents
 * for a line's `amount` and, when a proration is not a finite decimal, half-up at 12 places (amounts.ts).
 */
export { compareDecimals, PRORATION_PLACES, quotient, roundCents, sumDecimals } from "./amounts.js";
export { adjustmentLines, assembleInvoice, usageLines } from "./lines.js";
export { proratedAmount, seatLines } from "./seats.js";
export { termOf } from "./terms.js";
export type {
  Contract,
  Invoice,
  InvoiceLine,
  LineKind,
  Plan,
  SeatAssignment,
  Term,
  UsageRow,
} from "./types.js";
