import type { ClickHouseClient } from "@usage/clickhouse";
import { createKafka } from "@usage/kafka";
import { createLogger } from "@usage/runtime";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { testSecrets } from "../../../test/harness/index.js";
import { loadNotifierEnv } from "./env.js";
import { buildNotifier } from "./service.js";

describe("buildNotifier", () => {
  it("builds several members on one registry, sharing its metrics", async () => {
    const logger = createLogger({ level: "silent" });
    // Nothing connects before start(): neither the broker nor ClickHouse is reached here.
    const kafka = createKafka({ brokers: ["127.0.0.1:1"], clientId: "test", logger });
    const clickhouse = {} as ClickHouseClient;
    const registry = new Registry();
    const env = loadNotifierEnv({});
    const members = [0, 1, 2].map((member) =>
      buildNotifier({ secrets: testSecrets, env, kafka, clickhouse, logger, registry, member }),
    );
    expect(new Set(members.map((m) => m.consumer)).size).toBe(3);
    expect(new Set(members.map((m) => m.delivery)).size).toBe(3);
    expect(members.every((m) => m.consumer.groupId === "usage-notifier")).toBe(true);
    const text = await registry.metrics();
    expect(text.match(/^# TYPE usage_alerts_created_total counter$/gm)).toHaveLength(1);
    expect(text.match(/^# TYPE usage_alert_deliveries_due gauge$/gm)).toHaveLength(1);
    // Another registry gets metrics of its own.
    const other = new Registry();
    buildNotifier({ secrets: testSecrets, env, kafka, clickhouse, logger, registry: other });
    expect((await other.metrics()).match(/^# TYPE usage_alerts_created_total counter$/gm)).toHaveLength(1);
  });
});
