import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { createClickHouse, migrate, USAGE_EVENT_COLUMNS as COLUMNS } from "@usage/clickhouse";
const dir = mkdtempSync(join(tmpdir(), "mb-"));
const ch = await createClickHouse({ dataDir: dir });
await migrate(ch.client);
const src = readFileSync(new URL('./insert-formats.mjs', import.meta.url),'utf8');
const rowSrc = src.slice(src.indexOf('const row = () =>'), src.indexOf('const tsv'));
let n=0;
const row = eval('(' + rowSrc.replace('const row = ','').replace(/;\s*$/,'') + ')');
await ch.client.command({query:`CREATE TABLE mem AS usage_events ENGINE = Memory`});
const ROWS=1000;
const rows = Array.from({length: ROWS}, row);
const tsv = (v) => typeof v === "string" ? v.replace(/[\\\t\n]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : "\\n")) : String(v);
const bodies = {
  JSONCompactEachRow: rows.map(r=>JSON.stringify(COLUMNS.map(c=>r[c]))).join('\n'),
  TabSeparated: rows.map(r=>COLUMNS.map(c=>tsv(r[c])).join('\t')).join('\n'),
  CSV: rows.map(r=>COLUMNS.map(c=>typeof r[c]==='string'?JSON.stringify(r[c]):String(r[c])).join(',')).join('\n'),
};
for (const [fmt, body] of Object.entries(bodies)) {
  const q = `INSERT INTO mem (${COLUMNS.join(',')}) FORMAT ${fmt}`;
  let t0=performance.now(); for (let i=0;i<10;i++) await ch.client.exec({query:q, values: body}).then(r=>r.stream.resume());
  console.log(fmt, 'exec wall ms', ((performance.now()-t0)/10).toFixed(1), 'bytes', body.length);
}
// JS side cost
let t0=performance.now(); for (let i=0;i<10;i++) rows.map(r=>JSON.stringify(COLUMNS.map(c=>r[c]))).join('\n'); console.log('js build ms', ((performance.now()-t0)/10).toFixed(2));
await ch.close();
