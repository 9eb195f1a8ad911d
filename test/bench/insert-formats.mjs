// Insert formats into usage_events on the embedded engine: the aggregator's per-batch insert, 2,000 rows a batch.
//   node test/bench/insert-formats.mjs [--batches 50]
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClickHouse, migrate, USAGE_EVENT_COLUMNS } from "@usage/clickhouse";
import { syntheticUsageEventRow, writeResult } from "./lib.mjs";

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
const row = () => syntheticUsageEventRow(++n);
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
