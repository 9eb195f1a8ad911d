import { usageEventV1 } from "@usage/events";
import type { KafkaMessage } from "@usage/kafka";
import { createPricer, loadRateCard } from "@usage/pricing";
import { describe, expect, it } from "vitest";
import { createPriceStep } from "./step.js";

const DAY = 86_400_000;
const PUBLISHED = Date.parse("2026-11-20T12:00:00Z");
const event = {
  event_id: "0b7c7d6e-4f1a-4c2b-9d3e-5f6a7b8c9d0e",
  occurred_at: "2026-11-20T11:00:00.000Z",
  org_id: "org_1",
  user_id: "u1",
  user_email: null,
  account_uuid: null,
  request_id: null,
  region: null,
  seat_tier: "premium" as const,
  product: "chat" as const,
  model: "claude-haiku-4-5",
  input_tokens: 1_000_000,
  output_tokens: 1_000_000,
  cache_write_tokens: 0,
  cache_read_tokens: 0,
};

function message(value: Buffer | null, timestamp = PUBLISHED): KafkaMessage {
  return {
    key: Buffer.from("org_1"),
    value,
    timestamp: String(timestamp),
    attributes: 0,
    offset: "0",
    headers: {},
  } as KafkaMessage;
}

describe("price step", () => {
  it("prices a valid event", () => {
    const step = createPriceStep({
      price: createPricer(loadRateCard()),
      backfillDays: 35,
      now: () => PUBLISHED + 1000,
    });
    const out = step(message(usageEventV1.encode(event)));
    expect(out).toMatchObject({
      kind: "priced",
      event: { event_id: event.event_id, total_cost: "6", long_context: false },
    });
  });

  it("judges the time rules against the record's publish time, so a replay 40 days later reaches the same verdict", () => {
    const later = createPriceStep({
      price: createPricer(loadRateCard()),
      backfillDays: 35,
      now: () => PUBLISHED + 40 * DAY,
    });
    expect(later(message(usageEventV1.encode(event))).kind).toBe("priced");
    // Without a usable record timestamp the processing clock decides: then the event is outside the window.
    expect(later(message(usageEventV1.encode(event), 0))).toMatchObject({
      rejection: { code: "outside_backfill_window" },
    });
  });

  it("does not trust a record timestamp later than the processing clock", () => {
    const step = createPriceStep({ price: createPricer(loadRateCard()), backfillDays: 35, now: () => PUBLISHED - DAY });
    const tomorrow = { ...event, occurred_at: new Date(PUBLISHED).toISOString() };
    expect(step(message(usageEventV1.encode(tomorrow), PUBLISHED + DAY))).toMatchObject({
      rejection: { code: "future_timestamp" },
    });
  });

  it("turns undecodable bytes, bad fields and unknown models into rejections, not exceptions", () => {
    const step = createPriceStep({ price: createPricer(loadRateCard()), backfillDays: 35, now: () => PUBLISHED });
    expect(step(message(null))).toMatchObject({ rejection: { code: "invalid_encoding" } });
    expect(step(message(usageEventV1.encode({ ...event, user_id: "" })))).toMatchObject({
      rejection: { code: "invalid_field", field: "user_id" },
    });
    expect(step(message(usageEventV1.encode({ ...event, model: "claude-9" })))).toMatchObject({
      rejection: { code: "unknown_model" },
    });
  });
});
