/**
 * Seat fees (SPEC §13). Day counts are counted by hand in the comments; prorated amounts are written out as literals
 * (worked out by long division, the repeating decimals noted) and cross-checked with the bigint oracle of
 * test/harness/exact.ts, which shares no code with the package.
 */
import { describe, expect, it } from "vitest";
import { Exact } from "../../../test/harness/exact.js";
import { type Contract, type InvoiceLine, type SeatAssignment, seatLines } from "./index.js";

const contract = (term_start: string, seat_prices: Record<string, string> = { chat: "30", chat_code: "150" }) =>
  ({ plan: "sales_assisted", term_start, seat_prices, discount_pct: "0" }) satisfies Contract;
const seat = (user_id: string, tier: string, effective_at: string, version = 1): SeatAssignment => ({
  user_id,
  tier,
  effective_at,
  version,
});
const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}${i + 1}`);
/** Oracle: count × difference × 12 × left / days, exact when finite, else half-up at 12 places. */
const oracle = (difference: string, count: number, left: number, days: number): string => {
  const x = Exact.of(difference)
    .times(12 * count * left)
    .div(days);
  try {
    return x.toFixed();
  } catch {
    return x.round(12, "half_up").toFixed();
  }
};
const brief = (l: InvoiceLine) => [l.date, l.tier, l.from_tier, l.quantity, l.unit_price, l.amount_exact, l.amount];

describe("seatLines: the seed example (term from 2026-01-01, 365 days)", () => {
  const c = contract("2026-01-01");
  const history: SeatAssignment[] = [
    // 40 chat seats assigned before term_start and 10 chat_code seats on the term's first day: all annual.
    ...names("c", 40).map((u) => seat(u, "chat", "2025-12-15T09:00:00Z")),
    ...names("k", 10).map((u) => seat(u, "chat_code", "2026-01-01T17:30:00Z")),
    // 10 chat_code seats added on April 1, at different times of the day.
    ...names("n", 10).map((u, i) => seat(u, "chat_code", `2026-04-01T${String(i + 8).padStart(2, "0")}:15:00Z`)),
    // Two chat seats upgraded to chat_code on June 17.
    seat("c1", "chat_code", "2026-06-17T08:00:00Z", 2),
    seat("c2", "chat_code", "2026-06-17T16:45:10.250Z", 2),
  ];

  it("January holds the annual charge of the 50 seats, one line per tier", () => {
    expect(seatLines(c, history, "2026-01")).toEqual([
      {
        kind: "seat",
        description: "40 seats (chat), term 2026-01-01 to 2026-12-31: 12 × 30 per seat, billed annually in advance",
        quantity: 40,
        unit_price: "360", // 12 × 30
        user_id: null,
        product: null,
        model: null,
        tier: "chat",
        from_tier: null,
        date: "2026-01-01",
        period: null,
        amount_exact: "14400", // 40 × 360
        amount: "14400.00",
      },
      {
        kind: "seat",
        description:
          "10 seats (chat_code), term 2026-01-01 to 2026-12-31: 12 × 150 per seat, billed annually in advance",
        quantity: 10,
        unit_price: "1800", // 12 × 150
        user_id: null,
        product: null,
        model: null,
        tier: "chat_code",
        from_tier: null,
        date: "2026-01-01",
        period: null,
        amount_exact: "18000", // 10 × 1800
        amount: "18000.00",
      },
    ]);
    expect(seatLines(c, history, "2026-02")).toEqual([]);
    expect(seatLines(c, history, "2025-12")).toEqual([]);
  });

  it("April holds the 10 added seats: 10 × 12 × 150 × 275/365, rounded half-up at 12 places", () => {
    // Days left: Apr 30 + May 31 + Jun 30 + Jul 31 + Aug 31 + Sep 30 + Oct 31 + Nov 30 + Dec 31 = 275.
    // 10 × 1800 × 275/365 = 18000 × 55/73 = 990000/73 = 13561 + 47/73, and 47/73 = 0.(64383561) repeating:
    // 13561.643835616438|356… → the 13th place is 3, so 13561.643835616438.
    // Per seat: 1800 × 55/73 = 99000/73 = 1356 + 12/73 = 1356.(16438356)… = 1356.164383561643|8356… → …644.
    // Note 10 × the rounded unit (13561.64383561644) is not the amount: the amount is one fraction.
    const lines = seatLines(c, history, "2026-04");
    expect(lines).toEqual([
      {
        kind: "seat",
        description: "10 seats added 2026-04-01 (chat_code), 275/365 of the term",
        quantity: 10,
        unit_price: "1356.164383561644",
        user_id: null,
        product: null,
        model: null,
        tier: "chat_code",
        from_tier: null,
        date: "2026-04-01",
        period: null,
        amount_exact: "13561.643835616438",
        amount: "13561.64",
      },
    ]);
    expect(lines[0]?.amount_exact).toBe(oracle("150", 10, 275, 365));
    expect(lines[0]?.unit_price).toBe(oracle("150", 1, 275, 365));
  });

  it("June holds the upgrade chat → chat_code: (150 − 30) × 12 × 198/365 per seat", () => {
    // Days left: Jun 17..30 = 14, Jul 31 + Aug 31 + Sep 30 + Oct 31 + Nov 30 + Dec 31 = 184; 14 + 184 = 198.
    // Per seat 120 × 12 × 198/365 = 57024/73 = 781 + 11/73 = 781.(15068493)… = 781.150684931506|849… → …507.
    // Two seats: 114048/73 = 1562 + 22/73 = 1562.(30136986)… = 1562.301369863013|698… → …014.
    const lines = seatLines(c, history, "2026-06");
    expect(lines.map(brief)).toEqual([
      ["2026-06-17", "chat_code", "chat", 2, "781.150684931507", "1562.301369863014", "1562.30"],
    ]);
    expect(lines[0]?.description).toBe("2 seats upgraded chat → chat_code 2026-06-17, 198/365 of the term");
    expect(lines[0]?.amount_exact).toBe(oracle("120", 2, 198, 365));
  });

  it("the renewal bills every seat in force at the new term's start", () => {
    // chat: 40 − 2 upgraded = 38 → 38 × 360 = 13680; chat_code: 10 + 10 added + 2 upgraded = 22 → 22 × 1800 = 39600.
    expect(seatLines(c, history, "2027-01").map(brief)).toEqual([
      ["2027-01-01", "chat", null, 38, "360", "13680", "13680.00"],
      ["2027-01-01", "chat_code", null, 22, "1800", "39600", "39600.00"],
    ]);
  });
});

describe("seatLines: terms", () => {
  it("a leap-year term has 366 days: the same change costs less per day than in a 365-day term", () => {
    const c = contract("2028-01-01");
    const history = [
      seat("u1", "chat", "2027-11-01T00:00:00Z"),
      seat("u2", "chat", "2028-03-01T12:00:00Z"),
      seat("u3", "chat", "2028-07-02T00:00:00Z"),
    ];
    expect(seatLines(c, history, "2028-01").map(brief)).toEqual([
      ["2028-01-01", "chat", null, 1, "360", "360", "360.00"],
    ]);
    // Mar 1 .. Dec 31 2028: 31+30+31+30+31+31+30+31+30+31 = 306 days of 366.
    // 360 × 306/366 = 18360/61 = 300 + 60/61 = 300.983606557377|049… → 300.983606557377.
    expect(seatLines(c, history, "2028-03").map(brief)).toEqual([
      ["2028-03-01", "chat", null, 1, "300.983606557377", "300.983606557377", "300.98"],
    ]);
    expect(oracle("30", 1, 306, 366)).toBe("300.983606557377");
    // Jul 2 .. Dec 31: 30+31+30+31+30+31 = 183 days, half of 366: 360 × 183/366 = 180, a finite decimal, exact.
    expect(seatLines(c, history, "2028-07").map(brief)).toEqual([
      ["2028-07-02", "chat", null, 1, "180", "180", "180.00"],
    ]);
    // The same day in 2026 (365 days): 360 × 183/365 = 65880/365 = 180.493150684931|50… → 180.493150684932.
    const nonLeap = seatLines(contract("2026-01-01"), [seat("u3", "chat", "2026-07-02T00:00:00Z")], "2026-07");
    expect(nonLeap.map((l) => l.amount_exact)).toEqual(["180.493150684932"]);
    expect(oracle("30", 1, 183, 365)).toBe("180.493150684932");
  });

  it("a term starting mid-year renews in July: one month holds both terms' charges", () => {
    const c = contract("2026-07-15");
    const history = [
      seat("u1", "chat", "2026-07-15T00:00:00Z"),
      // In term 1 (2026-07-15 .. 2027-07-14): Jul 3..14 = 12 days left of 365.
      seat("u2", "chat_code", "2027-07-03T10:00:00Z"),
      // In term 2 (2027-07-15 .. 2028-07-14, holds Feb 29 2028: 366 days): Jul 20 2027 .. Jul 14 2028 is 366 − 5 = 361.
      seat("u3", "chat", "2027-07-20T10:00:00Z"),
    ];
    expect(seatLines(c, history, "2026-07").map(brief)).toEqual([
      ["2026-07-15", "chat", null, 1, "360", "360", "360.00"],
    ]);
    expect(seatLines(c, history, "2027-06")).toEqual([]);
    // 1800 × 12/365 = 21600/365 = 4320/73 = 59 + 13/73 = 59.178082191780|82… → 59.178082191781.
    // 360 × 361/366 = 129960/366 = 21660/61 = 355 + 5/61 = 355.081967213114|754… → 355.081967213115.
    const july = seatLines(c, history, "2027-07");
    expect(july.map(brief)).toEqual([
      ["2027-07-03", "chat_code", null, 1, "59.178082191781", "59.178082191781", "59.18"],
      ["2027-07-15", "chat", null, 1, "360", "360", "360.00"],
      ["2027-07-15", "chat_code", null, 1, "1800", "1800", "1800.00"],
      ["2027-07-20", "chat", null, 1, "355.081967213115", "355.081967213115", "355.08"],
    ]);
    expect(july.map((l) => l.description)).toEqual([
      "1 seat added 2027-07-03 (chat_code), 12/365 of the term",
      "1 seat (chat), term 2027-07-15 to 2028-07-14: 12 × 30 per seat, billed annually in advance",
      "1 seat (chat_code), term 2027-07-15 to 2028-07-14: 12 × 150 per seat, billed annually in advance",
      "1 seat added 2027-07-20 (chat), 361/366 of the term",
    ]);
    expect([oracle("150", 1, 12, 365), oracle("30", 1, 361, 366)]).toEqual(["59.178082191781", "355.081967213115"]);
  });

  it("a Feb 29 term start renews on Mar 1 in non-leap years", () => {
    const c = contract("2028-02-29");
    const history = [seat("u1", "chat", "2028-02-29T00:00:00Z"), seat("u2", "chat", "2029-02-28T23:59:59Z")];
    expect(seatLines(c, history, "2028-02").map(brief)).toEqual([
      ["2028-02-29", "chat", null, 1, "360", "360", "360.00"],
    ]);
    // Feb 28 2029 is the last day of the 366-day first term: 1 day left. 360/366 = 60/61 = 0.983606557377|049….
    expect(seatLines(c, history, "2029-02").map(brief)).toEqual([
      ["2029-02-28", "chat", null, 1, "0.983606557377", "0.983606557377", "0.98"],
    ]);
    expect(seatLines(c, history, "2029-03").map(brief)).toEqual([
      ["2029-03-01", "chat", null, 2, "360", "720", "720.00"],
    ]);
    expect(seatLines(c, history, "2029-03")[0]?.description).toBe(
      "2 seats (chat), term 2029-03-01 to 2030-02-28: 12 × 30 per seat, billed annually in advance",
    );
    expect(seatLines(c, history, "2032-02").map((l) => l.date)).toEqual(["2032-02-29"]);
    expect(seatLines(c, history, "2032-03")).toEqual([]);
  });

  it("assignments before term_start are charged at term start, not before", () => {
    const c = contract("2026-03-01");
    const history = [seat("u1", "chat", "2025-06-01T00:00:00Z"), seat("u1", "chat_code", "2026-01-10T00:00:00Z", 2)];
    expect(seatLines(c, history, "2025-06")).toEqual([]);
    expect(seatLines(c, history, "2026-01")).toEqual([]);
    // The seat in force at the term start is chat_code: 12 × 150.
    expect(seatLines(c, history, "2026-03").map(brief)).toEqual([
      ["2026-03-01", "chat_code", null, 1, "1800", "1800", "1800.00"],
    ]);
  });
});

describe("seatLines: changes within a term", () => {
  const prices = { chat: "30", chat_code: "150", premium: "200" };

  it("a downgrade then a re-upgrade charges only above the highest price charged", () => {
    const c = contract("2026-01-01", prices);
    const history = [
      seat("u1", "chat_code", "2025-12-01T00:00:00Z"),
      seat("u1", "chat", "2026-03-01T00:00:00Z", 2), // downgrade: nothing, no refund
      seat("u1", "chat_code", "2026-05-01T00:00:00Z", 3), // back to what was charged: nothing
      seat("u1", "premium", "2026-08-01T00:00:00Z", 4), // 200 − 150 above the highest charged
      seat("u2", "chat", "2026-02-10T00:00:00Z"), // new seat
      seat("u2", "chat_code", "2026-03-10T00:00:00Z", 2), // upgrade 150 − 30
      seat("u2", "chat", "2026-04-10T00:00:00Z", 3), // downgrade: nothing
      seat("u2", "chat_code", "2026-05-10T00:00:00Z", 4), // re-upgrade to what was charged: nothing
    ];
    // Feb 10 .. Dec 31: 365 − (31 + 9) = 325 days. 360 × 325/365 = 23400/73 = 320 + 40/73 = 320.547945205479|45….
    expect(seatLines(c, history, "2026-02").map(brief)).toEqual([
      ["2026-02-10", "chat", null, 1, "320.547945205479", "320.547945205479", "320.55"],
    ]);
    // Mar 10 .. Dec 31: 365 − (31 + 28 + 9) = 297. 1440 × 297/365 = 85536/73 = 1171 + 53/73 = 1171.726027397260|27….
    expect(seatLines(c, history, "2026-03").map(brief)).toEqual([
      ["2026-03-10", "chat_code", "chat", 1, "1171.72602739726", "1171.72602739726", "1171.73"],
    ]);
    expect([oracle("30", 1, 325, 365), oracle("120", 1, 297, 365)]).toEqual(["320.547945205479", "1171.72602739726"]);
    expect(seatLines(c, history, "2026-04")).toEqual([]);
    expect(seatLines(c, history, "2026-05")).toEqual([]);
    // Aug 1 .. Dec 31: 31 + 30 + 31 + 30 + 31 = 153. 50 × 12 × 153/365 = 18360/73 = 251 + 37/73
    // = 251.(50684931)… = 251.506849315068|4931… → 251.506849315068. From chat_code, the tier charged, not chat.
    const aug = seatLines(c, history, "2026-08");
    expect(aug.map(brief)).toEqual([
      ["2026-08-01", "premium", "chat_code", 1, "251.506849315068", "251.506849315068", "251.51"],
    ]);
    expect(aug[0]?.amount_exact).toBe(oracle("50", 1, 153, 365));
  });

  it("a tier missing from seat_prices (or priced 0) costs nothing and writes no line", () => {
    const c = contract("2026-01-01", { chat: "30", free: "0" });
    const history = [
      seat("u1", "viewer", "2025-12-01T00:00:00Z"),
      seat("u2", "free", "2025-12-01T00:00:00Z"),
      seat("u3", "chat", "2025-12-01T00:00:00Z"),
      seat("u4", "viewer", "2026-03-01T09:00:00Z"), // new seat at 0: no line
      seat("u1", "chat", "2026-03-01T09:00:00Z", 2), // viewer (charged 0) → chat: the full price
    ];
    expect(seatLines(c, history, "2026-01").map(brief)).toEqual([
      ["2026-01-01", "chat", null, 1, "360", "360", "360.00"],
    ]);
    // Mar 1 .. Dec 31: 306 days. 360 × 306/365 = 110160/365 = 22032/73 = 301 + 59/73 = 301.808219178082|19….
    expect(seatLines(c, history, "2026-03").map(brief)).toEqual([
      ["2026-03-01", "chat", "viewer", 1, "301.808219178082", "301.808219178082", "301.81"],
    ]);
    expect(oracle("30", 1, 306, 365)).toBe("301.808219178082");
    expect(seatLines(contract("2026-01-01", {}), history, "2026-01")).toEqual([]);
  });

  it("groups same-day changes by (day, from tier, to tier); the seat of a day is the last assignment of it", () => {
    const c = contract("2026-01-01");
    const history = [
      seat("a", "chat", "2026-04-01T00:00:00Z"),
      seat("b", "chat", "2026-04-01T12:00:00Z"),
      seat("c", "chat", "2026-04-01T23:59:59.999Z"),
      seat("d", "chat_code", "2026-04-01T10:00:00Z"),
      // e: chat_code at 09:00 then chat at 10:00 the same day → a chat seat.
      seat("e", "chat_code", "2026-04-01T09:00:00Z"),
      seat("e", "chat", "2026-04-01T10:00:00Z", 2),
      // f: a tie on effective_at is broken by version, whatever the input order: version 2 (chat_code) wins.
      seat("f", "chat_code", "2026-04-01T11:00:00Z", 2),
      seat("f", "chat", "2026-04-01T11:00:00Z", 1),
      // Midnight starts the next day; an offset is converted to UTC (01:00+02:00 is 23:00Z the day before).
      seat("g", "chat", "2026-04-02T00:00:00Z"),
      seat("h", "chat", "2026-04-01T01:00:00+02:00"),
    ];
    const april = seatLines(c, history, "2026-04");
    // 275 days left on Apr 1, 274 on Apr 2. 4 × 360 × 275/365 = 79200/73 = 1084.931506849315|06849… → …315.
    expect(april.map((l) => [l.date, l.tier, l.quantity, l.amount_exact])).toEqual([
      ["2026-04-01", "chat", 4, "1084.931506849315"],
      ["2026-04-01", "chat_code", 2, oracle("150", 2, 275, 365)],
      ["2026-04-02", "chat", 1, oracle("30", 1, 274, 365)],
    ]);
    expect(oracle("30", 4, 275, 365)).toBe("1084.931506849315");
    expect(seatLines(c, history, "2026-03").map((l) => [l.date, l.quantity])).toEqual([["2026-03-31", 1]]);
  });

  it("huge prices stay exact; a finite prorated decimal keeps all its places", () => {
    const huge = "314159265358979323846264338327.950288419";
    const c = contract("2026-01-01", { big: huge, tiny: "0.0000000000001" });
    const history = [
      ...names("b", 7).map((u) => seat(u, "big", "2026-01-01T00:00:00Z")),
      ...names("n", 4).map((u) => seat(u, "big", "2026-09-22T00:00:00Z")),
      seat("t", "tiny", "2026-10-20T00:00:00Z"),
    ];
    // 12 × huge and 84 × huge, multiplied out by hand.
    expect(seatLines(c, history, "2026-01").map(brief)).toEqual([
      [
        "2026-01-01",
        "big",
        null,
        7,
        "3769911184307751886155172059935.403461028",
        "26389378290154263203086204419547.824227196",
        "26389378290154263203086204419547.82",
      ],
    ]);
    // Sep 22 .. Dec 31: 9 + 31 + 30 + 31 = 101 days. Not a finite decimal: rounded half-up at 12 places.
    expect(seatLines(c, history, "2026-09").map(brief)).toEqual([
      [
        "2026-09-22",
        "big",
        null,
        4,
        "1043180903055021754799102405625.960957709118",
        "4172723612220087019196409622503.843830836471",
        "4172723612220087019196409622503.84",
      ],
    ]);
    expect(oracle(huge, 4, 101, 365)).toBe("4172723612220087019196409622503.843830836471");
    // Oct 20 .. Dec 31: 12 + 30 + 31 = 73 days = 1/5 of the term: 1e-13 × 12 / 5 = 2.4e-14, exact at 14 places.
    expect(seatLines(c, history, "2026-10").map(brief)).toEqual([
      ["2026-10-20", "tiny", null, 1, "0.00000000000024", "0.00000000000024", "0.00"],
    ]);
  });

  it("refuses malformed input", () => {
    const c = contract("2026-01-01");
    expect(() => seatLines(c, [], "2026-13")).toThrow(RangeError);
    expect(() => seatLines(contract("2026-01-01", { chat: "-1" }), [], "2026-01")).toThrow(RangeError);
    expect(() => seatLines(contract("2026-01-01", { chat: "1e3" }), [], "2026-01")).toThrow(RangeError);
    expect(() => seatLines(c, [seat("u", "chat", "2026-01-01")], "2026-01")).toThrow(RangeError);
    expect(() => seatLines(c, [seat("u", "chat", "2026-01-01T00:00:00Z", 1.5)], "2026-01")).toThrow(RangeError);
  });
});
