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
});
