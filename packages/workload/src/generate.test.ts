import { PRODUCTS, SEAT_TIERS, type UsageEvent, validateUsageEvent } from "@usage/events";
import { describe, expect, it } from "vitest";
import {
  DATED_MODEL_IDS,
  DUPLICATE_LOOKBACK,
  generateEventArray,
  generateEvents,
  MODEL_IDS,
  type WorkloadOptions,
} from "./index.js";

const DAY = 86_400_000;
const NOW = Date.UTC(2025, 10, 20, 12, 34, 56, 789); // 2025-11-20T12:34:56.789Z
const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const at = (e: UsageEvent): number => Date.parse(e.occurred_at);
const prompt = (e: UsageEvent): number => e.input_tokens + e.cache_write_tokens + e.cache_read_tokens;
const monthStart = (t: number): number => {
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1);
};
const prevMonthStart = (t: number): number => {
  const d = new Date(t);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 1);
};

describe("generateEvents: determinism", () => {
  it("gives byte-identical output for the same seed and options", () => {
    const opts: WorkloadOptions = { seed: 42, count: 2000, now: NOW, duplicateRate: 0.1, lateRate: 0.2 };
    const a = JSON.stringify(generateEventArray(opts));
    const b = JSON.stringify(generateEventArray({ ...opts }));
    const c = JSON.stringify([...generateEvents(opts)]);
    expect(a).toBe(b);
    expect(a).toBe(c);
  });

  it("gives different output for a different seed", () => {
    const a = generateEventArray({ seed: 1, count: 100, now: NOW });
    const b = generateEventArray({ seed: 2, count: 100, now: NOW });
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(b));
    const ids = new Set(a.map((e) => e.event_id));
    expect(b.some((e) => ids.has(e.event_id))).toBe(false);
  });

  it("gives different output for a different now", () => {
    const a = generateEventArray({ seed: 1, count: 50, now: NOW });
    const b = generateEventArray({ seed: 1, count: 50, now: NOW + DAY });
    expect(JSON.stringify(a)).not.toBe(JSON.stringify(b));
  });

  it("accepts non-integer and negative seeds deterministically", () => {
    for (const seed of [-7, 0.5, 2 ** 40 + 3]) {
      const a = JSON.stringify(generateEventArray({ seed, count: 20, now: NOW }));
      expect(JSON.stringify(generateEventArray({ seed, count: 20, now: NOW }))).toBe(a);
    }
  });
});

