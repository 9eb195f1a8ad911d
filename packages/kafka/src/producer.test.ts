import { Kafka } from "kafkajs";
import { describe, expect, it } from "vitest";
import { partitionOf } from "./partition.js";
import { createProducer, settledSends } from "./producer.js";

// Murmur2 of these keys as Kafka's Java client computes it (Utils.murmur2, the vectors of its UtilsTest); the
// partition is (hash & 0x7fffffff) % count, worked out by hand below.
const REFERENCE: [key: string, hash: number, positive: number][] = [
  ["21", -973932308, 1173551340],
  ["foobar", -790332482, 1357151166],
  ["a-little-bit-long-string", -985981536, 1161502112],
  ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971, 2088585677],
  ["abc", 479470107, 479470107],
];

describe("partitionOf", () => {
  it("picks the partition the Java client picks for a key", () => {
    const expected: Record<string, [n4: number, n7: number, n12: number]> = {
      "21": [0, 3, 0],
      foobar: [2, 0, 6],
      "a-little-bit-long-string": [0, 1, 8],
      lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8: [1, 3, 5],
      abc: [3, 4, 3],
    };
    for (const [key, hash, positive] of REFERENCE) {
      expect(hash & 0x7fffffff).toBe(positive);
      expect([4, 7, 12].map((n) => positive % n)).toEqual(expected[key]); // the hand-worked table is consistent
      expect([4, 7, 12].map((n) => partitionOf(key, n))).toEqual(expected[key]);
    }
  });

  it("always answers the same partition, and one within the topic", () => {
    for (let i = 0; i < 200; i++) {
      const p = partitionOf(`org_${i}`, 6);
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(6);
      expect(partitionOf(`org_${i}`, 6)).toBe(p);
    }
    expect(partitionOf("anything", 1)).toBe(0);
    expect(() => partitionOf("org", 0)).toThrow(RangeError);
  });
});

// No broker is needed: the idempotent producer refuses the send before it connects to anything.
const kafka = new Kafka({ clientId: "acks-test", brokers: ["127.0.0.1:1"], logLevel: 0 });

describe("createProducer", () => {
  it.each([0, 1])("refuses a send with acks=%i: every send is acks=all", async (acks) => {
    const producer = createProducer(kafka);
    await expect(producer.send({ topic: "t", acks, messages: [{ value: "v" }] })).rejects.toThrow(
      /every send is acks=all/,
    );
    await expect(
      producer.sendBatch({ acks, topicMessages: [{ topic: "t", messages: [{ value: "v" }] }] }),
    ).rejects.toThrow(/every send is acks=all/);
  });

  it("refuses it on the transactional producer too", async () => {
    const producer = createProducer(kafka, { transactionalId: "acks-test" });
    await expect(producer.send({ topic: "t", acks: 1, messages: [{ value: "v" }] })).rejects.toThrow(
      /every send is acks=all/,
    );
  });
});

describe("settledSends", () => {
  it("reports a failed send only once every other send of the call has settled", async () => {
    let finishSlow: (records: string[]) => void = () => {};
    const slow = new Promise<string[]>((resolve) => {
      finishSlow = resolve;
    });
    let settled = false;
    const call = settledSends([Promise.reject(new Error("partition 0 failed")), slow]).finally(() => {
      settled = true;
    });
    call.catch(() => {});
    for (let i = 0; i < 10; i++) await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    expect(settled).toBe(false);
    finishSlow(["r1"]);
    await expect(call).rejects.toThrow("partition 0 failed");
  });

  it("answers every send's records, in the order of the sends", async () => {
    await expect(
      settledSends([Promise.resolve(["a", "b"]), Promise.resolve([]), Promise.resolve(["c"])]),
    ).resolves.toEqual(["a", "b", "c"]);
  });
});
