// Insert formats into usage_events on the embedded engine: the aggregator's per-batch insert, 2,000 rows a batch.
//   node test/bench/insert-formats.mjs [--batches 50]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClickHouse, migrate, USAGE_EVENT_COLUMNS } from "@usage/clickhouse";
import { writeResult } from "./lib.mjs";

const arg = (name, fallback) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
};
const BATCHES = arg("--batches", 50);
const ROWS = arg("--rows", 2000);
const ch = await createClickHouse({ dataDir: mkdtempSync(join(tmpdir(), "usage-bench-insert-")) });
await migrate(ch.client);
const COLUMNS = USAGE_EVENT_COLUMNS;
let n = 0;
const row = () => {
  n++;
  return {
    event_id: `00000000-0000-4000-8000-${String(n).padStart(12, "0")}`,
    org_id: `org_${n % 7}`,
    user_id: `user_${n % 500}`,
    user_email: `user_${n % 500}@example.com`,
    account_uuid: "",
    request_id: `req_${n}`,
    region: "us",
    seat_tier: "premium",
    product: "claude_code",
    model: "claude-sonnet-4-5",
    model_base: "claude-sonnet-4-5",
    occurred_at: "2026-11-30 05:00:00.123",
    input_tokens: 1234,
    output_tokens: 567,
    cache_write_tokens: 0,
    cache_read_tokens: 89,
    prompt_tokens: 1323,
    long_context: false,
    rate_card_version: "2026-11-01",
    input_cost: "0.003702",
    output_cost: "0.008505",
    cache_write_cost: "0",
    cache_read_cost: "0.0000267",
    gross_cost: "0.0122337",
    discount_pct: "7.5",
    net_cost: "0.011316172500",
    priced_at: "2026-11-30 05:00:00.200",
    batch_id: `b_${n}`,
    is_late: false,
  };
};
const tsv = (v) =>
  typeof v === "string" ? v.replace(/[\\\t\n]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : "\\n")) : String(v);
const formats = {
  JSONEachRow: (rows) => ch.client.insert({ table: "usage_events", values: rows, format: "JSONEachRow" }),
  JSONCompactEachRow: (rows) =>
    ch.client.insert({
      table: "usage_events",
      columns: COLUMNS,
      values: rows.map((r) => COLUMNS.map((c) => r[c])),
      format: "JSONCompactEachRow",
    }),
  TabSeparated: (rows) =>
    ch.client
      .exec({
        query: `INSERT INTO usage_events (${COLUMNS.join(", ")}) FORMAT TabSeparated`,
        values: rows.map((r) => COLUMNS.map((c) => tsv(r[c])).join("\t")).join("\n"),
      })
      .then((r) => r.stream.resume()),
};
const result = { rows_per_batch: ROWS, batches: BATCHES, formats: {} };
for (const [name, insert] of Object.entries(formats)) {
  const batches = [];
  for (let b = 0; b < BATCHES; b++) batches.push(Array.from({ length: ROWS }, row));
  await insert(batches[0]); // warm up
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  for (const rows of batches.slice(1)) await insert(rows);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const events = (BATCHES - 1) * ROWS;
  result.formats[name] = {
    us_per_event_wall: Number(((ms * 1000) / events).toFixed(2)),
    us_per_event_cpu: Number(((cpu.user + cpu.system) / events).toFixed(2)),
  };
  console.log(name, result.formats[name]);
}
const count = await (
  await ch.client.query({ query: "SELECT count() AS n FROM usage_events", format: "JSONEachRow" })
).json();
result.rows_stored = Number(count[0].n);
writeResult("insert-formats", result);
await ch.close();
