// The embedded engine's merge work under small inserts at a steady pace, as the aggregator makes them at low rates:
// every cycle one insert into orgs, usage_events and spend_daily (--rows events, random ids and figures), --per-s
// cycles a second, for --seconds. --base N sets the tables' merge_selector_base instead of the one migrate sets
// (merge-tuning.ts; 5 is the engine's default). Reports the cores of the process's threads by name (MergeMutate: the
// merges) and, per table, the active parts and what merges wrote (bytes of the parts they replaced).
//   node test/bench/merge-cost.mjs [--seconds 60] [--per-s 10] [--rows 10] [--base 5]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClickHouse, migrate, USAGE_EVENT_COLUMNS } from "@usage/clickhouse";
import { syntheticUsageEventRow, threadCpuSecondsOf, writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
};
const SECONDS = Number(arg("--seconds", 60));
const PER_S = Number(arg("--per-s", 10));
const ROWS = Number(arg("--rows", 10));
const BASE = arg("--base", undefined);
const ch = await createClickHouse({ dataDir: mkdtempSync(join(tmpdir(), "usage-bench-merge-")) });
await migrate(ch.client);
if (BASE !== undefined) {
  for (const table of ["orgs", "usage_events", "spend_daily"]) {
    await ch.client.command({ query: `ALTER TABLE ${table} MODIFY SETTING merge_selector_base = ${Number(BASE)}` });
  }
}
let n = 0;
const ev = () => ({ ...syntheticUsageEventRow(++n, { random: true }), batch_id: `b_${Math.floor(n / ROWS)}` });
const daily = (e) => ({
  org_id: e.org_id,
  day: "2026-11-30",
  user_id: e.user_id,
  seat_tier: "premium",
  product: "claude_code",
  model: "claude-sonnet-4-5",
  region: "us",
  long_context: false,
  batch_id: e.batch_id,
  requests: 1,
  input_tokens: Math.floor(Math.random() * 1e5),
  output_tokens: Math.floor(Math.random() * 1e4),
  cache_write_tokens: 0,
  cache_read_tokens: 89,
  gross_cost: "0.0122337",
  net_cost: "0.011316172500",
});
const t0 = threadCpuSecondsOf(process.pid);
const start = Date.now();
let i = 0;
while (Date.now() - start < SECONDS * 1000) {
  const rows = Array.from({ length: ROWS }, ev);
  const token = `t${i++}`;
  await ch.client.insert({ table: "orgs", values: [{ org_id: rows[0].org_id }], format: "JSONEachRow" });
  await ch.client.insert({
    table: "usage_events",
    columns: USAGE_EVENT_COLUMNS,
    values: rows.map((r) => USAGE_EVENT_COLUMNS.map((c) => r[c])),
    format: "JSONCompactEachRow",
    clickhouse_settings: { insert_deduplication_token: token },
  });
  await ch.client.insert({
    table: "spend_daily",
    values: rows.map(daily),
    format: "JSONEachRow",
    clickhouse_settings: { insert_deduplication_token: token },
  });
  const next = start + (i * 1000) / PER_S;
  await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
}
const t1 = threadCpuSecondsOf(process.pid);
const s = (Date.now() - start) / 1000;
const cores = {};
for (const [k, v] of Object.entries(t1)) {
  const d = (v - (t0[k] ?? 0)) / s;
  if (d > 0.005) cores[k] = Number(d.toFixed(3));
}
const parts = await (
  await ch.client.query({
    query:
      // Parts merged away stay listed (inactive) for old_parts_lifetime, 8 minutes: longer than a run.
      `SELECT table, countIf(active) AS active_parts, sumIf(rows, active) AS rows, max(level) AS max_level,
              sumIf(bytes_on_disk, NOT active) AS bytes_of_merged_away_parts
       FROM system.parts WHERE database = currentDatabase() AND table IN ('orgs', 'usage_events', 'spend_daily')
       GROUP BY table ORDER BY table`,
    format: "JSONEachRow",
  })
).json();
writeResult(BASE === undefined ? "merge-cost" : `merge-cost-base${BASE}`, {
  seconds: Math.round(s),
  cycles_per_s: PER_S,
  rows_per_insert: ROWS,
  merge_selector_base: BASE === undefined ? "as migrate sets it" : Number(BASE),
  cores,
  parts,
});
await ch.close();
