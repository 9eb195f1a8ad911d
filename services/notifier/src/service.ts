import type { ClickHouseClient } from "@usage/clickhouse";
import type { Kafka } from "@usage/kafka";
import type { Logger } from "@usage/runtime";
import type { Registry } from "prom-client";
import type { NotifierEnv } from "./env.js";
import { createNotifierMetrics } from "./metrics.js";
import { createNotifier, type Notifier } from "./notifier.js";

/** Wires a notifier from its configuration; used by `usagectl run notifier` and the in-process pipeline. */
export function buildNotifier(deps: {
  env: Pick<
    NotifierEnv,
    | "USAGE_NOTIFIER_GROUP"
    | "USAGE_WEBHOOK_RETRY_BASE_MS"
    | "USAGE_WEBHOOK_RETRY_MAX_MS"
    | "USAGE_WEBHOOK_MAX_ATTEMPTS"
    | "USAGE_WEBHOOK_TIMEOUT_MS"
    | "USAGE_NOTIFIER_POLL_MS"
  >;
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  registry: Registry;
  now?: () => number;
  onFatal?: (err: Error) => void;
}): Notifier {
  const { env } = deps;
  return createNotifier({
    kafka: deps.kafka,
    clickhouse: deps.clickhouse,
    logger: deps.logger,
    metrics: createNotifierMetrics(deps.registry),
    groupId: env.USAGE_NOTIFIER_GROUP,
    retry: {
      baseMs: env.USAGE_WEBHOOK_RETRY_BASE_MS,
      maxMs: env.USAGE_WEBHOOK_RETRY_MAX_MS,
      maxAttempts: env.USAGE_WEBHOOK_MAX_ATTEMPTS,
    },
    deliveryTimeoutMs: env.USAGE_WEBHOOK_TIMEOUT_MS,
    pollMs: env.USAGE_NOTIFIER_POLL_MS,
    now: deps.now,
    onFatal: deps.onFatal,
  });
}
