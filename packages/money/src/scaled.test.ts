import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { formatMoney, Money } from "./money.js";
import { addMoney, DecimalSum, formatScaled, netCost, parseScaled } from "./scaled.js";

/** Plain decimal strings as they come: any sign, scale up to 24, leading zeros and trailing zeros now and then. */
const plainDecimal = fc
  .tuple(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), fc.integer({ min: 0, max: 24 }), fc.boolean())
  .map(([n, scale, padded]) => {
    const digits = (n < 0n ? -n : n).toString().padStart(scale + 1, "0");
    const whole = digits.slice(0, digits.length - scale);
    const text = scale === 0 ? whole : `${whole}.${digits.slice(digits.length - scale)}`;
    return `${n < 0n ? "-" : ""}${padded ? `00${text}${scale > 0 ? "00" : ""}` : text}`;
  });

describe("formatScaled", () => {
  it("formats canonically: no exponent, no trailing zeros, no trailing point", () => {
    expect(formatScaled(0n, 12)).toBe("0");
    expect(formatScaled(0n, 0)).toBe("0");
    expect(formatScaled(125n, 6)).toBe("0.000125");
    expect(formatScaled(75n * 10n ** 12n, 12)).toBe("75");
    expect(formatScaled(1_500_000n, 6)).toBe("1.5");
    expect(formatScaled(100n, 2)).toBe("1");
    expect(formatScaled(123_456_789n, 3)).toBe("123456.789");
    expect(formatScaled(1n, 12)).toBe("0.000000000001");
    expect(formatScaled(10n, 0)).toBe("10");
    expect(formatScaled(999_999n, 6)).toBe("0.999999");
    expect(formatScaled(1_000_001n, 6)).toBe("1.000001");
  });

  it("keeps every digit of large values", () => {
    // 1e9 tokens × $75/MTok in micro-USD per MTok, scale 12: 75,000 USD exactly.
    expect(formatScaled(1_000_000_000n * 75_000_000n, 12)).toBe("75000");
    expect(formatScaled(123_456_789_012_345_678_901_234_567_890n, 12)).toBe("123456789012345678.90123456789");
  });

  it("formats negative values", () => {
    expect(formatScaled(-125n, 6)).toBe("-0.000125");
    expect(formatScaled(-1_500_000n, 6)).toBe("-1.5");
    expect(formatScaled(-7n, 0)).toBe("-7");
  });

  it("rejects a bad scale", () => {
    expect(() => formatScaled(1n, -1)).toThrow(RangeError);
    expect(() => formatScaled(1n, 1.5)).toThrow(RangeError);
  });
});

describe("parseScaled", () => {
  it("scales plain decimals to bigints", () => {
    expect(parseScaled("0.50", 6)).toBe(500_000n);
    expect(parseScaled("5", 6)).toBe(5_000_000n);
    expect(parseScaled("22.50", 6)).toBe(22_500_000n);
    expect(parseScaled("0.000001", 6)).toBe(1n);
    expect(parseScaled("0", 0)).toBe(0n);
    expect(parseScaled("007", 0)).toBe(7n);
    expect(parseScaled("-3.25", 2)).toBe(-325n);
    expect(parseScaled("-0", 3)).toBe(0n);
  });

  it("throws on more decimal places than the scale, even trailing zeros", () => {
    expect(() => parseScaled("1.1234567", 6)).toThrow(/more than 6 decimal places/);
    expect(() => parseScaled("1.50", 1)).toThrow(/more than 1 decimal places/);
    expect(() => parseScaled("0.5", 0)).toThrow(RangeError);
  });

  it("throws on anything that is not a plain decimal", () => {
    for (const bad of [
      "",
      ".5",
      "5.",
      "1e3",
      "1E-3",
      "+1",
      " 1",
      "1 ",
      "1,5",
      "0x10",
      "NaN",
      "Infinity",
      "--1",
      "1.2.3",
    ]) {
      expect(() => parseScaled(bad, 6), bad).toThrow(/not a decimal number/);
    }
    expect(() => parseScaled(5 as unknown as string, 6)).toThrow(/not a decimal number/);
  });

  it("round-trips with formatScaled", () => {
    for (const s of ["0", "1", "0.000125", "75", "18.75", "123456.789012", "-0.5"]) {
      expect(formatScaled(parseScaled(s, 6), 6)).toBe(s);
    }
  });
});

