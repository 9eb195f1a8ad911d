/**
 * The changes `patches/kafkajs+2.2.4.patch` makes to kafkajs's sources (applied by `npm ci` through patch-package):
 * they must change what kafkajs costs, never what it sends. Every expectation here is computed independently: the
 * grouping by filtering the input, the varints with BigInt arithmetic straight from the protocol's definition
 * (zig-zag, then 7 bits a byte, low bits first).
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import fc from "fast-check";
import { Partitioners } from "kafkajs";
import { describe, expect, it } from "vitest";

const require = createRequire(import.meta.url);

interface EncoderLike {
  writeVarInt(value: number): EncoderLike;
  writeVarLong(value: number | bigint | object): EncoderLike;
  readonly buffer: Buffer;
}
const Encoder = require("kafkajs/src/protocol/encoder.js") as {
  new (): EncoderLike;
  sizeOfVarLong(value: number | object): number;
  sizeOfVarInt(value: number): number;
};
const Long = require("kafkajs/src/utils/long.js") as { fromString(s: string): object };
const Decoder = require("kafkajs/src/protocol/decoder.js") as new (
  buffer: Buffer,
) => { offset: number; readVarLong(): { toString(): string } };
type Grouping = (args: {
  topic: string;
  partitionMetadata: { partitionId: number }[];
  messages: { partition: number; value: string }[];
  partitioner: (args: { message: { partition: number } }) => number;
}) => Record<string, { partition: number; value: string }[]>;
const groupMessagesPerPartition = require("kafkajs/src/producer/groupMessagesPerPartition.js") as Grouping;

/** Zig-zag then unsigned LEB128, as the Kafka record format defines varint and varlong. */
function referenceVarint(value: bigint): Buffer {
  let z = value >= 0n ? value * 2n : -value * 2n - 1n;
  const bytes: number[] = [];
  while (z >= 0x80n) {
    bytes.push(Number(z & 0x7fn) | 0x80);
    z >>= 7n;
  }
  bytes.push(Number(z));
  return Buffer.from(bytes);
}

const INT32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const EDGES = [0, 1, -1, 63, -64, 64, -65, 8191, -8192, 8192, 2 ** 31 - 1, -(2 ** 31)];

/** Metadata of a topic's partitions, every one led by broker 0. */
function partitionMetadata(count: number) {
  return Array.from({ length: count }, (_, partitionId) => ({
    partitionId,
    leader: 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
}

/** Partition metadata whose available-partitions list must not be built (its `filter` throws). */
function untouchableMetadata(count: number) {
  return Object.assign(partitionMetadata(count), {
    filter: () => {
      throw new Error("the available partitions were listed");
    },
  });
}

describe("kafkajs source patch", () => {
  it("is installed (npm ci applies patches/ through patch-package)", () => {
    for (const file of [
      "kafkajs/src/producer/groupMessagesPerPartition.js",
      "kafkajs/src/protocol/encoder.js",
      "kafkajs/src/protocol/decoder.js",
      "kafkajs/src/producer/partitioners/legacy/partitioner.js",
    ]) {
      expect(readFileSync(require.resolve(file), "utf8")).toContain("patches/kafkajs+2.2.4.patch");
    }
  });

  it("groups a send's messages per partition in their order", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3000 }), (partitions) => {
        const messages = partitions.map((partition, i) => ({ partition, value: `m${i}` }));
        const grouped = groupMessagesPerPartition({
          topic: "t",
          partitionMetadata: [0, 1, 2, 3, 4, 5].map((partitionId) => ({ partitionId })),
          messages,
          partitioner: ({ message }) => message.partition,
        });
        const expected: Record<string, typeof messages> = {};
        for (const p of new Set(partitions)) expected[String(p)] = messages.filter((m) => m.partition === p);
        expect(grouped).toEqual(expected);
      }),
    );
    expect(
      groupMessagesPerPartition({ topic: "t", partitionMetadata: [], messages: [], partitioner: () => 0 }),
    ).toEqual({});
  });

  it("writes 32-bit varints byte for byte as the record format defines them", () => {
    for (const v of EDGES) expect(new Encoder().writeVarInt(v).buffer).toEqual(referenceVarint(BigInt(v)));
    fc.assert(
      fc.property(INT32, (v) => {
        expect(new Encoder().writeVarInt(v).buffer).toEqual(referenceVarint(BigInt(v)));
      }),
    );
  });

  it("writes varlongs the same whether the value is a small number, a large number or a Long", () => {
    const large = [2 ** 31, -(2 ** 31) - 1, 2 ** 40 + 7, -(2 ** 45), Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER];
    const check = (v: number) => {
      const expected = referenceVarint(BigInt(v));
      expect(new Encoder().writeVarLong(v).buffer).toEqual(expected);
      expect(new Encoder().writeVarLong(Long.fromString(String(v))).buffer).toEqual(expected);
      expect(Encoder.sizeOfVarLong(v)).toBe(expected.length);
    };
    for (const v of [...EDGES, ...large]) check(v);
    fc.assert(fc.property(fc.oneof(INT32, fc.maxSafeInteger(), fc.maxSafeNat()), check));
  });

  it("writes several varints one after another into one buffer", () => {
    fc.assert(
      fc.property(fc.array(INT32, { maxLength: 400 }), (values) => {
        const encoder = new Encoder();
        for (const v of values) encoder.writeVarInt(v).writeVarLong(v);
        const expected = Buffer.concat(values.flatMap((v) => [referenceVarint(BigInt(v)), referenceVarint(BigInt(v))]));
        expect(encoder.buffer).toEqual(expected);
      }),
    );
  });

  it("reads varlongs back, short or long, one after another", () => {
    const large = [2 ** 27, -(2 ** 27) - 1, 2 ** 31, -(2 ** 31) - 1, 2 ** 40 + 7, -(2 ** 45), Number.MAX_SAFE_INTEGER];
    const check = (values: number[]) => {
      const decoder = new Decoder(Buffer.concat(values.map((v) => referenceVarint(BigInt(v)))));
      expect(values.map(() => decoder.readVarLong().toString())).toEqual(values.map(String));
      expect(decoder.offset).toBe(values.reduce((n, v) => n + referenceVarint(BigInt(v)).length, 0));
    };
    check([...EDGES, ...large, 2 ** 27 - 1, -(2 ** 27)]);
    fc.assert(fc.property(fc.array(fc.oneof(INT32, fc.maxSafeInteger()), { maxLength: 200 }), check));
  });
  it("answers a message's own partition without listing the available ones, and anything else as before", () => {
    const partitioner = Partitioners.DefaultPartitioner();
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 64 }), fc.nat(), (count, seed) => {
        const partition = seed % count;
        expect(
          partitioner({
            topic: "t",
            partitionMetadata: untouchableMetadata(count),
            message: { partition, value: null },
          }),
        ).toBe(partition);
      }),
    );
    // A keyed message without a partition still needs the list, and gets the key's partition (partition.test.ts
    // holds that answer to the Java client's).
    expect(
      partitioner({ topic: "t", partitionMetadata: partitionMetadata(8), message: { key: "org_42", value: null } }),
    ).toBe(3);
    expect(() =>
      partitioner({ topic: "t", partitionMetadata: untouchableMetadata(8), message: { key: "org_42", value: null } }),
    ).toThrow("the available partitions were listed");
  });
});
