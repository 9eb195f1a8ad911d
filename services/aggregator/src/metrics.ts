import { CONSUMER_LAG_METRIC, consumerLagGauge, TOPICS } from "@usage/kafka";
import { Counter, Histogram, type Registry } from "prom-client";

/** The aggregator's consumer group unless USAGE_AGGREGATOR_GROUP says otherwise (env.ts). */
const DEFAULT_GROUP = "usage-aggregator";

/**
 * The aggregator's metrics in `registry` (once per registry: its members share them). `group` labels the consumer
 * lag of usage.priced.v1 (USAGE_AGGREGATOR_GROUP).
 */
export function createAggregatorMetrics(registry: Registry, options: { group?: string } = {}) {
  const group = options.group ?? DEFAULT_GROUP;
  const lag = consumerLagGauge(registry);
  const accessViolations = new Counter({
    name: "usage_aggregator_access_violations_total",
    help: "Priced usage events of a product the user may not use under the org's product_access policy (still priced and billed)",
    labelNames: ["product"],
    registers: [registry],
  });
  return {
    recorded: new Counter({
      name: "usage_aggregator_events_recorded_total",
      help: "Priced events written to usage_events",
      registers: [registry],
    }),
    duplicates: new Counter({
      name: "usage_aggregator_duplicates_total",
      help: "Priced events whose event_id was already recorded",
      registers: [registry],
    }),
    dedupLookups: new Counter({
      name: "usage_aggregator_dedup_lookups_total",
      help: "Event ids looked up in usage_events because the partition's id filter could not rule them out",
      registers: [registry],
    }),
    rejected: new Counter({
      name: "usage_aggregator_rejected_total",
      help: "Priced records sent to usage.dlq.v1, by reason (invalid_encoding, invalid_field)",
      labelNames: ["reason"],
      registers: [registry],
    }),
    abandoned: new Counter({
      name: "usage_aggregator_batches_abandoned_total",
      help: "Batches given up because the member no longer owned their partition (rebalanced, or evicted after a stall)",
      registers: [registry],
    }),
    rollupsRebuilt: new Counter({
      name: "usage_aggregator_rollups_rebuilt_total",
      help: "Batches whose spend_daily rollup a partition load rebuilt from usage_events (events stored, rollup not: a crash, a failed insert or a lost partition between the two)",
      registers: [registry],
    }),
    late: new Counter({
      name: "usage_aggregator_late_events_total",
      help: "Events recorded after their month closed",
      registers: [registry],
    }),
    signals: new Counter({
      name: "usage_cap_signals_total",
      help: "Cap signals emitted, by kind",
      labelNames: ["kind"],
      registers: [registry],
    }),
    accessViolations,
    /** `n` priced events of `product` that the user may not use under the org's product_access policy. */
    accessViolation(product: string, n = 1): void {
      if (n > 0) accessViolations.inc({ product }, n);
    },
    /** The consumer lag of a partition of usage.priced.v1 (usage_consumer_lag_messages, this group's series). */
    lag: {
      set(labels: { partition: string }, messages: number): void {
        lag.set({ group, topic: TOPICS.priced, partition: labels.partition }, messages);
      },
    },
    batchSeconds: new Histogram({
      name: "usage_aggregator_batch_seconds",
      help: "Time to record one batch (dedup check, inserts, signals)",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    visibleSeconds: new Histogram({
      name: "usage_priced_to_recorded_seconds",
      help: "From a priced event's Kafka timestamp to its spend counting toward caps",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}
export type AggregatorMetrics = ReturnType<typeof createAggregatorMetrics>;

export { CONSUMER_LAG_METRIC };
