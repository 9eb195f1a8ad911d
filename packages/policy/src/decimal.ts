/**
 * Exact money arithmetic for caps. Amounts travel as canonical decimal strings (no exponent, no trailing zeros
 * after the point, no trailing point, "0" for zero) and are computed with a local decimal.js clone; nothing here
 * touches `number`.
 */
import { Decimal } from "decimal.js";

/** 60 significant digits: limits have at most 6 decimal places and spends are sums of exact costs, so no step rounds. */
export const Dec = Decimal.clone({ precision: 60, rounding: Decimal.ROUND_HALF_EVEN });
export type Dec = InstanceType<typeof Dec>;

/** A plain decimal: optional minus, digits, optional fraction; no exponent, no `+`, no bare point. */
export const PLAIN_DECIMAL = /^-?\d+(?:\.\d+)?$/;

/** Positive infinity stands for `"unlimited"` in comparisons. */
export const INFINITE: Dec = new Dec(Number.POSITIVE_INFINITY);

/** Parses a plain decimal string; throws a RangeError naming `what` when it is not one. */
export function toDec(value: string, what = "amount"): Dec {
  if (typeof value !== "string" || !PLAIN_DECIMAL.test(value)) {
    throw new RangeError(`${what} must be a plain decimal string, got ${JSON.stringify(value)}`);
  }
  return new Dec(value);
}

/** A limit as a number to compare: `"unlimited"` is infinite. */
export function limitToDec(limit: string, what = "limit"): Dec {
  return limit === "unlimited" ? INFINITE : toDec(limit, what);
}

/** Canonical text of a finite decimal: `"12.5"`, `"0"`, never `"-0"` or an exponent. */
export function formatDec(d: Dec): string {
  if (!d.isFinite()) throw new RangeError(`not a finite amount: ${d.toString()}`);
  return d.isZero() ? "0" : d.toFixed();
}

/** Canonical form of a plain decimal string (`"012.50"` → `"12.5"`). */
export function canonicalDecimal(value: string, what = "amount"): string {
  return formatDec(toDec(value, what));
}

/** Canonical form of a limit value: a canonical decimal string or `"unlimited"`. */
export function canonicalLimit(limit: string, what = "limit"): string {
  return limit === "unlimited" ? "unlimited" : canonicalDecimal(limit, what);
}
