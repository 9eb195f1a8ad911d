import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RecentIds } from "./recent-ids.js";

describe("RecentIds", () => {
  it("keeps the last `capacity` distinct ids and forgets the oldest first", () => {
    const recent = new RecentIds(3);
    for (const id of ["a", "b", "c", "d"]) recent.add(id);
    expect(recent.size).toBe(3);
    expect(recent.has("a")).toBe(false);
    expect(["b", "c", "d"].every((id) => recent.has(id))).toBe(true);
  });

  it("does not refresh an id added again: its age counts from its first add", () => {
    const recent = new RecentIds(2);
    recent.add("a");
    recent.add("b");
    recent.add("a");
    recent.add("c");
    expect(recent.has("a")).toBe(false);
    expect(recent.has("b") && recent.has("c")).toBe(true);
    expect(recent.size).toBe(2);
  });

  it("refuses a capacity that is not a positive integer", () => {
    expect(() => new RecentIds(0)).toThrow(RangeError);
    expect(() => new RecentIds(1.5)).toThrow(RangeError);
  });

  it("answers like a first-in-first-out list of distinct ids, for any sequence", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.array(fc.integer({ min: 0, max: 20 }), { maxLength: 200 }),
        (capacity, adds) => {
          const recent = new RecentIds(capacity);
          const model: string[] = [];
          for (const n of adds) {
            const id = `id-${n}`;
            recent.add(id);
            if (!model.includes(id)) {
              model.push(id);
              if (model.length > capacity) model.shift();
            }
            expect(recent.size).toBe(model.length);
          }
          for (let n = 0; n <= 20; n++) expect(recent.has(`id-${n}`)).toBe(model.includes(`id-${n}`));
        },
      ),
    );
  });
});
