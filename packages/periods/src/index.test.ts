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
