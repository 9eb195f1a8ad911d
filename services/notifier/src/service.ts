import type { ClickHouseClient } from "@usage/clickhouse";
import type { Kafka } from "@usage/kafka";
import type { Logger } from "@usage/runtime";
import type { SecretBox } from "@usage/webhooks";
import type { Registry } from "prom-client";
import type { NotifierEnv } from "./env.js";
import { notifierMetrics } from "./metrics.js";
import { createNotifier, type Notifier } from "./notifier.js";

/**
 * Wires one notifier member from its configuration; used by `usagectl run notifier` and the in-process pipeline.
 * Call it once per member to run several in one process — same env (so the same consumer group), same kafka,
 * clickhouse and registry, a distinct `member` each — then `start()` each and `stop()` each. Each member has its
 * own consumer and delivery loop; the metrics are registered once per registry and shared.
 */
export function buildNotifier(deps: {
  env: Pick<
    NotifierEnv,
    | "USAGE_NOTIFIER_GROUP"
    | "USAGE_WEBHOOK_RETRY_BASE_MS"
    | "USAGE_WEBHOOK_RETRY_MAX_MS"
    | "USAGE_WEBHOOK_MAX_ATTEMPTS"
    | "USAGE_WEBHOOK_TIMEOUT_MS"
    | "USAGE_NOTIFIER_POLL_MS"
    | "USAGE_WEBHOOK_ALLOW_PRIVATE"
  >;
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  registry: Registry;
  /** Opens the sealed webhook secrets (USAGE_SECRET_KEY, or the data dir's key). */
  secrets: SecretBox;
  /** Which member of this process (0, 1, …): in the logs and the `due` gauge. Default 0. */
  member?: number;
  now?: () => number;
  onFatal?: (err: Error) => void;
}): Notifier {
  const { env } = deps;
  return createNotifier({
    kafka: deps.kafka,
    clickhouse: deps.clickhouse,
    logger: deps.logger,
    metrics: notifierMetrics(deps.registry, { group: env.USAGE_NOTIFIER_GROUP }),
    groupId: env.USAGE_NOTIFIER_GROUP,
    retry: {
      baseMs: env.USAGE_WEBHOOK_RETRY_BASE_MS,
      maxMs: env.USAGE_WEBHOOK_RETRY_MAX_MS,
      maxAttempts: env.USAGE_WEBHOOK_MAX_ATTEMPTS,
    },
    deliveryTimeoutMs: env.USAGE_WEBHOOK_TIMEOUT_MS,
    pollMs: env.USAGE_NOTIFIER_POLL_MS,
    allowPrivateWebhooks: env.USAGE_WEBHOOK_ALLOW_PRIVATE,
    secrets: deps.secrets,
    now: deps.now,
    onFatal: deps.onFatal,
    member: String(deps.member ?? 0),
  });
}
