import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { RejectCode } from "./model.js";
import {
  parseTimestamp,
  passesFieldRules,
  usageEventJsonSchema,
  validateJsonLine,
  validateUsageEvent,
} from "./validate.js";

const NOW = Date.parse("2026-11-20T12:00:00.000Z");
const DAY = 86_400_000;

const good = {
  event_id: "3F1E4A52-9C1B-4D7E-8A3F-2B6C9D0E1F23",
  occurred_at: "2026-11-20T11:59:00Z",
  org_id: "org_1",
  user_id: "u1",
  seat_tier: "premium",
  product: "cowork",
  model: "claude-opus-4-5",
  input_tokens: 10,
  output_tokens: 20,
  cache_write_tokens: 0,
  cache_read_tokens: 0,
};

function codeOf(input: unknown, backfillDays?: number): { code?: RejectCode; field?: string } {
  const r = validateUsageEvent(input, { now: NOW, backfillDays });
  return r.ok ? {} : { code: r.rejection.code, field: r.rejection.field };
}

describe("validateUsageEvent", () => {
  it("accepts a valid event and normalises id case, timestamp and optional fields", () => {
    const r = validateUsageEvent(good, { now: NOW });
    expect(r).toEqual({
      ok: true,
      value: {
        ...good,
        event_id: "3f1e4a52-9c1b-4d7e-8a3f-2b6c9d0e1f23",
        occurred_at: "2026-11-20T11:59:00.000Z",
        user_email: null,
        account_uuid: null,
        request_id: null,
        region: null,
      },
    });
  });

  it.each([
    ["event_id", { event_id: undefined }],
    ["event_id", { event_id: "123" }],
    ["event_id", { event_id: 42 }],
    ["occurred_at", { occurred_at: undefined }],
    ["occurred_at", { occurred_at: "2026-11-20 11:59:00" }],
    ["occurred_at", { occurred_at: "2026-11-20T11:59:00+01:00" }],
    ["occurred_at", { occurred_at: "2026-02-30T00:00:00Z" }],
    ["org_id", { org_id: "" }],
    ["org_id", { org_id: "x".repeat(129) }],
    ["user_id", { user_id: undefined }],
    ["user_id", { user_id: "" }],
    ["user_email", { user_email: 7 }],
    ["region", { region: "r".repeat(513) }],
    ["seat_tier", { seat_tier: "gold" }],
    ["seat_tier", { seat_tier: undefined }],
    ["product", { product: "api" }],
    ["model", { model: "" }],
    ["input_tokens", { input_tokens: -1 }],
    ["output_tokens", { output_tokens: 1.5 }],
    ["cache_write_tokens", { cache_write_tokens: 1_000_000_001 }],
    ["cache_read_tokens", { cache_read_tokens: "5" }],
    ["input_tokens", { input_tokens: undefined }],
  ])("rejects a bad %s as invalid_field naming it", (field, patch) => {
    expect(codeOf({ ...good, ...patch })).toEqual({ code: "invalid_field", field });
  });

  it("accepts the token bounds 0 and 1,000,000,000 and ids of exactly 128 characters", () => {
    expect(
      validateUsageEvent(
        { ...good, input_tokens: 0, output_tokens: 1_000_000_000, org_id: "o".repeat(128) },
        { now: NOW },
      ).ok,
    ).toBe(true);
  });

  it("rejects non-objects as invalid_encoding", () => {
    expect(codeOf([good])).toEqual({ code: "invalid_encoding", field: undefined });
    expect(codeOf("event")).toEqual({ code: "invalid_encoding", field: undefined });
    expect(codeOf(null)).toEqual({ code: "invalid_encoding", field: undefined });
  });

  it("allows up to 5 minutes in the future and rejects beyond as future_timestamp", () => {
    expect(codeOf({ ...good, occurred_at: new Date(NOW + 5 * 60_000).toISOString() })).toEqual({});
    expect(codeOf({ ...good, occurred_at: new Date(NOW + 5 * 60_000 + 1).toISOString() })).toEqual({
      code: "future_timestamp",
      field: undefined,
    });
  });

  it("applies the backfill window, 35 days by default and configurable", () => {
    expect(codeOf({ ...good, occurred_at: new Date(NOW - 35 * DAY).toISOString() })).toEqual({});
    expect(codeOf({ ...good, occurred_at: new Date(NOW - 35 * DAY - 1).toISOString() })).toEqual({
      code: "outside_backfill_window",
      field: undefined,
    });
    expect(codeOf({ ...good, occurred_at: new Date(NOW - 10 * DAY).toISOString() }, 7)).toEqual({
      code: "outside_backfill_window",
      field: undefined,
    });
  });

  it("names the event id in a rejection when it could be read", () => {
    const r = validateUsageEvent({ ...good, product: "api" }, { now: NOW });
    expect(r.ok ? undefined : r.rejection.event_id).toBe(good.event_id);
  });
});

describe("validateJsonLine", () => {
  it("rejects text that is not JSON as invalid_encoding", () => {
    const r = validateJsonLine("{nope", { now: NOW });
    expect(r.ok ? undefined : r.rejection.code).toBe("invalid_encoding");
  });
  it("validates a JSON line", () => {
    expect(validateJsonLine(JSON.stringify(good), { now: NOW }).ok).toBe(true);
  });
});

