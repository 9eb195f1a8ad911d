/**
 * `Money`, the one decimal type for amounts off pricing's hot path: a decimal.js clone configured so that nothing
 * the project does with it rounds implicitly, plus the strict parsing and canonical formatting every boundary
 * (Avro, JSON, ClickHouse Decimal) uses.
 *
 * Sums, differences and products are exact: ClickHouse's widest Decimal (Decimal256, 76 digits) summed many times,
 * or two such values multiplied (152 digits), fit in MONEY_PRECISION. Division is the one operation whose result may
 * not terminate; it goes through {@link divide}, which names its decimal places and rounding mode, never `div`.
 */
import { Decimal } from "decimal.js";
import { decimalPlaces, formatScaled, parseScaled } from "./scaled.js";

/** Significant digits an operation on Money keeps: well above any sum or product of Decimal(76, s) values. */
export const MONEY_PRECISION = 200;

/**
 * The money type. Exponent notation is switched off (decimal.js's largest bounds), so `toString` and `toFixed`
 * always write plain digits. The rounding mode only matters where a caller names it (`toDecimalPlaces`,
 * `toFixed(dp)`), and should be named there.
 */
export const Money = Decimal.clone({
  precision: MONEY_PRECISION,
  rounding: Decimal.ROUND_HALF_EVEN,
  toExpNeg: -9e15,
  toExpPos: 9e15,
});
export type Money = InstanceType<typeof Money>;

/** decimal.js rounding modes: `Money.ROUND_HALF_UP`, `Money.ROUND_DOWN`, … */
export type Rounding = Decimal.Rounding;

/** What money functions take: a Money or a plain decimal string; never a JS number. */
export type MoneyValue = Money | string;

/** A plain decimal: optional minus, digits, optional fraction; no exponent, no `+`, no bare point. */
export const PLAIN_DECIMAL = /^-?\d+(?:\.\d+)?$/;

/** `+∞`: what `"unlimited"` compares as. */
export const UNLIMITED: Money = new Money(Number.POSITIVE_INFINITY);

/** Parses a plain decimal string strictly; throws a RangeError naming `what` when it is not one. */
export function parseMoney(value: string, what = "amount"): Money {
  if (typeof value !== "string" || !PLAIN_DECIMAL.test(value)) {
    throw new RangeError(`${what} must be a plain decimal string, got ${JSON.stringify(value)}`);
  }
  return new Money(value);
}

/** Canonical text of a finite amount: `"12.5"`, `"0"`; never `"-0"`, trailing zeros or an exponent. */
export function formatMoney(d: Money): string {
  if (!d.isFinite()) throw new RangeError(`not a finite amount: ${d.toString()}`);
  return d.isZero() ? "0" : d.toFixed();
}

/** Canonical form of a plain decimal string (`"012.50"` → `"12.5"`, `"-0.0"` → `"0"`). */
export function canonicalMoney(value: string, what = "amount"): string {
  return formatMoney(parseMoney(value, what));
}

/** A limit to compare against: `"unlimited"` is {@link UNLIMITED}, anything else a plain decimal. */
export function limitToMoney(limit: string, what = "limit"): Money {
  return limit === "unlimited" ? UNLIMITED : parseMoney(limit, what);
}

/** Canonical form of a limit: a canonical decimal string or `"unlimited"`. */
export function canonicalLimit(limit: string, what = "limit"): string {
  return limit === "unlimited" ? "unlimited" : canonicalMoney(limit, what);
}

/** The exact sum of amounts (0 for none). */
export function sumMoney(values: Iterable<MoneyValue>): Money {
  let total = new Money(0);
  for (const v of values) total = total.plus(v);
  return total;
}

/** A finite Money or plain decimal string as an integer and its scale: `"-1.25"` → `[-125n, 2]`. */
function scaledOf(value: MoneyValue, what: string): [bigint, number] {
  let text: string;
  if (typeof value === "string") {
    text = value;
  } else {
    if (!value.isFinite()) throw new RangeError(`${what} is not a finite amount: ${value.toString()}`);
    text = value.toFixed();
  }
  if (!PLAIN_DECIMAL.test(text)) {
    throw new RangeError(`${what} must be a plain decimal string, got ${JSON.stringify(text)}`);
  }
  const scale = decimalPlaces(text);
  return [parseScaled(text, scale), scale];
}

/** `n / d` (d > 0) rounded to an integer in `rounding` mode, exactly: the remainder decides, not a float. */
function roundQuotient(n: bigint, d: bigint, rounding: Rounding): bigint {
  const q = n / d; // truncated toward zero
  const r = n % d; // same sign as n
  if (r === 0n) return q;
  const away = n < 0n ? q - 1n : q + 1n;
  const positive = n > 0n;
  const twice = (r < 0n ? -r : r) * 2n;
  switch (rounding) {
    case Money.ROUND_UP:
      return away;
    case Money.ROUND_DOWN:
      return q;
    case Money.ROUND_CEIL:
      return positive ? away : q;
    case Money.ROUND_FLOOR:
      return positive ? q : away;
  }
  if (twice > d) return away;
  if (twice < d) return q;
  // Exactly half way.
  switch (rounding) {
    case Money.ROUND_HALF_UP:
      return away;
    case Money.ROUND_HALF_DOWN:
      return q;
    case Money.ROUND_HALF_EVEN:
      return q % 2n === 0n ? q : away;
    case Money.ROUND_HALF_CEIL:
      return positive ? away : q;
    case Money.ROUND_HALF_FLOOR:
      return positive ? q : away;
    default:
      throw new RangeError(`unknown rounding mode ${String(rounding)}`);
  }
}

/**
 * `dividend / divisor` rounded to `places` decimal places in `rounding` mode, exactly at any size: computed on
 * integers, so the only rounding is the one asked for (no intermediate rounding to a precision first, which could
 * round twice).
 */
export function divide(dividend: MoneyValue, divisor: MoneyValue, places: number, rounding: Rounding): Money {
  if (!Number.isSafeInteger(places) || places < 0) {
    throw new RangeError(`places must be a non-negative integer, got ${places}`);
  }
  const [a, aScale] = scaledOf(dividend, "dividend");
  const [b, bScale] = scaledOf(divisor, "divisor");
  if (b === 0n) throw new RangeError("division by zero");
  // (a / 10^aScale) / (b / 10^bScale) × 10^places = a × 10^(bScale + places) / (b × 10^aScale)
  let n = a * 10n ** BigInt(bScale + places);
  let d = b * 10n ** BigInt(aScale);
  if (d < 0n) {
    n = -n;
    d = -d;
  }
  return new Money(formatScaled(roundQuotient(n, d, rounding), places));
}
