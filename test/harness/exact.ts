/**
 * An independent oracle for money in tests: exact rationals on bigints, sharing no code with @usage/money (which
 * the code under test uses), so an expectation computed here cannot inherit a rounding the code might make.
 * Nothing rounds unless `round()` is asked to; `toFixed()` refuses a value that has no finite decimal expansion.
 */

const PLAIN_DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

export type ExactValue = Exact | string | bigint | number;
export type RoundingMode = "down" | "up" | "half_up" | "half_even";

const abs = (n: bigint) => (n < 0n ? -n : n);

function gcd(a: bigint, b: bigint): bigint {
  let [x, y] = [abs(a), abs(b)];
  while (y !== 0n) [x, y] = [y, x % y];
  return x;
}

export class Exact {
  /** numerator / denominator, denominator > 0, in lowest terms. */
  private constructor(
    readonly n: bigint,
    readonly d: bigint,
  ) {}

  private static make(n: bigint, d: bigint): Exact {
    if (d === 0n) throw new RangeError("division by zero");
    if (d < 0n) [n, d] = [-n, -d];
    const g = gcd(n, d) || 1n;
    return new Exact(n / g, d / g);
  }

  /** A plain decimal string, a bigint, or a safe integer (never a fractional number: floats are not money). */
  static of(v: ExactValue): Exact {
    if (v instanceof Exact) return v;
    if (typeof v === "bigint") return new Exact(v, 1n);
    if (typeof v === "number") {
      if (!Number.isSafeInteger(v)) throw new RangeError(`not a safe integer: ${v}`);
      return new Exact(BigInt(v), 1n);
    }
    const m = PLAIN_DECIMAL.exec(v);
    if (!m) throw new RangeError(`not a plain decimal: ${JSON.stringify(v)}`);
    const fraction = m[3] ?? "";
    const n = BigInt(m[2] + fraction) * (m[1] === "-" ? -1n : 1n);
    return Exact.make(n, 10n ** BigInt(fraction.length));
  }

  static sum(values: Iterable<ExactValue>): Exact {
    let t = Exact.of(0);
    for (const v of values) t = t.plus(v);
    return t;
  }

  static max(...values: ExactValue[]): Exact {
    return values.map(Exact.of).reduce((a, b) => (b.gt(a) ? b : a));
  }

  static min(...values: ExactValue[]): Exact {
    return values.map(Exact.of).reduce((a, b) => (b.lt(a) ? b : a));
  }

  plus(v: ExactValue): Exact {
    const o = Exact.of(v);
    return Exact.make(this.n * o.d + o.n * this.d, this.d * o.d);
  }

  minus(v: ExactValue): Exact {
    const o = Exact.of(v);
    return Exact.make(this.n * o.d - o.n * this.d, this.d * o.d);
  }

  times(v: ExactValue): Exact {
    const o = Exact.of(v);
    return Exact.make(this.n * o.n, this.d * o.d);
  }

  div(v: ExactValue): Exact {
    const o = Exact.of(v);
    return Exact.make(this.n * o.d, this.d * o.n);
  }

  pow(k: number): Exact {
    return Exact.make(this.n ** BigInt(k), this.d ** BigInt(k));
  }

  cmp(v: ExactValue): number {
    const o = Exact.of(v);
    const diff = this.n * o.d - o.n * this.d;
    return diff < 0n ? -1 : diff > 0n ? 1 : 0;
  }

  eq(v: ExactValue): boolean {
    return this.cmp(v) === 0;
  }
  gt(v: ExactValue): boolean {
    return this.cmp(v) > 0;
  }
  gte(v: ExactValue): boolean {
    return this.cmp(v) >= 0;
  }
  lt(v: ExactValue): boolean {
    return this.cmp(v) < 0;
  }
  lte(v: ExactValue): boolean {
    return this.cmp(v) <= 0;
  }
  isZero(): boolean {
    return this.n === 0n;
  }

  /** Rounded to `places` decimal places; "up"/"down" are away from / towards zero, halves as named. */
  round(places: number, mode: RoundingMode): Exact {
    const scale = 10n ** BigInt(places);
    const scaled = this.n * scale;
    const q = scaled / this.d;
    const r = abs(scaled % this.d);
    let units = q;
    if (r !== 0n) {
      const away = scaled < 0n ? q - 1n : q + 1n;
      const half = 2n * r - this.d; // > 0 above half way, 0 at it
      if (mode === "up") units = away;
      else if (mode === "half_up" && half >= 0n) units = away;
      else if (mode === "half_even" && (half > 0n || (half === 0n && q % 2n !== 0n))) units = away;
    }
    return Exact.make(units, scale);
  }

  /** Canonical decimal text ("12.5", "0", "-0.25"); throws when the value has no finite decimal expansion. */
  toFixed(): string {
    // A denominator 2^a·5^b divides 10^max(a, b); any other factor means the expansion never ends.
    let rest = this.d;
    let twos = 0;
    let fives = 0;
    for (; rest % 2n === 0n; rest /= 2n) twos++;
    for (; rest % 5n === 0n; rest /= 5n) fives++;
    if (rest !== 1n) throw new RangeError(`${this.n}/${this.d} has no finite decimal expansion; round() it first`);
    const places = Math.max(twos, fives);
    const units = (this.n * 10n ** BigInt(places)) / this.d;
    const digits = abs(units)
      .toString()
      .padStart(places + 1, "0");
    const whole = digits.slice(0, digits.length - places);
    const fraction = digits.slice(digits.length - places).replace(/0+$/, "");
    const text = fraction === "" ? whole : `${whole}.${fraction}`;
    return units < 0n ? `-${text}` : text;
  }

  toString(): string {
    return this.toFixed();
  }
}
