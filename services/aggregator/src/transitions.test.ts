import { describe, expect, it } from "vitest";
import { NO_MARK, quietMark, transition } from "./transitions.js";

describe("cap transitions", () => {
  it("signals a single threshold step", () => {
    const t = transition(NO_MARK, { threshold: "0.5", status: "warning" });
    expect(t).toMatchObject({ kind: "threshold", threshold: "0.5", next: { threshold: "0.5", status: "warning" } });
  });

  it("signals only the highest threshold of a jump, and the lower ones count as passed", () => {
    const jump = transition({ threshold: null, status: "ok" }, { threshold: "0.9", status: "warning" });
    expect(jump).toMatchObject({ kind: "threshold", threshold: "0.9" });
    expect(transition(jump!.next, { threshold: "0.75", status: "warning" })).toBeUndefined();
  });

  it("does not signal the same threshold twice", () => {
    expect(
      transition({ threshold: "0.75", status: "warning" }, { threshold: "0.75", status: "warning" }),
    ).toBeUndefined();
  });

  it("signals blocked once, carrying the threshold reached", () => {
    const t = transition({ threshold: "0.9", status: "warning" }, { threshold: "1", status: "blocked" });
    expect(t).toMatchObject({
      kind: "blocked",
      threshold: "1",
      previousStatus: "warning",
      next: { threshold: "1", status: "blocked" },
    });
    expect(transition(t!.next, { threshold: "1", status: "blocked" })).toBeUndefined();
  });

  it("signals unblocked when a raised cap lifts the block, and keeps the threshold mark", () => {
    const t = transition({ threshold: "1", status: "blocked" }, { threshold: "0.5", status: "warning" });
    expect(t).toMatchObject({ kind: "unblocked", status: "warning", next: { threshold: "1", status: "warning" } });
    // The 0.75 and 0.9 marks were passed before the raise: reaching them again sends nothing.
    expect(transition(t!.next, { threshold: "0.9", status: "warning" })).toBeUndefined();
  });

  it("is silent when a raised cap turns a warning back to ok", () => {
    expect(transition({ threshold: "0.5", status: "warning" }, { threshold: null, status: "ok" })).toBeUndefined();
    expect(quietMark({ threshold: "0.5", status: "warning" }, { threshold: null, status: "ok" })).toEqual({
      threshold: "0.5",
      status: "ok",
    });
  });

  it("blocks at once at a limit of zero", () => {
    expect(transition(NO_MARK, { threshold: "1", status: "blocked" })).toMatchObject({ kind: "blocked" });
  });

  it("compares thresholds as decimals, not strings", () => {
    expect(transition({ threshold: "0.9", status: "warning" }, { threshold: "0.95", status: "warning" })).toMatchObject(
      { kind: "threshold" },
    );
    expect(
      transition({ threshold: "0.900000", status: "warning" }, { threshold: "0.9", status: "warning" }),
    ).toBeUndefined();
  });
});
