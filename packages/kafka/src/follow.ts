/**
 * Reading a whole topic, every partition, from its first offset, and going on with what arrives: what a member
 * needs of a compacted topic it holds in full (the control plane's changes, the running totals of
 * spend.totals.v1), as a Kafka Streams GlobalKTable is read. kafkajs needs a consumer group to consume: each
 * follower uses a throwaway group of its own and never commits, so every follower reads everything.
 *
 * A follower never stops following while its process runs. kafkajs restarts a consumer after a retriable failure,
 * but one it gives up on (a non-retriable error, such as no group coordinator found while the brokers are away)
 * stays stopped: `replaceConsumerWhenGivenUp` starts a new one. The new consumer is in a new group, so it starts from
 * offset 0; it seeks to the position reached, and whatever it still fetches below that position is skipped, so
 * `onBatch` never sees a partition go back.
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
  /**
   * Called with each batch, in offset order per partition; awaited before the next batch of any partition. A
   * record is handed over again only if the call that held it threw.
   */
  onBatch: (partition: number, messages: KafkaMessage[]) => void | Promise<void>;
  /** How long the broker may hold a fetch that finds nothing new. Default FOLLOWER_MAX_WAIT_MS (client.ts says why). */
  maxWaitTimeMs?: number;
}

type ReplaceOptions = {
  /** The follower's consumer now; undefined once it stops. */
  current: () => Consumer | undefined;
  /** Starts a new consumer and makes it the current one (before connecting it). */
  launch: () => Promise<void>;
  log: Logger;
  what: string;
};

/**
 * Watches a follower's consumer and replaces it if kafkajs gives up on it (a crash kafkajs does not restart), also
 * while the follower is still catching up at start: start goes on waiting (a start without any broker fails before,
 * on the offsets it reads first). A second after the crash the dead consumer is disconnected and `launch` called for
 * a new one, which is watched the same way; a launch that fails (its connect retried out while the brokers are still
 * away) is replaced in turn. Nothing is done for a consumer that is no longer current.
 */
export function replaceConsumerWhenGivenUp(consumer: Consumer, opts: ReplaceOptions): void {
  consumer.on(consumer.events.CRASH, (e) => {
    opts.log.error({ err: e.payload.error, restart: e.payload.restart }, `${opts.what} consumer crashed`);
    if (!e.payload.restart && opts.current() === consumer) replaceLater(consumer, opts);
  });
}

function replaceLater(dead: Consumer, opts: ReplaceOptions): void {
  opts.log.warn(`${opts.what} replacing its consumer in 1 s`);
  setTimeout(() => {
    if (opts.current() !== dead) return;
    void dead
      .disconnect()
      .catch(() => undefined)
      .then(() => (opts.current() === dead ? opts.launch() : undefined))
      .catch((err: unknown) => {
        opts.log.error({ err }, `${opts.what} could not start a new consumer; trying again`);
        // launch() made the failed consumer the current one before it failed.
        const failed = opts.current();
        if (failed) replaceLater(failed, opts);
      });
  }, 1000).unref();
}

export function createTopicFollower(options: TopicFollowerOptions): TopicFollower {
  const log = options.logger.child({ component: "follower", topic: options.topic });
  let consumer: Consumer | undefined;
  let stopped = false;
  let caughtUp = false;
  const target = new Map<number, bigint>();
  /** Per partition, the offset of the next record to hand over. */
  const position = new Map<number, bigint>();
  let startWaiter: { resolve: () => void; reject: (err: unknown) => void } | undefined;
  const check = () => {
    if (caughtUp) return;
    for (const [p, end] of target) if ((position.get(p) ?? 0n) < end) return;
    caughtUp = true;
    startWaiter?.resolve();
    startWaiter = undefined;
  };

  async function launch(): Promise<void> {
    const c = options.kafka.consumer({
      groupId: `${options.name}-${randomUUID()}`,
      maxWaitTimeInMs: options.maxWaitTimeMs ?? FOLLOWER_MAX_WAIT_MS,
      metadataMaxAge: CONSUMER_METADATA_MAX_AGE_MS,
      sessionTimeout: 10000,
      heartbeatInterval: 1000,
    });
    consumer = c;
    c.on(c.events.GROUP_JOIN, (e) => {
      // A replacement starts from offset 0 (nothing is committed): skip ahead rather than refetch the partition.
      // Only an optimisation: eachBatch skips what was handed over whether or not the seek took.
      for (const partitions of Object.values(e.payload.memberAssignment)) {
        for (const partition of partitions) {
          const at = position.get(partition);
          if (!at) continue;
          try {
            c.seek({ topic: options.topic, partition, offset: at.toString() });
          } catch (err) {
            log.warn({ err, partition }, "follower could not seek after a join; refetching from offset 0");
          }
        }
      }
    });
    replaceConsumerWhenGivenUp(c, { current: () => (stopped ? undefined : consumer), launch, log, what: "follower" });
    await c.connect();
    await c.subscribe({ topic: options.topic, fromBeginning: true });
    await c.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        if (consumer !== c) return;
        // What a replaced consumer fetches again (before its seek took) was handed over already.
        const from = position.get(batch.partition) ?? 0n;
        const fresh = batch.messages.filter((m) => BigInt(m.offset) >= from);
        if (fresh.length > 0) await options.onBatch(batch.partition, fresh);
        const last = batch.messages[batch.messages.length - 1];
        // A batch of compacted-away or control records still moves the position to the high watermark seen.
        const next = last ? BigInt(last.offset) + 1n : BigInt(batch.highWatermark);
        const known = position.get(batch.partition) ?? 0n;
        position.set(batch.partition, next > known ? next : known);
        if (!caughtUp && batch.messages.length === 0) position.set(batch.partition, BigInt(batch.highWatermark));
        check();
      },
    });
  }

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
      const done = new Promise<void>((resolve, reject) => {
        startWaiter = { resolve, reject };
      });
      // Awaited below; a rejection while launch() is still running is not an unhandled one.
      done.catch(() => undefined);
      check();
      try {
        await launch();
      } catch (err) {
        startWaiter = undefined;
        throw err;
      }
      await done;
      log.debug({ partitions: target.size }, "caught up");
    },
    async stop() {
      stopped = true;
      startWaiter?.reject(new Error("follower stopped"));
      startWaiter = undefined;
      await consumer?.disconnect();
      consumer = undefined;
    },
    isCaughtUp: () => caughtUp,
  };
}
