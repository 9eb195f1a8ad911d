// The aggregator's cost per event as usage_events grows: the same 100,000 events (10% resent) recorded through the
// aggregator's own steps (decode → dedup → record → account, 2,000 a batch, as a member does) into a table that
// already holds 1 M rows, then one that holds 20 M (each in a fresh embedded engine, in a child process: one engine
// per process). CPU is the process's (the engine runs in it). "filter" is the partition's id filter (the default);
// "lookup_all" asks ClickHouse about every id, as the aggregator did before the filter, for comparison.
//   node test/bench/aggregator-growth.mjs [--rows 1000000,20000000] [--events 100000]
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  accountStep,
  decodeStep,
  dedupStep,
  loadPartition,
  recordRows,
  writeEvents,
  writeRollups,
} from "@usage/aggregator";
import { createClickHouse, migrate, rebuildRollup } from "@usage/clickhouse";
import { pricedUsageEventV1, validateUsageEvent } from "@usage/events";
import { createPricer, loadRateCard } from "@usage/pricing";
import { createLogger } from "@usage/runtime";
import { generateEventArray } from "@usage/workload";
import { writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const EVENTS = Number(arg("--events", 100_000));
const BATCH = 2000;

if (arg("--child", undefined) === undefined) {
  const sizes = arg("--rows", "1000000,20000000").split(",").map(Number);
  const result = { events: EVENTS, batch: BATCH, runs: [] };
  for (const rows of sizes) {
    for (const mode of ["filter", "lookup_all"]) {
      const out = spawnSync(
        process.execPath,
        [fileURLToPath(import.meta.url), "--child", String(rows), "--mode", mode, "--events", String(EVENTS)],
        { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], maxBuffer: 1 << 24 },
      );
      if (out.status !== 0) throw new Error(`child ${rows} ${mode} exited ${out.status}`);
      const run = JSON.parse(out.stdout.trim().split("\n").at(-1));
      console.log(run);
      result.runs.push(run);
    }
  }
  const cpu = (rows, mode) => result.runs.find((r) => r.rows_before === rows && r.mode === mode)?.cpu_us_per_event;
  const [small, large] = [Math.min(...sizes), Math.max(...sizes)];
  result.growth = {
    filter: Number((cpu(large, "filter") / cpu(small, "filter")).toFixed(2)),
    lookup_all: Number((cpu(large, "lookup_all") / cpu(small, "lookup_all")).toFixed(2)),
    note: `cpu per event with ${large} rows / with ${small} rows (goal ≤ 1.3)`,
  };
  console.log("growth", result.growth);
  writeResult("aggregator-growth", result);
  process.exit(0);
}

const ROWS = Number(arg("--child"));
const MODE = arg("--mode", "filter");
const dataDir = mkdtempSync(join(tmpdir(), "usage-bench-growth-"));
const ch = await createClickHouse({ dataDir });
const client = ch.client;
await migrate(client);
const now = Date.now();
// The rows already there: the same three orgs, spread over the last 30 days (inside the filter's horizon, so a
// partition load reads every one of them: the worst case for the load).
let t = performance.now();
for (let done = 0; done < ROWS; done += 5_000_000) {
  const n = Math.min(5_000_000, ROWS - done);
  await client.command({
    query: `INSERT INTO usage_events (event_id, org_id, user_id, seat_tier, product, model, model_base, occurred_at,
              input_tokens, output_tokens, rate_card_version, input_cost, output_cost, gross_cost, discount_pct,
              net_cost, priced_at, batch_id, is_late)
            SELECT toString(generateUUIDv4(number)), concat('org_', toString(number % 3 + 1)),
                   concat('user_', toString(number % 300)), 'premium', 'chat', 'claude-sonnet-4-5', 'claude-sonnet-4-5',
                   fromUnixTimestamp64Milli(toInt64({now:Int64} - (number % 2592000) * 1000), 'UTC'),
                   1000, 100, 'bench', '0.003', '0.0015', '0.0045', '0', '0.0045',
                   fromUnixTimestamp64Milli({now:Int64}, 'UTC'), 'prefill', false
            FROM numbers({n:UInt64})`,
    query_params: { now, n },
  });
}
await client.command({ query: "INSERT INTO orgs (org_id) VALUES ('org_1'), ('org_2'), ('org_3')" });
// Their rollup, as the aggregator would have written it (else the partition load repairs it, and is timed doing so).
await rebuildRollup(client, "prefill");
// Merged now, so the background merges of the prefill do not land in the measurement (the engine runs in-process).
await client.command({ query: "OPTIMIZE TABLE usage_events FINAL" });
await client.command({ query: "OPTIMIZE TABLE spend_daily FINAL" });
const prefillMs = performance.now() - t;

