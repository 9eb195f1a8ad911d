/**
 * The whole pipeline in one process (`usagectl start`): a local broker unless KAFKA_BROKERS is set, embedded
 * ClickHouse unless CLICKHOUSE_URL is set, migrations, topics, and every service. Stopping runs in order:
 * services (stop intake, drain) → ClickHouse, within the shutdown timeout → the broker this process started, always,
 * even when a step before it hangs (the broker outlives the process otherwise).
 */

import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { type Aggregator, type AggregatorEnv, createAggregator, createAggregatorMetrics } from "@usage/aggregator";
import { buildApi } from "@usage/api";
import { type ClickHouse, openClickHouse } from "@usage/clickhouse";
import { createKafka, ensureTopics, type Kafka, type LocalBroker, startLocalBroker } from "@usage/kafka";
import { buildNotifier, type NotifierEnv } from "@usage/notifier";
import { buildPricingWorker, type PricingEnv, type PricingWorker } from "@usage/pricing-service";
import { createShutdown, type Logger, type Shutdown } from "@usage/runtime";
import { Registry } from "prom-client";

export interface Pipeline {
  kafka: Kafka;
  brokers: string[];
  clickhouse: ClickHouse;
  registry: Registry;
  pricing: PricingWorker;
  aggregator: Aggregator;
  apiUrl: string;
  apiKey: string;
  shutdown: Shutdown;
}

export type PipelineEnv = PricingEnv & AggregatorEnv & NotifierEnv;

export async function startPipeline(deps: {
  env: PipelineEnv;
  logger: Logger;
  progress: (line: string) => void;
  now?: () => number;
  /** Aborting stops the start: what was started is stopped (the broker too) and the start rejects. */
  signal?: AbortSignal;
}): Promise<Pipeline> {
  const { env, logger, progress } = deps;
  const checkpoint = () => deps.signal?.throwIfAborted();
  const shutdown = createShutdown({ timeoutMs: 9_000, log: (m) => logger.info(m) });
  const steps: { name: string; step: () => Promise<void> }[] = [];
  let broker: LocalBroker | undefined;
  try {
    let brokers = env.KAFKA_BROKERS;
    if (!brokers) {
      const t = performance.now();
      progress("starting the local Kafka broker (first run fetches it from Maven Central)…");
      broker = await startLocalBroker({
        dataDir: join(env.USAGE_DATA_DIR, "kafka"),
        port: env.USAGE_LOCAL_KAFKA_PORT,
        onOutput: (l) => logger.debug(l),
        signal: deps.signal,
      });
      brokers = broker.brokers;
      progress(`Kafka broker ready on ${brokers.join(",")} in ${Math.round(performance.now() - t)} ms`);
    }

    checkpoint();
    const clickhouse = await openClickHouse(env);
    steps.unshift({ name: "clickhouse", step: () => clickhouse.close() });
    const applied = clickhouse.applied;
    progress(
      `ClickHouse ${clickhouse.kind === "embedded" ? `embedded at ${join(env.USAGE_DATA_DIR, "clickhouse")}` : `server ${env.CLICKHOUSE_URL}`}` +
        ` ready (database ${clickhouse.database}; ${applied.length} migration(s) applied now)`,
    );

    const kafka = createKafka({ brokers, clientId: "usage-pipeline", logger });
    await ensureTopics(kafka, { partitions: env.KAFKA_PARTITIONS });
    checkpoint();
    const registry = new Registry();
    const pricing = buildPricingWorker({ env, kafka, logger, registry });
    await pricing.start();
    steps.unshift({ name: "pricing worker", step: () => pricing.stop() });
    checkpoint();
    progress("pricing worker consuming usage.events.v1");

    const aggregator = createAggregator({
      kafka,
      clickhouse: clickhouse.client,
      logger,
      metrics: createAggregatorMetrics(registry),
      groupId: env.USAGE_AGGREGATOR_GROUP,
      backfillDays: env.USAGE_BACKFILL_DAYS,
      forecastMs: env.USAGE_FORECAST_INTERVAL_MS,
      now: deps.now,
    });
    await aggregator.start();
    steps.unshift({ name: "aggregator", step: () => aggregator.stop() });
    checkpoint();
    progress("aggregator consuming usage.priced.v1, writing ClickHouse, evaluating caps");

    const notifier = buildNotifier({ env, kafka, clickhouse: clickhouse.client, logger, registry, now: deps.now });
    await notifier.start();
    steps.unshift({ name: "notifier", step: () => notifier.stop() });
    checkpoint();
    progress("notifier consuming spend.signals.v1, publishing spend.alerts.v1, delivering webhooks");

    const apiKey = env.USAGE_API_KEY ?? randomBytes(24).toString("base64url");
    const api = buildApi({
      control: aggregator,
      clickhouse: clickhouse.client,
      registry,
      logger,
      operatorKey: apiKey,
      now: deps.now,
      isHealthy: () => pricing.isHealthy() && aggregator.isHealthy() && notifier.isHealthy(),
    });
    const apiUrl = await api.listen({ host: env.USAGE_API_HOST, port: env.USAGE_API_PORT });
    steps.unshift({ name: "api", step: () => api.close() });
    progress(
      `API listening on ${apiUrl}${env.USAGE_API_KEY ? "" : ` — operator key (generated; set USAGE_API_KEY to choose one): ${apiKey}`}`,
    );

    checkpoint();
    for (const s of steps) shutdown.add(s.name, s.step);
    if (broker) shutdown.addFinal("kafka broker", broker.stop);
    return { kafka, brokers, clickhouse, registry, pricing, aggregator, apiUrl, apiKey, shutdown };
  } catch (err) {
    // Undo what was started, newest first, so a failed start leaves no broker behind.
    for (const s of steps) await s.step().catch(() => undefined);
    await broker?.stop().catch(() => undefined);
    throw err;
  }
}
