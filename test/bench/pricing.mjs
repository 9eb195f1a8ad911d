// Pricing benchmark: offline pricing events/s on one core (validate + price, and the full JSON-lines path of
// `usagectl price`), then the pricing worker's events/s through the real broker (read, price, transactional write).
//   node test/bench/pricing.mjs [--events N]
import { usageEventV1, validateUsageEvent } from "@usage/events";
import { createKafka, createProducer, ensureTopics, TOPICS } from "@usage/kafka";
import { createPricer, loadRateCard } from "@usage/pricing";
import { buildPricingWorker } from "@usage/pricing-service";
import { createLogger } from "@usage/runtime";
import { generateEventArray } from "@usage/workload";
import { Registry } from "prom-client";
import { benchBroker, writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const N = arg("--events", 200_000);
const now = Date.now();
const events = generateEventArray({ seed: 77, count: N, now });
const price = createPricer(loadRateCard());

function offline() {
  // Warm up, then measure the pure path and the JSON-lines path separately.
  for (let i = 0; i < 20_000; i++) price(validateUsageEvent(events[i], { now }).value);
  let t = performance.now();
  let ok = 0;
  for (const e of events) {
    const v = validateUsageEvent(e, { now });
    if (v.ok && price(v.value).ok) ok++;
  }
  const pure = N / ((performance.now() - t) / 1000);
  const lines = events.map((e) => JSON.stringify(e));
  t = performance.now();
  let bytes = 0;
  for (const line of lines) {
    const v = validateUsageEvent(JSON.parse(line), { now });
    if (v.ok) {
      const p = price(v.value);
      if (p.ok) bytes += JSON.stringify(p.value).length;
    }
  }
  const jsonLines = N / ((performance.now() - t) / 1000);
  t = performance.now();
  for (const e of events) price(e);
  const priceOnly = N / ((performance.now() - t) / 1000);
  return {
    events: N,
    priced: ok,
    price_only_per_s: Math.round(priceOnly),
    validate_and_price_per_s: Math.round(pure),
    json_lines_per_s: Math.round(jsonLines),
    output_bytes: bytes,
  };
}

async function throughBroker() {
  const broker = await benchBroker();
  const logger = createLogger({ level: "warn", name: "bench" });
  const kafka = createKafka({ brokers: broker.brokers, clientId: "bench-pricing", logger });
  try {
    await ensureTopics(kafka, { partitions: 4 });
    const admin = kafka.admin();
    await admin.connect();
    const endOf = async (topic) => (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
    const producer = createProducer(kafka);
    await producer.connect();
    const messages = events.map((e) => ({ key: e.org_id, value: usageEventV1.encode(e) }));
    for (let i = 0; i < messages.length; i += 2000)
      await producer.send({ topic: TOPICS.events, messages: messages.slice(i, i + 2000) });
    await producer.disconnect();
    const start = await endOf(TOPICS.priced);
    const group = `bench-pricing-${Date.now()}`;
    const worker = buildPricingWorker({
      env: {
        USAGE_RATE_CARD: undefined,
        USAGE_PRICING_GROUP: group,
        USAGE_INSTANCE_ID: "bench",
        USAGE_BACKFILL_DAYS: 35,
      },
      kafka,
      logger,
      registry: new Registry(),
    });
    const t = performance.now();
    await worker.start();
    // The group starts from the beginning of the topic: it prices everything there, this run's events included.
    const total = await endOf(TOPICS.events);
    while ((await endOf(TOPICS.priced)) - start < total) await new Promise((r) => setTimeout(r, 50));
    const seconds = (performance.now() - t) / 1000;
    await worker.stop();
    await admin.disconnect();
    return {
      events: total,
      seconds: Number(seconds.toFixed(2)),
      worker_events_per_s: Math.round(total / seconds),
      note: "includes consumer group join; output counted by high watermark (transaction markers included)",
    };
  } finally {
    await broker.stop();
  }
}

const result = { offline_one_core: offline() };
if (!process.argv.includes("--offline-only")) result.worker_through_broker = await throughBroker();
writeResult("pricing", result);
