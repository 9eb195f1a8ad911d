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
  /** The group generation (counted by this consumer: one per join) the batch was fetched in. */
  generation: number;
  /**
   * Confirms with the group coordinator that this member still owns the partition, right before something that
   * cannot be undone; throws {@link OwnershipLost} when it does not (see the argument in ownership.ts).
   */
  ensureOwned(): Promise<void>;
}

/** The partition of a batch was taken away (rebalance, eviction after a stall, stop): abandon the batch. */
export class OwnershipLost extends Error {
  constructor(
    readonly topic: string,
    readonly partition: number,
    reason: string,
    /** The coordinator's answer that showed it (kafkajs rejoins the group on it). */
    readonly coordinatorError?: Error,
  ) {
    super(`no longer the owner of ${topic}/${partition}: ${reason}`);
    this.name = "OwnershipLost";
  }
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
  /**
   * Called with the partitions this member owns after each join (and with an empty map when a rebalance starts, the
   * member stops or crashes: with eager rebalancing every partition is revoked before the next assignment).
   */
  onAssignment?: (assignment: Map<string, number[]>, generation: number) => void;
  /** Partitions of one member fetched and handled at once (each partition's batches stay in order). Default 1. */
  partitionsConsumedConcurrently?: number;
}

export interface BatchConsumer {
  start(eachBatch: (batch: ConsumedBatch) => Promise<void>): Promise<void>;
  stop(): Promise<void>;
  isHealthy(): boolean;
  /** Messages behind the high watermark, per topic-partition, as of the last batch seen. */
  lag(): Map<string, number>;
  /** The partitions this member owns now, per topic (empty between a rebalance's start and the next join). */
  assignment(): Map<string, number[]>;
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
  let generation = 0;
  let assigned = new Map<string, number[]>();
  const revokeAll = () => {
    if (assigned.size === 0) return;
    assigned = new Map();
    options.onAssignment?.(new Map(), generation);
  };

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
      consumer.on(consumer.events.GROUP_JOIN, (e) => {
        joined = true;
        crashed = false;
        generation++;
        assigned = new Map(
          Object.entries(e.payload.memberAssignment).map(([t, ps]) => [t, [...ps].sort((a, b) => a - b)]),
        );
        log.info({ generation, assignment: Object.fromEntries(assigned) }, "partitions assigned");
        options.onAssignment?.(new Map(assigned), generation);
      });
      consumer.on(consumer.events.REBALANCING, () => revokeAll());
      consumer.on(consumer.events.CRASH, (e) => {
        revokeAll();
        crashed = true;
        joined = false;
        log.error({ err: e.payload.error, restart: e.payload.restart }, "consumer crashed");
        if (!e.payload.restart) options.onFatal?.(e.payload.error);
      });
      consumer.on(consumer.events.STOP, () => {
        revokeAll();
        joined = false;
      });
      await consumer.connect();
      await consumer.subscribe({ topics: options.topics, fromBeginning: options.fromBeginning ?? true });
      await consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 1,
        eachBatch: async (payload: EachBatchPayload) => {
          const { batch } = payload;
          if (batch.messages.length === 0) return;
          const last = batch.messages[batch.messages.length - 1]!;
          const nextOffset = (BigInt(last.offset) + 1n).toString();
          lag.set(`${batch.topic}/${batch.partition}`, Number(BigInt(batch.highWatermark) - BigInt(nextOffset)));
          const fetchedIn = generation;
          const owned = () =>
            payload.isRunning() &&
            !payload.isStale() &&
            generation === fetchedIn &&
            (assigned.get(batch.topic)?.includes(batch.partition) ?? false);
          try {
            await eachBatch({
              topic: batch.topic,
              partition: batch.partition,
              messages: batch.messages,
              nextOffset,
              highWatermark: batch.highWatermark,
              heartbeat: payload.heartbeat,
              isRunning: owned,
              generation: fetchedIn,
              async ensureOwned() {
                if (!owned()) throw new OwnershipLost(batch.topic, batch.partition, "the group rebalanced");
                try {
                  // Sent unless a heartbeat went out less than heartbeatInterval ago; an evicted member gets
                  // UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / REBALANCE_IN_PROGRESS here.
                  await payload.heartbeat();
                } catch (err) {
                  revokeAll();
                  throw new OwnershipLost(batch.topic, batch.partition, (err as Error).message, err as Error);
                }
                if (!owned()) throw new OwnershipLost(batch.topic, batch.partition, "the group rebalanced");
              },
            });
          } catch (err) {
            if (!(err instanceof OwnershipLost)) throw err;
            log.warn({ topic: batch.topic, partition: batch.partition, reason: err.message }, "batch abandoned");
            // The coordinator's error goes back to kafkajs, which rejoins the group; nothing is resolved or committed.
            if (err.coordinatorError) throw err.coordinatorError;
            return;
          }
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
    assignment() {
      return new Map(assigned);
    },
  };
}
