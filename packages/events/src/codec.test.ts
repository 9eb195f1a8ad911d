import { describe, expect, it } from "vitest";
import { decode, knownSchemas, pricedUsageEventV1, usageEventV1 } from "./codec.js";
import { crc64Avro } from "./fingerprint.js";
import type { PricedUsageEvent, UsageEvent } from "./model.js";

const event: UsageEvent = {
  event_id: "3f1e4a52-9c1b-4d7e-8a3f-2b6c9d0e1f23",
  occurred_at: "2026-11-20T10:15:30.123Z",
  org_id: "org_1",
  user_id: "u1",
  user_email: "u1@example.com",
  account_uuid: null,
  request_id: "req_1",
  region: null,
  seat_tier: "chat_code",
  product: "claude_code",
  model: "claude-sonnet-4-5-20250929",
  input_tokens: 1_000_000_000,
  output_tokens: 0,
  cache_write_tokens: 12,
  cache_read_tokens: 345_678,
};

describe("Avro single-object codec", () => {
  it("round-trips a usage event with every field equal", () => {
    const bytes = usageEventV1.encode(event);
    expect(bytes.subarray(0, 2)).toEqual(Buffer.from([0xc3, 0x01]));
    expect(bytes.subarray(2, 10)).toEqual(usageEventV1.fingerprint);
    const decoded = decode(bytes);
    expect(decoded).toEqual({ ok: true, schema: "usage_event_v1", value: event });
  });

  it("round-trips a priced event, money as exact strings", () => {
    const priced: PricedUsageEvent = {
      ...event,
      rate_card_version: "2025-11-01",
      long_context: true,
      prompt_tokens: 1_000_345_690,
      input_cost: "6000",
      output_cost: "0",
      cache_write_cost: "0.00009",
      cache_read_cost: "0.2074068",
      total_cost: "6000.2074968",
    };
    const decoded = decode(pricedUsageEventV1.encode(priced), pricedUsageEventV1);
    expect(decoded).toEqual({ ok: true, schema: "priced_usage_event_v1", value: priced });
  });

  it("tells v1 raw and priced schemas apart by fingerprint", () => {
    expect(usageEventV1.fingerprint.equals(pricedUsageEventV1.fingerprint)).toBe(false);
    const result = decode(
      pricedUsageEventV1.encode({
        ...event,
        rate_card_version: "v",
        long_context: false,
        prompt_tokens: 0,
        input_cost: "0",
        output_cost: "0",
        cache_write_cost: "0",
        cache_read_cost: "0",
        total_cost: "0",
      }),
      usageEventV1,
    );
    expect(result).toEqual({ ok: false, message: "expected schema usage_event_v1, got priced_usage_event_v1" });
    expect(Object.keys(knownSchemas()).sort()).toEqual(["priced_usage_event_v1", "usage_event_v1"]);
  });

  it("refuses empty, short, unmarked, unknown-schema and truncated values", () => {
    const bytes = usageEventV1.encode(event);
    expect(decode(null)).toMatchObject({ ok: false, message: expect.stringContaining("empty") });
    expect(decode(Buffer.from([0xc3, 0x01, 0]))).toMatchObject({
      ok: false,
      message: expect.stringContaining("shorter"),
    });
    expect(decode(Buffer.from(JSON.stringify(event)))).toMatchObject({
      ok: false,
      message: expect.stringContaining("marker"),
    });
    const unknown = Buffer.from(bytes);
    unknown.fill(0xab, 2, 10);
    expect(decode(unknown)).toMatchObject({
      ok: false,
      message: expect.stringContaining("unknown schema fingerprint abababababababab"),
    });
    expect(decode(bytes.subarray(0, bytes.length - 3))).toMatchObject({
      ok: false,
      message: expect.stringContaining("does not decode"),
    });
  });
});

describe("CRC-64-AVRO", () => {
  it('matches the reference fingerprint of the canonical form "null"', () => {
    // The Rabin fingerprint of the canonical form `"null"` as given by the reference implementations.
    expect(crc64Avro('"null"').readBigUInt64LE()).toBe(0x63dd24e7cc258f8an);
  });

  it("differs for different schemas", () => {
    expect(crc64Avro('"int"').equals(crc64Avro('"long"'))).toBe(false);
  });
});
