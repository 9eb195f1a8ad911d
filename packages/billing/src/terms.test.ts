/**
 * Contract terms: consecutive years from term_start, 365 or 366 days; a Feb 29 start rolls to Mar 1 in non-leap
 * years. Day counts are written out by hand.
 */
import { describe, expect, it } from "vitest";
import { termOf } from "./index.js";

const contract = (term_start: string) => ({ term_start });

describe("termOf", () => {
  it("has no term before term_start and a 365-day first term from it", () => {
    const c = contract("2026-01-01");
    expect(termOf(c, "2025-12-31")).toBeUndefined();
    expect(termOf(c, "2026-01-01")).toEqual({ start: "2026-01-01", end: "2027-01-01", days: 365 });
    expect(termOf(c, "2026-12-31")).toEqual({ start: "2026-01-01", end: "2027-01-01", days: 365 });
    expect(termOf(c, "2027-01-01")).toEqual({ start: "2027-01-01", end: "2028-01-01", days: 365 });
  });

  it("a term holding Feb 29 has 366 days", () => {
    expect(termOf(contract("2028-01-01"), "2028-06-01")).toEqual({ start: "2028-01-01", end: "2029-01-01", days: 366 });
    // 2027-07-15 .. 2028-07-14 holds 2028-02-29.
    const mid = contract("2026-07-15");
    expect(termOf(mid, "2027-07-14")).toEqual({ start: "2026-07-15", end: "2027-07-15", days: 365 });
    expect(termOf(mid, "2027-07-15")).toEqual({ start: "2027-07-15", end: "2028-07-15", days: 366 });
    expect(termOf(mid, "2028-07-15")).toEqual({ start: "2028-07-15", end: "2029-07-15", days: 365 });
  });

  it("a Feb 29 term start rolls to Mar 1 in non-leap years and comes back to Feb 29 in leap years", () => {
    const c = contract("2028-02-29");
    expect(termOf(c, "2028-02-28")).toBeUndefined();
    // 2028-02-29 .. 2029-02-28: 1 (Feb 29) + 365 (Mar 1 2028 .. Feb 28 2029) = 366 days.
    expect(termOf(c, "2029-02-28")).toEqual({ start: "2028-02-29", end: "2029-03-01", days: 366 });
    expect(termOf(c, "2029-03-01")).toEqual({ start: "2029-03-01", end: "2030-03-01", days: 365 });
    // 2031-03-01 .. 2032-02-28: 365 days (Feb 29 2032 starts the next term).
    expect(termOf(c, "2032-02-28")).toEqual({ start: "2031-03-01", end: "2032-02-29", days: 365 });
    expect(termOf(c, "2032-02-29")).toEqual({ start: "2032-02-29", end: "2033-03-01", days: 366 });
  });

  it("refuses a day that is not a real YYYY-MM-DD", () => {
    expect(() => termOf(contract("2026-01-01"), "2026-02-30")).toThrow(RangeError);
    expect(() => termOf(contract("2026-1-01"), "2026-02-01")).toThrow(RangeError);
  });
});
