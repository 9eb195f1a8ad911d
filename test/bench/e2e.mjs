// End-to-end benchmark on one machine: broker, embedded ClickHouse and every service together.
//  1. ceiling: plain kafkajs produce → consume of the same Avro messages on the same broker;
//  2. end to end: events/s from publishing until the rollup is visible through the API (ClickHouse spend_daily),
//     sustained for --minutes (publishing as fast as the producer library allows, bounded by back-pressure);
//  3. event → cap signal latency (p50/p99) while a background load runs at half the end-to-end rate;
//  4. RSS of each service process (pricing; aggregator incl. the embedded ClickHouse engine; notifier), sampled 1/s.
//   node test/bench/e2e.mjs [--minutes 1] [--ceiling-events 200000] [--max-backlog 200000]
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { usageEventV1 } from "@usage/events";
import { createKafka, createProducer, createTopics, ensureTopics, TOPICS } from "@usage/kafka";
import { createUsageProducer } from "@usage/producer";
import { createLogger } from "@usage/runtime";
import { generateEvents } from "@usage/workload";
import { benchBroker, cpuSecondsOf, percentile, writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const MINUTES = arg("--minutes", 1);
const MAX_BACKLOG = arg("--max-backlog", 200_000);
const CEILING_EVENTS = arg("--ceiling-events", 200_000);
const PORT = arg("--port", 18282);
const KEY = "bench-operator-key-0123456789";
const BIN = fileURLToPath(new URL("../../packages/cli/bin/usagectl.js", import.meta.url));
const logger = createLogger({ level: "warn", name: "bench" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const broker = await benchBroker();
const kafka = createKafka({ brokers: broker.brokers, clientId: "bench-e2e", logger });
const result = {};
const children = [];
try {
  await ensureTopics(kafka, { partitions: 4 });

  // 1. Ceiling: the same Avro bytes through plain kafkajs, on a topic of its own.
  {
    const topic = `bench.ceiling.${Date.now()}`;
    await createTopics(kafka, [{ topic, partitions: 4 }]);
    const messages = [];
    for (const e of generateEvents({ seed: 1, count: CEILING_EVENTS, now: Date.now() }))
      messages.push({ key: e.org_id, value: usageEventV1.encode(e) });
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
    result.ceiling_kafkajs = {
      events: messages.length,
      produce_per_s: Math.round(messages.length / (produced / 1000)),
      consume_per_s: Math.round(messages.length / (consumed / 1000)),
      produce_then_consume_per_s: Math.round(messages.length / ((produced + consumed) / 1000)),
    };
    console.log("ceiling", result.ceiling_kafkajs);
  }

  // The services as separate processes, so each one's RSS can be read.
  const dataDir = mkdtempSync(join(tmpdir(), "usage-bench-e2e-"));
  const stamp = Date.now();
  const env = {
    ...process.env,
    // A heap cap as a deployment would set one: V8 otherwise grows the heap lazily on a big machine.
    NODE_OPTIONS: process.env.USAGE_BENCH_NODE_OPTIONS ?? "--max-old-space-size=160",
    KAFKA_BROKERS: broker.brokers.join(","),
    USAGE_DATA_DIR: dataDir,
    USAGE_API_PORT: String(PORT),
    USAGE_API_KEY: KEY,
    LOG_LEVEL: "warn",
    USAGE_PRICING_GROUP: `bench-pricing-${stamp}`,
    USAGE_AGGREGATOR_GROUP: `bench-agg-${stamp}`,
    USAGE_NOTIFIER_GROUP: `bench-notifier-${stamp}`,
    USAGE_INSTANCE_ID: "bench",
  };
  const run = (service, extra = {}) => {
    // USAGE_BENCH_NODE_ARGS: flags NODE_OPTIONS refuses, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile.
    const nodeArgs = (process.env.USAGE_BENCH_NODE_ARGS ?? "").split(" ").filter(Boolean);
    const child = spawn(process.execPath, [...nodeArgs, BIN, "run", service], {
      env: { ...env, ...extra },
      stdio: ["ignore", "ignore", "inherit"],
    });
    children.push(child);
    return child;
  };
  const services = {
    pricing: run("pricing"),
    aggregator: run("aggregator"),
    notifier: run("notifier", { USAGE_DATA_DIR: mkdtempSync(join(tmpdir(), "usage-bench-notifier-")) }),
  };
  const rss = Object.fromEntries(Object.keys(services).map((k) => [k, []]));
  const sampler = setInterval(() => {
    for (const [name, child] of Object.entries(services)) {
      try {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1]);
        if (kb) rss[name].push(Math.round(kb / 1024));
      } catch {}
    }
  }, 1000);
  const api = async (path, init = {}) => {
    const res = await fetch(`http://127.0.0.1:${PORT}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    });
    return res.json();
  };
  for (let i = 0; ; i++) {
    try {
      if ((await fetch(`http://127.0.0.1:${PORT}/healthz`)).ok) break;
    } catch {}
    if (i > 600) throw new Error("aggregator API did not become healthy");
    await sleep(100);
  }
  const recorded = async () => {
    let total = 0;
    for (const org of ["org_1", "org_2", "org_3"]) {
      const body = await api(`/v1/orgs/${org}/spend?window=ytd`);
      total += body.rows.reduce((n, r) => n + r.requests, 0);
    }
    return total;
  };

  // 2. Sustained end to end.
  {
    const producer = createUsageProducer({ brokers: broker.brokers, logger, batchSize: 2000, maxBuffered: 50_000 });
    await producer.connect();
    const events = generateEvents({ seed: 2, count: Number.MAX_SAFE_INTEGER, now: Date.now() });
    // Where the machine's CPU goes during the run: each service, the broker, and this process (the publisher).
    const cpuOf = () => {
      const self = process.cpuUsage();
      return {
        ...Object.fromEntries(Object.entries(services).map(([name, child]) => [name, cpuSecondsOf(child.pid)])),
        broker: broker.pid ? cpuSecondsOf(broker.pid) : null,
        publisher: (self.user + self.system) / 1e6,
      };
    };
    const cpuAtStart = cpuOf();
    const t0 = performance.now();
    const end = t0 + MINUTES * 60_000;
    let sent = 0;
    const progress = [];
    let lastReport = t0;
    let seenAtCheck = 0;
    while (performance.now() < end) {
      await producer.publish(events.next().value);
      sent++;
      // Sustained means what the pipeline absorbs: publishing waits while more than MAX_BACKLOG events are on
      // their way, so the run measures the pipeline's rate, not the producer's, and ends soon after publishing does.
      if (sent % 5000 === 0) {
        seenAtCheck = await recorded();
        while (sent - seenAtCheck > MAX_BACKLOG && performance.now() < end) {
          await sleep(200);
          seenAtCheck = await recorded();
        }
      }
      if (performance.now() - lastReport > 10_000) {
        lastReport = performance.now();
        const seen = await recorded();
        progress.push({ at_s: Math.round((lastReport - t0) / 1000), published: sent, visible: seen });
        console.log("e2e", progress.at(-1));
      }
    }
    await producer.close();
    const publishSeconds = (performance.now() - t0) / 1000;
    while ((await recorded()) < sent) await sleep(200);
    const seconds = (performance.now() - t0) / 1000;
    const cpuAtEnd = cpuOf();
    // Cores each component kept busy on average (2.0 = both cores of a 2-core machine).
    const coresBusy = Object.fromEntries(
      Object.entries(cpuAtEnd).map(([name, s]) => [
        name,
        s === null || cpuAtStart[name] === null ? null : Number(((s - cpuAtStart[name]) / seconds).toFixed(2)),
      ]),
    );
    result.end_to_end_cores_busy = { ...coresBusy, machine_cores: cpus().length };
    result.end_to_end = {
      minutes: MINUTES,
      events: sent,
      publish_per_s: Math.round(sent / publishSeconds),
      visible_per_s: Math.round(sent / seconds),
      seconds: Number(seconds.toFixed(1)),
      progress,
    };
    result.end_to_end.ratio_to_ceiling = Number(
      (result.end_to_end.visible_per_s / result.ceiling_kafkajs.produce_then_consume_per_s).toFixed(3),
    );
    console.log("e2e", result.end_to_end);
  }

  // 3. Event → cap signal latency at half the end-to-end rate: each probe user has a limit of 0.000001, so its
  //    first event blocks it and produces exactly one signal, with cause_event_id naming the event.
  {
    const rate = Math.max(100, Math.round(result.end_to_end.visible_per_s / 2));
    const probeUsers = 200;
    const users = {};
    for (let i = 0; i < probeUsers; i++) users[`probe_${i}`] = { limit: "0.000001" };
    await api("/v1/orgs/org_probe/policy", { method: "PUT", body: JSON.stringify({ users }) });
    const sentAt = new Map();
    const latencies = [];
    const consumer = kafka.consumer({ groupId: `bench-signals-${Date.now()}`, maxWaitTimeInMs: 20 });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPICS.signals, fromBeginning: false });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const s = JSON.parse(message.value.toString());
        const t = sentAt.get(s.cause_event_id);
        if (t !== undefined && s.kind === "blocked") latencies.push(performance.now() - t);
      },
    });
    await sleep(3000); // the signals consumer joins its group
    const producer = createUsageProducer({ brokers: broker.brokers, logger, lingerMs: 2 });
    await producer.connect();
    const background = generateEvents({ seed: 3, count: Number.MAX_SAFE_INTEGER, now: Date.now() });
    const probes = generateEvents({ seed: 4, count: probeUsers * 4, now: Date.now(), orgs: 1, usersPerOrg: 1 });
    let probe = 0;
    // Allowance freshness under the same load: each probe user's allowance is asked every 10 ms (all pending users in
    // one round) from when its event is handed to the producer until it answers allowed: false.
    const allowanceLatencies = [];
    const pending = new Map();
    let polling = true;
    let pollDeadline = Number.POSITIVE_INFINITY;
    const poller = (async () => {
      while (polling || pending.size > 0) {
        await Promise.all(
          [...pending].map(async ([user, sentMs]) => {
            const body = await api(`/v1/orgs/org_probe/users/${user}/allowance`).catch(() => undefined);
            if (body?.allowed === false && pending.delete(user)) allowanceLatencies.push(performance.now() - sentMs);
          }),
        );
        await sleep(10);
        if (!polling && performance.now() > pollDeadline) break;
      }
    })();
    const t0 = performance.now();
    const perTick = Math.max(1, Math.round(rate / 100));
    for (let tick = 0; probe < probeUsers; tick++) {
      for (let i = 0; i < perTick; i++) await producer.publish(background.next().value);
      if (tick % 10 === 0) {
        let e = probes.next().value;
        while (e.input_tokens + e.output_tokens === 0) e = probes.next().value;
        const event = { ...e, org_id: "org_probe", user_id: `probe_${probe++}`, occurred_at: new Date().toISOString() };
        sentAt.set(event.event_id, performance.now());
        pending.set(event.user_id, performance.now());
        await producer.publish(event);
      }
      const wait = t0 + (tick + 1) * 10 - performance.now();
      if (wait > 0) await sleep(wait);
    }
    await producer.close();
    const deadline = performance.now() + 30_000;
    while (latencies.length < probeUsers && performance.now() < deadline) await sleep(100);
    pollDeadline = performance.now() + 10_000;
    polling = false;
    await poller;
    await consumer.disconnect();
    latencies.sort((a, b) => a - b);
    const ms = (v) => (v === null ? null : Number(v.toFixed(1)));
    result.event_to_cap_signal_ms = {
      background_rate_per_s: rate,
      samples: latencies.length,
      p50: ms(percentile(latencies, 50)),
      p99: ms(percentile(latencies, 99)),
      max: ms(latencies.at(-1)),
      note: "from handing the event to the producer library to the signal arriving on spend.signals.v1 (pricing hop included)",
    };
    console.log("signal latency", result.event_to_cap_signal_ms);
    allowanceLatencies.sort((a, b) => a - b);
    result.event_to_allowance_ms = {
      background_rate_per_s: rate,
      samples: allowanceLatencies.length,
      p50: ms(percentile(allowanceLatencies, 50)),
      p99: ms(percentile(allowanceLatencies, 99)),
      max: ms(allowanceLatencies.at(-1) ?? null),
      note: "from handing the event to the producer library to GET …/allowance answering allowed: false (polled every 10 ms; pricing hop included)",
    };
    console.log("allowance latency", result.event_to_allowance_ms);
  }

  clearInterval(sampler);
  result.rss_mb = Object.fromEntries(
    Object.entries(rss).map(([k, v]) => [k, { samples: v.length, first: v[0], max: Math.max(...v), last: v.at(-1) }]),
  );
  result.rss_mb.aggregator.note = "includes the embedded ClickHouse engine (chdb) running in the same process";
  result.goals = { end_to_end_per_s: 30000, pricing_per_s: 100000, signal_p99_ms: 250, rss_mb_per_service: 200 };
  writeResult("e2e", result);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.on("exit", r)))));
  await broker.stop();
}
