/**
 * Reading a whole topic, every partition, from its first offset, and going on with what arrives: what a member
 * needs of a compacted topic it holds in full (the control plane's changes, the running totals of
 * spend.totals.v1), as a Kafka Streams GlobalKTable is read. kafkajs needs a consumer group to consume: each
 * follower uses a throwaway group of its own and never commits, so every follower reads everything.
 */

import { randomUUID } from "node:crypto";
import type { Logger } from "@usage/runtime";
import type { Consumer, Kafka, KafkaMessage } from "kafkajs";
import { CONSUMER_METADATA_MAX_AGE_MS, FOLLOWER_MAX_WAIT_MS } from "./client.js";

export interface TopicFollower {
  /** Resolves once every record that existed at start has been handed to `onBatch`. */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** True once the records that existed at start have all been read. */
  isCaughtUp(): boolean;
}

export interface TopicFollowerOptions {
  kafka: Kafka;
  topic: string;
  logger: Logger;
  /** Names the throwaway consumer group (`<name>-<uuid>`). */
  name: string;
  /** Called with each batch, in offset order per partition; awaited before the next batch of any partition. */
  onBatch: (partition: number, messages: KafkaMessage[]) => void | Promise<void>;
  /** How long the broker may hold a fetch that finds nothing new. Default FOLLOWER_MAX_WAIT_MS (client.ts says why). */
  maxWaitTimeMs?: number;
}

export function createTopicFollower(options: TopicFollowerOptions): TopicFollower {
  const log = options.logger.child({ component: "follower", topic: options.topic });
  let consumer: Consumer | undefined;
  let caughtUp = false;
  const target = new Map<number, bigint>();
  const position = new Map<number, bigint>();
  let resolveCaughtUp: (() => void) | undefined;
  const check = () => {
    if (caughtUp) return;
    for (const [p, end] of target) if ((position.get(p) ?? 0n) < end) return;
    caughtUp = true;
    resolveCaughtUp?.();
  };

  return {
    async start() {
      const admin = options.kafka.admin();
      await admin.connect();
      try {
        // A topic just created may not have its leaders settled yet: ask again for a while.
        for (let attempt = 0; ; attempt++) {
          try {
            for (const o of await admin.fetchTopicOffsets(options.topic)) {
              // An empty partition (high = low, or everything compacted away before low) is read already.
              if (BigInt(o.high) > BigInt(o.low)) target.set(o.partition, BigInt(o.high));
            }
            break;
          } catch (err) {
            if (attempt >= 40) throw err;
            await new Promise((r) => setTimeout(r, 250));
          }
        }
      } finally {
        await admin.disconnect();
      }
      const done = new Promise<void>((resolve) => {
        resolveCaughtUp = resolve;
      });
      check();
      consumer = options.kafka.consumer({
        groupId: `${options.name}-${randomUUID()}`,
        maxWaitTimeInMs: options.maxWaitTimeMs ?? FOLLOWER_MAX_WAIT_MS,
        metadataMaxAge: CONSUMER_METADATA_MAX_AGE_MS,
        sessionTimeout: 10000,
        heartbeatInterval: 1000,
      });
      await consumer.connect();
      await consumer.subscribe({ topic: options.topic, fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          if (batch.messages.length > 0) await options.onBatch(batch.partition, batch.messages);
          const last = batch.messages[batch.messages.length - 1];
          // A batch of compacted-away or control records still moves the position to the high watermark seen.
          const next = last ? BigInt(last.offset) + 1n : BigInt(batch.highWatermark);
          const known = position.get(batch.partition) ?? 0n;
          position.set(batch.partition, next > known ? next : known);
          if (!caughtUp && batch.messages.length === 0) position.set(batch.partition, BigInt(batch.highWatermark));
          check();
        },
      });
      await done;
      log.debug({ partitions: target.size }, "caught up");
    },
    async stop() {
      await consumer?.disconnect();
      consumer = undefined;
    },
    isCaughtUp: () => caughtUp,
  };
}
