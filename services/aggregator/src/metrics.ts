import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export function createAggregatorMetrics(registry: Registry) {
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
    lag: new Gauge({
      name: "usage_aggregator_consumer_lag",
      help: "Messages between the aggregator's position and the high watermark of usage.priced.v1",
      labelNames: ["partition"],
      registers: [registry],
    }),
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
