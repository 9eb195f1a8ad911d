import { CONSUMER_LAG_METRIC, consumerLagGauge } from "@usage/kafka";
import { Counter, Gauge, type Registry } from "prom-client";

export interface PricingMetrics {
  eventsIn: Counter;
  priced: Counter;
  rejected: Counter<"reason">;
  duplicates: Counter<"stage">;
  lag: Gauge<"group" | "topic" | "partition">;
  batchSeconds: Gauge;
}

export function createPricingMetrics(registry: Registry): PricingMetrics {
  const existing = registry.getSingleMetric("usage_events_in_total");
  if (existing) throw new Error("pricing metrics are already registered in this registry");
  return {
    eventsIn: new Counter({
      name: "usage_events_in_total",
      help: "Usage events read from usage.events.v1",
      registers: [registry],
    }),
    priced: new Counter({
      name: "usage_events_priced_total",
      help: "Usage events priced and published",
      registers: [registry],
    }),
    rejected: new Counter({
      name: "usage_events_rejected_total",
      help: "Usage events sent to usage.dlq.v1, by reason code",
      labelNames: ["reason"],
      registers: [registry],
    }),
    duplicates: new Counter({
      name: "usage_events_duplicate_total",
      help: "Usage events whose event_id was already seen, by pipeline stage",
      labelNames: ["stage"],
      registers: [registry],
    }),
    lag: consumerLagGauge(registry),
    batchSeconds: new Gauge({
      name: "usage_pricing_last_batch_seconds",
      help: "Duration of the last priced batch, transaction included",
      registers: [registry],
    }),
  };
}

export { CONSUMER_LAG_METRIC };
