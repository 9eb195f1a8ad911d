import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { IdFilter } from "./id-filter.js";

describe("IdFilter", () => {
  it("never rules out an id it was given, and rules out about 99.99% of others at capacity", () => {
    const capacity = 100_000;
    const filter = new IdFilter(capacity);
    const added = Array.from({ length: capacity }, () => randomUUID());
    for (const id of added) filter.add(id);
    expect(added.filter((id) => !filter.mightContain(id))).toEqual([]);
    let falsePositives = 0;
    const probes = 400_000;
    for (let i = 0; i < probes; i++) if (filter.mightContain(randomUUID())) falsePositives++;
    // Sized for 0.01%, about 40 of 400,000 probes; three times that bounds the sampling noise many times over, and
    // a filter that said "maybe" to nothing it was not given would be too good to be a Bloom filter of this size.
    expect(falsePositives / probes).toBeLessThan(0.0003);
    expect(falsePositives).toBeGreaterThan(0);
    expect(filter.full).toBe(false);
    filter.add("one-more");
    expect(filter.full).toBe(true);
  });

  it("tells apart ids that differ in one character, and handles any string", () => {
    const filter = new IdFilter(1000);
    const base = "00000000-0000-4000-8000-000000000000";
    filter.add(base);
    filter.add("");
    filter.add("ünïcødé-ídé ✓");
    expect(filter.mightContain(base)).toBe(true);
    expect(filter.mightContain("")).toBe(true);
    expect(filter.mightContain("ünïcødé-ídé ✓")).toBe(true);
    let ruledOut = 0;
    for (let i = 0; i < 16; i++) {
      const other = `${base.slice(0, 35)}${i.toString(16)}`;
      if (other !== base && !filter.mightContain(other)) ruledOut++;
    }
    expect(ruledOut).toBeGreaterThanOrEqual(14);
  });
});