describe("addMoney", () => {
  it("adds exactly where binary floating point would not", () => {
    expect(addMoney("0.1", "0.2")).toBe("0.3");
    expect(addMoney("1.5", "1.5")).toBe("3");
    expect(addMoney("0.000000000001", "99999.999999999999")).toBe("100000");
    expect(addMoney("0", "0")).toBe("0");
    expect(addMoney("-1", "1")).toBe("0");
    expect(addMoney("110249.99988975", "0.00011025")).toBe("110250");
    expect(addMoney("9007199254740993", "0.000000000001")).toBe("9007199254740993.000000000001");
  });

  it("throws on malformed amounts", () => {
    expect(() => addMoney("1e3", "1")).toThrow(/not a decimal number/);
    expect(() => addMoney("1", "")).toThrow(/not a decimal number/);
  });
});

describe("netCost", () => {
  it("applies the discount exactly", () => {
    // 100 × (100 − 12.5) / 100 = 87.5
    expect(netCost("100", "12.5")).toBe("87.5");
    // 0.000125 × 66.6667 / 100 = 0.000125 × 0.666667 = 0.000083333375
    expect(netCost("0.000125", "33.3333")).toBe("0.000083333375");
    // 1 × 0.666667
    expect(netCost("1", "33.3333")).toBe("0.666667");
    // 110249.99988975 × 0.85 = 93712.4999062875
    expect(netCost("110249.99988975", "15")).toBe("93712.4999062875");
    expect(netCost("3", "0.0001")).toBe("2.999997");
  });

  it("handles the ends of the range", () => {
    expect(netCost("100", "0")).toBe("100");
    expect(netCost("0.000125", "0.0000")).toBe("0.000125");
    expect(netCost("100", "100")).toBe("0");
    expect(netCost("100", "100.0000")).toBe("0");
    expect(netCost("0", "37.5")).toBe("0");
  });

  it("rejects a discount outside 0..100 or with more than 4 decimals", () => {
    for (const bad of ["100.0001", "101", "-1", "12.34567", "abc", "1e1", "", ".5", "5."]) {
      expect(() => netCost("100", bad), bad).toThrow(/discount_pct/);
    }
  });

  it("rejects a malformed gross", () => {
    expect(() => netCost("1e2", "10")).toThrow(/not a decimal number/);
  });
});

describe("DecimalSum", () => {
  it("sums exactly what decimal.js sums, in canonical form", () => {
    fc.assert(
      fc.property(fc.array(plainDecimal, { maxLength: 60 }), (values) => {
        const sum = new DecimalSum();
        for (const v of values) sum.add(v);
        const reference = values.reduce((acc, v) => acc.plus(new Money(v)), new Money(0));
        expect(sum.toString()).toBe(formatMoney(reference));
        expect(sum.toString()).toBe(values.reduce((acc, v) => addMoney(acc, v), "0"));
      }),
    );
  });

  it("is 0 with nothing added, and refuses what is not a plain decimal", () => {
    expect(new DecimalSum().toString()).toBe("0");
    for (const bad of ["1e2", "", "1.", ".5", "+1", " 1"]) expect(() => new DecimalSum().add(bad), bad).toThrow();
  });
});

describe("netCost without a discount", () => {
  it("is the gross amount in canonical form, as with the discount written any other way", () => {
    fc.assert(
      fc.property(plainDecimal, (gross) => {
        expect(netCost(gross, "0")).toBe(netCost(gross, "0.0000"));
        expect(netCost(gross, "0")).toBe(formatMoney(new Money(gross)));
      }),
    );
    expect(() => netCost("1e2", "0")).toThrow(/not a decimal number/);
  });
});
