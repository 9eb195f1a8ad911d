import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  type Change,
  changeSchema,
  controlKey,
  decodeRecord,
  encodeChange,
  offsetOfVersion,
  parseChange,
  versionOfOffset,
} from "./changes.js";

const AT = "2026-03-01T12:00:00.000Z";

function record(key: string | null, value: unknown) {
  return decodeRecord(key === null ? null : Buffer.from(key), Buffer.from(JSON.stringify(value)));
}

describe("change schemas", () => {
  it("normalises a policy with @usage/policy and takes the change's org when the policy names none", () => {
    const parsed = parseChange({
      kind: "policy",
      org_id: "org_1",
      actor: "key:ab12",
      at: AT,
      policy: {
        org_limit: "5000.50",
        thresholds: ["0.9", "0.5"],
        groups: { eng: { limit: "200.0", members: ["u1"] } },
      },
    });
    expect(parsed).toEqual({
      ok: true,
      change: {
        kind: "policy",
        org_id: "org_1",
        actor: "key:ab12",
        at: AT,
        policy: {
          org_id: "org_1",
          mode: "override",
          multi_group: "lowest",
          discount_pct: "0",
          thresholds: ["0.5", "0.9"],
          org_limit: "5000.5",
          seat_tier_limits: {},
          groups: { eng: { limit: "200", members: ["u1"] } },
          users: {},
          product_access: {},
          limit_requests: "enabled",
        },
      },
    });
  });

  it("refuses a policy of another org, and a bad limit, naming the field under policy", () => {
    const base = { kind: "policy", org_id: "org_1", actor: "operator", at: AT };
    expect(parseChange({ ...base, policy: { org_id: "org_2" } })).toMatchObject({
      ok: false,
      reason: "invalid_field",
      field: "policy.org_id",
    });
    expect(parseChange({ ...base, policy: { org_limit: "-1" } })).toMatchObject({
      ok: false,
      field: "policy.org_limit",
    });
    expect(parseChange(base)).toMatchObject({ ok: false, field: "policy" });
  });

  it("validates auto-reload settings with @usage/policy", () => {
    const base = { kind: "auto_reload", org_id: "org_1", actor: "operator", at: AT };
    expect(parseChange({ ...base, settings: { when_below: "10", amount: "50.00", monthly_max: "200" } })).toMatchObject(
      {
        ok: true,
        change: { settings: { enabled: true, when_below: "10", amount: "50", monthly_max: "200" } },
      },
    );
    // monthly_max below amount: no reload could ever run.
    expect(parseChange({ ...base, settings: { when_below: "10", amount: "50", monthly_max: "40" } })).toMatchObject({
      ok: false,
      reason: "invalid_field",
      field: "settings.monthly_max",
    });
  });

  it("keeps a purchase amount an exact decimal string and refuses anything else", () => {
    const base = { kind: "credit_purchase", org_id: "org_1", actor: "operator", at: AT, entry_id: "e1" };
    expect(parseChange({ ...base, reference: "po-7", amount: "100.000001" })).toMatchObject({
      ok: true,
      change: { amount: "100.000001", reference: "po-7" },
    });
    expect(parseChange({ ...base, reference: "po-7", amount: 100 })).toMatchObject({ ok: false, field: "amount" });
    expect(parseChange({ ...base, reference: "po-7", amount: "0" })).toMatchObject({ ok: false, field: "amount" });
    expect(parseChange({ ...base, reference: "po-7", amount: "1e3" })).toMatchObject({ ok: false, field: "amount" });
    expect(parseChange({ ...base, reference: "a/b", amount: "1" })).toMatchObject({ ok: false, field: "reference" });
  });

  it("never carries a webhook secret: unknown fields are dropped", () => {
    const parsed = parseChange({ kind: "webhook", org_id: "org_1", actor: "operator", at: AT, secret: "whsec_x" });
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(encodeChange(parsed.change)).toBe(
      '{"kind":"webhook","org_id":"org_1","actor":"operator","at":"2026-03-01T12:00:00.000Z"}',
    );
  });

  it("refuses an unknown kind, a bad key action, a bad timestamp and an org id that cannot be a key segment", () => {
    const base = { org_id: "org_1", actor: "operator", at: AT };
    expect(parseChange({ ...base, kind: "seats" })).toMatchObject({
      ok: false,
      reason: "invalid_field",
      field: "kind",
    });
    expect(parseChange({ ...base, kind: "api_key", key_id: "k1", action: "deleted" })).toMatchObject({
      ok: false,
      field: "action",
    });
    expect(parseChange({ ...base, kind: "webhook", at: "yesterday" })).toMatchObject({ ok: false, field: "at" });
    expect(parseChange({ ...base, kind: "webhook", org_id: "org/1" })).toMatchObject({ ok: false, field: "org_id" });
    expect(parseChange({ ...base, kind: "webhook", actor: "" })).toMatchObject({ ok: false, field: "actor" });
    expect(parseChange([base])).toMatchObject({ ok: false, reason: "invalid_encoding" });
  });

  it("the zod union accepts exactly what parseChange accepts", () => {
    const good = { kind: "api_key", org_id: "org_1", actor: "operator", at: AT, key_id: "k1", action: "revoked" };
    expect(changeSchema.safeParse(good).success).toBe(true);
    expect(changeSchema.safeParse({ ...good, action: "deleted" }).success).toBe(false);
  });
});

