/**
 * An unreadable record on spend.signals.v1, on the real broker: it lands on usage.dlq.v1 with its original bytes,
 * its reason (invalid_encoding, or invalid_field with the field) and its source headers, is counted, and the
 * partition carries on to the readable signal after it.
 */
import { alertsOfPeriod, type ClickHouse, migrate } from "@usage/clickhouse";
import type { CapSignal } from "@usage/events";
import { createProducer, ensureTopics, groupLag, readDeadLetter } from "@usage/kafka";
import { createLogger } from "@usage/runtime";
import { Registry } from "prom-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTopic, TOPICS, testClickHouse, testKafka, testSecrets } from "../../../test/harness/index.js";
import { createNotifierMetrics } from "./metrics.js";
import { createNotifier, type Notifier } from "./notifier.js";

const PERIOD = "2026-11";
const run = Date.now();
const logger = createLogger({ level: process.env.TEST_LOG_LEVEL ?? "silent" });

let ch: ClickHouse;
const kafka = testKafka("notifier-dlq-test");
const running: Notifier[] = [];

beforeAll(async () => {
  ch = await testClickHouse("notifier_dlq");
  await migrate(ch.client);
  await ensureTopics(kafka, { partitions: 4 });
});
afterAll(async () => {
  for (const n of running) await n.stop().catch(() => undefined);
  await ch.close();
});

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function signal(org: string, threshold: string): CapSignal {
  return {
    signal_id: `sig-${org}-${threshold}`,
    org_id: org,
    entity: { type: "user", id: "u1" },
    period: PERIOD,
    kind: "threshold",
    threshold,
    limit: "10",
    spend: "9.5",
    status: "warning",
    previous_status: "ok",
    policy_version: 1,
    cause_event_id: null,
    created_at: new Date(run).toISOString(),
  };
}

describe("notifier dead letters", () => {
  it("sends an unreadable signal to usage.dlq.v1 with its reason and source, and carries on", async () => {
    const org = `org_dlq_${run}`;
    const registry = new Registry();
    const group = `test-notifier-dlq-${run}`;
    const notifier = createNotifier({
      secrets: testSecrets,
      kafka,
      clickhouse: ch.client,
      logger,
      metrics: createNotifierMetrics(registry),
      groupId: group,
      retry: { baseMs: 10, maxMs: 10, maxAttempts: 1 },
      deliveryTimeoutMs: 1000,
      pollMs: 100,
    });
    running.push(notifier);
    const notJson = Buffer.from("{not json");
    const badField = Buffer.from(JSON.stringify({ ...signal(org, "0.5"), spend: "1e3" }));
    const producer = createProducer(kafka);
    await producer.connect();
    const [sent] = await producer.send({
      topic: TOPICS.signals,
      acks: -1,
      messages: [
        { key: org, value: notJson },
        { key: org, value: badField },
        { key: org, value: JSON.stringify(signal(org, "0.5")) },
      ],
    });
    await producer.disconnect();
    const base = BigInt(sent!.baseOffset!);

    await notifier.start();
    // The readable signal after the two bad ones is processed: the partition did not stop.
    await until("the valid signal's alert", async () => (await alertsOfPeriod(ch.client, org, PERIOD)).length === 1);
    await until("the group's offsets committed", async () => (await groupLag(kafka, group, TOPICS.signals)) === 0);
    await notifier.stop();

    const dead = (await readTopic(kafka, TOPICS.dlq, { timeoutMs: 20_000 })).filter((m) => m.key?.toString() === org);
    expect(dead).toHaveLength(2);
    const header = (m: (typeof dead)[number], name: string) => m.headers?.[name]?.toString();
    const [first, second] = [...dead].sort((x, y) =>
      Number(BigInt(header(x, "dlq.source.offset")!) - BigInt(header(y, "dlq.source.offset")!)),
    );
    expect(first!.value).toEqual(notJson);
    expect(readDeadLetter(first!.headers)).toMatchObject({ reason: "invalid_encoding", sourceTopic: TOPICS.signals });
    expect(header(first!, "dlq.source.partition")).toBe(String(sent!.partition));
    expect(header(first!, "dlq.source.offset")).toBe(String(base));
    expect(second!.value).toEqual(badField);
    expect(readDeadLetter(second!.headers)).toMatchObject({
      reason: "invalid_field",
      field: "spend",
      sourceTopic: TOPICS.signals,
    });
    expect(header(second!, "dlq.source.partition")).toBe(String(sent!.partition));
    expect(header(second!, "dlq.source.offset")).toBe(String(base + 1n));

    // The metric counts every unreadable signal this group read: the distinct source positions on usage.dlq.v1
    // (a group replays the whole topic, earlier runs' bad records included).
    const all = (await readTopic(kafka, TOPICS.dlq, { timeoutMs: 20_000 })).filter(
      (m) => header(m, "dlq.source.topic") === TOPICS.signals,
    );
    const positions = new Set(all.map((m) => `${header(m, "dlq.source.partition")}/${header(m, "dlq.source.offset")}`));
    const text = await registry.metrics();
    expect(text).toContain(`usage_alert_signals_skipped_total{reason="invalid"} ${positions.size}`);
  });
});
