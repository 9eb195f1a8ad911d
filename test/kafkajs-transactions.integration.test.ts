/**
 * Transactions through the patched kafkajs (`patches/kafkajs+2.2.4.patch`) on the real broker, back to back as the
 * pricing worker makes them under load: the producer asks for its transaction and group coordinators once, not
 * before each of a transaction's requests; a transaction begun while the coordinator still completes the previous
 * one (CONCURRENT_TRANSACTIONS) is not handed to the send's retrier (which refreshes the metadata and waits 200 ms
 * each time); and every transaction lands (its records visible to read_committed, its offsets committed).
 */
import { createProducer, type Kafka } from "@usage/kafka";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { readTopic, testKafka } from "./harness/index.js";

const RUN = `${process.pid}-${Date.now()}`;
const OUT = `coordinator-test-out-${RUN}`;
const IN = `coordinator-test-in-${RUN}`;
const GROUP = `coordinator-test-group-${RUN}`;
const TRANSACTIONS = 6;
let kafka: Kafka;

beforeAll(async () => {
  kafka = testKafka("kafkajs-transactions-test");
  const admin = kafka.admin();
  await admin.connect();
  try {
    await admin.createTopics({
      topics: [
        { topic: OUT, numPartitions: 2 },
        { topic: IN, numPartitions: 1 },
      ],
      waitForLeaders: true,
    });
  } finally {
    await admin.disconnect();
  }
});

afterAll(async () => {
  const admin = kafka.admin();
  await admin.connect();
  await admin.deleteTopics({ topics: [OUT, IN] }).catch(() => {});
  await admin.disconnect();
});

describe("transactional producer on the patched kafkajs", () => {
  it("looks each coordinator up once over many transactions, and every transaction lands", async () => {
    const producer = createProducer(kafka, { transactionalId: `coordinator-test-${RUN}` });
    const requests: string[] = [];
    producer.on(producer.events.REQUEST, (e) => requests.push(e.payload.apiName));
    await producer.connect();
    try {
      for (let i = 0; i < TRANSACTIONS; i++) {
        const tx = await producer.transaction();
        await tx.send({ topic: OUT, messages: [{ partition: i % 2, value: `m${i}` }] });
        await tx.sendOffsets({
          consumerGroupId: GROUP,
          topics: [{ topic: IN, partitions: [{ partition: 0, offset: String(i + 1) }] }],
        });
        await tx.commit();
      }
    } finally {
      await producer.disconnect();
    }
    const count = (api: string) => requests.filter((r) => r === api).length;
    // kafkajs names FindCoordinator by its old name. Unpatched: one lookup for InitProducerId, then four in every
    // transaction (25 here), and one more for each CONCURRENT_TRANSACTIONS answer.
    expect(count("GroupCoordinator")).toBe(2);
    for (const api of ["AddOffsetsToTxn", "TxnOffsetCommit", "EndTxn"]) expect(count(api), api).toBe(TRANSACTIONS);
    // At least one a transaction; more where the coordinator answered CONCURRENT_TRANSACTIONS.
    expect(count("AddPartitionsToTxn")).toBeGreaterThanOrEqual(TRANSACTIONS);
    // Unpatched, each CONCURRENT_TRANSACTIONS answer (about one a transaction here) refreshed the metadata.
    expect(count("Metadata")).toBeLessThan(TRANSACTIONS);

    const seen = await readTopic(kafka, OUT, { until: (m) => m.length >= TRANSACTIONS, timeoutMs: 30000 });
    expect(seen.map((m) => m.value?.toString()).sort()).toEqual(
      Array.from({ length: TRANSACTIONS }, (_, i) => `m${i}`).sort(),
    );
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [offsets] = await admin.fetchOffsets({ groupId: GROUP, topics: [IN] });
      expect(offsets?.partitions).toEqual([expect.objectContaining({ partition: 0, offset: String(TRANSACTIONS) })]);
    } finally {
      await admin.disconnect();
    }
  });
});
