/** `usagectl run pricing`: the pricing worker alone, for production deployments. */
import { createKafka, ensureTopics, topicOptions } from "@usage/kafka";
import { createLogger, createShutdown, DEFAULT_KAFKA_BROKERS } from "@usage/runtime";
import { Registry } from "prom-client";
import { loadPricingEnv } from "./env.js";
import { buildPricingWorker } from "./service.js";

export async function runPricing(): Promise<void> {
  const env = loadPricingEnv();
  const logger = createLogger({ level: env.LOG_LEVEL, name: "pricing" });
  const kafka = createKafka({ brokers: env.KAFKA_BROKERS ?? DEFAULT_KAFKA_BROKERS, clientId: "usage-pricing", logger });
  await ensureTopics(kafka, topicOptions(env));
  const shutdown = createShutdown({ timeoutMs: 10_000, log: (m) => logger.info(m) });
  const registry = new Registry();
  // USAGE_MEMBERS members in this process, each with a stable transactional id of its own (instance id + index),
  // so a restarted process fences the open transactions of its predecessor member by member.
  const workers = Array.from({ length: env.USAGE_MEMBERS }, (_, i) =>
    buildPricingWorker({
      env: {
        ...env,
        USAGE_INSTANCE_ID: env.USAGE_MEMBERS === 1 ? env.USAGE_INSTANCE_ID : `${env.USAGE_INSTANCE_ID}-${i}`,
      },
      kafka,
      logger,
      registry,
      member: i,
      // Exit non-zero so the supervisor restarts the worker from its last committed offset.
      onFatal: () => void shutdown.run("fatal consumer error").then(() => process.exit(1)),
    }),
  );
  shutdown.add("pricing workers", async () => void (await Promise.all(workers.map((w) => w.stop()))));
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => void shutdown.run(signal).then(() => process.exit(0)));
  }
  for (const w of workers) await w.start();
}
