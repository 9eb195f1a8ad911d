import { type IHeaders, type Kafka, type Message, Partitioners, type PartitionMetadata, type Producer } from "kafkajs";

/**
 * An idempotent producer (acks=all, one request in flight per broker, so retries never reorder or duplicate),
 * or, with `transactionalId`, a transactional one for exactly-once read-process-write.
 */
export function createProducer(kafka: Kafka, options: { transactionalId?: string } = {}): Producer {
  return kafka.producer({
    idempotent: true,
    maxInFlightRequests: 1,
    allowAutoTopicCreation: false,
    // Murmur2 on the key, as the Java client: an org's events land on the partition any Kafka client would pick.
    createPartitioner: Partitioners.DefaultPartitioner,
    // Retries without a count limit on the producer's own errors. A broker that is unreachable still fails a send
    // after about 10 s (kafkajs's connection retries have their own budget): the services treat a failed send as
    // "not sent", fail the batch and get it redelivered.
    retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 200, maxRetryTime: 5000 },
    ...(options.transactionalId ? { transactionalId: options.transactionalId, transactionTimeout: 60000 } : {}),
  });
}

const keyPartitioner = Partitioners.DefaultPartitioner();
const partitionsOfCount = new Map<number, PartitionMetadata[]>();

/**
 * The partition `createProducer` sends a message keyed `key` to, on a topic of `partitionCount` partitions: the
 * producer's own partitioner (murmur2 of the key, as the Java client), so the answer cannot drift from it.
 */
export function partitionOfKey(key: string, partitionCount: number): number {
  if (!Number.isInteger(partitionCount) || partitionCount < 1) throw new Error(`bad partition count ${partitionCount}`);
  let partitionMetadata = partitionsOfCount.get(partitionCount);
  if (!partitionMetadata) {
    partitionMetadata = Array.from({ length: partitionCount }, (_, partitionId) => ({
      partitionErrorCode: 0,
      partitionId,
      leader: 0,
      replicas: [0],
      isr: [0],
    }));
    partitionsOfCount.set(partitionCount, partitionMetadata);
  }
  return keyPartitioner({ topic: "", partitionMetadata, message: { key, value: null } });
}

export interface DeadLetter {
  /** The original message value, unchanged. */
  value: Buffer | null;
  key: Buffer | string | null;
  code: string;
  message: string;
  field?: string;
  eventId?: string;
  source: { topic: string; partition: number; offset: string };
}

/**
 * A `usage.dlq.v1` message: the original bytes as the value, the reason in headers (`dlq.reason` is one of the
 * reason codes of SPEC §3), keyed like the source message so an org's rejects stay in one partition.
 */
export function deadLetterMessage(d: DeadLetter): Message {
  const headers: IHeaders = {
    "dlq.reason": d.code,
    "dlq.message": d.message,
    "dlq.source.topic": d.source.topic,
    "dlq.source.partition": String(d.source.partition),
    "dlq.source.offset": d.source.offset,
  };
  if (d.field) headers["dlq.field"] = d.field;
  if (d.eventId) headers["dlq.event_id"] = d.eventId;
  return { key: d.key, value: d.value, headers };
}

export interface ReadDeadLetter {
  reason: string;
  message: string;
  field?: string;
  eventId?: string;
  sourceTopic?: string;
}

/** Reads the reason headers of a `usage.dlq.v1` message. */
export function readDeadLetter(headers: IHeaders | undefined): ReadDeadLetter {
  const h = (name: string) => {
    const v = headers?.[name];
    if (v === undefined) return undefined;
    return (Array.isArray(v) ? v[0] : v)?.toString();
  };
  return {
    reason: h("dlq.reason") ?? "",
    message: h("dlq.message") ?? "",
    field: h("dlq.field"),
    eventId: h("dlq.event_id"),
    sourceTopic: h("dlq.source.topic"),
  };
}
