/**
 * Cents rounding, usage and adjustment lines, and the assembled invoice (SPEC §13). Expected sums are added up by
 * hand in the comments, or with the bigint oracle of test/harness/exact.ts (no code shared with the package).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Exact } from "../../../test/harness/exact.js";
import { adjustmentLines, assembleInvoice, type InvoiceLine, roundCents, type UsageRow, usageLines } from "./index.js";

const row = (user_id: string, product: string, model: string, net: string, requests: number): UsageRow => ({
  user_id,
  product,
  model,
  net,
  requests,
});

describe("roundCents", () => {
  it("rounds half-up, ties away from zero, always with two decimals", () => {
    expect(roundCents("0.005")).toBe("0.01");
    expect(roundCents("0.0049999")).toBe("0.00");
    expect(roundCents("-0.005")).toBe("-0.01");
    expect(roundCents("-0.0049999")).toBe("0.00");
    expect(roundCents("-0.001")).toBe("0.00");
    expect(roundCents("0")).toBe("0.00");
    expect(roundCents("-0")).toBe("0.00");
    expect(roundCents("1234.5")).toBe("1234.50");
    expect(roundCents("12.3")).toBe("12.30");
    expect(roundCents("2.675")).toBe("2.68"); // 2.675 as a float is 2.67499999…; not here
    expect(roundCents("1.015")).toBe("1.02");
    expect(roundCents("-0.015")).toBe("-0.02");
    expect(roundCents("7")).toBe("7.00");
    expect(roundCents("123456789012345678901234567890.994999999999999")).toBe("123456789012345678901234567890.99");
    expect(roundCents("999999999999999999999999999999.995")).toBe("1000000000000000000000000000000.00");
  });

  it("refuses what is not a plain decimal", () => {
    for (const bad of ["1e3", "", ".5", "1.", "+1", "NaN"]) expect(() => roundCents(bad)).toThrow(RangeError);
  });

  it("agrees with the bigint oracle on random decimals", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), fc.integer({ min: 0, max: 12 }), (n, scale) => {
        const x = Exact.of(n).div(10n ** BigInt(scale));
        const text = x.toFixed();
        const expected = x.round(2, "half_up");
        const [whole, frac = ""] = expected.toFixed().split(".");
        const cents = `${whole}.${frac.padEnd(2, "0")}`;
        expect(roundCents(text)).toBe(cents === "-0.00" ? "0.00" : cents);
      }),
    );
  });
});

describe("usageLines", () => {
  it("one line per user × product × model, duplicates summed exactly, zero-net kept, sorted", () => {
    const lines = usageLines([
      row("u2", "chat", "claude-sonnet-4-5", "0.1", 1),
      row("u1", "claude_code", "claude-opus-4-1", "12.25", 3),
      row("u1", "chat", "claude-haiku-4-5", "0", 2),
      row("u1", "claude_code", "claude-opus-4-1", "0.000000000000000000000000000001", 1),
      row("u2", "chat", "claude-sonnet-4-5", "0.2", 4),
      row("U0", "chat", "claude-haiku-4-5", "0.005", 1),
    ]);
    expect(lines.map((l) => [l.user_id, l.product, l.model, l.quantity, l.amount_exact, l.amount])).toEqual([
      // Code-unit order: "U0" < "u1" < "u2".
      ["U0", "chat", "claude-haiku-4-5", 1, "0.005", "0.01"],
      ["u1", "chat", "claude-haiku-4-5", 2, "0", "0.00"],
      // 12.25 + 1e-30, exactly.
      ["u1", "claude_code", "claude-opus-4-1", 4, "12.250000000000000000000000000001", "12.25"],
      // 0.1 + 0.2 = 0.3 (not 0.30000000000000004).
      ["u2", "chat", "claude-sonnet-4-5", 5, "0.3", "0.30"],
    ]);
    expect(lines[2]).toEqual({
      kind: "usage",
      description: "claude_code · claude-opus-4-1 · u1",
      quantity: 4,
      unit_price: null,
      user_id: "u1",
      product: "claude_code",
      model: "claude-opus-4-1",
      tier: null,
      from_tier: null,
      date: null,
      period: null,
      amount_exact: "12.250000000000000000000000000001",
      amount: "12.25",
    });
    expect(usageLines([])).toEqual([]);
  });

  it("canonicalizes amounts and refuses malformed rows", () => {
    expect(usageLines([row("u", "p", "m", "007.500", 1)])[0]?.amount_exact).toBe("7.5");
    expect(() => usageLines([row("u", "p", "m", "1e2", 1)])).toThrow(RangeError);
    expect(() => usageLines([row("u", "p", "m", "1", 1.5)])).toThrow(RangeError);
  });
});

describe("adjustmentLines", () => {
  it("zero differences give no line; late usage and corrections give lines naming the month", () => {
    const invoiced = [
      row("u1", "claude_code", "claude-opus-4-1", "10", 5),
      row("u1", "chat", "claude-haiku-4-5", "1.5", 2),
      row("u3", "chat", "claude-haiku-4-5", "4", 4),
    ];
    const current = [
      // Same total in two rows: no difference, no line.
      row("u1", "claude_code", "claude-opus-4-1", "6", 3),
      row("u1", "claude_code", "claude-opus-4-1", "4", 2),
      // 2 late requests worth 0.25.
      row("u1", "chat", "claude-haiku-4-5", "1.75", 4),
      // A key not invoiced at all.
      row("u2", "cowork", "claude-sonnet-4-5", "0.333", 1),
      // Less than invoiced: a negative line.
      row("u3", "chat", "claude-haiku-4-5", "3.995", 3),
      // Requests that cost nothing still reconcile.
      row("u4", "chat", "claude-haiku-4-5", "0", 2),
    ];
    const lines = adjustmentLines("2026-10", current, invoiced);
    expect(lines.map((l) => [l.user_id, l.product, l.quantity, l.amount_exact, l.amount, l.description])).toEqual([
      ["u1", "chat", 2, "0.25", "0.25", "late usage of 2026-10: chat · claude-haiku-4-5 · u1"],
      ["u2", "cowork", 1, "0.333", "0.33", "late usage of 2026-10: cowork · claude-sonnet-4-5 · u2"],
      ["u3", "chat", -1, "-0.005", "-0.01", "usage correction of 2026-10: chat · claude-haiku-4-5 · u3"],
      ["u4", "chat", 2, "0", "0.00", "late usage of 2026-10: chat · claude-haiku-4-5 · u4"],
    ]);
    expect(lines.every((l) => l.kind === "adjustment" && l.period === "2026-10" && l.unit_price === null)).toBe(true);
    expect(adjustmentLines("2026-10", invoiced, invoiced)).toEqual([]);
    expect(adjustmentLines("2026-10", [], [])).toEqual([]);
  });

  it("is exact with 20+ digit values", () => {
    const a = "123456789012345678901.000000000000000001";
    const b = "123456789012345678900.999999999999999999";
    const lines = adjustmentLines("2026-11", [row("u", "p", "m", a, 7)], [row("u", "p", "m", b, 7)]);
    // …901.000000000000000001 − …900.999999999999999999 = 0.000000000000000002.
    expect(lines.map((l) => [l.quantity, l.amount_exact, l.amount])).toEqual([[0, "0.000000000000000002", "0.00"]]);
    expect(Exact.of(a).minus(b).toFixed()).toBe("0.000000000000000002");
    const big = "98765432109876543210987654321.123456789";
    const twice = adjustmentLines("2026-11", [row("u", "p", "m", big, 1), row("u", "p", "m", big, 1)], []);
    expect(twice.map((l) => l.amount_exact)).toEqual(["197530864219753086421975308642.246913578"]);
    // Equal to the last digit: no line.
    expect(adjustmentLines("2026-11", [row("u", "p", "m", `${a}0`, 7)], [row("u", "p", "m", a, 7)])).toEqual([]);
  });

  it("refuses a month that is not YYYY-MM", () => {
    expect(() => adjustmentLines("2026-1", [], [])).toThrow(RangeError);
  });
});

describe("assembleInvoice", () => {
  const line = (kind: InvoiceLine["kind"], amount_exact: string): InvoiceLine => ({
    kind,
    description: kind,
    quantity: 1,
    unit_price: null,
    user_id: null,
    product: null,
    model: null,
    tier: null,
    from_tier: null,
    date: null,
    period: null,
    amount_exact,
    amount: roundCents(amount_exact),
  });

  it("orders seat, usage, adjustment lines; total is the sum of rounded amounts", () => {
    const seat = [line("seat", "13561.643835616438"), line("seat", "1562.301369863014")];
    const usage = [line("usage", "0.004"), line("usage", "0.004"), line("usage", "0.004")];
    const adjustments = [line("adjustment", "-0.005")];
    const invoice = assembleInvoice({ seat, usage, adjustments });
    expect(invoice.lines.map((l) => l.kind)).toEqual(["seat", "seat", "usage", "usage", "usage", "adjustment"]);
    // Exact: 13561.643835616438 + 1562.301369863014 + 3 × 0.004 − 0.005 = 15123.945205479452 + 0.007 = 15123.952205479452.
    expect(invoice.subtotal_exact).toBe("15123.952205479452");
    // Rounded lines: 13561.64 + 1562.30 + 0.00 × 3 − 0.01 = 15123.93 (the subtotal rounded would be 15123.95).
    expect(invoice.total).toBe("15123.93");
  });

  it("sum of rounded ≠ rounded sum, both ways", () => {
    const three = (x: string) => [line("usage", x), line("usage", x), line("usage", x)];
    // 3 × 0.004: each 0.00, total 0.00; the exact 0.012 would round to 0.01.
    expect(assembleInvoice({ seat: [], usage: three("0.004"), adjustments: [] })).toMatchObject({
      subtotal_exact: "0.012",
      total: "0.00",
    });
    // 3 × 0.005: each 0.01, total 0.03; the exact 0.015 would round to 0.02.
    expect(assembleInvoice({ seat: [], usage: three("0.005"), adjustments: [] })).toMatchObject({
      subtotal_exact: "0.015",
      total: "0.03",
    });
    expect(assembleInvoice({ seat: [], usage: [], adjustments: [] })).toEqual({
      lines: [],
      subtotal_exact: "0",
      total: "0.00",
    });
  });
});
