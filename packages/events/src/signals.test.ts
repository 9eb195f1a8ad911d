import { describe, expect, it } from "vitest";
import { type CapSignal, decodeSignal } from "./signals.js";

const signal: CapSignal = {
  signal_id: "0123456789abcdef0123456789abcdef",
  org_id: "org_1",
  entity: { type: "org", id: "org_1" },
  period: "2026-11",
  kind: "threshold",
  threshold: "0.9",
  limit: "5000",
  spend: "4600.123456789012345678",
  status: "warning",
  previous_status: "ok",
  policy_version: 2,
  cause_event_id: null,
  created_at: "2026-11-20T10:00:00.000Z",
};

const encode = (v: unknown) => Buffer.from(JSON.stringify(v));

describe("decodeSignal", () => {
  it("reads a signal as the aggregator publishes it", () => {
    expect(decodeSignal(encode(signal))).toEqual({ ok: true, signal });
  });

  it("refuses what it cannot store or act on, naming the field and the signal", () => {
    const bad = (patch: Record<string, unknown>) => decodeSignal(encode({ ...signal, ...patch }));
    expect(decodeSignal(null)).toMatchObject({ ok: false, code: "invalid_encoding" });
    expect(decodeSignal(Buffer.from("{nope"))).toMatchObject({
      ok: false,
      code: "invalid_encoding",
      message: "not JSON",
    });
    expect(decodeSignal(Buffer.from("[1,2]"))).toMatchObject({ ok: false, code: "invalid_encoding" });
    expect(decodeSignal(Buffer.from("null"))).toMatchObject({ ok: false, code: "invalid_encoding" });
    expect(bad({ threshold: null })).toMatchObject({
      ok: false,
      code: "invalid_field",
      field: "threshold",
      message: /threshold/,
      signalId: signal.signal_id,
    });
    expect(bad({ period: "2026-13" })).toMatchObject({ ok: false, code: "invalid_field", field: "period" });
    expect(bad({ entity: { type: "user", id: "" } })).toMatchObject({ code: "invalid_field", field: "entity.id" });
    expect(bad({ spend: "1e3" })).toMatchObject({ ok: false, message: /spend/ });
    expect(bad({ kind: "exploded" })).toMatchObject({ ok: false, message: /kind/ });
    expect(bad({ org_id: "" })).toMatchObject({ ok: false, message: /org_id/ });
    expect(bad({ entity: { type: "team", id: "t" } })).toMatchObject({ ok: false, message: /entity/ });
  });

  it("accepts blocked and unblocked signals with or without a threshold", () => {
    expect(decodeSignal(encode({ ...signal, kind: "blocked", threshold: "1", status: "blocked" })).ok).toBe(true);
    expect(decodeSignal(encode({ ...signal, kind: "unblocked", threshold: null, status: "ok" })).ok).toBe(true);
  });
});
