/**
 * Money against an independent method: every expectation is a hand-written literal or bigint arithmetic done here
 * (an amount as an integer count of 10^-scale units), never Money itself.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  canonicalLimit,
  canonicalMoney,
  divide,
  formatMoney,
  limitToMoney,
  Money,
  netCost,
  parseMoney,
  sumMoney,
  UNLIMITED,
} from "./index.js";

/** `units / 10^scale` as canonical text, written here independently of the package's formatScaled. */
function text(units: bigint, scale: number): string {
  const negative = units < 0n;
  const digits = (negative ? -units : units).toString().padStart(scale + 1, "0");
  const whole = digits.slice(0, digits.length - scale);
  const fraction = digits.slice(digits.length - scale).replace(/0+$/, "");
  const out = fraction === "" ? whole : `${whole}.${fraction}`;
  return out === "0" || !negative ? out : `-${out}`;
}

/** A random amount of at most `digits` digits, `scale` of them after the point: its units and its text. */
const amount = (digits: number, scale: number) =>
  fc
    .bigInt({ min: -(10n ** BigInt(digits)) + 1n, max: 10n ** BigInt(digits) - 1n })
    .map((units) => ({ units, text: text(units, scale) }));

describe("Money sums and products are exact at ClickHouse Decimal sizes", () => {
  it("the month that default precision got wrong: 120 × 83400.029930499975 + 300 × 0.00000007413336", () => {
    const costs = [...Array(120).fill("83400.029930499975"), ...Array(300).fill("0.00000007413336")];
    // 120 × 83400.029930499975 = 10008003.591659997; 300 × 0.00000007413336 = 0.000022240008.
    expect(formatMoney(sumMoney(costs))).toBe("10008003.591682237008");
    let running = new Money(0);
    for (const c of costs) running = running.plus(c);
    expect(formatMoney(running)).toBe("10008003.591682237008");
  });

  it("adds Decimal(38, 18) values (38 significant digits) exactly", () => {
    fc.assert(
      fc.property(fc.array(amount(38, 18), { minLength: 1, maxLength: 200 }), (xs) => {
        const expected = xs.reduce((t, x) => t + x.units, 0n);
        expect(formatMoney(sumMoney(xs.map((x) => x.text)))).toBe(text(expected, 18));
      }),
      { numRuns: 200 },
    );
  });

  it("adds Decimal(76, s) values (Decimal256, 76 significant digits) of different scales exactly", () => {
    // Scales 0 and 76 together span 152 digits: still exact.
    const scales = [0, 18, 38, 76];
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom(...scales), fc.bigInt({ min: -(10n ** 76n) + 1n, max: 10n ** 76n - 1n })), {
          minLength: 1,
          maxLength: 100,
        }),
        (xs) => {
          // Everything in units of 10^-76.
          const expected = xs.reduce((t, [scale, units]) => t + units * 10n ** BigInt(76 - scale), 0n);
          const got = sumMoney(xs.map(([scale, units]) => text(units, scale)));
          expect(formatMoney(got)).toBe(text(expected, 76));
        },
      ),
      { numRuns: 200 },
    );
  });

  it("multiplies and subtracts Decimal(76, 38) values exactly", () => {
    fc.assert(
      fc.property(amount(76, 38), amount(76, 38), (a, b) => {
        expect(formatMoney(new Money(a.text).times(b.text))).toBe(text(a.units * b.units, 76));
        expect(formatMoney(new Money(a.text).minus(b.text))).toBe(text(a.units - b.units, 38));
        expect(new Money(a.text).cmp(b.text)).toBe(a.units < b.units ? -1 : a.units > b.units ? 1 : 0);
      }),
      { numRuns: 300 },
    );
  });

  it("netCost of a Decimal(38, 18)-sized gross is exact", () => {
    // 99999999999999999999.999999999999 × (100 − 7.3333) / 100, in units of 10^-18:
    // 99999999999999999999999999999999 (10^-12) × 926667 (10^-6).
    const gross = "99999999999999999999.999999999999";
    expect(netCost(gross, "7.3333")).toBe(text(99999999999999999999999999999999n * 926667n, 18));
    expect(netCost(gross, "7.3333")).toBe("92666699999999999999.999999999999073333");
  });
});

