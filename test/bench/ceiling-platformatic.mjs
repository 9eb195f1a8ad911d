// The end-to-end benchmark's "ceiling" measured with @platformatic/kafka instead of kafkajs: the same messages, the
// same broker, the same shape (topic of its own with 4 partitions; sends of 1,000 messages, up to 8 in flight; then a
// fresh consumer group reading from the beginning until it has every message), to tell whether the client is the limit.
//
// Settings, and how they compare with the kafkajs ceiling (ceiling-kafkajs.mjs):
//  - acks=all (-1), as every send of the project's producer (packages/kafka/src/producer.ts).
//  - Not idempotent by default. The project's kafkajs producer is idempotent, but @platformatic/kafka 1.27.0 takes an
//    idempotent batch's sequence number when the request is built and advances it only on the response: concurrent
//    sends to one partition go out with the same sequence and the broker drops all but the first as duplicates, while
//    every send resolves (platformatic/kafka#326; on the local broker, 8 concurrent sends of 1,000 wrote 1,000 records).
//    `idempotent: true` measures the idempotent producer anyway, with one send in flight at a time, which is safe.
//  - Partitioning: the library's default, murmur2 on the key as kafkajs' DefaultPartitioner and the Java client, so
//    every message lands on the same partition as with kafkajs. No compression, as with kafkajs.
//  - Requests: one send of 1,000 messages is one Produce request carrying every partition it touches (kafkajs' is
//    split in one request per partition by createProducer); the library's default of at most 5 requests in flight
//    per connection applies (kafkajs: 1, being idempotent).
//  - Consumer: maxWaitTime 100 ms; maxBytes 1 MiB per partition, i.e. 4 MiB with 4 partitions. The library takes one
//    maxBytes as both the per-partition and the per-response limit; kafkajs' fetch here returns at most 1 MiB per
//    partition (maxBytesPerPartition) and 10 MiB in all, so at most 4 MiB: with maxBytes = partitions × 1 MiB each
//    response may carry as much as a kafkajs one. Offsets committed after every fetch (autocommit: true, as kafkajs'
//    eachBatch with its default autoCommit); read committed, as kafkajs by default. The consume time starts before
//    joining the group, as kafkajs' does.
//
//   node test/bench/ceiling-platformatic.mjs [--events 200000] [--idempotent]
// prints the kafkajs ceiling, then this one, then (--idempotent) this one with the idempotent producer: one JSON line
// each. It uses the broker of KAFKA_BROKERS when set, else starts one (test/bench/lib.mjs).
import { readFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { Admin, Consumer, MessagesStreamModes, ProduceAcks, Producer, stringSerializer } from "@platformatic/kafka";
import { usageEventV1 } from "@usage/events";
import { createKafka } from "@usage/kafka";
import { createLogger } from "@usage/runtime";
import { generateEvents } from "@usage/workload";
import { kafkajsCeiling } from "./ceiling-kafkajs.mjs";
import { benchBroker } from "./lib.mjs";

const PLATFORMATIC_VERSION = JSON.parse(
  readFileSync(new URL("../package.json", import.meta.resolve("@platformatic/kafka")), "utf8"),
).version;

const SEND_SIZE = 1000;
const SENDS_IN_FLIGHT = 8;
/** The consumer fails the measurement when it receives nothing for this long. */
const STALL_MS = 60_000;

/**
 * @param {{ brokers: string[], messages: { key: string, value: Buffer }[], partitions?: number,
 *   idempotent?: boolean }} options
 * @returns {Promise<{ client: string, events: number, produce_per_s: number, consume_per_s: number,
 *   produce_then_consume_per_s: number, idempotent?: true }>}
 */
export async function platformaticCeiling({ brokers, messages, partitions = 4, idempotent = false }) {
  const clientId = "bench-ceiling-platformatic";
  const topic = `bench.ceiling.platformatic.${Date.now()}`;
  const admin = new Admin({ clientId, bootstrapBrokers: brokers });
  const producer = new Producer({
    clientId,
    bootstrapBrokers: brokers,
    acks: ProduceAcks.ALL,
    idempotent,
    serializers: { key: stringSerializer },
  });
  const consumer = new Consumer({
    clientId,
    groupId: `bench-ceiling-platformatic-${Date.now()}`,
    bootstrapBrokers: brokers,
    maxWaitTime: 100,
    maxBytes: partitions * (1 << 20),
    autocommit: true,
  });
  let stream;
  try {
    await createTopic(admin, consumer, topic, partitions);
    await admin.close();

    const t0 = performance.now();
    const inFlight = [];
    try {
      for (let i = 0; i < messages.length; i += SEND_SIZE) {
        const batch = messages.slice(i, i + SEND_SIZE).map(({ key, value }) => ({ topic, key, value }));
        inFlight.push(producer.send({ messages: batch }));
        if (inFlight.length >= (idempotent ? 1 : SENDS_IN_FLIGHT)) await inFlight.shift();
      }
      await Promise.all(inFlight);
    } catch (err) {
      await Promise.allSettled(inFlight);
      throw err;
    }
    const produced = performance.now() - t0;
    await producer.close();

    const t1 = performance.now();
    stream = await consumer.consume({ topics: [topic], mode: MessagesStreamModes.EARLIEST });
    await new Promise((resolve, reject) => {
      let n = 0;
      let seen = 0;
      const watchdog = setInterval(() => {
        if (n > seen) seen = n;
        else fail(new Error(`consumer received nothing for ${STALL_MS} ms (${n} of ${messages.length} messages)`));
      }, STALL_MS);
      const fail = (err) => {
        clearInterval(watchdog);
        reject(err);
      };
      stream.once("error", fail);
      stream.on("data", () => {
        if (++n === messages.length) {
          clearInterval(watchdog);
          resolve();
        }
      });
    });
    const consumed = performance.now() - t1;
    await stream.close();
    await consumer.close();

    return {
      client: `@platformatic/kafka ${PLATFORMATIC_VERSION}`,
      ...(idempotent ? { idempotent: true } : {}),
      events: messages.length,
      produce_per_s: Math.round(messages.length / (produced / 1000)),
      consume_per_s: Math.round(messages.length / (consumed / 1000)),
      produce_then_consume_per_s: Math.round(messages.length / ((produced + consumed) / 1000)),
    };
  } finally {
    // Closing a client twice is a no-op: on success these are already closed; on failure nothing may stay open.
    await stream?.close().catch(() => undefined);
    await Promise.allSettled([consumer.close(true), producer.close(), admin.close()]);
  }
}

/**
 * Creates the topic and waits until every partition has a leader (as createTopics of @usage/kafka does) that answers
 * for it. The metadata names a leader a moment before that broker serves the partition, and a Produce in that moment
 * fails with NOT_LEADER_OR_FOLLOWER, whose response (Produce v10+, KIP-951) carries tagged fields that
 * @platformatic/kafka 1.27.0 does not skip: reading the rest of the response goes wrong, and the error that results
 * is not one of the library's, on which its retry check throws outside any caller (the process exits). A ListOffsets
 * that succeeds says every leader serves its partition.
 */
async function createTopic(admin, consumer, topic, partitions) {
  await admin.createTopics({
    topics: [topic],
    partitions,
    replicas: 1,
    configs: [{ name: "retention.ms", value: "-1" }],
  });
  const deadline = Date.now() + 30_000;
  for (;;) {
    try {
      const metadata = await admin.metadata({ topics: [topic], forceUpdate: true });
      const t = metadata.topics.get(topic);
      if (t && t.partitionsCount === partitions && t.partitions.every((p) => p.leader >= 0)) {
        await consumer.listOffsets({ topics: [topic] });
        return;
      }
    } catch (err) {
      if (Date.now() > deadline) throw err;
    }
    if (Date.now() > deadline) throw new Error(`topic ${topic} has no leader after 30 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function main() {
  const i = process.argv.indexOf("--events");
  const count = i > 0 ? Number(process.argv[i + 1]) : 200_000;
  const broker = await benchBroker();
  try {
    // As the end-to-end benchmark builds them: Avro values keyed by org_id.
    const messages = [];
    for (const e of generateEvents({ seed: 1, count, now: Date.now() }))
      messages.push({ key: e.org_id, value: usageEventV1.encode(e) });
    const logger = createLogger({ level: "warn", name: "bench" });
    const kafka = createKafka({ brokers: broker.brokers, clientId: "bench-ceiling", logger });
    console.log(JSON.stringify(await kafkajsCeiling({ kafka, messages })));
    console.log(JSON.stringify(await platformaticCeiling({ brokers: broker.brokers, messages })));
    if (process.argv.includes("--idempotent"))
      console.log(JSON.stringify(await platformaticCeiling({ brokers: broker.brokers, messages, idempotent: true })));
  } finally {
    await broker.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