const logger = createLogger({ level: "warn", name: "bench" });
// The aggregator's ControlView with no control change at all (no policy, contract, seats or requests).
const control = {
  policy: () => undefined,
  autoReload: () => undefined,
  contract: () => undefined,
  seats: () => [],
  limitRequests: () => [],
  orgIds: () => [],
};
t = performance.now();
const { state } = await loadPartition({
  clickhouse: client,
  control,
  partition: 0,
  partitions: 1,
  generation: 1,
  now: () => Date.now(),
  backfillDays: 35,
  logger,
});
// The id filter loads in the background; the benchmark measures the steady state, so it waits for it.
while (MODE === "filter" && !state.seen.ready) await new Promise((r) => setTimeout(r, 50));
const loadMs = performance.now() - t;
if (MODE === "lookup_all") {
  state.seen.stop();
  state.seen = { doubtful: () => true, add() {}, refresh() {}, stop() {} };
}

const price = createPricer(loadRateCard());
const generated = generateEventArray({ seed: 7, count: EVENTS, now });
const messages = [];
const resent = [];
for (let i = 0; i < generated.length; i++) {
  const v = validateUsageEvent(generated[i], { now });
  if (!v.ok) continue;
  const priced = price(v.value);
  if (!priced.ok) continue;
  const value = pricedUsageEventV1.encode(priced.value);
  messages.push({ key: Buffer.from(priced.value.org_id), value, timestamp: String(now), offset: "0" });
  // One in ten is resent a few batches later (a surface's retry after a timeout): the dedup step must drop it.
  if (i % 10 === 0) resent.push({ at: messages.length + 5000, value, key: Buffer.from(priced.value.org_id) });
}
for (const r of resent.reverse()) messages.splice(Math.min(r.at, messages.length), 0, { ...r, timestamp: String(now) });
messages.forEach((m, i) => {
  m.offset = String(i);
});

const cpu0 = process.cpuUsage();
t = performance.now();
let recorded = 0;
let lookedUp = 0;
for (let i = 0; i < messages.length; i += BATCH) {
  const batch = { topic: "usage.priced.v1", partition: 0, messages: messages.slice(i, i + BATCH) };
  const decoded = decodeStep(batch, Date.now);
  const { fresh, lookedUp: n } = await dedupStep(client, state.seen, decoded.events);
  lookedUp += n;
  const out = recordRows(state, batch, fresh, Date.now);
  await writeEvents(client, [out.write]);
  await writeRollups(client, [out.write]);
  for (const o of out.write.newOrgs) state.orgs.add(o);
  accountStep(state, out.rows);
  recorded += fresh.length;
}
const wallMs = performance.now() - t;
const cpu = process.cpuUsage(cpu0);
const mem = process.memoryUsage();
console.log(
  JSON.stringify({
    rows_before: ROWS,
    mode: MODE,
    messages: messages.length,
    recorded,
    ids_looked_up: lookedUp,
    prefill_s: Number((prefillMs / 1000).toFixed(1)),
    partition_load_ms: Math.round(loadMs),
    cpu_us_per_event: Number(((cpu.user + cpu.system) / messages.length).toFixed(1)),
    wall_us_per_event: Number(((wallMs * 1000) / messages.length).toFixed(1)),
    rss_mb: Math.round(mem.rss / 2 ** 20),
  }),
);
await ch.close();
rmSync(dataDir, { recursive: true, force: true });
