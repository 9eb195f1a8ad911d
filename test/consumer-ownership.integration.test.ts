/**
 * The batch consumer's ownership check on a real broker: a live member passes it long after its join (its
 * confirmations come from the heartbeats kafkajs sends, dated by the request events kafkajs emits), and a member frozen
 * past its session timeout fails it once it resumes, whatever it reads then.
 */
import { randomUUID } from "node:crypto";
import { createBatchConsumer, createKafka, OwnershipLost } from "@usage/kafka";
import { describe, expect, it } from "vitest";
import { createFreezer } from "./faults/harness/freeze.js";
import { quietLogger, testBrokers, testKafka, waitFor } from "./harness/index.js";

describe("ensureOwned on a real group coordinator", () => {
  it("passes for a live member long after its join and fails for one frozen past its session timeout", async () => {
    const topic = `ownership-${randomUUID()}`;
    const admin = testKafka("ownership-admin").admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
    await admin.disconnect();
    const producer = testKafka("ownership-producer").producer();
    await producer.connect();

    const freezer = createFreezer();
    const consumer = createBatchConsumer({
      kafka: createKafka({
        brokers: testBrokers(),
        clientId: "ownership",
        logger: quietLogger,
        socketFactory: freezer.socketFactory,
      }),
      groupId: `ownership-${randomUUID()}`,
      topics: [topic],
      logger: quietLogger,
      commit: "after-batch",
    });
    const outcomes: string[] = [];
    let stallNext = 0;
    await consumer.start(async (batch) => {
      if (stallNext > 0) {
        const ms = stallNext;
        stallNext = 0;
        freezer.freeze();
        await new Promise((r) => setTimeout(r, ms));
        freezer.thaw();
      }
      try {
        await batch.ensureOwned();
        outcomes.push("owned");
      } catch (err) {
        outcomes.push(err instanceof OwnershipLost ? "lost" : "error");
        throw err;
      }
    });
    try {
      await producer.send({ topic, messages: [{ value: "1" }] });
      await waitFor("the first batch checked", () => outcomes.length >= 1, 60_000);
      expect(outcomes).toEqual(["owned"]);
      // Well past the 2 s a confirmation stays good for: the check passes on the heartbeats kafkajs goes on sending.
      await new Promise((r) => setTimeout(r, 6_000));
      await producer.send({ topic, messages: [{ value: "2" }] });
      await waitFor("the second batch checked", () => outcomes.length >= 2, 60_000);
      expect(outcomes).toEqual(["owned", "owned"]);

      // Frozen 16 s, well past the 10 s session timeout: the coordinator evicts the member; on resuming, its check
      // fails.
      stallNext = 16_000;
      await producer.send({ topic, messages: [{ value: "3" }] });
      await waitFor("the frozen batch checked", () => outcomes.length >= 3, 60_000);
      expect(outcomes[2]).toBe("lost");
      // It rejoins, and the redelivered batch passes.
      await waitFor("the batch redelivered after the rejoin and owned", () => outcomes.at(-1) === "owned", 60_000);
    } finally {
      await consumer.stop();
      await producer.disconnect();
    }
  });
});
