import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { afterAttempt, backoffCeilingMs, backoffMs, DEFAULT_RETRY_POLICY, type RetryPolicy } from "./backoff.js";

const policy: RetryPolicy = { baseMs: 1_000, maxMs: 60_000, maxAttempts: 10 };

describe("backoff", () => {
  it("doubles the ceiling per failure from the base, capped at the maximum", () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((n) => backoffCeilingMs(policy, n))).toEqual([
      1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000,
    ]);
    expect(backoffCeilingMs(policy, 10_000)).toBe(60_000);
  });

  it("waits anywhere from 0 to the ceiling (full jitter), never beyond", () => {
    expect(backoffMs(policy, 3, () => 0)).toBe(0);
    expect(backoffMs(policy, 3, () => 0.999999999)).toBe(4_000);
    expect(backoffMs(policy, 3, () => 0.5)).toBe(2_000);
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 100_000 }),
        fc.integer({ min: 1, max: 200 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (base, extra, failures, r) => {
          const p = { baseMs: base, maxMs: base + extra, maxAttempts: 10 };
          const wait = backoffMs(p, failures, () => r);
          return Number.isInteger(wait) && wait >= 0 && wait <= Math.min(p.maxMs, base * 2 ** (failures - 1));
        },
      ),
    );
  });

  it("spreads waits over the whole range", () => {
    let seed = 7;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return seed / 2147483647;
    };
    const waits = Array.from({ length: 2000 }, () => backoffMs(policy, 7, random));
    expect(Math.min(...waits)).toBeLessThan(3_000);
    expect(Math.max(...waits)).toBeGreaterThan(57_000);
  });

  it("delivers on success, retries until the last attempt, then is dead", () => {
    expect(afterAttempt(policy, 1, true)).toEqual({ state: "delivered" });
    expect(afterAttempt(policy, 10, true)).toEqual({ state: "delivered" });
    expect(afterAttempt(policy, 1, false, () => 0.5)).toEqual({ state: "retrying", delayMs: 500 });
    expect(afterAttempt(policy, 9, false).state).toBe("retrying");
    expect(afterAttempt(policy, 10, false)).toEqual({ state: "dead" });
    expect(afterAttempt({ ...policy, maxAttempts: 1 }, 1, false)).toEqual({ state: "dead" });
  });

  it("defaults to 1 s base, 60 s maximum, 10 attempts", () => {
    expect(DEFAULT_RETRY_POLICY).toEqual(policy);
  });
});
