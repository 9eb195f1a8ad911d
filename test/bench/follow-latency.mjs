// A follower's delay, and the time its stop takes, against its fetch wait (maxWaitTimeMs): records are sent one at a
// time to a quiet spend.totals.v1, and the time from each send (its acknowledgement included) to the follower's
// onBatch is taken.
// The fetch asks for one byte, so the broker answers as soon as a record arrives: the delay should not follow the
// wait; the stop waits for the fetch in flight, so it should.
//   node test/bench/follow-latency.mjs [--records 40] [--waits 50,250,1000]
import { createKafka, createProducer, createTopicFollower, ensureTopics, TOPICS } from "@usage/kafka";
import { createLogger } from "@usage/runtime";
import { benchBroker, percentile, writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const RECORDS = Number(arg("--records", "40"));
const WAITS = arg("--waits", "50,250,1000").split(",").map(Number);
const logger = createLogger({ level: "warn", name: "bench-follow" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const broker = await benchBroker();
const result = { records_per_wait: RECORDS, by_max_wait_ms: {} };
try {
  const kafka = createKafka({ brokers: broker.brokers, clientId: "bench-follow", logger });
  await ensureTopics(kafka, { partitions: 4 });
  const producer = createProducer(kafka, {});
  await producer.connect();
  for (const wait of WAITS) {
    const sentAt = new Map();
    const delays = [];
    const follower = createTopicFollower({
      kafka,
      topic: TOPICS.totals,
      logger,
      name: `bench-follow-${wait}`,
      maxWaitTimeMs: wait,
      onBatch: (_partition, messages) => {
        const at = performance.now();
        for (const m of messages) {
          const t = sentAt.get(m.value?.toString());
          if (t !== undefined) delays.push(at - t);
        }
      },
    });
    await follower.start();
    for (let i = 0; i < RECORDS; i++) {
      const value = `follow-${wait}-${i}`;
      sentAt.set(value, performance.now());
      await producer.send({ topic: TOPICS.totals, messages: [{ key: "org_follow", value }], acks: -1 });
      // Past the longest wait now and then, so some records find the follower's fetch held on an empty topic.
      await sleep(i % 4 === 3 ? wait + 100 : 37);
    }
    const deadline = performance.now() + 30_000;
    while (delays.length < RECORDS && performance.now() < deadline) await sleep(20);
    if (delays.length < RECORDS) throw new Error(`the follower saw ${delays.length} of ${RECORDS} records in 30 s`);
    const t0 = performance.now();
    await follower.stop();
    const stopMs = performance.now() - t0;
    const sorted = delays.sort((a, b) => a - b);
    result.by_max_wait_ms[wait] = {
      delay_p50_ms: Number(percentile(sorted, 50).toFixed(1)),
      delay_max_ms: Number(sorted.at(-1).toFixed(1)),
      stop_ms: Math.round(stopMs),
    };
    console.log(`maxWaitTimeMs ${wait}`, result.by_max_wait_ms[wait]);
  }
  await producer.disconnect();
} finally {
  await broker.stop();
}
writeResult("follow-latency", result);