describe("generateEvents: shape", () => {
  it("emits exactly count events", () => {
    for (const count of [0, 1, 7, 1234]) {
      expect(generateEventArray({ seed: 3, count, now: NOW })).toHaveLength(count);
      expect(generateEventArray({ seed: 3, count, now: NOW, duplicateRate: 0.5, lateRate: 0.5 })).toHaveLength(count);
    }
  });

  it("produces events that pass validateUsageEvent unchanged", () => {
    for (const now of [
      NOW,
      Date.UTC(2025, 0, 1),
      Date.UTC(2024, 2, 1, 0, 0, 30),
      Date.UTC(2025, 6, 31, 23, 59, 59, 999),
    ]) {
      const events = generateEventArray({ seed: 11, count: 3000, now, duplicateRate: 0.1, lateRate: 0.3 });
      for (const e of events) {
        const r = validateUsageEvent(e, { now });
        if (!r.ok) throw new Error(`${JSON.stringify(e)}: ${r.rejection.message}`);
        expect(r.value).toEqual(e);
      }
    }
  });

  it("formats ids: UUID v4 event ids unique without duplicates, request ids, emails, users", () => {
    const events = generateEventArray({ seed: 5, count: 20_000, now: NOW, orgs: 4, usersPerOrg: 10 });
    const ids = new Set<string>();
    const bad: UsageEvent[] = [];
    for (const e of events) {
      const ok =
        UUID_V4.test(e.event_id) &&
        UUID_V4.test(e.account_uuid ?? "") &&
        /^req_[0-9a-f]{16}$/.test(e.request_id ?? "") &&
        /^org_[1-4]$/.test(e.org_id) &&
        new RegExp(`^u_${e.org_id.slice(4)}_([1-9]|10)$`).test(e.user_id) &&
        e.user_email === `${e.user_id}@${e.org_id}.example.com` &&
        ["us-east-1", "eu-west-1", "ap-southeast-2"].includes(e.region ?? "");
      if (!ok) bad.push(e);
      ids.add(e.event_id);
    }
    expect(bad).toEqual([]);
    expect(ids.size).toBe(events.length);
    expect(new Set(events.map((e) => e.user_id)).size).toBe(40);
    expect(new Set(events.map((e) => e.org_id)).size).toBe(4);
  });

  it("keeps each user's seat tier, region, email and account fixed", () => {
    const events = generateEventArray({ seed: 9, count: 5000, now: NOW });
    const seen = new Map<string, string>();
    for (const e of events) {
      const key = JSON.stringify([e.org_id, e.seat_tier, e.region, e.user_email, e.account_uuid]);
      const prior = seen.get(e.user_id);
      if (prior === undefined) seen.set(e.user_id, key);
      else expect(key).toBe(prior);
    }
    expect(seen.size).toBe(75);
  });

  it("uses every seat tier and product, and chat seats only use the chat product", () => {
    const events = generateEventArray({ seed: 21, count: 5000, now: NOW, usersPerOrg: 40 });
    expect(new Set(events.map((e) => e.seat_tier))).toEqual(new Set(SEAT_TIERS));
    expect(new Set(events.map((e) => e.product))).toEqual(new Set(PRODUCTS));
    for (const e of events) if (e.seat_tier === "chat") expect(e.product).toBe("chat");
  });

  it("uses all nine base models and all dated ids in 5,000 events", () => {
    const models = new Set(generateEventArray({ seed: 8, count: 5000, now: NOW }).map((e) => e.model));
    expect(MODEL_IDS).toHaveLength(9);
    expect(DATED_MODEL_IDS).toHaveLength(9);
    for (const m of [...MODEL_IDS, ...DATED_MODEL_IDS]) expect(models).toContain(m);
    expect(models.size).toBe(18);
    for (const dated of DATED_MODEL_IDS) expect(MODEL_IDS).toContain(dated.replace(/-\d{8}$/, ""));
  });

  it("only uses the models given", () => {
    const events = generateEventArray({ seed: 8, count: 500, now: NOW, models: ["claude-haiku-4-5", "x-model"] });
    expect(new Set(events.map((e) => e.model))).toEqual(new Set(["claude-haiku-4-5", "x-model"]));
  });
});

describe("generateEvents: tokens", () => {
  const events = generateEventArray({ seed: 13, count: 20_000, now: NOW });

  it("keeps every count an integer within 0..1,000,000,000 and varies them", () => {
    const bad = events.filter(
      (e) =>
        ![e.input_tokens, e.output_tokens, e.cache_write_tokens, e.cache_read_tokens].every(
          (v) => Number.isInteger(v) && v >= 0 && v <= 1_000_000_000,
        ) || e.output_tokens > 8_000,
    );
    expect(bad).toEqual([]);
    const zero = events.filter((e) => prompt(e) + e.output_tokens === 0);
    expect(zero.length).toBeGreaterThan(0);
    expect(events.some((e) => e.cache_write_tokens === 0)).toBe(true);
    expect(events.some((e) => e.cache_write_tokens > 20_000)).toBe(true);
    expect(events.some((e) => e.cache_read_tokens === 0)).toBe(true);
    expect(events.some((e) => e.cache_read_tokens > 50_000)).toBe(true);
    const normal = events.filter((e) => prompt(e) < 200_000);
    const inputs = normal.map((e) => e.input_tokens).sort((a, b) => a - b);
    const median = inputs[Math.floor(inputs.length / 2)]!;
    expect(median).toBeLessThan(10_000); // skewed small
    expect(inputs[inputs.length - 1]).toBeGreaterThan(30_000);
    expect(new Set(events.map((e) => e.output_tokens)).size).toBeGreaterThan(1000);
  });

  it("includes long-context prompts over 200,000 at about longContextRate, spread across kinds", () => {
    const long = events.filter((e) => prompt(e) > 200_000);
    expect(long.length).toBeGreaterThan(20_000 * 0.04);
    expect(long.length).toBeLessThan(20_000 * 0.06);
    for (const e of long) expect(prompt(e)).toBeLessThanOrEqual(900_000);
    // Each of the three kinds is the largest part of some long prompts.
    expect(long.some((e) => e.input_tokens > 200_000)).toBe(true);
    expect(long.some((e) => e.cache_write_tokens > 200_000)).toBe(true);
    expect(long.some((e) => e.cache_read_tokens > 200_000)).toBe(true);
  });

  it("includes prompts of exactly 200,000 (the boundary)", () => {
    expect(events.some((e) => prompt(e) === 200_000)).toBe(true);
  });

  it("follows longContextRate 0 and 1", () => {
    const none = generateEventArray({ seed: 13, count: 5000, now: NOW, longContextRate: 0 });
    expect(none.every((e) => prompt(e) <= 200_000)).toBe(true);
    const all = generateEventArray({ seed: 13, count: 500, now: NOW, longContextRate: 1 });
    // Only the zero-token requests (about 1.5%) escape.
    expect(all.filter((e) => prompt(e) > 200_000).length).toBeGreaterThan(480);
  });
});

