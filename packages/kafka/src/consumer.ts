import type { Logger } from "@usage/runtime";
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from "kafkajs";

export interface ConsumedBatch {
  topic: string;
  partition: number;
  messages: KafkaMessage[];
  /** The offset to commit after this batch: last offset + 1, as a string. */
  nextOffset: string;
  highWatermark: string;
  /** Keeps the group membership alive during long work. */
  heartbeat(): Promise<void>;
  /** False once a rebalance or stop has taken the partition away: stop work, do not commit. */
  isRunning(): boolean;
}

/**
 * How offsets are committed:
 *  - "after-batch": the consumer commits `nextOffset` once the handler has returned (at-least-once: the handler
 *    must make redelivery harmless, e.g. by deduplicating on write).
 *  - "by-handler": the handler commits the offsets itself, inside a Kafka transaction (`sendOffsets`), and the
 *    consumer never commits (exactly-once read-process-write).
 */
export type CommitMode = "after-batch" | "by-handler";

export interface BatchConsumerOptions {
  kafka: Kafka;
  groupId: string;
  topics: string[];
  logger: Logger;
  commit: CommitMode;
  /** Where a group without committed offsets starts. Default: the earliest offset. */
  fromBeginning?: boolean;
  /** How long the broker may hold a fetch waiting for data; lower is fresher, higher is cheaper. */
  maxWaitTimeMs?: number;
  maxBytesPerPartition?: number;
  /** Called when the consumer stops for good on an error it cannot retry; a service exits so it is restarted. */
  onFatal?: (err: Error) => void;
}

export interface BatchConsumer {
  start(eachBatch: (batch: ConsumedBatch) => Promise<void>): Promise<void>;
  stop(): Promise<void>;
  isHealthy(): boolean;
  /** Messages behind the high watermark, per topic-partition, as of the last batch seen. */
  lag(): Map<string, number>;
  readonly groupId: string;
}

/** The one consumer abstraction every service uses: batches per partition, explicit commits, read_committed. */
export function createBatchConsumer(options: BatchConsumerOptions): BatchConsumer {
  const log = options.logger.child({ component: "consumer", group: options.groupId });
  const lag = new Map<string, number>();
  let consumer: Consumer | undefined;
  let joined = false;
  let crashed = false;
  let stopping = false;

  return {
    groupId: options.groupId,
    async start(eachBatch) {
      consumer = options.kafka.consumer({
        groupId: options.groupId,
        readUncommitted: false, // read_committed: aborted transactions are never seen downstream
        maxWaitTimeInMs: options.maxWaitTimeMs ?? 100,
        maxBytesPerPartition: options.maxBytesPerPartition ?? 1024 * 1024,
        // A member that dies (SIGKILL) holds its partitions until the session times out: keep that short.
        sessionTimeout: 10000,
        // A rebalance waits this long for members to rejoin; a killed member never does.
        rebalanceTimeout: 15000,
        heartbeatInterval: 1000,
        retry: { retries: 10 },
      });
      consumer.on(consumer.events.GROUP_JOIN, () => {
        joined = true;
        crashed = false;
      });
      consumer.on(consumer.events.CRASH, (e) => {
        crashed = true;
        joined = false;
        log.error({ err: e.payload.error, restart: e.payload.restart }, "consumer crashed");
        if (!e.payload.restart) options.onFatal?.(e.payload.error);
      });
      consumer.on(consumer.events.STOP, () => {
        joined = false;
      });
      await consumer.connect();
      await consumer.subscribe({ topics: options.topics, fromBeginning: options.fromBeginning ?? true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: 1,
        eachBatch: async (payload: EachBatchPayload) => {
          const { batch } = payload;
          if (batch.messages.length === 0) return;
          const last = batch.messages[batch.messages.length - 1]!;
          const nextOffset = (BigInt(last.offset) + 1n).toString();
          lag.set(`${batch.topic}/${batch.partition}`, Number(BigInt(batch.highWatermark) - BigInt(nextOffset)));
          await eachBatch({
            topic: batch.topic,
            partition: batch.partition,
            messages: batch.messages,
            nextOffset,
            highWatermark: batch.highWatermark,
            heartbeat: payload.heartbeat,
            isRunning: () => payload.isRunning() && !payload.isStale(),
          });
          // A partition taken away mid-batch is not resolved: its next owner starts from the committed offset.
          if (!payload.isRunning() || payload.isStale()) return;
          payload.resolveOffset(last.offset);
          if (options.commit === "after-batch") {
            await payload.commitOffsetsIfNecessary({
              topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: nextOffset }] }],
            });
          }
          await payload.heartbeat();
        },
      });
    },
    async stop() {
      if (stopping || !consumer) return;
      stopping = true;
      await consumer.disconnect();
      joined = false;
    },
    isHealthy() {
      return joined && !crashed;
    },
    lag() {
      return new Map(lag);
    },
  };
}
