/**
 * `usagectl run aggregator`: the aggregator and the HTTP API in one process. The API answers caps and allowance
 * from the aggregator's in-memory state, so the two are deployed together; scale out by partitions.
 */
import { randomBytes } from "node:crypto";
import { createAggregator, createAggregatorMetrics, loadAggregatorEnv } from "@usage/aggregator";
import { buildApi } from "@usage/api";
import { createClickHouse, migrate } from "@usage/clickhouse";
import { createKafka, ensureTopics } from "@usage/kafka";
import { createLogger, createShutdown, DEFAULT_KAFKA_BROKERS } from "@usage/runtime";
import { Registry } from "prom-client";

export async function runAggregator(): Promise<void> {
  const env = loadAggregatorEnv();
  const logger = createLogger({ level: env.LOG_LEVEL, name: "aggregator" });
  const shutdown = createShutdown({ timeoutMs: 10_000, log: (m) => logger.info(m) });
  const clickhouse = await createClickHouse({
    url: env.CLICKHOUSE_URL,
    user: env.CLICKHOUSE_USER,
    password: env.CLICKHOUSE_PASSWORD,
    database: env.CLICKHOUSE_DATABASE,
    dataDir: env.USAGE_DATA_DIR,
  });
  await migrate(clickhouse.client);
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
    onFatal: () => void shutdown.run("fatal consumer error").then(() => process.exit(1)),
  });
  const apiKey = env.USAGE_API_KEY ?? randomBytes(24).toString("base64url");
  const api = buildApi({ control: aggregator, clickhouse: clickhouse.client, registry, logger, operatorKey: apiKey });
  shutdown.add("api", () => api.close());
  shutdown.add("aggregator", () => aggregator.stop());
  shutdown.add("clickhouse", () => clickhouse.close());
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void shutdown.run(signal).then(() => process.exit(0)));
  }
  await aggregator.start();
  const url = await api.listen({ host: env.USAGE_API_HOST, port: env.USAGE_API_PORT });
  logger.info({ url, generatedKey: env.USAGE_API_KEY ? undefined : "printed on stderr" }, "API listening");
  if (!env.USAGE_API_KEY)
    process.stderr.write(`operator API key (generated; set USAGE_API_KEY to choose one): ${apiKey}\n`);
}
