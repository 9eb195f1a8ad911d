import { Gauge, type Registry } from "prom-client";

/**
 * Messages between a consumer group's position and a partition's high watermark: one family for every consumer-group
 * service (pricing, aggregator, notifier), told apart by `group` and `topic`. A registry holds a name once, so the
 * first service of a process registers it and the others share it (`usagectl start` runs them all in one registry).
 */
export const CONSUMER_LAG_METRIC = "usage_consumer_lag_messages";

export function consumerLagGauge(registry: Registry): Gauge<"group" | "topic" | "partition"> {
  const existing = registry.getSingleMetric(CONSUMER_LAG_METRIC);
  if (existing) return existing as Gauge<"group" | "topic" | "partition">;
  return new Gauge({
    name: CONSUMER_LAG_METRIC,
    help: "Messages between a consumer group's position and the partition's high watermark, as of its last batch",
    labelNames: ["group", "topic", "partition"],
    registers: [registry],
  });
}