describe("compaction keys", () => {
  const at = AT;
  const actor = "operator";
  it("keeps one record per policy, settings and webhook of an org, every purchase and every key", () => {
    const cases: [Change, string][] = [
      [{ kind: "policy", org_id: "o1", actor, at, policy: {} as never }, "o1/policy"],
      [{ kind: "auto_reload", org_id: "o1", actor, at, settings: {} as never }, "o1/auto_reload"],
      [
        { kind: "credit_purchase", org_id: "o1", actor, at, entry_id: "e", reference: "po-9", amount: "1" },
        "o1/credit_purchase/po-9",
      ],
      [{ kind: "webhook", org_id: "o1", actor, at }, "o1/webhook"],
      [{ kind: "api_key", org_id: "o1", actor, at, key_id: "3f2a", action: "created" }, "o1/api_key/3f2a"],
    ];
    for (const [change, key] of cases) expect(controlKey(change)).toBe(key);
  });
});

describe("decodeRecord", () => {
  const webhook = { kind: "webhook", org_id: "org_1", actor: "operator", at: AT };

  it("reads a record written by encodeChange under controlKey back to the same change", () => {
    const parsed = parseChange({
      kind: "credit_purchase",
      org_id: "org_1",
      actor: "operator",
      at: AT,
      entry_id: "e1",
      reference: "po-1",
      amount: "12.5",
    });
    if (!parsed.ok) throw new Error("fixture");
    expect(decodeRecord(Buffer.from("org_1/credit_purchase/po-1"), Buffer.from(encodeChange(parsed.change)))).toEqual(
      parsed,
    );
  });

  it("names invalid_encoding for no value, bytes that are not UTF-8 JSON, and JSON that is not an object", () => {
    expect(decodeRecord(Buffer.from("org_1/webhook"), null)).toMatchObject({ ok: false, reason: "invalid_encoding" });
    expect(decodeRecord(Buffer.from("org_1/webhook"), Buffer.from([0xff, 0xfe]))).toMatchObject({
      ok: false,
      reason: "invalid_encoding",
    });
    expect(decodeRecord(Buffer.from("org_1/webhook"), Buffer.from("{not json"))).toMatchObject({
      reason: "invalid_encoding",
    });
    expect(record("org_1/webhook", "webhook")).toMatchObject({ ok: false, reason: "invalid_encoding" });
  });

  it("refuses a valid change under a key that is not its own (it would be compacted with other changes)", () => {
    expect(record("org_1/webhook", webhook)).toMatchObject({ ok: true });
    expect(record("org_2/webhook", webhook)).toMatchObject({ ok: false, reason: "invalid_field", field: "key" });
    expect(record(null, webhook)).toMatchObject({ ok: false, field: "key" });
  });
});