describe("parsing and formatting", () => {
  it("formats canonically: no trailing zeros, no -0, never an exponent", () => {
    expect(formatMoney(new Money("12.50"))).toBe("12.5");
    expect(formatMoney(new Money("-0"))).toBe("0");
    expect(formatMoney(new Money("-0.000"))).toBe("0");
    expect(formatMoney(new Money("0.000001").minus("0.000001"))).toBe("0");
    expect(formatMoney(new Money("-3").plus("3"))).toBe("0");
    expect(formatMoney(new Money("1000000000000000000000"))).toBe("1000000000000000000000");
    expect(formatMoney(new Money("0.0000001"))).toBe("0.0000001");
    expect(new Money("0.0000001").toString()).toBe("0.0000001");
    expect(new Money("1").times(`1${"0".repeat(75)}`).toString()).toBe(`1${"0".repeat(75)}`);
    expect(new Money("-0.5").toString()).toBe("-0.5");
    expect(formatMoney(new Money("-12.340"))).toBe("-12.34");
    expect(() => formatMoney(UNLIMITED)).toThrow(/not a finite amount/);
  });

  it("parses plain decimals only", () => {
    expect(canonicalMoney("012.50")).toBe("12.5");
    expect(canonicalMoney("-0.0")).toBe("0");
    expect(canonicalMoney("0.000000000000000001")).toBe("0.000000000000000001");
    expect(parseMoney("-3.25").eq("-3.25")).toBe(true);
    for (const bad of ["", ".5", "5.", "1e3", "1E-3", "+1", " 1", "1 ", "1,5", "0x10", "NaN", "Infinity", "--1"]) {
      expect(() => parseMoney(bad), bad).toThrow(/amount must be a plain decimal string/);
    }
    expect(() => parseMoney(5 as unknown as string, "spend")).toThrow(/spend must be a plain decimal string/);
  });

  it("reads limits: 'unlimited' is above every amount", () => {
    expect(limitToMoney("unlimited").gt("9".repeat(76))).toBe(true);
    expect(limitToMoney("20.50").eq("20.5")).toBe(true);
    expect(canonicalLimit("20.50")).toBe("20.5");
    expect(canonicalLimit("unlimited")).toBe("unlimited");
    expect(() => limitToMoney("lots")).toThrow(/limit must be a plain decimal string/);
  });
});

describe("divide", () => {
  it("rounds once, in the mode asked for", () => {
    // 2 / 3 = 0.666…
    expect(divide("2", "3", 6, Money.ROUND_HALF_UP).toFixed()).toBe("0.666667");
    expect(divide("2", "3", 6, Money.ROUND_DOWN).toFixed()).toBe("0.666666");
    // 0.000025 and 0.000015 to 5 places: exactly half way.
    expect(divide("0.000025", "1", 5, Money.ROUND_HALF_UP).toFixed()).toBe("0.00003");
    expect(divide("0.000025", "1", 5, Money.ROUND_HALF_EVEN).toFixed()).toBe("0.00002");
    expect(divide("0.000015", "1", 5, Money.ROUND_HALF_EVEN).toFixed()).toBe("0.00002");
    expect(divide("0.000025", "1", 5, Money.ROUND_HALF_DOWN).toFixed()).toBe("0.00002");
    // Just above half way rounds up in every half mode.
    expect(divide("0.0000250001", "1", 5, Money.ROUND_HALF_DOWN).toFixed()).toBe("0.00003");
    // Negative quotients: "up" is away from zero, "ceil" towards +∞.
    expect(divide("-2", "3", 2, Money.ROUND_UP).toFixed()).toBe("-0.67");
    expect(divide("-2", "3", 2, Money.ROUND_DOWN).toFixed()).toBe("-0.66");
    expect(divide("2", "-3", 2, Money.ROUND_CEIL).toFixed()).toBe("-0.66");
    expect(divide("-2", "3", 2, Money.ROUND_FLOOR).toFixed()).toBe("-0.67");
    expect(divide("2", "3", 2, Money.ROUND_FLOOR).toFixed()).toBe("0.66");
    expect(divide("-0.125", "1", 2, Money.ROUND_HALF_UP).toFixed()).toBe("-0.13");
    expect(divide("-0.125", "1", 2, Money.ROUND_HALF_CEIL).toFixed()).toBe("-0.12");
    expect(divide("-0.125", "1", 2, Money.ROUND_HALF_FLOOR).toFixed()).toBe("-0.13");
    expect(divide(new Money("10"), new Money("4"), 0, Money.ROUND_HALF_EVEN).toFixed()).toBe("2");
    expect(divide("0", "7", 3, Money.ROUND_UP).toFixed()).toBe("0");
    expect(() => divide("1", "0", 2, Money.ROUND_HALF_UP)).toThrow(/division by zero/);
    expect(() => divide("1", "2", -1, Money.ROUND_HALF_UP)).toThrow(RangeError);
  });

  it("is exact where dividing to a precision first would round twice", () => {
    // (3·10^250 − 2) / (6·10^250) = 0.5 − 1/(3·10^250) = 0.4 then 249 nines then 6s: half up to 0 places is 0, while
    // a quotient first rounded to 200 significant digits reads 0.5000… and rounds up to 1.
    const dividend = (3n * 10n ** 250n - 2n).toString();
    const divisor = (6n * 10n ** 250n).toString();
    expect(divide(dividend, divisor, 0, Money.ROUND_HALF_UP).toFixed()).toBe("0");
    expect(new Money(dividend).div(divisor).toDecimalPlaces(0, Money.ROUND_HALF_UP).toFixed()).toBe("1");
  });

  it("matches integer division of Decimal(76, 38) values", () => {
    fc.assert(
      fc.property(
        amount(76, 38),
        amount(76, 38).filter((b) => b.units !== 0n),
        fc.integer({ min: 0, max: 40 }),
        (a, b, places) => {
          // a / b to `places` places, truncated: a.units × 10^places / b.units (the 10^-38 scales cancel).
          expect(formatMoney(divide(a.text, b.text, places, Money.ROUND_DOWN))).toBe(
            text((a.units * 10n ** BigInt(places)) / b.units, places),
          );
        },
      ),
      { numRuns: 300 },
    );
  });
});
