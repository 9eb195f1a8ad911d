// The floor under the end-to-end ratio: what the pipeline's unavoidable work costs in CPU per event on this machine,
// and the highest share of the kafkajs ceiling that work leaves reachable, whatever the services' own code costs.
//
//   node test/bench/floor.mjs [--events 200000] [--rounds 3] [--rows 10000] [--batches 30]
//
// Every event crosses Kafka twice (the surface's producer → pricing, pricing → the aggregator), is stored once in
// usage_events and is validated and priced once. Measured here in isolation, each as cheaply as this stack does it:
//   - one hop: the e2e benchmark's ceiling (kafkajs produce, then consume, of the same Avro messages: the project's
//     idempotent producer, not pricing's transactions), CPU of this process and of the broker per event;
//   - storing: inserts of `--rows` usage_events rows at a time into the embedded engine (JSONCompactEachRow, the
//     aggregator's format, 10,000 rows an insert: larger than the aggregator's), CPU per event of the process while
//     it inserts and until the engine's merges have settled, less what building the insert bodies cost in
//     JavaScript (measured alone). Merges the engine defers beyond that point are not counted. No spend_daily
//     rollup, no dedup lookup, no Kafka transaction: each would only raise the floor.
//   - pricing: validating and pricing an event in memory (as `node test/bench/pricing.mjs --offline-only`), the one
//     per-event step of the services' own code counted here.
// floor = 2 × hop + storing + pricing. The machine's cores can carry at most cores / floor events a second; divided by
// the ceiling measured in the same run, that is the highest ratio any implementation on this stack and machine reaches
// with everything else (the services' Avro decoding and encoding, pricing's Kafka transactions, the aggregator's rows,
// sums, dedup and rollup, signals, totals, the notifier, the API, the publisher's own library) costing nothing.
import { mkdtempSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { createClickHouse, insertUsageEvents, migrate, USAGE_EVENT_COLUMNS } from "@usage/clickhouse";
import { usageEventV1, validateUsageEvent } from "@usage/events";
import { createKafka } from "@usage/kafka";
import { createPricer, loadRateCard } from "@usage/pricing";
import { createLogger } from "@usage/runtime";
import { generateEventArray, generateEvents } from "@usage/workload";
import { kafkajsCeiling } from "./ceiling-kafkajs.mjs";
import { benchBroker, cpuSecondsOf, percentile, syntheticUsageEventRow, writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const EVENTS = arg("--events", 200_000);
const ROUNDS = arg("--rounds", 3);
const ROWS = arg("--rows", 10_000);
const BATCHES = arg("--batches", 30);
const CORES = cpus().length;
const ascending = (a, b) => a - b;
const median = (xs) => percentile([...xs].sort(ascending), 50);
const cpuNow = () => {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
};
const round1 = (x) => Math.round(x * 10) / 10;

const result = { cores: CORES, events: EVENTS, rounds: ROUNDS };

// 1. One Kafka hop, in the ceiling's own terms.
const broker = await benchBroker();
try {
  if (broker.pid === undefined) throw new Error("floor.mjs measures the broker's CPU: run it without KAFKA_BROKERS");
  const kafka = createKafka({
    brokers: broker.brokers,
    clientId: "bench-floor",
    logger: createLogger({ level: "warn", name: "bench" }),
  });
  const messages = [];
  for (const e of generateEvents({ seed: 1, count: EVENTS, now: Date.now() }))
    messages.push({ key: e.org_id, value: usageEventV1.encode(e) });
  await kafkajsCeiling({ kafka, messages }); // warm up: the JIT of both sides (the first pass is a third slower)
  const hops = [];
  for (let i = 0; i < ROUNDS; i++) {
    const client0 = cpuNow();
    const broker0 = cpuSecondsOf(broker.pid);
    const ceiling = await kafkajsCeiling({ kafka, messages });
    const client = ((cpuNow() - client0) * 1e6) / EVENTS;
    const brokerUs = ((cpuSecondsOf(broker.pid) - broker0) * 1e6) / EVENTS;
    hops.push({ ceiling_per_s: ceiling.produce_then_consume_per_s, client_us: client, broker_us: brokerUs });
    console.log("hop", i + 1, hops.at(-1));
  }
  result.hop = {
    runs: hops.map((h) => ({
      ceiling_per_s: h.ceiling_per_s,
      client_us: round1(h.client_us),
      broker_us: round1(h.broker_us),
    })),
    ceiling_per_s: median(hops.map((h) => h.ceiling_per_s)),
    us_per_event: round1(median(hops.map((h) => h.client_us + h.broker_us))),
  };
} finally {
  await broker.stop();
}

// 2. Storing an event: usage_events inserts and their merges on the embedded engine.
const ch = await createClickHouse({ dataDir: mkdtempSync(join(tmpdir(), "usage-bench-floor-")) });
try {
  await migrate(ch.client);
  let n = 0;
  const batch = () => Array.from({ length: ROWS }, () => syntheticUsageEventRow(++n, { random: true }));
  const settle = async () => {
    for (let quiet = 0; quiet < 3; ) {
      await new Promise((r) => setTimeout(r, 500));
      const rs = await ch.client.query({ query: "SELECT count() AS n FROM system.merges", format: "JSONEachRow" });
      quiet = Number((await rs.json())[0]?.n ?? 0) === 0 ? quiet + 1 : 0;
    }
  };
  await insertUsageEvents(ch.client, batch(), "warm-up");
  await settle();
  const stores = [];
  for (let r = 0; r < ROUNDS; r++) {
    const batches = Array.from({ length: BATCHES }, batch);
    // What building the bodies costs in JavaScript, as insertUsageEvents and @clickhouse/client build them.
    const encode0 = cpuNow();
    let bytes = 0;
    for (const rows of batches)
      bytes += rows.map((row) => `${JSON.stringify(USAGE_EVENT_COLUMNS.map((c) => row[c]))}\n`).join("").length;
    const encodeUs = ((cpuNow() - encode0) * 1e6) / (ROWS * BATCHES);
    const cpu0 = cpuNow();
    for (const [i, rows] of batches.entries()) await insertUsageEvents(ch.client, rows, `floor:${r}:${i}`);
    await settle();
    const totalUs = ((cpuNow() - cpu0) * 1e6) / (ROWS * BATCHES);
    stores.push({
      total_us: totalUs,
      encode_us: encodeUs,
      engine_us: totalUs - encodeUs,
      bytes_per_event: bytes / (ROWS * BATCHES),
    });
    console.log("store", r + 1, stores.at(-1));
  }
  result.store = {
    rows_per_insert: ROWS,
    inserts_per_round: BATCHES,
    runs: stores.map((s) => ({
      total_us: round1(s.total_us),
      encode_us: round1(s.encode_us),
      engine_us: round1(s.engine_us),
    })),
    body_bytes_per_event: Math.round(stores[0].bytes_per_event),
    us_per_event: round1(median(stores.map((s) => s.engine_us))),
  };
} finally {
  await ch.close();
}

// 3. Pricing an event in memory, on one core.
{
  const now = Date.now();
  const events = generateEventArray({ seed: 77, count: EVENTS, now });
  const price = createPricer(loadRateCard());
  const pass = () => {
    let ok = 0;
    for (const e of events) {
      const v = validateUsageEvent(e, { now });
      if (v.ok && price(v.value).ok) ok++;
    }
    return ok;
  };
  pass(); // warm up
  const runs = [];
  for (let r = 0; r < ROUNDS; r++) {
    const cpu0 = cpuNow();
    if (pass() !== EVENTS) throw new Error("the workload's events did not all price");
    runs.push(((cpuNow() - cpu0) * 1e6) / EVENTS);
  }
  result.pricing = { runs: runs.map(round1), us_per_event: round1(median(runs)) };
  console.log("pricing", result.pricing);
}

// 4. The floor and what it leaves reachable.
const floorUs = 2 * result.hop.us_per_event + result.store.us_per_event + result.pricing.us_per_event;
const boundPerS = (CORES * 1e6) / floorUs;
result.floor = {
  us_per_event: round1(floorUs),
  max_events_per_s: Math.round(boundPerS),
  max_ratio_to_ceiling: Math.round((boundPerS / result.hop.ceiling_per_s) * 1000) / 1000,
  goal_ratio: 0.5,
};
writeResult("floor", result);
