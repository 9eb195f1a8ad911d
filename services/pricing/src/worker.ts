/**
 * The pricing worker: usage.events.v1 → usage.priced.v1 (+ usage.dlq.v1), exactly once.
 *
 * Order of work for one batch (one partition; the batches of several partitions are handled side by side):
 *   1. decode, validate and price every message (pure; rejects become DLQ messages with their original bytes);
 *   2. drop event ids already priced by this worker (recent-ids set) or earlier in the same batch;
 *   3. hand the batch to the committer, which puts every batch handed to it meanwhile (one per partition at most:
 *      kafkajs fetches a partition again only once its batch is done) in ONE Kafka transaction: send the priced
 *      events, send the DLQ messages, send each batch's consumer offset (last offset + 1) for the group, commit;
 *   4. only after the commit, remember the batch's event ids as priced.
 * A crash before 3 completes aborts the transaction (the transactional id is fenced on restart): nothing of its
 * batches is visible to read_committed consumers and no offset is advanced, so they are priced again. A crash after
 * 3 leaves output and offsets committed together. Step 4 after 3 means the set never claims an id whose output was
 * not committed. Downstream reads with isolation read_committed. A transaction that fails fails every batch in it:
 * none is resolved, so each is fetched again from its last resolved offset (or, after a rebalance, by its new owner
 * from the committed one). One transaction a fetch instead of one a partition: each costs several broker round
 * trips whatever it holds, and with one a partition an event waited behind the other partitions' transactions.
 *
 * Many instances (SPEC §12): each worker has a stable transactional id (`pricing-<group>-<instance id>[-<member>]`).
 *   - What fences a zombie: a restarted instance with the same id fences its predecessor (initTransactions bumps the
 *     producer epoch: the old open transaction is aborted and any later send or commit of the old producer fails).
 *     An instance whose partitions went to ANOTHER instance (stalled past its session timeout) has a different id,
 *     and kafkajs does not send the group generation with the transactional offset commit (KIP-447), so the broker
 *     alone would not refuse it: the worker confirms ownership with the coordinator before it opens the transaction
 *     and again right before the commit (ConsumedBatch.ensureOwned; the argument is in services/aggregator's
 *     aggregator.ts), and aborts when it no longer owns the partition.
 *   - What the aggregator's deduplication covers: whatever gets past that — a commit frozen for longer than the
 *     session timeout between the check and the broker, a producer retry after a timeout — can only repeat priced
 *     records of event ids already priced. The aggregator drops any event id usage_events already holds, whichever
 *     worker, transaction or replay it came from, so a repeat on usage.priced.v1 never counts twice; the recent-ids
 *     set here only saves that work for the common case (a surface's retries).
 */
import type { PricedUsageEvent } from "@usage/events";
import { pricedUsageEventV1 } from "@usage/events";
import {
  type BatchConsumer,
  type ConsumedBatch,
  createBatchConsumer,
  createProducer,
  deadLetterMessage,
  type Kafka,
  type Message,
  type Producer,
  TOPICS,
} from "@usage/kafka";
import { createGroupCommit, type Logger } from "@usage/runtime";
import type { PricingMetrics } from "./metrics.js";
import { RecentIds } from "./recent-ids.js";
import type { createPriceStep } from "./step.js";

export interface PricingWorkerDeps {
  kafka: Kafka;
  logger: Logger;
  metrics: PricingMetrics;
  priceStep: ReturnType<typeof createPriceStep>;
  groupId: string;
  /** Stable per worker instance, so a restarted instance fences its predecessor's open transaction. */
  transactionalId: string;
  recentIdsCapacity?: number;
  onFatal?: (err: Error) => void;
}

export interface PricingWorker {
  start(): Promise<void>;
  stop(): Promise<void>;
  isHealthy(): boolean;
  consumer: BatchConsumer;
}

