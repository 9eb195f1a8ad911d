/**
 * Forecasts on synthetic daily series. Expected figures are worked out here by hand (the arithmetic is in the
 * comments) or from a closed form of the documented method, not by re-running its loop.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Exact, type ExactValue } from "../../../test/harness/exact.js";
import { type DailySpend, type ForecastInput, forecast } from "./index.js";

const t = (iso: string) => Date.parse(iso);
/** The first instant of a month (YYYY-MM): the first usage of an entity active since the 1st, observed all month. */
const from1st = (month: string) => t(`${month}-01T00:00:00Z`);
/** `n` days of the same amount from the 1st of `month` (YYYY-MM). */
const days = (month: string, n: number, spend: string): DailySpend[] =>
  Array.from({ length: n }, (_, i) => ({ day: `${month}-${String(i + 1).padStart(2, "0")}`, spend }));
/** Rounded half up to 6 places, canonical (no trailing zeros); exact rationals, not the code's Money. */
const six = (x: ExactValue) => Exact.of(x).round(6, "half_up").toFixed();

describe("forecast", () => {
  it("flat: a steady 10 a day projects 10 a day, 300 for a 30-day month", () => {
    // Nov 1–14 at 10, and 5 by noon on the 15th: every observation is a pace of 10 a day.
    const f = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-15T12:00:00Z"),
      daily: [...days("2026-11", 14, "10"), { day: "2026-11-15", spend: "5" }],
      limit: "250",
    });
    expect(f).toEqual({
      period: "2026-11",
      as_of: "2026-11-15T12:00:00.000Z",
      method: "weighted-recent-days",
      spend_to_date: "145",
      daily_rate: "10",
      // 145 + 10 × 15.5 days left.
      projected: "300",
      limit: "250",
      limit_reached: false,
      // 105 more at 10 a day: 10.5 days from Nov 15 noon = Nov 26 00:00, the end of Nov 25.
      reaches_limit_on: "2026-11-25",
      will_reach_limit: true,
      days_of_data: 15,
    });
  });

  it("flat in a 28-day and a 31-day month projects the rate times the month's days", () => {
    const feb = forecast({
      period: "2027-02",
      firstUsage: from1st("2027-02"),
      now: t("2027-02-14T12:00:00Z"),
      daily: [...days("2027-02", 13, "2"), { day: "2027-02-14", spend: "1" }],
      limit: null,
    });
    expect([feb.daily_rate, feb.projected, feb.days_of_data]).toEqual(["2", "56", 14]);
    const dec = forecast({
      period: "2026-12",
      firstUsage: from1st("2026-12"),
      now: t("2026-12-10T18:00:00Z"),
      daily: [...days("2026-12", 9, "3"), { day: "2026-12-10", spend: "2.25" }],
      limit: "unlimited",
    });
    expect([dec.daily_rate, dec.projected, dec.days_of_data]).toEqual(["3", "93", 10]);
  });

  it("rising: recent days weigh more than the month's average", () => {
    // Nov 1: 10, Nov 2: 20, and 15 by noon on Nov 3 (a pace of 30).
    // (15 + 0.8 × 20 + 0.64 × 10) / (0.5 + 0.8 + 0.64) = 37.4 / 1.94 = 19.27835051546…
    const f = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-03T12:00:00Z"),
      daily: [
        { day: "2026-11-01", spend: "10" },
        { day: "2026-11-02", spend: "20" },
        { day: "2026-11-03", spend: "15" },
      ],
      limit: null,
    });
    expect(f.daily_rate).toBe("19.278351");
    // 45 + 19.278351 × 27.5 = 45 + 530.1546525 → 575.154653 (half up).
    expect(f.projected).toBe("575.154653");
    expect(f.spend_to_date).toBe("45");

    // A longer ramp: day i costs i. The rate is above the month's mean so far, and below today's pace.
    const ramp = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-21T00:00:00Z"),
      daily: Array.from({ length: 20 }, (_, i) => ({
        day: `2026-11-${String(i + 1).padStart(2, "0")}`,
        spend: `${i + 1}`,
      })),
      limit: null,
    });
    const rate = Exact.of(ramp.daily_rate);
    expect(rate.gt("10.5")).toBe(true); // mean of 1..20
    expect(rate.gt(15)).toBe(true); // closer to the recent days than to the mean
    expect(rate.lt(20)).toBe(true);
  });

  it("a spike lifts the projection, then decays day by day", () => {
    // 10 a day, 100 on Nov 5; 5 by noon each day asked. Everything is a pace of 10 but the spike's extra 90, so the
    // rate is 10 + 90 × w / Σw, w = 0.8^(days since Nov 5), Σw = 0.5 (today's half) + 0.8 + … + 0.8^(complete days).
    const series = (until: number) => [
      ...Array.from({ length: until - 1 }, (_, i) => ({
        day: `2026-11-${String(i + 1).padStart(2, "0")}`,
        spend: i + 1 === 5 ? "100" : "10",
      })),
      { day: `2026-11-${String(until).padStart(2, "0")}`, spend: "5" },
    ];
    const expectedRate = (day: number) => {
      const complete = day - 1;
      const sumW = Exact.of("0.8")
        .times(Exact.of(1).minus(Exact.of("0.8").pow(complete)))
        .div("0.2")
        .plus("0.5");
      return six(
        Exact.of(90)
          .times(Exact.of("0.8").pow(day - 5))
          .div(sumW)
          .plus(10),
      );
    };
    const rates: Exact[] = [];
    for (const day of [6, 8, 12, 20, 28]) {
      const f = forecast({
        period: "2026-11",
        firstUsage: from1st("2026-11"),
        now: t(`2026-11-${String(day).padStart(2, "0")}T12:00:00Z`),
        daily: series(day),
        limit: null,
      });
      expect(f.daily_rate, `Nov ${day}`).toBe(expectedRate(day));
      rates.push(Exact.of(f.daily_rate));
    }
    // Nov 6 noon: 10 + 72 / 3.18928 = 32.5756283549…; projected 145 + 32.575628 × 24.5 = 943.102886.
    expect(rates[0]!.toFixed()).toBe("32.575628");
    expect(
      forecast({
        period: "2026-11",
        firstUsage: from1st("2026-11"),
        now: t("2026-11-06T12:00:00Z"),
        daily: series(6),
        limit: null,
      }).projected,
    ).toBe("943.102886");
    for (let i = 1; i < rates.length; i++) expect(rates[i]!.lt(rates[i - 1]!), `decays ${i}`).toBe(true);
    for (const r of rates) expect(r.gt(10)).toBe(true);
    // Three weeks on, the extra 90 adds about 90 × 0.8^23 / 4.5 ≈ 0.12 a day.
    expect(rates.at(-1)!.lt("10.2")).toBe(true);
  });

  it("month start with one day of data: today's pace, finite, not zero", () => {
    // 3 by 06:00 on the 1st: a quarter of a day, so 12 a day; 3 + 12 × 29.75 = 360.
    const f = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-01T06:00:00Z"),
      daily: [{ day: "2026-11-01", spend: "3" }],
      limit: "100",
    });
    expect([f.daily_rate, f.projected, f.days_of_data]).toEqual(["12", "360", 1]);
    // 97 more at 12 a day = 8.0833 days from Nov 1 06:00: Nov 9 08:00.
    expect([f.will_reach_limit, f.reaches_limit_on]).toEqual([true, "2026-11-09"]);

    // Ten minutes in: the elapsed part counts as one hour, so 0.5 → 12 a day, not 72.
    // 0.5 + 12 × (30 days − 10 minutes) = 0.5 + 360 − 12 / 144 = 360.41666…
    const early = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-01T00:10:00Z"),
      daily: [{ day: "2026-11-01", spend: "0.5" }],
      limit: null,
    });
    expect([early.daily_rate, early.projected]).toEqual(["12", "360.416667"]);

    // The very first millisecond with no spend: nothing to project from.
    const empty = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-01T00:00:00Z"),
      daily: [],
      limit: "5",
    });
    expect(empty).toMatchObject({
      spend_to_date: "0",
      daily_rate: "0",
      projected: "0",
      limit_reached: false,
      reaches_limit_on: null,
      will_reach_limit: false,
      days_of_data: 1,
    });
  });

  it("an org whose first usage is today: observed from its first event, not from the 1st", () => {
    // $9,600 in the first ten minutes of usage, on Nov 15 from 12:00. Observed: 10 minutes, counted as the minimum
    // hour, 1/24 of a day: rate = 9,600 × 24 = 230,400 a day. (Counting Nov 1–14 as zero-spend days would give
    // 9,600 / (0.8 + … + 0.8^14 + 730/1440) ≈ 2,216.57 a day.)
    // Left: Nov 15 12:10 to Dec 1 00:00 = 15 days 11 h 50 min = 15 + 710/1440 days;
    // projected = 9,600 + 230,400 × 15 + 230,400 × 710 / 1440 = 9,600 + 3,456,000 + 113,600 = 3,579,200.
    const daily = [{ day: "2026-11-15", spend: "9600" }];
    const firstUsage = t("2026-11-15T12:00:00Z");
    const f = forecast({ period: "2026-11", now: t("2026-11-15T12:10:00Z"), daily, firstUsage, limit: "10000" });
    expect(f).toMatchObject({
      spend_to_date: "9600",
      daily_rate: "230400",
      projected: "3579200",
      limit_reached: false,
      // The 400 left take 400 / 230,400 of a day (150 s): today.
      reaches_limit_on: "2026-11-15",
      will_reach_limit: true,
      days_of_data: 1,
    });

    // Two hours after the first event, nothing more spent: 9,600 over 2 h = 115,200 a day;
    // 9,600 + 115,200 × (15 + 600/1440) = 9,600 + 1,728,000 + 48,000 = 1,785,600.
    const later = forecast({ period: "2026-11", now: t("2026-11-15T14:00:00Z"), daily, firstUsage, limit: null });
    expect([later.daily_rate, later.projected]).toEqual(["115200", "1785600"]);

    // The same first hour at the month's start gives the same pace: 9,600 by 00:10 on Nov 1, from 00:00.
    const monthStart = forecast({
      period: "2026-11",
      now: t("2026-11-01T00:10:00Z"),
      daily: [{ day: "2026-11-01", spend: "9600" }],
      firstUsage: from1st("2026-11"),
      limit: null,
    });
    expect(monthStart.daily_rate).toBe("230400");
  });

  it("a first usage days ago: its day is a partial observation from the first event, earlier days none", () => {
    // First event Nov 13 18:00; 30 on the 13th (6 h observed), 100 on the 14th, 25 by 06:00 on the 15th.
    // numerator = 25 + 0.8 × 100 + 0.64 × 30 = 124.2; denominator = 6/24 + 0.8 × 1 + 0.64 × 6/24 = 1.21;
    // rate = 124.2 / 1.21 = 102.6446280991… → 102.644628; projected = 155 + 102.644628 × 15.75 = 1771.652891.
    // The 845 left to 1,000 take 845 / 102.644628 ≈ 8.23 days from Nov 15 06:00: Nov 23 about 11:35.
    const daily = [
      { day: "2026-11-13", spend: "30" },
      { day: "2026-11-14", spend: "100" },
      { day: "2026-11-15", spend: "25" },
    ];
    const now = t("2026-11-15T06:00:00Z");
    const f = forecast({ period: "2026-11", now, daily, firstUsage: t("2026-11-13T18:00:00Z"), limit: "1000" });
    expect(f).toMatchObject({
      spend_to_date: "155",
      daily_rate: "102.644628",
      projected: "1771.652891",
      reaches_limit_on: "2026-11-23",
      will_reach_limit: true,
      days_of_data: 3,
    });

    // Unknown first usage (null): observed from the midnight of the first day with spend, the 13th a full day:
    // 124.2 / (0.25 + 0.8 + 0.64) = 124.2 / 1.69 = 73.4911242603… → 73.491124; 155 + 73.491124 × 15.75 = 1312.485203.
    const unknown = forecast({ period: "2026-11", now, daily, firstUsage: null, limit: null });
    expect([unknown.daily_rate, unknown.projected, unknown.days_of_data]).toEqual(["73.491124", "1312.485203", 3]);
    // A first usage after a day with spend (a caller's slip) starts at that day's midnight too: spend is observed.
    expect(forecast({ period: "2026-11", now, daily, firstUsage: t("2026-11-14T09:00:00Z"), limit: null })).toEqual(
      unknown,
    );
    // Observed from the 1st instead, Nov 1–12 count as zero days: 124.2 / (0.25 + 0.8 + … + 0.8^14) ≈ 30.49.
    const fromFirst = forecast({ period: "2026-11", now, daily, firstUsage: from1st("2026-11"), limit: null });
    expect([fromFirst.daily_rate, fromFirst.days_of_data]).toEqual(["30.485424", 15]);
  });

  it("the first usage's day on the 1st is partial too, unless it starts at midnight", () => {
    // 3 by 06:00 on Nov 1, first event at 03:00: 3 h observed, 24 a day (from midnight: 6 h, 12 a day).
    const daily = [{ day: "2026-11-01", spend: "3" }];
    const now = t("2026-11-01T06:00:00Z");
    expect(
      forecast({ period: "2026-11", now, daily, firstUsage: t("2026-11-01T03:00:00Z"), limit: null }),
    ).toMatchObject({ daily_rate: "24", days_of_data: 1 });
    expect(forecast({ period: "2026-11", now, daily, firstUsage: from1st("2026-11"), limit: null }).daily_rate).toBe(
      "12",
    );
  });

  it("a first usage stamped ahead of now counts the minimum hour; no usage at all observes nothing", () => {
    // 1 at 12:03 (an event 3 minutes ahead), asked at 12:00: observed from now, the minimum hour: 24 a day.
    const ahead = forecast({
      period: "2026-11",
      now: t("2026-11-15T12:00:00Z"),
      daily: [{ day: "2026-11-15", spend: "1" }],
      firstUsage: t("2026-11-15T12:03:00Z"),
      limit: null,
    });
    expect([ahead.daily_rate, ahead.days_of_data]).toEqual(["24", 1]);
    const none = forecast({
      period: "2026-11",
      now: t("2026-11-15T12:00:00Z"),
      daily: [],
      firstUsage: null,
      limit: "5",
    });
    expect(none).toMatchObject({ spend_to_date: "0", daily_rate: "0", projected: "0", days_of_data: 0 });
    expect(none).toMatchObject({ limit_reached: false, will_reach_limit: false, reaches_limit_on: null });
  });

  it("a month already over its cap: reached on the day the running total got there, no forecast alert", () => {
    // 15 a day: 105 by the end of Nov 7, the first day at or over 100 (and over 105).
    const daily = [...days("2026-11", 10, "15"), { day: "2026-11-11", spend: "7.5" }];
    for (const limit of ["100", "105"]) {
      const f = forecast({
        period: "2026-11",
        firstUsage: from1st("2026-11"),
        now: t("2026-11-11T12:00:00Z"),
        daily,
        limit,
      });
      expect(f).toMatchObject({
        spend_to_date: "157.5",
        limit,
        limit_reached: true,
        reaches_limit_on: "2026-11-07",
        will_reach_limit: false,
      });
      // Still a projection: 157.5 + 15 × 19.5.
      expect([f.daily_rate, f.projected]).toEqual(["15", "450"]);
    }
    const justOver = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-11T12:00:00Z"),
      daily,
      limit: "105.000001",
    });
    expect(justOver.reaches_limit_on).toBe("2026-11-08");
  });

  it("no limit or unlimited: nothing is ever reached", () => {
    for (const limit of [null, "unlimited"] as const) {
      const f = forecast({
        period: "2026-11",
        firstUsage: from1st("2026-11"),
        now: t("2026-11-20T12:00:00Z"),
        daily: days("2026-11", 20, "1000000"),
        limit,
      });
      expect(f).toMatchObject({ limit, limit_reached: false, reaches_limit_on: null, will_reach_limit: false });
      expect(f.projected).not.toBe("0");
    }
  });

  it("a limit of 0 is reached from the first day, with or without spend", () => {
    for (const daily of [[], days("2026-11", 3, "2")]) {
      const f = forecast({
        period: "2026-11",
        firstUsage: from1st("2026-11"),
        now: t("2026-11-04T09:00:00Z"),
        daily,
        limit: "0.00",
      });
      expect(f).toMatchObject({
        limit: "0",
        limit_reached: true,
        reaches_limit_on: "2026-11-01",
        will_reach_limit: false,
      });
    }
  });

  it("reach exactly at the month's end is the last day; a millionth more is not this month", () => {
    // Nov 1–19 at 10, 5 by noon on the 20th: 195 spent, 10 a day for 10.5 days: 300 at Dec 1 00:00.
    const daily = [...days("2026-11", 19, "10"), { day: "2026-11-20", spend: "5" }];
    const at = (limit: string) =>
      forecast({ period: "2026-11", firstUsage: from1st("2026-11"), now: t("2026-11-20T12:00:00Z"), daily, limit });
    expect(at("300")).toMatchObject({ projected: "300", will_reach_limit: true, reaches_limit_on: "2026-11-30" });
    expect(at("299.999999")).toMatchObject({ will_reach_limit: true, reaches_limit_on: "2026-11-30" });
    expect(at("300.000001")).toMatchObject({ will_reach_limit: false, reaches_limit_on: null, limit_reached: false });
    // 290 is reached at Nov 30 00:00 sharp: by the end of Nov 29. A millionth more, during Nov 30.
    expect(at("290")).toMatchObject({ will_reach_limit: true, reaches_limit_on: "2026-11-29" });
    expect(at("290.000001")).toMatchObject({ will_reach_limit: true, reaches_limit_on: "2026-11-30" });
    // The cap already reached exactly: reached, not "will reach".
    expect(at("195")).toMatchObject({ limit_reached: true, will_reach_limit: false, reaches_limit_on: "2026-11-20" });
  });

  it("sums exactly: no float drift", () => {
    const thirty = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-30T12:00:00Z"),
      daily: days("2026-11", 30, "0.1"),
      limit: "3",
    });
    expect(thirty.spend_to_date).toBe("3");
    expect(thirty.limit_reached).toBe(true);
    expect(thirty.reaches_limit_on).toBe("2026-11-30");
    const many = Array.from({ length: 1000 }, () => ({ day: "2026-11-02", spend: "0.1" }));
    expect(
      forecast({
        period: "2026-11",
        firstUsage: from1st("2026-11"),
        now: t("2026-11-02T12:00:00Z"),
        daily: many,
        limit: null,
      }).spend_to_date,
    ).toBe("100");
    const awkward = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-02T12:00:00Z"),
      daily: [
        { day: "2026-11-01", spend: "1234567890.123456789012345678" },
        { day: "2026-11-02", spend: "0.000000000000000001" },
        { day: "2026-11-01", spend: "0.2" },
      ],
      limit: "1234567890.323456789012345679",
    });
    expect(awkward.spend_to_date).toBe("1234567890.323456789012345679");
    expect(awkward).toMatchObject({ limit_reached: true, reaches_limit_on: "2026-11-02" });
  });

  it("is exact at Decimal256 magnitudes: sums, the weighted rate and the projection", () => {
    // 75 significant digits a day (ClickHouse Decimal256 holds 76), Nov 1–14, and a little by 10:00 on the 15th.
    const x = `${"9876543210".repeat(7)}9876.5`;
    const daily = [...days("2026-11", 14, x), { day: "2026-11-15", spend: "1234.5" }];
    const f = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-15T10:00:00Z"),
      daily,
      limit: null,
    });
    // The closed form of the header, on exact rationals: weights 0.8^k for the 14 complete days, 10/24 for today.
    const weights = Exact.sum(Array.from({ length: 14 }, (_, k) => Exact.of("0.8").pow(k + 1)));
    const spent = Exact.of(x).times(14).plus("1234.5");
    const rate = Exact.of(x)
      .times(weights)
      .plus("1234.5")
      .div(weights.plus(Exact.of(10).div(24)))
      .round(6, "half_up");
    // 15 days and 14 hours left.
    const projected = spent.plus(rate.times(Exact.of(15 * 24 + 14).div(24))).round(6, "half_up");
    expect(f.spend_to_date).toBe(spent.toFixed());
    expect(f.daily_rate).toBe(rate.toFixed());
    expect(f.projected).toBe(projected.toFixed());
    expect(f.projected.split(".")[1]).toHaveLength(6);
  });

  it("takes days in any order, adds repeated days, and counts a day just ahead as today's", () => {
    const daily = [...days("2026-11", 9, "4"), { day: "2026-11-10", spend: "1" }];
    const base = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-10T23:00:00Z"),
      daily,
      limit: "100",
    });
    const shuffled = [...daily].reverse().flatMap((d) => [
      { day: d.day, spend: Exact.of(d.spend).div(4).toFixed() },
      { day: d.day, spend: Exact.of(d.spend).times(3).div(4).toFixed() },
    ]);
    expect(
      forecast({
        period: "2026-11",
        firstUsage: from1st("2026-11"),
        now: t("2026-11-10T23:00:00Z"),
        daily: shuffled,
        limit: "100",
      }),
    ).toEqual(base);
    // 0.5 stamped on the 11th, an hour early: in the spend, and in the rate as if spent today.
    const ahead = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-10T23:00:00Z"),
      daily: [...daily, { day: "2026-11-11", spend: "0.5" }],
      limit: "100",
    });
    const same = forecast({
      period: "2026-11",
      firstUsage: from1st("2026-11"),
      now: t("2026-11-10T23:00:00Z"),
      daily: [...daily, { day: "2026-11-10", spend: "0.5" }],
      limit: "100",
    });
    expect(ahead).toEqual(same);
    expect(ahead.spend_to_date).toBe("37.5");
  });

  it("refuses malformed input, naming it", () => {
    const ok: ForecastInput = {
      period: "2026-11",
      now: t("2026-11-10T00:00:00Z"),
      daily: [],
      limit: null,
      firstUsage: null,
    };
    const cases: [Partial<ForecastInput>, RegExp][] = [
      [{ period: "2026-13" }, /period/],
      [{ now: t("2026-10-31T23:59:59.999Z") }, /now/],
      [{ now: t("2026-12-01T00:00:00Z") }, /now/],
      [{ now: Number.NaN }, /now/],
      [{ daily: [{ day: "2026-10-31", spend: "1" }] }, /outside 2026-11/],
      [{ daily: [{ day: "2026-12-01", spend: "1" }] }, /outside 2026-11/],
      [{ daily: [{ day: "2026-11-31", spend: "1" }] }, /day/],
      [{ daily: [{ day: "2026-11-02", spend: "-1" }] }, /non-negative/],
      [{ daily: [{ day: "2026-11-02", spend: "1e3" }] }, /non-negative/],
      [{ daily: [{ day: "2026-11-02", spend: 1 as unknown as string }] }, /non-negative/],
      [{ limit: "-5" }, /limit/],
      [{ limit: "lots" }, /limit/],
      [{ firstUsage: t("2026-10-31T23:59:59.999Z") }, /firstUsage/],
      [{ firstUsage: t("2026-12-01T00:00:00Z") }, /firstUsage/],
      [{ firstUsage: 1.5 }, /firstUsage/],
    ];
    for (const [change, message] of cases) {
      expect(() => forecast({ ...ok, ...change }), JSON.stringify(change)).toThrow(RangeError);
      expect(() => forecast({ ...ok, ...change })).toThrow(message);
    }
  });

  it("properties: the rate is a weighted mean of the observed paces; more spend never projects less", () => {
    const DAY = 86_400_000;
    const cents = fc.integer({ min: 0, max: 1_000_000 }).map((c) => Exact.of(c).div(100).toFixed());
    const input = fc.record({
      spends: fc.array(cents, { minLength: 30, maxLength: 30 }),
      // An instant in November 2026.
      offset: fc.integer({ min: 0, max: 30 * DAY - 1 }),
      // The first usage, at or before now (taken modulo the offset); or the 1st at 00:00 (active since then).
      first: fc.option(fc.integer({ min: 0, max: 30 * DAY - 1 }), { nil: undefined }),
      limit: fc.option(cents, { nil: null }),
    });
    fc.assert(
      fc.property(input, ({ spends, offset, first, limit }) => {
        const now = t("2026-11-01T00:00:00Z") + offset;
        const today = Math.floor(offset / DAY);
        const firstOffset = first === undefined ? 0 : first % (offset + 1);
        const firstDay = Math.floor(firstOffset / DAY);
        // Nothing is spent before the first usage's day.
        const daily = spends
          .slice(0, today + 1)
          .map((spend, i) => ({ day: `2026-11-${String(i + 1).padStart(2, "0")}`, spend: i < firstDay ? "0" : spend }));
        const firstUsage = from1st("2026-11") + firstOffset;
        const f = forecast({ period: "2026-11", firstUsage, now, daily, limit });
        expect(f.days_of_data).toBe(today - firstDay + 1);
        // Each observed day's spend scaled to a full day bounds the rate: the first usage's day from the first usage
        // (when before today), the complete days after it, today from midnight or the first usage (at least an hour).
        const paces: Exact[] = [];
        if (firstDay < today) {
          paces.push(
            Exact.of(spends[firstDay]!)
              .times(DAY)
              .div((firstDay + 1) * DAY - firstOffset),
          );
        }
        for (let i = firstDay + 1; i < today; i++) paces.push(Exact.of(spends[i]!));
        const observedToday = Math.max(offset - Math.max(today * DAY, firstOffset), 3_600_000);
        paces.push(Exact.of(spends[today]!).times(DAY).div(observedToday));
        const lo = Exact.min(...paces).round(6, "down");
        const hi = Exact.max(...paces).round(6, "up");
        const rate = Exact.of(f.daily_rate);
        expect(rate.gte(lo) && rate.lte(hi), `${rate} in [${lo}, ${hi}]`).toBe(true);
        // Leaving out the days before the first usage never lowers the rate below counting them as zero days.
        const fromFirst = forecast({ period: "2026-11", firstUsage: from1st("2026-11"), now, daily, limit });
        expect(rate.gte(fromFirst.daily_rate)).toBe(true);
        // The reach decision agrees with the projection, computed exactly from the answer's own rate.
        if (limit !== null && !f.limit_reached) {
          // spend + rate × days left ≥ limit, multiplied out by the day's milliseconds.
          const projectedMs = Exact.of(f.spend_to_date)
            .times(DAY)
            .plus(rate.times(t("2026-12-01T00:00:00Z") - now));
          expect(f.will_reach_limit).toBe(projectedMs.gte(Exact.of(limit).times(DAY)));
        }
        // More spend on any one observed day never lowers the projection.
        const day = firstDay + (offset % (today - firstDay + 1));
        const more = daily.map((d, i) => (i === day ? { ...d, spend: Exact.of(d.spend).plus("0.01").toFixed() } : d));
        expect(
          Exact.of(forecast({ period: "2026-11", firstUsage, now, daily: more, limit }).projected).gte(f.projected),
        ).toBe(true);
      }),
      { numRuns: 300 },
    );
  });
});
