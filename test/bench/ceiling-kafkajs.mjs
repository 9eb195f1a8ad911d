// The "ceiling" of the end-to-end benchmark with kafkajs, the client the services use: the same Avro messages
// produced, then consumed from the beginning by a fresh consumer group, on a topic of its own.
//  - produce: the project's producer (createProducer: idempotent, acks=all, one request in flight per broker, one
//    partition per request), sends of 1,000 messages with up to 8 sends in flight;
//  - consume: a consumer group reading from the beginning, maxWaitTimeInMs 100, maxBytesPerPartition 1 MiB,
//    offsets committed after every batch (kafkajs' default), until it has every message.
import { createRequire } from "node:module";
import { createProducer, createTopics } from "@usage/kafka";

const KAFKAJS_VERSION = createRequire(import.meta.url)("kafkajs/package.json").version;

/**
 * @param {{ kafka: import("kafkajs").Kafka, messages: { key: string, value: Buffer }[], partitions?: number }} options
 * @returns {Promise<{ client: string, events: number, produce_per_s: number, consume_per_s: number,
 *   produce_then_consume_per_s: number }>}
 */
export async function kafkajsCeiling({ kafka, messages, partitions = 4 }) {
  const topic = `bench.ceiling.${Date.now()}`;
  await createTopics(kafka, [{ topic, partitions }]);
  const producer = createProducer(kafka);
  await producer.connect();
  const t0 = performance.now();
  const inFlight = [];
  for (let i = 0; i < messages.length; i += 1000) {
    inFlight.push(producer.send({ topic, messages: messages.slice(i, i + 1000) }));
    if (inFlight.length >= 8) await inFlight.shift();
  }
  await Promise.all(inFlight);
  const produced = performance.now() - t0;
  await producer.disconnect();
  const consumer = kafka.consumer({
    groupId: `bench-ceiling-${Date.now()}`,
    maxWaitTimeInMs: 100,
    maxBytesPerPartition: 1 << 20,
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let n = 0;
  const t1 = performance.now();
  let done;
  const finished = new Promise((r) => {
    done = r;
  });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      n += batch.messages.length;
      if (n >= messages.length) done();
    },
  });
  await finished;
  const consumed = performance.now() - t1;
  await consumer.disconnect();
  return {
    client: `kafkajs ${KAFKAJS_VERSION}`,
    events: messages.length,
    produce_per_s: Math.round(messages.length / (produced / 1000)),
    consume_per_s: Math.round(messages.length / (consumed / 1000)),
    produce_then_consume_per_s: Math.round(messages.length / ((produced + consumed) / 1000)),
  };
}
