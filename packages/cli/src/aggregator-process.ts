/**
 * `usagectl run aggregator`: the aggregator service (USAGE_MEMBERS members, the control follower and recorder)
 * and, in the same process, one API instance on USAGE_API_PORT — convenient with the embedded engine, which belongs
 * to one process. The API reads only Kafka topics and ClickHouse: it holds nothing of the aggregator's.
 * `usagectl run api`: one API instance alone (needs CLICKHOUSE_URL to share the data with an aggregator process).
 */
import { randomBytes } from "node:crypto";
import { loadAggregatorEnv, startAggregatorService } from "@usage/aggregator";
import { startApiService } from "@usage/api";
import { openClickHouse } from "@usage/clickhouse";
import { createControlFollower } from "@usage/control";
import { createKafka, ensureTopics, topicOptions } from "@usage/kafka";
import { createLogger, createShutdown, DEFAULT_KAFKA_BROKERS } from "@usage/runtime";
import { createSecretBox, loadSecretKey } from "@usage/webhooks";
import { Registry } from "prom-client";

export async function runAggregator(): Promise<void> {
  await run("aggregator");
}

export async function runApi(): Promise<void> {
  await run("api");
}

async function run(name: "aggregator" | "api"): Promise<void> {
  const env = loadAggregatorEnv();
  const secrets = createSecretBox(loadSecretKey(env));
  const logger = createLogger({ level: env.LOG_LEVEL, name });
  const shutdown = createShutdown({ timeoutMs: 10_000, log: (m) => logger.info(m) });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void shutdown.run(signal).then(() => process.exit(0)));
  }
  const clickhouse = await openClickHouse(env);
  shutdown.add("clickhouse", () => clickhouse.close());
  const kafka = createKafka({ brokers: env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS, clientId: `usage-${name}`, logger });
  await ensureTopics(kafka, topicOptions(env));
  const registry = new Registry();
  const follower = createControlFollower({ kafka, logger });
  await follower.start();
  shutdown.addFirst("control follower", () => follower.stop());
  let isHealthy = () => true;
  if (name === "aggregator") {
    const aggregator = await startAggregatorService({
      env,
      kafka,
      clickhouse: clickhouse.client,
      logger,
      registry,
      follower,
      onFatal: () => void shutdown.run("fatal consumer error").then(() => process.exit(1)),
    });
    shutdown.addFirst("aggregator", () => aggregator.stop());
    isHealthy = () => aggregator.isHealthy();
  }
  const apiKey = env.USAGE_API_KEY ?? randomBytes(24).toString("base64url");
  const api = await startApiService({
    kafka,
    clickhouse: clickhouse.client,
    logger,
    registry,
    operatorKey: apiKey,
    allowPrivateWebhooks: env.USAGE_WEBHOOK_ALLOW_PRIVATE,
    rateLimits: { perMinute: env.USAGE_RATE_LIMIT_PER_MIN, allowancePerMinute: env.USAGE_ALLOWANCE_RATE_LIMIT_PER_MIN },
    secrets,
    host: env.USAGE_API_HOST,
    port: env.USAGE_API_PORT,
    follower,
    isHealthy,
    // Invoices finalize on their own only where the usage is: next to the aggregator, or on a shared server. An API
    // alone on an embedded engine of its own sees no usage and must not freeze empty invoices.
    invoiceGraceDays: name === "aggregator" || env.CLICKHOUSE_URL ? env.USAGE_INVOICE_GRACE_DAYS : undefined,
  });
  // Intake stops first: the API before whatever feeds it.
  shutdown.addFirst("api", () => api.stop());
  logger.info({ url: api.url }, "API listening");
  if (!env.USAGE_API_KEY)
    process.stderr.write(`operator API key (generated; set USAGE_API_KEY to choose one): ${apiKey}\n`);
}
