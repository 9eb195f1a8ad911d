/**
 * The whole pipeline in one process (`usagectl start`): a local broker unless KAFKA_BROKERS is set, embedded
 * ClickHouse unless CLICKHOUSE_URL is set, migrations, topics, and every service composed from its own main:
 * USAGE_MEMBERS members of each consumer-group service (pricing, aggregator, notifier) and as many API instances
 * (the first on USAGE_API_PORT, the next ones on the ports after it), all sharing the process's one embedded engine
 * (SPEC §12: it belongs to one process). Stopping runs in order: the APIs (intake) → pricing → aggregator members →
 * notifiers → ClickHouse, within the shutdown timeout → the broker this process started, always, even when a step
 * before it hangs (the broker outlives the process otherwise).
 */

import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { type AggregatorEnv, type AggregatorService, startAggregatorService } from "@usage/aggregator";
import { type ApiService, startApiService } from "@usage/api";
import { type ClickHouse, openClickHouse } from "@usage/clickhouse";
import { createControlFollower } from "@usage/control";
import { createKafka, ensureTopics, type Kafka, type LocalBroker, startLocalBroker, topicOptions } from "@usage/kafka";
import { buildNotifier, type Notifier, type NotifierEnv } from "@usage/notifier";
import { buildPricingWorker, type PricingEnv, type PricingWorker } from "@usage/pricing-service";
import { createShutdown, type Logger, type Shutdown } from "@usage/runtime";
import { createSecretBox, loadSecretKey } from "@usage/webhooks";
import { Registry } from "prom-client";

export interface Pipeline {
  kafka: Kafka;
  brokers: string[];
  clickhouse: ClickHouse;
  registry: Registry;
  pricing: PricingWorker[];
  aggregator: AggregatorService;
  notifiers: Notifier[];
  apis: ApiService[];
  apiUrl: string;
  apiKey: string;
  shutdown: Shutdown;
  /** One line per member: which partitions each consumer-group member owns now. */
  spread(): string[];
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
  const members = env.USAGE_MEMBERS;
  // Stored secrets are sealed with this key (USAGE_SECRET_KEY, else generated into the data dir).
  const secrets = createSecretBox(loadSecretKey(env));
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
    await ensureTopics(kafka, topicOptions(env));
    checkpoint();
    const registry = new Registry();

    // One control follower for the process: the aggregator members and every API instance read the same log.
    const follower = createControlFollower({ kafka, logger });
    await follower.start();
    steps.unshift({ name: "control follower", step: () => follower.stop() });

    const notifiers: Notifier[] = [];
    for (let i = 0; i < members; i++) {
      const n = buildNotifier({
        env,
        secrets,
        kafka,
        clickhouse: clickhouse.client,
        logger,
        registry,
        now: deps.now,
        member: i,
      });
      await n.start();
      notifiers.push(n);
    }
    steps.unshift({ name: "notifiers", step: async () => void (await Promise.all(notifiers.map((n) => n.stop()))) });
    checkpoint();
    progress(`notifier × ${members} consuming spend.signals.v1, publishing spend.alerts.v1, delivering webhooks`);

    const aggregator = await startAggregatorService({
      env,
      kafka,
      clickhouse: clickhouse.client,
      logger,
      registry,
      follower,
      now: deps.now,
    });
    steps.unshift({ name: "aggregator", step: () => aggregator.stop() });
    checkpoint();
    progress(`aggregator × ${members} consuming usage.priced.v1, writing ClickHouse, evaluating caps`);

    const pricing: PricingWorker[] = [];
    for (let i = 0; i < members; i++) {
      const instance = members === 1 ? env.USAGE_INSTANCE_ID : `${env.USAGE_INSTANCE_ID}-${i}`;
      const w = buildPricingWorker({
        env: { ...env, USAGE_INSTANCE_ID: instance },
        kafka,
        logger,
        registry,
        member: i,
      });
      await w.start();
      pricing.push(w);
    }
    steps.unshift({ name: "pricing", step: async () => void (await Promise.all(pricing.map((w) => w.stop()))) });
    checkpoint();
    progress(`pricing × ${members} consuming usage.events.v1`);

    const apiKey = env.USAGE_API_KEY ?? randomBytes(24).toString("base64url");
    const isHealthy = () =>
      pricing.every((w) => w.isHealthy()) && aggregator.isHealthy() && notifiers.every((n) => n.isHealthy());
    const apis: ApiService[] = [];
    for (let i = 0; i < members; i++) {
      apis.push(
        await startApiService({
          kafka,
          clickhouse: clickhouse.client,
          logger,
          registry,
          operatorKey: apiKey,
          allowPrivateWebhooks: env.USAGE_WEBHOOK_ALLOW_PRIVATE,
          rateLimits: {
            perMinute: env.USAGE_RATE_LIMIT_PER_MIN,
            allowancePerMinute: env.USAGE_ALLOWANCE_RATE_LIMIT_PER_MIN,
          },
          secrets,
          host: env.USAGE_API_HOST,
          port: env.USAGE_API_PORT + i,
          follower,
          name: `usage-api-${i}`,
          now: deps.now,
          isHealthy,
          // One finalizer per process is enough (finalization is first-record-wins across instances anyway).
          invoiceGraceDays: i === 0 ? env.USAGE_INVOICE_GRACE_DAYS : undefined,
        }),
      );
    }
    steps.unshift({ name: "api", step: async () => void (await Promise.all(apis.map((a) => a.stop()))) });
    progress(
      `API listening on ${apis.map((a) => a.url).join(", ")}${env.USAGE_API_KEY ? "" : ` — operator key (generated; set USAGE_API_KEY to choose one): ${apiKey}`}`,
    );

    checkpoint();
    for (const s of steps) shutdown.add(s.name, s.step);
    if (broker) shutdown.addFinal("kafka broker", broker.stop);
    const spread = () => {
      const line = (name: string, i: number, partitions: number[] | undefined) =>
        `${name} member ${i}: partitions ${partitions && partitions.length > 0 ? partitions.join(",") : "none"}`;
      return [
        ...pricing.map((w, i) => line("pricing", i, w.consumer.assignment().values().next().value)),
        ...aggregator.members.map((m, i) => line("aggregator", i, m.consumer.assignment().values().next().value)),
        ...notifiers.map((n, i) => line("notifier", i, n.consumer.assignment().values().next().value)),
      ];
    };
    return {
      kafka,
      brokers,
      clickhouse,
      registry,
      pricing,
      aggregator,
      notifiers,
      apis,
      apiUrl: apis[0]!.url,
      apiKey,
      shutdown,
      spread,
    };
  } catch (err) {
    // Undo what was started, newest first, so a failed start leaves no broker behind.
    for (const s of steps) await s.step().catch(() => undefined);
    await broker?.stop().catch(() => undefined);
    throw err;
  }
}
