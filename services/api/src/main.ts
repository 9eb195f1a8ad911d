/**
 * The API service: config → wiring → run → stop. `startApiService` wires one stateless API instance: a read model
 * of spend.totals.v1 and the control plane, a control publisher for changes, ClickHouse for spend and analytics.
 * `usagectl run api`, `usagectl run aggregator` and `usagectl start` compose it.
 */
import type { ClickHouseClient } from "@usage/clickhouse";
import { type ControlFollower, createControlFollower, createControlPublisher } from "@usage/control";
import type { Kafka } from "@usage/kafka";
import type { Logger } from "@usage/runtime";
import type { SecretBox } from "@usage/webhooks";
import type { Registry } from "prom-client";
import { startInvoiceFinalizer } from "./invoices.js";
import { createSpendReadModel } from "./read-model.js";
import { buildApi } from "./server.js";

export interface ApiService {
  url: string;
  stop(): Promise<void>;
}

export async function startApiService(deps: {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  registry: Registry;
  operatorKey: string;
  /** Seals stored secrets (USAGE_SECRET_KEY, or the data dir's key). */
  secrets: SecretBox;
  /** USAGE_RATE_LIMIT_PER_MIN and USAGE_ALLOWANCE_RATE_LIMIT_PER_MIN. */
  rateLimits?: { perMinute: number; allowancePerMinute: number };
  /** USAGE_WEBHOOK_ALLOW_PRIVATE (default false). */
  allowPrivateWebhooks?: boolean;
  host: string;
  port: number;
  /** A follower the process already runs (shared with its aggregator members); else one of its own. */
  follower?: ControlFollower;
  /** Names the instance's throwaway consumer groups. */
  name?: string;
  now?: () => number;
  isHealthy?: () => boolean;
  /**
   * USAGE_INVOICE_GRACE_DAYS: invoices finalize on their own this many days after their month ends; undefined: this
   * instance does not finalize on its own (another does, or tests finalize by hand).
   */
  invoiceGraceDays?: number;
}): Promise<ApiService> {
  const ownFollower = deps.follower === undefined;
  const follower = deps.follower ?? createControlFollower({ kafka: deps.kafka, logger: deps.logger });
  if (ownFollower) await follower.start();
  const reader = createSpendReadModel({
    kafka: deps.kafka,
    logger: deps.logger,
    control: follower,
    now: deps.now,
    name: deps.name,
  });
  await reader.start();
  const publisher = createControlPublisher({ kafka: deps.kafka });
  await publisher.connect();
  const api = buildApi({
    reader,
    control: {
      publish: (change) => publisher.publish(change),
      waitFor: (version, timeoutMs) => follower.waitFor(version, timeoutMs),
    },
    keys: follower,
    billing: follower,
    clickhouse: deps.clickhouse,
    registry: deps.registry,
    logger: deps.logger,
    operatorKey: deps.operatorKey,
    allowPrivateWebhooks: deps.allowPrivateWebhooks,
    secrets: deps.secrets,
    rateLimits: deps.rateLimits,
    now: deps.now,
    isHealthy: deps.isHealthy,
  });
  const url = await api.listen({ host: deps.host, port: deps.port });
  const finalizer =
    deps.invoiceGraceDays === undefined
      ? undefined
      : startInvoiceFinalizer({
          clickhouse: deps.clickhouse,
          control: follower,
          writer: {
            publish: (change) => publisher.publish(change),
            waitFor: (version, timeoutMs) => follower.waitFor(version, timeoutMs),
          },
          now: deps.now ?? Date.now,
          logger: deps.logger,
          graceDays: deps.invoiceGraceDays,
        });
  return {
    url,
    async stop() {
      finalizer?.stop();
      await api.close();
      await publisher.close();
      await reader.stop();
      if (ownFollower) await follower.stop();
    },
  };
}
