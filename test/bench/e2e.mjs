// End-to-end benchmark on one machine: broker, embedded ClickHouse and every service together.
//  1. ceiling: plain kafkajs produce → consume of the same Avro messages on the same broker (and the same with
//     @platformatic/kafka, for comparison: ceiling-platformatic.mjs);
//  2. end to end: events/s from publishing until the rollup is visible through the API (ClickHouse spend_daily),
//     sustained for --minutes (publishing as fast as the producer library allows, bounded by back-pressure);
//  3. event → cap signal latency (p50/p99) while a background load runs at half the end-to-end rate;
//  4. RSS of each service process (pricing; aggregator, notifier and an API instance, each with an embedded engine
//     unless --clickhouse-server), sampled 1/s.
//   node test/bench/e2e.mjs [--minutes 1] [--ceiling-events 200000] [--max-backlog 200000]
//   node test/bench/e2e.mjs --rate 4000 [--warmup 30]   (only 3 and 4, at that background rate, after a warm-up: for
//   iterating on latency; --probes 600 for a p99 that is not the second largest of 200 samples)
//   node test/bench/e2e.mjs --clickhouse-server   (the engine in a process of its own: each service's RSS without it)
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decode, pricedUsageEventV1, usageEventV1 } from "@usage/events";
import { createKafka, ensureTopics, partitionOf, TOPICS } from "@usage/kafka";
import { createUsageProducer } from "@usage/producer";
import { createLogger } from "@usage/runtime";
import { generateEvents } from "@usage/workload";
import kafkajs from "kafkajs";
import { kafkajsCeiling } from "./ceiling-kafkajs.mjs";
import { platformaticCeiling } from "./ceiling-platformatic.mjs";
import { startClickHouseHttp } from "./clickhouse-http.mjs";
import { benchBroker, cpuSecondsOf, percentile, threadCpuSecondsOf, writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const MINUTES = arg("--minutes", 1);
const MAX_BACKLOG = arg("--max-backlog", 200_000);
const CEILING_EVENTS = arg("--ceiling-events", 200_000);
const PORT = arg("--port", 18282);
const RATE = arg("--rate", 0);
// --warmup S: the background load runs S seconds before the first probe (default 30 with --rate, whose services start
// cold: the broker's JIT alone then takes half a core; 0 after the sustained run, which warms everything up).
const WARMUP_S = arg("--warmup", RATE ? 30 : 0);
// --poll-ms N: how often each probe user's allowance is asked while its event is on its way (default 10). Every
// round asks each pending user once, so at 10 ms and ~10 users pending the probes make ~1,000 requests a second,
// which the API instance and this process pay for on the same cores as the pipeline.
const POLL_MS = arg("--poll-ms", 10);
// --probes N: how many probe events (one every 100 ms; default 200). Each p99 of 200 samples is the second largest.
const PROBES = arg("--probes", 200);
// --clickhouse-server: the engine in a process of its own (clickhouse-http.mjs), every service reaching it over HTTP
// as a ClickHouse server (CLICKHOUSE_URL), so each service's RSS is its own.
const CLICKHOUSE_SERVER = process.argv.includes("--clickhouse-server");
const KEY = "bench-operator-key-0123456789";
const BIN = fileURLToPath(new URL("../../packages/cli/bin/usagectl.js", import.meta.url));
const logger = createLogger({ level: "warn", name: "bench" });
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const PARTITIONS = 4;
const { AssignerProtocol } = kafkajs;
// A kafkajs partition assigner that gives the group's one member the listed partitions and nothing else.
const onlyPartitionsAssigner = (assignment) => () => ({
  name: "OnlyPartitions",
  version: 1,
  async assign({ members }) {
    return members.map((m, i) => ({
      memberId: m.memberId,
      memberAssignment: AssignerProtocol.MemberAssignment.encode({
        version: 1,
        assignment: i === 0 ? assignment : {},
        userData: Buffer.alloc(0),
      }),
    }));
  },
  protocol({ topics }) {
    return {
      name: "OnlyPartitions",
      metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
    };
  },
});

const broker = await benchBroker();
const kafka = createKafka({ brokers: broker.brokers, clientId: "bench-e2e", logger });
const result = {};
const children = [];
const stops = [];
try {
  await ensureTopics(kafka, { partitions: PARTITIONS });

  // 1. Ceiling: the same Avro bytes through plain kafkajs, on a topic of its own; then through @platformatic/kafka,
  //    to tell whether the Kafka client is the limit (the services keep kafkajs).
  if (!RATE) {
    const messages = [];
    for (const e of generateEvents({ seed: 1, count: CEILING_EVENTS, now: Date.now() }))
      messages.push({ key: e.org_id, value: usageEventV1.encode(e) });
    result.ceiling_kafkajs = await kafkajsCeiling({ kafka, messages });
    console.log("ceiling", result.ceiling_kafkajs);
    result.ceiling_platformatic = await platformaticCeiling({ brokers: broker.brokers, messages });
    console.log("ceiling", result.ceiling_platformatic);
  }

  // The services as separate processes, so each one's RSS can be read.
  const dataDir = mkdtempSync(join(tmpdir(), "usage-bench-e2e-"));
  const stamp = Date.now();
  const engine = CLICKHOUSE_SERVER ? await startClickHouseHttp({ dataDir: join(dataDir, "server") }) : undefined;
  if (engine) stops.push(() => engine.stop());
  const env = {
    ...(engine ? { CLICKHOUSE_URL: engine.url, USAGE_SECRET_KEY: randomBytes(32).toString("hex") } : {}),
    ...process.env,
    // A heap cap as a deployment would set one: V8 otherwise grows the heap lazily on a big machine. And the young
    // generation at 8 MB a semi-space, as the Dockerfile sets it (V8's default on 64 bits is 16 MB: 32 MB of RSS).
    NODE_OPTIONS: process.env.USAGE_BENCH_NODE_OPTIONS ?? "--max-old-space-size=160 --max-semi-space-size=8",
    KAFKA_BROKERS: broker.brokers.join(","),
    USAGE_DATA_DIR: dataDir,
    USAGE_API_PORT: String(PORT),
    USAGE_API_KEY: KEY,
    LOG_LEVEL: process.env.USAGE_BENCH_LOG_LEVEL ?? "warn",
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
    // An API instance of its own, for the allowance probes: its answers come from the totals topic, and polling it
    // does not take the aggregator's event loop.
    api: run("api", {
      USAGE_API_PORT: String(PORT + 1),
      USAGE_DATA_DIR: mkdtempSync(join(tmpdir(), "usage-bench-api-")),
    }),
  };
  const sampled = { ...services, ...(engine ? { clickhouse: { pid: engine.pid } } : {}) };
  const rss = Object.fromEntries(Object.keys(sampled).map((k) => [k, []]));
  const sampler = setInterval(() => {
    for (const [name, child] of Object.entries(sampled)) {
      try {
        const kb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1]);
        if (kb) rss[name].push(Math.round(kb / 1024));
      } catch {}
    }
  }, 1000);
  const api = async (path, init = {}, port = PORT) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, {
      ...init,
      headers: { authorization: `Bearer ${KEY}`, "content-type": "application/json" },
    });
    return res.json();
  };
  for (const port of [PORT, PORT + 1]) {
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
      } catch {}
      if (i > 600) throw new Error(`the API on port ${port} did not become healthy`);
      await sleep(100);
    }
  }
  const recorded = async () => {
    let total = 0;
    for (const org of ["org_1", "org_2", "org_3"]) {
      const body = await api(`/v1/orgs/${org}/spend?window=ytd`);
      total += body.rows.reduce((n, r) => n + r.requests, 0);
    }
    return total;
  };

  // Where the machine's CPU goes during a phase: each service, the broker, and this process (the publisher).
  const cpuOf = () => {
    const self = process.cpuUsage();
    return {
      ...Object.fromEntries(Object.entries(sampled).map(([name, child]) => [name, cpuSecondsOf(child.pid)])),
      broker: broker.pid ? cpuSecondsOf(broker.pid) : null,
      publisher: (self.user + self.system) / 1e6,
    };
  };
  // Each service's threads by name (lib.mjs threadCpuSecondsOf): JavaScript, the engine's merges, its query threads.
  const threadsOf = () =>
    Object.fromEntries(Object.entries(sampled).map(([name, child]) => [name, threadCpuSecondsOf(child.pid)]));
  // Cores each component kept busy on average since `atStart` (2.0 = both cores of a 2-core machine), and within each
  // service the threads that took at least 0.01 of a core.
  const coresBusy = (atStart, seconds, threadsAtStart) => {
    const cores = (s, s0) => (s === null || s0 === null ? null : Number(((s - s0) / seconds).toFixed(2)));
    const threads = threadsOf();
    const by_thread = Object.fromEntries(
      Object.entries(threads).map(([service, now]) => [
        service,
        Object.fromEntries(
          Object.entries(now)
            .map(([thread, s]) => [thread, cores(s, threadsAtStart?.[service]?.[thread] ?? 0)])
            .filter(([, c]) => c >= 0.01)
            .sort((a, b) => b[1] - a[1]),
        ),
      ]),
    );
    return {
      ...Object.fromEntries(Object.entries(cpuOf()).map(([name, s]) => [name, cores(s, atStart[name])])),
      machine_cores: cpus().length,
      by_thread,
    };
  };

  // 2. Sustained end to end.
  if (!RATE) {
    const producer = createUsageProducer({ brokers: broker.brokers, logger, batchSize: 2000, maxBuffered: 50_000 });
    await producer.connect();
    const events = generateEvents({ seed: 2, count: Number.MAX_SAFE_INTEGER, now: Date.now() });
    const cpuAtStart = cpuOf();
    const threadsAtStart = threadsOf();
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
    result.end_to_end_cores_busy = coresBusy(cpuAtStart, seconds, threadsAtStart);
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
    const rate = RATE || Math.max(100, Math.round(result.end_to_end.visible_per_s / 2));
    const probeUsers = PROBES;
    const users = {};
    for (let i = 0; i < probeUsers; i++) users[`probe_${i}`] = { limit: "0.000001" };
    await api("/v1/orgs/org_probe/policy", { method: "PUT", body: JSON.stringify({ users }) });
    const sentAt = new Map();
    const latencies = [];
    // The same, from the event's record timestamp on usage.events.v1 (when the producer library sent it): the
    // pipeline's own latency, without the time an event waits in this process's producer under load. Epoch ms.
    const recordTs = new Map();
    const arrived = { signal: new Map(), priced: new Map(), allowance: new Map() };
    const consumer = kafka.consumer({ groupId: `bench-signals-${Date.now()}`, maxWaitTimeInMs: 20 });
    await consumer.connect();
    await consumer.subscribe({ topic: TOPICS.signals, fromBeginning: false });
    // Neither of this process's consumers commits offsets: their groups are thrown away, and a commit after every
    // batch would be a write to the broker's offsets log 15 to 20 times a second each, on the pipeline's cores.
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => {
        const s = JSON.parse(message.value.toString());
        const t = sentAt.get(s.cause_event_id);
        if (t !== undefined && s.kind === "blocked") {
          latencies.push(performance.now() - t);
          arrived.signal.set(s.cause_event_id, Date.now());
        }
      },
    });
    // Where the time goes: when each probe event becomes visible priced (read_committed, so after pricing's commit).
    const pricedLatencies = [];
    // It reads only the partition that carries org_probe (every topic is keyed by org_id with the same partitioner,
    // so it is the same partition of both topics): reading all of both would cost this process and the broker a
    // good part of a core on the cores the pipeline runs on. The broker holds its fetches until 64 KiB or 20 ms.
    const probePartition = partitionOf("org_probe", PARTITIONS);
    const pricedConsumer = kafka.consumer({
      groupId: `bench-priced-${Date.now()}`,
      maxWaitTimeInMs: 20,
      minBytes: 64 * 1024,
      partitionAssigners: [
        onlyPartitionsAssigner({ [TOPICS.events]: [probePartition], [TOPICS.priced]: [probePartition] }),
      ],
    });
    await pricedConsumer.connect();
    const rawLatencies = [];
    await pricedConsumer.subscribe({ topics: [TOPICS.events, TOPICS.priced], fromBeginning: false });
    await pricedConsumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        const at = performance.now();
        const raw = batch.topic === TOPICS.events;
        for (const message of batch.messages) {
          if (message.key?.toString() !== "org_probe") continue;
          const d = decode(message.value, raw ? usageEventV1 : pricedUsageEventV1);
          const t = d.ok ? sentAt.get(d.value.event_id) : undefined;
          if (t === undefined) continue;
          (raw ? rawLatencies : pricedLatencies).push(at - t);
          if (raw) recordTs.set(d.value.event_id, Number(message.timestamp));
          else arrived.priced.set(d.value.event_id, Date.now());
        }
      },
    });
    await sleep(3000); // the signals consumer joins its group
    const producer = createUsageProducer({ brokers: broker.brokers, logger, lingerMs: 10 });
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
          [...pending].map(async ([user, { sentMs, eventId }]) => {
            const body = await api(`/v1/orgs/org_probe/users/${user}/allowance`, {}, PORT + 1).catch(() => undefined);
            if (body?.allowed === false && pending.delete(user)) {
              allowanceLatencies.push(performance.now() - sentMs);
              arrived.allowance.set(eventId, Date.now());
            }
          }),
        );
        await sleep(POLL_MS);
        if (!polling && performance.now() > pollDeadline) break;
      }
    })();
    const t0 = performance.now();
    let cpuAtStart = cpuOf();
    let threadsAtStart = threadsOf();
    let probesFrom = t0;
    const perTick = Math.max(1, Math.round(rate / 100));
    const warmupTicks = WARMUP_S * 100;
    for (let tick = 0; probe < probeUsers; tick++) {
      for (let i = 0; i < perTick; i++) await producer.publish(background.next().value);
      if (tick === warmupTicks && warmupTicks > 0) {
        cpuAtStart = cpuOf();
        threadsAtStart = threadsOf();
        probesFrom = performance.now();
      }
      if (tick >= warmupTicks && tick % 10 === 0) {
        let e = probes.next().value;
        while (e.input_tokens + e.output_tokens === 0) e = probes.next().value;
        const event = { ...e, org_id: "org_probe", user_id: `probe_${probe++}`, occurred_at: new Date().toISOString() };
        sentAt.set(event.event_id, performance.now());
        pending.set(event.user_id, { sentMs: performance.now(), eventId: event.event_id });
        await producer.publish(event);
      }
      const wait = t0 + (tick + 1) * 10 - performance.now();
      if (wait > 0) await sleep(wait);
    }
    await producer.close();
    result.latency_cores_busy = coresBusy(cpuAtStart, (performance.now() - probesFrom) / 1000, threadsAtStart);
    result.latency_warmup_s = WARMUP_S;
    console.log("cores busy at that rate", result.latency_cores_busy);
    const deadline = performance.now() + 30_000;
    while (latencies.length < probeUsers && performance.now() < deadline) await sleep(100);
    pollDeadline = performance.now() + 10_000;
    polling = false;
    await poller;
    await consumer.disconnect();
    await pricedConsumer.disconnect();
    const ms = (v) => (v === null ? null : Number(v.toFixed(1)));
    // p50/p99/max of a list of milliseconds, with what they measure.
    const summary = (values, note, extra = {}) => {
      const sorted = [...values].sort((a, b) => a - b);
      return {
        ...extra,
        samples: sorted.length,
        p50: ms(percentile(sorted, 50)),
        p99: ms(percentile(sorted, 99)),
        max: ms(sorted.at(-1) ?? null),
        note,
      };
    };
    const from = "from handing the event to the producer library to";
    result.event_to_published_ms = summary(rawLatencies, `${from} a consumer of usage.events.v1 seeing it`);
    result.event_to_priced_ms = summary(
      pricedLatencies,
      `${from} a read_committed consumer of usage.priced.v1 seeing it`,
    );
    result.event_to_cap_signal_ms = summary(
      latencies,
      `${from} the signal arriving on spend.signals.v1 (pricing hop included)`,
      { background_rate_per_s: rate },
    );
    result.event_to_allowance_ms = summary(
      allowanceLatencies,
      `${from} GET …/allowance of an API instance of its own answering allowed: false (polled every ${POLL_MS} ms; pricing hop included)`,
      { background_rate_per_s: rate },
    );
    for (const key of [
      "event_to_published_ms",
      "event_to_priced_ms",
      "event_to_cap_signal_ms",
      "event_to_allowance_ms",
    ])
      console.log(key, result[key]);
    result.from_record_timestamp_ms = Object.fromEntries(
      Object.entries(arrived).map(([what, at]) => [
        what,
        summary(
          [...at].filter(([id]) => recordTs.has(id)).map(([id, t]) => t - recordTs.get(id)),
          `from the record timestamp to the ${what}`,
        ),
      ]),
    );
    result.from_record_timestamp_ms.note =
      "the same three, from the probe event's record timestamp on usage.events.v1 (set when the producer library sent it): the pipeline's own latency";
    console.log("from the record timestamp", result.from_record_timestamp_ms);
    // Where the slowest signals spent their time: record timestamp → priced → signal → allowance, per probe.
    result.slowest_signals_ms = [...arrived.signal]
      .filter(([id]) => recordTs.has(id) && arrived.priced.has(id))
      .map(([id, t]) => ({
        total: t - recordTs.get(id),
        to_priced: arrived.priced.get(id) - recordTs.get(id),
        priced_to_signal: t - arrived.priced.get(id),
        signal_to_allowance: arrived.allowance.has(id) ? arrived.allowance.get(id) - t : null,
      }))
      .sort((a, b) => b.total - a.total)
      .slice(0, Math.max(3, Math.ceil(PROBES / 50)));
    console.log("slowest signals", result.slowest_signals_ms);
  }

  clearInterval(sampler);
  result.rss_mb = Object.fromEntries(
    Object.entries(rss).map(([k, v]) => [k, { samples: v.length, first: v[0], max: Math.max(...v), last: v.at(-1) }]),
  );
  result.clickhouse = engine
    ? "a process of its own (test/bench/clickhouse-http.mjs), reached over HTTP by every service"
    : "embedded (chdb) in the aggregator, the API and the notifier, each its own";
  if (!engine)
    result.rss_mb.aggregator.note = "includes the embedded ClickHouse engine (chdb) running in the same process";
  result.goals = { end_to_end_per_s: 30000, pricing_per_s: 100000, signal_p99_ms: 250, rss_mb_per_service: 200 };
  writeResult(`${RATE ? "e2e-latency" : "e2e"}${CLICKHOUSE_SERVER ? "-clickhouse-server" : ""}`, result);
} finally {
  for (const c of children) c.kill("SIGTERM");
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r() : c.on("exit", r)))));
  for (const stop of stops) await stop();
  await broker.stop();
}
