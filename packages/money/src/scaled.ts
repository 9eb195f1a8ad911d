/**
 * Money as bigints scaled by a power of ten: the string-level helpers of every boundary and of pricing's hot path.
 * Amounts travel as canonical decimal strings (no exponent, no trailing zeros after the point, no trailing point,
 * "0" for zero); a bigint has no size limit, so no step ever rounds.
 */

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;
const DISCOUNT_PCT = /^\d+(?:\.\d{1,4})?$/;
const DISCOUNT_SCALE = 4;
/** 100 % at DISCOUNT_SCALE. */
const HUNDRED_PCT = 100n * 10n ** BigInt(DISCOUNT_SCALE);

function checkScale(scale: number): void {
  if (!Number.isSafeInteger(scale) || scale < 0)
    throw new RangeError(`scale must be a non-negative integer, got ${scale}`);
}

/** Formats `n / 10^scale` as a canonical decimal string, e.g. `formatScaled(125n, 6)` → `"0.000125"`. */
export function formatScaled(n: bigint, scale: number): string {
  checkScale(scale);
  // Zero is the most common cost (most events leave some token kinds at 0), so skip the string work.
  if (n === 0n) return "0";
  const negative = n < 0n;
  const digits = (negative ? -n : n).toString();
  if (scale === 0) return negative ? `-${digits}` : digits;
  // One bigint→string conversion and string slicing are cheaper than a bigint division plus remainder.
  const wholeLength = digits.length - scale;
  const whole = wholeLength > 0 ? digits.slice(0, wholeLength) : "0";
  const fraction = wholeLength >= 0 ? digits.slice(wholeLength) : "0".repeat(-wholeLength) + digits;
  let end = fraction.length;
  while (end > 0 && fraction.charCodeAt(end - 1) === 48 /* "0" */) end--;
  const text = end === 0 ? whole : `${whole}.${fraction.slice(0, end)}`;
  return negative ? `-${text}` : text;
}

/** Powers of ten as bigints, for rescaling without `**` on every addition. */
const POW10: bigint[] = Array.from({ length: 64 }, (_, i) => 10n ** BigInt(i));
const pow10 = (n: number): bigint => POW10[n] ?? 10n ** BigInt(n);

/** A plain decimal string as its digits (a bigint) and its number of decimal places, in one match. */
function parsePlain(s: string): { value: bigint; scale: number } {
  const match = typeof s === "string" ? DECIMAL.exec(s) : null;
  if (!match) throw new RangeError(`not a decimal number: ${JSON.stringify(s)}`);
  const fraction = match[3] ?? "";
  const value = BigInt(match[2] + fraction);
  return { value: match[1] === "-" ? -value : value, scale: fraction.length };
}

/**
 * Parses a plain decimal string (`"12"`, `"0.50"`, `"-3.25"`; no exponent, no `+`, no bare point) into a
 * bigint scaled by `10^scale`. Throws when the string is not such a decimal or has more than `scale`
 * decimal places, because accepting it would mean rounding.
 */
export function parseScaled(s: string, scale: number): bigint {
  checkScale(scale);
  const parsed = parsePlain(s);
  if (parsed.scale > scale) {
    throw new RangeError(`${JSON.stringify(s)} has more than ${scale} decimal places`);
  }
  return parsed.value * pow10(scale - parsed.scale);
}

/**
 * An exact running sum of plain decimal strings: each is parsed once and added as a bigint at the largest scale seen
 * so far; the canonical string is made once, by `toString`. The same result as folding `addMoney` over the strings,
 * without a parse of the running total and a format per addition (the aggregator's rollups and running totals).
 */
export class DecimalSum {
  private value = 0n;
  private scale = 0;

  add(s: string): this {
    const { value, scale } = parsePlain(s);
    if (scale > this.scale) {
      this.value = this.value * pow10(scale - this.scale) + value;
      this.scale = scale;
    } else {
      this.value += scale < this.scale ? value * pow10(this.scale - scale) : value;
    }
    return this;
  }

  toString(): string {
    return formatScaled(this.value, this.scale);
  }
}

/** Number of decimal places of a plain decimal string; throws when it is not one. */
export function decimalPlaces(s: string): number {
  return parsePlain(s).scale;
}

/** Exact sum of two decimal strings, canonical. */
export function addMoney(a: string, b: string): string {
  return new DecimalSum().add(a).add(b).toString();
}

/**
 * Net amount after a negotiated discount (SPEC §4): `gross × (100 − discountPct) / 100`, exact and canonical.
 * `discountPct` is a decimal string from 0 to 100 with at most 4 decimal places.
 */
export function netCost(gross: string, discountPct: string): string {
  // No discount, the common case: gross × 100 / 100, i.e. gross in canonical form.
  if (discountPct === "0") {
    const g = parsePlain(gross);
    return formatScaled(g.value, g.scale);
  }
  if (typeof discountPct !== "string" || !DISCOUNT_PCT.test(discountPct)) {
    throw new RangeError(
      `discount_pct must be a decimal string from 0 to 100 with at most ${DISCOUNT_SCALE} decimal places, got ${JSON.stringify(discountPct)}`,
    );
  }
  const pct = parseScaled(discountPct, DISCOUNT_SCALE);
  if (pct > HUNDRED_PCT) throw new RangeError(`discount_pct must be at most 100, got ${JSON.stringify(discountPct)}`);
  const g = parsePlain(gross);
  // gross (scale g) × (100 − pct) (scale 4) has scale g + 4; dividing by 100 is two more decimal places, so
  // the quotient is exact without any division.
  return formatScaled(g.value * (HUNDRED_PCT - pct), g.scale + DISCOUNT_SCALE + 2);
}