describe("generateEvents: time", () => {
  it("never emits an event after now, and keeps on-time events in the current month", () => {
    for (const now of [NOW, Date.UTC(2025, 1, 28, 23, 59, 59, 999), Date.UTC(2025, 2, 1, 0, 0, 10)]) {
      const events = generateEventArray({ seed: 4, count: 5000, now });
      for (const e of events) {
        expect(at(e)).toBeLessThanOrEqual(now);
        expect(at(e)).toBeGreaterThanOrEqual(monthStart(now));
        expect(e.occurred_at).toBe(new Date(at(e)).toISOString());
      }
    }
  });

  it("puts every event at the month start when now is the month start", () => {
    const now = Date.UTC(2025, 4, 1);
    const events = generateEventArray({ seed: 4, count: 100, now });
    expect(events.every((e) => at(e) === now)).toBe(true);
  });

  it("is roughly ordered in time and spread over the month so far", () => {
    const events = generateEventArray({ seed: 4, count: 10_000, now: NOW });
    const mean = (xs: UsageEvent[]) => xs.reduce((s, e) => s + at(e), 0) / xs.length;
    expect(mean(events.slice(0, 1000))).toBeLessThan(mean(events.slice(-1000)));
    const span = NOW - monthStart(NOW);
    expect(Math.min(...events.map(at))).toBeLessThan(monthStart(NOW) + span * 0.02);
    expect(Math.max(...events.map(at))).toBeGreaterThan(NOW - span * 0.02);
  });

  it("puts late events in the previous month and within 34 days of now", () => {
    for (const now of [NOW, Date.UTC(2025, 0, 2, 3, 4, 5), Date.UTC(2025, 2, 1, 0, 0, 30), Date.UTC(2025, 2, 31, 20)]) {
      const count = 10_000;
      const events = generateEventArray({ seed: 6, count, now, lateRate: 0.3 });
      const late = events.filter((e) => at(e) < monthStart(now));
      expect(late.length).toBeGreaterThan(count * 0.27);
      expect(late.length).toBeLessThan(count * 0.33);
      for (const e of late) {
        expect(at(e)).toBeGreaterThanOrEqual(prevMonthStart(now));
        expect(at(e)).toBeGreaterThanOrEqual(now - 34 * DAY);
      }
      // The late window is used from its oldest allowed instant up to the month boundary.
      const from = Math.max(prevMonthStart(now), now - 34 * DAY);
      const lateTimes = late.map(at);
      expect(Math.min(...lateTimes)).toBeLessThan(from + DAY);
      expect(Math.max(...lateTimes)).toBeGreaterThan(monthStart(now) - DAY);
    }
  });

  it("emits no late events by default", () => {
    const events = generateEventArray({ seed: 6, count: 5000, now: NOW });
    expect(events.every((e) => at(e) >= monthStart(NOW))).toBe(true);
  });
});

