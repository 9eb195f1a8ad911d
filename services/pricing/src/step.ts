import { decode, type PricedUsageEvent, type Rejection, usageEventV1, validateUsageEvent } from "@usage/events";
import type { KafkaMessage } from "@usage/kafka";
import type { Pricer } from "@usage/pricing";

export type PriceOutcome = { kind: "priced"; event: PricedUsageEvent } | { kind: "rejected"; rejection: Rejection };

export interface PriceStepDeps {
  price: Pricer;
  backfillDays: number;
  /** The processing clock; only used when a record carries no usable timestamp. */
  now: () => number;
}

/**
 * decode → validate (SPEC §3) → price (SPEC §4). Expected failures are values on their way to the DLQ, never
 * exceptions, so one bad message cannot fail the batch it is in.
 *
 * The time rules (future, backfill window) are judged against the record's Kafka timestamp — when the event was
 * published — not the processing clock, so a replay of the topic days later reaches the same verdicts. A record
 * timestamp later than the processing clock is not trusted.
 */
export function createPriceStep(deps: PriceStepDeps): (message: KafkaMessage) => PriceOutcome {
  return (message) => {
    const decoded = decode(message.value, usageEventV1);
    if (!decoded.ok) {
      return { kind: "rejected", rejection: { code: "invalid_encoding", message: decoded.message } };
    }
    const now = deps.now();
    const published = Number(message.timestamp);
    const judgedAt = Number.isFinite(published) && published > 0 ? Math.min(published, now) : now;
    const valid = validateUsageEvent(decoded.value, { now: judgedAt, backfillDays: deps.backfillDays });
    if (!valid.ok) return { kind: "rejected", rejection: valid.rejection };
    const priced = deps.price(valid.value);
    if (!priced.ok) return { kind: "rejected", rejection: priced.rejection };
    return { kind: "priced", event: priced.value };
  };
}
