/**
 * One API instance as deployed, for tests: the control plane's follower, the spend read model (spend.totals.v1) and
 * a control publisher over the test broker, around `buildApi`. Nothing shared with another instance but the topics.
 */
import type { ClickHouseClient } from "@usage/clickhouse";
import { createControlFollower, createControlPublisher } from "@usage/control";
import type { Kafka } from "@usage/kafka";
import type { Logger } from "@usage/runtime";
import { Registry } from "prom-client";
import { createSpendReadModel } from "../../services/api/src/read-model.js";
import { type Api, type ApiDeps, buildApi } from "../../services/api/src/server.js";
import { testSecrets } from "./index.js";

/** Webhook hosts resolve to one public address (the sandbox has no DNS); the SSRF checks run as in production. */
export const publicLookup: NonNullable<ApiDeps["lookup"]> = (_host, _options, callback) =>
  callback(null, [{ address: "93.184.215.14", family: 4 }]);

export async function startTestApi(options: {
  kafka: Kafka;
  clickhouse: ClickHouseClient;
  logger: Logger;
  operatorKey: string;
  now?: () => number;
  name?: string;
  extra?: Partial<ApiDeps>;
}): Promise<{ app: Api; stop: () => Promise<void> }> {
  const { kafka, logger } = options;
  const follower = createControlFollower({ kafka, logger });
  await follower.start();
  const reader = createSpendReadModel({ kafka, logger, control: follower, now: options.now, name: options.name });
  await reader.start();
  const publisher = createControlPublisher({ kafka });
  await publisher.connect();
  const app = buildApi({
    reader,
    control: { publish: (c) => publisher.publish(c), waitFor: (v, ms) => follower.waitFor(v, ms) },
    keys: follower,
    billing: follower,
    secrets: testSecrets,
    clickhouse: options.clickhouse,
    registry: new Registry(),
    logger,
    operatorKey: options.operatorKey,
    lookup: publicLookup,
    now: options.now,
    ...options.extra,
  });
  return {
    app,
    stop: async () => {
      await app.close();
      await publisher.close();
      await reader.stop();
      await follower.stop();
    },
  };
}