describe("generateEvents: duplicates", () => {
  it("re-sends earlier events with identical content at about duplicateRate", () => {
    const count = 20_000;
    const events = generateEventArray({ seed: 7, count, now: NOW, duplicateRate: 0.2, lateRate: 0.1 });
    const first = new Map<string, { index: number; json: string; original: number }>();
    let originals = 0;
    let duplicates = 0;
    events.forEach((e, index) => {
      const json = JSON.stringify(e);
      const prior = first.get(e.event_id);
      if (prior === undefined) {
        first.set(e.event_id, { index, json, original: originals++ });
      } else {
        duplicates++;
        expect(json).toBe(prior.json);
        expect(index).toBeGreaterThan(prior.index);
        // Picked among the last DUPLICATE_LOOKBACK originals emitted.
        expect(originals - prior.original).toBeLessThanOrEqual(DUPLICATE_LOOKBACK);
      }
    });
    expect(first.size).toBe(count - duplicates);
    expect(duplicates).toBeGreaterThan(count * 0.18);
    expect(duplicates).toBeLessThan(count * 0.22);
    expect(JSON.stringify(events[0])).toBe(first.get(events[0]!.event_id)!.json);
  });

  it("hands out copies, so mutating one event does not change a later duplicate", () => {
    const events = generateEventArray({ seed: 7, count: 10, now: NOW, duplicateRate: 1 });
    expect(new Set(events.map((e) => e.event_id)).size).toBe(1);
    events[0]!.input_tokens = -1;
    expect(events[1]!.input_tokens).not.toBe(-1);
  });

  it("emits no duplicates by default", () => {
    const events = generateEventArray({ seed: 7, count: 5000, now: NOW });
    expect(new Set(events.map((e) => e.event_id)).size).toBe(5000);
  });
});

describe("generateEvents: options", () => {
  const base: WorkloadOptions = { seed: 1, count: 10, now: NOW };
  const cases: [string, Partial<WorkloadOptions> | Record<string, unknown>][] = [
    ["count", { count: -1 }],
    ["count", { count: 1.5 }],
    ["count", { count: Number.NaN }],
    ["seed", { seed: Number.NaN }],
    ["seed", { seed: Number.POSITIVE_INFINITY }],
    ["now", { now: Number.NaN }],
    ["now", { now: 1.5 }],
    ["orgs", { orgs: 0 }],
    ["orgs", { orgs: 2.5 }],
    ["usersPerOrg", { usersPerOrg: 0 }],
    ["duplicateRate", { duplicateRate: -0.1 }],
    ["duplicateRate", { duplicateRate: 1.1 }],
    ["lateRate", { lateRate: Number.NaN }],
    ["lateRate", { lateRate: 2 }],
    ["longContextRate", { longContextRate: -1 }],
    ["models", { models: [] }],
    ["models", { models: [""] }],
  ];

  for (const [name, patch] of cases) {
    it(`rejects ${name} = ${JSON.stringify(Object.values(patch)[0]) ?? String(Object.values(patch)[0])} eagerly`, () => {
      const opts = { ...base, ...patch } as WorkloadOptions;
      // Thrown by the call itself, before any iteration.
      expect(() => generateEvents(opts)).toThrow(RangeError);
      expect(() => generateEvents(opts)).toThrow(new RegExp(`^${name} `));
      expect(() => generateEventArray(opts)).toThrow(RangeError);
    });
  }

  it("accepts the boundary values", () => {
    expect(() =>
      generateEventArray({ ...base, orgs: 1, usersPerOrg: 1, duplicateRate: 1, lateRate: 1, longContextRate: 0 }),
    ).not.toThrow();
    expect(generateEventArray({ ...base, orgs: 1, usersPerOrg: 1 }).every((e) => e.user_id === "u_1_1")).toBe(true);
  });
});
