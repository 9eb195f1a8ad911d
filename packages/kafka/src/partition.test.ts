import { Partitioners } from "kafkajs";
import { describe, expect, it } from "vitest";
import { partitionOf } from "./partition.js";

describe("partitionOf", () => {
  it("names the partition kafkajs' default partitioner sends a key to", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    for (const partitions of [1, 3, 4, 8, 16]) {
      const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({
        partitionId: i,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [0],
        isr: [0],
      }));
      for (let i = 0; i < 500; i++) {
        const key = `org_${i}`;
        expect(partitionOf(key, partitions)).toBe(
          partitioner({ topic: "t", partitionMetadata, message: { key, value: null } }),
        );
      }
    }
  });

  it("matches the Java client on known keys", () => {
    // Utils.toPositive(Utils.murmur2(key.getBytes(UTF_8))) % 8, computed with kafka-clients 3.9.2.
    expect(["org_1", "org_2", "org_42", "acme"].map((k) => partitionOf(k, 8))).toEqual([0, 2, 3, 4]);
  });

  it("refuses a partition count that is not a positive integer", () => {
    expect(() => partitionOf("org_1", 0)).toThrow(RangeError);
    expect(() => partitionOf("org_1", 1.5)).toThrow(RangeError);
  });
  it("answers from its remembered hashes as it would afresh, past the bound on how many it keeps", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    const metadata = (count: number) =>
      Array.from({ length: count }, (_, partitionId) => ({
        partitionId,
        leader: 0,
        partitionErrorCode: 0,
        replicas: [0],
        isr: [0],
      }));
    // 25,000 distinct keys (more than the 10,000 kept), each asked twice and over several partition counts, against
    // kafkajs' partitioner, which hashes every time.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 25_000; i++) {
        const key = `org_${(i * 7919) % 25_000}`;
        const count = [1, 3, 4, 16][i % 4]!;
        expect(partitionOf(key, count)).toBe(
          partitioner({ topic: "t", partitionMetadata: metadata(count), message: { key, value: null } }),
        );
      }
    }
    expect(["org_1", "org_2", "org_42", "acme"].map((k) => partitionOf(k, 8))).toEqual([0, 2, 3, 4]);
  });
});
