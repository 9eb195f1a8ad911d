import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  dayOf,
  monthStart,
  nextMonthStart,
  parseDay,
  periodOf,
  periodRange,
  previousPeriod,
  windowAsOf,
} from "./index.js";

const t = (iso: string) => Date.parse(iso);

describe("periods", () => {
  it("names the UTC month of an instant, at the edges too", () => {
    expect(periodOf(t("2026-11-30T23:59:59.999Z"))).toBe("2026-11");
    expect(periodOf(t("2026-12-01T00:00:00.000Z"))).toBe("2026-12");
    expect(periodOf(t("2027-01-01T00:00:00.000Z"))).toBe("2027-01");
  });

  it("finds month starts and ends", () => {
    expect(monthStart(t("2026-02-17T10:00:00Z"))).toBe(t("2026-02-01T00:00:00Z"));
    expect(nextMonthStart(t("2026-12-31T23:00:00Z"))).toBe(t("2027-01-01T00:00:00Z"));
    expect(periodRange("2026-02")).toEqual({ from: t("2026-02-01T00:00:00Z"), to: t("2026-03-01T00:00:00Z") });
    expect(periodRange("2026-13")).toBeUndefined();
    expect(previousPeriod("2026-01")).toBe("2025-12");
  });

  it("computes MTD, QTD and YTD as of a day", () => {
    const at = t("2026-11-23T08:00:00Z");
    expect(windowAsOf("mtd", at)).toMatchObject({ from: "2026-11-01", to: "2026-11-23" });
    expect(windowAsOf("qtd", at)).toMatchObject({ from: "2026-10-01", to: "2026-11-23" });
    expect(windowAsOf("ytd", at)).toMatchObject({ from: "2026-01-01", to: "2026-11-23" });
    expect(windowAsOf("qtd", t("2026-03-31T23:59:59Z"))).toMatchObject({ from: "2026-01-01", to: "2026-03-31" });
    expect(windowAsOf("mtd", at).toExclusiveMs).toBe(t("2026-11-24T00:00:00Z"));
  });

  it("parses only real days", () => {
    expect(parseDay("2026-02-28")).toBe(t("2026-02-28T00:00:00Z"));
    expect(parseDay("2026-02-30")).toBeUndefined();
    expect(parseDay("2026-2-3")).toBeUndefined();
    expect(dayOf(t("2026-02-28T23:59:59Z"))).toBe("2026-02-28");
  });
});

describe("periodOf over a sequence of instants", () => {
  // periodOf keeps the bounds of the month it answered last; any order of instants must still get each its own
  // month: near one another, across month edges, far apart, in years 0 to 99, and not instants at all.
  const MONTH_EDGE = Date.UTC(2026, 11, 1);
  const instant = fc.oneof(
    fc.integer({ min: MONTH_EDGE - 3, max: MONTH_EDGE + 3 }),
    fc.integer({ min: MONTH_EDGE - 40 * 86_400_000, max: MONTH_EDGE + 40 * 86_400_000 }),
    fc.integer({ min: -8.64e15, max: 8.64e15 }),
    fc.integer({ min: Date.UTC(0, 0, 1) - 62_000_000_000_000, max: Date.UTC(99, 11, 31) - 59_000_000_000_000 }),
    fc.double({ min: MONTH_EDGE - 2, max: MONTH_EDGE + 2, noNaN: true }),
    fc.double({ min: -2, max: 2, noNaN: true }),
    fc.constantFrom(Number.NaN, 0.5, -0.5, 8.64e15 + 1),
  );
  it("reads a fraction of a millisecond as Date does (toward zero), whatever month it answered before", () => {
    const dec1969 = Date.UTC(1969, 11, 1);
    expect([periodOf(dec1969 - 1), periodOf(dec1969 - 0.5)]).toEqual(["1969-11", "1969-12"]);
    expect([periodOf(-1), periodOf(-0.5)]).toEqual(["1969-12", "1970-01"]);
    expect([periodOf(MONTH_EDGE - 1), periodOf(MONTH_EDGE - 0.5)]).toEqual(["2026-11", "2026-11"]);
  });

  it("names each instant's own UTC month", () => {
    fc.assert(
      fc.property(fc.array(instant, { maxLength: 50 }), (instants) => {
        for (const ms of instants) {
          const d = new Date(ms);
          expect(periodOf(ms)).toBe(`${d.getUTCFullYear()}-${String(d.getUTCMonth() + 1).padStart(2, "0")}`);
        }
      }),
    );
  });
});
