/**
 * Exact decimal arithmetic for billing, on bigints (the rules of SPEC §13):
 *   - sums, differences and products of decimal strings are exact, at any size;
 *   - a quotient (only a prorated seat fee divides) stays exact when it is a finite decimal, whatever its number of
 *     places, and is rounded half-up at 12 decimal places (PRORATION_PLACES) only when it is not;
 *   - an invoice line's `amount` is its exact amount rounded half-up (ties away from zero) to cents, written with
 *     exactly two decimals ("0.00", "1234.50", "-0.01"); nothing is rounded before that.
 * Parsing and canonical formatting come from @usage/money; no amount ever goes through a JS number.
 */
import { decimalPlaces, divide, formatMoney, formatScaled, Money, PLAIN_DECIMAL, parseScaled } from "@usage/money";

/** Places at which a prorated amount that is not a finite decimal is rounded half-up (SPEC §13). */
export const PRORATION_PLACES = 12;

/** An exact rational: numerator over a positive denominator. */
export interface Fraction {
  n: bigint;
  d: bigint;
}

/** A plain decimal string as a fraction over a power of ten; throws a RangeError naming `what` otherwise. */
export function fractionOf(value: string, what: string): Fraction {
  if (typeof value !== "string" || !PLAIN_DECIMAL.test(value)) {
    throw new RangeError(`${what} must be a plain decimal string, got ${JSON.stringify(value)}`);
  }
  const scale = decimalPlaces(value);
  return { n: parseScaled(value, scale), d: 10n ** BigInt(scale) };
}

/** Canonical form of a plain decimal string ("012.50" → "12.5", "-0" → "0"). */
export function canonical(value: string, what: string): string {
  const { n, d } = fractionOf(value, what);
  return formatScaled(n, d.toString().length - 1);
}

/** Exact sum of plain decimal strings, canonical ("0" for none). */
export function sumDecimals(values: Iterable<string>, what = "amount"): string {
  let n = 0n;
  let scale = 0;
  for (const v of values) {
    const f = fractionOf(v, what);
    const s = f.d.toString().length - 1;
    if (s > scale) {
      n *= 10n ** BigInt(s - scale);
      scale = s;
    }
    n += f.n * 10n ** BigInt(scale - s);
  }
  return formatScaled(n, scale);
}

/** Exact `a − b` of plain decimal strings, canonical. */
export function subtractDecimals(a: string, b: string, what = "amount"): string {
  const x = fractionOf(a, what);
  const y = fractionOf(b, what);
  const scale = Math.max(x.d.toString().length, y.d.toString().length) - 1;
  const d = 10n ** BigInt(scale);
  return formatScaled(x.n * (d / x.d) - y.n * (d / y.d), scale);
}

/** Sign of `a − b` for plain decimal strings, exactly: -1, 0 or 1. */
export function compareDecimals(a: string, b: string): number {
  const x = fractionOf(a, "amount");
  const y = fractionOf(b, "amount");
  const diff = x.n * y.d - y.n * x.d;
  return diff < 0n ? -1 : diff > 0n ? 1 : 0;
}

function gcd(a: bigint, b: bigint): bigint {
  let x = a < 0n ? -a : a;
  let y = b < 0n ? -b : b;
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

/**
 * `n / d` as a canonical decimal string: exact when the quotient is a finite decimal (its reduced denominator has no
 * prime factor but 2 and 5), any number of places; otherwise rounded half-up at PRORATION_PLACES.
 */
export function quotient(n: bigint, d: bigint): string {
  if (d === 0n) throw new RangeError("division by zero");
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  const g = gcd(n, d) || 1n;
  const rn = n / g;
  const rd = d / g;
  let rest = rd;
  let twos = 0;
  let fives = 0;
  for (; rest % 2n === 0n; rest /= 2n) twos++;
  for (; rest % 5n === 0n; rest /= 5n) fives++;
  if (rest === 1n) {
    const places = Math.max(twos, fives);
    return formatScaled((rn * 10n ** BigInt(places)) / rd, places);
  }
  return formatMoney(divide(rn.toString(), rd.toString(), PRORATION_PLACES, Money.ROUND_HALF_UP));
}

/** Exact `a × k` of a plain decimal string and an integer, canonical. */
export function timesInteger(value: string, k: bigint, what = "amount"): string {
  const { n, d } = fractionOf(value, what);
  return formatScaled(n * k, d.toString().length - 1);
}

/**
 * An exact amount rounded half-up (ties away from zero) to cents, always with two decimals: "0.005" → "0.01",
 * "0.0049999" → "0.00", "-0.005" → "-0.01", "1234.5" → "1234.50". A value that rounds to zero is "0.00", never "-0.00".
 */
export function roundCents(exact: string): string {
  const { n, d } = fractionOf(exact, "amount");
  const scaled = n * 100n;
  const q = scaled / d; // truncated toward zero
  const r = scaled % d;
  const twice = (r < 0n ? -r : r) * 2n;
  const cents = twice >= d ? (scaled < 0n ? q - 1n : q + 1n) : q;
  const negative = cents < 0n;
  const digits = (negative ? -cents : cents).toString().padStart(3, "0");
  return `${negative ? "-" : ""}${digits.slice(0, -2)}.${digits.slice(-2)}`;
}

/** Exact sum of amounts already in cents, written with two decimals. */
export function sumCents(values: Iterable<string>): string {
  return roundCents(sumDecimals(values));
}