export function createPricingWorker(deps: PricingWorkerDeps): PricingWorker {
  const log = deps.logger.child({ service: "pricing" });
  // 200,000 ids (~25 MB): enough to catch a surface's retries; older duplicates are the aggregator's to drop.
  const recent = new RecentIds(deps.recentIdsCapacity ?? 200_000);
  const consumer = createBatchConsumer({
    kafka: deps.kafka,
    groupId: deps.groupId,
    topics: [TOPICS.events],
    logger: log,
    commit: "by-handler",
    // Bigger fetches mean fewer transactions (each costs several broker round trips whatever its size), up to a
    // point: at 1 MiB a partition (thousands of events) the e2e benchmark's sustained rate was that of 4 MiB, with
    // less of the process's RSS in fetched buffers (max 189 against 195 MB in the same hour).
    maxBytesPerPartition: 1024 * 1024,
    // Every partition of a fetch is priced side by side and committed in one transaction (see `commit`).
    partitionsConsumedConcurrently: 64,
    // A fetch waits for 64 KiB or 50 ms: below that rate a transaction would carry a handful of events.
    minBytes: 64 * 1024,
    maxWaitTimeMs: 50,
    onFatal: deps.onFatal,
  });
  let producer: Producer | undefined;
  const commit = createGroupCommit(commitTogether);

  /** Step 3 for the batches handed over meanwhile: their output and offsets, in one transaction. */
  async function commitTogether(group: PricedBatch[]): Promise<void> {
    await Promise.all(group.map((g) => g.batch.ensureOwned()));
    const tx = await producer!.transaction();
    try {
      // Several requests per transaction keep every record batch under the broker's message.max.bytes.
      const priced = group.flatMap((g) => g.priced);
      const dead = group.flatMap((g) => g.dead);
      for (const chunk of chunks(priced, SEND_CHUNK)) await tx.send({ topic: TOPICS.priced, messages: chunk });
      for (const chunk of chunks(dead, SEND_CHUNK)) await tx.send({ topic: TOPICS.dlq, messages: chunk });
      const offsets = new Map<string, { partition: number; offset: string }[]>();
      for (const { batch } of group) {
        const list = offsets.get(batch.topic) ?? [];
        list.push({ partition: batch.partition, offset: batch.nextOffset });
        offsets.set(batch.topic, list);
      }
      await tx.sendOffsets({
        consumerGroupId: deps.groupId,
        topics: [...offsets].map(([topic, partitions]) => ({ topic, partitions })),
      });
      await Promise.all(group.map((g) => g.batch.ensureOwned()));
      await tx.commit();
    } catch (err) {
      await tx.abort().catch((abortErr: unknown) => log.warn({ err: abortErr }, "transaction abort failed"));
      throw err;
    }
  }

  async function handle(batch: ConsumedBatch): Promise<void> {
    const started = performance.now();
    const priced: Message[] = [];
    const dead: Message[] = [];
    const pricedIds: string[] = [];
    const inBatch = new Set<string>();
    const rejectedBy = new Map<string, number>();
    let duplicates = 0;

    for (const message of batch.messages) {
      const outcome = deps.priceStep(message);
      if (outcome.kind === "rejected") {
        const r = outcome.rejection;
        rejectedBy.set(r.code, (rejectedBy.get(r.code) ?? 0) + 1);
        log.debug({ event_id: r.event_id, code: r.code, offset: message.offset }, r.message);
        dead.push(
          deadLetterMessage({
            key: message.key,
            value: message.value,
            code: r.code,
            message: r.message,
            field: r.field,
            eventId: r.event_id,
            source: { topic: batch.topic, partition: batch.partition, offset: message.offset },
          }),
        );
        continue;
      }
      const id = outcome.event.event_id;
      if (recent.has(id) || inBatch.has(id)) {
        duplicates++;
        continue;
      }
      inBatch.add(id);
      pricedIds.push(id);
      priced.push(toMessage(outcome.event));
    }

    await commit({ batch, priced, dead });
    for (const id of pricedIds) recent.add(id);

    const m = deps.metrics;
    m.eventsIn.inc(batch.messages.length);
    m.priced.inc(priced.length);
    for (const [reason, n] of rejectedBy) m.rejected.inc({ reason }, n);
    if (duplicates > 0) m.duplicates.inc({ stage: "pricing" }, duplicates);
    m.lag.set(
      { group: deps.groupId, topic: batch.topic, partition: String(batch.partition) },
      Number(BigInt(batch.highWatermark) - BigInt(batch.nextOffset)),
    );
    const seconds = (performance.now() - started) / 1000;
    m.batchSeconds.set(seconds);
    log.info(
      {
        partition: batch.partition,
        in: batch.messages.length,
        priced: priced.length,
        rejected: dead.length,
        duplicates,
        ms: Math.round(seconds * 1000),
      },
      "batch priced",
    );
  }

  return {
    consumer,
    async start() {
      producer = createProducer(deps.kafka, { transactionalId: deps.transactionalId });
      await producer.connect();
      await consumer.start(handle);
      log.info({ group: deps.groupId }, "pricing worker started");
    },
    async stop() {
      await consumer.stop();
      await producer?.disconnect();
    },
    isHealthy: () => consumer.isHealthy(),
  };
}

const SEND_CHUNK = 2000;

interface PricedBatch {
  batch: ConsumedBatch;
  priced: Message[];
  dead: Message[];
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

function toMessage(event: PricedUsageEvent): Message {
  return { key: event.org_id, value: pricedUsageEventV1.encode(event) };
}
