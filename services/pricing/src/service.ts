import type { Kafka } from "@usage/kafka";
import { createPricer, loadRateCard } from "@usage/pricing";
import type { Logger } from "@usage/runtime";
import type { Registry } from "prom-client";
import type { PricingEnv } from "./env.js";
import { createPricingMetrics, type PricingMetrics } from "./metrics.js";
import { createPriceStep } from "./step.js";
import { createPricingWorker, type PricingWorker } from "./worker.js";

// Members of one process share their registry's metrics (a registry holds each metric name once).
const metricsOf = new WeakMap<Registry, PricingMetrics>();

/** Wires a pricing worker from its configuration: the rate card file, the clock, metrics and Kafka. */
export function buildPricingWorker(deps: {
  env: Pick<PricingEnv, "USAGE_RATE_CARD" | "USAGE_PRICING_GROUP" | "USAGE_INSTANCE_ID" | "USAGE_BACKFILL_DAYS">;
  kafka: Kafka;
  logger: Logger;
  registry: Registry;
  now?: () => number;
  onFatal?: (err: Error) => void;
  /** This member's index in its process (logs). */
  member?: number;
}): PricingWorker {
  const card = loadRateCard(deps.env.USAGE_RATE_CARD);
  let metrics = metricsOf.get(deps.registry);
  if (!metrics) {
    metrics = createPricingMetrics(deps.registry);
    metricsOf.set(deps.registry, metrics);
  }
  return createPricingWorker({
    kafka: deps.kafka,
    logger: deps.member === undefined ? deps.logger : deps.logger.child({ member: deps.member }),
    metrics,
    priceStep: createPriceStep({
      price: createPricer(card),
      backfillDays: deps.env.USAGE_BACKFILL_DAYS,
      now: deps.now ?? Date.now,
    }),
    groupId: deps.env.USAGE_PRICING_GROUP,
    transactionalId: `pricing-${deps.env.USAGE_PRICING_GROUP}-${deps.env.USAGE_INSTANCE_ID}`,
    onFatal: deps.onFatal,
  });
}
