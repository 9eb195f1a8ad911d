/**
 * The notifier's crash window between "insert alerts" and "publish" (notifier.ts, steps 4–5), on the real broker:
 * an alert stored by a signal message that its consumer group never committed is published again when that group
 * redelivers the message; another group replaying the same message publishes nothing.
 */
import { alertsOfPeriod, type ClickHouse, insertAlerts, migrate } from "@usage/clickhouse";
import type { CapSignal } from "@usage/events";
import { createProducer, ensureTopics, groupLag } from "@usage/kafka";
import { createLogger } from "@usage/runtime";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTopic, TOPICS, testClickHouse, testKafka, testSecrets } from "../../../test/harness/index.js";
import { newAlertRow } from "./alert.js";
import { createNotifierMetrics } from "./metrics.js";
import { createNotifier, type Notifier } from "./notifier.js";

let ch: ClickHouse;
const kafka = testKafka("notifier-redelivery-test");
beforeAll(async () => {
  ch = await testClickHouse("notifier_redelivery");
  await migrate(ch.client);
  await ensureTopics(kafka, { partitions: 4 });
});
afterAll(async () => {
  await ch.close();
});

function start(groupId: string): Notifier {
  return createNotifier({
    secrets: testSecrets,
    kafka,
    clickhouse: ch.client,
    logger: createLogger({ level: "silent" }),
    metrics: createNotifierMetrics(new Registry()),
    groupId,
    retry: { baseMs: 10, maxMs: 10, maxAttempts: 1 },
    deliveryTimeoutMs: 1000,
    pollMs: 100,
  });
}

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe("notifier redelivery", () => {
  it("publishes again an alert stored by an uncommitted message, and only for that consumer group", async () => {
    const now = Date.now();
    // Other tests may have left signals on the topic: everything here is about this org only.
    const org = `org_redeliver_${now}`;
    const signal = (user: string): CapSignal => ({
      signal_id: `sig-${user}`,
      org_id: org,
      entity: { type: "user", id: user },
      period: "2026-11",
      kind: "threshold",
      threshold: "0.5",
      limit: "10",
      spend: "5",
      status: "warning",
      previous_status: "ok",
      policy_version: 1,
      cause_event_id: null,
      created_at: new Date(now).toISOString(),
    });
    const producer = createProducer(kafka);
    await producer.connect();
    const [sent] = await producer.send({
      topic: TOPICS.signals,
      acks: -1,
      messages: [signal("u1"), signal("u2")].map((s) => ({ key: org, value: JSON.stringify(s) })),
    });
    await producer.disconnect();
    const group = `test-notifier-redelivery-${now}`;
    // As if a notifier of this group stored u1's alert (step 4) and died before publishing it (step 5).
    const stored = newAlertRow(signal("u1"), { group, partition: sent!.partition, offset: sent!.baseOffset! }, now);
    await insertAlerts(ch.client, [stored]);

    const ours = async () =>
      (await readTopic(kafka, TOPICS.alerts, { timeoutMs: 5000 })).filter((m) => m.key?.toString() === org);
    let notifier = start(group);
    await notifier.start();
    try {
      await until("both alerts published", async () => (await ours()).length >= 2);
    } finally {
      await notifier.stop();
    }
    const published = (await ours()).map((m) => m.value!.toString());
    expect(published).toHaveLength(2);
    expect(published).toContain(stored.payload); // the stored alert, byte for byte, not a new one
    const alerts = await alertsOfPeriod(ch.client, org, "2026-11");
    expect(alerts.map((a) => a.entity_id).sort()).toEqual(["u1", "u2"]);
    expect(alerts.find((a) => a.entity_id === "u1")!.created_at).toBe(stored.created_at);

    // A new group replaying the same messages finds both alerts: nothing is published.
    const replay = `${group}-replay`;
    notifier = start(replay);
    await notifier.start();
    try {
      await until("the replay consumed", async () => (await groupLag(kafka, replay, TOPICS.signals)) === 0);
    } finally {
      await notifier.stop();
    }
    expect(await ours()).toHaveLength(2);
    expect(await alertsOfPeriod(ch.client, org, "2026-11")).toHaveLength(2);
  });
});
