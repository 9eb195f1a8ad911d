import type { Logger } from "@usage/runtime";
import type { Consumer, EachBatchPayload, Kafka, KafkaMessage } from "kafkajs";
import { CONSUMER_METADATA_MAX_AGE_MS } from "./client.js";

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
   * cannot be undone; throws {@link OwnershipLost} when it does not (the argument is at the top of
   * services/aggregator/src/aggregator.ts).
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
  /**
   * How much data the broker waits for (up to maxWaitTimeMs) before it answers a fetch. Default 1 byte: answer as
   * soon as anything is there. Larger, a consumer that keeps up fetches at most once per maxWaitTimeMs instead of
   * once per handful of records, so its fixed costs per batch (and the broker's per fetch) stop growing as the
   * rate falls.
   */
  minBytes?: number;
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
  /**
   * The partitions per topic the group coordinator gave this member at its last join; empty before a join, from the
   * moment a rebalance is seen, and after a stop or crash. A member the coordinator evicted (stalled or cut off past
   * its session timeout) may only learn so at its next answered request: pair with `heartbeatAgeMs()`.
   */
  assignment(): Map<string, number[]>;
  /**
   * Milliseconds since the coordinator last confirmed this member: since the request it answered (the join's
   * SyncGroup or a heartbeat) was sent, so an answer read late does not look fresh; Infinity before.
   */
  heartbeatAgeMs(): number;
  readonly groupId: string;
}

/** How long the coordinator keeps a silent member in the group before giving its partitions to others. */
export const CONSUMER_SESSION_TIMEOUT_MS = 10_000;
/** How often a member heartbeats (kafkajs sends none sooner after an answered one). */
export const CONSUMER_HEARTBEAT_INTERVAL_MS = 1000;
/**
 * How much older than one heartbeat interval the last confirmation (dated by its request's send time) may be when an
 * ownership check passes: room for a heartbeat's round trip. The check leaves at least session timeout − 2 s.
 */
const CONFIRMATION_SLACK_MS = 1000;
/**
 * How many times an ownership check asks the coordinator (a heartbeat each, an interval apart) before a confirmation
 * too old to stand on makes it fail.
 */
