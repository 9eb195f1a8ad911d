/**
 * Foundation: 10,000 generated events through `usagectl produce` and the real broker, read back with the shared
 * batch consumer, every field equal; malformed messages mixed in reach usage.dlq.v1 with their reason code while
 * the pricing worker (the validating consumer) keeps going.
 */
import { decode, type UsageEvent, usageEventV1 } from "@usage/events";
import { createBatchConsumer, createProducer, type Kafka, type Message, readDeadLetter } from "@usage/kafka";
import { beforeAll, describe, expect, it } from "vitest";
import {
  quietLogger,
  readTopic,
  resetTopics,
  runCli,
  spawnCli,
  TOPICS,
  testBrokers,
  testKafka,
} from "./harness/index.js";

const NOW = Date.now();
let kafka: Kafka;

beforeAll(async () => {
  kafka = testKafka("produce-consume-test");
  await resetTopics(kafka);
});

function malformed(valid: UsageEvent): { message: Message; reason: string; field?: string }[] {
  const good = usageEventV1.encode(valid);
  const withFields = (patch: Record<string, unknown>) =>
    Buffer.concat([
      good.subarray(0, 10),
      usageEventV1.type.toBuffer({ ...valid, occurred_at: Date.parse(valid.occurred_at), ...patch }),
    ]);
  return [
    { message: { key: "org_bad", value: good.subarray(0, good.length - 7) }, reason: "invalid_encoding" },
    { message: { key: "org_bad", value: Buffer.from(JSON.stringify(valid)) }, reason: "invalid_encoding" },
    {
      message: {
        key: "org_bad",
        value: Buffer.concat([Buffer.from([0xc3, 0x01, 1, 2, 3, 4, 5, 6, 7, 8]), good.subarray(10)]),
      },
      reason: "invalid_encoding",
    },
    { message: { key: "org_bad", value: null }, reason: "invalid_encoding" },
    {
      message: { key: "org_bad", value: withFields({ event_id: "8d0c7f1e-0000-4000-8000-000000000001", org_id: "" }) },
      reason: "invalid_field",
      field: "org_id",
    },
    {
      message: { key: "org_bad", value: withFields({ event_id: "not-a-uuid" }) },
      reason: "invalid_field",
      field: "event_id",
    },
    {
      message: {
        key: "org_bad",
        value: withFields({ event_id: "8d0c7f1e-0000-4000-8000-000000000002", seat_tier: "gold" }),
      },
      reason: "invalid_field",
      field: "seat_tier",
    },
    {
      message: {
        key: "org_bad",
        value: withFields({ event_id: "8d0c7f1e-0000-4000-8000-000000000003", input_tokens: 1_000_000_001 }),
      },
      reason: "invalid_field",
      field: "input_tokens",
    },
    {
      message: {
        key: "org_bad",
        value: withFields({ event_id: "8d0c7f1e-0000-4000-8000-000000000004", output_tokens: -1 }),
      },
      reason: "invalid_field",
      field: "output_tokens",
    },
    {
      message: {
        key: "org_bad",
        value: withFields({ event_id: "8d0c7f1e-0000-4000-8000-000000000005", model: "gpt-4" }),
      },
      reason: "unknown_model",
    },
    {
      message: {
        key: "org_bad",
        value: withFields({ event_id: "8d0c7f1e-0000-4000-8000-000000000006", occurred_at: NOW + 3_600_000 }),
      },
      reason: "future_timestamp",
    },
    {
      message: {
        key: "org_bad",
        value: withFields({ event_id: "8d0c7f1e-0000-4000-8000-000000000007", occurred_at: NOW - 40 * 86_400_000 }),
      },
      reason: "outside_backfill_window",
    },
  ];
}

