/**
 * The raw → priced hop is exactly-once: 50,000 generated events are priced while the worker is killed with
 * SIGKILL mid-stream and restarted; usage.priced.v1 (read_committed) then holds each event_id exactly once with
 * the costs the offline pricer computes.
 */
import { decode, type PricedUsageEvent, pricedUsageEventV1, validateUsageEvent } from "@usage/events";
import { createPricer, loadRateCard } from "@usage/pricing";
import { generateEventArray } from "@usage/workload";
import { beforeAll, describe, expect, it } from "vitest";
import {
  readTopic,
  resetTopics,
  runCli,
  spawnCli,
  TOPICS,
  testBrokers,
  testKafka,
} from "../../../test/harness/index.js";

const COUNT = 50_000;

describe("pricing worker", () => {
  const kafka = testKafka("pricing-eos-test");
  beforeAll(async () => {
    await resetTopics(kafka);
  });

  it("prices 50,000 events exactly once across a SIGKILL and restart", async () => {
    const now = Date.now();
    const events = generateEventArray({ seed: 2026, count: COUNT, now, lateRate: 0.01 });
    const env = {
      KAFKA_BROKERS: testBrokers().join(","),
      LOG_LEVEL: "warn",
      USAGE_PRICING_GROUP: `test-pricing-eos-${now}`,
      USAGE_INSTANCE_ID: "eos-test",
    };
    const produced = await runCli(["produce"], { env, input: events.map((e) => JSON.stringify(e)).join("\n") });
    expect(produced.code).toBe(0);

    const admin = kafka.admin();
    await admin.connect();
    const pricedEnd = async () =>
      (await admin.fetchTopicOffsets(TOPICS.priced)).reduce((n, p) => n + Number(p.high), 0);

    const first = spawnCli(["run", "pricing"], env);
    const deadline = Date.now() + 60_000;
    while ((await pricedEnd()) < 12_000 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    first.child.kill("SIGKILL");
    await first.exited;
    const atKill = await pricedEnd();
    expect(atKill).toBeGreaterThanOrEqual(12_000);
    expect(atKill).toBeLessThan(COUNT);

    const second = spawnCli(["run", "pricing"], env);
    let priced: PricedUsageEvent[] = [];
    try {
      await readTopic(kafka, TOPICS.priced, { until: (ms) => ms.length >= COUNT, timeoutMs: 120_000 });
      // Read everything again once the topic has been quiet, so a would-be duplicate shows up.
      const all = await readTopic(kafka, TOPICS.priced, { idleMs: 3000 });
      priced = all.map((m) => {
        const d = decode(m.value, pricedUsageEventV1);
        if (!d.ok) throw new Error(d.message);
        return d.value as unknown as PricedUsageEvent;
      });
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
      await admin.disconnect();
    }

    const ids = priced.map((p) => p.event_id);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBe(COUNT);

    const price = createPricer(loadRateCard());
    const byId = new Map(priced.map((p) => [p.event_id, p]));
    for (const event of events) {
      const valid = validateUsageEvent(event, { now });
      if (!valid.ok) throw new Error(valid.rejection.message);
      const expected = price(valid.value);
      if (!expected.ok) throw new Error(expected.rejection.message);
      expect(byId.get(event.event_id)).toEqual(expected.value);
    }
  });
});