const OWNERSHIP_ASKS = 3;
/** Coordinator answers after which kafkajs rejoins the group: the member's partitions are gone. */
const MEMBERSHIP_ERRORS = new Set([
  "UNKNOWN_MEMBER_ID",
  "ILLEGAL_GENERATION",
  "REBALANCE_IN_PROGRESS",
  "NOT_COORDINATOR_FOR_GROUP",
  "FENCED_INSTANCE_ID",
]);
/** How long a member waits for its group coordinator to answer before it replaces its consumer (see the watchdog). */
export const COORDINATOR_SILENCE_MS = 3 * CONSUMER_SESSION_TIMEOUT_MS;

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
  /** The member id of the last join. */
  let memberId: string | undefined;
  /**
   * When the coordinator last confirmed that member: the moment the request it answered (the join's SyncGroup or a
   * heartbeat) was SENT, not when its answer was read — an answer read late (a process paused, a socket not read)
   * only proves membership as of the request, and the session timeout runs from there.
   */
  let confirmedAt = Number.NEGATIVE_INFINITY;
  /** When the coordinator last answered anything (the watchdog's measure: is it reachable at all). */
  let answeredAt = Number.NEGATIVE_INFINITY;
  /** When kafkajs last read a heartbeat's answer (Date.now() time: it sends no heartbeat for an interval after). */
  let heartbeatReadAt = Number.NEGATIVE_INFINITY;
  /** When the last answered Heartbeat and SyncGroup requests were sent (Date.now() time, as kafkajs reports it). */
  const sentAt = { heartbeat: undefined as number | undefined, sync: undefined as number | undefined };
  /** A Date.now() instant on the performance.now() clock. */
  const onMonotonic = (wallMs: number) => performance.now() - Math.max(0, Date.now() - wallMs);

  function assign(next: Map<string, number[]>): void {
    if (next.size === 0 && assigned.size === 0) return;
    assigned = next;
    options.onAssignment?.(new Map([...next].map(([topic, partitions]) => [topic, [...partitions]])), generation);
  }
  const revokeAll = () => assign(new Map());

  /**
   * A kafkajs consumer for the group, running `eachBatch`. Events of a consumer that was replaced (see the watchdog)
   * are ignored.
   */
  async function launch(eachBatch: (batch: ConsumedBatch) => Promise<void>): Promise<void> {
    const c = options.kafka.consumer({
      groupId: options.groupId,
      readUncommitted: false, // read_committed: aborted transactions are never seen downstream
      maxWaitTimeInMs: options.maxWaitTimeMs ?? 100,
      minBytes: options.minBytes ?? 1,
      metadataMaxAge: CONSUMER_METADATA_MAX_AGE_MS,
      maxBytesPerPartition: options.maxBytesPerPartition ?? 1024 * 1024,
      // A member that dies (SIGKILL) holds its partitions until the session times out: keep that short.
      sessionTimeout: CONSUMER_SESSION_TIMEOUT_MS,
      // A rebalance waits this long for members to rejoin; a killed member never does.
      rebalanceTimeout: 15000,
      heartbeatInterval: CONSUMER_HEARTBEAT_INTERVAL_MS,
      // A batch that fails (ClickHouse refusing writes, a broker away) is fetched and tried again, for several
      // minutes, before the consumer gives up (onFatal: the service exits and is restarted): an outage of a
      // dependency is ridden out in place rather than through consumer restarts. The wait between tries stays
      // under 2 s: kafkajs heartbeats only between tries, and a member silent for half its session timeout stops
      // delivering (services/notifier/src/ownership.ts).
      retry: { retries: 200, initialRetryTime: 300, maxRetryTime: 2000 },
    });
    c.on(c.events.GROUP_JOIN, (e) => {
      if (c !== consumer) return;
      joined = true;
      crashed = false;
      memberId = e.payload.memberId;
      answeredAt = performance.now();
      confirmedAt = sentAt.sync === undefined ? answeredAt : onMonotonic(sentAt.sync);
      generation++;
      const next = new Map<string, number[]>();
      for (const [topic, partitions] of Object.entries(e.payload.memberAssignment)) {
        if (partitions.length > 0)
          next.set(
            topic,
            [...partitions].sort((x, y) => x - y),
          );
      }
      log.info({ generation, assignment: Object.fromEntries(next) }, "partitions assigned");
      assign(next);
    });
    // kafkajs reports every answered request (before the code that awaited it goes on): the send times of the
    // group's Heartbeat and SyncGroup requests date the confirmations below.
    c.on(c.events.REQUEST, (e) => {
      if (c !== consumer) return;
      if (e.payload.apiName === "Heartbeat") sentAt.heartbeat = e.payload.sentAt;
      else if (e.payload.apiName === "SyncGroup") sentAt.sync = e.payload.sentAt;
    });
    // A heartbeat answered without error, dated by its request. Only one for the member id of the last join counts:
    // one under another member id says nothing of the partitions this member was given.
    c.on(c.events.HEARTBEAT, (e) => {
      if (c !== consumer) return;
      answeredAt = performance.now();
      heartbeatReadAt = Date.now();
      if (e.payload.memberId !== memberId || sentAt.heartbeat === undefined) return;
      confirmedAt = Math.max(confirmedAt, onMonotonic(sentAt.heartbeat));
      sentAt.heartbeat = undefined;
    });
    // The partitions are gone from the moment a rebalance starts: the next join says what this member holds.
    c.on(c.events.REBALANCING, () => {
      if (c === consumer) revokeAll();
    });
    c.on(c.events.CRASH, (e) => {
      if (c !== consumer) return;
      revokeAll();
      crashed = true;
      joined = false;
      memberId = undefined;
      log.error({ err: e.payload.error, restart: e.payload.restart }, "consumer crashed");
      if (!e.payload.restart) options.onFatal?.(e.payload.error);
    });
    c.on(c.events.STOP, () => {
      if (c !== consumer) return;
      revokeAll();
      joined = false;
      memberId = undefined;
    });
    consumer = c;
    await c.connect();
    await c.subscribe({ topics: options.topics, fromBeginning: options.fromBeginning ?? true });
    await c.run({
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
              // kafkajs resolves a heartbeat without a request when one was answered less than heartbeatInterval
              // ago, and a caller that finds one in flight shares it: its answer may have been given long before it
              // is read (a process paused with the answer unread, as the fault suite's zombie; or an event loop
              // busy while it arrived). The check stands on the send time of the last request answered for this
              // member: the coordinator received it later, and cannot give the partition to anyone else before
              // that plus the session timeout. When that is too old to stand on, the coordinator is asked again
              // (once kafkajs sends a heartbeat): a live member is confirmed afresh, an evicted one is told so.
              for (let asked = 1; ; asked++) {
                if (!owned()) throw new OwnershipLost(batch.topic, batch.partition, "the group rebalanced");
                try {
                  // An evicted member gets UNKNOWN_MEMBER_ID / ILLEGAL_GENERATION / REBALANCE_IN_PROGRESS here.
                  await payload.heartbeat();
                } catch (err) {
                  // Only an answer that ends the membership (kafkajs rejoins on it) takes the partitions away; after
                  // a timeout or a lost connection kafkajs goes on with the same membership and no new join would
                  // give them back, so only this batch is abandoned.
                  if (MEMBERSHIP_ERRORS.has((err as { type?: string }).type ?? "")) revokeAll();
                  throw new OwnershipLost(batch.topic, batch.partition, (err as Error).message, err as Error);
                }
                if (!owned()) throw new OwnershipLost(batch.topic, batch.partition, "the group rebalanced");
                const confirmedMsAgo = performance.now() - confirmedAt;
                if (confirmedMsAgo <= CONSUMER_HEARTBEAT_INTERVAL_MS + CONFIRMATION_SLACK_MS) return;
                if (asked >= OWNERSHIP_ASKS) {
                  throw new OwnershipLost(
                    batch.topic,
                    batch.partition,
                    `the coordinator's last confirmation of this member was asked ${Math.round(confirmedMsAgo)} ms ago`,
                  );
                }
                // kafkajs sends the next heartbeat once heartbeatInterval has passed since it read the last answer.
                const due = heartbeatReadAt + CONSUMER_HEARTBEAT_INTERVAL_MS - Date.now();
                await new Promise((resolve) => setTimeout(resolve, Math.max(0, due) + 5));
              }
            },
          });
        } catch (err) {
          if (!(err instanceof OwnershipLost)) throw err;
          log.info({ topic: batch.topic, partition: batch.partition, reason: err.message }, "batch abandoned");
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
  }

  /**
   * Watchdog: kafkajs looks its group coordinator up once and keeps asking it; when the broker that was coordinator
   * dies, every heartbeat and join fails to connect and the member consumes nothing until... never (the scale-out
   * scenario stalled for minutes with four members on a dead coordinator). A member whose coordinator has not answered
   * for COORDINATOR_SILENCE_MS (three session timeouts: it has long been evicted anyway) replaces its consumer, which
   * finds the coordinator afresh; it holds nothing meanwhile.
   */
  let handler: ((batch: ConsumedBatch) => Promise<void>) | undefined;
  let replacing = false;
  let watchdog: NodeJS.Timeout | undefined;
  let replacement: Promise<void> = Promise.resolve();
  function replaceConsumer(): void {
    if (replacing || stopping || !handler) return;
    replacing = true;
    replacement = replace(handler);
  }
  async function replace(eachBatch: (batch: ConsumedBatch) => Promise<void>): Promise<void> {
    const old = consumer;
    try {
      log.warn(
        { silent_ms: Math.round(performance.now() - answeredAt) },
        "the group coordinator has not answered for too long: reconnecting the consumer",
      );
      consumer = undefined;
      joined = false;
      revokeAll();
      // The old consumer may hang leaving a group through a dead coordinator: it gets 10 s, then is left behind (its
      // events are ignored; anything it still tried to commit is fenced like any stale member's).
      await Promise.race([old?.disconnect().catch(() => undefined), new Promise((r) => setTimeout(r, 10_000))]);
      if (stopping) return;
      answeredAt = performance.now();
      await launch(eachBatch);
    } catch (err) {
      log.error({ err }, "reconnecting the consumer failed; trying again");
      answeredAt = performance.now();
    } finally {
      replacing = false;
    }
  }

  return {
    groupId: options.groupId,
    async start(eachBatch) {
      handler = eachBatch;
      await launch(eachBatch);
      watchdog = setInterval(() => {
        if (Number.isFinite(answeredAt) && performance.now() - answeredAt > COORDINATOR_SILENCE_MS) {
          replaceConsumer();
        }
      }, 1000);
      watchdog.unref();
    },
    async stop() {
      if (watchdog) clearInterval(watchdog);
      if (stopping) return;
      stopping = true;
      // A member on its way out holds nothing, even while its last batch finishes.
      revokeAll();
      await replacement;
      await consumer?.disconnect();
      joined = false;
    },
    isHealthy() {
      return joined && !crashed;
    },
    lag() {
      return new Map(lag);
    },
    assignment() {
      return new Map([...assigned].map(([topic, partitions]) => [topic, [...partitions]]));
    },
    heartbeatAgeMs() {
      return performance.now() - confirmedAt;
    },
  };
}