describe("usagectl produce → usage.events.v1 → shared batch consumer", () => {
  it("delivers 10,000 generated events with every field intact, and routes malformed ones to the DLQ", async () => {
    const env = { KAFKA_BROKERS: testBrokers().join(","), LOG_LEVEL: "warn" };
    const generated = await runCli([
      "generate",
      "--seed",
      "11",
      "--count",
      "10000",
      "--now",
      new Date(NOW).toISOString(),
      "--late-rate",
      "0.01",
    ]);
    expect(generated.code).toBe(0);
    const lines = generated.stdout.trim().split("\n");
    expect(lines).toHaveLength(10_000);
    const sent = new Map(lines.map((l) => [JSON.parse(l).event_id as string, JSON.parse(l) as UsageEvent]));
    expect(sent.size).toBe(10_000);

    // A few bad lines on stdin are listed on stderr and do not stop the rest.
    const input = [...lines.slice(0, 5000), "{not json", JSON.stringify({ event_id: "x" }), ...lines.slice(5000)].join(
      "\n",
    );
    const produced = await runCli(["produce"], { env, input });
    expect(produced.code).toBe(1);
    const rejects = produced.stderr
      .trim()
      .split("\n")
      .filter((l) => l.startsWith('{"line"'))
      .map((l) => JSON.parse(l));
    expect(rejects.map((r) => [r.line, r.code])).toEqual([
      [5001, "invalid_encoding"],
      [5002, "invalid_field"],
    ]);
    expect(produced.stderr).toContain("produced 10000 events");

    // Malformed messages written straight to the topic, as a faulty surface could.
    const first = sent.values().next().value as UsageEvent;
    const bad = malformed(first);
    const raw = createProducer(kafka);
    await raw.connect();
    await raw.send({ topic: TOPICS.events, messages: bad.map((b) => b.message) });
    await raw.disconnect();

    // Read back with the one consumer abstraction the services use.
    const received = new Map<string, Record<string, unknown>>();
    let undecodable = 0;
    const consumer = createBatchConsumer({
      kafka,
      groupId: `test-readback-${Date.now()}`,
      topics: [TOPICS.events],
      logger: quietLogger,
      commit: "after-batch",
    });
    const allIn = new Promise<void>((resolve) => {
      void consumer.start(async (batch) => {
        for (const m of batch.messages) {
          const d = decode(m.value, usageEventV1);
          if (d.ok && sent.has(d.value.event_id as string)) received.set(d.value.event_id as string, d.value);
          else undecodable++;
        }
        if (received.size === sent.size && undecodable >= bad.length) resolve();
      });
    });
    await Promise.race([allIn, new Promise((r) => setTimeout(r, 60000))]);
    await consumer.stop();
    expect(received.size).toBe(10_000);
    for (const [id, event] of sent) {
      expect(received.get(id)).toEqual({ ...event, occurred_at: new Date(event.occurred_at).toISOString() });
    }

    // The pricing worker validates: every malformed message lands in the DLQ with its reason; the rest are priced.
    const worker = spawnCli(["run", "pricing"], { ...env, USAGE_PRICING_GROUP: `test-pricing-${Date.now()}` });
    try {
      const dlq = await readTopic(kafka, TOPICS.dlq, { until: (ms) => ms.length >= bad.length, timeoutMs: 90000 });
      const priced = await readTopic(kafka, TOPICS.priced, { until: (ms) => ms.length >= 10_000, timeoutMs: 90000 });
      expect(priced).toHaveLength(10_000);
      const reasons = dlq.map((m) => readDeadLetter(m.headers));
      expect(reasons.map((r) => r.reason)).toEqual(bad.map((b) => b.reason));
      expect(reasons.map((r) => r.field)).toEqual(bad.map((b) => b.field));
      // The DLQ keeps the original bytes.
      expect(dlq.map((m) => m.value?.toString("hex") ?? null)).toEqual(
        bad.map((b) => b.message.value?.toString("hex") ?? null),
      );
    } finally {
      worker.child.kill("SIGTERM");
      await worker.exited;
    }
  });
});
