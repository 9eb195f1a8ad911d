/**
 * `usagectl run aggregator`: the aggregator and the HTTP API in one process. The API answers caps and allowance
 * from the aggregator's in-memory state, so the two are deployed together; scale out by partitions.
 * `usagectl run api`: the HTTP API alone, over a view of the same state rebuilt from ClickHouse every second
 * (for API replicas apart from the aggregators; allowance is then up to a second staler).
 */
import { randomBytes } from "node:crypto";
import {
  type AggregatorEnv,
  createAggregator,
  createAggregatorMetrics,
  createSpendView,
  loadAggregatorEnv,
  type SpendControl,
} from "@usage/aggregator";
import { buildApi } from "@usage/api";
import { type ClickHouse, openClickHouse } from "@usage/clickhouse";
import { createKafka, ensureTopics } from "@usage/kafka";
import { createLogger, createShutdown, DEFAULT_KAFKA_BROKERS, type Logger, type Shutdown } from "@usage/runtime";
import { Registry } from "prom-client";

export async function runAggregator(): Promise<void> {
  const { env, logger, shutdown, clickhouse } = await prepare("aggregator");
  const kafka = createKafka({
    brokers: env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS,
    clientId: "usage-aggregator",
    logger,
  });
  await ensureTopics(kafka, { partitions: env.KAFKA_PARTITIONS });
  const registry = new Registry();
  const aggregator = createAggregator({
    kafka,
    clickhouse: clickhouse.client,
    logger,
    metrics: createAggregatorMetrics(registry),
    groupId: env.USAGE_AGGREGATOR_GROUP,
    backfillDays: env.USAGE_BACKFILL_DAYS,
    forecastMs: env.USAGE_FORECAST_INTERVAL_MS,
    onFatal: () => void shutdown.run("fatal consumer error").then(() => process.exit(1)),
  });
  shutdown.addFirst("aggregator", () => aggregator.stop());
  await aggregator.start();
  await serve({ env, logger, shutdown, clickhouse, control: aggregator, registry });
}

export async function runApi(): Promise<void> {
  const { env, logger, shutdown, clickhouse } = await prepare("api");
  const view = createSpendView({ clickhouse: clickhouse.client, logger, backfillDays: env.USAGE_BACKFILL_DAYS });
  shutdown.addFirst("spend view", () => view.stop());
  await view.start();
  await serve({ env, logger, shutdown, clickhouse, control: view, registry: new Registry() });
}

/** Configuration, logger, ClickHouse (migrated) and the shutdown sequence, which closes ClickHouse last. */
async function prepare(name: string) {
  const env = loadAggregatorEnv();
  const logger = createLogger({ level: env.LOG_LEVEL, name });
  const shutdown = createShutdown({ timeoutMs: 10_000, log: (m) => logger.info(m) });
  const clickhouse = await openClickHouse(env);
  shutdown.add("clickhouse", () => clickhouse.close());
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void shutdown.run(signal).then(() => process.exit(0)));
  }
  return { env, logger, shutdown, clickhouse };
}

async function serve(deps: {
  env: AggregatorEnv;
  logger: Logger;
  shutdown: Shutdown;
  clickhouse: ClickHouse;
  control: SpendControl;
  registry: Registry;
}): Promise<void> {
  const { env } = deps;
  const apiKey = env.USAGE_API_KEY ?? randomBytes(24).toString("base64url");
  const api = buildApi({
    control: deps.control,
    clickhouse: deps.clickhouse.client,
    registry: deps.registry,
    logger: deps.logger,
    operatorKey: apiKey,
  });
  // Intake stops first: the API before whatever feeds it.
  deps.shutdown.addFirst("api", () => api.close());
  const url = await api.listen({ host: env.USAGE_API_HOST, port: env.USAGE_API_PORT });
  deps.logger.info({ url }, "API listening");
  if (!env.USAGE_API_KEY)
    process.stderr.write(`operator API key (generated; set USAGE_API_KEY to choose one): ${apiKey}\n`);
}
