/** `usagectl run notifier`: the notifier alone (signals → alerts → spend.alerts.v1 and webhooks). */
import { openClickHouse } from "@usage/clickhouse";
import { createKafka, ensureTopics, topicOptions } from "@usage/kafka";
import { createLogger, createShutdown, DEFAULT_KAFKA_BROKERS } from "@usage/runtime";
import { createSecretBox, loadSecretKey } from "@usage/webhooks";
import { Registry } from "prom-client";
import { loadNotifierEnv } from "./env.js";
import { buildNotifier } from "./service.js";
import { startStatusServer } from "./status-server.js";

export async function runNotifier(): Promise<void> {
  const env = loadNotifierEnv();
  // Before anything starts: a bad or missing USAGE_SECRET_KEY is a configuration error (exit 2).
  const secrets = createSecretBox(loadSecretKey(env));
  const logger = createLogger({ level: env.LOG_LEVEL, name: "notifier" });
  const shutdown = createShutdown({ timeoutMs: 10_000, log: (m) => logger.info(m) });
  const clickhouse = await openClickHouse(env);
  const kafka = createKafka({
    brokers: env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS,
    clientId: "usage-notifier",
    logger,
  });
  await ensureTopics(kafka, topicOptions(env));
  const registry = new Registry();
  const notifier = buildNotifier({
    env,
    secrets,
    kafka,
    clickhouse: clickhouse.client,
    logger,
    registry,
    // Exit non-zero so the supervisor restarts it; pending deliveries resume from the alerts table.
    onFatal: () => void shutdown.run("fatal consumer error").then(() => process.exit(1)),
  });
  if (env.USAGE_NOTIFIER_METRICS_PORT !== undefined) {
    const status = await startStatusServer({
      host: env.USAGE_API_HOST,
      port: env.USAGE_NOTIFIER_METRICS_PORT,
      registry,
      isHealthy: () => notifier.isHealthy(),
    });
    shutdown.add("status server", () => status.close());
    logger.info({ url: status.url }, "notifier /healthz and /metrics listening");
  }
  shutdown.add("notifier", () => notifier.stop());
  shutdown.add("clickhouse", () => clickhouse.close());
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void shutdown.run(signal).then(() => process.exit(0)));
  }
  await notifier.start();
}
