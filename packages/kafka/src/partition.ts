/**
 * The partition Kafka's default partitioner picks for a key (murmur2, as the Java client and kafkajs'
 * DefaultPartitioner): every topic of the pipeline is keyed by org_id, so this names the partition that holds an
 * org's records — and therefore the consumer-group member that owns the org — without asking the broker.
 */
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
// kafkajs' own murmur2 (the function its DefaultPartitioner uses), so the answer is the producer's by construction.
const murmur2 = require("kafkajs/src/producer/partitioners/default/murmur2") as (key: string | Buffer) => number;

/**
 * Keys' positive hashes, remembered: kafkajs' murmur2 works on BigInt-backed Longs and allocates several per byte
 * quad (14% of the pricing worker's allocations when every message was hashed), and the pipeline's keys are org ids,
 * a few of them in each batch. Bounded: past HASHES_MAX distinct keys it starts over.
 */
const HASHES_MAX = 10_000;
const hashes = new Map<string, number>();

function positiveHash(key: string): number {
  let hash = hashes.get(key);
  if (hash === undefined) {
    hash = murmur2(key) & 0x7fffffff;
    if (hashes.size >= HASHES_MAX) hashes.clear();
    hashes.set(key, hash);
  }
  return hash;
}

export function partitionOf(key: string, partitions: number): number {
  if (!Number.isSafeInteger(partitions) || partitions < 1) {
    throw new RangeError(`partitions must be a positive integer, got ${partitions}`);
  }
  return positiveHash(key) % partitions;
}