describe("version arithmetic", () => {
  it("is the offset + 1: the first record is version 1", () => {
    expect(versionOfOffset("0")).toBe(1);
    expect(versionOfOffset("41")).toBe(42);
    expect(versionOfOffset(9007199254740990n)).toBe(Number.MAX_SAFE_INTEGER);
    expect(offsetOfVersion(1)).toBe("0");
    expect(offsetOfVersion(42)).toBe("41");
  });

  it("refuses what is not a version or an offset a number cannot hold exactly", () => {
    expect(() => versionOfOffset("-1")).toThrow(RangeError);
    expect(() => versionOfOffset("9007199254740991")).toThrow(RangeError);
    expect(() => offsetOfVersion(0)).toThrow(RangeError);
    expect(() => offsetOfVersion(1.5)).toThrow(RangeError);
  });

  it("orders versions as the offsets, and maps back", () => {
    const offset = fc.bigInt({ min: 0n, max: BigInt(Number.MAX_SAFE_INTEGER) - 1n });
    fc.assert(
      fc.property(offset, offset, (a, b) => {
        expect(offsetOfVersion(versionOfOffset(a))).toBe(a.toString());
        expect(Math.sign(versionOfOffset(a) - versionOfOffset(b))).toBe(a < b ? -1 : a > b ? 1 : 0);
      }),
    );
  });
});

describe("contract, seat, limit request and invoice changes (SPEC §13, §8)", () => {
  const base = { org_id: "org_1", actor: "operator", at: AT };
  it("normalises a contract and names the field of a bad one", () => {
    const parsed = parseChange({
      ...base,
      kind: "contract",
      contract: { plan: "sales_assisted", term_start: "2026-01-01", seat_prices: { premium: "150.50", chat: "30" } },
    });
    expect(parsed).toEqual({
      ok: true,
      change: {
        ...base,
        kind: "contract",
        contract: {
          plan: "sales_assisted",
          term_start: "2026-01-01",
          seat_prices: { chat: "30", premium: "150.5" },
          discount_pct: "0",
        },
      },
    });
    const bad = (contract: object) => parseChange({ ...base, kind: "contract", contract });
    expect(bad({ plan: "free", term_start: "2026-01-01" })).toMatchObject({ field: "contract.plan" });
    expect(bad({ plan: "self_serve", term_start: "2026-02-30" })).toMatchObject({ field: "contract.term_start" });
    expect(bad({ plan: "self_serve", term_start: "2026-01-01", seat_prices: { gold: "1" } })).toMatchObject({
      ok: false,
      field: "contract.seat_prices.gold",
    });
    expect(bad({ plan: "self_serve", term_start: "2026-01-01", discount_pct: "100.5" })).toMatchObject({
      field: "contract.discount_pct",
    });
  });

  it("keys every seat assignment and every finalization apart, and a request by its id", () => {
    const seat = { ...base, kind: "seat", user_id: "u1", tier: "premium", effective_at: "2026-04-01T00:00:00.000Z" };
    const s = parseChange(seat);
    if (!s.ok) throw new Error(s.message);
    expect(controlKey(s.change)).toBe("org_1/seat/u1/2026-04-01T00:00:00.000Z");
    const f = parseChange({ ...base, kind: "invoice_final", period: "2026-10", finalization_id: "f1", number: "N" });
    if (!f.ok) throw new Error(f.message);
    expect(controlKey(f.change)).toBe("org_1/invoice_final/2026-10/f1");
    expect(parseChange({ ...seat, tier: "gold" })).toMatchObject({ ok: false, field: "tier" });
  });
});