describe("parseTimestamp", () => {
  it("reads RFC 3339 UTC with and without fractions, truncating below a millisecond", () => {
    expect(parseTimestamp("2026-11-20T11:59:00Z")).toBe(Date.parse("2026-11-20T11:59:00.000Z"));
    expect(parseTimestamp("2026-11-20T11:59:00.1234567Z")).toBe(Date.parse("2026-11-20T11:59:00.123Z"));
    expect(parseTimestamp("2026-11-20T11:59:00+00:00")).toBe(Date.parse("2026-11-20T11:59:00.000Z"));
    expect(parseTimestamp("2026-11-20T25:00:00Z")).toBeUndefined();
    expect(parseTimestamp("yesterday")).toBeUndefined();
  });
});

describe("the plain checks in front of zod", () => {
  // Each field drawn from values of its own kind, values at and past its limits, and anything at all; an input the
  // plain checks pass must be one zod accepts, with the same event out, and the other way round.
  const anyOf = (...values: unknown[]) => fc.constantFrom(...values);
  const text = (n: number) => "x".repeat(n);
  const tokens = fc.oneof(
    fc.integer({ min: 0, max: 1_000_000_000 }),
    anyOf(-1, 1_000_000_001, 1.5, Number.NaN, Number.POSITIVE_INFINITY, -0, "5", null, undefined, 2 ** 53),
  );
  const id = fc.oneof(fc.string({ maxLength: 3 }), anyOf("", text(128), text(129), 7, null, undefined));
  const optional = fc.oneof(anyOf(null, undefined, "", "eu", text(512), text(513), 1, false), fc.string());
  const field = {
    event_id: fc.oneof(
      fc.uuid().map((u) => (u.length % 2 ? u.toUpperCase() : u)),
      anyOf("123", "", 42, null, "3f1e4a52-9c1b-4d7e-8a3f-2b6c9d0e1f2"),
    ),
    occurred_at: fc.oneof(
      fc
        .date({ min: new Date(NOW - 40 * DAY), max: new Date(NOW + DAY), noInvalidDate: true })
        .map((d) => d.toISOString()),
      anyOf(
        "2026-02-30T00:00:00Z",
        "2026-11-20T11:59:00+00:00",
        "2026-11-20 11:59:00",
        "2026-11-20T11:59:00.1234567z",
        5,
        null,
      ),
    ),
    org_id: id,
    user_id: id,
    user_email: optional,
    account_uuid: optional,
    request_id: optional,
    region: optional,
    seat_tier: anyOf("chat", "chat_code", "standard", "premium", "enterprise", "gold", "", 1, undefined),
    product: anyOf("chat", "claude_code", "cowork", "api", null),
    model: id,
    input_tokens: tokens,
    output_tokens: tokens,
    cache_write_tokens: tokens,
    cache_read_tokens: tokens,
  };
  const mostlyGood = fc.record(field, { requiredKeys: [] });
  const inputs = fc.oneof(
    { weight: 6, arbitrary: mostlyGood },
    { weight: 1, arbitrary: mostlyGood.map((o) => Object.assign(new Map(), o)) },
    { weight: 1, arbitrary: mostlyGood.map((o) => Object.assign(Object.create({ extra: 1 }), o)) },
    { weight: 1, arbitrary: fc.anything() },
    // A valid event's fields on what zod does not take for an object, and on an object with a prototype.
    {
      weight: 1,
      arbitrary: fc
        .constantFrom<() => object>(
          () => new Map(),
          () => new Set(),
          () => new Date(NOW),
          // biome-ignore lint/suspicious/noThenProperty: a thenable on purpose: zod does not take one for an object
          () => ({ then: () => undefined, catch: () => undefined }),
          () => Object.create({ inherited: true }),
        )
        .map((make) => Object.assign(make(), good)),
    },
  );

  it("pass exactly the inputs zod accepts, and the event out is the one zod's data makes", () => {
    fc.assert(
      fc.property(inputs, (input) => {
        const zod = usageEventJsonSchema.safeParse(input);
        const o = input as Record<string, unknown>;
        const plain =
          typeof input === "object" &&
          input !== null &&
          !Array.isArray(input) &&
          passesFieldRules(o) &&
          parseTimestamp(o.occurred_at as string) !== undefined;
        expect(plain).toBe(zod.success);
        const r = validateUsageEvent(input, { now: NOW, backfillDays: 35 });
        if (!zod.success) {
          expect(r.ok).toBe(false);
          if (!r.ok)
            expect(r.rejection.code).toBe(
              typeof input === "object" && input !== null && !Array.isArray(input)
                ? "invalid_field"
                : "invalid_encoding",
            );
          return;
        }
        const d = zod.data;
        const at = parseTimestamp(d.occurred_at)!;
        if (at > NOW + 5 * 60_000 || at < NOW - 35 * DAY) {
          expect(r.ok).toBe(false);
          return;
        }
        expect(r).toEqual({
          ok: true,
          value: {
            event_id: d.event_id.toLowerCase(),
            occurred_at: new Date(at).toISOString(),
            org_id: d.org_id,
            user_id: d.user_id,
            user_email: d.user_email ?? null,
            account_uuid: d.account_uuid ?? null,
            request_id: d.request_id ?? null,
            region: d.region ?? null,
            seat_tier: d.seat_tier,
            product: d.product,
            model: d.model,
            input_tokens: d.input_tokens,
            output_tokens: d.output_tokens,
            cache_write_tokens: d.cache_write_tokens,
            cache_read_tokens: d.cache_read_tokens,
          },
        });
      }),
      { numRuns: 5000 },
    );
  });
});
