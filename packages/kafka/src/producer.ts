import {
  type Admin,
  type IHeaders,
  type Kafka,
  type Message,
  Partitioners,
  type PartitionMetadata,
  type Producer,
  type ProducerBatch,
  type RecordMetadata,
  type TopicMessages,
  type Transaction,
} from "kafkajs";
import { partitionOf } from "./partition.js";

/**
 * An idempotent producer (one request in flight per broker, so retries never reorder or duplicate), or, with
 * `transactionalId`, a transactional one for exactly-once read-process-write.
 *
 * Every send is acks=all (-1): a write is acknowledged once every in-sync replica has it, at least
 * KAFKA_MIN_INSYNC_REPLICAS of them, so an acknowledged record survives the loss of a broker. A send that asks for
 * anything else is refused (kafkajs' idempotent producer would refuse it too; this says why).
 *
 * Every kafkajs request carries ONE partition (see onePartitionPerRequest): kafkajs 2.2.4 loses records when a
 * partition's leader moves during a send that spans several brokers.
 */
export function createProducer(kafka: Kafka, options: { transactionalId?: string } = {}): Producer {
  const producer = kafka.producer({
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
  return onePartitionPerRequest(kafka, producer);
}

/**
 * The partitions' sends of one call, answered once every one has settled: all their records, or the first failure
 * (in the order given). A caller that aborts its transaction on the failure must not leave a send of that
 * transaction running: kafkajs would retry it into the next transaction.
 */
export async function settledSends<T>(sends: Promise<T[]>[]): Promise<T[]> {
  const results = await Promise.allSettled(sends);
  const failed = results.find((r) => r.status === "rejected");
  if (failed) throw failed.reason;
  return results.flatMap((r) => (r.status === "fulfilled" ? r.value : []));
}

/** How long a topic's partition list is used before it is fetched again (kafkajs' own metadata ages too). */
const PARTITIONS_MAX_AGE_MS = 30_000;

function refuseWeakAcks(acks: number | undefined): void {
  if (acks !== undefined && acks !== -1) {
    throw new Error(
      `every send is acks=all (-1), so that no acknowledged record is lost with a broker; got acks=${acks}`,
    );
  }
}

/**
 * Why: kafkajs 2.2.4 sends one request per leader broker and, when some fail, retries only the brokers that failed
 * (its responses are kept per broker across retries). A partition whose leader died and moved to a broker that had
 * already answered for other partitions is never sent again, yet send() resolves: those records are lost
 * (kafkajs#1303; measured: 534 of 50,000 events in test/faults/cluster-broker-loss). So each partition's records go
 * in a send of their own — its retry follows the partition to its new leader — after the partition is chosen here
 * exactly as kafkajs would (DefaultPartitioner: murmur2 on the key over the topic's partitions).
 *
 * Sends to one partition also run one at a time: two in flight for one partition could take overlapping sequence
 * numbers after a failed attempt, and the broker would drop the later as a duplicate of the earlier.
 */
function onePartitionPerRequest(kafka: Kafka, producer: Producer): Producer {
  const partitioner = Partitioners.DefaultPartitioner();
  let admin: Promise<Admin> | undefined;
  const partitionLists = new Map<string, { at: number; partitions: Promise<PartitionMetadata[]> }>();
  const inFlight = new Map<string, Promise<unknown>>();

  const partitionsOf = (topic: string): Promise<PartitionMetadata[]> => {
    const cached = partitionLists.get(topic);
    if (cached && Date.now() - cached.at < PARTITIONS_MAX_AGE_MS) return cached.partitions;
    const partitions = (async () => {
      admin ??= (async () => {
        const a = kafka.admin();
        await a.connect();
        return a;
      })();
      const { topics } = await (await admin).fetchTopicMetadata({ topics: [topic] });
      const list = topics[0]?.partitions ?? [];
      if (list.length === 0) throw new Error(`no partitions known for topic ${topic}`);
      return list;
    })();
    partitionLists.set(topic, { at: Date.now(), partitions });
    partitions.catch(() => partitionLists.delete(topic));
    return partitions;
  };

  /** Runs `send` once the previous send to the same partition has settled. */
  const inTurn = <T>(key: string, send: () => Promise<T>): Promise<T> => {
    const previous = inFlight.get(key) ?? Promise.resolve();
    const run = previous.then(send, send);
    const settled = run.catch(() => undefined);
    inFlight.set(key, settled);
    void settled.then(() => {
      if (inFlight.get(key) === settled) inFlight.delete(key);
    });
    return run;
  };

  const sendBatchVia = async (sender: Producer | Transaction, batch: ProducerBatch): Promise<RecordMetadata[]> => {
    refuseWeakAcks(batch.acks);
    const topicMessages = batch.topicMessages ?? [];
    // Malformed input: let kafkajs say what is wrong with it.
    if (topicMessages.some((t) => !t.topic || !Array.isArray(t.messages))) return sender.sendBatch(batch);
    const perPartition = new Map<string, { topic: string; partition: number; messages: Message[] }>();
    for (const { topic, messages } of topicMessages) {
      const partitionMetadata = await partitionsOf(topic);
      for (const message of messages) {
        // A string key's partition is the DefaultPartitioner's (murmur2 over every partition of the topic), through
        // partitionOf's remembered hashes; anything else (a Buffer key, no key) goes to the partitioner itself.
        const partition =
          message.partition ??
          (typeof message.key === "string"
            ? partitionOf(message.key, partitionMetadata.length)
            : partitioner({ topic, partitionMetadata, message }));
        const key = `${topic}\u0000${partition}`;
        let group = perPartition.get(key);
        if (!group) {
          group = { topic, partition, messages: [] };
          perPartition.set(key, group);
        }
        // The caller's message is not changed; the copy names every field of kafkajs' Message (a spread took 8% of
        // the pricing worker's allocations).
        group.messages.push({
          key: message.key,
          value: message.value,
          headers: message.headers,
          timestamp: message.timestamp,
          partition,
        });
      }
    }
    return settledSends(
      [...perPartition].map(([key, { topic, messages }]) =>
        inTurn(key, () =>
          sender.send({ topic, messages, acks: -1, timeout: batch.timeout, compression: batch.compression }),
        ),
      ),
    );
  };

  const sendVia = (sender: Producer | Transaction, record: { topic: string; messages: Message[] } & ProducerBatch) =>
    sendBatchVia(sender, {
      acks: record.acks,
      timeout: record.timeout,
      compression: record.compression,
      topicMessages: [{ topic: record.topic, messages: record.messages } satisfies TopicMessages],
    });

  return {
    ...producer,
    send: (record) => sendVia(producer, record),
    sendBatch: (batch) => sendBatchVia(producer, batch),
    async transaction() {
      const tx = await producer.transaction();
      return { ...tx, send: (record) => sendVia(tx, record), sendBatch: (batch) => sendBatchVia(tx, batch) };
    },
    async disconnect() {
      const a = admin;
      admin = undefined;
      partitionLists.clear();
      await Promise.all([producer.disconnect(), a?.then((x) => x.disconnect()).catch(() => undefined)]);
    },
  };
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
