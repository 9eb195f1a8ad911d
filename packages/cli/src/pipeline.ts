/**
 * The whole pipeline in one process (`usagectl start`): a local broker unless KAFKA_BROKERS is set, embedded
 * ClickHouse unless CLICKHOUSE_URL is set, migrations, topics, and every service. Stopping runs in order:
 * services (stop intake, drain) → ClickHouse → the broker this process started.
 */
import { join } from "node:path";
import { type ClickHouse, createClickHouse, migrate } from "@usage/clickhouse";
import { createKafka, ensureTopics, type Kafka, type LocalBroker, startLocalBroker } from "@usage/kafka";
import { buildPricingWorker, type PricingEnv, type PricingWorker } from "@usage/pricing-service";
import { createShutdown, type Logger, type Shutdown } from "@usage/runtime";
import { Registry } from "prom-client";

export interface Pipeline {
  kafka: Kafka;
  brokers: string[];
  clickhouse: ClickHouse;
  registry: Registry;
  pricing: PricingWorker;
  shutdown: Shutdown;
}

export async function startPipeline(deps: {
  env: PricingEnv;
  logger: Logger;
  progress: (line: string) => void;
}): Promise<Pipeline> {
  const { env, logger, progress } = deps;
  const shutdown = createShutdown({ timeoutMs: 9_000, log: (m) => logger.info(m) });
  const steps: { name: string; step: () => Promise<void> }[] = [];
  try {
    let broker: LocalBroker | undefined;
    let brokers = env.KAFKA_BROKERS;
    if (!brokers) {
      const t = performance.now();
      progress("starting the local Kafka broker (first run fetches it from Maven Central)…");
      broker = await startLocalBroker({ dataDir: join(env.USAGE_DATA_DIR, "kafka"), onOutput: (l) => logger.debug(l) });
      brokers = broker.brokers;
      progress(`Kafka broker ready on ${brokers.join(",")} in ${Math.round(performance.now() - t)} ms`);
    }
    if (broker) steps.unshift({ name: "kafka broker", step: broker.stop });

    const clickhouse = await createClickHouse({
      url: env.CLICKHOUSE_URL,
      user: env.CLICKHOUSE_USER,
      password: env.CLICKHOUSE_PASSWORD,
      database: env.CLICKHOUSE_DATABASE,
      dataDir: env.USAGE_DATA_DIR,
    });
    steps.unshift({ name: "clickhouse", step: () => clickhouse.close() });
    const applied = await migrate(clickhouse.client);
    progress(
      `ClickHouse ${clickhouse.kind === "embedded" ? `embedded at ${join(env.USAGE_DATA_DIR, "clickhouse")}` : `server ${env.CLICKHOUSE_URL}`}` +
        ` ready (database ${clickhouse.database}; ${applied.length} migration(s) applied now)`,
    );

    const kafka = createKafka({ brokers, clientId: "usage-pipeline", logger });
    await ensureTopics(kafka, { partitions: env.KAFKA_PARTITIONS });
    const registry = new Registry();
    const pricing = buildPricingWorker({ env, kafka, logger, registry });
    await pricing.start();
    steps.unshift({ name: "pricing worker", step: () => pricing.stop() });
    progress("pricing worker consuming usage.events.v1");

    for (const s of steps) shutdown.add(s.name, s.step);
    return { kafka, brokers, clickhouse, registry, pricing, shutdown };
  } catch (err) {
    // Undo what was started, newest first, so a failed start leaves no broker behind.
    for (const s of steps) await s.step().catch(() => undefined);
    throw err;
  }
}
