/**
 * No priced record is dropped silently: a record on usage.priced.v1 that the aggregator cannot use (a schema it does
 * not know, bytes that are not Avro, an amount that is not a decimal) goes to usage.dlq.v1 with its original bytes,
 * its reason and its source, is counted in /metrics, and the records around it are recorded as usual.
 */
import { randomUUID } from "node:crypto";
import { pricedUsageEventV1 } from "@usage/events";
import { createProducer, readDeadLetter, TOPICS } from "@usage/kafka";
import { describe, expect, it } from "vitest";
import {
  freePort,
  metricSum,
  pipelineEnv,
  readTopic,
  resetTopics,
  spawnCli,
  testKafka,
  waitFor,
} from "./harness/index.js";

const KEY = "test-operator-key-dlq-0123456789";

function priced(orgId: string, totalCost: string) {
  return {
    event_id: randomUUID(),
    occurred_at: new Date().toISOString(),
    org_id: orgId,
    user_id: "u_1",
    seat_tier: "standard",
    product: "chat",
    model: "claude-haiku-4-5",
    input_tokens: 1000,
    output_tokens: 0,
    cache_write_tokens: 0,
    cache_read_tokens: 0,
    rate_card_version: "2025-01-01",
    long_context: false,
    prompt_tokens: 1000,
    input_cost: totalCost,
    output_cost: "0",
    cache_write_cost: "0",
    cache_read_cost: "0",
    total_cost: totalCost,
  } as never;
}

describe("aggregator dead letters", () => {
  it("sends undecodable and unusable priced records to usage.dlq.v1, counts them, and records the rest", async () => {
    const kafka = testKafka("aggregator-dlq-test");
    await resetTopics(kafka, 1);
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;
    const env = pipelineEnv("agg-dlq", { port, key: KEY, now: Date.now() });
    const aggregator = spawnCli(["run", "aggregator"], env);
    const producer = createProducer(kafka);
    try {
      await waitFor("the API", async () => (await fetch(`${base}/healthz`)).ok, 60_000);
      await producer.connect();
      const good = [priced("org_dlq", "0.001"), priced("org_dlq", "0.002")];
      const unknownSchema = Buffer.concat([Buffer.from([0xc3, 0x01]), Buffer.alloc(8, 7), Buffer.from("body")]);
      const notAvro = Buffer.from('{"event_id":"x"}');
      const badAmount = pricedUsageEventV1.encode(priced("org_dlq", "1e3"));
      await producer.send({
        topic: TOPICS.priced,
        acks: -1,
        messages: [
          { key: "org_dlq", value: pricedUsageEventV1.encode(good[0]!) },
          { key: "org_dlq", value: unknownSchema },
          { key: "org_dlq", value: notAvro },
          { key: "org_dlq", value: badAmount },
          { key: "org_dlq", value: pricedUsageEventV1.encode(good[1]!) },
        ],
      });

      await waitFor("both good events recorded", async () => {
        const res = await fetch(`${base}/v1/orgs/org_dlq/spend?window=mtd`, {
          headers: { authorization: `Bearer ${KEY}` },
        });
        return ((await res.json()) as { total: string }).total === "0.003";
      });
      const dead = await readTopic(kafka, TOPICS.dlq, { until: (m) => m.length >= 3, timeoutMs: 30_000 });
      const reasons = dead.map((m) => ({ ...readDeadLetter(m.headers), value: m.value?.toString("hex") }));
      expect(reasons.map((r) => r.reason)).toEqual(["invalid_encoding", "invalid_encoding", "invalid_field"]);
      expect(reasons.map((r) => r.sourceTopic)).toEqual([TOPICS.priced, TOPICS.priced, TOPICS.priced]);
      expect(reasons[2]!.field).toBe("input_cost");
      // The original bytes, unchanged.
      expect(reasons.map((r) => r.value)).toEqual([
        unknownSchema.toString("hex"),
        notAvro.toString("hex"),
        badAmount.toString("hex"),
      ]);
      const offsets = dead.map((m) => m.headers?.["dlq.source.offset"]?.toString());
      expect(offsets).toEqual(["1", "2", "3"]);
      // The batch's counts move once it is through, just after its totals: waited for, then asserted exact.
      await waitFor(
        "the batch counted",
        async () => (await metricSum(base, "usage_aggregator_events_recorded_total")) >= 2,
        30_000,
      );
      expect(await metricSum(base, "usage_aggregator_rejected_total", 'reason="invalid_encoding"')).toBe(2);
      expect(await metricSum(base, "usage_aggregator_rejected_total", 'reason="invalid_field"')).toBe(1);
      expect(await metricSum(base, "usage_aggregator_events_recorded_total")).toBe(2);
    } finally {
      await producer.disconnect();
      aggregator.child.kill("SIGTERM");
      await aggregator.exited;
    }
  });
});
