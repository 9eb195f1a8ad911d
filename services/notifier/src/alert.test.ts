import { createHash } from "node:crypto";
import type { CapSignal } from "@usage/events";
import { describe, expect, it } from "vitest";
import { alertId, canonicalDecimal, entityKey, newAlertRow, toPayload } from "./alert.js";

const base: CapSignal = {
  signal_id: "sig-1",
  org_id: "org_1",
  entity: { type: "user", id: "u1" },
  period: "2026-11",
  kind: "threshold",
  threshold: "0.75",
  limit: "100",
  spend: "75.5",
  status: "warning",
  previous_status: "ok",
  policy_version: 3,
  cause_event_id: "3f6b7c4e-0000-4000-8000-000000000001",
  created_at: "2026-11-20T10:00:00.000Z",
};

describe("alertId", () => {
  it("is the documented hash of (org, entity, period, kind, threshold)", () => {
    const expected = createHash("sha256")
      .update(["alert.v1", "org_1", "user", "u1", "2026-11", "threshold", "0.75"].join("\u0000"))
      .digest("hex")
      .slice(0, 32);
    expect(alertId(base)).toBe(expected);
    expect(alertId(base)).toMatch(/^[0-9a-f]{32}$/);
  });

  it("ignores when and why the signal was made: signal id, spend, cause, time, policy version of a threshold", () => {
    const again = {
      ...base,
      signal_id: "sig-2",
      spend: "99",
      cause_event_id: null,
      created_at: "2026-11-29T00:00:00Z",
      policy_version: 7,
    };
    expect(alertId(again)).toBe(alertId(base));
    expect(alertId({ ...base, threshold: "0.750" })).toBe(alertId(base));
  });

  it("differs by org, entity, period, kind and threshold", () => {
    const ids = new Set([
      alertId(base),
      alertId({ ...base, org_id: "org_2" }),
      alertId({ ...base, entity: { type: "user", id: "u2" } }),
      alertId({ ...base, entity: { type: "org", id: "u1" } }),
      alertId({ ...base, period: "2026-12" }),
      alertId({ ...base, threshold: "0.9" }),
      alertId({ ...base, kind: "blocked" }),
      alertId({ ...base, kind: "unblocked" }),
    ]);
    expect(ids.size).toBe(8);
  });

  it("keys blocked and unblocked alerts by policy version, not threshold", () => {
    const blocked = { ...base, kind: "blocked" as const, threshold: "1", status: "blocked" as const };
    expect(alertId({ ...blocked, threshold: "0.9" })).toBe(alertId(blocked));
    expect(alertId({ ...blocked, policy_version: 4 })).not.toBe(alertId(blocked));
    expect(alertId({ ...blocked, kind: "unblocked" })).not.toBe(alertId(blocked));
  });

  it("does not let field boundaries collide", () => {
    expect(alertId({ ...base, org_id: "a", entity: { type: "user", id: "bc" } })).not.toBe(
      alertId({ ...base, org_id: "ab", entity: { type: "user", id: "c" } }),
    );
  });
});

describe("payload and row", () => {
  it("carries the fields of SPEC §7 plus kind, in a stable order", () => {
    const p = toPayload(base, Date.parse("2026-11-20T10:00:01.234Z"));
    expect(Object.keys(p)).toEqual([
      "alert_id",
      "org_id",
      "entity",
      "period",
      "kind",
      "threshold",
      "limit",
      "spend",
      "status",
      "created_at",
      "cause_event_id",
    ]);
    expect(p).toMatchObject({
      alert_id: alertId(base),
      entity: { type: "user", id: "u1" },
      threshold: "0.75",
      limit: "100",
      spend: "75.5",
      created_at: "2026-11-20T10:00:01.234Z",
    });
  });

  it("stores the exact payload JSON in a pending row, due at once", () => {
    const at = Date.parse("2026-11-20T10:00:01.234Z");
    const row = newAlertRow({ ...base, limit: null }, { group: "g", partition: 2, offset: "41" }, at);
    expect(JSON.parse(row.payload)).toEqual(toPayload({ ...base, limit: null }, at));
    expect(row).toMatchObject({
      state: "pending",
      attempts: 0,
      limit_value: "",
      next_attempt_at: "2026-11-20 10:00:01.234",
      updated_at: "2026-11-20 10:00:01.234",
      delivered_at: null,
      source_group: "g",
      source_partition: 2,
      source_offset: "41",
    });
  });

  it("canonicalises decimals and names entities", () => {
    expect(canonicalDecimal("0.900")).toBe("0.9");
    expect(canonicalDecimal("1")).toBe("1");
    expect(entityKey({ type: "org", id: "org_1" })).toBe("org");
    expect(entityKey({ type: "user", id: "u1" })).toBe("user:u1");
  });
});

describe("alertId of credit and forecast alerts", () => {
  const credit: CapSignal = {
    ...base,
    entity: { type: "org", id: "org_1" },
    kind: "credits_reload",
    threshold: null,
    limit: null,
    sequence: 1,
    amount: "3",
    balance: "4.8",
  };

  it("tells reloads apart by their sequence number, whatever the policy version", () => {
    expect(alertId(credit)).not.toBe(alertId({ ...credit, sequence: 2 }));
    const later: CapSignal = { ...credit, policy_version: 9, balance: "1", signal_id: "other" };
    expect(alertId(credit)).toBe(alertId(later));
    expect(alertId(credit)).not.toBe(alertId({ ...credit, kind: "credits_exhausted" }));
  });

  it("gives one forecast and one reload-limit alert per entity and period", () => {
    const forecast: CapSignal = { ...base, kind: "forecast", threshold: null, policy_version: 1 };
    const later: CapSignal = { ...forecast, policy_version: 2, spend: "80" };
    expect(alertId(forecast)).toBe(alertId(later));
    expect(alertId(forecast)).not.toBe(alertId({ ...forecast, period: "2026-12" }));
    expect(alertId(forecast)).not.toBe(alertId({ ...forecast, entity: { type: "user", id: "u2" } }));
  });

  it("carries the credit fields in the payload", () => {
    expect(toPayload(credit, 0)).toMatchObject({ kind: "credits_reload", sequence: 1, amount: "3", balance: "4.8" });
  });
});
